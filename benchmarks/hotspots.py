"""Benchmark: Gi* hot spots over ~20,000 H3 hexagons from 1,000,000 incidents, end to end,
beside PySAL's esda on the same input and the way a GIS analyst would write it.

    .venv/bin/python benchmarks/hotspots.py [--points 1000000] [--cells 20000] [--seed 1]
                                            [--permutations 999] [--kde]

Input: a square district near 36.3°N 120.4°E sized to hold ``--cells`` resolution-9 cells
(H3 cells there are ~0.072 km², so ~1,450 km²), and ``--points`` random incidents in it
(a uniform background and 40 Gaussian clusters), generated in memory — nothing is
written to disk or the database. Three ways, same points, same cells:

1. **ours** (``geo.units`` + ``geo.hotspots``): point → cell with H3's C API, counts by
   ``np.unique``, H3 ring-1 contiguity, Gi* with one sparse product, analytic p, BH FDR,
   classes; then the same with the result GeoDataFrame (hexagon polygons) built, which is
   what the dashboard calls.
2. **esda**: ``esda.G_Local(star=True, transform="B")``, analytic only, on our counts and
   the same weights (libpysal ``W`` built from them; its construction timed apart).
3. **straightforward**: points as a GeoDataFrame, hexagon polygons as a GeoDataFrame,
   ``geopandas.sjoin`` + ``groupby`` to count, ``libpysal.weights.Queen.from_dataframe``,
   ``esda.G_Local``, classes from ``p_norm`` with ``scipy.stats.false_discovery_control``.

It prints each stage, the totals, the ratios and the agreement (max |z| difference,
identical classes, identical counts).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import esda
import geopandas as gpd
import h3
import libpysal
import numpy as np
import shapely
from scipy import stats

from geo import units as gu
from geo.hotspots import classify, gi_star, hotspots_for_units, permutation_p
from geo.kde import kde_from_points
from geo.stats import two_sided_p

CENTRE = (120.4, 36.3)  # lon, lat


def district(cells: int, resolution: int = 9) -> shapely.Polygon:
    """A lon/lat square holding about ``cells`` cells of ``resolution`` at the centre."""
    cell_km2 = h3.cell_area(h3.latlng_to_cell(CENTRE[1], CENTRE[0], resolution), unit="km^2")
    side_km = float(np.sqrt(cells * cell_km2))
    dlat = side_km / 111.0
    dlon = side_km / (111.0 * np.cos(np.radians(CENTRE[1])))
    lon, lat = CENTRE
    return shapely.box(lon - dlon / 2, lat - dlat / 2, lon + dlon / 2, lat + dlat / 2)


def incidents(area: shapely.Polygon, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points in the area's bounding box: 80 % uniform, 20 % in 40 Gaussian clusters
    (σ ≈ 150 m); cluster points straying outside are folded back in."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = area.bounds
    n_bg = int(n * 0.8)
    lon = rng.uniform(x0, x1, n)
    lat = rng.uniform(y0, y1, n)
    centres = rng.integers(0, 40, n - n_bg)
    cx = rng.uniform(x0, x1, 40)[centres]
    cy = rng.uniform(y0, y1, 40)[centres]
    lon[n_bg:] = np.clip(cx + rng.normal(0, 0.0017, n - n_bg), x0, x1)
    lat[n_bg:] = np.clip(cy + rng.normal(0, 0.00135, n - n_bg), y0, y1)
    return lon, lat


class Clock:
    """Named stage timings."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = now - self._t
        self._t = now

    @property
    def total(self) -> float:
        return sum(self.stages.values())

    def show(self, title: str) -> None:
        print(f"\n{title}: {self.total:.2f} s")
        for name, sec in self.stages.items():
            print(f"  {name:<44} {sec:7.3f} s")


def ours(lon: np.ndarray, lat: np.ndarray, area: shapely.Polygon) -> tuple[Clock, dict]:
    clock = Clock()
    point_cells = gu.points_to_cells(lon, lat, 9)
    clock.lap("point -> H3 cell (C API, 1 call/point)")
    cells = gu.cells_covering(area, 9)
    clock.lap("cells covering the area (polyfill)")
    counts, outside = gu.count_in_cells(point_cells, cells)
    clock.lap("counts per cell (np.unique)")
    adjacency = gu.cell_adjacency(cells)
    clock.lap("weights: H3 ring-1 contiguity")
    z = gi_star(counts, adjacency)
    clock.lap("Gi* z (sparse product)")
    p = two_sided_p(z)
    bins, _, _ = classify(z, p, fdr=True)
    clock.lap("p, BH FDR, classes")
    return clock, {
        "cells": cells,
        "counts": counts,
        "outside": outside,
        "adjacency": adjacency,
        "z": z,
        "bins": bins,
    }


def ours_with_frame(lon: np.ndarray, lat: np.ndarray, area: shapely.Polygon) -> Clock:
    clock = Clock()
    uc = gu.hex_units_from_points(lon, lat, area, 9)
    clock.lap("units: cells, counts, hexagon polygons")
    hotspots_for_units(uc, unit="hex")
    clock.lap("weights, Gi*, p, FDR, classes, GeoDataFrame")
    return clock


def esda_analytic(counts: np.ndarray, adjacency) -> tuple[Clock, np.ndarray]:
    clock = Clock()
    w = libpysal.weights.WSP(adjacency).to_W(silence_warnings=True)
    clock.lap("libpysal W from the same sparse weights")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = esda.G_Local(counts.astype(float), w, star=True, transform="B", permutations=0)
    clock.lap("esda.G_Local(star=True, transform='B')")
    return clock, g.Zs


def straightforward(
    lon: np.ndarray, lat: np.ndarray, cells: np.ndarray
) -> tuple[Clock, np.ndarray, np.ndarray, np.ndarray]:
    clock = Clock()
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
    clock.lap("points GeoDataFrame")
    return straightforward_frame(points, cells, clock)


def straightforward_frame(
    points: gpd.GeoDataFrame, cells: np.ndarray, clock: Clock
) -> tuple[Clock, np.ndarray, np.ndarray, np.ndarray]:
    """The straightforward version from a points GeoDataFrame (EPSG:4326) on: hexagons,
    sjoin, Queen, G_Local, classes (laps added to ``clock``)."""
    hexes = gpd.GeoDataFrame(
        {"h3": [h3.int_to_str(int(c)) for c in cells]},
        geometry=[
            shapely.Polygon([(x, y) for y, x in h3.cell_to_boundary(h3.int_to_str(int(c)))])
            for c in cells
        ],
        crs=4326,
    )
    clock.lap("hexagon GeoDataFrame (h3 per cell)")
    joined = gpd.sjoin(points, hexes, predicate="within", how="inner")
    counts = joined.groupby("index_right").size().reindex(range(len(hexes)), fill_value=0)
    clock.lap("sjoin points within hexagons + groupby")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = libpysal.weights.Queen.from_dataframe(hexes, use_index=False)
        clock.lap("libpysal Queen.from_dataframe")
        g = esda.G_Local(
            counts.to_numpy().astype(float), w, star=True, transform="B", permutations=0
        )
    clock.lap("esda.G_Local")
    p = np.minimum(1.0, 2.0 * g.p_norm)
    q = stats.false_discovery_control(p, method="bh")
    level = np.select([q <= 0.01, q <= 0.05, q <= 0.10], [3, 2, 1], 0)
    bins = np.sign(g.Zs).astype(int) * level
    clock.lap("classes (scipy FDR)")
    return clock, counts.to_numpy(), g.Zs, bins


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--cells", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--permutations",
        type=int,
        default=999,
        help="also time our permutation test with this many (0: skip)",
    )
    ap.add_argument("--kde", action="store_true", help="also time the kernel density")
    args = ap.parse_args()

    area = district(args.cells)
    lon, lat = incidents(area, args.points, args.seed)
    print(
        f"{args.points:,} incidents, district of ~{args.cells:,} H3 res-9 cells "
        f"({gu.area_km2(area):,.0f} km²); numba installed: "
        f"{__import__('importlib.util').util.find_spec('numba') is not None}"
    )

    ours_clock, out = ours(lon, lat, area)
    ours_clock.show(f"ours, end to end ({len(out['cells']):,} cells)")
    frame_clock = ours_with_frame(lon, lat, area)
    frame_clock.show("ours, as the dashboard calls it (hotspots_for_units + GeoDataFrame)")
    esda_clock, esda_z = esda_analytic(out["counts"], out["adjacency"])
    esda_clock.show("esda on our counts and weights (analytic)")
    base_clock, base_counts, base_z, base_bins = straightforward(lon, lat, out["cells"])
    base_clock.show("straightforward geopandas + libpysal + esda")

    gi_ours = ours_clock.stages["Gi* z (sparse product)"]
    gi_esda = esda_clock.stages["esda.G_Local(star=True, transform='B')"]
    print("\nratios")
    print(f"  straightforward / ours end to end        {base_clock.total / ours_clock.total:8.1f}×")
    print(
        f"  straightforward / ours with GeoDataFrame {base_clock.total / frame_clock.total:8.1f}×"
    )
    print(f"  esda G_Local / our Gi* (statistic only)  {gi_esda / gi_ours:8.1f}×")

    print("\nagreement")
    print(f"  max |z ours − z esda (same input)|       {np.max(np.abs(out['z'] - esda_z)):.2e}")
    same_counts = base_counts == out["counts"]
    print(
        f"  cells whose sjoin count differs          {int((~same_counts).sum())} "
        f"(points on a hexagon edge: planar sjoin vs H3's own assignment)"
    )
    print(f"  points in no cell (ours)                 {out['outside']}")
    print(f"  max |z ours − z straightforward|         {np.max(np.abs(out['z'] - base_z)):.2e}")
    print(f"  classes identical (ours vs straightfwd)  {np.mean(out['bins'] == base_bins):.4%}")
    print(
        f"  hot / cold cells (ours)                  {int((out['bins'] > 0).sum())} / "
        f"{int((out['bins'] < 0).sum())}"
    )

    if args.permutations:
        t0 = time.perf_counter()
        permutation_p(out["counts"], out["adjacency"], permutations=args.permutations, seed=1)
        print(
            f"\nours, permutation p ({args.permutations} permutations): "
            f"{time.perf_counter() - t0:.2f} s (no numba, no compilation)"
        )

    if args.kde:
        t0 = time.perf_counter()
        res = kde_from_points(lon, lat, area, resolution=9)
        print(
            f"ours, kernel density on the same cells (quartic, bandwidth "
            f"{res.params.bandwidth_m:.0f} m by the ArcGIS rule): "
            f"{time.perf_counter() - t0:.2f} s"
        )


if __name__ == "__main__":
    main()
