"""The scope bound to the session token (migration 0007), attacked as ``gridone_app``.

SQL injected through the dashboard runs as ``gridone_app`` inside a transaction the
dashboard scoped for its user. These tests play that attacker with raw SQL: call the
owner's ``gridone_set_scope``, present junk, logged-out, expired or locked users' tokens,
set the scope settings by hand, or replay another transaction's signature. Each must read
no row of another street. The expected figures are counted by the owner.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from psycopg import errors, sql
from sqlalchemy import Engine, text

from store.db import make_engine
from tests import access_data, conftest
from tests.access_data import STREET_A, STREET_B, session_token

#: Tables and views the application may read that hold data, and the audit log.
READABLE = (
    "incident",
    "grid",
    "building",
    "housing_unit",
    "patrol_fix",
    "staff",
    "admin_unit",
    "road",
    "special_group_by_grid",
    "staff_phone",
    "audit_log",
)
GUCS = (
    "role",
    "scope",
    "street_lo",
    "street_hi",
    "grid_lo",
    "grid_hi",
    "gcode_lo",
    "gcode_hi",
    "fixgrid_lo",
    "fixgrid_hi",
    "staff_code",
    "sig",
)
#: The tables of 0004 (KPI sums) and 0006 (stored coverage), whose policies 0007 also gates.
LATER_TABLES = (
    "kpi_street_day",
    "kpi_street_day_category",
    "kpi_street_month_category",
    "kpi_dirty_day",
    "coverage_building_day",
    "coverage_day",
)
_POLICIES = text(
    "SELECT tablename, policyname, cmd, roles::text, qual, with_check FROM pg_policies "
    "WHERE schemaname = 'public' ORDER BY 1, 2"
)
_SCOPE_FUNCTIONS = text(
    "SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.proacl::text "
    "FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace "
    "AND p.proname LIKE 'gridone\\_%' ORDER BY 1"
)


@pytest.fixture(scope="module")
def db(server: conftest.TestServer, template_db: str) -> Iterator[tuple[str, Engine]]:
    audit_row = text("INSERT INTO audit_log (login, action) VALUES ('x', 'page_view')")
    with access_data.two_streets(
        server, template_db, "sess", lambda c: c.execute(audit_row)
    ) as made:
        yield made


@pytest.fixture
def app(server: conftest.TestServer, db, app_login) -> Iterator[psycopg.Connection]:
    with access_data.raw_app_conn(server, db[0], app_login) as conn:
        yield conn


def _owner_count(engine: Engine, table: str, street: str | None = None) -> int:
    statement = sql.SQL("SELECT count(*) FROM {} WHERE %s::text IS NULL OR street_code = %s")
    with engine.raw_connection() as raw:
        cur = raw.cursor()
        cur.execute(statement.format(sql.Identifier(table)), [street, street])
        return int(cur.fetchone()[0])


def _reads_nothing(app: psycopg.Connection) -> None:
    for table in READABLE:
        got = app.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        assert got.fetchone() == (0,), table


def _reads_only_a(app: psycopg.Connection, db) -> None:
    got = app.execute("SELECT count(*), count(DISTINCT street_code) FROM incident").fetchone()
    assert got == (_owner_count(db[1], "incident", STREET_A), 1)
    assert app.execute(
        "SELECT count(*) FROM incident WHERE street_code = %s", (STREET_B,)
    ).fetchone() == (0,)


def test_a_live_token_reads_its_street(app: psycopg.Connection, db) -> None:
    token = session_token(db[1], "street", STREET_A[:9])
    assert app.execute("SELECT gridone_scope_session(%s)", (token,)).fetchone() == (True,)
    _reads_only_a(app, db)
    app.rollback()


def test_the_app_cannot_call_gridone_set_scope(app: psycopg.Connection) -> None:
    for args in (("district", "370214"), ("street", STREET_B[:9])):
        with pytest.raises(errors.InsufficientPrivilege):
            app.execute("SELECT gridone_set_scope(%s, %s)", args)
        app.rollback()
    # nor read what the scope is computed from, nor the signing key
    for stmt in (
        "SELECT count(*) FROM gridone_secret",
        "SELECT gridone_scope_sig()",
    ):
        with pytest.raises(errors.InsufficientPrivilege):
            app.execute(stmt)
        app.rollback()


@pytest.mark.parametrize(
    "token",
    ["", "junk", "x" * 43, "' OR '1'='1", "'; SELECT gridone_set_scope('district','370214')--"],
)
def test_junk_tokens_read_nothing(app: psycopg.Connection, token: str) -> None:
    assert app.execute("SELECT gridone_scope_session(%s)", (token,)).fetchone() == (False,)
    _reads_nothing(app)
    app.rollback()


@pytest.mark.parametrize("how", ["revoked", "idle", "too old", "locked", "inactive"])
def test_dead_sessions_read_nothing(app: psycopg.Connection, db, how: str) -> None:
    """A district user's token is worth nothing once logged out, idle, too old, or its user
    locked or disabled: the database checks it itself, the application is not asked."""
    from store.access import create_session, get_user

    token = session_token(db[1], "district", "370214")  # the user exists from here on
    with db[1].begin() as conn:
        user = get_user(conn, "t-district-370214000000-x")
        assert user is not None
        token = create_session(conn, user)
        change = {
            "revoked": "UPDATE app_session SET revoked_at = now() WHERE token_hash = sha256(:t)",
            "idle": "UPDATE app_session SET last_seen = now() - make_interval(mins => "
            "idle_minutes + 1) WHERE token_hash = sha256(:t)",
            "too old": "UPDATE app_session SET created_at = now() - make_interval(hours => "
            "max_hours) - interval '1 minute' WHERE token_hash = sha256(:t)",
            "locked": "UPDATE app_user SET locked_until = now() + interval '1 hour' "
            "WHERE login = 't-district-370214000000-x'",
            "inactive": "UPDATE app_user SET active = false "
            "WHERE login = 't-district-370214000000-x'",
        }[how]
        conn.execute(text(change), {"t": token.encode()})
    try:
        assert app.execute("SELECT gridone_scope_session(%s)", (token,)).fetchone() == (False,)
        _reads_nothing(app)
        app.rollback()
    finally:
        with db[1].begin() as conn:
            conn.execute(
                text(
                    "UPDATE app_user SET locked_until = NULL, active = true "
                    "WHERE login = 't-district-370214000000-x'"
                )
            )


def test_another_users_token_gives_that_users_scope_only(app: psycopg.Connection, db) -> None:
    """A token is a user: street B's leader's token reads B, never A and B together."""
    b = session_token(db[1], "street", STREET_B[:9])
    app.execute("SELECT gridone_scope_session(%s)", (b,))
    got = app.execute("SELECT count(*), min(street_code), max(street_code) FROM incident")
    assert got.fetchone() == (_owner_count(db[1], "incident", STREET_B), STREET_B, STREET_B)
    app.rollback()


def test_settings_made_by_hand_read_nothing(app: psycopg.Connection) -> None:
    """Every setting the policies read, set by hand to a district's scope (with a made-up
    signature): nothing, in every table and view."""
    values = {
        "role": "district",
        "scope": "370214",
        "street_lo": "370214000000",
        "street_hi": "370214999999",
        "grid_lo": "",
        "grid_hi": "",
        "gcode_lo": "370214000000000",
        "gcode_hi": "370214999999999",
        "fixgrid_lo": "000000000000000",
        "fixgrid_hi": "999999999999999",
        "staff_code": "W0",
        "sig": "0" * 64,
    }
    for name in GUCS:
        app.execute("SELECT set_config(%s, %s, true)", (f"gridone.{name}", values[name]))
    _reads_nothing(app)
    app.rollback()
    # and as the auditor, for the audit log
    app.execute("SELECT set_config('gridone.role', 'auditor', true)")
    assert app.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)
    app.rollback()


def test_widening_a_live_scope_by_hand_reads_nothing(app: psycopg.Connection, db) -> None:
    """Inside a transaction scoped for street A, moving the street range by hand (what an
    injected set_config would do) breaks the signature: nothing at all, not street B."""
    token = session_token(db[1], "street", STREET_A[:9])
    app.execute("SELECT gridone_scope_session(%s)", (token,))
    _reads_only_a(app, db)
    app.execute("SELECT set_config('gridone.street_hi', '370214999999', true)")
    _reads_nothing(app)
    app.rollback()
    app.execute("SELECT gridone_scope_session(%s)", (token,))
    app.execute("SELECT set_config('gridone.staff_code', 'W3', true)")  # another's phone
    assert app.execute("SELECT count(*) FROM staff_phone").fetchone() == (0,)
    app.rollback()


def test_widening_the_grid_code_range_by_hand_reads_nothing(app: psycopg.Connection, db) -> None:
    """0005's policies filter on ``gcode_lo``/``gcode_hi`` (and ``fixgrid``): they are
    signed too, so stretching them over the district reads nothing."""
    token = session_token(db[1], "community", "370214900001")
    for name, value in (("gcode_hi", "999999999999999"), ("fixgrid_hi", "999999999999999")):
        app.execute("SELECT gridone_scope_session(%s)", (token,))
        assert app.execute("SELECT count(*) FROM incident").fetchone()[0] > 0
        app.execute("SELECT set_config(%s, %s, true)", (f"gridone.{name}", value))
        _reads_nothing(app)
        app.rollback()


def test_a_signature_from_another_transaction_reads_nothing(app: psycopg.Connection, db) -> None:
    """Copy every setting, signature included, from a district session and replay them by
    hand in a later transaction: the signature covers the transaction, so nothing."""
    token = session_token(db[1], "district", "370214")
    app.execute("SELECT gridone_scope_session(%s)", (token,))
    saved = {n: app.execute(f"SELECT current_setting('gridone.{n}')").fetchone()[0] for n in GUCS}
    app.commit()
    for name, value in saved.items():
        app.execute("SELECT set_config(%s, %s, true)", (f"gridone.{name}", value))
    _reads_nothing(app)
    app.rollback()


def test_the_gate_keeps_index_conditions(app: psycopg.Connection, db) -> None:
    """The signature check runs once per statement (an InitPlan), not per row, and the
    street range still reaches the street_code index."""
    token = session_token(db[1], "street", STREET_A[:9])
    app.execute("SELECT gridone_scope_session(%s)", (token,))
    app.execute("SET LOCAL enable_seqscan = off")
    plan = "\n".join(r[0] for r in app.execute("EXPLAIN SELECT count(*) FROM incident"))
    assert "InitPlan" in plan and "street_code" in plan and "Index" in plan, plan
    app.rollback()


def test_every_read_policy_is_gated_with_its_0006_filter(db) -> None:
    """Every ``scope_read`` / ``auditor_read`` policy carries the gate, the tables of 0004
    and 0006 included, and keeps the filter 0005 gave it (grid-code ranges), not 0003's."""
    with db[1].connect() as conn:
        rows = conn.execute(_POLICIES).all()
    read = {(t, p): q for t, p, _, _, q, _ in rows if p in ("scope_read", "auditor_read")}
    assert {t for t, _ in read} >= {*LATER_TABLES, "incident", "grid", "patrol_fix", "audit_log"}
    for key, qual in read.items():
        assert "gridone_scope_ok()" in qual, key
    assert "gcode_lo" in read[("incident", "scope_read")]
    assert "grid_lo" not in read[("grid", "scope_read")]
    assert "fixgrid_lo" in read[("patrol_fix", "scope_read")]
    assert "grid_lo" in read[("kpi_street_day", "scope_read")]
    others = [(t, p, q) for t, p, _, _, q, _ in rows if (t, p) not in read]
    assert others and not any("gridone_scope_ok" in (q or "") for _, _, q in others)


def test_downgrade_to_0006_restores_its_policies_and_functions_exactly(
    server: conftest.TestServer, template_db: str
) -> None:
    """0007's downgrade gives back 0006's policies and scope functions as a database
    migrated only to 0006 has them, and upgrading again gates them again."""
    from alembic import command

    from store.migrate import alembic_config

    def state(engine: Engine) -> tuple[list, list]:
        with engine.connect() as conn:
            return (
                [tuple(r) for r in conn.execute(_POLICIES)],
                [tuple(r) for r in conn.execute(_SCOPE_FUNCTIONS)],
            )

    names = [server.create("down7", template=template_db), server.create("only6")]
    engines = [make_engine(server.url(n)) for n in names]
    try:
        with engines[1].begin() as conn:
            command.upgrade(alembic_config(conn), "0006")
        want = state(engines[1])
        assert not any("gridone_scope_ok" in (r[4] or "") for r in want[0])
        with engines[0].begin() as conn:
            command.downgrade(alembic_config(conn), "0006")
        got = state(engines[0])
        for part in (0, 1):
            assert set(got[part]) - set(want[part]) == set(), part
            assert got[part] == want[part]
        with engines[0].begin() as conn:
            command.upgrade(alembic_config(conn), "0007")
        again = state(engines[0])
        gated = [r for r in again[0] if r[1] in ("scope_read", "auditor_read")]
        assert gated and all("gridone_scope_ok()" in r[4] for r in gated)
        with engines[0].begin() as conn:
            command.downgrade(alembic_config(conn), "0006")
        assert state(engines[0]) == want
    finally:
        for engine, name in zip(engines, names, strict=True):
            engine.dispose()
            server.drop(name)
