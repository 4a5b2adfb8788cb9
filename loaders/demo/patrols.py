"""Patrol GPS fixes of the grid workers and the patrol sessions cut from them.

Each working day a worker patrols twice ("一日两巡"), walking the roads around the blocks
of the grid. Routes are built per session on the grid's road graph (a Python loop over
road edges per session); fixes are then sampled, located and perturbed for all sessions at
once with numpy. Planted truth: skipped patrols, blocks whose roads nobody walks, grids
fully walked on every patrol, GPS outliers, impossible jumps and long gaps.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from loaders.demo.geom import locate
from loaders.demo.incidents import DAY, SHANGHAI_OFFSET_S, period_bounds
from loaders.demo.layout import Layout
from loaders.demo.territory import Territory
from store import workcal

#: Session offsets in the concatenated route distance (longer than any route), metres.
ROUTE_STRIDE_M = 1.0e6
#: Fixes this close to a never-visited block are snapped back onto the route, metres.
NEVER_VISITED_CLEARANCE_M = 30.0
#: Error of the impossible jumps, metres.
JUMP_M = (400.0, 1500.0)


@dataclass
class Patrols:
    """``patrol_fix`` and ``patrol`` frames (metric ``x``/``y`` and shapely ``line`` in
    metres until the caller reprojects) and the planted truth."""

    fix: pd.DataFrame
    patrol: pd.DataFrame
    truth: dict


def generate_patrols(
    layout: Layout,
    territory: Territory,
    worker_of_grid: np.ndarray,
    staff_code: np.ndarray,
    cfg: dict,
    rng: np.random.Generator,
) -> Patrols:
    """Fixes and sessions for every grid worker over the profile's patrol period."""
    pc = cfg["patrols"]
    start, _ = period_bounds(
        dt.date.fromisoformat(cfg["period_end"]), cfg["patrol_days"], cfg["timezone"]
    )
    first_day = (start + SHANGHAI_OFFSET_S) // DAY
    days = [
        dt.date(1970, 1, 1) + dt.timedelta(days=int(d))
        for d in range(first_day, first_day + cfg["patrol_days"])
    ]
    workdays = [d for d in days if workcal.is_workday(d)]
    n_grid = len(territory.grid)

    never = _never_visited(layout, territory, pc["never_visited_blocks"], rng)
    avoid = {
        int(v) for b in never for v in layout.edge_nodes[layout.block_halfedges[b][:, 0]].ravel()
    }
    blocks_of = [np.flatnonzero(territory.block_grid == g) for g in range(n_grid)]
    graphs = [_road_graph(layout, blocks_of[g], avoid) for g in range(n_grid)]
    length = np.array([sum(e[2] for e in gr.values()) / 2 for gr in graphs])
    # Grids that lost a road to a never-visited block cannot be walked fully.
    busy = {
        g for g in range(n_grid) if len(graphs[g]) < len(_road_graph(layout, blocks_of[g], set()))
    }
    order = [g for g in np.argsort(length, kind="stable") if g not in busy]
    full = np.zeros(n_grid, dtype=bool)
    full[order[: pc["fully_walked_grids"]]] = True

    # Sessions: grid x working day x slot, minus the skipped ones.
    g_idx, d_idx, slot = (
        a.ravel()
        for a in np.meshgrid(
            np.arange(n_grid), np.arange(len(workdays)), np.arange(2), indexing="ij"
        )
    )
    skip_p = np.full(n_grid, pc["random_skip_share"])
    skippers = rng.choice(np.flatnonzero(~full), size=pc["skipping_workers"], replace=False)
    skip_p[skippers] = pc["skipping_share"]
    skipped = (rng.random(len(g_idx)) < skip_p[g_idx]) & ~full[g_idx]
    skip_truth = [
        {
            "worker": str(staff_code[worker_of_grid[g]]),
            "date": workdays[d].isoformat(),
            "slot": "am" if s == 0 else "pm",
        }
        for g, d, s in zip(g_idx[skipped], d_idx[skipped], slot[skipped], strict=True)
    ]
    g_idx, d_idx, slot = g_idx[~skipped], d_idx[~skipped], slot[~skipped]
    n_s = len(g_idx)

    speed = rng.uniform(*pc["speed_ms"], n_s)
    duration = rng.uniform(*pc["duration_min"], n_s) * 60
    routes = []
    for k in range(n_s):
        g = g_idx[k]
        budget = None if full[g] else duration[k] * speed[k]
        routes.append(_route(graphs[g], layout, budget, rng))
    route_len = np.array([r[-1, 2] for r in routes])
    duration = np.where(full[g_idx], route_len / speed, np.minimum(duration, route_len / speed))

    win = np.where(slot[:, None] == 0, pc["am_start_h"], pc["pm_start_h"])
    local_day = np.array([(workdays[d] - dt.date(1970, 1, 1)).days for d in d_idx])
    t0 = (
        local_day * DAY
        - SHANGHAI_OFFSET_S
        + (rng.uniform(win[:, 0], win[:, 1]) * 3600).astype(np.int64)
    )

    fixes = _sample_fixes(routes, t0, duration, speed, pc, rng)
    sess = fixes["session"]
    # Dropouts (none for the fully walked grids, so their coverage stays complete).
    eligible = ~full[g_idx]
    short = eligible & (rng.random(n_s) < pc["dropout_share"])
    long_gap = eligible & (duration > 40 * 60) & (rng.random(n_s) < pc["long_gap_share"])
    gap_len = np.where(long_gap, rng.uniform(21, 26, n_s), rng.uniform(2, 5, n_s)) * 60
    gap_at = rng.uniform(0.25, 0.6, n_s) * np.maximum(duration - gap_len, 0)
    rel = fixes["t"] - t0[sess]
    drop = (short | long_gap)[sess] & (rel > gap_at[sess]) & (rel < (gap_at + gap_len)[sess])
    fixes = {k: v[~drop] for k, v in fixes.items()}
    sess = fixes["session"]
    x, y, acc, kind = _noise(fixes["cx"], fixes["cy"], pc, rng)
    near_never = np.zeros(len(x), dtype=bool)
    for b in never:
        zone = shapely.buffer(layout.block_poly[b], NEVER_VISITED_CLEARANCE_M)
        near_never |= shapely.contains_xy(zone, x, y)
    x[near_never], y[near_never] = fixes["cx"][near_never], fixes["cy"][near_never]
    kind[near_never] = 0

    worker = worker_of_grid[g_idx][sess]
    grid_of_fix = locate(x, y, territory.grid["poly"].to_numpy())
    codes = territory.grid["code"].to_numpy()
    fix = pd.DataFrame(
        {
            "worker_id": worker,
            "fixed_at": pd.to_datetime(fixes["t"], unit="s", utc=True),
            "accuracy_m": acc.round(1),
            "grid_code": np.where(grid_of_fix >= 0, codes[np.maximum(grid_of_fix, 0)], None),
            "street_code": territory.grid["street_code"].to_numpy()[g_idx][sess],
            "x": x,
            "y": y,
        }
    )
    patrol = _sessions(fix, fixes, g_idx, territory, pc)
    fix = fix.sort_values(["worker_id", "fixed_at"], kind="stable").reset_index(drop=True)
    truth = {
        "skipped": skip_truth,
        "never_visited_blocks": [int(b) for b in never],
        "fully_walked_grids": territory.grid["code"].to_numpy()[full].tolist(),
        "outlier_fixes": int((kind == 1).sum()),
        "jump_fixes": int((kind == 2).sum()),
        "long_gaps": int(long_gap.sum()),
        "sessions_planned": len(skipped),
        "workdays": [d.isoformat() for d in workdays],
    }
    return Patrols(fix, patrol, truth)


def _never_visited(
    layout: Layout, territory: Territory, n: int, rng: np.random.Generator
) -> list[int]:
    """Blocks (in different grids) whose neighbours all lie in the same grid and which
    leave their grid's road graph connected once their corners are avoided."""
    out: list[int] = []
    used: set[int] = set()
    for b in rng.permutation(layout.n_blocks):
        g = territory.block_grid[b]
        if g in used or territory.grid["kind"][g] != "urban":
            continue
        nbs = layout.block_adj[b]
        if len(nbs) < 4 or any(territory.block_grid[nb] != g for nb in nbs):
            continue
        blocks = np.flatnonzero(territory.block_grid == g)
        avoid = set(layout.edge_nodes[layout.block_halfedges[b][:, 0]].ravel().tolist())
        graph = _road_graph(layout, blocks, avoid)
        if graph and _connected(graph):
            out.append(int(b))
            used.add(int(g))
        if len(out) == n:
            break
    return out


def _road_graph(layout: Layout, blocks: np.ndarray, avoid: set[int]) -> dict:
    """Undirected road graph of the given blocks' edges without the ``avoid`` nodes:
    ``{(node, node): (edge id, reversed, length)}`` for both directions."""
    graph: dict[tuple[int, int], tuple[int, int, float]] = {}
    for b in blocks:
        for e, _ in layout.block_halfedges[b]:
            a, c = (int(v) for v in layout.edge_nodes[e])
            if a in avoid or c in avoid:
                continue
            pts = layout.edge_coords[e]
            ln = float(np.sum(np.linalg.norm(np.diff(pts, axis=0), axis=1)))
            graph[(a, c)] = (int(e), 0, ln)
            graph[(c, a)] = (int(e), 1, ln)
    return graph


def _adjacency(graph: dict) -> dict[int, list[int]]:
    adj: dict[int, list[int]] = {}
    for a, c in sorted(graph):
        adj.setdefault(a, []).append(c)
    return adj


def _connected(graph: dict) -> bool:
    adj = _adjacency(graph)
    start = next(iter(adj))
    seen = {start}
    queue = deque([start])
    while queue:
        for nb in adj[queue.popleft()]:
            if nb not in seen:
                seen.add(nb)
                queue.append(nb)
    return len(seen) == len(adj)


def _route(
    graph: dict, layout: Layout, budget: float | None, rng: np.random.Generator
) -> np.ndarray:
    """A walk on the grid's roads: take an unwalked road from the current corner when
    there is one, else go to the nearest corner that has one; stop after ``budget``
    metres, or (``budget`` None) once every road is walked.

    Returns ``(k, 3)`` vertices with the cumulative distance in the last column.
    """
    adj = _adjacency(graph)
    nodes = sorted(adj)
    here = nodes[rng.integers(len(nodes))]
    todo = {tuple(sorted(k)) for k in graph}
    steps: list[tuple[int, int]] = []
    walked = 0.0
    while todo and (budget is None or walked < budget):
        fresh = [nb for nb in adj[here] if tuple(sorted((here, nb))) in todo]
        path = [here, fresh[rng.integers(len(fresh))]] if fresh else _path_to_fresh(adj, here, todo)
        for a, c in itertools.pairwise(path):
            steps.append((a, c))
            todo.discard(tuple(sorted((a, c))))
            walked += graph[(a, c)][2]
        here = path[-1]
    pts = [layout.node_xy[steps[0][0]][None, :]]
    for a, c in steps:
        e, rev, _ = graph[(a, c)]
        coords = layout.edge_coords[e][::-1] if rev else layout.edge_coords[e]
        pts.append(coords[1:])
    xy = np.vstack(pts)
    dist = np.r_[0.0, np.cumsum(np.linalg.norm(np.diff(xy, axis=0), axis=1))]
    return np.column_stack([xy, dist])


def _path_to_fresh(adj: dict[int, list[int]], here: int, todo: set) -> list[int]:
    """Breadth-first path from ``here`` to the nearest corner with an unwalked road."""
    prev = {here: here}
    queue = deque([here])
    while queue:
        v = queue.popleft()
        if any(tuple(sorted((v, nb))) in todo for nb in adj[v]):
            path = [v]
            while path[-1] != here:
                path.append(prev[path[-1]])
            return path[::-1] if len(path) > 1 else [here, here]
        for nb in adj[v]:
            if nb not in prev:
                prev[nb] = v
                queue.append(nb)
    raise ValueError("road graph is not connected")


def _sample_fixes(
    routes: list[np.ndarray],
    t0: np.ndarray,
    duration: np.ndarray,
    speed: np.ndarray,
    pc: dict,
    rng: np.random.Generator,
) -> dict:
    """Fix times every few seconds and the noise-free positions along each route, for
    all sessions at once (routes concatenated with a distance stride per session)."""
    n_s = len(routes)
    lo, hi = pc["fix_interval_s"]
    n_max = (duration / lo).astype(int) + 2
    sess = np.repeat(np.arange(n_s), n_max)
    step = rng.integers(lo, hi + 1, len(sess))
    first = np.r_[0, np.cumsum(n_max)[:-1]]
    step[first] = 0
    c = np.cumsum(step)
    rel = c - np.repeat(c[first], n_max)
    keep = rel <= duration[sess]
    sess, rel = sess[keep], rel[keep]
    offset = np.arange(n_s) * ROUTE_STRIDE_M
    xp = np.concatenate([r[:, 2] + offset[k] for k, r in enumerate(routes)])
    fx = np.concatenate([r[:, 0] for r in routes])
    fy = np.concatenate([r[:, 1] for r in routes])
    route_len = np.array([r[-1, 2] for r in routes])
    d = np.minimum(rel * speed[sess], route_len[sess]) + offset[sess]
    return {
        "session": sess,
        "t": t0[sess] + rel,
        "cx": np.interp(d, xp, fx),
        "cy": np.interp(d, xp, fy),
    }


def _noise(
    cx: np.ndarray, cy: np.ndarray, pc: dict, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """GPS error: usual fixes within a few metres (accuracy 3-20 m), a few outliers with
    accuracy > 50 m, and rare impossible jumps that claim good accuracy. ``kind``: 0 usual,
    1 outlier, 2 jump."""
    n = len(cx)
    lo, hi = pc["accuracy_m"]
    acc = np.clip(rng.lognormal(np.log(6.0), 0.4, n), lo, hi)
    kind = np.zeros(n, dtype=int)
    u = rng.random(n)
    kind[u < pc["outlier_share"]] = 1
    kind[u > 1 - pc["jump_share"]] = 2
    acc = np.where(kind == 1, rng.uniform(55, 150, n), acc)
    sigma = np.where(kind == 1, acc / 1.5, acc / 2.5)
    x = cx + rng.normal(0, 1, n) * sigma
    y = cy + rng.normal(0, 1, n) * sigma
    ang = rng.uniform(0, 2 * np.pi, n)
    dist = rng.uniform(*JUMP_M, n)
    jump = kind == 2
    x[jump] = cx[jump] + np.cos(ang[jump]) * dist[jump]
    y[jump] = cy[jump] + np.sin(ang[jump]) * dist[jump]
    return x, y, acc, kind


def _sessions(
    fix: pd.DataFrame, fixes: dict, g_idx: np.ndarray, territory: Territory, pc: dict
) -> pd.DataFrame:
    """Patrol rows: fixes cut into sessions at a new planned patrol or a gap longer than
    ``session_gap_min``; the track is the noise-free route through the session's fixes."""
    sess = fixes["session"]
    t = fixes["t"]
    new = np.r_[True, (np.diff(sess) != 0) | (np.diff(t) > pc["session_gap_min"] * 60)]
    seg = np.cumsum(new) - 1
    n_fix = np.bincount(seg)
    ok = n_fix[seg] >= 2
    seg_ok = np.unique(seg[ok])
    first = np.flatnonzero(new)
    last = np.r_[first[1:], len(seg)] - 1
    lines = shapely.linestrings(
        np.column_stack([fixes["cx"][ok], fixes["cy"][ok]]),
        indices=np.searchsorted(seg_ok, seg[ok]),
    )
    s_sess = sess[first][seg_ok]
    return pd.DataFrame(
        {
            "id": np.arange(1, len(seg_ok) + 1),
            "worker_id": fix["worker_id"].to_numpy()[first][seg_ok],
            "started_at": pd.to_datetime(t[first][seg_ok], unit="s", utc=True),
            "ended_at": pd.to_datetime(t[last][seg_ok], unit="s", utc=True),
            "n_fixes": n_fix[seg_ok],
            "length_m": shapely.length(lines).round(1),
            "grid_code": territory.grid["code"].to_numpy()[g_idx[s_sess]],
            "street_code": territory.grid["street_code"].to_numpy()[g_idx[s_sess]],
            "line": lines,
        }
    )
