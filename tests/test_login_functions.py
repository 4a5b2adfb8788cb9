"""Logins checked by the database (migration 0008), attacked as ``gridone_app``.

SQL injected through the dashboard runs as ``gridone_app``. These tests play that
attacker with raw SQL: read password hashes or TOTP secrets, insert or revive a session
(stacked statements through an injectable query), call the owner's helpers, shadow the
tables the SECURITY DEFINER functions read with temporary tables of its own (the lock-out
policy the caller can no longer give: tests/test_access_harden.py). Each is refused or
comes to nothing, checked by the owner. Also: accounts hashed with Argon2 before 0008
must get a new password, and 0008's downgrade gives back 0007's grants exactly.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from types import ModuleType

import psycopg
import pytest
from psycopg import errors
from sqlalchemy import Connection, Engine, text

from store import access
from store.db import make_engine
from store.errors import LoginFailedError, PasswordResetRequiredError
from store.settings import PROJECT_ROOT, AccessSettings
from tests import access_data, conftest
from tests.access_data import STREET_A, fill

PASSWORD = "Gridone2026pass"
FAST = AccessSettings(login_max_failures=3, login_lockout_minutes=15)
#: An Argon2id hash in the form argon2-cffi wrote them before 0008 (which password it is
#: does not matter: the database cannot check it).
ARGON2 = (
    "$argon2id$v=19$m=65536,t=3,p=4$QmNtU2FsdFNhbHRTYWx0$"
    "Jc0mO3r0fqdH2wG2v0CwJ5l4C7Qk0Jmu7R2s4Q6m1Zk"
)


@cache
def _migration(name: str = "0008_login_functions") -> ModuleType:
    """A migration's module (0008's by default: its lists of functions)."""
    path = PROJECT_ROOT / f"store/migrations/versions/{name}.py"
    spec = importlib.util.spec_from_file_location(f"gridone_migration_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def db(server: conftest.TestServer, template_db: str) -> Iterator[tuple[str, Engine]]:
    """The two streets and a district user ``boss`` with a password."""

    def boss(conn: Connection) -> None:
        access.create_user(conn, "boss", "区领导", "district", "370214000000", PASSWORD, actor="t")

    with access_data.two_streets(server, template_db, "login", boss) as made:
        yield made


@pytest.fixture
def app(server: conftest.TestServer, db, app_login) -> Iterator[psycopg.Connection]:
    """A raw connection as gridone_app: what injected SQL runs as."""
    with access_data.raw_app_conn(server, db[0], app_login) as conn:
        yield conn


@pytest.fixture(scope="module")
def app_engine(server: conftest.TestServer, db, app_login) -> Iterator[Engine]:
    engine = access_data.app_engine(server, db[0], app_login)
    yield engine
    engine.dispose()


def _owner(db, sql: str, **params: object):
    with db[1].begin() as conn:
        return conn.execute(text(sql), params).all()


# --- no access to the tables -------------------------------------------------------------

DENIED = (
    "SELECT password_hash FROM app_user",
    "SELECT totp_secret FROM app_user WHERE login = 'boss'",
    "SELECT login, role FROM app_user",
    "SELECT count(*) FROM app_user",
    "SELECT * FROM app_session",
    "INSERT INTO app_user (login, display_name, role, scope_code, password_hash) VALUES "
    "('evil', 'e', 'district', '370214000000', '$argon2id$x')",
    "UPDATE app_user SET failed_count = 0, locked_until = NULL",
    "UPDATE app_user SET password_hash = password_hash",
    "DELETE FROM app_user",
    "INSERT INTO app_session (token_hash, user_id) VALUES (sha256('x'::bytea), 1)",
    "UPDATE app_session SET revoked_at = NULL, last_seen = now()",
    "DELETE FROM app_session",
    "TRUNCATE app_session",
    "SELECT gridone_session_open(1, 1440, 168)",
    "SELECT gridone_totp_code('GEZDGNBV', 1)",
    "SELECT gridone_bcrypt_cost()",
    "SELECT gridone_base32_decode('GEZDGNBV')",
)


@pytest.mark.parametrize("stmt", DENIED)
def test_the_app_cannot_touch_users_or_sessions(app: psycopg.Connection, stmt: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        app.execute(stmt)
    app.rollback()


def test_privileges_as_the_catalogue_has_them(db) -> None:
    """No table or column privilege on users and sessions for the application's roles;
    EXECUTE on the three login functions and ``gridone_audit`` (0011) only; every SECURITY
    DEFINER function of the schema owned by the tables' owner and with pg_temp last in its
    search_path."""
    m = _migration()
    # 0011 replaced 0008's gridone_login (no more settings from the caller) and added
    # gridone_audit and the owner's gridone_session_sig
    m11 = _migration("0011_access_harden")
    app_functions = m11.APP_FUNCTIONS
    owner_functions = m.OWNER_FUNCTIONS + m11.OWNER_FUNCTIONS
    for role in ("gridone_auth", "gridone_app"):
        for table in ("app_user", "app_session"):
            for priv in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES"):
                (got,) = _owner(
                    db, "SELECT has_table_privilege(:r, :t, :p)", r=role, t=table, p=priv
                )[0]
                assert got is False, (role, table, priv)
        for column in ("password_hash", "totp_secret", "login"):
            (got,) = _owner(
                db,
                "SELECT has_column_privilege(:r, 'app_user', :c, 'SELECT')",
                r=role,
                c=column,
            )[0]
            assert got is False, (role, column)
        for fn in app_functions + owner_functions:
            (got,) = _owner(db, "SELECT has_function_privilege(:r, :f, 'EXECUTE')", r=role, f=fn)[0]
            assert got is (fn in app_functions), (role, fn)
    definers = _owner(
        db,
        "SELECT p.oid::regprocedure::text, p.proconfig, pg_get_userbyid(p.proowner), "
        "pg_get_userbyid((SELECT relowner FROM pg_class WHERE oid = 'app_user'::regclass)) "
        "FROM pg_proc p WHERE p.prosecdef AND p.pronamespace = 'public'::regnamespace "
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid "
        "AND d.deptype = 'e')",
    )
    names = {d[0] for d in definers}
    assert {fn.replace(", ", ",") for fn in app_functions} <= names
    for fn, config, owner, table_owner in definers:
        assert config == ["search_path=pg_catalog, public, pg_temp"], fn
        assert owner == table_owner, fn


# --- injection ---------------------------------------------------------------------------

STACKED = (
    "x'; INSERT INTO app_session (token_hash, user_id) "
    "SELECT sha256('attacker'::bytea), id FROM app_user WHERE role = 'district'; --",
    "x'; UPDATE app_session SET revoked_at = NULL, last_seen = now(); --",
    "x'; UPDATE app_user SET failed_count = 0, locked_until = NULL; --",
    "x'; SELECT gridone_session_open(1, 1440, 168); --",
    "x' UNION SELECT password_hash FROM app_user --",
    "x' UNION SELECT totp_secret FROM app_user --",
)


@pytest.mark.parametrize("payload", STACKED)
def test_stacked_injection_cannot_make_revive_or_read(
    app: psycopg.Connection, db, payload: str
) -> None:
    """What an injectable query of a page would run (a string built with the payload, sent
    as one simple query, several statements allowed): refused, nothing changed."""
    before = _owner(db, "SELECT count(*), count(revoked_at) FROM app_session")
    vulnerable = "SELECT name FROM grid WHERE code = '" + payload + "'"  # noqa: S608 (the attack)
    with pytest.raises(errors.InsufficientPrivilege):
        app.execute(vulnerable)
    app.rollback()
    assert _owner(db, "SELECT count(*), count(revoked_at) FROM app_session") == before
    (live,) = app.execute("SELECT gridone_scope_session('attacker')").fetchone()
    assert live is False
    assert app.execute("SELECT count(*) FROM incident").fetchone() == (0,)
    app.rollback()


def test_temporary_tables_do_not_shadow_users_sessions_or_the_key(
    app: psycopg.Connection, db
) -> None:
    """gridone_app may create temporary tables. Named like the owner's tables they were,
    before 0008, what the SECURITY DEFINER functions read (pg_temp searched first): a fake
    district user and session gave a signed district scope, a fake key a valid
    signature. Now they are ignored."""
    (bcrypt,) = _owner(db, "SELECT crypt('Known12345', gen_salt('bf', 10))")[0]
    app.execute(
        "CREATE TEMP TABLE app_user (id integer, login text, display_name text, role text, "
        "scope_code text, staff_code text, password_hash text, failed_count smallint, "
        "locked_until timestamptz, totp_secret text, totp_last_step bigint, active boolean, "
        "created_at timestamptz, password_changed_at timestamptz)"
    )
    app.execute(
        "INSERT INTO app_user VALUES (999, 'boss', 'x', 'district', '370214000000', NULL, %s, "
        "0, NULL, NULL, NULL, true, now(), now())",
        (bcrypt,),
    )
    app.execute(
        "CREATE TEMP TABLE app_session (id bigint, token_hash bytea, user_id integer, "
        "created_at timestamptz, last_seen timestamptz, revoked_at timestamptz, "
        "idle_minutes integer, max_hours integer)"
    )
    app.execute(
        "INSERT INTO app_session VALUES (1, sha256('evil'::bytea), 999, now(), now(), NULL, 30, 12)"
    )
    assert app.execute("SELECT gridone_scope_session('evil')").fetchone() == (False,)
    assert app.execute("SELECT count(*) FROM incident").fetchone() == (0,)
    # the login reads the real boss, whose password this is not
    row = app.execute(
        "SELECT outcome, token FROM gridone_login('boss', 'Known12345', NULL, NULL)"
    ).fetchone()
    assert row == ("wrong", None)
    # a key of one's own, and the scope settings signed with it by hand
    app.execute("CREATE TEMP TABLE gridone_secret (k bytea)")
    app.execute("INSERT INTO gridone_secret VALUES ('\\x00112233445566778899aabbccddeeff')")
    settings = {
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
        "staff_code": "",
    }
    for k, v in settings.items():
        app.execute("SELECT set_config(%s, %s, true)", (f"gridone.{k}", v))
    app.execute(
        "SELECT set_config('gridone.sig', encode(sha256((SELECT k FROM gridone_secret) || "
        "convert_to(concat_ws('|', current_setting('gridone.role', true), "
        "current_setting('gridone.scope', true), current_setting('gridone.street_lo', true), "
        "current_setting('gridone.street_hi', true), current_setting('gridone.grid_lo', true), "
        "current_setting('gridone.grid_hi', true), current_setting('gridone.gcode_lo', true), "
        "current_setting('gridone.gcode_hi', true), "
        "current_setting('gridone.fixgrid_lo', true), "
        "current_setting('gridone.fixgrid_hi', true), "
        "current_setting('gridone.staff_code', true), pg_backend_pid()::text, "
        "(extract(epoch FROM transaction_timestamp()) * 1000000)::bigint::text), 'UTF8')), "
        "'hex'), true)"
    )
    assert app.execute("SELECT gridone_scope_ok()").fetchone() == (False,)
    assert app.execute("SELECT count(*) FROM incident").fetchone() == (0,)
    app.rollback()
    assert _owner(db, "SELECT count(*) FROM app_session WHERE user_id = 999") == [(0,)]


# --- the login function as an attacker calls it ----------------------------------------------


def test_the_login_function_returns_a_token_and_public_fields_only(
    app: psycopg.Connection, db
) -> None:
    call = "SELECT * FROM gridone_login(%s, %s, NULL, 'x')"
    with app.cursor() as cur:
        cur.execute(call, ("boss", "Wrong123456"))
        wrong = cur.fetchone()
        names = [c.name for c in cur.description]
    unknown = app.execute(call, ("nobody", "Wrong123456")).fetchone()
    assert wrong == unknown == ("wrong",) + (None,) * 9
    assert not any("hash" in n or "secret" in n or "fail" in n for n in names)
    ok = app.execute(call, ("boss", PASSWORD)).fetchone()
    app.commit()
    assert ok[0] == "ok" and len(ok[1]) == 43 and ok[4:7] == ("boss", "区领导", "district")
    (stored,) = _owner(
        db,
        "SELECT token_hash = sha256(convert_to(:t, 'UTF8')) FROM app_session "
        "WHERE token_hash = sha256(convert_to(:t, 'UTF8'))",
        t=ok[1],
    )
    assert stored == (True,)
    assert app.execute("SELECT gridone_scope_session(%s)", (ok[1],)).fetchone() == (True,)
    app.rollback()
    assert app.execute("SELECT gridone_session_end(%s, NULL)", (ok[1],)).fetchone() == (True,)
    app.commit()
    assert app.execute("SELECT gridone_scope_session(%s)", (ok[1],)).fetchone() == (False,)
    app.rollback()


# --- Argon2 hashes of before 0008 ----------------------------------------------------------


def test_an_argon2_password_must_be_set_again(
    server: conftest.TestServer, db, app_engine: Engine
) -> None:
    with db[1].begin() as conn:
        access.create_user(conn, "legacy", "旧", "street", STREET_A, PASSWORD, actor="t")
        conn.execute(
            text("UPDATE app_user SET password_hash = :h WHERE login = 'legacy'"), {"h": ARGON2}
        )
        assert access.password_reset_required(conn, "legacy")
    for typed in (PASSWORD, "Wrong123456"):  # the database cannot tell: both refused alike
        with pytest.raises(PasswordResetRequiredError) as refused:
            access.log_in(app_engine, "legacy", typed)
        assert str(refused.value).startswith("账号 legacy 的密码须由系统管理员重设")
        assert "python -m store users passwd legacy" in str(refused.value)
    rows = _owner(
        db,
        "SELECT action, ok, detail FROM audit_log WHERE login = 'legacy' "
        "AND action = 'login_failed' ORDER BY id",
    )
    assert [tuple(r) for r in rows] == [
        ("login_failed", False, {"reason": "password reset required"})
    ] * 2
    assert _owner(db, "SELECT failed_count FROM app_user WHERE login = 'legacy'") == [(0,)]
    listed = subprocess.run(
        [sys.executable, "-m", "store", "users", "list"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": server.url(db[0])},
        check=True,
        timeout=120,
    ).stdout.splitlines()
    assert "须重设密码" in next(ln for ln in listed if ln.startswith("legacy\t"))
    assert "须重设密码" not in next(ln for ln in listed if ln.startswith("boss\t"))
    with db[1].begin() as conn:
        access.set_password(conn, "legacy", "Renewed2026pw", actor="admin")
        assert not access.password_reset_required(conn, "legacy")
    user, _ = access.log_in(app_engine, "legacy", "Renewed2026pw")
    assert user.login == "legacy"
    with pytest.raises(LoginFailedError):
        access.log_in(app_engine, "legacy", PASSWORD)


def test_demo_logins_renew_argon2_passwords(
    db, app_engine: Engine, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine that ran the old version keeps .local/demo-logins.txt with passwords whose
    hashes are Argon2: ``setup.sh demo`` (``users demo-logins``) must give new ones."""
    from store import access_cli

    kept = tmp_path / "demo-logins.txt"
    monkeypatch.setattr(access_cli, "DEMO_LOGINS_FILE", kept)
    first = access_cli.demo_logins(db[1], actor="test", settings=FAST)
    with db[1].begin() as conn:  # as the old version left them
        conn.execute(
            text("UPDATE app_user SET password_hash = :h WHERE login LIKE 'demo-%'"),
            {"h": ARGON2},
        )
    again = access_cli.demo_logins(db[1], actor="test", settings=FAST)
    assert again != first
    for line in again.splitlines()[1:]:
        login, password, role, _ = line.split()
        assert access.log_in(app_engine, login, password)[0].role == role
    assert access_cli.demo_logins(db[1], actor="test", settings=FAST) == again


# --- the downgrade ---------------------------------------------------------------------------

_STATE = (
    "SELECT 'table', c.relname, c.relacl::text FROM pg_class c "
    "WHERE c.relnamespace = 'public'::regnamespace "
    "AND c.relname IN ('app_user', 'app_session', 'audit_log', 'gridone_secret') "
    "UNION ALL SELECT 'column', c.relname || '.' || a.attname, a.attacl::text "
    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "WHERE c.relnamespace = 'public'::regnamespace AND a.attacl IS NOT NULL "
    "UNION ALL SELECT 'constraint', conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE conrelid IN ('app_user'::regclass, 'app_session'::regclass) "
    "UNION ALL SELECT 'function', p.oid::regprocedure::text, "
    "pg_get_functiondef(p.oid) || coalesce(p.proacl::text, '') FROM pg_proc p "
    "WHERE p.pronamespace = 'public'::regnamespace AND (p.prosecdef "
    "OR p.proname LIKE 'gridone\\_%' OR p.proname LIKE 'audit\\_%' "
    "OR p.proname LIKE 'coverage\\_%') "
    "UNION ALL SELECT 'extension', extname, NULL FROM pg_extension "
    "ORDER BY 1, 2"
)


def test_downgrade_to_0007_restores_grants_exactly(
    server: conftest.TestServer, template_db: str
) -> None:
    """0008's downgrade gives back what a database migrated only to 0007 has (table and
    column grants, functions and their grants, constraints, extensions), makes bcrypt
    hashes unusable Argon2-shaped ones, and upgrading again gives 0008's state again."""
    from alembic import command

    from store.migrate import alembic_config

    def state(engine: Engine) -> list[tuple]:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(_STATE))]

    names = [server.create("down8", template=template_db), server.create("only7")]
    engines = [make_engine(server.url(n)) for n in names]
    try:
        with engines[1].begin() as conn:
            command.upgrade(alembic_config(conn), "0007")
        want = state(engines[1])
        head = state(engines[0])
        assert head != want
        with engines[0].begin() as conn:
            fill(conn)
            access.create_user(conn, "late", "晚", "street", STREET_A, PASSWORD, actor="t")
        with engines[0].begin() as conn:
            command.downgrade(alembic_config(conn), "0007")
        got = state(engines[0])
        assert set(got) - set(want) == set()
        assert got == want
        with engines[0].connect() as conn:
            (h,) = conn.execute(
                text("SELECT password_hash FROM app_user WHERE login = 'late'")
            ).one()
        assert h == _migration().UNUSABLE_ARGON2
        with engines[0].begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        assert state(engines[0]) == head
        with engines[0].begin() as conn:
            command.downgrade(alembic_config(conn), "0007")
        assert state(engines[0]) == want
    finally:
        for engine, name in zip(engines, names, strict=True):
            engine.dispose()
            server.drop(name)
