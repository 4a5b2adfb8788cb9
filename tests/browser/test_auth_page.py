"""Logins, roles and crafted URLs in real Chromium (issue 7).

Every page asks for a login; a shared link opens its view after logging in; logging out
revokes the session; the auditor sees the audit log and nothing else, the system
administrator no data; a street leader sees special-group counts per grid masked under 5;
a community user's crafted links to another community's grid, incident or community, and
SQL injection strings in every URL parameter of every page, give a clear message, none of
the other unit's figures and no traceback. Expected figures are read by the owner.
"""

from __future__ import annotations

import hashlib
import re
import time
import urllib.parse

import pytest
from playwright.sync_api import Page
from sqlalchemy import Engine, text

from store.access import SPECIAL_GROUPS, mask_count
from tests.browser.conftest import (
    ARTIFACTS,
    DEMO_USERS,
    MAP_IFRAME,
    OfflinePage,
    goto,
    login,
    map_frame,
    wait_map_settled,
)

VIEWPORT = {"width": 1280, "height": 1400}
ALERT = '[data-testid="stAlert"]'
EXCEPTION = '[data-testid="stException"]'
#: What an injection tries, put into every URL parameter of a page.
INJECTIONS = ("' OR '1'='1", "1; DROP TABLE incident--", "370214%' UNION SELECT * FROM staff--")
#: Every page's URL parameters (README's page table).
PAGE_PARAMS = {
    "": "street community grid incident lat lng zoom from to category status layers "
    "indicator color gcj02 day days",
    "incidents": "street community period from to category by bin",
    "patrol": "street community day span worker window color",
    "hotspots": "method street from to category unit resolution fdr bin patrol_days patrol_min",
    "assess": "street community month patrols worker",
    "briefing": "street from to",
}


def _page(offline: OfflinePage) -> Page:
    page = offline.page
    page.set_viewport_size(VIEWPORT)
    return page


def _no_traceback(page: Page) -> None:
    assert page.locator(EXCEPTION).count() == 0
    assert page.get_by_text("Traceback", exact=False).count() == 0


def _settled(page: Page) -> None:
    """Wait until the script run has finished (the running indicator is gone)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=120_000,
        polling=250,
    )


@pytest.fixture(scope="module")
def units(demo_engine: Engine, demo_users) -> dict[str, str]:
    """The community user's community, another community of the street, one of its grids
    and one of its incidents (read as the owner)."""
    own = DEMO_USERS["community"].scope_code
    with demo_engine.connect() as conn:
        other, grid, incident = conn.execute(
            text(
                "SELECT g.community_code, g.code, "
                "(SELECT i.code FROM incident i WHERE i.grid_code = g.code LIMIT 1) "
                "FROM grid g WHERE g.community_code <> :c "
                "AND EXISTS (SELECT 1 FROM incident i WHERE i.grid_code = g.code) "
                "ORDER BY g.code LIMIT 1"
            ),
            {"c": own},
        ).one()
        own_grid = conn.execute(
            text("SELECT min(code) FROM grid WHERE community_code = :c"), {"c": own}
        ).scalar_one()
    return {"own": own, "own_grid": own_grid, "other": other, "grid": grid, "incident": incident}


def _wait_for_row(engine: Engine, query: str, params: dict, timeout_s: float = 30) -> object:
    """The first column of the first row of ``query`` once there is one (the download's
    callback runs in the rerun the click starts, after the file has been fetched)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with engine.connect() as conn:
            value = conn.execute(text(query), params).scalar()
        if value is not None or time.monotonic() > deadline:
            assert value is not None, query
            return value
        time.sleep(0.2)


# --- logging in and out -----------------------------------------------------------------------


def test_login_first_then_the_shared_link_opens_its_view(
    app_url: str, offline_page: OfflinePage, demo_users
) -> None:
    page = _page(offline_page)
    page.goto(f"{app_url}/hotspots?method=grid&fdr=0")
    form = page.locator('[data-testid="stForm"]')
    form.wait_for(timeout=60_000)
    assert page.get_by_role("heading", name="热点", exact=True).count() == 0  # nothing else
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "auth_login.png"))
    # a wrong password: the message of store.access.log_in, and still the form
    form.get_by_label("登录名").fill(DEMO_USERS["street"].login)
    form.get_by_label("密码", exact=True).fill("Wrong-password-1")
    form.get_by_role("button", name="登录").click()
    page.get_by_text("用户名或密码错误", exact=False).wait_for(timeout=30_000)
    login(page)
    page.get_by_role("heading", name="热点", exact=True).wait_for(timeout=60_000)
    assert "method=grid" in page.url and "fdr=0" in page.url
    side = page.locator('[data-testid="stSidebar"]')
    side.get_by_text("街道领导", exact=False).first.wait_for()
    _no_traceback(page)


def test_totp_is_asked_for_after_the_right_password_only(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine
) -> None:
    """An account with a second factor: the form asks for the login and password only; a
    wrong password gets the usual message and no code field; the right one a second form
    for the code (the database answered "code required", no session yet); a wrong code
    its own message, still the code form; the right code logs in."""
    from store import access

    password = "Totp" + str(time.time_ns())[-8:] + "x"
    with demo_engine.begin() as conn:
        street = conn.execute(
            text("SELECT min(code) FROM admin_unit WHERE level = 'street'")
        ).scalar_one()
        if access.get_user(conn, "test-totp") is None:
            access.create_user(conn, "test-totp", "双因素", "street", street, password, actor="t")
        else:
            access.set_password(conn, "test-totp", password, actor="t")
        secret, _ = access.enable_totp(conn, "test-totp", actor="t")
    page = _page(offline_page)
    page.goto(f"{app_url}/hotspots")
    form = page.locator('[data-testid="stForm"]')
    form.wait_for(timeout=60_000)
    assert form.get_by_label("动态口令", exact=False).count() == 0  # one step at a time
    form.get_by_label("登录名").fill("test-totp")
    form.get_by_label("密码", exact=True).fill("Wrong-password-1")
    form.get_by_role("button", name="登录").click()
    page.get_by_text("用户名或密码错误", exact=False).wait_for(timeout=30_000)
    _settled(page)
    assert page.get_by_label("动态口令", exact=False).count() == 0
    form.get_by_label("登录名").fill("test-totp")
    form.get_by_label("密码", exact=True).fill(password)
    form.get_by_role("button", name="登录").click()
    code_field = page.get_by_label("动态口令", exact=False)
    code_field.wait_for(timeout=30_000)
    page.get_by_text("密码正确", exact=False).wait_for()
    with demo_engine.connect() as conn:
        sessions = conn.execute(
            text(
                "SELECT count(*) FROM app_session s JOIN app_user u ON u.id = s.user_id "
                "WHERE u.login = 'test-totp'"
            )
        ).scalar_one()
    assert sessions == 0
    assert page.get_by_label("密码", exact=True).count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "auth_totp_step.png"))
    page.get_by_role("button", name="验证并登录").click()  # no code typed
    page.get_by_text("请输入6位动态口令", exact=False).wait_for(timeout=30_000)
    _settled(page)
    code_field.fill(
        "000000" if access.totp_code(secret, access.current_totp_step()) != "000000" else "111111"
    )
    page.get_by_role("button", name="验证并登录").click()
    page.get_by_text("动态口令错误", exact=False).wait_for(timeout=30_000)
    _settled(page)
    page.get_by_label("动态口令", exact=False).fill(
        access.totp_code(secret, access.current_totp_step())
    )
    page.get_by_role("button", name="验证并登录").click()
    page.get_by_role("button", name="退出登录").wait_for(timeout=60_000)
    page.get_by_role("heading", name="热点", exact=True).wait_for(timeout=60_000)
    _no_traceback(page)
    with demo_engine.connect() as conn:
        actions = conn.execute(
            text("SELECT action, ok FROM audit_log WHERE login = 'test-totp' ORDER BY id")
        ).all()
    assert [tuple(a) for a in actions][:3] == [
        ("login_failed", False),
        ("login_failed", False),
        ("login", True),
    ]


def test_logout_revokes_the_session(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine
) -> None:
    page = _page(offline_page)
    goto(page, f"{app_url}/briefing", role="district")
    with demo_engine.connect() as conn:
        live = conn.execute(
            text(
                "SELECT s.id FROM app_session s JOIN app_user u ON u.id = s.user_id "
                "WHERE u.login = :l AND s.revoked_at IS NULL ORDER BY s.id DESC LIMIT 1"
            ),
            {"l": DEMO_USERS["district"].login},
        ).scalar_one()
    page.get_by_role("button", name="退出登录").click()
    page.get_by_text("已退出登录", exact=False).wait_for(timeout=30_000)
    page.locator('[data-testid="stForm"]').wait_for()
    with demo_engine.connect() as conn:
        revoked = conn.execute(
            text("SELECT revoked_at IS NOT NULL FROM app_session WHERE id = :i"), {"i": live}
        ).scalar_one()
        actions = conn.execute(
            text(
                "SELECT action FROM audit_log WHERE login = :l AND action IN ('login', 'logout', "
                "'page_view') ORDER BY id DESC LIMIT 3"
            ),
            {"l": DEMO_USERS["district"].login},
        ).scalars()
        actions = list(actions)
    assert revoked
    assert actions[0] == "logout" and "page_view" in actions


def test_the_next_user_of_the_tab_is_not_offered_the_last_ones_briefing(
    app_url: str, offline_page: OfflinePage, demo_users, demo_engine: Engine
) -> None:
    """A district user makes the briefing of the street, logs out; the street leader logs
    in in the same tab on the same view: no file of the district user is offered (the
    browser session's state goes with the login), only the build button."""
    with demo_engine.connect() as conn:
        street, last = conn.execute(
            text(
                "SELECT (SELECT min(code) FROM admin_unit WHERE level = 'street'), "
                "(SELECT max(reported_at AT TIME ZONE 'Asia/Shanghai')::date FROM incident)"
            )
        ).one()
    page = _page(offline_page)
    url = f"{app_url}/briefing?street={street}&from={last.replace(day=1)}&to={last}"
    goto(page, url, role="district")
    page.get_by_role("button", name="生成简报").click()
    page.get_by_text("下载 PDF", exact=False).wait_for(timeout=90_000)
    page.get_by_role("button", name="退出登录").click()
    page.get_by_text("已退出登录", exact=False).wait_for(timeout=30_000)
    login(page, "street")
    page.get_by_role("button", name="生成简报").wait_for(timeout=60_000)
    # the run has ended (whatever it was going to offer is on the page)
    page.wait_for_selector(
        '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000
    )
    assert f"street={street}" in page.url
    assert page.get_by_text("下载 PDF", exact=False).count() == 0
    assert page.get_by_text("简报已生成", exact=False).count() == 0
    _no_traceback(page)


# --- roles --------------------------------------------------------------------------------------


def test_auditor_sees_the_audit_log_only(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine
) -> None:
    page = _page(offline_page)
    goto(page, f"{app_url}/briefing", role="street")  # a login of the street leader to find
    goto(page, f"{app_url}/?street=x", role="auditor")  # the default page: the audit log
    page.get_by_role("heading", name="审计日志查询", exact=True).wait_for(timeout=60_000)
    nav = page.locator('[data-testid="stSidebarNav"]')
    assert nav.get_by_text("一张图", exact=True).count() == 0
    assert nav.get_by_text("事件", exact=True).count() == 0
    # search: the street leader's logins
    leader = DEMO_USERS["street"].login
    goto(page, f"{app_url}/audit?login={leader}&action=login", role="auditor")
    page.get_by_text("共 ", exact=False).first.wait_for(timeout=60_000)
    with demo_engine.connect() as conn:
        want = conn.execute(
            text(
                "SELECT count(*) FROM audit_log WHERE login = :l AND action = 'login' "
                "AND at >= now() - interval '7 days'"
            ),
            {"l": leader},
        ).scalar_one()
    assert want > 0
    page.get_by_text(f"共 {want} 条", exact=False).wait_for()
    page.locator('[data-testid="stDataFrame"]').wait_for()
    _settled(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "auth_audit.png"), full_page=True)
    with demo_engine.connect() as conn:
        before = conn.execute(text("SELECT coalesce(max(id), 0) FROM audit_log")).scalar_one()
    with page.expect_download() as dl:
        page.get_by_role("button", name="下载 CSV", exact=False).click()
    raw = dl.value.path().read_bytes()
    body = raw.decode("utf-8-sig")
    assert body.splitlines()[0].startswith("时间,登录名") and len(body.splitlines()) == want + 1
    exported = _wait_for_row(
        demo_engine,
        "SELECT detail FROM audit_log WHERE action = 'export' AND login = :l "
        "AND id > :before ORDER BY id DESC LIMIT 1",
        {"l": DEMO_USERS["auditor"].login, "before": before},
    )
    assert exported["kind"] == "audit_csv" and exported["filters"]["login"] == leader
    assert exported["sha256"] == hashlib.sha256(raw).hexdigest() and exported["rows"] == want
    _no_traceback(page)


def test_sysadmin_sees_no_data(app_url: str, offline_page: OfflinePage) -> None:
    page = _page(offline_page)
    goto(page, f"{app_url}/incidents", role="sysadmin")
    page.get_by_text("系统管理员只管理用户", exact=False).wait_for(timeout=60_000)
    assert page.locator('[data-testid="stMetric"]').count() == 0
    assert page.locator(MAP_IFRAME).count() == 0
    _no_traceback(page)


def test_street_leader_sees_special_groups_per_grid_masked(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, units
) -> None:
    grid = units["own_grid"]
    with demo_engine.connect() as conn:
        sums = conn.execute(
            text(
                "SELECT " + ", ".join(f"sum({c})::int" for c in SPECIAL_GROUPS) + " "
                "FROM housing_special_count WHERE grid_code = :g"
            ),
            {"g": grid},
        ).one()
    page = _page(offline_page)
    goto(page, f"{app_url}/?grid={grid}")
    heading = page.get_by_text("特殊人群", exact=False).first
    heading.wait_for(timeout=120_000)
    map_frame(page)
    _settled(page)
    table = page.locator('[data-testid="stTable"]').filter(has_text="刑满释放人员")
    shown = table.inner_text()
    labels = ("刑满释放人员", "社区矫正对象", "吸毒人员", "严重精神障碍患者", "重点青少年")
    for label, n in zip(labels, sums, strict=True):
        assert re.search(rf"{label}\s+{re.escape(mask_count(n or 0))}(\s|$)", shown), shown
    heading.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "auth_street_panel.png"), full_page=True)
    # the community user is not shown special groups at all
    goto(page, f"{app_url}/?grid={units['own_grid']}", role="community")
    page.get_by_text("联系人", exact=False).first.wait_for(timeout=120_000)
    _settled(page)
    assert page.get_by_text("特殊人群", exact=False).count() == 0
    _no_traceback(page)


# --- crafted URLs --------------------------------------------------------------------------------


def _jurisdiction_warning(page: Page) -> None:
    page.locator(ALERT).filter(has_text="不在您的辖区").first.wait_for(timeout=120_000)


def _map_html(page: Page) -> str:
    _, frame = map_frame(page)
    wait_map_settled(frame)
    return frame.content()


@pytest.mark.parametrize("param", ["grid", "incident", "community"])
def test_crafted_link_to_another_unit_is_refused(
    app_url: str, offline_page: OfflinePage, units, param: str
) -> None:
    value = {"grid": units["grid"], "incident": units["incident"], "community": units["other"]}
    page = _page(offline_page)
    goto(page, f"{app_url}/?{param}={value[param]}", role="community")
    _jurisdiction_warning(page)
    _settled(page)
    html = _map_html(page)
    assert units["grid"] not in html and units["other"] not in html
    # no panel, no incident heading of the other unit
    assert page.get_by_role("heading", name=units["grid"]).count() == 0
    assert page.get_by_role("heading", name=units["incident"]).count() == 0
    if param == "grid":
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "auth_refused_url.png"))
        # the own unit's map is drawn (the component sizes its frame once drawn)
        page.wait_for_function(
            "(sel) => (document.querySelector(sel)?.getBoundingClientRect().height || 0) > 400",
            arg=MAP_IFRAME,
            timeout=60_000,
            polling=250,
        )
        page.screenshot(path=str(ARTIFACTS / "auth_refused_url.png"))
    _no_traceback(page)
    offline_page.assert_clean()


def test_crafted_street_link_is_refused(app_url: str, offline_page: OfflinePage) -> None:
    page = _page(offline_page)
    goto(page, f"{app_url}/incidents?street=370214901000", role="street")
    page.locator(ALERT).filter(has_text="370214901000").first.wait_for(timeout=120_000)
    _settled(page)
    page.locator('[data-testid="stSidebar"]').get_by_text("示范街道").first.wait_for()
    _no_traceback(page)


@pytest.mark.parametrize("path", list(PAGE_PARAMS))
def test_sql_injection_in_every_url_parameter(
    app_url: str, offline_page: OfflinePage, path: str
) -> None:
    for i, attack in enumerate(INJECTIONS[:2]):
        query = urllib.parse.urlencode(dict.fromkeys(PAGE_PARAMS[path].split(), attack))
        page = _page(offline_page)
        goto(page, f"{app_url}/{path}?{query}")
        page.locator(ALERT).first.wait_for(timeout=120_000)
        _settled(page)
        _no_traceback(page)
        assert page.locator(ALERT).filter(has_text="无效").count() >= 1, (path, i)
    offline_page.page.goto("about:blank")


def test_sql_injection_in_the_audit_search(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine
) -> None:
    """The auditor's free-text fields are bound parameters: an injection string finds the
    rows that contain it, nothing more; malformed dates and actions get the warning."""
    attack = INJECTIONS[0]
    query = urllib.parse.urlencode(
        {"from": attack, "to": attack, "login": attack, "action": attack, "q": attack}
    )
    page = _page(offline_page)
    goto(page, f"{app_url}/audit?{query}", role="auditor")
    page.locator(ALERT).filter(has_text="无效").first.wait_for(timeout=60_000)
    page.get_by_text("没有审计记录", exact=False).wait_for(timeout=60_000)
    _settled(page)
    _no_traceback(page)
