"""Benchmark: what row-level security costs the KPI queries.

The same queries run as the owner (a superuser: RLS bypassed, the baseline) and as
``gridone_app`` with the scope set by :func:`store.access.scoped` (``SET LOCAL ROLE
gridone_app`` first, which gives exactly that role's privileges): every KPI of every street
for a year (``geo.kpis.kpis_by_unit``, district scope), one street's KPIs
(``geo.kpis.kpis``, street scope against the owner filtering on the street) and plain
counts. The figures must be equal; the script says so, prints both times and the ratio,
and shows the plan of a street-scoped count (the policy should be an index condition).

    .venv/bin/python benchmarks/rls.py [--scale district|street] [--runs N] [--drop]

The demo is generated into the scratch database ``gridone_bench_access_<scale>`` on the
configured server (kept for the next run unless ``--drop``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from benchmarks.bench_db import drop_database, open_database
from geo import kpis as kp
from store.access import User, scoped
from store.settings import get_settings


def prepare(scale: str, seed: int) -> tuple[Engine, str]:
    """The benchmark database holding the demo at ``scale``, and its name."""
    from loaders.demo import generate
    from loaders.demo.load import write_demo

    name = f"gridone_bench_access_{scale}"
    engine = open_database(name)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM incident")).scalar_one()
    if n == 0:
        t0 = time.perf_counter()
        write_demo(
            engine,
            generate(seed, scale),
            replace=True,
            truth_path=Path(f"/tmp/{name}-truth.json"),
        )
        print(f"generated and wrote the {scale} demo in {time.perf_counter() - t0:.0f} s")
    return engine, name


def best_of(engine: Engine, runs: int, user: User | None, work: Callable[[Connection], Any]):
    """Best wall time of ``work`` over ``runs`` transactions, as the owner (``user`` None)
    or as gridone_app scoped to ``user``; and its last result."""
    best, result = float("inf"), None
    for _ in range(runs):
        with engine.begin() as conn:
            t0 = time.perf_counter()
            if user is not None:
                conn.execute(text("SET LOCAL ROLE gridone_app"))
                scoped(conn, user)
            result = work(conn)
            best = min(best, time.perf_counter() - t0)
    return best, result


def _same(a: Any, b: Any) -> bool:
    """Equal results (NaN equal to NaN; floats to 1e-9: a parallel sum adds in another
    order)."""
    if isinstance(a, pd.DataFrame):
        a, b = a.sort_index(), b.sort_index()
        if list(a.columns) != list(b.columns) or list(a.index) != list(b.index):
            return False
        num = a.select_dtypes("number").columns
        return a.drop(columns=num).equals(b.drop(columns=num)) and bool(
            np.allclose(a[num].to_numpy(float), b[num].to_numpy(float), equal_nan=True)
        )
    if isinstance(a, dict):
        return pd.Series(a, dtype=object).equals(pd.Series(b, dtype=object))
    if hasattr(a, "__dataclass_fields__"):
        return _same(vars(a), vars(b))
    return a == b


# ST_DWithin and && are not LEAKPROOF: under RLS the planner may not use them as GiST index
# conditions (they would see rows before the policy), so spatial joins lose their index.
_NEAR = (
    "SELECT count(*) FROM incident a JOIN incident b ON ST_DWithin(a.geom, b.geom, 0.0003) "
    "WHERE a.id < 2000"
)


def _timed_out(conn: Connection, sql: str, seconds: int = 60) -> Any:
    """Run ``sql`` with a statement timeout; the string "timeout" when it ran out."""
    conn.execute(text(f"SET LOCAL statement_timeout = '{int(seconds)}s'"))
    try:
        with conn.begin_nested():
            return conn.execute(text(sql)).scalar_one()
    except Exception:
        return "timeout"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=["street", "district"], default="district")
    ap.add_argument("--seed", type=int, default=get_settings().demo_seed)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--drop", action="store_true")
    args = ap.parse_args()
    engine, name = prepare(args.scale, args.seed)
    try:
        with engine.connect() as conn:
            district = conn.execute(
                text("SELECT min(code) FROM admin_unit WHERE level = 'district'")
            ).scalar_one()
            street = conn.execute(
                text("SELECT street_code FROM incident GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
            ).scalar_one()
            last = conn.execute(
                text("SELECT max(reported_at AT TIME ZONE 'Asia/Shanghai') FROM incident")
            ).scalar_one()
            n_inc = conn.execute(text("SELECT count(*) FROM incident")).scalar_one()
        end = last.date() + dt.timedelta(days=1)
        start = end - dt.timedelta(days=365)
        district_user = User(0, "bench-district", "区", "district", district)
        street_user = User(0, "bench-street", "街道", "street", street)
        print(
            f"scale {args.scale}: {n_inc:,} incidents; period [{start}, {end}); best of {args.runs}"
        )

        cases = [
            (
                "count(*) of incidents, district",
                district_user,
                lambda c: c.execute(text("SELECT count(*) FROM incident")).scalar_one(),
                lambda c: c.execute(text("SELECT count(*) FROM incident")).scalar_one(),
            ),
            (
                f"count(*) of incidents, street {street}",
                street_user,
                lambda c: c.execute(text("SELECT count(*) FROM incident")).scalar_one(),
                lambda c: c.execute(
                    text("SELECT count(*) FROM incident WHERE street_code = :s"), {"s": street}
                ).scalar_one(),
            ),
            (
                "kpis_by_unit(street), every street, no repeats",
                district_user,
                lambda c: kp.kpis_by_unit(c, "street", start, end, repeats=False).current,
                lambda c: kp.kpis_by_unit(c, "street", start, end, repeats=False).current,
            ),
            (
                "kpis(one street), no repeats (app: unit=None)",
                street_user,
                lambda c: kp.kpis(c, unit=None, start=start, end=end, repeats=False).figures,
                lambda c: kp.kpis(c, unit=street, start=start, end=end, repeats=False).figures,
            ),
            (
                "spatial self-join: 2,000 incidents x neighbours <30 m",
                street_user,
                lambda c: _timed_out(c, _NEAR),
                lambda c: c.execute(text(_NEAR)).scalar_one(),
            ),
        ]
        print(f"{'query':52s} {'owner':>8s} {'app+RLS':>8s} {'ratio':>6s}  same")
        for label, user, as_app, as_owner in cases:
            t_owner, r_owner = best_of(engine, args.runs, None, as_owner)
            t_app, r_app = best_of(engine, args.runs, user, as_app)
            same = _same(r_owner, r_app)
            print(
                f"{label:52s} {t_owner:8.3f} {t_app:8.3f} {t_app / t_owner:6.2f}  "
                f"{'yes' if same else 'NO'}"
            )
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL ROLE gridone_app"))
            scoped(conn, street_user)
            plan = conn.execute(text("EXPLAIN SELECT count(*) FROM incident")).scalars().all()
        print("plan of a street-scoped count as gridone_app:")
        print("\n".join("  " + line for line in plan))
    finally:
        engine.dispose()
        if args.drop:
            drop_database(name)


if __name__ == "__main__":
    main()
