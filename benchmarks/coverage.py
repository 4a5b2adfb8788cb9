"""Benchmark: one day's patrol coverage for the whole district (every worker's fixes,
~200,000 buildings), against the straightforward geopandas way on the same data in the same
run; and the building test done three ways (the track index we use, a shapely STRtree,
PostGIS ``ST_DWithin`` on a GiST index) — the measurement behind the choice.

    .venv/bin/python benchmarks/coverage.py [--scale district|street] [--day YYYY-MM-DD]
                                            [--repeat 2] [--no-baseline]
                                            [--regenerate] [--drop]

Data: the demo generator at ``--scale`` (district: 12 streets, 1,500 grids, ~200,000
buildings, 7 days of fixes, ~1 million a working day; about 3 minutes to generate and 2 to
write), of which only the tables coverage reads are written (jurisdiction, staff, grids,
assignments, buildings, roads, fixes) into the scratch database
``gridone_bench_coverage_<scale>``; it is kept for the next run (``--regenerate``
rebuilds it, ``--drop`` removes it at the end). ``--day`` defaults to the last working day
with fixes.

Printed: ``coverage_day`` wall time (each repeat; the first starts with a cold process),
the straightforward version's time and the ratio, how far the two agree, the three
building tests, and peak memory.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from sqlalchemy import Connection, Engine, text

from benchmarks.bench_db import drop_database, open_database
from geo.coverage import CoverageParams, coverage_day, day_tracks, rule_met, scope_epsg
from store import coverage_sql, workcal
from store.settings import get_settings

#: The tables coverage reads, in foreign-key order.
TABLES = ("admin_unit", "staff", "grid", "staff_assignment", "building", "road", "patrol_fix")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(scale: str, seed: int, *, regenerate: bool) -> tuple[Engine, str]:
    """Engine on the benchmark database holding the demo's coverage tables at ``scale``;
    and the database name."""
    from loaders.demo import generate
    from store.write import copy_frame, deferred_indexes

    name = f"gridone_bench_coverage_{scale}"
    engine = open_database(name, regenerate=regenerate)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM building")).scalar_one()
    if n == 0:
        t0 = time.perf_counter()
        data = generate(seed, scale)
        t_gen = time.perf_counter() - t0
        t0 = time.perf_counter()
        with engine.begin() as conn:
            fx = data.patrol_fix
            conn.execute(
                text("SELECT ensure_patrol_fix_partitions(:lo, :hi)"),
                {"lo": fx.fixed_at.min().to_pydatetime(), "hi": fx.fixed_at.max().to_pydatetime()},
            )
            with deferred_indexes(conn, list(TABLES)):
                for table in TABLES:
                    copy_frame(conn, table, getattr(data, table))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
        print(
            f"generated the {scale} demo in {t_gen:.0f} s and wrote its coverage tables in "
            f"{time.perf_counter() - t0:.0f} s"
        )
        del data
    return engine, name


def last_workday(conn: Connection, tz: str) -> dt.date:
    """The last working day that has fixes."""
    last = conn.execute(text("SELECT max(fixed_at) FROM patrol_fix")).scalar_one()
    day = last.astimezone(ZoneInfo(tz)).date()
    while not workcal.is_workday(day):
        day -= dt.timedelta(days=1)
    return day


# --- the straightforward version --------------------------------------------------------------
# What a GIS analyst would write: everything into GeoDataFrames, the speed filter against
# the previous raw fix (pandas shift), one LineString per session, buffers, sjoin, a loop
# over the grids. Its SQL is the analyst's own plain SELECTs (bound parameters still).


def straightforward(conn: Connection, day: dt.date, epsg: int, tz: str) -> dict[str, pd.DataFrame]:
    p = CoverageParams()
    start = dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(tz))
    fixes = gpd.read_postgis(
        text(
            "SELECT worker_id, fixed_at, accuracy_m, geom FROM patrol_fix "
            "WHERE fixed_at >= :t0 AND fixed_at < :t1"
        ),
        conn,
        geom_col="geom",
        params={"t0": start, "t1": start + dt.timedelta(days=1)},
    ).to_crs(epsg)
    fixes = fixes[~(fixes["accuracy_m"] > p.max_accuracy_m)]
    fixes = fixes.sort_values(["worker_id", "fixed_at"]).reset_index(drop=True)
    fixes["x"], fixes["y"] = fixes.geometry.x, fixes.geometry.y
    by = fixes.groupby("worker_id")
    secs = by["fixed_at"].diff().dt.total_seconds()
    speed = np.hypot(by["x"].diff(), by["y"].diff()) / secs * 3.6
    fixes = fixes[~(speed > p.max_speed_kmh)].reset_index(drop=True)
    by = fixes.groupby("worker_id")
    gap = by["fixed_at"].diff().dt.total_seconds() > p.session_gap_min * 60
    fixes["session"] = gap.astype(int).groupby(fixes["worker_id"]).cumsum()
    tracks = fixes.groupby(["worker_id", "session"]).agg(
        start=("fixed_at", "min"),
        n=("fixed_at", "size"),
        geometry=(
            "geom",
            lambda g: shapely.LineString(np.c_[g.x, g.y]) if len(g) > 1 else g.iloc[0],
        ),
    )
    tracks = gpd.GeoDataFrame(tracks.reset_index(), geometry="geometry", crs=epsg)

    buildings = gpd.read_postgis(
        text("SELECT id, grid_code, geom FROM building"), conn, geom_col="geom"
    ).to_crs(epsg)
    near = gpd.sjoin(
        buildings,
        gpd.GeoDataFrame(geometry=tracks.buffer(p.building_radius_m)),
        predicate="intersects",
    )
    buildings["passed"] = buildings["id"].isin(near["id"])

    grids = gpd.read_postgis(
        text("SELECT code, worker_id, geom FROM grid"), conn, geom_col="geom"
    ).to_crs(epsg)
    roads = gpd.read_postgis(text("SELECT id, geom FROM road"), conn, geom_col="geom").to_crs(epsg)
    walked20 = gpd.GeoSeries(tracks.buffer(p.road_radius_m), crs=epsg)
    rows = []
    for g in grids.itertuples():
        b = buildings[buildings["grid_code"] == g.code]
        road = roads.clip(g.geom.buffer(p.road_grid_tolerance_m))
        local = walked20.iloc[walked20.sindex.query(g.geom, predicate="intersects")]
        walked = road.intersection(local.union_all()).length.sum() if len(local) else 0.0
        # the rule: the grid worker's sessions, minutes with both ends of a step inside
        wf = fixes[fixes["worker_id"] == g.worker_id]
        inside = wf.within(g.geom.buffer(p.grid_tolerance_m)).to_numpy()
        same = (wf["session"].to_numpy()[1:] == wf["session"].to_numpy()[:-1]) if len(wf) else []
        secs = np.diff(wf["fixed_at"].to_numpy()).astype("timedelta64[s]").astype(float)
        w = (inside[1:].astype(float) + inside[:-1]) / 2 * secs * same
        mins = (
            pd.Series(w / 60).groupby(wf["session"].to_numpy()[1:]).sum()
            if len(wf) > 1
            else pd.Series()
        )
        own = tracks[(tracks["worker_id"] == g.worker_id) & (tracks["n"] >= 2)].set_index("session")
        starts = [
            own.loc[s, "start"].timestamp() / 3600
            for s, m in mins.items()
            if m >= p.rule.min_inside_min and s in own.index
        ]
        rows.append(
            {
                "grid_code": g.code,
                "rule_met": rule_met(starts, p.rule),
                "building_share": b["passed"].mean() if len(b) else np.nan,
                "road_share": walked / road.length.sum() if road.length.sum() > 0 else np.nan,
            }
        )
    return {"grid_day": pd.DataFrame(rows), "buildings": buildings[["id", "passed"]]}


# --- the building test three ways -----------------------------------------------------------


def building_tests(engine: Engine, day: dt.date, tz: str) -> None:
    with engine.connect() as conn:
        epsg = scope_epsg(conn)
        tracks = day_tracks(conn, day, epsg, timezone=tz)
        bld = coverage_sql.buildings(conn)
    to_metric = pyproj.Transformer.from_crs(4490, epsg, always_xy=True)
    xy = np.column_stack(
        to_metric.transform(bld["lon"].to_numpy(float), bld["lat"].to_numpy(float))
    )
    ids = bld["building_id"].to_numpy()
    pieces, piece_t = tracks.index.pieces, tracks.index.piece_t
    n_p = len(pieces)
    print(f"building test, {len(xy):,} buildings × {n_p:,} track pieces, 50 m:")

    t0 = time.perf_counter()
    ours = tracks.index.last_time(xy, 50.0)
    t_ours = time.perf_counter() - t0
    print(f"  track index (k-d tree + exact segment distance)  {t_ours:6.2f} s")

    t0 = time.perf_counter()
    tree = shapely.STRtree(shapely.linestrings(pieces))
    bi, si = tree.query(shapely.points(xy), predicate="dwithin", distance=50.0)
    best = np.full(len(xy), -np.inf)
    np.maximum.at(best, bi, piece_t[si])
    t_str = time.perf_counter() - t0
    same = np.array_equal(np.where(np.isinf(best), np.nan, best), ours, equal_nan=True)
    print(f"  shapely STRtree dwithin                          {t_str:6.2f} s   same: {same}")

    t0 = time.perf_counter()
    with engine.begin() as conn:
        pg = coverage_sql.buildings_passed_postgis(conn, pieces.reshape(-1, 4), piece_t, epsg, 50.0)
    t_pg = time.perf_counter() - t0
    pg_t = pd.Series(pg["last_t"].to_numpy(float), index=pg["building_id"]).reindex(ids)
    same = np.array_equal(pg_t.to_numpy(float), ours, equal_nan=True)
    print(f"  PostGIS temp table + GiST + ST_DWithin           {t_pg:6.2f} s   same: {same}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=["street", "district"], default="district")
    ap.add_argument("--seed", type=int, default=get_settings().demo_seed)
    ap.add_argument("--day", type=dt.date.fromisoformat, default=None)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--drop", action="store_true")
    args = ap.parse_args()
    tz = get_settings().timezone

    engine, name = prepare(args.scale, args.seed, regenerate=args.regenerate)
    try:
        with engine.connect() as conn:
            day = args.day or last_workday(conn, tz)
            counts = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM building), (SELECT count(*) FROM grid), "
                    "(SELECT count(*) FROM patrol_fix WHERE fixed_at >= :t0 AND fixed_at < :t1)"
                ),
                {
                    "t0": dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(tz)),
                    "t1": dt.datetime.combine(day, dt.time(0), tzinfo=ZoneInfo(tz))
                    + dt.timedelta(days=1),
                },
            ).one()
        print(
            f"scale {args.scale}, day {day}: {counts[2]:,} fixes, {counts[0]:,} buildings, "
            f"{counts[1]:,} grids"
        )
        times = []
        result = None
        for _ in range(max(1, args.repeat)):
            t0 = time.perf_counter()
            with engine.connect() as conn:
                result = coverage_day(conn, day, timezone=tz)
            times.append(time.perf_counter() - t0)
        assert result is not None
        g = result.grid_day
        print(
            "coverage_day (ours):        "
            + "  ".join(f"{t:6.2f} s" for t in times)
            + f"   peak RSS {_peak_rss_mb():,.0f} MB"
        )
        print(
            f"  {len(result.sessions):,} sessions, rule met in {g['rule_met'].mean():.1%} of "
            f"grids, buildings passed {result.building_last_passed['passed'].mean():.1%}, "
            f"mean road share {g['road_share'].mean():.1%}"
        )
        if not args.no_baseline:
            t0 = time.perf_counter()
            with engine.connect() as conn:
                base = straightforward(conn, day, result.epsg, tz)
            t_base = time.perf_counter() - t0
            print(f"straightforward (geopandas): {t_base:6.2f} s")
            print(
                f"  ratio: ours is {t_base / times[0]:.1f}x faster (first run), "
                f"{t_base / min(times):.1f}x (best run)"
            )
            bg = base["grid_day"].set_index("grid_code")
            og = g.set_index("grid_code").loc[bg.index]
            bb = base["buildings"].set_index("id")["passed"]
            ob = result.building_last_passed.set_index("building_id")["passed"].loc[bb.index]
            d_bld = np.abs(bg["building_share"] - og["building_share"])
            d_road = np.abs(bg["road_share"] - og["road_share"])
            print(
                f"  agreement: buildings passed {np.mean(bb.to_numpy() == ob.to_numpy()):.4%}, "
                f"rule met {np.mean(bg['rule_met'] == og['rule_met']):.2%} of grids, "
                f"|Δ building share| max {np.nanmax(d_bld):.4f}, "
                f"|Δ road share| mean {np.nanmean(d_road):.4f}"
            )
        building_tests(engine, day, tz)
        print(f"peak RSS {_peak_rss_mb():,.0f} MB")
    finally:
        engine.dispose()
        if args.drop:
            drop_database(name)


if __name__ == "__main__":
    main()
