"""Street geometry in metres: a road lattice, the blocks between the roads, the roads.

Why a lattice: real urban blocks are the faces of a road network. Nodes of a regular
lattice are jittered and passed through a smooth warp, so roads meander and blocks are
irregular quadrilaterals, while every road edge is computed once and shared bit for bit by
the two blocks on its sides. Unions of blocks (grids, communities, streets) are then exact:
no gaps, no slivers. Work is in the metric CRS (EPSG:4549); :mod:`loaders.demo.crs`
reprojects at the end.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass

import numpy as np
import shapely

from loaders.demo import names

#: Number of sine harmonics shaping the outline of the area.
OUTLINE_HARMONICS = 4


@dataclass
class Layout:
    """Road network and blocks of the generated area (coordinates in metres).

    Attributes
    ----------
    edge_nodes
        ``(E, 2)`` node ids of each lattice edge, lower id first.
    edge_coords
        ``(E, 3, 2)`` start, mid and end vertex of each edge (from ``edge_nodes[:, 0]``).
    edge_line
        Index of the road (lattice line) each edge belongs to.
    edge_pos
        Position of the edge along its road (lattice index), for house numbering.
    node_xy
        ``(N, 2)`` node positions.
    block_halfedges
        Per block, ``(k, 2)`` array of ``(edge id, reversed)`` in counter-clockwise order.
    block_poly
        Block polygons (shapely, counter-clockwise shell).
    block_adj
        Per block, the ids of blocks sharing a road edge with it.
    block_radius
        Distance of each block from the centre as a share of the outline radius there.
    road_name, road_kind
        Name and kind (main / secondary / lane) of each lattice line.
    road_edges
        Ids of the edges that bound at least one block: the road segments.
    """

    edge_nodes: np.ndarray
    edge_coords: np.ndarray
    edge_line: np.ndarray
    edge_pos: np.ndarray
    node_xy: np.ndarray
    block_halfedges: list[np.ndarray]
    block_poly: np.ndarray
    block_adj: list[list[int]]
    block_radius: np.ndarray
    road_name: list[str]
    road_kind: list[str]
    road_edges: np.ndarray

    @property
    def n_blocks(self) -> int:
        """Number of blocks."""
        return len(self.block_poly)

    def halfedge_coords(self, halfedges: np.ndarray) -> np.ndarray:
        """``(k, 3, 2)`` vertices of half-edges, oriented as walked."""
        coords = self.edge_coords[halfedges[:, 0]]
        rev = halfedges[:, 1].astype(bool)
        coords[rev] = coords[rev, ::-1]
        return coords


def build_layout(cfg: dict, origin: tuple[float, float], rng: np.random.Generator) -> Layout:
    """Generate the lattice, select the quads inside an irregular outline, merge some into
    larger blocks and return the :class:`Layout`.

    Parameters
    ----------
    cfg
        The profile settings (``quads``, ``block_spacing_m``, ``node_jitter``…).
    origin
        Metric coordinates of the area's centre.
    rng
        The shared random generator.
    """
    spacing = cfg["block_spacing_m"]
    radius_cells = np.sqrt(cfg["quads"] / np.pi) * (1 + cfg["blob_roughness"])
    n = int(np.ceil(2 * radius_cells)) + 4  # quads per side
    jitter = rng.uniform(-1, 1, (n + 1, n + 1, 2)) * cfg["node_jitter"] * spacing
    phases = rng.uniform(0, 2 * np.pi, 2)
    node_xy = _node_positions(n, spacing, origin, jitter, phases, cfg)
    inside, radius = _outline_mask(n, radius_cells, cfg, rng)
    edge_nodes, edge_line, edge_pos = _lattice_edges(n)
    edge_coords = _edge_coords(edge_nodes, n, spacing, origin, (node_xy, jitter, phases), cfg, rng)
    quads = [tuple(q) for q in np.argwhere(inside)]
    groups = _merge_quads(inside, quads, cfg["merge_share"], rng)
    halfedges = [_block_ring([_quad_halfedges(q, n) for q in g], edge_nodes) for g in groups]
    polys = np.array([_ring_polygon(h, edge_coords) for h in halfedges], dtype=object)
    adj, used = _block_adjacency(halfedges, len(edge_nodes))
    block_radius = np.array([np.mean([radius[q] for q in g]) for g in groups])
    kinds = [_road_kind(i % (n + 1), cfg) for i in range(2 * (n + 1))]
    return Layout(
        edge_nodes=edge_nodes,
        edge_coords=edge_coords,
        edge_line=edge_line,
        edge_pos=edge_pos,
        node_xy=node_xy.reshape(-1, 2),
        block_halfedges=halfedges,
        block_poly=polys,
        block_adj=adj,
        block_radius=block_radius,
        road_name=names.road_names(kinds, rng),
        road_kind=kinds,
        road_edges=np.flatnonzero(used),
    )


def _warp(xy: np.ndarray, spacing: float, cfg: dict, phases: np.ndarray) -> np.ndarray:
    """Smooth displacement (a diffeomorphism while the gradient stays below 1) that bends
    straight lattice lines into gently curving roads."""
    wavelength = cfg["warp_wavelength_blocks"] * spacing
    amp = cfg["warp_gradient"] * wavelength / (2 * np.pi)
    k = 2 * np.pi / wavelength
    out = xy.copy()
    out[..., 0] += amp * np.sin(k * xy[..., 1] + phases[0])
    out[..., 1] += amp * np.sin(k * xy[..., 0] + phases[1])
    return out


def _node_positions(
    n: int,
    spacing: float,
    origin: tuple[float, float],
    jitter: np.ndarray,
    phases: np.ndarray,
    cfg: dict,
) -> np.ndarray:
    """``(n+1, n+1, 2)`` node positions: lattice plus jitter, warped, moved to ``origin``."""
    ij = np.stack(np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij"), axis=-1)
    return _warp((ij - n / 2) * spacing + jitter, spacing, cfg, phases) + np.asarray(origin)


def _outline_mask(
    n: int, radius_cells: float, cfg: dict, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Quads whose centre lies in an irregular star-shaped outline (holes filled, largest
    4-connected piece kept), and each quad's radius as a share of the outline there."""
    c = (np.arange(n) + 0.5) - n / 2
    x, y = np.meshgrid(c, c, indexing="ij")
    theta = np.arctan2(y, x)
    k = np.arange(2, 2 + OUTLINE_HARMONICS)
    amps = cfg["blob_roughness"] * rng.uniform(0.3, 1.0, OUTLINE_HARMONICS) / np.sqrt(k - 1)
    phases = rng.uniform(0, 2 * np.pi, OUTLINE_HARMONICS)
    r_out = (
        radius_cells
        / (1 + cfg["blob_roughness"])
        * (1 + np.sum(amps * np.cos(k * theta[..., None] + phases), axis=-1))
    )
    radius = np.hypot(x, y) / r_out
    inside = radius <= 1.0
    inside = _largest_component(_fill_holes(inside))
    return inside, radius


def _neighbours4(i: int, j: int, shape: tuple[int, int]):
    for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        a, b = i + di, j + dj
        if 0 <= a < shape[0] and 0 <= b < shape[1]:
            yield a, b


def _flood(mask: np.ndarray, starts: list[tuple[int, int]]) -> np.ndarray:
    """Cells of ``mask`` 4-connected to ``starts``."""
    seen = np.zeros_like(mask)
    queue = deque(s for s in starts if mask[s])
    for s in queue:
        seen[s] = True
    while queue:
        cell = queue.popleft()
        for nb in _neighbours4(*cell, mask.shape):
            if mask[nb] and not seen[nb]:
                seen[nb] = True
                queue.append(nb)
    return seen


def _fill_holes(inside: np.ndarray) -> np.ndarray:
    """Include every outside cell not connected to the lattice border."""
    h, w = inside.shape
    border = [(i, j) for i in range(h) for j in (0, w - 1)] + [
        (i, j) for i in (0, h - 1) for j in range(w)
    ]
    return ~_flood(~inside, border)


def _largest_component(inside: np.ndarray) -> np.ndarray:
    """The largest 4-connected piece of ``inside``."""
    best = np.zeros_like(inside)
    left = inside.copy()
    while left.any():
        start = tuple(np.argwhere(left)[0])
        comp = _flood(left, [start])
        left &= ~comp
        if comp.sum() > best.sum():
            best = comp
    return best


def _lattice_edges(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All lattice edges: horizontal ones first (line = row j), then vertical ones
    (line = n + 1 + column i); with each edge's position along its line."""
    ids = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    h = np.stack([ids[:-1, :].ravel(), ids[1:, :].ravel()], axis=1)
    h_line = np.broadcast_to(np.arange(n + 1), (n, n + 1)).ravel()
    h_pos = np.repeat(np.arange(n), n + 1)
    v = np.stack([ids[:, :-1].ravel(), ids[:, 1:].ravel()], axis=1)
    v_line = n + 1 + np.repeat(np.arange(n + 1), n)
    v_pos = np.tile(np.arange(n), n + 1)
    return (
        np.vstack([h, v]),
        np.concatenate([h_line, v_line]),
        np.concatenate([h_pos, v_pos]),
    )


def _edge_coords(
    edge_nodes: np.ndarray,
    n: int,
    spacing: float,
    origin: tuple[float, float],
    nodes: tuple[np.ndarray, np.ndarray, np.ndarray],
    cfg: dict,
    rng: np.random.Generator,
) -> np.ndarray:
    """Start, mid and end vertex of each edge; the mid vertex follows the warp (so long
    roads curve) plus a small sideways wiggle. ``nodes`` is (positions, jitter, phases)."""
    node_xy, jit, phases = nodes
    flat = node_xy.reshape(-1, 2)
    a, b = flat[edge_nodes[:, 0]], flat[edge_nodes[:, 1]]
    ia = np.stack(np.divmod(edge_nodes[:, 0], n + 1), axis=1)
    ib = np.stack(np.divmod(edge_nodes[:, 1], n + 1), axis=1)
    mid_jitter = (jit[ia[:, 0], ia[:, 1]] + jit[ib[:, 0], ib[:, 1]]) / 2
    mid_base = ((ia + ib) / 2 - n / 2) * spacing + mid_jitter
    mid = _warp(mid_base, spacing, cfg, phases) + np.asarray(origin)
    d = b - a
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1) / np.linalg.norm(d, axis=1, keepdims=True)
    mid = mid + normal * rng.uniform(-1, 1, (len(d), 1)) * cfg["lane_wiggle_m"]
    return np.stack([a, mid, b], axis=1)


def _quad_halfedges(q: tuple[int, int], n: int) -> np.ndarray:
    """Counter-clockwise half-edges ``(edge id, reversed)`` of quad ``q = (i, j)``."""
    i, j = q
    n_h = n * (n + 1)
    bottom = i * (n + 1) + j
    top = i * (n + 1) + j + 1
    left = n_h + i * n + j
    right = n_h + (i + 1) * n + j
    return np.array([[bottom, 0], [right, 0], [top, 1], [left, 1]])


def _merge_quads(
    inside: np.ndarray, quads: list[tuple[int, int]], share: float, rng: np.random.Generator
) -> list[list[tuple[int, int]]]:
    """Group quads into blocks: most alone, ``share`` of them paired with a neighbour."""
    owner: dict[tuple[int, int], int] = {}
    groups: list[list[tuple[int, int]]] = []
    for k in rng.permutation(len(quads)):
        q = quads[k]
        if q in owner:
            continue
        mates = [nb for nb in _neighbours4(*q, inside.shape) if inside[nb] and nb not in owner]
        group = [q]
        if mates and rng.random() < share:
            group.append(mates[rng.integers(len(mates))])
        for member in group:
            owner[member] = len(groups)
        groups.append(group)
    return groups


def _block_ring(parts: list[np.ndarray], edge_nodes: np.ndarray) -> np.ndarray:
    """Boundary half-edges of a union of quads, chained counter-clockwise (edges shared by
    two member quads are interior and dropped)."""
    hes = np.vstack(parts)
    ids, counts = np.unique(hes[:, 0], return_counts=True)
    keep = hes[np.isin(hes[:, 0], ids[counts == 1])]
    start = edge_nodes[keep[:, 0], keep[:, 1]]
    by_start = {int(s): k for k, s in enumerate(start)}
    order = [0]
    for _ in range(len(keep) - 1):
        e, rev = keep[order[-1]]
        end = int(edge_nodes[e, 1 - rev])
        order.append(by_start[end])
    return keep[order]


def _ring_polygon(halfedges: np.ndarray, edge_coords: np.ndarray) -> shapely.Polygon:
    coords = edge_coords[halfedges[:, 0]]
    rev = halfedges[:, 1].astype(bool)
    coords[rev] = coords[rev, ::-1]
    ring = coords[:, :2].reshape(-1, 2)
    return shapely.Polygon(np.vstack([ring, ring[:1]]))


def _block_adjacency(
    halfedges: list[np.ndarray], n_edges: int
) -> tuple[list[list[int]], np.ndarray]:
    """Blocks sharing an edge, and a mask of the edges that bound any block."""
    first = np.full(n_edges, -1)
    used = np.zeros(n_edges, dtype=bool)
    adj: list[list[int]] = [[] for _ in halfedges]
    for b, hes in enumerate(halfedges):
        for e in hes[:, 0]:
            used[e] = True
            other = first[e]
            if other < 0:
                first[e] = b
            elif other != b:
                adj[b].append(int(other))
                adj[int(other)].append(b)
    return [sorted(set(a)) for a in adj], used


def _road_kind(line: int, cfg: dict) -> str:
    if line % cfg["main_road_every"] == 0:
        return "main"
    if line % cfg["secondary_road_every"] == 0:
        return "secondary"
    return "lane"


def village_blocks(
    layout: Layout, share: float, n_zones: int, rng: np.random.Generator
) -> np.ndarray:
    """Mask of the blocks that are villages: ``n_zones`` contiguous patches on the outskirts,
    ``share`` of all blocks in total, each grown from an outer block by nearest-first
    search on the block adjacency graph.

    Villages sit at the edge of the built-up area, where farmland meets the town.
    """
    n = layout.n_blocks
    target = round(share * n)
    village = np.zeros(n, dtype=bool)
    if target == 0:
        return village
    xy = shapely.get_coordinates(shapely.centroid(layout.block_poly))
    outer = np.flatnonzero(layout.block_radius >= np.quantile(layout.block_radius, 0.9))
    seeds = [int(rng.choice(outer))]
    for _ in range(n_zones - 1):
        d = np.min(np.hypot(*(xy[outer, None, :] - xy[seeds][None, :, :]).transpose(2, 0, 1)), 1)
        seeds.append(int(outer[np.argmax(d)]))
    per_zone = np.diff(np.linspace(0, target, n_zones + 1).round().astype(int))
    for seed, size in zip(seeds, per_zone, strict=True):
        heap = [(0.0, seed)]
        taken = 0
        while heap and taken < size:
            _, b = heapq.heappop(heap)
            if village[b]:
                continue
            village[b] = True
            taken += 1
            for nb in layout.block_adj[b]:
                if not village[nb]:
                    heapq.heappush(heap, (float(np.hypot(*(xy[nb] - xy[seed]))), nb))
    return village
