"""The dashboard in headless Chromium, served by a real `streamlit run`, against the demo
street in PostGIS, with every non-local request blocked."""

from __future__ import annotations

import pytest

from dashboard.maps import GRID_COLOR
from tests.browser.conftest import ARTIFACTS, goto, map_frame, wait_map_settled


@pytest.mark.browser
def test_overview_map_draws_grids_offline(app_url: str, offline_page) -> None:
    page = offline_page.page
    goto(page, app_url)
    handle, frame = map_frame(page)
    # every one of the demo street's 41 grids is drawn as its own polygon
    frame.wait_for_function(
        "([color, n]) => document.querySelectorAll("
        "  `path.leaflet-interactive[stroke='${color}']`).length === n",
        arg=[GRID_COLOR, 41],
        timeout=60_000,
    )
    frame.wait_for_selector(".marker-cluster", timeout=30_000)
    box = handle.bounding_box()
    assert box is not None
    assert box["height"] > 400  # the iframe is really drawn (zero height when Leaflet fails)
    page.get_by_text("41 个网格", exact=False).wait_for()
    wait_map_settled(frame)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard_overview.png"), full_page=True)
    offline_page.assert_clean()


@pytest.mark.browser
def test_database_down_shows_the_next_step(stopped_db_app, offline_page) -> None:
    page = offline_page.page
    page.goto(stopped_db_app())
    page.get_by_text("无法连接数据库", exact=False).wait_for(timeout=30_000)
    page.get_by_text("python -m store local start", exact=False).first.wait_for()
    assert page.locator("text=Traceback").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard_db_down.png"))


@pytest.mark.browser
def test_language_switch_follows_the_user_across_pages(app_url: str, offline_page) -> None:
    """The sidebar's 中文 / English picker changes every text at once and stays picked on
    the next page (session state), without touching GRIDONE_LANGUAGE."""
    page = offline_page.page
    goto(page, f"{app_url}/hotspots")
    page.get_by_role("heading", name="热点", exact=True).wait_for(timeout=60_000)
    # let the page's download button fetch its file first: a rerun started meanwhile
    # drops that file on the server (Streamlit's media manager) and the fetch 404s
    page.locator('[data-testid="stDownloadButton"]').first.wait_for(timeout=60_000)
    page.wait_for_load_state("networkidle")
    page.locator('[data-testid="stSidebar"]').get_by_text("English", exact=True).click()
    page.get_by_role("heading", name="Hotspots", exact=True).wait_for(timeout=60_000)
    assert page.get_by_role("heading", name="热点", exact=True).count() == 0
    page.locator('[data-testid="stSidebarNav"]').get_by_text("Incidents", exact=True).click()
    page.get_by_role("heading", name="Incidents", exact=True).wait_for(timeout=60_000)
    page.locator('[data-testid="stSidebar"]').get_by_text("中文", exact=True).click()
    page.get_by_role("heading", name="事件", exact=True).wait_for(timeout=60_000)
    assert page.locator("text=Traceback").count() == 0
    offline_page.assert_clean("/hotspots")
