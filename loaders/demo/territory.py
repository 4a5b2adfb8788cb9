"""Jurisdiction: blocks grouped into grids, grids into communities, communities into
streets, with codes, names and exact boundaries (metres).

Grids and communities are contiguous groups found by :func:`loaders.demo.partition.
grow_regions`, balanced by households. Village blocks form their own grids (kind
``village``). Boundaries are coverage unions of the blocks, exact because neighbouring
blocks share their road edges vertex for vertex.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from loaders.demo import names
from loaders.demo.layout import Layout
from loaders.demo.partition import grow_regions

#: Weight every block carries in the balancing besides its households (so empty blocks
#: still count as area to patrol).
BLOCK_BASE_WEIGHT = 5.0


@dataclass
class Territory:
    """Grids, communities and streets of the generated area.

    Attributes
    ----------
    block_grid
        Row of :attr:`grid` holding each block.
    grid
        ``code, name, kind, community_code, street_code, households, poly`` (metres).
    community
        ``code, name, street_code, poly``.
    street
        ``code, name, poly``.
    district
        The union of the streets (metres).
    """

    block_grid: np.ndarray
    grid: pd.DataFrame
    community: pd.DataFrame
    street: pd.DataFrame
    district: shapely.MultiPolygon


def build_territory(
    layout: Layout,
    village: np.ndarray,
    households: np.ndarray,
    cfg: dict,
    rng: np.random.Generator,
) -> Territory:
    """Partition the blocks into streets, grids and communities.

    Parameters
    ----------
    layout
        Blocks and their adjacency.
    village
        Mask of village blocks.
    households
        Occupied residential units per block (what grids balance).
    cfg
        Profile settings: ``street_codes``, ``street_names``, ``grids``, ``communities``,
        ``village_grids``.
    rng
        The shared random generator.
    """
    weight = households + BLOCK_BASE_WEIGHT
    xy = shapely.get_coordinates(shapely.centroid(layout.block_poly))
    everything = np.arange(layout.n_blocks)
    n_streets = len(cfg["street_codes"])
    street_of = _split(everything, layout.block_adj, weight, xy, n_streets, rng)
    street_of = _order_labels(street_of, xy)
    grid_counts = _apportion(np.bincount(street_of, weight), cfg["grids"])
    village_w = np.bincount(street_of, weight * village, minlength=n_streets)
    village_counts = _apportion(village_w, cfg["village_grids"])
    village_counts = np.minimum(village_counts, grid_counts - 1)
    comm_counts = _apportion(grid_counts.astype(float), cfg["communities"])

    block_grid = np.full(layout.n_blocks, -1)
    grid_rows: list[dict] = []
    comm_rows: list[dict] = []
    comm_stems = names.community_names(cfg["communities"], rng)
    for s in range(n_streets):
        s_code = cfg["street_codes"][s]
        in_s = everything[street_of == s]
        v_blocks = in_s[village[in_s]]
        u_blocks = in_s[~village[in_s]]
        n_village = village_counts[s] if len(v_blocks) else 0
        labels_v = _split(v_blocks, layout.block_adj, weight, xy, n_village, rng)
        labels_u = _split(u_blocks, layout.block_adj, weight, xy, grid_counts[s] - n_village, rng)
        local = np.full(layout.n_blocks, -1)
        local[u_blocks] = labels_u
        local[v_blocks] = labels_v + labels_u.max() + 1 if len(v_blocks) else labels_v
        n_g = grid_counts[s]
        grid_kind = np.where(np.arange(n_g) >= grid_counts[s] - n_village, "village", "urban")
        grid_adj = _grid_adjacency(in_s, local, layout.block_adj, n_g)
        g_xy = np.array([xy[in_s[local[in_s] == g]].mean(0) for g in range(n_g)])
        g_w = np.bincount(local[in_s], weight[in_s], minlength=n_g)
        comm_of = _split(np.arange(n_g), grid_adj, g_w, g_xy, comm_counts[s], rng)
        comm_of = _order_labels(comm_of, g_xy)
        base = len(grid_rows)
        for c in range(comm_counts[s]):
            c_code = f"{s_code[:9]}{c + 1:03d}"
            members = np.flatnonzero(comm_of == c)
            members = members[np.lexsort((g_xy[members, 0], -g_xy[members, 1]))]
            is_village = (grid_kind[members] == "village").mean() > 0.5
            stem = comm_stems[len(comm_rows)][:-2]
            c_name = f"{stem}{'村' if is_village else '社区'}"
            comm_rows.append({"code": c_code, "name": c_name, "street_code": s_code})
            for k, g in enumerate(members):
                blocks = in_s[local[in_s] == g]
                block_grid[blocks] = len(grid_rows)
                grid_rows.append(
                    {
                        "code": f"{c_code}{k + 1:03d}",
                        "name": f"{c_name}第{k + 1}网格",
                        "kind": grid_kind[g],
                        "community_code": c_code,
                        "street_code": s_code,
                        "households": int(households[blocks].sum()),
                        "poly": _multi(shapely.coverage_union_all(layout.block_poly[blocks])),
                    }
                )
        assert len(grid_rows) - base == n_g
    grid = pd.DataFrame(grid_rows)
    community = pd.DataFrame(comm_rows)
    community["poly"] = [
        _multi(shapely.coverage_union_all(grid.loc[grid.community_code == c, "poly"].to_numpy()))
        for c in community["code"]
    ]
    street = pd.DataFrame({"code": cfg["street_codes"], "name": cfg["street_names"]})
    street["poly"] = [
        _multi(
            shapely.coverage_union_all(community.loc[community.street_code == c, "poly"].to_numpy())
        )
        for c in street["code"]
    ]
    district = _multi(shapely.coverage_union_all(street["poly"].to_numpy()))
    return Territory(block_grid, grid, community, street, district)


def _multi(geom: shapely.Geometry) -> shapely.MultiPolygon:
    """The geometry as a MultiPolygon (the schema's type for areas)."""
    if isinstance(geom, shapely.MultiPolygon):
        return geom
    return shapely.MultiPolygon([geom])


def _apportion(weight: np.ndarray, total: int) -> np.ndarray:
    """Integers proportional to ``weight`` summing to ``total`` (largest remainders), at
    least one for every positive weight while ``total`` allows."""
    w = np.asarray(weight, dtype=float)
    if total == 0 or w.sum() == 0:
        return np.zeros(len(w), dtype=int)
    quota = w / w.sum() * total
    out = np.floor(quota).astype(int)
    out[(out == 0) & (w > 0)] = 1
    while out.sum() < total:
        out[np.argmax(quota - out)] += 1
    while out.sum() > total:
        out[np.argmax(np.where(out > 1, out - quota, -np.inf))] -= 1
    return out


def _split(
    items: np.ndarray,
    adj: list[list[int]],
    weight: np.ndarray,
    xy: np.ndarray,
    k: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Labels ``0..k-1`` for ``items`` (a subset of the graph): contiguous regions within
    each connected piece of the subset, the ``k`` regions shared out by weight."""
    if len(items) == 0 or k == 0:
        return np.zeros(len(items), dtype=int)
    pos = {int(b): i for i, b in enumerate(items)}
    sub_adj = [[pos[n] for n in adj[b] if n in pos] for b in items]
    comp = _components(sub_adj)
    n_comp = comp.max() + 1
    w = weight[items]
    per_comp = _apportion(np.bincount(comp, w), max(k, n_comp))
    labels = np.zeros(len(items), dtype=int)
    offset = 0
    for c in range(n_comp):
        idx = np.flatnonzero(comp == c)
        local = {int(i): j for j, i in enumerate(idx)}
        c_adj = [[local[n] for n in sub_adj[i]] for i in idx]
        kk = min(per_comp[c], len(idx))
        labels[idx] = grow_regions(c_adj, w[idx], xy[items[idx]], kk, rng) + offset
        offset += kk
    return labels


def _components(adj: list[list[int]]) -> np.ndarray:
    """Connected component label of each item."""
    comp = np.full(len(adj), -1)
    c = 0
    for start in range(len(adj)):
        if comp[start] >= 0:
            continue
        stack = [start]
        comp[start] = c
        while stack:
            v = stack.pop()
            for nb in adj[v]:
                if comp[nb] < 0:
                    comp[nb] = c
                    stack.append(nb)
        c += 1
    return comp


def _order_labels(labels: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Renumber regions in reading order of their centres (north to south, then west to
    east in bands), so codes run across the map the way people expect."""
    k = labels.max() + 1
    cx = np.bincount(labels, xy[:, 0], minlength=k) / np.bincount(labels, minlength=k)
    cy = np.bincount(labels, xy[:, 1], minlength=k) / np.bincount(labels, minlength=k)
    band = np.floor((cy.max() - cy) / max(np.ptp(cy) / max(np.sqrt(k), 1), 1e-9))
    order = np.lexsort((cx, band))
    rank = np.empty(k, dtype=int)
    rank[order] = np.arange(k)
    return rank[labels]


def _grid_adjacency(
    blocks: np.ndarray, label: np.ndarray, block_adj: list[list[int]], n: int
) -> list[list[int]]:
    """Grids sharing a road edge (within one street)."""
    adj: list[set[int]] = [set() for _ in range(n)]
    for b in blocks:
        for nb in block_adj[b]:
            lb, ln = label[b], label[nb]
            if ln >= 0 and ln != lb:
                adj[lb].add(int(ln))
    return [sorted(a) for a in adj]
