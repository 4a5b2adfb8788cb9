"""Benchmark: every incident KPI of every street for a year (and the year before, for the
change) by ``geo.kpis.kpis_by_unit`` — from the sums per street and day when the store has
them (migration 0004), and in the same run from the incidents (``geo.kpis.from_incidents``:
one grouped SQL statement), checked equal — against the straightforward pandas way a GIS
analyst would write (read every incident and every transition into DataFrames, rebuild
the state as of the end, find repeats with a geopandas buffer-and-sjoin, loop over the
streets), on the same data in the same run. Both must give the same counts; the script
says so, then prints the times and the ratios.

    .venv/bin/python benchmarks/kpis.py [--scale district|street] [--runs N]
                                        [--regenerate] [--drop] [--skip-baseline]
                                        [--database NAME]

The demo is generated into a scratch database ``gridone_bench_kpis_<scale>`` (or
``--database NAME``, migrated first) on the configured server and kept for the next run
(the district takes minutes to generate and write); ``--regenerate`` rebuilds it,
``--drop`` removes it at the end. The year is the demo's last full year:
[period_end − 365 days + 1, period_end + 1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import Engine, text

from benchmarks.bench_db import drop_database, open_database
from geo import kpis as kp
from geo.settings import default_settings
from store.settings import get_settings


def prepare(
    scale: str, seed: int, *, regenerate: bool, database: str | None = None
) -> tuple[Engine, str]:
    """An engine on the benchmark database (``database``, default
    ``gridone_bench_kpis_<scale>``) holding the demo at ``scale``, and the database name."""
    from loaders.demo import generate
    from loaders.demo.load import write_demo

    name = database or f"gridone_bench_kpis_{scale}"
    engine = open_database(name, regenerate=regenerate)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM incident")).scalar_one()
    if n == 0:
        t0 = time.perf_counter()
        data = generate(seed, scale)
        write_demo(engine, data, replace=True, truth_path=Path(f"/tmp/{name}-truth.json"))
        print(f"generated and wrote the {scale} demo in {time.perf_counter() - t0:.0f} s")
    return engine, name


# --- the straightforward way ------------------------------------------------------------------


def pandas_kpis(engine: Engine, period: kp.Period) -> dict[int, pd.DataFrame]:
    """Count figures per street for the period (0) and the previous one (1), the way an
    analyst would: everything into pandas, then a loop over the streets."""
    s = default_settings()
    with engine.connect() as conn:
        inc = pd.read_sql_query(
            text(
                "SELECT id, category_code, severity, occurred_at, reported_at, due_at, "
                "street_code, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM incident"
            ),
            conn,
        )
        tr = pd.read_sql_query(
            text(
                "SELECT id, incident_id, at, to_status, tier, new_due_at FROM incident_transition"
            ),
            conn,
        )
    for c in ("occurred_at", "reported_at", "due_at"):
        inc[c] = pd.to_datetime(inc[c], utc=True)
    for c in ("at", "new_due_at"):
        tr[c] = pd.to_datetime(tr[c], utc=True)
    tr = tr.sort_values(["incident_id", "at", "id"])

    # repeats: pairs within 30 m in the Gauss-Krüger zone (sjoin "dwithin"; a buffer polygon
    # would miss pairs just under 30 m), same subcategory, up to 90 days before
    prev = period.previous()
    lo = pd.Timestamp(prev.start_ts) - pd.Timedelta(days=s.repeat.window_days)
    win = inc[(inc.reported_at >= lo) & (inc.reported_at < pd.Timestamp(period.upto))]
    pts = gpd.GeoDataFrame(
        win[["id", "category_code", "reported_at"]],
        geometry=gpd.points_from_xy(win.lon, win.lat),
        crs=4490,
    ).to_crs(4549)
    pairs = gpd.sjoin(pts, pts, predicate="dwithin", distance=s.repeat.radius_m)
    dt_ = pairs.reported_at_left - pairs.reported_at_right
    hit = pairs[
        (pairs.category_code_left == pairs.category_code_right)
        & (dt_ > pd.Timedelta(0))
        & (dt_ <= pd.Timedelta(days=s.repeat.window_days))
    ]
    repeat_ids = set(hit.id_left)

    out = {}
    for k, p in enumerate((period, prev)):
        t0, t1, t = (pd.Timestamp(x) for x in (p.start_ts, p.upto, p.as_of))
        before = tr[tr["at"] < t]
        last = before.groupby("incident_id").tail(1).set_index("incident_id")
        ext = before[before.to_status == "extended"].groupby("incident_id").tail(1)
        ext = ext.set_index("incident_id")["new_due_at"]
        steps = before.groupby("incident_id")["to_status"].agg(set)
        df = inc[inc.reported_at < t].set_index("id")
        df["status"] = last["to_status"].reindex(df.index).fillna("reported")
        df["tier"] = last["tier"].reindex(df.index).fillna("grid")
        df["closed_at"] = last["at"].reindex(df.index).where(df.status == "closed")
        df["deadline"] = ext.reindex(df.index).fillna(df.due_at)
        st = steps.reindex(df.index)
        df["reworked"] = st.map(lambda v: isinstance(v, set) and "reworked" in v)
        df["extended"] = st.map(lambda v: isinstance(v, set) and "extended" in v)
        df["returned"] = st.map(lambda v: isinstance(v, set) and "returned" in v)
        df["repeat"] = df.index.isin(list(repeat_ids))
        rows = []
        for street, g in df.groupby("street_code"):
            r = g[(g.reported_at >= t0) & (g.reported_at < t1)]
            due = g[(g.deadline >= t0) & (g.deadline < t1)]
            closed = g[(g.status == "closed") & (g.closed_at >= t0) & (g.closed_at < t1)]
            major = r[r.severity >= s.reporting.major_severity]
            delay = (major.reported_at - major.occurred_at).dt.total_seconds()
            rows.append(
                {
                    "unit": street,
                    "reported": len(r),
                    "reported_closed": int((r.status == "closed").sum()),
                    "awaiting_review": int((r.status == "feedback").sum()),
                    "due": len(due),
                    "due_on_time": int(
                        ((due.status == "closed") & (due.closed_at <= due.deadline)).sum()
                    ),
                    "open_overdue": int(((g.status != "closed") & (g.deadline < t)).sum()),
                    "closed": len(closed),
                    "closed_grid": int((closed.tier == "grid").sum()),
                    "closed_community": int((closed.tier == "community").sum()),
                    "closed_street": int((closed.tier == "street").sum()),
                    "closed_department": int((closed.tier == "department").sum()),
                    "reworked": int(r.reworked.sum()),
                    "extended": int(r.extended.sum()),
                    "returned": int(r.returned.sum()),
                    "major": len(major),
                    "major_in_time": int((delay <= s.reporting.max_delay_h * 3600).sum()),
                    "repeats": int(r.repeat.sum()),
                    "median_hours": float(
                        ((closed.closed_at - closed.reported_at).dt.total_seconds() / 3600).median()
                    ),
                }
            )
        out[k] = pd.DataFrame(rows).set_index("unit") if rows else pd.DataFrame()
    return out


def summary_ready(conn: Any) -> bool:
    """Whether geo.kpis will read the sums (migration 0004, built, nothing pending)."""
    from store import kpi_summary

    return kpi_summary.usable(conn, dict(kpi_summary.DEFAULT_RULE))


def same_kpis(a: kp.UnitKpis, b: kp.UnitKpis) -> bool:
    """Every figure equal (the mean to 1e-9 h: sums of seconds against an average of
    hours), and the category counts."""
    for x, y in ((a.current, b.current), (a.previous, b.previous)):
        assert x is not None and y is not None
        for col in kp.FIGURES:
            u, v = x[col].astype(float).to_numpy(), y[col].astype(float).to_numpy()
            tol = 1e-9 if col in ("mean_hours",) or col.endswith(("_rate", "_share")) else 0
            if not np.allclose(u, v, rtol=0, atol=tol, equal_nan=True):
                print(f"  MISMATCH {col}: {u[:4]} vs {v[:4]}")
                return False
    key = ["unit", "category_code"]
    ca = a.categories.sort_values(key).reset_index(drop=True)
    cb = b.categories.sort_values(key).reset_index(drop=True)
    return ca.equals(cb)


# --- running --------------------------------------------------------------------------------


def _year(engine: Engine) -> tuple[dt.date, dt.date]:
    with engine.connect() as conn:
        last = conn.execute(
            text("SELECT max(reported_at AT TIME ZONE 'Asia/Shanghai') FROM incident")
        ).scalar_one()
    end = last.date() + dt.timedelta(days=1)
    return end - dt.timedelta(days=365), end


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=["street", "district"], default="district")
    ap.add_argument("--seed", type=int, default=get_settings().demo_seed)
    ap.add_argument("--runs", type=int, default=3, help="timed runs of the SQL way (best kept)")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--drop", action="store_true")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument(
        "--database", help="scratch database to use (default gridone_bench_kpis_<scale>)"
    )
    args = ap.parse_args()
    engine, name = prepare(
        args.scale, args.seed, regenerate=args.regenerate, database=args.database
    )
    try:
        start, end = _year(engine)
        with engine.connect() as conn:
            n_inc = conn.execute(text("SELECT count(*) FROM incident")).scalar_one()
            n_tr = conn.execute(text("SELECT count(*) FROM incident_transition")).scalar_one()
        print(f"scale {args.scale}: {n_inc:,} incidents, {n_tr:,} transitions")
        print(f"period [{start}, {end}) and the year before, as of the end; level street")

        def timed(slow: bool = False, **kw: bool) -> tuple[float, kp.UnitKpis]:
            best, res = float("inf"), None
            for _ in range(args.runs):
                with engine.connect() as conn:
                    t0 = time.perf_counter()
                    if slow:
                        with kp.from_incidents():
                            res = kp.kpis_by_unit(conn, "street", start, end, **kw)
                    else:
                        res = kp.kpis_by_unit(conn, "street", start, end, **kw)
                    best = min(best, time.perf_counter() - t0)
            assert res is not None
            return best, res

        with engine.connect() as conn:
            summed = summary_ready(conn)
        t_all, res = timed()
        t_cur, _ = timed(previous=False)
        t_norep, _ = timed(repeats=False)
        t_cur_norep, _ = timed(previous=False, repeats=False)
        way = "sums per street and day" if summed else "one grouped SQL statement"
        print(f"kpis_by_unit, {way} (best of {args.runs}):")
        print(f"  all KPIs, both years                  {t_all:7.2f} s")
        print(f"  all KPIs, this year only              {t_cur:7.2f} s")
        print(f"  without repeats, both years           {t_norep:7.2f} s")
        print(f"  without repeats, this year only       {t_cur_norep:7.2f} s")
        if summed:
            t_slow, slow = timed(slow=True)
            print(f"  from the incidents (KPI_FIGURES), all KPIs, both years {t_slow:7.2f} s")
            print(f"  ratio incidents / sums: {t_slow / t_all:.1f}x")
            print(f"  every figure the same both ways: {'yes' if same_kpis(res, slow) else 'NO'}")
        if args.skip_baseline:
            return
        t0 = time.perf_counter()
        base = pandas_kpis(engine, res.period)
        t_base = time.perf_counter() - t0
        same, worst_repeat = True, 0.0
        for k, sql_frame in ((0, res.current), (1, res.previous)):
            assert sql_frame is not None
            b = base[k].reindex(sql_frame.index.dropna())
            for col in base[0].columns:
                if col not in b:
                    b[col] = np.nan
                if col != "median_hours":
                    b[col] = b[col].fillna(0)
                got = sql_frame.loc[b.index, col].astype(float).to_numpy()
                want = b[col].astype(float).to_numpy()
                if col == "repeats":
                    worst_repeat = max(worst_repeat, float(np.abs(got - want).max()))
                elif not np.allclose(got, want, equal_nan=True):
                    same = False
                    print(f"  MISMATCH period {k} {col}: sql {got[:3]} pandas {want[:3]}")
        print(f"pandas + geopandas, read everything and loop: {t_base:7.2f} s")
        print(f"  every other count the same as the SQL's: {'yes' if same else 'NO'}")
        print(
            f"  repeats differ by at most {worst_repeat:.0f} per street: pairs within a "
            "millimetre of 30 m, measured in the Gauss-Krüger plane (scale > 1 off the "
            "central meridian) by pandas and on the ellipsoid by the SQL"
        )
        print(f"  ratio pandas / geo.kpis (all KPIs, both years): {t_base / t_all:.1f}x")
    finally:
        engine.dispose()
        if args.drop:
            drop_database(name)


if __name__ == "__main__":
    main()
