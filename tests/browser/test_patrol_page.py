"""The 巡查 (patrol) page in headless Chromium against the street demo, every non-local
request blocked: the compliance figures are what ``geo.coverage`` computes for the same day
(and change to its values for the previous day), a URL reproduces a week view, the replay
draws a worker's track, and a day without tracks says so."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from sqlalchemy import Engine

from dashboard.patrol_maps import GRID_LINE
from dashboard.patrol_view import SESSION_COLORS
from geo.coverage import coverage_day, unvisited_buildings
from store import patrol_sql, queries
from store.settings import get_settings
from tests.browser.conftest import ARTIFACTS, MAP_IFRAME, OfflinePage, goto, wait_map_settled

VIEWPORT = {"width": 1280, "height": 2200}
METRIC = '[data-testid="stMetricValue"]'


@pytest.fixture(scope="module")
def demo_day(demo_engine: Engine) -> tuple[str, dt.date]:
    """The demo's street and the page's default day: the latest day with patrol fixes."""
    with demo_engine.connect() as conn:
        (street,) = queries.street_names(conn)
        last = patrol_sql.latest_fix(conn, street=street)
    return street, last.astimezone(ZoneInfo(get_settings().timezone)).date()


def geo_headline(engine: Engine, street: str, days: list[dt.date]) -> tuple[str, int, str]:
    """``"met / grid-days"``, counted patrols and the last day's share of buildings passed
    as geo.coverage computes them."""
    met = total = patrols = 0
    with engine.connect() as conn:
        for d in days:
            g = coverage_day(conn, d, street=street).grid_day
            share = f"{g['buildings_passed'].sum() / g['buildings'].sum() * 100:.0f}%"
            if len(days) > 1:  # a week counts working days only
                g = g[g["workday"].ne(False)]
            met += int(g["rule_met"].sum())
            total += len(g)
            patrols += int(g["counted_patrols"].sum())
    return f"{met} / {total}", patrols, share


def metrics(page: Page, expected_first: str) -> list[str]:
    """The headline values once the first equals ``expected_first`` (fails with what is
    shown instead)."""
    try:
        page.wait_for_function(
            "([sel, want]) => document.querySelector(sel)?.innerText.trim() === want",
            arg=[METRIC, expected_first],
            timeout=90_000,
            polling=250,
        )
    except PlaywrightTimeoutError:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "patrol_FAILED.png"))
        shown = page.locator(METRIC).all_inner_texts()
        alerts = page.locator('[data-testid="stAlert"]').all_inner_texts()
        pytest.fail(f"headline {shown}, wanted {expected_first!r}; alerts {alerts}")
    return [v.strip() for v in page.locator(METRIC).all_inner_texts()]


def count_paths(page: Page, stroke: str, at_least: int) -> int:
    """Wait until the map holds at least ``at_least`` SVG paths outlined ``stroke``."""
    page.wait_for_function(
        "([iframe, stroke, n]) => {"
        "  const doc = document.querySelector(iframe)?.contentDocument;"
        "  return !!doc && doc.querySelectorAll("
        "    `path.leaflet-interactive[stroke='${stroke}']`).length >= n; }",
        arg=[MAP_IFRAME, stroke, at_least],
        timeout=90_000,
        polling=250,
    )
    return page.evaluate(
        "([iframe, stroke]) => document.querySelector(iframe).contentDocument"
        ".querySelectorAll(`path.leaflet-interactive[stroke='${stroke}']`).length",
        [MAP_IFRAME, stroke],
    )


def assert_clean(offline: OfflinePage) -> None:
    """``offline.assert_clean`` allowing Streamlit's probes under ``/patrol``."""
    offline.assert_clean("/patrol")
    assert offline.page.locator('[data-testid="stException"]').count() == 0


def shot(page: Page, name: str) -> None:
    handle = page.wait_for_selector(MAP_IFRAME)
    assert handle is not None
    frame = handle.content_frame()
    assert frame is not None
    wait_map_settled(frame)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def open_page(offline: OfflinePage, url: str) -> Page:
    page = offline.page
    page.set_viewport_size(VIEWPORT)
    goto(page, url)
    return page


@pytest.mark.browser
def test_default_day_shows_geo_figures_and_previous_day_changes_them(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, demo_day: tuple
) -> None:
    street, day = demo_day
    headline, patrols, share = geo_headline(demo_engine, street, [day])
    page = open_page(offline_page, f"{app_url}/patrol")
    shown = metrics(page, headline)
    assert shown[1:3] == [str(patrols), share]
    page.wait_for_url(f"**day={day.isoformat()}**")
    n_grids = int(headline.split("/")[1])
    assert count_paths(page, GRID_LINE, n_grids) == n_grids
    page.get_by_text("一日两巡", exact=False).first.wait_for()
    page.get_by_text("规则：每个网格每天至少2次巡查", exact=False).wait_for()
    with demo_engine.connect() as conn:
        g = coverage_day(conn, day, street=street).grid_day
    worst = g.sort_values(["rule_met", "building_share", "grid_code"]).iloc[0]
    first = page.locator('[data-testid="stTable"] tbody tr').first
    first.wait_for(timeout=60_000)
    cells = [c.strip() for c in first.locator("th, td").all_inner_texts()]
    assert cells[:4] == [
        worst["grid_name"],
        worst["grid_code"],
        "达标" if worst["rule_met"] else "未达标",
        str(worst["counted_patrols"]),
    ]
    assert cells[5] == f"{worst['building_share'] * 100:.0f}%"
    shot(page, "patrol_day.png")
    with demo_engine.connect() as conn:
        unvisited = int(unvisited_buildings(conn, day, street=street)["not_passed_7d"].sum())
    page.get_by_role("tab", name=f"长期未巡到的楼栋（{unvisited}）").click()
    page.get_by_text(f"{unvisited} 栋楼连续7天以上无轨迹经过", exact=False).wait_for()
    page.get_by_text("下载未巡到楼栋（CSV）").wait_for()

    before = day - dt.timedelta(days=1)
    expected = geo_headline(demo_engine, street, [before])
    assert expected != (headline, patrols, share)  # the demo's two days differ
    page.get_by_text("◀ 前一天").click()
    page.wait_for_url(f"**day={before.isoformat()}**")
    page.wait_for_function(
        "([sel, want]) => [...document.querySelectorAll(sel)].map(e => e.innerText.trim())"
        ".slice(0, 3).join('|') === want",
        arg=[METRIC, "|".join(map(str, expected))],
        timeout=90_000,
        polling=250,
    )
    assert_clean(offline_page)


@pytest.mark.browser
def test_url_reproduces_a_week_view(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, demo_day: tuple
) -> None:
    street, day = demo_day
    end = day - dt.timedelta(days=2)
    week = [end - dt.timedelta(days=k) for k in range(6, -1, -1)]
    headline, patrols, share = geo_headline(demo_engine, street, week)
    page = open_page(
        offline_page, f"{app_url}/patrol?day={end.isoformat()}&span=week&color=buildings"
    )
    shown = metrics(page, headline)
    assert shown[1:3] == [str(patrols), share]
    page.get_by_role("tab", name="逐日达标").click()
    page.get_by_text("一日两巡逐日达标", exact=False).wait_for()
    page.get_by_text(end.strftime("%m-%d"), exact=True).first.wait_for()
    assert "span=week" in page.url and "color=buildings" in page.url
    page.wait_for_selector(MAP_IFRAME)
    frame = page.wait_for_selector(MAP_IFRAME).content_frame()
    frame.wait_for_selector(".gridone-legend")
    assert "楼栋覆盖率" in frame.inner_text(".gridone-legend")
    shot(page, "patrol_week.png")
    assert_clean(offline_page)


@pytest.mark.browser
def test_replay_draws_the_track(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, demo_day: tuple
) -> None:
    street, day = demo_day
    with demo_engine.connect() as conn:
        w = coverage_day(conn, day, street=street).worker_day
    worker = w[w["patrols"] > 0].iloc[0]
    page = open_page(offline_page, f"{app_url}/patrol?worker={worker['worker_id']}")
    page.get_by_text("回放到").wait_for(timeout=90_000)
    assert count_paths(page, SESSION_COLORS[0], 1) >= 1
    page.get_by_text(f"{worker['worker_name']}：{worker['fixes']} 个定位点", exact=False).wait_for()
    page.get_by_text("剔除的定位点及原因").wait_for()
    assert f"worker={worker['worker_id']}" in page.url
    shot(page, "patrol_replay.png")
    assert_clean(offline_page)


@pytest.mark.browser
def test_day_without_tracks_says_what_to_do(
    app_url: str, offline_page: OfflinePage, demo_day: tuple
) -> None:
    page = open_page(offline_page, f"{app_url}/patrol?day=2026-01-01&worker=abc")
    page.get_by_text("没有巡查轨迹", exact=False).wait_for(timeout=60_000)
    page.get_by_text("worker=abc", exact=False).wait_for()
    page.get_by_text(demo_day[1].isoformat(), exact=False).first.wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "patrol_no_tracks.png"))
    page.get_by_text(f"跳到 {demo_day[1].isoformat()}").click()  # the next step, one click
    page.wait_for_url(f"**day={demo_day[1].isoformat()}**")
    page.locator(METRIC).first.wait_for(timeout=90_000)
    assert_clean(offline_page)
