"""Benchmark: load N incident rows from CSV with ``python -m loaders load incidents`` and, in
the same run on the same file, with ``GeoDataFrame.to_postgis``; print rows per second,
their ratio, and the peak memory of each at two file sizes (flat memory = streaming).

Two floors are measured in the same run, to say how far any loader could go here:

* **bare COPY**: the file streamed as it is into a table by ``COPY`` and its points made
  in SQL — no check, no grid, no derived column, no index: what moving these bytes into
  PostGIS costs at the least;
* **the store's indexes**: ``REINDEX TABLE incident`` after our load — the index builds
  any loader keeping the store's indexes pays for a load this large.

    .venv/bin/python benchmarks/load_incidents.py [--rows 1000000]

The store gets the demo street (grids, staff) first so incidents are assigned to grids
by location, as in real use. The CSV is generated at run time (the street's incidents
tiled, with fresh codes and jittered positions) and deleted afterwards. Each load runs in
its own process so peak memory is its own. Database: ``gridone_bench`` on the configured
server, dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from loaders.demo import generate
from loaders.demo.load import write_demo
from store.db import make_engine, resolve_url
from store.migrate import upgrade
from store.settings import get_settings

ROOT = Path(__file__).resolve().parent.parent
BENCH_DB = "gridone_bench"
SH = "Asia/Shanghai"

BASELINE = """
import sys, geopandas as gpd, pandas as pd
from sqlalchemy import create_engine
frame = pd.read_csv(sys.argv[1], dtype={"code": str, "category_code": str})
gdf = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame.lon, frame.lat), crs=4490)
gdf.to_postgis("bench_to_postgis", create_engine(sys.argv[2]), if_exists="replace",
               index=False)
"""


#: The floor: the file as it is into a table by COPY, its points made in SQL, nothing else.
FLOOR = """
import sys, psycopg
url = sys.argv[2].replace("postgresql+psycopg://", "postgresql://", 1)
with psycopg.connect(url) as conn, open(sys.argv[1], "rb") as fh:
    conn.execute("SET TimeZone = 'Asia/Shanghai'")
    conn.execute("DROP TABLE IF EXISTS bench_copy")
    conn.execute(
        "CREATE TEMP TABLE bench_copy_raw (code text, category_code text, source text, "
        "severity smallint, title text, address text, occurred_at timestamptz, "
        "reported_at timestamptz, lon float8, lat float8)"
    )
    with conn.cursor().copy("COPY bench_copy_raw FROM STDIN (FORMAT csv, HEADER true)") as cp:
        while block := fh.read(1 << 20):
            cp.write(block)
    conn.execute(
        "CREATE TABLE bench_copy AS SELECT code, category_code, source, severity, title, "
        "address, occurred_at, reported_at, "
        "ST_SetSRID(ST_MakePoint(lon, lat), 4490)::geometry(Point, 4490) AS geom "
        "FROM bench_copy_raw"
    )
"""


def _reindex_seconds(url: str) -> tuple[float, int]:
    """Seconds to rebuild every index of ``incident`` (and how many there are)."""
    u = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(u, autocommit=True) as conn:
        n = conn.execute(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'incident'::regclass"
        ).fetchone()[0]
        t0 = time.perf_counter()
        conn.execute("REINDEX TABLE incident")
        return time.perf_counter() - t0, n


def _admin(url: str) -> psycopg.Connection:
    u = make_url(url).set(drivername="postgresql", database="postgres")
    return psycopg.connect(u.render_as_string(hide_password=False), autocommit=True)


def _csv(demo, rows: int, path: Path) -> None:
    """The street's incidents tiled to ``rows``, with fresh codes; each copy at the place of
    a randomly drawn incident (jittered ~5 m). Copies kept at their own incident's place
    would stack a thousand same-subcategory incidents reported at the same instant on each
    spot (a billion candidate repeat pairs at 1M rows), which no street has."""
    inc = demo.incident
    reps = -(-rows // len(inc))
    rng = np.random.default_rng(7)
    idx = np.tile(np.arange(len(inc)), reps)[:rows]
    frame = inc.iloc[idx].reset_index(drop=True)
    place = inc.iloc[rng.integers(0, len(inc), size=rows)].reset_index(drop=True)
    jitter = rng.normal(0, 0.00005, size=(rows, 2))  # ~5 m
    out = frame[["category_code", "source", "severity", "title", "address"]].copy()
    out.insert(0, "code", [f"BM{i:08d}" for i in range(rows)])
    out["occurred_at"] = frame.occurred_at.dt.tz_convert(SH).dt.strftime("%Y-%m-%d %H:%M:%S")
    out["reported_at"] = frame.reported_at.dt.tz_convert(SH).dt.strftime("%Y-%m-%d %H:%M:%S")
    out["lon"] = place.geom.x.to_numpy() + jitter[:, 0]
    out["lat"] = place.geom.y.to_numpy() + jitter[:, 1]
    out.to_csv(path, index=False, float_format="%.7f")


#: Runs a module (``-m name args``) or code (``-c code args``) and writes the process's
#: peak resident memory *since exec* (VmHWM) to ``$BENCH_PEAK_FILE`` at exit. The rusage
#: of a child counts the pages it inherited from this process at fork (the generated CSV
#: and the demo: over a gigabyte at 1M rows), which made the loader's peak look like it
#: grew with the file.
PEAK = """
import atexit, os, runpy, sys
def _peak():
    with open("/proc/self/status") as f:
        kb = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    with open(os.environ["BENCH_PEAK_FILE"], "w") as out:
        out.write(kb)
atexit.register(_peak)
mode, target, *rest = sys.argv[1:]
if mode == "-m":
    sys.argv = [target, *rest]
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    sys.argv = ["-c", *rest]
    exec(compile(target, "<benchmark>", "exec"), {"__name__": "__main__"})
"""


def _timed(
    args: list[str], env: dict[str, str], ok: tuple[int, ...] = (0,)
) -> tuple[float, float, str]:
    """Wall seconds, peak RSS since exec (MB) and output of one child process running
    ``python <args>`` (``-m module …`` or ``-c code …``)."""
    with tempfile.TemporaryFile() as out, tempfile.NamedTemporaryFile() as peak:
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", PEAK, *args],
            cwd=ROOT,
            env={**env, "BENCH_PEAK_FILE": peak.name},
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
        seconds = time.perf_counter() - t0
        out.seek(0)
        text_out = out.read().decode(errors="replace")
        kb = Path(peak.name).read_text().strip()
    if proc.returncode not in ok:
        raise RuntimeError(text_out[-3000:])
    return seconds, int(kb) / 1024, text_out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--db", default=BENCH_DB, help=f"scratch database (default {BENCH_DB})")
    args = ap.parse_args()
    base = resolve_url(get_settings())
    with _admin(base) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{args.db}"')
    url = make_url(base).set(database=args.db).render_as_string(hide_password=False)
    engine = make_engine(url)
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    try:
        upgrade(engine)
        demo = generate(get_settings().demo_seed, "street")
        write_demo(engine, demo, truth_path=Path(tempfile.gettempdir()) / "bench-truth.json")
        with tempfile.TemporaryDirectory() as tmp:
            sizes = sorted({max(args.rows // 4, 1), args.rows})
            results = {}
            for n in sizes:
                path = Path(tmp) / f"incidents_{n}.csv"
                _csv(demo, n, path)
                mb = path.stat().st_size / 1e6
                with engine.begin() as conn:
                    conn.execute(text("DELETE FROM incident WHERE code LIKE 'BM%'"))
                # exit code 1: some rows were rejected (the street's 3 planted incidents
                # outside every street, repeated by the tiling)
                ours = _timed(
                    ["-m", "loaders", "load", "incidents", str(path)],
                    env,
                    ok=(0, 1),
                )
                reindex, n_indexes = _reindex_seconds(url)
                base_t = _timed(["-c", BASELINE, str(path), url], env)
                floor = _timed(["-c", FLOOR, str(path), url], env)
                results[n] = (ours, base_t)
                print(f"{n:,} incident rows ({mb:,.0f} MB CSV):")
                print(
                    f"  python -m loaders load   {ours[0]:7.1f} s  {n / ours[0]:>9,.0f} rows/s"
                    f"  peak {ours[1]:,.0f} MB"
                )
                print(
                    f"  GeoDataFrame.to_postgis  {base_t[0]:7.1f} s  "
                    f"{n / base_t[0]:>9,.0f} rows/s  peak {base_t[1]:,.0f} MB"
                )
                print(
                    f"  ratio: loader at {base_t[0] / ours[0]:.2f}x to_postgis' speed"
                    f"  (load average {os.getloadavg()[0]:.1f}: the machine is shared)"
                )
                print(
                    f"  floor, bare COPY (no check, no index)  {floor[0]:5.1f} s  "
                    f"{n / floor[0]:>9,.0f} rows/s  = {base_t[0] / floor[0]:.1f}x to_postgis' speed"
                )
                print(
                    f"  floor, the store's {n_indexes} indexes on incident (REINDEX)  "
                    f"{reindex:5.1f} s;  with the bare COPY {floor[0] + reindex:5.1f} s  "
                    f"= {base_t[0] / (floor[0] + reindex):.1f}x to_postgis' speed"
                )
                print("  " + ours[2].strip().splitlines()[1].strip())
            if len(sizes) == 2:
                print(f"peak memory, {sizes[0]:,} → {sizes[1]:,} rows (flat: x1.00):")
                for k, label in enumerate(("python -m loaders load", "GeoDataFrame.to_postgis")):
                    small, big = (results[s][k][1] for s in sizes)
                    print(
                        f"  {label:<24} {small:6,.0f} MB → {big:6,.0f} MB  "
                        f"x{big / small:.2f} for x{sizes[1] / sizes[0]:.0f} rows"
                    )
    finally:
        engine.dispose()
        with _admin(base) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
