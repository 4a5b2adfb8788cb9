"""Benchmark: generate the demo at a scale, write it to PostGIS, and compare the store's COPY
writer with ``GeoDataFrame.to_postgis`` on the same incident rows in the same run.

    .venv/bin/python benchmarks/demo_generation.py [--scale district|street] [--baseline-rows N]

Prints wall times, rows per second, peak memory, and the writer/to_postgis ratio. Uses a
scratch database ``gridone_bench`` on the configured server (dropped at the end).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from loaders.demo import generate
from loaders.demo.load import write_demo
from store.db import make_engine, resolve_url
from store.migrate import upgrade
from store.settings import get_settings
from store.write import copy_frame

BENCH_DB = "gridone_bench"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _tiled(frame, n: int):
    """``n`` rows made by repeating ``frame`` (codes kept unique), for a baseline of a
    useful size at any scale."""
    import geopandas as gpd
    import pandas as pd

    reps = -(-n // len(frame))
    out = pd.concat([frame] * reps, ignore_index=True).head(n)
    out["code"] = out["code"] + "-" + (out.index // len(frame)).astype(str)
    out["id"] = range(1, len(out) + 1)
    return gpd.GeoDataFrame(out, geometry="geom", crs=frame.crs)


def _admin(url: str) -> psycopg.Connection:
    u = make_url(url).set(drivername="postgresql", database="postgres")
    return psycopg.connect(u.render_as_string(hide_password=False), autocommit=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=["street", "district"], default="district")
    ap.add_argument("--seed", type=int, default=get_settings().demo_seed)
    ap.add_argument("--baseline-rows", type=int, default=200_000)
    args = ap.parse_args()

    base_url = resolve_url(get_settings())
    with _admin(base_url) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{BENCH_DB}"')
    url = make_url(base_url).set(database=BENCH_DB).render_as_string(hide_password=False)
    engine = make_engine(url)
    try:
        upgrade(engine)
        t0 = time.perf_counter()
        data = generate(args.seed, args.scale)
        t_gen = time.perf_counter() - t0
        rows = {name: len(frame) for name, frame in data.tables()}
        total = sum(rows.values())
        print(f"scale {args.scale}, seed {args.seed}")
        print(f"generate: {t_gen:8.1f} s   {total:>12,} rows   peak RSS {_peak_rss_mb():,.0f} MB")
        for name, n in rows.items():
            print(f"  {name:<24}{n:>12,}")

        t0 = time.perf_counter()
        write_demo(engine, data, replace=True, truth_path=Path("/tmp/gridone-bench-truth.json"))
        t_write = time.perf_counter() - t0
        rate = total / t_write
        print(f"write (COPY, triggers, ANALYZE): {t_write:8.1f} s   {rate:>10,.0f} rows/s")

        # Same rows, same run: the store's writer against GeoDataFrame.to_postgis.
        sample = _tiled(data.incident, args.baseline_rows)
        n = len(sample)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS bench_to_postgis, bench_copy"))
        t0 = time.perf_counter()
        sample.to_postgis("bench_to_postgis", engine, if_exists="replace", index=False)
        t_base = time.perf_counter() - t0
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE bench_copy (LIKE bench_to_postgis)"))
        t0 = time.perf_counter()
        with engine.begin() as conn:
            copy_frame(conn, "bench_copy", sample)
        t_copy = time.perf_counter() - t0
        print(f"baseline, {n:,} incident rows into a plain table:")
        print(f"  GeoDataFrame.to_postgis  {t_base:7.2f} s   {n / t_base:>10,.0f} rows/s")
        print(f"  store.write.copy_frame   {t_copy:7.2f} s   {n / t_copy:>10,.0f} rows/s")
        print(f"  ratio copy_frame / to_postgis: {t_base / t_copy:.1f}x faster")
    finally:
        engine.dispose()
        with _admin(base_url) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


if __name__ == "__main__":
    main()
