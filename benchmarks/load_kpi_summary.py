"""Benchmark: what keeping the KPI sums per street and day costs a load (migration 0004,
``store.kpi_summary``), and that they stay exact.

The case two earlier attempts failed (a repeat trigger: 25x slower; a facts refresh:
6.8x): 200,000 incidents loaded with ``loaders.engine.load_file`` into a store that
already holds ~50,000, then their transitions. Each load runs on two identical copies of
the store in the same run: one with migration 0004 (the statement triggers and the
loader's ``kpi_summary.refresh``), one downgraded to 0003 (no sums at all: the load as
before). The script prints both times, the refresh's own time and the ratio; then checks
on the first copy that the sums equal a from-scratch rebuild and that ``geo.kpis`` gives
the same figures from the sums and from the incidents.

    .venv/bin/python benchmarks/load_kpi_summary.py [--base 50000] [--rows 200000] [--db NAME]

The incidents are the demo street's, tiled with fresh codes, moved up to ~150 m and up to
20 days (so that repeats and their candidates are as dense as in a busy street), written
to CSV at run time. Databases ``<NAME>_tpl/_a/_b`` on the configured server, dropped at
the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import pandas as pd
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import make_url

import loaders.engine as le
from benchmarks.bench_db import admin, open_database
from geo import kpis as kp
from loaders.demo import generate
from loaders.demo.load import write_demo
from store import kpi_summary
from store.db import make_engine, resolve_url
from store.migrate import alembic_config
from store.settings import get_settings

SH = "Asia/Shanghai"


def _csv(demo, rows: int, prefix: str, seed: int, path: Path) -> pd.DataFrame:
    inc = demo.incident
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(inc), size=rows)
    frame = inc.iloc[idx].reset_index(drop=True)
    shift = pd.to_timedelta(rng.integers(-20 * 86400, 20 * 86400, size=rows), unit="s")
    rep = (frame.reported_at + shift).clip(lower=inc.reported_at.min(), upper=inc.reported_at.max())
    occ = rep - (frame.reported_at - frame.occurred_at)
    out = frame[["category_code", "source", "severity", "title", "address"]].copy()
    out.insert(0, "code", [f"{prefix}{i:08d}" for i in range(rows)])
    out["occurred_at"] = occ.dt.tz_convert(SH).dt.strftime("%Y-%m-%d %H:%M:%S")
    out["reported_at"] = rep.dt.tz_convert(SH).dt.strftime("%Y-%m-%d %H:%M:%S")
    jitter = rng.uniform(-0.0015, 0.0015, size=(rows, 2))  # ~135 m x 165 m
    out["lon"] = frame.geom.x.to_numpy() + jitter[:, 0]
    out["lat"] = frame.geom.y.to_numpy() + jitter[:, 1]
    out.to_csv(path, index=False, float_format="%.7f")
    return frame.assign(code=out.code, reported_at=rep)


def _transitions(demo, frame: pd.DataFrame, path: Path) -> None:
    """Each tiled incident gets its source incident's steps, moved by the same time."""
    tr = demo.incident_transition
    src = demo.incident.set_index("id")
    shift = frame.reported_at - src.reported_at.reindex(frame.id).reset_index(drop=True)
    per = tr.groupby("incident_id").indices
    pos = [per.get(i, np.array([], dtype=int)) for i in frame.id]
    lens = np.fromiter((len(p) for p in pos), dtype=int, count=len(pos))
    take = np.concatenate(pos)
    rows = tr.iloc[take].reset_index(drop=True)
    sh = pd.to_timedelta(np.repeat(shift.to_numpy(), lens))
    out = pd.DataFrame(
        {
            "incident_code": np.repeat(frame.code.to_numpy(), lens),
            "at": (rows["at"] + sh).dt.tz_convert(SH).dt.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "to_status": rows.to_status,
            "tier": rows.tier,
            "actor": rows.actor,
            "new_due_at": (rows.new_due_at + sh)
            .dt.tz_convert(SH)
            .dt.strftime("%Y-%m-%d %H:%M:%S.%f"),
        }
    )
    out.to_csv(path, index=False)


_SNAPSHOT = {
    "kpi_street_day": "SELECT * FROM kpi_street_day ORDER BY street_code, day",
    "kpi_street_day_category": (
        "SELECT * FROM kpi_street_day_category ORDER BY street_code, day, category_code"
    ),
    "kpi_street_month_category": (
        "SELECT * FROM kpi_street_month_category ORDER BY street_code, month, category_code"
    ),
    "incident_repeat": "SELECT incident_id FROM incident_repeat ORDER BY 1",
}


def _same_as_rebuild(eng) -> bool:
    """The sums kept by the loads, against a rebuild from scratch (rolled back)."""
    with eng.begin() as conn:
        kept = {k: conn.execute(text(q)).all() for k, q in _SNAPSHOT.items()}
        kpi_summary.rebuild(conn)
        fresh = {k: conn.execute(text(q)).all() for k, q in _SNAPSHOT.items()}
        conn.rollback()
    same = True
    for k in _SNAPSHOT:
        if kept[k] != fresh[k]:
            same = False
            print(f"  {k}: {len(kept[k])} rows kept, {len(fresh[k])} rebuilt, differ")
    return same


def _same_kpis(eng) -> bool:
    """Every street's KPIs for the last 365 days and a calendar month, both ways."""
    with eng.connect() as conn:
        last = conn.execute(
            text("SELECT max(reported_at AT TIME ZONE 'Asia/Shanghai') FROM incident")
        ).scalar_one()
        end = last.date()
        ok = True
        for start, stop in (
            (end - dt.timedelta(days=365), end),
            (end.replace(day=1) - dt.timedelta(days=1), end.replace(day=1)),
        ):
            start = start.replace(day=1) if stop.day == 1 else start
            assert kpi_summary.usable(conn, dict(kpi_summary.DEFAULT_RULE))
            fast = kp.kpis_by_unit(conn, "street", start, stop)
            with kp.from_incidents():
                slow = kp.kpis_by_unit(conn, "street", start, stop)
            for x, y in ((fast.current, slow.current), (fast.previous, slow.previous)):
                for col in kp.FIGURES:
                    u = x[col].astype(float).to_numpy()
                    v = y[col].astype(float).to_numpy()
                    tol = 1e-9 if col == "mean_hours" or "rate" in col or "share" in col else 0
                    if not np.allclose(u, v, rtol=0, atol=tol, equal_nan=True):
                        print(f"  {start}..{stop} {col}: {u} vs {v}")
                        ok = False
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=int, default=50_000)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--db", default="gridone_bench_kpi_load")
    ap.add_argument("--skip-transitions", action="store_true", help="load the incidents only")
    args = ap.parse_args()
    base_url = resolve_url(get_settings())
    tpl = f"{args.db}_tpl"
    engine = open_database(tpl, regenerate=True)
    demo = generate(get_settings().demo_seed, "street")
    write_demo(engine, demo, truth_path=Path(tempfile.gettempdir()) / "bench-kpi-load.json")
    timings: dict[str, float] = {}
    real_refresh = kpi_summary.refresh
    current = {"kind": ""}

    def timed_refresh(conn):
        t0 = time.perf_counter()
        out = real_refresh(conn)
        kind = current["kind"]
        timings[kind] = timings.get(kind, 0.0) + time.perf_counter() - t0
        return out

    with tempfile.TemporaryDirectory() as tmp:
        base_csv, new_csv, new_tr = (Path(tmp) / n for n in ("base.csv", "new.csv", "tr.csv"))
        _csv(demo, args.base, "BA", 1, base_csv)
        frame = _csv(demo, args.rows, "NW", 2, new_csv)
        _transitions(demo, frame, new_tr)
        le.load_file(engine, "incidents", base_csv, le.Options())
        engine.dispose()
        results = {}
        checked = None
        for variant in ("with sums", "without"):
            name = f"{args.db}_{'a' if variant == 'with sums' else 'b'}"
            with admin(base_url) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{tpl}"')
            eng = make_engine(make_url(base_url).set(database=name).render_as_string(False))
            if variant == "without":
                with eng.begin() as conn:
                    command.downgrade(alembic_config(conn), "0003")
            with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
            kpi_summary.refresh = timed_refresh
            timings.clear()
            out = {}
            kinds = [("incidents", new_csv), ("transitions", new_tr)]
            for kind, path in kinds[:1] if args.skip_transitions else kinds:
                current["kind"] = kind
                t0 = time.perf_counter()
                report = le.load_file(eng, kind, path, le.Options())
                out[kind] = (time.perf_counter() - t0, report.inserted, timings.get(kind, 0.0))
            kpi_summary.refresh = real_refresh
            results[variant] = out
            for kind, (sec, n, refresh) in out.items():
                print(
                    f"{variant:9s} {kind:12s} {n:>9,} rows {sec:7.1f} s (refresh {refresh:.1f} s)"
                )
            if variant == "with sums":
                checked = eng
            else:
                eng.dispose()
    with checked.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))  # the statement over the incidents needs statistics
    print(f"sums equal a from-scratch rebuild: {_same_as_rebuild(checked)}")
    print(f"geo.kpis from the sums equals from the incidents: {_same_kpis(checked)}")
    checked.dispose()
    with engine.connect() as conn:
        n0 = conn.execute(text("SELECT count(*) FROM incident")).scalar_one()
    print(f"store before: {n0:,} incidents; new file: {args.rows:,} incidents + transitions")
    for kind in results["without"]:
        w, wo = results["with sums"][kind], results["without"][kind]
        print(
            f"{kind:12s} inserted {w[1]:>9,}  load with sums {w[0]:7.1f} s "
            f"(refresh {w[2]:5.1f} s)  without {wo[0]:7.1f} s  ratio {w[0] / wo[0]:.2f}"
        )
    total_w = sum(v[0] for v in results["with sums"].values())
    total_wo = sum(v[0] for v in results["without"].values())
    print(
        f"both files: {total_w:.1f} s with sums, {total_wo:.1f} s without: "
        f"{100 * (total_w / total_wo - 1):+.1f} %"
    )
    with admin(base_url) as conn:
        for suffix in ("tpl", "a", "b"):
            conn.execute(f'DROP DATABASE IF EXISTS "{args.db}_{suffix}" WITH (FORCE)')


if __name__ == "__main__":
    main()
