"""The watermark (store/watermark.py): what it accepts, how it reads, whose name a command
puts in it; and that the owner the command line connects as can append the audit rows of
exports and briefings under audit_log's row-level security and triggers, without being a
superuser, and still cannot rewrite them."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from store import access
from store.errors import UserInputError
from store.watermark import MAX_NAME, Watermark, for_command, for_service, os_user
from tests import conftest

AT = dt.datetime(2026, 11, 30, 21, 45, 30, tzinfo=dt.UTC)


def test_time_is_shown_in_beijing_whatever_zone_it_was_taken_in() -> None:
    new_york = AT.astimezone(dt.timezone(dt.timedelta(hours=-5)))
    wm = Watermark("张三", "zhangsan", new_york)
    assert wm.beijing == "2026-12-01 05:45"
    assert wm.as_dict() == {"user": "张三", "login": "zhangsan", "at": "2026-12-01T05:45:30+08:00"}
    assert wm.mark("zh") == "张三（zhangsan） 2026-12-01 05:45 北京时间"
    assert (
        wm.line("zh") == "张三（zhangsan） 于 2026-12-01 05:45（北京时间）生成 · 内部资料，请勿外传"
    )
    assert wm.line("en").startswith("Made for 张三（zhangsan） at 2026-12-01 05:45 Beijing time")
    assert Watermark("ops", "ops", AT).who == "ops"  # the login is not repeated


@pytest.mark.parametrize(
    ("user", "match"),
    [
        ("", "1–64"),
        ("   ", "1–64"),
        ("x" * (MAX_NAME + 1), "1–64"),
        ("a\nb", "控制字符"),
        ("ab\u202egnp.exe", "控制字符"),
    ],
)
def test_a_name_that_cannot_be_printed_plainly_is_refused(user: str, match: str) -> None:
    with pytest.raises(UserInputError, match=match):
        Watermark(user, "login", AT)
    with pytest.raises(UserInputError, match=match):
        Watermark("user", user, AT)


def test_a_time_without_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Watermark("a", "a", dt.datetime(2026, 1, 1))


printable = st.text(
    st.characters(exclude_categories=("Cc", "Cf", "Cs", "Co", "Cn")), min_size=1, max_size=64
).filter(lambda s: s.strip())


@given(printable, printable)
def test_any_printable_name_is_carried_as_given(user: str, login: str) -> None:
    wm = Watermark(user, login, AT)
    assert (wm.user, wm.login) == (user.strip(), login.strip())
    assert wm.user in wm.mark("zh") and wm.login in wm.line("en")
    assert wm.as_dict()["user"] == user.strip()


def test_a_command_names_the_dashboard_user_or_whoever_runs_it(conn: Connection) -> None:
    access.create_user(conn, "wangwu", "王五", "sysadmin", None, "Secret123456", actor="test")
    assert (for_command(conn, "wangwu").user, for_command(conn, "wangwu").login) == (
        "王五",
        "wangwu",
    )
    stranger = for_command(conn, "nobody-here")
    assert (stranger.user, stranger.login) == ("nobody-here", "nobody-here")
    me = for_command(conn)
    assert (me.user, me.login) == (os_user(), os_user())
    assert abs(me.at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    service = for_service("dashboard")
    assert (service.user, service.login) == ("dashboard", os_user())


@pytest.fixture
def plain_owner(server: conftest.TestServer, fresh_engine: Engine) -> Iterator[str]:
    """A role that is neither superuser nor BYPASSRLS, owns audit_log and has its
    ``owner_maintains`` policy, as the role that runs ``migrate`` (and the command line)
    does outside this test cluster, where the migrating role is a superuser; dropped
    after."""
    role = f"{conftest.PREFIX}_owner"
    with server._admin() as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        admin.execute(
            sql.SQL("CREATE ROLE {} NOLOGIN NOSUPERUSER NOBYPASSRLS").format(sql.Identifier(role))
        )
    raw = fresh_engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(sql.SQL("ALTER TABLE audit_log OWNER TO {}").format(sql.Identifier(role)))
        cur.execute(
            sql.SQL(
                "CREATE POLICY owner_maintains_plain ON audit_log FOR ALL TO {} "
                "USING (true) WITH CHECK (true)"
            ).format(sql.Identifier(role))
        )
        raw.commit()
    finally:
        raw.close()
    yield role
    raw = fresh_engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("DROP POLICY owner_maintains_plain ON audit_log")
        cur.execute("ALTER TABLE audit_log OWNER TO CURRENT_USER")
        raw.commit()
    finally:
        raw.close()
    fresh_engine.dispose()
    with server._admin() as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _as(conn: Connection, role: str) -> None:
    assert re.fullmatch(r"[a-z0-9_]+", role)  # made by the fixture above
    conn.execute(text(f"SET LOCAL ROLE {role}"))


def test_a_plain_owner_appends_export_and_briefing_rows_but_cannot_rewrite_them(
    fresh_engine: Engine, plain_owner: str
) -> None:
    with fresh_engine.begin() as conn:
        _as(conn, plain_owner)
        state = conn.execute(
            text(
                "SELECT r.rolsuper, r.rolbypassrls, row_security_active('audit_log') "
                "FROM pg_roles r WHERE r.rolname = current_user"
            )
        ).one()
        assert tuple(state) == (False, False, True)  # RLS binds it (FORCE)
        access.audit(conn, "export", login="zhangsan", detail={"kind": "grids", "rows": 41})
        access.audit(conn, "briefing", login="zhangsan", detail={"via": "cli"})
    with fresh_engine.connect() as conn:
        rows = conn.execute(text("SELECT action, login, at FROM audit_log ORDER BY id")).all()
    assert [(r.action, r.login) for r in rows] == [("export", "zhangsan"), ("briefing", "zhangsan")]
    assert all(abs(r.at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5) for r in rows)
    for stmt in ("UPDATE audit_log SET ok = false", "DELETE FROM audit_log"):
        with fresh_engine.begin() as conn:
            _as(conn, plain_owner)
            with pytest.raises(DBAPIError, match="append-only"):
                conn.execute(text(stmt))
