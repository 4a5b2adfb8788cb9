"""Row-level security, attacked as the dashboard's own database role.

Every test connects as ``gridone_app`` (a per-session login that is a member of it and has
nothing of its own, then ``SET ROLE gridone_app``: exactly its privileges) with raw SQL
through psycopg, sets a scope as the dashboard would, and tries to reach another street's
rows by every route: read, count, join, aggregate, COPY, leaky functions, statistics. The
expected figures are read as the owner from the same tables, never typed in.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors, sql
from sqlalchemy import Engine, text

from store import kpi_summary
from store.access import scoped
from store.db import make_engine
from store.errors import UnsafeConnectionError
from tests import access_data, conftest
from tests.access_data import (
    DISTRICT,
    GRIDS,
    STREET_A,
    STREET_B,
)

APP = "gridone_app"
#: (table, street column, grid column) of every table row-level security scopes.
SCOPED = (
    ("grid", "street_code", "code"),
    ("staff_assignment", "street_code", "grid_code"),
    ("building", "street_code", "grid_code"),
    ("housing_unit", "street_code", "grid_code"),
    ("key_place", "street_code", "grid_code"),
    ("facility", "street_code", "grid_code"),
    ("incident", "street_code", "grid_code"),
    ("incident_transition", "street_code", "grid_code"),
    ("patrol_fix", "street_code", "grid_code"),
    ("patrol", "street_code", "grid_code"),
    ("work_log", "street_code", "grid_code"),
    ("coverage_building_day", "street_code", "grid_code"),
)
#: Everything the application may SELECT that holds data (tables and views).
#: Tables with a street code only (the KPI sums, migration 0004): readable in a district or
#: street scope, never in a community or grid scope (a street's sums say too much there).
STREET_ONLY = (
    "kpi_street_day",
    "kpi_street_day_category",
    "kpi_street_month_category",
    "kpi_dirty_day",
)
READABLE = (
    *(t for t, _, _ in SCOPED),
    *STREET_ONLY,
    "staff",
    "admin_unit",
    "road",
    "data_source",
    "coverage_day",
    "special_group_by_grid",
    "staff_phone",
)
#: Scopes that must read nothing: (role, scope).
JUNK_SCOPES = (
    (None, None),
    ("", ""),
    ("street", ""),
    ("street", "%"),
    ("street", STREET_A),  # the 12-digit code instead of its 9-digit prefix
    ("street", "370214"),  # a district prefix under a street role
    ("grid", STREET_A[:9]),
    ("district", "3702149"),
    ("street", "370214900' OR '1'='1"),
    ("district' OR '1'='1", "370214"),
    ("admin", "370214"),
    ("sysadmin", "370214"),
    ("auditor", "370214"),
)


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rls_db(server: conftest.TestServer, template_db: str) -> Iterator[tuple[str, Engine]]:
    """A database holding two streets (see tests/access_data.py), as (name, owner engine)."""
    with access_data.two_streets(server, template_db, "rls", kpi_summary.refresh) as made:
        _OWNER[:] = [made[1]]
        yield made


@pytest.fixture
def app(server: conftest.TestServer, rls_db, app_login) -> Iterator[psycopg.Connection]:
    """A raw psycopg connection as gridone_app to the two-street database."""
    with access_data.raw_app_conn(server, rls_db[0], app_login) as conn:
        yield conn


#: The owner engine of the two-street database (set by ``rls_db``), to make sessions.
_OWNER: list[Engine] = []


def _scope(
    conn: psycopg.Connection, role: str | None, scope: str | None, staff: str | None = None
) -> None:
    """What the dashboard does first in each transaction: the scope of a live session of a
    user with ``role`` over ``scope`` (bound parameters; the database looks the user up).
    No role: a token no session has."""
    token = (
        access_data.session_token(_OWNER[0], role, scope, staff=staff) if role else "no such token"
    )
    conn.execute("SELECT gridone_scope_session(%s)", (token,))


def q(template: str, **names: str) -> sql.Composed:
    """A statement with table and column names quoted as identifiers."""
    return sql.SQL(template).format(**{k: sql.Identifier(v) for k, v in names.items()})


def _owner_count(engine: Engine, table: str, column: str | None = None, like: str = "%") -> int:
    """Rows of ``table`` (where ``column`` LIKE ``like``), counted by the owner."""
    with engine.raw_connection() as raw:
        cur = raw.cursor()
        if column is None:
            cur.execute(q("SELECT count(*) FROM {t}", t=table))
        else:
            cur.execute(q("SELECT count(*) FROM {t} WHERE {c} LIKE %s", t=table, c=column), [like])
        return int(cur.fetchone()[0])


# --- the role itself ----------------------------------------------------------------------------


def test_app_role_owns_nothing_and_bypasses_nothing(app: psycopg.Connection) -> None:
    row = app.execute(
        "SELECT current_user, r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb, "
        "(SELECT count(*) FROM pg_class WHERE relowner = r.oid) "
        "+ (SELECT count(*) FROM pg_proc WHERE proowner = r.oid) "
        "+ (SELECT count(*) FROM pg_namespace WHERE nspowner = r.oid) "
        "FROM pg_roles r WHERE r.rolname = current_user"
    ).fetchone()
    assert row == (APP, False, False, False, False, 0)
    # and it cannot change that
    for stmt in (
        "ALTER ROLE gridone_app BYPASSRLS",
        "ALTER TABLE incident DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE incident NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY scope_read ON incident",
        "CREATE FUNCTION public.leak() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "SET ROLE gridone",
    ):
        with pytest.raises(errors.InsufficientPrivilege):
            app.execute(stmt)
        app.rollback()
        app.execute("SET ROLE gridone_app")


@pytest.mark.parametrize(("role", "scope"), JUNK_SCOPES)
def test_no_or_malformed_scope_reads_nothing(
    app: psycopg.Connection, rls_db, role: str | None, scope: str | None
) -> None:
    """The application may not call gridone_set_scope at all (0004); the owner's call with
    a scope that does not fit the role sets empty ranges."""
    assert _owner_count(rls_db[1], "incident") > 0
    with pytest.raises(errors.InsufficientPrivilege):
        app.execute("SELECT gridone_set_scope(%s, %s)", (role, scope))
    app.rollback()
    with rls_db[1].connect() as owner:
        ok, lo = owner.execute(
            text("SELECT gridone_set_scope(:r, :s), current_setting('gridone.street_lo', true)"),
            {"r": role, "s": scope},
        ).one()
    assert (ok, lo) == (False, "")
    _scope(app, None, None)
    for table in READABLE:
        assert app.execute(q("SELECT count(*) FROM {t}", t=table)).fetchone() == (0,), table
        assert app.execute(q("SELECT 1 FROM {t} LIMIT 1", t=table)).fetchone() is None, table
    app.rollback()


def test_role_and_scope_set_by_hand_read_nothing(app: psycopg.Connection) -> None:
    """Only gridone_set_scope sets the ranges the policies compare with."""
    app.execute(
        "SELECT set_config('gridone.role', 'district', true), "
        "set_config('gridone.scope', '370214', true)"
    )
    for table in READABLE:
        assert app.execute(q("SELECT count(*) FROM {t}", t=table)).fetchone() == (0,), table
    app.rollback()


def test_scope_ends_with_the_transaction(app: psycopg.Connection, rls_db) -> None:
    _scope(app, "street", STREET_A[:9])
    assert app.execute("SELECT count(*) FROM incident").fetchone()[0] > 0
    app.commit()
    assert app.execute("SELECT count(*) FROM incident").fetchone() == (0,)
    app.rollback()


# --- a street leader and another street --------------------------------------------------------


@pytest.mark.parametrize(("table", "street", "grid"), SCOPED)
def test_street_reads_its_street_only(
    app: psycopg.Connection, rls_db, table: str, street: str, grid: str
) -> None:
    engine = rls_db[1]
    want_a = _owner_count(engine, table, street, STREET_A)
    assert want_a > 0 and _owner_count(engine, table, street, STREET_B) > 0
    _scope(app, "street", STREET_A[:9])
    got = app.execute(
        q("SELECT count(*), count(DISTINCT {s}), min({s}) FROM {t}", s=street, t=table)
    )
    assert got.fetchone() == (want_a, 1, STREET_A)
    other = app.execute(q("SELECT count(*) FROM {t} WHERE {s} = %s", t=table, s=street), [STREET_B])
    assert other.fetchone() == (0,)
    like = app.execute(
        q("SELECT count(*) FROM {t} WHERE {g} LIKE %s", t=table, g=grid), [STREET_B[:9] + "%"]
    )
    assert like.fetchone() == (0,)
    app.rollback()


def test_other_street_by_id_join_aggregate_and_subquery(app: psycopg.Connection, rls_db) -> None:
    engine = rls_db[1]
    with engine.connect() as c:
        b_ids = c.execute(
            text("SELECT id FROM incident WHERE street_code = :s"), {"s": STREET_B}
        ).scalars()
        b_ids = list(b_ids)
    assert b_ids
    _scope(app, "street", STREET_A[:9])
    attempts = {
        "by id": ("SELECT count(*) FROM incident WHERE id = ANY(%s)", (b_ids,)),
        "join": (
            "SELECT count(*) FROM incident i JOIN grid g ON g.code = i.grid_code "
            "WHERE g.street_code = %s",
            (STREET_B,),
        ),
        "join through transitions": (
            "SELECT count(*) FROM incident_transition t "
            "JOIN incident i ON i.id = t.incident_id WHERE i.street_code = %s",
            (STREET_B,),
        ),
        "aggregate": (
            "SELECT count(*) FROM (SELECT street_code, count(*) FROM incident "
            "GROUP BY street_code) x WHERE street_code = %s",
            (STREET_B,),
        ),
        "exists": (
            "SELECT count(*) FROM grid g WHERE EXISTS "
            "(SELECT 1 FROM building b WHERE b.street_code = %s)",
            (STREET_B,),
        ),
        "union": (
            "SELECT count(*) FROM (SELECT street_code FROM building UNION ALL "
            "SELECT street_code FROM key_place UNION ALL SELECT street_code FROM work_log) u "
            "WHERE street_code = %s",
            (STREET_B,),
        ),
        "spatial": (
            "SELECT count(*) FROM incident i JOIN admin_unit a ON ST_Intersects(a.geom, i.geom) "
            "WHERE i.street_code = %s OR a.code = %s",
            (STREET_B, STREET_B),
        ),
        "window": (
            "SELECT count(*) FROM (SELECT street_code, count(*) OVER () FROM patrol_fix) x "
            "WHERE street_code = %s",
            (STREET_B,),
        ),
        "staff": ("SELECT count(*) FROM staff WHERE street_code = %s", (STREET_B,)),
        "admin unit": ("SELECT count(*) FROM admin_unit WHERE code = %s", (STREET_B,)),
        "special groups": (
            "SELECT count(*) FROM special_group_by_grid WHERE street_code = %s",
            (STREET_B,),
        ),
        "phones": (
            "SELECT count(*) FROM staff_phone p JOIN staff s USING (id) WHERE s.street_code = %s",
            (STREET_B,),
        ),
    }
    for name, (query, params) in attempts.items():
        assert app.execute(query, params).fetchone() == (0,), name
    # the error channel: a division by zero only if the other street's rows were visible
    app.execute(
        "SELECT 1 / (CASE WHEN EXISTS (SELECT 1 FROM incident WHERE street_code = %s) "
        "THEN 0 ELSE 1 END)",
        (STREET_B,),
    )
    app.rollback()


def _copy_lines(conn: psycopg.Connection, statement: sql.Composed) -> list[str]:
    with conn.cursor().copy(statement) as copy:
        data = b"".join(bytes(chunk) for chunk in copy)
    return data.decode().splitlines()


def test_copy_exports_only_the_scope(app: psycopg.Connection, rls_db) -> None:
    engine = rls_db[1]
    _scope(app, "street", STREET_A[:9])
    for table in ("incident", "housing_unit", "building", "patrol_fix"):
        lines = _copy_lines(app, q("COPY (SELECT street_code FROM {t}) TO STDOUT", t=table))
        assert lines and set(lines) == {STREET_A}, table
        assert len(lines) == _owner_count(engine, table, "street_code", STREET_A)
        whole = _copy_lines(app, q("COPY {t} TO STDOUT", t=table))
        assert not any(STREET_B in line for line in whole), table
        if table != "patrol_fix":  # COPY of a partitioned parent gives no rows
            assert len(whole) == len(lines), table
    app.rollback()
    with pytest.raises(errors.InsufficientPrivilege):
        app.execute("COPY incident TO '/tmp/gridone_leak.csv'")
    app.rollback()


def test_leaky_function_sees_only_policy_rows(app: psycopg.Connection, rls_db) -> None:
    """A function in pg_temp that reports every value it is called with: RLS quals run
    first (security barrier), so it never sees another street's row."""
    seen: list[str] = []
    app.add_notice_handler(lambda d: seen.append(d.message_primary or ""))
    app.execute(
        "CREATE FUNCTION pg_temp.leak(text) RETURNS boolean LANGUAGE plpgsql "
        "COST 0.0000001 AS $$ BEGIN RAISE NOTICE 'seen %', $1; RETURN true; END $$"
    )
    _scope(app, "street", STREET_A[:9])
    app.execute("SELECT count(*) FROM incident WHERE pg_temp.leak(street_code)").fetchone()
    app.execute("SELECT count(*) FROM housing_unit WHERE pg_temp.leak(street_code)").fetchone()
    assert seen and {s.split()[-1] for s in seen} == {STREET_A}
    app.rollback()


def test_planner_statistics_do_not_leak(app: psycopg.Connection) -> None:
    _scope(app, "street", STREET_A[:9])
    got = app.execute(
        "SELECT count(*) FROM pg_stats WHERE tablename IN ('incident', 'building', 'grid')"
    )
    assert got.fetchone() == (0,)
    app.rollback()


def test_no_direct_path_around_the_policies(app: psycopg.Connection) -> None:
    """Partitions, the per-unit special-group table, phone numbers, the owner's views and
    writes are not granted at all."""
    _scope(app, "district", DISTRICT[:6])
    for stmt in (
        "SELECT count(*) FROM patrol_fix_2026_11",
        "SELECT count(*) FROM housing_special_count",
        "SELECT phone FROM staff",
        "SELECT * FROM staff",
        "SELECT count(*) FROM incident_status_mismatch",
        "UPDATE incident SET title = 'x'",
        "DELETE FROM building",
        "INSERT INTO work_log (worker_id, log_date, street_code, body) "
        "VALUES (1, '2026-11-01', '370214900000', 'x')",
        "TRUNCATE incident",
        "UPDATE audit_log SET ok = false",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "DELETE FROM app_user",
    ):
        with pytest.raises(errors.InsufficientPrivilege):
            app.execute(stmt)
        app.rollback()
        _scope(app, "district", DISTRICT[:6])
    app.rollback()


# --- other roles --------------------------------------------------------------------------------


@pytest.mark.parametrize(("table", "street", "grid"), SCOPED)
def test_grid_worker_reads_own_grid_only(
    app: psycopg.Connection, rls_db, table: str, street: str, grid: str
) -> None:
    own, neighbour = GRIDS[0], GRIDS[1]  # same community, same street
    want = _owner_count(rls_db[1], table, grid, own)
    assert want > 0 and _owner_count(rls_db[1], table, grid, neighbour) > 0
    _scope(app, "grid", own)
    got = app.execute(q("SELECT count(*), min({g}), max({g}) FROM {t}", g=grid, t=table))
    assert got.fetchone() == (want, own, own)
    other = app.execute(q("SELECT count(*) FROM {t} WHERE {g} = %s", t=table, g=grid), [neighbour])
    assert other.fetchone() == (0,)
    app.rollback()


def test_grid_worker_sees_own_staff_and_ancestors_only(app: psycopg.Connection, rls_db) -> None:
    _scope(app, "grid", GRIDS[0])
    staff = [r[0] for r in app.execute("SELECT code FROM staff ORDER BY code")]
    units = [r[0] for r in app.execute("SELECT code FROM admin_unit ORDER BY code")]
    app.rollback()
    with rls_db[1].connect() as c:
        want = c.execute(
            text(
                "SELECT s.code FROM staff s JOIN staff_assignment a ON a.staff_id = s.id "
                "WHERE a.grid_code = :g ORDER BY 1"
            ),
            {"g": GRIDS[0]},
        ).scalars()
        want = list(want)
    assert staff == want and len(staff) == 1
    assert units == [DISTRICT, STREET_A, GRIDS[0][:12]]


def test_community_reads_its_grids(app: psycopg.Connection, rls_db) -> None:
    community = GRIDS[0][:12]
    want = _owner_count(rls_db[1], "incident", "grid_code", community + "%")
    _scope(app, "community", community)
    got = app.execute("SELECT count(*), count(DISTINCT grid_code) FROM incident").fetchone()
    assert got == (want, 2)
    assert app.execute("SELECT count(*) FROM special_group_by_grid").fetchone() == (0,)
    app.rollback()


def test_district_reads_both_streets(app: psycopg.Connection, rls_db) -> None:
    _scope(app, "district", DISTRICT[:6])
    for table, street, _ in SCOPED:
        got = app.execute(q("SELECT count(*), count(DISTINCT {s}) FROM {t}", s=street, t=table))
        assert got.fetchone() == (_owner_count(rls_db[1], table), 2), table
    app.rollback()


@pytest.mark.parametrize("role", ["sysadmin", "auditor"])
def test_sysadmin_and_auditor_read_no_data(app: psycopg.Connection, role: str) -> None:
    for scope in ("", DISTRICT[:6], STREET_A[:9]):
        _scope(app, role, scope)
        for table in READABLE:
            assert app.execute(q("SELECT count(*) FROM {t}", t=table)).fetchone() == (0,), table
        app.rollback()


def test_only_the_auditor_reads_the_audit_log(app: psycopg.Connection) -> None:
    _scope(app, "street", STREET_A[:9])  # the application writes as its session (0011)
    app.execute("SELECT gridone_audit('page_view', true, NULL, NULL)")
    app.commit()
    for role, scope in (("district", "370214"), ("sysadmin", ""), ("street", "370214900")):
        _scope(app, role, scope)
        assert app.execute("SELECT count(*) FROM audit_log").fetchone() == (0,), role
        app.rollback()
    _scope(app, "auditor", "")
    assert app.execute("SELECT count(*) FROM audit_log").fetchone()[0] >= 1
    app.rollback()


# --- sensitive data ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["district", "street"])
def test_special_groups_as_sums_per_grid(app: psycopg.Connection, rls_db, role: str) -> None:
    scope = DISTRICT[:6] if role == "district" else STREET_A[:9]
    with rls_db[1].connect() as c:
        want = c.execute(
            text(
                "SELECT grid_code, sum(n_released_prisoners)::int, sum(n_drug_users)::int "
                "FROM housing_special_count WHERE street_code LIKE :p GROUP BY 1 ORDER BY 1"
            ),
            {"p": scope + "%"},
        ).all()
    _scope(app, role, scope)
    got = app.execute(
        "SELECT grid_code, n_released_prisoners, n_drug_users FROM special_group_by_grid ORDER BY 1"
    ).fetchall()
    app.rollback()
    assert got == [tuple(r) for r in want] and len(got) == (4 if role == "district" else 3)


@pytest.mark.parametrize("role", ["community", "grid"])
def test_special_groups_hidden_from_community_and_grid(app: psycopg.Connection, role: str) -> None:
    _scope(app, role, GRIDS[0][: 12 if role == "community" else 15])
    assert app.execute("SELECT count(*) FROM special_group_by_grid").fetchone() == (0,)
    app.rollback()


def test_phones_masked_except_own_and_district(app: psycopg.Connection, rls_db) -> None:
    with rls_db[1].connect() as c:
        phones = dict(c.execute(text("SELECT id, phone FROM staff")).all())
        codes = dict(c.execute(text("SELECT code, id FROM staff")).all())
    _scope(app, "street", STREET_A[:9], staff="W0")
    got = dict(app.execute("SELECT id, phone FROM staff_phone").fetchall())
    app.rollback()
    assert len(got) == 3
    for sid, phone in got.items():
        if sid == codes["W0"]:
            assert phone == phones[sid]
        else:
            assert phone == phones[sid][:3] + "****" + phones[sid][-4:]
    _scope(app, "district", DISTRICT[:6])
    assert dict(app.execute("SELECT id, phone FROM staff_phone").fetchall()) == phones
    app.rollback()


# --- through store.access.scoped and the store's queries ----------------------------------------


@pytest.fixture
def app_engine(server: conftest.TestServer, rls_db, app_login) -> Iterator[Engine]:
    engine = access_data.app_engine(server, rls_db[0], app_login)
    yield engine
    engine.dispose()


def test_scoped_limits_the_store_queries(app_engine: Engine, rls_db) -> None:
    from store import queries

    leader = access_data.session_token(rls_db[1], "street", STREET_A[:9])
    with app_engine.begin() as conn:
        assert scoped(conn, leader)
        own = queries.incidents(conn)
        other = queries.incidents(conn, street_code=STREET_B)
        other_grids = queries.grids(conn, street_code=STREET_B)
        other_count = queries.incident_count(conn, street_code=STREET_B)
        streets = queries.street_names(conn)
    assert len(own) == _owner_count(rls_db[1], "incident", "street_code", STREET_A)
    assert (len(other), len(other_grids), other_count) == (0, 0, 0)
    assert streets == {STREET_A: "甲街道"}


def test_every_street_filter_of_the_store_finds_nothing_of_another_street(
    app_engine: Engine, rls_db
) -> None:
    """What a crafted URL (?street=<another street>) would reach: each query of store/ that
    takes a street, and the KPIs of geo/, asked for street B by street A's leader."""
    import datetime as dt

    from geo import kpis
    from store import queries

    since = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    until = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    leader = access_data.session_token(rls_db[1], "street", STREET_A[:9])
    with app_engine.begin() as conn:
        assert scoped(conn, leader)
        b = STREET_B
        sizes = {
            "admin_units": len(queries.admin_units(conn, "community", street_code=b)),
            "grids": len(queries.grids(conn, street_code=b)),
            "buildings": len(queries.buildings(conn, street_code=b)),
            "incidents": len(queries.incidents(conn, street_code=b)),
            "grid_incident_counts": len(queries.grid_incident_counts(conn, street_code=b)),
            "incident_count": queries.incident_count(conn, street_code=b),
            "incident_lonlat": len(queries.incident_lonlat(conn, street_code=b)[0]),
            "incident_lonlat_time": len(queries.incident_lonlat_time(conn, street_code=b)[0]),
            "grid_incident_bin_counts": len(
                queries.grid_incident_bin_counts(conn, edges=[since, until], street_code=b)
            ),
            "repeat_location_clusters": len(
                queries.repeat_location_clusters(
                    conn,
                    since=since,
                    until=until,
                    eps_m=1000,
                    min_count=1,
                    metric_srid=4549,
                    street_code=b,
                )
            ),
            "incident_extent": queries.incident_extent(conn, street_code=b) is not None,
            "patrol_fixes_exist": queries.patrol_fixes_exist(
                conn, since=since, until=until, street_code=b
            ),
        }
        report = kpis.kpis(conn, unit=b, start="2026-11-01", end="2026-12-01")
        own = kpis.kpis(conn, unit=STREET_A, start="2026-11-01", end="2026-12-01")
    assert all(not v for v in sizes.values()), sizes
    assert (report.figures.reported, report.figures.open_overdue) == (0, 0)
    assert own.figures.reported == _owner_count(rls_db[1], "incident", "street_code", STREET_A)


@pytest.mark.parametrize("table", STREET_ONLY[:3])
def test_kpi_sums_by_scope(app: psycopg.Connection, rls_db, table: str) -> None:
    """The KPI sums: a street reads its own rows, the district both streets', a community
    none."""
    engine = rls_db[1]
    want_a = _owner_count(engine, table, "street_code", STREET_A)
    assert want_a > 0 and _owner_count(engine, table, "street_code", STREET_B) > 0
    _scope(app, "street", STREET_A[:9])
    got = app.execute(q("SELECT count(*), min(street_code), max(street_code) FROM {t}", t=table))
    assert got.fetchone() == (want_a, STREET_A, STREET_A)
    app.rollback()
    _scope(app, "district", DISTRICT[:6])
    got = app.execute(q("SELECT count(*) FROM {t}", t=table)).fetchone()
    assert got == (_owner_count(engine, table),)
    app.rollback()
    _scope(app, "community", "370214900001")
    assert app.execute(q("SELECT count(*) FROM {t}", t=table)).fetchone() == (0,)
    app.rollback()


def test_kpis_in_a_scope_equal_the_owners(app_engine: Engine, rls_db) -> None:
    """geo.kpis in a street scope (from the sums) and in a community scope (from the
    incidents: the sums are not readable there) equal what the owner computes."""
    from geo import kpis

    period = {"start": "2026-01-01", "end": "2027-01-01"}
    with rls_db[1].connect() as conn:
        own_street = kpis.kpis(conn, unit=STREET_A, **period).figures
        own_community = kpis.kpis(conn, unit="370214900001", **period).figures
    assert own_street.reported > 0
    with app_engine.begin() as conn:
        assert scoped(conn, access_data.session_token(rls_db[1], "street", STREET_A[:9]))
        assert kpi_summary.usable(conn, dict(kpi_summary.DEFAULT_RULE))
        assert kpis.kpis(conn, unit=STREET_A, **period).figures == own_street
    with app_engine.begin() as conn:
        assert scoped(conn, access_data.session_token(rls_db[1], "community", "370214900001"))
        assert not kpi_summary.usable(conn, dict(kpi_summary.DEFAULT_RULE))
        assert kpis.kpis(conn, unit="370214900001", **period).figures == own_community


def test_scoped_with_a_forged_token_reads_nothing(app_engine: Engine) -> None:
    for forged in ("", "370214900' OR '1'='1", "x" * 43):
        with app_engine.begin() as conn:
            assert not scoped(conn, forged)
            assert conn.execute(text("SELECT count(*) FROM incident")).scalar_one() == 0


def test_scoped_refuses_a_connection_rls_does_not_bind(rls_db) -> None:
    token = access_data.session_token(rls_db[1], "street", STREET_A[:9])
    with rls_db[1].begin() as conn, pytest.raises(UnsafeConnectionError, match="gridone_app"):
        scoped(conn, token)


def test_downgrade_removes_the_policies_and_upgrade_restores_them(
    server: conftest.TestServer, template_db: str
) -> None:
    from alembic import command

    from store.migrate import alembic_config, upgrade

    name = server.create("down", template=template_db)
    engine = make_engine(server.url(name))
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0002")  # through 0004
        with engine.connect() as conn:
            left = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM pg_policies WHERE schemaname = 'public'), "
                    "(SELECT count(*) FROM pg_class WHERE relrowsecurity "
                    "AND relnamespace = 'public'::regnamespace), "
                    "to_regclass('audit_log') IS NULL, "
                    "(SELECT count(*) FROM pg_roles WHERE rolname = 'gridone_app')"
                )
            ).one()
        assert tuple(left) == (0, 0, True, 1)  # the cluster's role stays
        upgrade(engine)
        with engine.connect() as conn:
            tables = conn.execute(
                text(
                    "SELECT count(*) FROM pg_class WHERE relrowsecurity AND relforcerowsecurity "
                    "AND relnamespace = 'public'::regnamespace"
                )
            ).scalar_one()
        assert tables == len(SCOPED) + len(STREET_ONLY) + 7  # + special counts, staff,
        # admin_unit, road, data_source, audit_log, coverage_day
    finally:
        engine.dispose()
        server.drop(name)
