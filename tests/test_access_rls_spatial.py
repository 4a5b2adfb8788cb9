"""Row-level security and spatial queries (migration 0005): the GiST index serves ``&&`` as
``gridone_app``, the store's spatial queries return exactly the owner's in-scope rows, the
new policies select the same rows as 0003's, and nothing about another street's rows comes
out through ``&&`` (the one function marked LEAKPROOF) or the predicates beside it.

The two-street database of tests/access_data.py, plus rows that exercise the spatial paths:
incidents without a grid (placed by location), an incident of street B a few metres from
one of street A, and a GPS fix of a street-A worker inside street B's grid. Expected
figures are computed as the owner, never typed in.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from store import queries
from store.access import scoped, spatial_index_usable
from tests import access_data, conftest
from tests.access_data import DISTRICT, GRIDS, STREET_A, STREET_B

#: (role, scope code as app_user holds it): a user is made with a live session per scope.
Who = tuple[str, str]
STREET_A_USER: Who = ("street", STREET_A)
#: (role, scope code as app_user holds it) of every jurisdiction in the data, and two junk.
SCOPES = (
    ("district", DISTRICT),
    ("street", STREET_A),
    ("street", STREET_B),
    *(("community", c) for c in sorted({g[:12] for g in GRIDS})),
    *(("grid", g) for g in GRIDS),
)
#: The self-join of tests and benchmark: each incident with its neighbours within ~30 m,
#: the in-scope side with its box first, then && against the other side.
NEAR = (
    "WITH a AS MATERIALIZED (SELECT id, geom, ST_Expand(geom, :d) AS box FROM incident) "
    "SELECT a.id, b.id FROM a JOIN incident b ON b.geom && a.box "
    "AND ST_DWithin(a.geom, b.geom, :d) ORDER BY 1, 2"
)
NEAR_OWNER = (
    "SELECT a.id, b.id FROM incident a JOIN incident b ON ST_DWithin(a.geom, b.geom, :d) "
    "WHERE a.street_code = :s AND b.street_code = :s ORDER BY 1, 2"
)


def _migration() -> ModuleType:
    path = Path(__file__).resolve().parent.parent / "store/migrations/versions/0005_rls_spatial.py"
    spec = importlib.util.spec_from_file_location("_m0005", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


M0005 = _migration()


def _extra(conn: Connection) -> None:
    """Rows for the spatial paths (as the owner)."""
    w_a = conn.execute(text("SELECT id FROM staff WHERE code = 'W0'")).scalar_one()
    rows = [
        # no grid, inside grid 0 (street A) / grid 3 (street B): placed by location
        ("SJN-A", None, STREET_A, "POINT(120.4005 36.3005)"),
        ("SJN-B", None, STREET_B, "POINT(120.4095 36.3005)"),
        # one of street A and one of street B ~10 m apart (between grids 2 and 3)
        ("SJ-EDGE-A", None, STREET_A, "POINT(120.40850 36.3010)"),
        ("SJ-EDGE-B", None, STREET_B, "POINT(120.40860 36.3010)"),
        # a second incident of street A next to grid 0's, for a repeat place
        ("SJ-NEXT-A", GRIDS[0], STREET_A, "POINT(120.40101 36.30101)"),
    ]
    for code, grid, street, pt in rows:
        conn.execute(
            text(
                "INSERT INTO incident (code, category_code, source, severity, title, "
                "occurred_at, reported_at, due_at, grid_code, street_code, geom) VALUES "
                "(:c, '0301', 'patrol', 1, '违规停车', '2026-11-03 08:00+08', "
                "'2026-11-03 09:00+08', '2026-11-05 09:00+08', :g, :s, "
                "ST_GeomFromText(:pt, 4490))"
            ),
            {"c": code, "g": grid, "s": street, "pt": pt},
        )
    # a street-A worker's fix inside street B's grid: street A reads it, street B does not
    conn.execute(
        text(
            "INSERT INTO patrol_fix (worker_id, fixed_at, accuracy_m, grid_code, street_code, "
            "geom) VALUES (:w, '2026-11-02 08:40+08', 5, :g, :s, "
            "ST_GeomFromText('POINT(120.410 36.301)', 4490))"
        ),
        {"w": w_a, "g": GRIDS[3], "s": STREET_A},
    )


@pytest.fixture(scope="module")
def db(server: conftest.TestServer, template_db: str) -> Iterator[tuple[str, Engine]]:
    """The two streets and the extra rows, as (name, owner engine)."""
    with access_data.two_streets(server, template_db, "rlsgeo", _extra) as made:
        yield made


def _token(owner: Engine, user: Who) -> str:
    """A live session's token of a user with this role and scope (a scope no user can have
    gets a token no session has: it reads nothing, as the scope would)."""
    role, scope = user
    if user not in SCOPES:  # a junk scope: no user can hold it (app_user CHECKs it)
        return "no such token"
    return access_data.session_token(owner, role, scope)


def _as_app(conn: Connection, user: Who | None, *, before: bool = False) -> None:
    """Turn the owner's transaction into gridone_app's with the scope of a session of
    ``user``; ``before``: 0003's policies and no LEAKPROOF mark first (rolled back with the
    transaction)."""
    token = _token(conn.engine, user) if user is not None else None
    if before:
        for statement in (M0005.UNMARK_SQL, M0005.policies_sql(before=True)):
            conn.execute(text(statement))
        conn.execute(text(M0005.SET_SCOPE_0003_SQL))
    conn.execute(text("SET LOCAL ROLE gridone_app"))
    if token is not None:
        scoped(conn, token)


def _plan(conn: Connection, sql: str, params: dict[str, Any]) -> str:
    conn.execute(text("SET LOCAL enable_seqscan = off"))  # tiny tables: ask for the index
    return "\n".join(conn.execute(text("EXPLAIN " + sql), params).scalars())


# --- the mark ------------------------------------------------------------------------------


def test_only_the_box_operator_is_marked_leakproof(db) -> None:
    with db[1].connect() as conn:
        assert spatial_index_usable(conn)
        marked = conn.execute(
            text(
                "SELECT proname FROM pg_proc WHERE proleakproof "
                "AND pronamespace = (SELECT extnamespace FROM pg_extension "
                "WHERE extname = 'postgis') ORDER BY 1"
            )
        ).scalars()
        assert list(marked) == ["geometry_overlaps"]


def test_without_superuser_the_migration_marks_nothing_and_warns(db) -> None:
    notices: list[str] = []
    with db[1].connect() as conn, conn.begin() as tx:
        raw = conn.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)

        def handler(d: psycopg.errors.Diagnostic) -> None:
            notices.append(d.message_primary or "")

        raw.add_notice_handler(handler)
        try:
            conn.execute(text(M0005.UNMARK_SQL))
            conn.execute(text("SET LOCAL ROLE gridone_app"))  # not a superuser
            conn.execute(text(M0005.MARK_SQL))
            assert not spatial_index_usable(conn)
        finally:
            raw.remove_notice_handler(handler)
            tx.rollback()
    assert any("is not a superuser" in n for n in notices), notices


def test_scoped_turns_jit_off_for_the_transaction(db) -> None:
    with db[1].connect() as conn, conn.begin() as tx:
        assert conn.execute(text("SELECT set_config('jit', 'on', true)")).scalar_one() == "on"
        _as_app(conn, STREET_A_USER)
        assert conn.execute(text("SELECT current_setting('jit')")).scalar_one() == "off"
        tx.rollback()


# --- the index -------------------------------------------------------------------------------


def test_spatial_join_uses_the_gist_index_as_the_app(db) -> None:
    with db[1].connect() as conn, conn.begin() as tx:
        _as_app(conn, STREET_A_USER)
        plan = _plan(conn, NEAR, {"d": 0.0003})
        tx.rollback()
    assert "ix_incident_geom" in plan and "(geom && a.box)" in plan, plan


def test_without_the_mark_the_app_cannot_use_the_gist_index(db) -> None:
    """The test above measures the mark: the same join before 0005 reads incident whole."""
    with db[1].connect() as conn, conn.begin() as tx:
        _as_app(conn, STREET_A_USER, before=True)
        plan = _plan(conn, NEAR, {"d": 0.0003})
        tx.rollback()
    assert "ix_incident_geom" not in plan, plan


def test_grid_placement_uses_the_gist_index_as_the_app(db) -> None:
    with db[1].connect() as conn, conn.begin() as tx:
        _as_app(conn, STREET_A_USER)
        plan = _plan(
            conn,
            queries._GRID_INCIDENT_COUNTS.text,
            {"street": None, "since": None, "until": None, "category": None, "srid": 4326},
        )
        tx.rollback()
    assert "ix_grid_geom" in plan and "Index Cond: (geom && i.geom)" in plan, plan


# --- the same rows as the owner --------------------------------------------------------------


def _owner_and_app(engine: Engine, owner_work, app_work, user: Who = STREET_A_USER):
    with engine.connect() as conn:
        expected = owner_work(conn)
    with engine.connect() as conn, conn.begin() as tx:
        _as_app(conn, user)
        got = app_work(conn)
        tx.rollback()
    return expected, got


def test_spatial_self_join_equals_the_owners_in_scope_pairs(db) -> None:
    expected, got = _owner_and_app(
        db[1],
        lambda c: c.execute(text(NEAR_OWNER), {"d": 0.0003, "s": STREET_A}).all(),
        lambda c: c.execute(text(NEAR), {"d": 0.0003}).all(),
    )
    with db[1].connect() as conn:
        everyone = conn.execute(text(NEAR.replace(" MATERIALIZED", "")), {"d": 0.0003}).all()
    assert got == expected
    assert len(everyone) > len(expected)  # the edge pair of A and B exists, and is not shown


def test_store_spatial_queries_equal_the_owners_for_the_street(db) -> None:
    kw: dict[str, Any] = {"since": None, "until": None, "category": None}
    counts = _owner_and_app(
        db[1],
        lambda c: queries.grid_incident_counts(c, street_code=STREET_A, **kw),
        lambda c: queries.grid_incident_counts(c, **kw),
    )
    assert counts[0].drop(columns="geometry").equals(counts[1].drop(columns="geometry"))
    # the incident without a grid in grid 0 was placed there by location
    assert counts[1].set_index("code").loc[GRIDS[0], "incidents"] == 3
    edges = ["2026-11-01T00:00+08:00", "2026-11-03T00:00+08:00", "2026-11-05T00:00+08:00"]
    bins = _owner_and_app(
        db[1],
        lambda c: queries.grid_incident_bin_counts(c, edges=edges, street_code=STREET_A),
        lambda c: queries.grid_incident_bin_counts(c, edges=edges),
    )
    assert bins[0].equals(bins[1]) and len(bins[1]) > 0
    ckw: dict[str, Any] = {
        "since": "2026-11-01T00:00+08:00",
        "until": "2026-11-05T00:00+08:00",
        "eps_m": 30.0,
        "min_count": 2,
        "metric_srid": 4549,
        "category": None,
    }
    places = _owner_and_app(
        db[1],
        lambda c: queries.repeat_location_clusters(c, street_code=STREET_A, **ckw),
        lambda c: queries.repeat_location_clusters(c, **ckw),
    )
    assert len(places[1]) == 1 and places[1].loc[0, "grid_code"] == GRIDS[0]
    assert places[0].drop(columns="geometry").equals(places[1].drop(columns="geometry"))


def _rows(conn: Connection, table: str) -> list[str]:
    return sorted(conn.execute(text(f"SELECT t::text FROM {table} t")).scalars())  # noqa: S608


@pytest.mark.parametrize(("role", "scope"), [*SCOPES, ("street", "370214"), ("grid", "x")])
def test_new_policies_select_the_same_rows_as_0003s(db, role: str, scope: str) -> None:
    user = (role, scope)
    tables = ["grid", *(t for t, _ in M0005.GRID_KEYED), "patrol_fix"]
    got, before = {}, {}
    for out, old in ((got, False), (before, True)):
        with db[1].connect() as conn, conn.begin() as tx:
            _as_app(conn, user, before=old)
            out.update({t: _rows(conn, t) for t in tables})
            tx.rollback()
    assert got == before
    if role == "street" and scope == STREET_A:
        # the worker's fix in street B's grid, and the incidents without a grid
        assert any(GRIDS[3] in r for r in got["patrol_fix"])
        assert sum("SJN-A" in r or "SJ-EDGE-A" in r for r in got["incident"]) == 2
    if role == "community":
        assert not any("SJN-" in r or "SJ-EDGE" in r for r in got["incident"])


# --- attacks: nothing about street B comes out ---------------------------------------------------

#: Conditions a street-A user might write to make a function raise on street B's rows
#: (where a raise would say "a row of B is here"). Each must answer as on A's rows only.
ATTACKS = (
    # && with boxes around B's incident, of another SRID, empty, NaN, huge
    "geom && ST_MakeEnvelope(120.4094, 36.3004, 120.4096, 36.3006, 4490)",
    "geom && ST_MakeEnvelope(120.4094, 36.3004, 120.4096, 36.3006, 4326)",
    "geom && ST_SetSRID(CAST(geom AS geometry), 0)",
    "geom && 'SRID=4490;POINT EMPTY'::geometry",
    "geom && ST_MakeEnvelope('NaN', 'NaN', 'NaN', 'NaN', 4490)",
    "geom && ST_MakeEnvelope(-1e308, -1e308, 1e308, 1e308, 4490)",
    "geom && ST_Buffer(ST_SetSRID(ST_MakePoint(120.41, 36.30), 4490), 10, 1000)",
    # predicates that raise on a value of the row: evaluated after the policy only
    "ST_DWithin(geom, geom, CASE WHEN street_code = '370214901000' THEN -1 ELSE 1 END)",
    "ST_DWithin(geom, geom, CASE WHEN street_code = '370214901000' THEN 'NaN' ELSE 1 END)",
    "ST_Intersects(geom, CASE WHEN street_code = '370214901000' "
    "THEN ST_SetSRID(geom, 4326) ELSE geom END)",
    "geom && ST_Expand(geom, 1 / (CASE WHEN street_code = '370214901000' THEN 0 ELSE 1 END))",
    "geom && CASE WHEN street_code = '370214901000' THEN ST_SetSRID(geom, 4326) ELSE geom END",
    "ST_Contains(ST_GeomFromText(CASE WHEN street_code = '370214901000' THEN 'POLYGON((0 0' "
    "ELSE 'POLYGON((120 36,121 36,121 37,120 37,120 36))' END, 4490), geom)",
)


@pytest.fixture
def app(server: conftest.TestServer, db, app_login) -> Iterator[psycopg.Connection]:
    """A raw psycopg connection as exactly gridone_app (a login that is a member of it)."""
    with access_data.raw_app_conn(server, db[0], app_login) as conn:
        yield conn


@pytest.mark.parametrize("condition", ATTACKS)
@pytest.mark.parametrize("seqscan", ["on", "off"])
def test_no_error_or_row_reveals_another_street(
    app: psycopg.Connection, db, condition: str, seqscan: str
) -> None:
    with db[1].connect() as owner:
        try:
            expected = owner.execute(
                text(f"SELECT code FROM incident WHERE street_code = :s AND ({condition})"),  # noqa: S608
                {"s": STREET_A},
            ).all()
            expected_codes = sorted(r[0] for r in expected)
        except DBAPIError:  # the condition raises on A's rows too
            expected_codes = None
    app.execute("SELECT gridone_scope_session(%s)", (_token(db[1], STREET_A_USER),))
    app.execute("SELECT set_config('enable_seqscan', %s, true)", (seqscan,))
    if expected_codes is None:
        with pytest.raises(psycopg.Error):
            app.execute(f"SELECT code FROM incident WHERE {condition}")  # noqa: S608
    else:
        got = sorted(r[0] for r in app.execute(f"SELECT code FROM incident WHERE {condition}"))  # noqa: S608
        assert got == expected_codes
    app.rollback()


def test_the_box_operator_alone_never_raises_on_hidden_rows(app: psycopg.Connection, db) -> None:
    """As street A, && against every kind of box around street B's rows, in the index:
    no error, no notice, no row of B. (A NaN box overlaps everything, A's rows included:
    an answer about the caller's own box, the same for every row.)"""
    notices: list[str] = []
    app.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    app.execute("SELECT gridone_scope_session(%s)", (_token(db[1], STREET_A_USER),))
    app.execute("SET LOCAL enable_seqscan = off")
    for box in (
        "ST_MakeEnvelope(120.409, 36.300, 120.411, 36.302, 4490)",
        "ST_MakeEnvelope(120.409, 36.300, 120.411, 36.302, 0)",
        "ST_MakeEnvelope(120.409, 36.300, 120.411, 36.302, 4326)",
        "ST_GeomFromText('POLYGON((120.409 36.300,120.411 36.302,120.411 36.300,"
        "120.409 36.302,120.409 36.300))', 4490)",  # a bow tie, invalid
        "ST_MakeEnvelope('Infinity', 'NaN', '-Infinity', 'NaN', 4490)",
    ):
        for table in ("incident", "building", "key_place", "facility", "patrol_fix"):
            n = app.execute(
                f"SELECT count(*) FROM {table} WHERE geom && {box} "  # noqa: S608
                "AND street_code <> %s",
                (STREET_A,),
            ).fetchone()
            assert n == (0,), (table, box)
    assert notices == []
    app.rollback()
