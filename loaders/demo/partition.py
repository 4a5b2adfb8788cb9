"""Balanced contiguous partitions of an adjacency graph by seeded region growing.

Used three times: blocks into grids, grids into communities and (district profile) blocks
into streets. Each region grows from a seed one neighbouring item at a time, the lightest
region first, taking the free neighbour closest to its seed; regions are therefore
contiguous and compact, and their weights (households) roughly balanced.
"""

from __future__ import annotations

import heapq

import numpy as np


def grow_regions(
    adj: list[list[int]],
    weight: np.ndarray,
    xy: np.ndarray,
    k: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Partition the items of a connected graph into ``k`` contiguous regions.

    Parameters
    ----------
    adj
        Neighbours of each item.
    weight
        Non-negative weight of each item (what is balanced).
    xy
        ``(n, 2)`` item positions, for seed spreading and compactness.
    k
        Number of regions (at most the number of items).
    rng
        The shared random generator (picks the first seed).

    Returns
    -------
    numpy.ndarray
        Region label ``0..k-1`` of each item; label order follows the seeds.
    """
    n = len(adj)
    if not 0 < k <= n:
        raise ValueError(f"cannot split {n} items into {k} regions")
    seeds = _spread_seeds(xy, k, rng)
    label = np.full(n, -1)
    total = np.zeros(k)
    frontier: list[list[tuple[float, int]]] = [[] for _ in range(k)]
    for r, s in enumerate(seeds):
        label[s] = r
        total[r] = weight[s] + 1e-9 * r
    for r, s in enumerate(seeds):
        _push_neighbours(frontier[r], adj, s, label, xy, xy[s])
    active = [(total[r], r) for r in range(k)]
    heapq.heapify(active)
    while active:
        _, r = heapq.heappop(active)
        heap = frontier[r]
        while heap and label[heap[0][1]] >= 0:
            heapq.heappop(heap)
        if not heap:
            continue  # enclosed: every neighbour is taken, it can never grow again
        _, item = heapq.heappop(heap)
        label[item] = r
        total[r] += weight[item]
        _push_neighbours(heap, adj, item, label, xy, xy[seeds[r]])
        heapq.heappush(active, (total[r], r))
    if (label < 0).any():
        raise ValueError("the adjacency graph is not connected")
    return label


def _push_neighbours(
    heap: list[tuple[float, int]],
    adj: list[list[int]],
    item: int,
    label: np.ndarray,
    xy: np.ndarray,
    seed_xy: np.ndarray,
) -> None:
    for nb in adj[item]:
        if label[nb] < 0:
            heapq.heappush(heap, (float(np.hypot(*(xy[nb] - seed_xy))), nb))


def _spread_seeds(xy: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
    """``k`` well-spread items: a k-means++-like farthest-point sampling, then a few Lloyd
    steps snapped to the nearest item so seeds sit inside their future regions."""
    first = int(rng.integers(len(xy)))
    seeds = [first]
    dist = np.hypot(*(xy - xy[first]).T)
    for _ in range(k - 1):
        nxt = int(np.argmax(dist))
        seeds.append(nxt)
        dist = np.minimum(dist, np.hypot(*(xy - xy[nxt]).T))
    centres = xy[seeds]
    for _ in range(LLOYD_STEPS):
        d2 = ((xy[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        near = d2.argmin(1)
        for r in range(k):
            members = xy[near == r]
            if len(members):
                centres[r] = members.mean(0)
    d2 = ((xy[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    chosen: list[int] = []
    taken = np.zeros(len(xy), dtype=bool)
    for r in range(k):
        order = np.argsort(d2[:, r], kind="stable")
        pick = int(order[~taken[order]][0])
        taken[pick] = True
        chosen.append(pick)
    return chosen


#: Lloyd (k-means) iterations applied to the farthest-point seeds.
LLOYD_STEPS = 8
