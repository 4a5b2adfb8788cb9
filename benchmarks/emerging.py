"""Benchmark: emerging hot spots over ~20,000 H3 hexagons and 36 monthly bins from
1,000,000 incidents, beside the straightforward version.

    .venv/bin/python benchmarks/emerging.py [--points 1000000] [--cells 20000] [--bins 36]
                                            [--bin month|week] [--seed 1]

Input: the square district of ``benchmarks/hotspots.py`` (``--cells`` resolution-9 cells
near 36.3°N 120.4°E) and ``--points`` random incidents in it over ``--bins`` bins ending
2026-11-21: a uniform background and 40 Gaussian clusters, each with its own time profile
(steady, rising, fading, or switched on late). Generated in memory; nothing is written.

1. **ours** (``geo.emerging``): cells and bins with H3's C API and ``searchsorted``,
   Gi* slice by slice (:func:`geo.emerging.gi_star_cube`), BH over the cube, vectorised
   Mann-Kendall, patterns; the whole result (GeoDataFrame and per-bin series) built.
2. **straightforward**: the same cube, Gi* with :func:`geo.hotspots.gi_star` on the
   sparse block adjacency of the whole cube (:func:`geo.emerging.space_time_adjacency`),
   and ``pymannkendall.original_test`` called once per hexagon.

It prints each stage, the totals, the ratio, peak memory, and the agreement (max |z|
difference of Gi* and of the trend).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd
import pymannkendall

from benchmarks.hotspots import district
from geo import units as gu
from geo.emerging import (
    bin_edges,
    emerging_for_cube,
    gi_star_cube,
    hex_cube_from_points,
    local_instant,
    mann_kendall,
    space_time_adjacency,
)
from geo.hotspots import gi_star


def incidents(
    area: object, n: int, edges: tuple[pd.Timestamp, ...], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` points in ``area``'s bounds with report times in the bins: 70 % uniform, 30 %
    in 40 clusters (σ ≈ 150 m) whose weight over time is flat, rising, falling or late."""
    minx, miny, maxx, maxy = area.bounds  # type: ignore[attr-defined]
    t0, t1 = edges[0].timestamp(), edges[-1].timestamp()
    n_bg = int(0.7 * n)
    lon = rng.uniform(minx, maxx, n_bg)
    lat = rng.uniform(miny, maxy, n_bg)
    t = rng.uniform(t0, t1, n_bg)
    per = (n - n_bg) // 40
    parts_lon, parts_lat, parts_t = [lon], [lat], [t]
    for k in range(40):
        cx, cy = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        u = rng.random(per)
        shape = k % 4
        frac = u if shape == 0 else np.sqrt(u) if shape == 1 else 1 - np.sqrt(u)
        if shape == 3:
            frac = 0.8 + 0.2 * u
        parts_lon.append(cx + rng.normal(0, 0.0017, per))
        parts_lat.append(cy + rng.normal(0, 0.00135, per))
        parts_t.append(t0 + frac * (t1 - t0 - 1))
    lon, lat, t = (np.concatenate(p) for p in (parts_lon, parts_lat, parts_t))
    keep = (lon > minx) & (lon < maxx) & (lat > miny) & (lat < maxy)
    return lon[keep], lat[keep], t[keep]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--cells", type=int, default=20_000)
    ap.add_argument("--bins", type=int, default=36)
    ap.add_argument("--bin", choices=("month", "week"), default="month")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    end = local_instant("2026-11-21")
    step = (
        pd.DateOffset(months=args.bins) if args.bin == "month" else pd.DateOffset(weeks=args.bins)
    )
    edges = bin_edges(end - step, end, args.bin)
    area = district(args.cells)
    rng = np.random.default_rng(args.seed)
    lon, lat, t = incidents(area, args.points, edges, rng)
    print(f"{len(lon):,} incidents, {len(edges) - 1} {args.bin}ly bins")

    t_start = time.perf_counter()
    cube = hex_cube_from_points(lon, lat, t, area, edges, 9)
    t_cube = time.perf_counter()
    res = emerging_for_cube(cube, unit="hex", bin=args.bin)
    t_ours = time.perf_counter()
    n = len(cube.units)
    print(f"{n:,} cells × {len(edges) - 1} bins = {cube.counts.size:,} space-time bins")
    print(
        f"ours: cube {t_cube - t_start:.2f} s, analysis {t_ours - t_cube:.2f} s, "
        f"total {t_ours - t_start:.2f} s (peak memory so far {peak_mb():,.0f} MB)"
    )
    print("patterns:", res.units["pattern_key"].value_counts().to_dict())

    spatial = gu.cell_adjacency(cube.cells)  # type: ignore[arg-type]
    s0 = time.perf_counter()
    block = space_time_adjacency(spatial, cube.counts.shape[1], 1)
    s1 = time.perf_counter()
    z_block = gi_star(cube.counts.T.ravel().astype(float), block)
    s2 = time.perf_counter()
    z_series = z_block.reshape(cube.counts.shape[1], n).T
    mk_ref = np.array([pymannkendall.original_test(row).z for row in z_series])
    s3 = time.perf_counter()
    straightforward = s3 - s0
    print(
        f"straightforward: block adjacency {s1 - s0:.2f} s ({block.nnz:,} entries), "
        f"gi_star {s2 - s1:.2f} s, pymannkendall per cell {s3 - s2:.2f} s, total "
        f"{straightforward:.2f} s (peak memory {peak_mb():,.0f} MB)"
    )
    ours_gi = gi_star_cube(cube.counts, spatial, 1)
    ours_mk = mann_kendall(ours_gi).z
    print(
        f"agreement: max |Gi* z diff| {np.max(np.abs(ours_gi - z_series)):.1e}, "
        f"max |trend z diff| {np.max(np.abs(ours_mk - mk_ref)):.1e}"
    )
    print(
        f"ratio straightforward / ours (analysis only): {straightforward / (t_ours - t_cube):.1f}×"
    )


if __name__ == "__main__":
    main()
