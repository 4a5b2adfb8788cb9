"""Where an incident load spends its time, stage by stage: the Python steps of each chunk
(read, parse, geometry, incident rules, staging, COPY) and the wall time of each SQL
statement, for one in-process load of N generated rows. Optionally the plan of every slow
statement (``--explain``: ``EXPLAIN (ANALYZE, BUFFERS)`` through auto_explain, which needs
a superuser) and the Python functions with the most time of their own (``--cprofile``).

    .venv/bin/python benchmarks/profile_load.py [--rows 250000] [--explain] [--cprofile]

Database: ``gridone_bench_profile`` on the configured server (the demo street; kept
between runs, dropped with ``--drop``). The CSV is generated as in
``benchmarks/load_incidents.py`` and deleted afterwards.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import os
import pstats
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_db import drop_database, open_database
from load_incidents import _csv
from sqlalchemy import event, text

import loaders.engine as eng
from loaders.demo import generate
from loaders.demo.load import write_demo
from store.settings import get_settings

DB = "gridone_bench_profile"

#: Python steps of the loader timed by wrapping them (name in loaders.engine → label).
STEPS = {
    "parse_fields": "parse fields",
    "build_geometry": "geometry",
    "_staged": "staging frame",
    "_assign_grids": "grid assignment (Python)",
    "_stage_cells": "H3 cells",
    "copy_frame": "COPY into stage",
    "_write": "write into incident (SQL, incl. constraint checks)",
    "fill_incident_cells": "fill missing cells",
}


def _timed(stages: dict[str, float], label: str, fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            stages[label] += time.perf_counter() - t0

    return run


def _timed_iter(stages: dict[str, float], label: str, fn):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        it = iter(fn(*args, **kwargs))
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                stages[label] += time.perf_counter() - t0
                return
            stages[label] += time.perf_counter() - t0
            yield item

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=250_000)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--explain", action="store_true", help="plans of statements over 200 ms")
    ap.add_argument("--cprofile", action="store_true", help="Python functions by own time")
    ap.add_argument("--keep", action="store_true", help="keep the loaded rows (a reload next)")
    ap.add_argument("--drop", action="store_true", help="drop the database afterwards")
    args = ap.parse_args()
    engine = open_database(DB)
    demo = generate(get_settings().demo_seed, "street")
    with engine.connect() as conn:
        empty = not conn.execute(text("SELECT count(*) FROM grid")).scalar_one()
    if empty:
        write_demo(engine, demo, truth_path=Path(tempfile.gettempdir()) / "profile-truth.json")
    if not args.keep:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM incident WHERE code LIKE 'BM%'"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE incident"))
    statements: dict[str, list[float]] = {}
    plans: list[str] = []

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, record) -> None:
        if args.explain:
            dbapi_conn.add_notice_handler(lambda d: plans.append(d.message_primary or ""))
            with dbapi_conn.cursor() as cur:
                cur.execute("LOAD 'auto_explain'")
                for name, value in (
                    ("log_min_duration", "200"),
                    ("log_analyze", "on"),
                    ("log_buffers", "on"),
                    ("log_timing", "on"),
                    ("log_nested_statements", "on"),
                    ("log_level", "notice"),
                ):
                    cur.execute(f"SET auto_explain.{name} = '{value}'")

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn, cursor, statement, params, context, many) -> None:
        conn.info["t0"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _stop(conn, cursor, statement, params, context, many) -> None:
        key = " ".join(statement.split())[:110]
        statements.setdefault(key, []).append(time.perf_counter() - conn.info["t0"])

    engine.dispose()  # new connections get the listeners
    stages: dict[str, float] = defaultdict(float)
    for name, label in STEPS.items():
        setattr(eng, name, _timed(stages, label, getattr(eng, name)))
    eng.iter_table = _timed_iter(stages, "read CSV", eng.iter_table)
    eng.kpi_summary.refresh = _timed(stages, "KPI refresh (total)", eng.kpi_summary.refresh)
    eng.kpi_summary._refresh_repeats = _timed(
        stages, "KPI refresh: repeat flags", eng.kpi_summary._refresh_repeats
    )
    committed: list[float] = []

    @event.listens_for(engine, "commit")
    def _commit(conn) -> None:
        committed.append(time.perf_counter())

    for kind_name, fn in list(eng.PREPARE.items()):
        eng.PREPARE[kind_name] = _timed(stages, "incident rules", fn)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "incidents.csv"
        _csv(demo, args.rows, path)
        profile = cProfile.Profile()
        t0 = time.perf_counter()
        if args.cprofile:
            profile.enable()
        report = eng.load_file(engine, "incidents", path, eng.Options())
        if args.cprofile:
            profile.disable()
        seconds = time.perf_counter() - t0
        if committed:
            stages["commit"] = t0 + seconds - committed[-1]
    print(report.summary().splitlines()[1].strip())
    print(f"{args.rows:,} rows in {seconds:.1f} s: {args.rows / seconds:,.0f} rows/s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:,.0f} MB; load average {os.getloadavg()[0]:.2f}")
    print("\nPython steps (wall, summed over chunks):")
    for label, secs in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"  {secs:6.2f} s  {label}")
    sql = sum(sum(v) for v in statements.values())
    print(f"\nSQL statements: {sql:.1f} s of {seconds:.1f} s (COPY is in 'COPY into stage')")
    groups = {
        "CREATE INDEX": "index rebuild",
        "ALTER TABLE incident ADD CONSTRAINT": "foreign keys",
    }
    for prefix, label in groups.items():
        secs = sum(sum(v) for k, v in statements.items() if k.startswith(prefix))
        print(f"  {secs:6.2f} s  all {label} statements")
    for key, times in sorted(statements.items(), key=lambda kv: -sum(kv[1]))[: args.top]:
        print(f"  {sum(times):6.2f} s  x{len(times):<3} {key}")
    if plans:
        print("\nPlans of statements over 200 ms:")
        for plan in plans:
            print(plan)
            print()
    if args.cprofile:
        print("\nPython, by own time:")
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)
    engine.dispose()
    if args.drop:
        drop_database(DB)


if __name__ == "__main__":
    main()
