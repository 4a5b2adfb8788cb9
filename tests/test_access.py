"""Logins, lock-out, sessions, the audit trail and ``python -m store users``.

Logging in runs as gridone_app, as the dashboard will; user administration runs as the
owner, as the command line does. The expected outcomes are read back from the tables.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, ProgrammingError

from store import access
from store.db import make_engine
from store.errors import (
    AccountLockedError,
    CodeRequiredError,
    LoginFailedError,
    SessionInvalidError,
    UserInputError,
    WrongCodeError,
)
from store.settings import PROJECT_ROOT, AccessSettings
from tests import access_data, conftest
from tests.access_data import GRIDS, STREET_A, fill

PASSWORD = "Gridone2026pass"
FAST = AccessSettings(login_max_failures=3, login_lockout_minutes=15, session_idle_minutes=30)
INJECTIONS = (
    "' OR '1'='1",
    "admin'--",
    "x'; DROP TABLE app_user; --",
    "leader' UNION SELECT password_hash FROM app_user --",
    "%",
    "\\",
    "leader\x00",
)


@pytest.fixture(scope="module")
def db(server: conftest.TestServer, template_db: str) -> Iterator[tuple[str, Engine]]:
    """A database holding the two streets, as (name, owner engine)."""
    name = server.create(f"acc{os.getpid() % 1000}", template=template_db)
    engine = make_engine(server.url(name))
    with engine.begin() as conn:
        fill(conn)
        access.sync_login_policy(conn, FAST, actor="test")  # the owner's policy (0011)
    yield name, engine
    engine.dispose()
    server.drop(name)


@pytest.fixture(scope="module")
def app(server: conftest.TestServer, db, app_login) -> Iterator[Engine]:
    """The dashboard's engine: connections as gridone_app."""
    engine = access_data.app_engine(server, db[0], app_login)
    yield engine
    engine.dispose()


def _add(engine: Engine, login: str, role: str = "street", scope: str | None = STREET_A) -> None:
    with engine.begin() as conn:
        access.create_user(conn, login, "测试用户", role, scope, PASSWORD, actor="test")


def _audit(engine: Engine, login: str) -> list[tuple[str, bool, dict | None]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text("SELECT action, ok, detail FROM audit_log WHERE login = :l ORDER BY id"),
                {"l": login},
            )
        ]


# --- logging in -----------------------------------------------------------------------------


def test_login_as_the_app_role(db, app: Engine) -> None:
    _add(db[1], "leader1")
    user, token = access.log_in(app, "leader1", PASSWORD, client="10.0.0.1")
    assert (user.login, user.role, user.scope_prefix) == ("leader1", "street", STREET_A[:9])
    with db[1].connect() as conn:
        stored = conn.execute(
            text("SELECT password_hash FROM app_user WHERE login = 'leader1'")
        ).scalar_one()
    assert stored.startswith("$2a$12$") and PASSWORD not in stored and len(stored) == 60
    assert len(token) == 43 and access.resume_session(app, token) == user
    assert _audit(db[1], "leader1")[-1][:2] == ("login", True)
    added = {"target": "leader1", "role": "street", "scope": STREET_A, "staff": None}
    assert ("user_add", True, added) in _audit(db[1], "test")


def test_unknown_user_and_wrong_password_look_the_same(db, app: Engine) -> None:
    _add(db[1], "leader2")
    with pytest.raises(LoginFailedError) as unknown:
        access.log_in(app, "nobody", PASSWORD)
    with pytest.raises(LoginFailedError) as wrong:
        access.log_in(app, "leader2", "Wrong123456")
    assert str(unknown.value) == str(wrong.value) and "用户名或密码错误" in str(wrong.value)
    assert _audit(db[1], "nobody") == [("login_failed", False, {"reason": "unknown"})]

    def median_time(login: str) -> float:
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            with pytest.raises(LoginFailedError):
                access.log_in(app, login, "Wrong123456")
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    with db[1].begin() as conn:  # room for the failures timed (this module locks at 3)
        access.set_login_policy(conn, actor="test", max_failures=10)
    try:
        ratio = median_time("nobody2") / median_time("leader2")
    finally:
        with db[1].begin() as conn:
            access.sync_login_policy(conn, FAST, actor="test")
    assert 0.33 < ratio < 3, f"unknown login takes {ratio:.2f}x a wrong password"


def test_brute_force_locks_the_account(db, app: Engine) -> None:
    _add(db[1], "leader3")
    for _ in range(FAST.login_max_failures - 1):
        with pytest.raises(LoginFailedError):
            access.log_in(app, "leader3", "Guess1234567")
    with pytest.raises(AccountLockedError, match="锁定") as locked:
        access.log_in(app, "leader3", "Guess1234567")
    until = locked.value.until
    assert dt.timedelta(minutes=14) < until - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=15)
    # the right password does not help while locked
    with pytest.raises(AccountLockedError):
        access.log_in(app, "leader3", PASSWORD)
    actions = [a for a, _, _ in _audit(db[1], "leader3")]
    assert actions == ["login_failed"] * 3 + ["lock", "login_failed"]
    # the lock runs out
    with db[1].begin() as conn:
        conn.execute(
            text(
                "UPDATE app_user SET locked_until = now() - interval '1 second' "
                "WHERE login = 'leader3'"
            )
        )
    assert access.log_in(app, "leader3", PASSWORD)[0].login == "leader3"


def test_administrator_lock_and_unlock(db, app: Engine) -> None:
    _add(db[1], "leader4")
    with db[1].begin() as conn:
        access.lock_user(conn, "leader4", minutes=None, actor="admin")
    with pytest.raises(AccountLockedError, match="管理员解锁"):
        access.log_in(app, "leader4", PASSWORD)
    with db[1].begin() as conn:
        access.unlock_user(conn, "leader4", actor="admin")
    assert access.log_in(app, "leader4", PASSWORD)[0].login == "leader4"


@pytest.fixture(scope="module")
def leader5(db) -> str:
    _add(db[1], "leader5")
    return "leader5"


@pytest.mark.parametrize("attack", INJECTIONS)
def test_injection_as_login_password_scope_and_search(
    db, app: Engine, leader5: str, attack: str
) -> None:
    with db[1].connect() as conn:
        before = conn.execute(text("SELECT count(*), max(failed_count) FROM app_user")).one()
    for login, password in ((attack, attack), (attack, PASSWORD), (leader5, attack)):
        with pytest.raises(LoginFailedError):
            access.log_in(app, login, password)
        with db[1].begin() as conn:  # keep leader5 below the lock-out
            access.unlock_user(conn, leader5, actor="test")
    with db[1].connect() as conn:
        after = conn.execute(text("SELECT count(*), max(failed_count) FROM app_user")).one()
    assert after == before
    shown = attack.replace("\x00", "\ufffd")
    assert _audit(db[1], shown)[-1] == ("login_failed", False, {"reason": "unknown"})
    with db[1].begin() as conn, pytest.raises(UserInputError):
        access.create_user(conn, attack, "x", "street", STREET_A, PASSWORD, actor="t")
    with db[1].begin() as conn, pytest.raises(UserInputError):
        access.create_user(conn, "evil", "x", "street", attack, PASSWORD, actor="t")
    # as search terms on the auditor's page: bound parameters, so they only match themselves
    with app.begin() as conn:
        assert access.scoped(conn, access_data.session_token(db[1], "auditor"))
        assert access.search_audit(conn, action=attack) == []
        found = access.search_audit(conn, login=attack)
    assert {r["login"] for r in found} <= {shown} and len(found) >= 2


@pytest.mark.parametrize(
    ("role", "scope"),
    [
        ("street", "370214000000"),
        ("street", "3702149000"),
        ("district", STREET_A),
        ("community", STREET_A),
        ("grid", STREET_A),
        ("sysadmin", STREET_A),
        ("root", None),
        ("street", "370214999000"),  # well-formed, not in the store
    ],
)
def test_user_fields_are_checked(db, role: str, scope: str | None) -> None:
    with db[1].begin() as conn, pytest.raises(UserInputError, match="/"):
        access.create_user(conn, "bad", "坏", role, scope, PASSWORD, actor="t")


@pytest.mark.parametrize("password", ["short1", "onlyletterslong", "1234567890123", "xleader6x123"])
def test_password_rules(db, password: str) -> None:
    with db[1].begin() as conn, pytest.raises(UserInputError, match="密码不符合要求"):
        access.create_user(conn, "leader6", "测试", "street", STREET_A, password, actor="t")


def test_totp_second_factor(db, app: Engine) -> None:
    """Password first; the code is asked for only once the password is right, checked by
    the database (RFC 6238, one step of drift either side), and never accepted twice."""
    _add(db[1], "leader11")
    with db[1].begin() as conn:
        secret, uri = access.enable_totp(conn, "leader11", actor="admin")
    assert uri.startswith("otpauth://totp/GridOne:leader11?secret=" + secret)
    code = access.totp_code(secret, access.current_totp_step())
    before = _audit(db[1], "leader11")
    with pytest.raises(CodeRequiredError):  # the right password alone: asked for the code
        access.log_in(app, "leader11", PASSWORD)
    assert _audit(db[1], "leader11") == before  # not a failure, not a login
    # a wrong password says nothing about the second factor, with or without a code
    for typed in (None, code, "000000"):
        with pytest.raises(LoginFailedError) as wrong:
            access.log_in(app, "leader11", "Wrong123456", totp=typed)
        assert type(wrong.value) is LoginFailedError
        with db[1].begin() as conn:
            access.unlock_user(conn, "leader11", actor="admin")
    with pytest.raises(WrongCodeError, match="动态口令错误"):
        access.log_in(app, "leader11", PASSWORD, totp="000000")
    assert _audit(db[1], "leader11")[-1] == (
        "login_failed",
        False,
        {"reason": "password or code", "failures": 1},
    )
    with db[1].begin() as conn:
        access.unlock_user(conn, "leader11", actor="admin")
    user, token = access.log_in(app, "leader11", PASSWORD, totp=code)
    assert user.login == "leader11" and access.resume_session(app, token) == user
    with pytest.raises(WrongCodeError):  # the same code twice: a replay
        access.log_in(app, "leader11", PASSWORD, totp=code)
    # the next step is accepted (clock drift), three steps away not
    later = access.totp_code(secret, access.current_totp_step() + 1)
    assert access.log_in(app, "leader11", PASSWORD, totp=later)[0] == user
    with db[1].begin() as conn:
        conn.execute(text("UPDATE app_user SET totp_last_step = NULL WHERE login = 'leader11'"))
    far = access.totp_code(secret, access.current_totp_step() + 3)
    with pytest.raises(WrongCodeError):
        access.log_in(app, "leader11", PASSWORD, totp=far)


def test_totp_matches_rfc_6238(db) -> None:
    """The RFC's SHA-1 test vectors (their last six digits), in Python and in the database,
    which checks the codes at login."""
    import base64

    secret = base64.b32encode(b"12345678901234567890").decode()
    times = (59, 1111111109, 1234567890, 2000000000)
    got = [access.totp_code(secret, t // 30) for t in times]
    assert got == ["287082", "081804", "005924", "279037"]
    code_of = text("SELECT gridone_totp_code(:s, :t)")
    with db[1].connect() as conn:
        in_db = [conn.execute(code_of, {"s": secret, "t": t // 30}).scalar_one() for t in times]
    assert in_db == got


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.binary(min_size=1, max_size=40), step=st.integers(0, 2**40))
def test_totp_in_the_database_agrees_with_python(db, key: bytes, step: int) -> None:
    """Base32 secrets of any length (unpadded, lower or upper case, as typed) decode to
    their bytes, and the database's code equals Python's for any key and step."""
    import base64

    secret = base64.b32encode(key).decode().rstrip("=")
    with db[1].connect() as conn:
        decoded = conn.execute(
            text("SELECT gridone_base32_decode(:s)"), {"s": secret.lower()}
        ).scalar_one()
        code = conn.execute(
            text("SELECT gridone_totp_code(:s, :t)"), {"s": secret, "t": step}
        ).scalar_one()
    assert bytes(decoded) == key
    assert code == access.totp_code(secret, step)


# --- sessions --------------------------------------------------------------------------------


def test_session_reuse_after_logout_is_refused(db, app: Engine) -> None:
    _add(db[1], "leader7")
    user, token = access.log_in(app, "leader7", PASSWORD)
    assert access.resume_session(app, token) == user
    with app.begin() as conn:
        access.end_session(conn, token)
    with pytest.raises(SessionInvalidError, match="重新登录"):
        access.resume_session(app, token)
    with pytest.raises(SessionInvalidError):
        access.resume_session(app, token + "x")
    with db[1].connect() as conn:
        stored = conn.execute(
            text("SELECT token_hash FROM app_session WHERE user_id = :u"), {"u": user.id}
        ).scalar_one()
    assert token.encode() not in bytes(stored) and len(stored) == 32
    assert [a for a, _, _ in _audit(db[1], "leader7")] == ["login", "logout"]


@pytest.mark.parametrize(
    ("column", "age", "reason"),
    [("last_seen", "31 minutes", "idle"), ("created_at", "13 hours", "max_age")],
)
def test_idle_and_old_sessions_end(db, app: Engine, column: str, age: str, reason: str) -> None:
    login = f"leader8{reason[0]}"
    _add(db[1], login)
    user, token = access.log_in(app, login, PASSWORD)
    with db[1].begin() as conn:  # time passes
        conn.execute(
            text(
                f"UPDATE app_session SET {column} = now() - CAST(:age AS interval) "  # noqa: S608
                "WHERE user_id = :u"
            ),
            {"age": age, "u": user.id},
        )
    with pytest.raises(SessionInvalidError, match="超时"):
        access.resume_session(app, token)
    with pytest.raises(SessionInvalidError):  # and stays dead
        access.resume_session(app, token)
    assert _audit(db[1], login)[-1] == ("session_expired", True, {"reason": reason})


def test_role_change_and_deactivation_end_sessions(db, app: Engine) -> None:
    _add(db[1], "leader9")
    _, t1 = access.log_in(app, "leader9", PASSWORD)
    with db[1].begin() as conn:
        changed = access.set_role(conn, "leader9", "grid", GRIDS[0], actor="admin")
    assert changed.scope_prefix == GRIDS[0]
    with pytest.raises(SessionInvalidError):
        access.resume_session(app, t1)
    again, t2 = access.log_in(app, "leader9", PASSWORD)
    assert again == changed
    with db[1].begin() as conn:
        access.set_active(conn, "leader9", False, actor="admin")
    with pytest.raises(SessionInvalidError):
        access.resume_session(app, t2)
    with pytest.raises(LoginFailedError):
        access.log_in(app, "leader9", PASSWORD)
    details = [d for a, _, d in _audit(db[1], "admin") if a == "user_change"]
    assert {"target": "leader9", "role": ["street", "grid"], "scope": [STREET_A, GRIDS[0]]} in (
        details
    )


# --- the audit trail ------------------------------------------------------------------------


def test_audit_is_append_only_even_for_the_owner(db) -> None:
    with db[1].begin() as conn:
        access.audit(conn, "page_view", login="owner-test", detail={"page": "热点"})
    for stmt in (
        "UPDATE audit_log SET ok = false",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with db[1].begin() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text(stmt))
    with db[1].begin() as conn, pytest.raises(DBAPIError, match="at least 180 days"):
        conn.execute(text("SELECT audit_purge(30)"))
    assert _audit(db[1], "owner-test") == [("page_view", True, {"page": "热点"})]


def test_audit_time_is_the_servers(db) -> None:
    with db[1].begin() as conn:  # the owner (the application may not insert since 0011)
        conn.execute(
            text(
                "INSERT INTO audit_log (at, login, action) "
                "VALUES ('2000-01-01', 'backdater', 'export')"
            )
        )
    with db[1].connect() as conn:
        at = conn.execute(text("SELECT at FROM audit_log WHERE login = 'backdater'")).scalar_one()
    assert abs(at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


def test_purge_removes_only_rows_past_the_retention(
    server: conftest.TestServer, fresh_engine: Engine, app_login
) -> None:
    with fresh_engine.begin() as conn:  # plant an old row (the owner, trigger off on purpose)
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_guard_insert"))
        conn.execute(
            text(
                "INSERT INTO audit_log (at, login, action) VALUES "
                "(now() - interval '200 days', 'old', 'login'), "
                "(now() - interval '179 days', 'recent', 'login')"
            )
        )
        conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_guard_insert"))
    app = access_data.app_engine(server, fresh_engine.url.database, app_login)
    try:
        with app.begin() as conn:
            assert access.purge_audit(conn, 180) == 1
    finally:
        app.dispose()
    with fresh_engine.connect() as conn:
        left = conn.execute(text("SELECT login, action FROM audit_log ORDER BY id")).all()
    assert [tuple(r) for r in left] == [("recent", "login"), (None, "purge")]


def test_auditor_searches_the_log(db, app: Engine) -> None:
    _add(db[1], "leader10")
    with pytest.raises(LoginFailedError):
        access.log_in(app, "leader10", "Wrong123456")
    auditor = access_data.session_token(db[1], "auditor")
    leader = access_data.session_token(db[1], "street", STREET_A[:9])
    with app.begin() as conn:
        access.scoped(conn, auditor)
        rows = access.search_audit(conn, login="leader10", action="login_failed")
        by_text = access.search_audit(conn, contains="leader10")
    with app.begin() as conn:
        access.scoped(conn, leader)
        hidden = access.search_audit(conn, login="leader10")
    assert [(r["action"], r["ok"]) for r in rows] == [("login_failed", False)]
    added = {"target": "leader10", "role": "street", "scope": STREET_A, "staff": None}
    assert any(r["detail"] == added for r in by_text)
    assert hidden == []


def test_app_role_cannot_change_the_audit(app: Engine) -> None:
    for stmt in ("UPDATE audit_log SET ok = false", "DELETE FROM audit_log"):
        with app.begin() as conn, pytest.raises(ProgrammingError, match="permission denied"):
            conn.execute(text(stmt))


# --- small pieces ------------------------------------------------------------------------------


def test_mask_count_and_scope_prefix() -> None:
    assert [access.mask_count(n) for n in (None, 0, 1, 4, 5, 12)] == [
        "",
        "<5",
        "<5",
        "<5",
        "5",
        "12",
    ]
    assert access.User(1, "a", "a", "district", "370214000000").scope_prefix == "370214"
    assert access.User(1, "a", "a", "community", "370214900001").scope_prefix == "370214900001"
    assert access.User(1, "a", "a", "auditor", None).scope_prefix is None
    assert access.User(1, "a", "a", "street", "370214000000").scope_prefix is None


def test_access_settings_are_documented() -> None:
    for name, field in AccessSettings.model_fields.items():
        assert field.description and len(field.description) > 20, name
    with pytest.raises(ValueError, match="audit_retention_days"):
        AccessSettings(audit_retention_days=90)


def test_app_role_password_is_set_in_the_transaction(db) -> None:
    """Rolled back here: the role is the cluster's, and other runs may be using it."""
    with db[1].connect() as conn:
        before = conn.execute(
            text("SELECT rolpassword FROM pg_authid WHERE rolname = 'gridone_app'")
        ).scalar_one()
        password = access.set_app_role_password(conn)
        after = conn.execute(
            text("SELECT rolpassword FROM pg_authid WHERE rolname = 'gridone_app'")
        ).scalar_one()
        conn.rollback()
    assert len(password) >= 32 and after != before and after.startswith("SCRAM-SHA-256$")


# --- the command line ------------------------------------------------------------------------


def _cli(db_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": db_url}
    return subprocess.run(
        [sys.executable, "-m", "store", "users", *args],
        cwd=PROJECT_ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def test_cli_manages_users(server: conftest.TestServer, db, app: Engine) -> None:
    url = server.url(db[0])
    add = _cli(
        url,
        "add",
        "cli.leader",
        "--name",
        "王书记",
        "--role",
        "street",
        "--scope",
        STREET_A,
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert add.returncode == 0, add.stderr
    assert access.log_in(app, "cli.leader", PASSWORD)[0].role == "street"
    listed = _cli(url, "list")
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith("cli.leader"))
    assert "王书记" in line and "街道领导" in line and STREET_A in line
    assert _cli(url, "lock", "cli.leader", "--minutes", "10").returncode == 0
    with pytest.raises(AccountLockedError):
        access.log_in(app, "cli.leader", PASSWORD)
    assert _cli(url, "unlock", "cli.leader").returncode == 0
    new = "Another2026pw"
    assert _cli(url, "passwd", "cli.leader", "--password-stdin", stdin=new + "\n").returncode == 0
    assert access.log_in(app, "cli.leader", new)[0].login == "cli.leader"
    assert _cli(url, "role", "cli.leader", "--role", "grid", "--scope", GRIDS[0]).returncode == 0
    bad = _cli(url, "role", "cli.leader", "--role", "grid", "--scope", STREET_A)
    assert bad.returncode == 2 and "错误 / error" in bad.stderr and "网格员" in bad.stderr
    with db[1].connect() as conn:
        actions = conn.execute(
            text(
                "SELECT action FROM audit_log WHERE login LIKE 'cli:%' "
                "AND detail->>'target' = 'cli.leader' ORDER BY id"
            )
        ).scalars()
        actions = list(actions)
    assert actions == ["user_add", "lock", "unlock", "password_set", "user_change"]


# --- the demo's logins and the dashboard's engine (dashboard half) -------------------------


def test_demo_logins_are_generated_private_and_work(
    db, app: Engine, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each installation gets its own random passwords, kept in a file only its owner can
    read; a second run prints the same list, a lost list means new passwords."""
    from store import access_cli

    kept = tmp_path / "demo-logins.txt"
    monkeypatch.setattr(access_cli, "DEMO_LOGINS_FILE", kept)
    first = access_cli.demo_logins(db[1], actor="test", settings=FAST)
    assert kept.stat().st_mode & 0o777 == 0o600
    rows = [line.split() for line in first.splitlines()[1:]]
    assert [(r[0], r[2], r[3]) for r in rows] == [
        ("demo-district", "district", "370214000000"),
        ("demo-street", "street", STREET_A),
        ("demo-auditor", "auditor", "-"),
    ]
    for login, password, role, _ in rows:
        assert access.log_in(app, login, password)[0].role == role
    assert access_cli.demo_logins(db[1], actor="test", settings=FAST) == first
    kept.unlink()
    again = access_cli.demo_logins(db[1], actor="test", settings=FAST)
    assert {r[1] for r in rows}.isdisjoint(line.split()[1] for line in again.splitlines()[1:])


def test_dashboard_engine_refuses_the_owner(db) -> None:
    from store.db import make_app_engine
    from store.errors import UnsafeConnectionError

    engine = make_app_engine(db[1].url.render_as_string(hide_password=False))
    try:
        with pytest.raises(UnsafeConnectionError, match="gridone_app"), engine.connect():
            pass
    finally:
        engine.dispose()


def test_dashboard_engine_acts_as_gridone_app(server: conftest.TestServer, db, app_login) -> None:
    from store.db import make_app_engine

    engine = make_app_engine(access_data.app_url(server, db[0], app_login))
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_user")).scalar_one() == "gridone_app"
    finally:
        engine.dispose()
