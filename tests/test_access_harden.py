"""Migration 0011, attacked as ``gridone_app``: the lock-out policy is the owner's, audit
rows are the session's, passwords over bcrypt's 72 bytes do not log in.

SQL injected through the dashboard runs as ``gridone_app``; these tests play that
attacker with raw SQL (read or change the policy, shadow it with a temporary table, call
the login with settings of its own, insert audit rows, write one through
``gridone_audit`` in someone else's name or without a session), and check with the owner
that nothing came of it. Then the owner's side: ``python -m store users policy`` and
``migrate`` change the policy, audited, and the change takes effect; the password rules
and the login agree on 72 bytes; 0011's downgrade gives back 0010 exactly.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from psycopg import errors
from sqlalchemy import Connection, Engine, text

from store import access
from store import migrate as store_migrate
from store.db import make_engine
from store.errors import AccountLockedError, LoginFailedError, UserInputError
from store.settings import PROJECT_ROOT, AccessSettings
from tests import access_data, conftest
from tests.access_data import STREET_A, STREET_B, fill

PASSWORD = "Gridone2026pass"
#: Cheap hashes: these users log in many times.
CHEAP = AccessSettings(password_bcrypt_cost=10)


@pytest.fixture(scope="module")
def db(server: conftest.TestServer, template_db: str) -> Iterator[tuple[str, Engine]]:
    """The two streets, street leaders ``lead-a`` (street A) and ``lead-b`` (street B)."""

    def leaders(conn: Connection) -> None:
        for login, street in (("lead-a", STREET_A), ("lead-b", STREET_B)):
            access.create_user(
                conn, login, "街道", "street", street, PASSWORD, actor="t", settings=CHEAP
            )

    with access_data.two_streets(server, template_db, "harden", leaders) as made:
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


@pytest.fixture
def policy(db) -> Iterator[None]:
    """Put the policy back as it was after the test."""
    with db[1].connect() as conn:
        before = access.login_policy(conn)
    yield
    with db[1].begin() as conn:
        access.set_login_policy(
            conn,
            actor="t",
            max_failures=before.max_failures,
            lockout_minutes=before.lockout_minutes,
            idle_minutes=before.idle_minutes,
            max_hours=before.max_hours,
        )


def _owner(db, sql: str, **params: object) -> list[tuple]:
    with db[1].begin() as conn:
        return [tuple(r) for r in conn.execute(text(sql), params)]


def _user(db, login: str, password: str = PASSWORD) -> None:
    with db[1].begin() as conn:
        access.create_user(
            conn, login, "测试", "street", STREET_A, password, actor="t", settings=CHEAP
        )


# --- 1. the lock-out policy is the owner's -----------------------------------------------------

POLICY_DENIED = (
    "SELECT * FROM gridone_login_policy",
    "UPDATE gridone_login_policy SET max_failures = 100, lockout_minutes = 1",
    "INSERT INTO gridone_login_policy (id, max_failures, lockout_minutes, idle_minutes, "
    "max_hours) VALUES (false, 100, 1, 1440, 168)",
    "DELETE FROM gridone_login_policy",
    "TRUNCATE gridone_login_policy",
)


@pytest.mark.parametrize("stmt", POLICY_DENIED)
def test_the_app_cannot_read_or_write_the_policy(app: psycopg.Connection, stmt: str) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        app.execute(stmt)
    app.rollback()


def test_no_application_role_has_a_privilege_on_the_policy(db) -> None:
    for role in ("gridone_auth", "gridone_app", "gridone_reader"):
        for priv in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES"):
            assert _owner(
                db,
                "SELECT has_table_privilege(:r, 'gridone_login_policy', :p)",
                r=role,
                p=priv,
            ) == [(False,)], (role, priv)


def test_a_caller_cannot_loosen_the_lock_out(app: psycopg.Connection, db, policy) -> None:
    """The old call with settings of its own no longer exists; a temporary table named like
    the policy is not read; the owner's two failures and 15 minutes hold, and the session
    gets the owner's timeouts."""
    with db[1].begin() as conn:
        access.set_login_policy(
            conn, actor="t", max_failures=2, lockout_minutes=15, idle_minutes=20, max_hours=3
        )
    _user(db, "loose")
    with pytest.raises(errors.UndefinedFunction):
        app.execute(
            "SELECT * FROM gridone_login('loose', 'Wrong123456', NULL, NULL, 100, 1, 1440, 168)"
        )
    app.rollback()
    app.execute(
        "CREATE TEMP TABLE gridone_login_policy AS SELECT true AS id, 100 AS max_failures, "
        "1 AS lockout_minutes, 1440 AS idle_minutes, 168 AS max_hours, now() AS updated_at, "
        "NULL::text AS updated_by"
    )
    outcomes = []
    for _ in range(2):
        row = app.execute(
            "SELECT outcome, locked_until - now() FROM gridone_login('loose', 'Wrong123456', "
            "NULL, NULL)"
        ).fetchone()
        app.commit()
        outcomes.append(row)
    assert [o for o, _ in outcomes] == ["wrong", "locked"]
    assert dt.timedelta(minutes=14) < outcomes[1][1] <= dt.timedelta(minutes=15)
    assert _owner(
        db,
        "SELECT detail FROM audit_log WHERE login = 'loose' AND action = 'lock'",
    ) == [({"reason": "failures", "minutes": 15},)]
    with db[1].begin() as conn:
        access.unlock_user(conn, "loose", actor="t")
    (outcome, token) = app.execute(
        "SELECT outcome, token FROM gridone_login('loose', %s, NULL, NULL)", (PASSWORD,)
    ).fetchone()
    app.commit()
    assert outcome == "ok"
    assert _owner(
        db,
        "SELECT idle_minutes, max_hours FROM app_session "
        "WHERE token_hash = sha256(convert_to(:t, 'UTF8'))",
        t=token,
    ) == [(20, 3)]


def test_changing_the_policy_takes_effect_and_is_audited(db, app_engine: Engine, policy) -> None:
    _user(db, "strict")
    with db[1].begin() as conn:
        before = access.login_policy(conn)
        after = access.set_login_policy(conn, actor="admin", max_failures=4, lockout_minutes=7)
    assert (after.max_failures, after.lockout_minutes) == (4, 7)
    assert after.updated_by == "admin"
    for _ in range(3):
        with pytest.raises(LoginFailedError):
            access.log_in(app_engine, "strict", "Wrong123456")
    with pytest.raises(AccountLockedError) as locked:
        access.log_in(app_engine, "strict", "Wrong123456")
    left = locked.value.until - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=6) < left <= dt.timedelta(minutes=7)
    changes = _owner(
        db,
        "SELECT detail FROM audit_log WHERE login = 'admin' AND action = 'user_change' "
        "AND detail ->> 'target' = 'login_policy'",
    )
    changed = {"max_failures": [before.max_failures, 4]}
    if before.lockout_minutes != 7:
        changed["lockout_minutes"] = [before.lockout_minutes, 7]
    assert changes == [({"target": "login_policy", **changed},)]
    with db[1].begin() as conn:  # nothing changes: no row
        access.set_login_policy(conn, actor="admin", max_failures=4)
    assert len(_owner(db, "SELECT 1 FROM audit_log WHERE login = 'admin'")) == 1


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"max_failures": 0}, "max_failures"),
        ({"max_failures": 101}, "max_failures"),
        ({"lockout_minutes": 0}, "lockout_minutes"),
        ({"idle_minutes": 1441}, "idle_minutes"),
        ({"max_hours": 169}, "max_hours"),
    ],
)
def test_a_policy_out_of_bounds_is_refused(db, values: dict, named: str) -> None:
    with db[1].begin() as conn, pytest.raises(UserInputError, match=f"^登录策略无效.*{named}"):
        access.set_login_policy(conn, actor="t", **values)


def test_the_command_line_shows_and_sets_the_policy(
    server: conftest.TestServer, db, policy
) -> None:
    def users_policy(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "store", "users", "policy", *args],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "DATABASE_URL": server.url(db[0])},
            timeout=120,
        )

    done = users_policy("--max-failures", "6", "--idle-minutes", "45")
    assert done.returncode == 0, done.stderr
    assert "已修改登录策略" in done.stdout
    shown = users_policy()
    assert "max failures:\t6" in shown.stdout and "idle minutes:\t45" in shown.stdout
    assert "已修改" not in shown.stdout
    with db[1].connect() as conn:
        now = access.login_policy(conn)
    assert (now.max_failures, now.idle_minutes) == (6, 45)
    assert now.updated_by and now.updated_by.startswith("cli:")
    refused = users_policy("--lockout-minutes", "0")
    assert refused.returncode == 2
    assert refused.stderr.startswith("错误 / error: 登录策略无效")
    with db[1].connect() as conn:
        assert access.login_policy(conn) == now


def test_migrate_writes_the_settings_the_environment_gives(
    db, policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m store migrate`` (``store.migrate.upgrade``) writes the policy settings
    given explicitly; those left unset keep what the command line set."""
    with db[1].begin() as conn:
        access.set_login_policy(conn, actor="t", max_failures=9, lockout_minutes=33)
    given = AccessSettings(login_lockout_minutes=20)
    monkeypatch.setattr(store_migrate, "get_access_settings", lambda: given)
    store_migrate.upgrade(db[1])
    with db[1].connect() as conn:
        now = access.login_policy(conn)
    assert (now.max_failures, now.lockout_minutes) == (9, 20)
    assert now.updated_by and now.updated_by.startswith("migrate:")
    monkeypatch.setattr(store_migrate, "get_access_settings", AccessSettings)  # none given
    store_migrate.upgrade(db[1])
    with db[1].connect() as conn:
        assert access.login_policy(conn) == now


# --- 2. audit rows are the session's -----------------------------------------------------------

AUDIT_DENIED = (
    "INSERT INTO audit_log (login, user_role, scope_code, action) "
    "VALUES ('lead-b', 'district', '370214000000', 'page_view')",
    "UPDATE audit_log SET login = 'lead-b'",
    "DELETE FROM audit_log",
    "TRUNCATE audit_log",
)


@pytest.mark.parametrize("stmt", AUDIT_DENIED)
def test_the_app_cannot_write_the_audit_log_directly(
    app: psycopg.Connection, db, stmt: str
) -> None:
    """Refused, even inside a transaction scoped by a live session."""
    token = access_data.session_token(db[1], "street", STREET_A[:9])
    before = _owner(db, "SELECT count(*), max(id) FROM audit_log")
    assert app.execute("SELECT gridone_scope_session(%s)", (token,)).fetchone() == (True,)
    with pytest.raises(errors.InsufficientPrivilege):
        app.execute(stmt)
    app.rollback()
    assert _owner(db, "SELECT count(*), max(id) FROM audit_log") == before
    for role in ("gridone_auth", "gridone_app"):
        assert _owner(db, "SELECT has_table_privilege(:r, 'audit_log', 'INSERT')", r=role) == [
            (False,)
        ]


def _login_token(app_engine: Engine, login: str) -> str:
    return access.log_in(app_engine, login, PASSWORD)[1]


def test_a_row_through_the_function_is_the_sessions_user(
    app: psycopg.Connection, db, app_engine: Engine
) -> None:
    """Whatever login the caller puts in the detail, or sets by hand, the row names the
    user whose session scoped the transaction."""
    token = _login_token(app_engine, "lead-a")
    app.execute("SELECT gridone_scope_session(%s)", (token,))
    (row_id,) = app.execute(
        "SELECT gridone_audit('export', false, %s, '10.0.0.9')",
        ('{"login": "lead-b", "role": "district"}',),
    ).fetchone()
    app.commit()
    assert _owner(
        db,
        "SELECT login, user_role, scope_code, action, ok, detail, client FROM audit_log "
        "WHERE id = :i",
        i=row_id,
    ) == [
        (
            "lead-a",
            "street",
            STREET_A,
            "export",
            False,
            {"login": "lead-b", "role": "district"},
            "10.0.0.9",
        )
    ]
    # the Python side, as the dashboard calls it
    with app_engine.begin() as conn:
        assert access.scoped(conn, token)
        row_id = access.audit_session(conn, "page_view", detail={"page": "热点"}, client="c")
    assert _owner(db, "SELECT login, action, detail FROM audit_log WHERE id = :i", i=row_id) == [
        ("lead-a", "page_view", {"page": "热点"})
    ]


def _session_id(db, token: str) -> int:
    return _owner(
        db,
        "SELECT id FROM app_session WHERE token_hash = sha256(convert_to(:t, 'UTF8'))",
        t=token,
    )[0][0]


def test_the_session_cannot_be_swapped_by_hand(
    app: psycopg.Connection, db, app_engine: Engine
) -> None:
    """Scoped as lead-a, the session id set by hand to lead-b's (or the role widened by
    hand): refused, no row."""
    mine = _login_token(app_engine, "lead-a")
    other = _login_token(app_engine, "lead-b")
    before = _owner(db, "SELECT count(*) FROM audit_log")
    for setting, value in (
        ("gridone.session", str(_session_id(db, other))),
        ("gridone.role", "district"),
        ("gridone.session_sig", "0" * 64),
    ):
        app.execute("SELECT gridone_scope_session(%s)", (mine,))
        app.execute("SELECT set_config(%s, %s, true)", (setting, value))
        with pytest.raises(errors.InsufficientPrivilege):
            app.execute("SELECT gridone_audit('page_view', true, NULL, NULL)")
        app.rollback()
    assert _owner(db, "SELECT count(*) FROM audit_log") == before


def test_without_a_live_session_the_function_refuses(
    app: psycopg.Connection, db, app_engine: Engine
) -> None:
    views = _page_views(db)
    token = _login_token(app_engine, "lead-b")
    settings = app.execute(
        "SELECT gridone_scope_session(%s), current_setting('gridone.session'), "
        "current_setting('gridone.session_sig'), current_setting('gridone.sig')",
        (token,),
    ).fetchone()
    app.commit()
    attempts: list[tuple[str, tuple]] = [
        ("SELECT 1", ()),  # nothing scoped the transaction
        ("SELECT gridone_scope_session('no such token')", ()),
        # a live session's settings replayed in a later transaction
        (
            "SELECT set_config('gridone.session', %s, true), "
            "set_config('gridone.session_sig', %s, true), set_config('gridone.sig', %s, true)",
            settings[1:],
        ),
    ]
    for setup, params in attempts:
        app.execute(setup, params)
        with pytest.raises(errors.InsufficientPrivilege, match="no session scopes"):
            app.execute("SELECT gridone_audit('page_view', true, NULL, NULL)")
        app.rollback()
    # logged out: the token scopes nothing any more
    with app_engine.begin() as conn:
        access.end_session(conn, token)
    app.execute("SELECT gridone_scope_session(%s)", (token,))
    with pytest.raises(errors.InsufficientPrivilege):
        app.execute("SELECT gridone_audit('page_view', true, NULL, NULL)")
    app.rollback()
    # the session ends within the transaction that it scoped: refused too
    token = _login_token(app_engine, "lead-b")
    app.execute("SELECT gridone_scope_session(%s)", (token,))
    app.execute("SELECT gridone_session_end(%s, NULL)", (token,))
    with pytest.raises(errors.InsufficientPrivilege, match="has ended"):
        app.execute("SELECT gridone_audit('page_view', true, NULL, NULL)")
    app.rollback()
    assert _page_views(db) == views


def _page_views(db) -> int:
    return _owner(db, "SELECT count(*) FROM audit_log WHERE action = 'page_view'")[0][0]


@pytest.mark.parametrize("action", ["login", "logout", "user_add", "lock", "purge", "", None])
def test_the_function_writes_only_the_applications_actions(
    app: psycopg.Connection, db, action: str | None
) -> None:
    token = access_data.session_token(db[1], "street", STREET_A[:9])
    app.execute("SELECT gridone_scope_session(%s)", (token,))
    with pytest.raises(errors.InvalidParameterValue):
        app.execute("SELECT gridone_audit(%s, true, NULL, NULL)", (action,))
    app.rollback()
    if action:
        with pytest.raises(ValueError, match="does not write"):
            access.audit_session(None, action)  # type: ignore[arg-type]


def test_the_owner_still_inserts(db) -> None:
    """The command lines (exports, briefings, user administration) write as the owner."""
    with db[1].begin() as conn:
        access.audit(conn, "export", login="cli:someone", detail={"kind": "incidents"})
    assert _owner(db, "SELECT action, detail FROM audit_log WHERE login = 'cli:someone'") == [
        ("export", {"kind": "incidents"})
    ]


# --- 3. bcrypt's 72 bytes ----------------------------------------------------------------------


@hsettings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=80))
def test_the_rules_refuse_passwords_bcrypt_would_cut(tail: str) -> None:
    password = "Ab1" + tail
    size = len(password.replace("\x00", "\ufffd").encode("utf-8"))
    rules = AccessSettings(password_min_length=8)
    if size > 72:
        with pytest.raises(UserInputError, match=r"^密码不符合要求.*不得超过72字节"):
            access.check_password_rules("", password, rules)
    else:
        try:
            access.check_password_rules("", password, rules)
        except UserInputError as exc:  # too short: never the byte limit
            message = str(exc)
        else:
            message = ""
        assert "72字节" not in message


def test_the_byte_limit_message_names_the_size() -> None:
    password = "Ab1" + "网格" * 12  # 3 + 72 bytes
    with pytest.raises(UserInputError, match=r"不得超过72字节.*当前75字节.*at most 72 bytes"):
        access.check_password_rules("x", password, AccessSettings())
    access.check_password_rules("x", "Ab1" + "网格" * 11 + "abc", AccessSettings())  # 72


def test_a_password_over_72_bytes_does_not_log_in(db, app_engine: Engine) -> None:
    """72 bytes log in; the same 72 followed by anything are wrong, counted as a failure;
    a hash made (by the owner, past the rules) from a longer password does not let that
    password in either."""
    exact = "Ab1" + "网格" * 11 + "xyz"  # 72 bytes in UTF-8
    assert len(exact.encode()) == 72
    _user(db, "long72", exact)
    assert access.log_in(app_engine, "long72", exact)[0].login == "long72"
    for junk in ("x", "网", "Wrong123456"):
        with pytest.raises(LoginFailedError):
            access.log_in(app_engine, "long72", exact + junk)
    assert _owner(db, "SELECT failed_count FROM app_user WHERE login = 'long72'") == [(3,)]
    with db[1].begin() as conn:
        access.unlock_user(conn, "long72", actor="t")
        conn.execute(
            text("UPDATE app_user SET password_hash = :h WHERE login = 'long72'"),
            {"h": access.hash_password(conn, exact + "tail", 10)},
        )
    with pytest.raises(LoginFailedError):
        access.log_in(app_engine, "long72", exact + "tail")


# --- the downgrade ---------------------------------------------------------------------------

_STATE = (
    "SELECT 'table', c.relname, c.relacl::text FROM pg_class c "
    "WHERE c.relnamespace = 'public'::regnamespace AND c.relname IN ('app_user', "
    "'app_session', 'audit_log', 'gridone_secret', 'gridone_login_policy') "
    "UNION ALL SELECT 'column', c.relname || '.' || a.attname, a.attacl::text "
    "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "WHERE c.relnamespace = 'public'::regnamespace AND a.attacl IS NOT NULL "
    "UNION ALL SELECT 'constraint', conname, pg_get_constraintdef(oid) FROM pg_constraint "
    "WHERE conrelid IN ('app_user'::regclass, 'app_session'::regclass, "
    "'audit_log'::regclass) "
    "UNION ALL SELECT 'policy', tablename || '.' || policyname, "
    "concat_ws(' ', roles::text, cmd, qual, with_check) FROM pg_policies "
    "WHERE tablename = 'audit_log' "
    "UNION ALL SELECT 'function', p.oid::regprocedure::text, "
    "pg_get_functiondef(p.oid) || coalesce(p.proacl::text, '') || "
    "coalesce(obj_description(p.oid, 'pg_proc'), '') FROM pg_proc p "
    "WHERE p.pronamespace = 'public'::regnamespace AND (p.prosecdef "
    "OR p.proname LIKE 'gridone\\_%' OR p.proname LIKE 'audit\\_%' "
    "OR p.proname LIKE 'coverage\\_%') "
    "UNION ALL SELECT 'extension', extname, NULL FROM pg_extension "
    "ORDER BY 1, 2"
)


def test_downgrade_to_0010_restores_it_exactly(
    server: conftest.TestServer, template_db: str
) -> None:
    """0011's downgrade gives back what a database migrated only to 0010 has (grants,
    functions with their text, grants and comments, constraints, audit policies), with
    users, sessions and audit rows in it; upgrading again gives head's state again, and
    logging in works after each step."""
    from alembic import command

    from store.migrate import alembic_config

    def state(engine: Engine) -> list[tuple]:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(_STATE))]

    names = [server.create("down11", template=template_db), server.create("only10")]
    engines = [make_engine(server.url(n)) for n in names]
    try:
        with engines[1].begin() as conn:
            command.upgrade(alembic_config(conn), "0010")
        want = state(engines[1])
        head = state(engines[0])
        assert head != want
        with engines[0].begin() as conn:
            fill(conn)
            access.create_user(
                conn, "late", "晚", "street", STREET_A, PASSWORD, actor="t", settings=CHEAP
            )
            access.audit(conn, "page_view", login="before-down")
        with engines[0].begin() as conn:
            command.downgrade(alembic_config(conn), "0010")
        got = state(engines[0])
        assert set(got) - set(want) == set()
        assert got == want
        with engines[0].begin() as conn:  # 0008's call, with settings, works again
            outcome = conn.execute(
                text("SELECT outcome FROM gridone_login('late', :p, NULL, NULL, 5, 15, 30, 12)"),
                {"p": PASSWORD},
            ).scalar_one()
        assert outcome == "ok"
        with engines[0].begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        assert state(engines[0]) == head
        with engines[0].begin() as conn:
            assert (
                conn.execute(
                    text("SELECT outcome FROM gridone_login('late', :p, NULL, NULL)"),
                    {"p": PASSWORD},
                ).scalar_one()
                == "ok"
            )
            assert access.login_policy(conn).max_failures == 5
    finally:
        for engine, name in zip(engines, names, strict=True):
            engine.dispose()
            server.drop(name)
