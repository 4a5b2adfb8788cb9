"""Benchmark: what row-level security costs the dashboard's queries (issue 7, 0003 and 0005).

Every query of the dashboard and the briefing that has a spatial predicate on a table with
a policy, or that reads many rows under one, runs three ways, each in its own transaction
(rolled back):

* ``owner``: as the tables' owner (a superuser, RLS bypassed), filtering on the street by
  hand where the application relies on its scope: the baseline;
* ``before``: as ``gridone_app`` (``SET LOCAL ROLE``, scope by :func:`store.access.scoped`)
  with the state before migration 0005 restored inside the transaction: 0003's policies
  and ``gridone_set_scope``, ``&&`` not LEAKPROOF (the self-join in its naive form);
* ``app``: as ``gridone_app`` now.

JIT is off on every side (``scoped`` turns it off for the application; the owner's
statements would otherwise pay up to seconds of compilation, which is not what RLS costs).
``ratio`` is app / owner; ``same`` says whether app and owner returned the same figures.
``>limit``: cancelled at ``--timeout`` seconds. The machine is shared: take the best of
``--runs``, and compare columns of one run rather than runs.

    .venv/bin/python benchmarks/rls.py [--database NAME | --scale district|street]
        [--runs N] [--timeout S] [--no-before] [--only TEXT] [--drop]

Without ``--database`` the demo is generated into the scratch database
``gridone_bench_access_<scale>`` on the configured server (kept unless ``--drop``); with
it, an existing copy of the demo is used (it is migrated to head first).
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import secrets
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import geopandas as gpd
import numpy as np
import pandas as pd
from psycopg.errors import InFailedSqlTransaction, QueryCanceled
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from benchmarks.bench_db import demo_database, drop_database, open_database
from geo import kpis as kp
from geo.overview import grid_kpis
from geo.period import as_instant
from store import coverage_sql as csql
from store import overview_sql as osql
from store import queries
from store.access import User, create_session, hash_password, scoped
from store.crs import metric_epsg_for_bounds
from store.settings import get_settings


def prepare(scale: str, seed: int) -> tuple[Engine, str]:
    """The benchmark database holding the demo at ``scale``, and its name."""
    name = f"gridone_bench_access_{scale}"
    return demo_database(name, scale, seed), name


def _same(a: Any, b: Any) -> bool:
    """Equal results (NaN equal to NaN; floats to 1e-9: a parallel sum adds in another
    order)."""
    if isinstance(a, gpd.GeoDataFrame):
        # centres summed in another order differ in the last bits
        if len(a) != len(b) or not bool(
            a.geometry.geom_equals_exact(b.geometry, tolerance=1e-9).all()
        ):
            return False
        return _same(
            pd.DataFrame(a.drop(columns="geometry")), pd.DataFrame(b.drop(columns="geometry"))
        )
    if isinstance(a, tuple) and a and isinstance(a[0], np.ndarray):
        # rows in any order (a COPY without ORDER BY)
        if len(a) != len(b) or any(x.shape != y.shape for x, y in zip(a, b, strict=True)):
            return False
        oa, ob = np.lexsort(a[::-1]), np.lexsort(b[::-1])
        return all(
            bool(np.allclose(x[oa], y[ob], equal_nan=True)) for x, y in zip(a, b, strict=True)
        )
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
        if type(a) is not type(b):
            return False
        return _same(*({f: getattr(x, f) for f in x.__dataclass_fields__} for x in (a, b)))
    return a == b


# --- spatial queries --------------------------------------------------------------------------
#
# ST_DWithin, ST_Intersects and && are not LEAKPROOF in PostGIS: under RLS the planner may not
# use them as GiST index conditions (they would see rows before the policy), so spatial
# joins lose their index. Migration 0005 marks && (geometry_overlaps) LEAKPROOF and the
# store's queries put an explicit && beside each exact predicate; "before" runs the same
# transaction with the mark undone (and the self-join in its old form).

#: 2,000 incidents of the street with their neighbours within ~30 m, as a query would
#: write it naively (the GiST index of b serves ST_DWithin only as the owner).
NEAR_NAIVE = (
    "SELECT count(*) FROM incident a JOIN incident b ON ST_DWithin(a.geom, b.geom, 0.0003) "
    "WHERE a.id IN (SELECT id FROM incident ORDER BY id LIMIT 2000)"
)
#: The owner's figure for one street: both sides limited to the street by hand.
NEAR_OWNER_STREET = (
    "SELECT count(*) FROM incident a JOIN incident b ON ST_DWithin(a.geom, b.geom, 0.0003) "
    "AND b.street_code = :s WHERE a.id IN (SELECT id FROM incident WHERE street_code = :s "
    "ORDER BY id LIMIT 2000)"
)
#: The same, written for RLS: the in-scope side first with its box, then && (LEAKPROOF, in
#: the index) against the other side and the exact test on the rows the policy passed.
NEAR_RLS = (
    "WITH a AS MATERIALIZED (SELECT id, geom, ST_Expand(geom, 0.0003) AS box FROM incident "
    "WHERE id IN (SELECT id FROM incident ORDER BY id LIMIT 2000)) "
    "SELECT count(*) FROM a JOIN incident b ON b.geom && a.box "
    "AND ST_DWithin(a.geom, b.geom, 0.0003)"
)


def _migration(name: str) -> ModuleType:
    """A migration module of store/migrations/versions by file name (without .py)."""
    path = Path(__file__).resolve().parent.parent / "store/migrations/versions" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_TOKENS: dict[tuple[str, str], str] = {}


def session_token(engine: Engine, role: str, scope: str) -> str:
    """The token of a live session of a benchmark user with ``role`` over ``scope`` (made
    in the scratch database once per run): since migration 0007 the application's scope
    comes from a session, not from a role and code passed in."""
    key = (role, scope)
    if key not in _TOKENS:
        login = f"bench-{role}-{scope}"
        with engine.begin() as conn:
            uid = conn.execute(
                text(
                    "INSERT INTO app_user (login, display_name, role, scope_code, "
                    "password_hash) VALUES (:l, :l, :r, :s, :h) "
                    "ON CONFLICT (login) DO UPDATE SET active = true RETURNING id"
                ),
                {
                    "l": login,
                    "r": role,
                    "s": scope,
                    "h": hash_password(conn, secrets.token_urlsafe(), 10),
                },
            ).scalar_one()
            _TOKENS[key] = create_session(conn, User(uid, login, login, role, scope))
    return _TOKENS[key]


def _set_scope_before(m: ModuleType) -> str:
    """0003's ``gridone_set_scope`` (what 0005 replaced), signing its settings as 0007's
    does, so that the policies 0005 left alone (gated by 0007) read as they do now."""
    sign = "  PERFORM set_config('gridone.sig', gridone_scope_sig(), true);\n"
    return m._SET_SCOPE_HEAD + sign + m._SET_SCOPE_TAIL


def run_once(
    engine: Engine,
    user: User | None,
    work: Callable[[Connection], Any],
    *,
    before: bool = False,
    timeout_s: int = 120,
) -> tuple[float, Any]:
    """Wall time and result of ``work`` in one transaction, rolled back: as the owner
    (``user`` None) or as gridone_app scoped to ``user``; with ``before`` the state before
    migration 0005 (its downgrade run inside the transaction first). A statement that
    runs past ``timeout_s`` gives the time ``inf`` and the result "timeout"."""
    token = session_token(engine, user.role, user.scope_code or "") if user is not None else ""
    with engine.connect() as conn, conn.begin() as tx:
        conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        if before:
            m = _migration("0005_rls_spatial")
            for statement in (m.UNMARK_SQL, m.policies_sql(before=True), _set_scope_before(m)):
                conn.execute(text(statement))
        conn.execute(text(f"SET LOCAL statement_timeout = '{int(timeout_s)}s'"))
        # as gridone_app logs in after 0005 (SET ROLE does not apply a role's settings);
        # the owner likewise, so that the ratio is what RLS costs, not JIT compilation
        conn.execute(text("SET LOCAL jit = off"))
        t0 = time.perf_counter()
        if user is not None:
            conn.execute(text("SET LOCAL ROLE gridone_app"))
            scoped(conn, token)
        try:
            result = work(conn)
        except DBAPIError as exc:
            # a timeout, or the failed transaction a function's cleanup met after one
            if not isinstance(exc.orig, QueryCanceled | InFailedSqlTransaction):
                raise
            tx.rollback()
            return float("inf"), "timeout"
        elapsed = time.perf_counter() - t0
        tx.rollback()
    return elapsed, result


def best(engine: Engine, runs: int, user: User | None, work, **kw) -> tuple[float, Any]:
    """Best of ``runs`` :func:`run_once`; stops early after a timeout."""
    out: tuple[float, Any] = (float("inf"), None)
    for _ in range(runs):
        t, r = run_once(engine, user, work, **kw)
        out = (min(out[0], t), r)
        if t == float("inf"):
            break
    return out


def _fmt(t: float) -> str:
    return f"{t:8.3f}" if t != float("inf") else "  >limit"


def _scalar(sql: str, **params: Any) -> Callable[[Connection], Any]:
    return lambda c: c.execute(text(sql), params).scalar_one()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=["street", "district"], default="district")
    ap.add_argument("--database", help="an existing scratch database (default: generated)")
    ap.add_argument("--seed", type=int, default=get_settings().demo_seed)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--timeout", type=int, default=60, help="seconds per statement")
    ap.add_argument("--no-before", action="store_true", help="skip the pre-0005 runs")
    ap.add_argument("--only", help="run only the cases whose label contains this")
    ap.add_argument("--drop", action="store_true")
    args = ap.parse_args()
    if args.database:
        engine, name = open_database(args.database), args.database
    else:
        engine, name = prepare(args.scale, args.seed)
    try:
        cases = _cases(engine)
        print(f"{'query':58s} {'owner':>8s} {'before':>8s} {'app':>8s} {'ratio':>6s}  same")
        for label, user, as_app, as_owner, as_app_before in cases:
            if args.only and args.only not in label:
                continue
            t_owner, r_owner = best(engine, args.runs, None, as_owner, timeout_s=args.timeout)
            t_before = float("nan")
            if not args.no_before and as_app_before is not None:
                t_before, _ = best(
                    engine, 1, user, as_app_before, before=True, timeout_s=args.timeout
                )
            t_app, r_app = best(engine, args.runs, user, as_app, timeout_s=args.timeout)
            same = _same(r_owner, r_app)
            print(
                f"{label:58s} {_fmt(t_owner)} {_fmt(t_before)} {_fmt(t_app)} "
                f"{t_app / t_owner:6.2f}  {'yes' if same else 'NO'}",
                flush=True,
            )
        with engine.connect() as conn, conn.begin():
            token = session_token(engine, "street", _street(engine))
            conn.execute(text("SET LOCAL ROLE gridone_app"))
            scoped(conn, token)
            plan = conn.execute(text("EXPLAIN " + NEAR_RLS)).scalars().all()
        print("plan of the spatial self-join as gridone_app (street scope):")
        print("\n".join("  " + line for line in plan))
    finally:
        engine.dispose()
        if args.drop:
            drop_database(name)


def _street(engine: Engine) -> str:
    """The street with the most incidents."""
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT street_code FROM incident GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
        ).scalar_one()


def _cases(engine: Engine) -> list[tuple[str, User, Any, Any, Any]]:
    """(label, user, as the app, as the owner, as the app before 0005 or None)."""
    with engine.connect() as conn:
        district = conn.execute(
            text("SELECT min(code) FROM admin_unit WHERE level = 'district'")
        ).scalar_one()
        last = conn.execute(
            text("SELECT max(reported_at AT TIME ZONE 'Asia/Shanghai') FROM incident")
        ).scalar_one()
        n_inc = conn.execute(text("SELECT count(*) FROM incident")).scalar_one()
        day = conn.execute(text("SELECT max(fixed_at) FROM patrol_fix")).scalar_one()
    street = _street(engine)
    end = last.date() + dt.timedelta(days=1)
    start = end - dt.timedelta(days=365)
    q_start = end - dt.timedelta(days=91)
    since, until = as_instant(start), as_instant(end)
    d_user = User(0, "bench-district", "区", "district", district)
    s_user = User(0, "bench-street", "街道", "street", street)
    fix_day = day.astimezone(dt.timezone(dt.timedelta(hours=8))).date()
    t0 = dt.datetime.combine(fix_day, dt.time(), dt.timezone(dt.timedelta(hours=8)))
    t1 = t0 + dt.timedelta(days=1)
    with engine.connect() as conn:
        ext = csql.grid_extent(conn, street=street)
    assert ext is not None
    metric = metric_epsg_for_bounds(ext)
    print(
        f"{n_inc:,} incidents; district {district}, street {street}; KPI period "
        f"[{start}, {end}); fixes of {fix_day}"
    )

    def both(fn: Callable[..., Any], **kw: Any) -> tuple[Any, Any]:
        """As the app (no street filter: the scope is the street) and as the owner."""
        return (lambda c: fn(c, **kw)), (lambda c: fn(c, street_code=street, **kw))

    inc_counts = both(
        queries.grid_incident_counts, since=as_instant(q_start), until=until, category=None
    )
    edges = [as_instant(q_start + dt.timedelta(days=7 * k)) for k in range(14)]
    bins = both(queries.grid_incident_bin_counts, edges=edges, category=None)
    lonlat = (
        lambda c: queries.incident_lonlat(c, since=since, until=until),
        lambda c: queries.incident_lonlat(c, since=since, until=until),
    )
    clusters = both(
        queries.repeat_location_clusters,
        since=as_instant(q_start),
        until=until,
        eps_m=30.0,
        min_count=3,
        metric_srid=metric,
        category=None,
    )
    box = (ext[0] - 0.001, ext[1] - 0.001, ext[2] + 0.001, ext[3] + 0.001)
    roads = (lambda c: csql.roads(c, metric, box),) * 2

    def kpis_street(unit: str | None) -> Callable[[Connection], Any]:
        return lambda c: kp.kpis(c, unit=unit, start=start, end=end).figures

    cases: list[tuple[str, User, Any, Any, Any]] = [
        ("count(*) incident, district", d_user, *((_scalar("SELECT count(*) FROM incident"),) * 3)),
        (
            "count(*) incident, street",
            s_user,
            _scalar("SELECT count(*) FROM incident"),
            _scalar("SELECT count(*) FROM incident WHERE street_code = :s", s=street),
            _scalar("SELECT count(*) FROM incident"),
        ),
        (
            "count(*) patrol_fix, one day, district",
            d_user,
            *(
                (
                    _scalar(
                        "SELECT count(*) FROM patrol_fix WHERE fixed_at >= :a AND fixed_at < :b",
                        a=t0,
                        b=t1,
                    ),
                )
                * 3
            ),
        ),
        (
            "spatial self-join, 2,000 x <30 m, street",
            s_user,
            _scalar(NEAR_RLS),
            _scalar(NEAR_OWNER_STREET, s=street),
            _scalar(NEAR_NAIVE),
        ),
        (
            "spatial self-join, 2,000 x <30 m, district",
            d_user,
            _scalar(NEAR_RLS),
            _scalar(NEAR_NAIVE),
            _scalar(NEAR_NAIVE),
        ),
        ("grid_incident_counts (hotspots, 91 d), street", s_user, *inc_counts, inc_counts[0]),
        ("grid_incident_bin_counts (emerging, 13 w), street", s_user, *bins, bins[0]),
        ("repeat_location_clusters (91 d), street", s_user, *clusters, clusters[0]),
        ("coverage roads && street box, street", s_user, *roads, roads[0]),
        ("incident_lonlat (KDE/hex, 1 y), district", d_user, *lonlat, lonlat[0]),
        (
            "kpis(street) with repeats, district user",
            d_user,
            kpis_street(street),
            kpis_street(street),
            kpis_street(street),
        ),
        (
            "kpis(street) with repeats, street user (unit=None)",
            s_user,
            kpis_street(None),
            kpis_street(street),
            kpis_street(None),
        ),
        (
            "kpis_by_unit(street), every street, with repeats",
            d_user,
            *((lambda c: kp.kpis_by_unit(c, "street", start, end).current,) * 3),
        ),
        (
            "coverage fixes, one day, street",
            s_user,
            *((lambda c: len(csql.fixes(c, t0, t1, street=street)),) * 3),
        ),
        (
            "overview incident_counts per grid (91 d), district",
            d_user,
            *(
                (
                    lambda c: osql.incident_counts(c, since=as_instant(q_start), until=until).drop(
                        columns="geometry"
                    ),
                )
                * 3
            ),
        ),
        (
            "overview grid_kpis (kpis_by_unit grid, 91 d), street",
            s_user,
            lambda c: grid_kpis(c, q_start, end).current,
            lambda c: grid_kpis(c, q_start, end, street=street).current,
            lambda c: grid_kpis(c, q_start, end).current,
        ),
        (
            "grids with building counts (store.queries.grids), district",
            d_user,
            *((lambda c: queries.grids(c).drop(columns="geometry"),) * 3),
        ),
    ]
    return cases


if __name__ == "__main__":
    main()
