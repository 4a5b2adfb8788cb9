"""The 热点 (hotspots) page in headless Chromium against the street demo, every non-local
request blocked: each method draws its units, the ranked list's first row is what
``geo.hotspots`` computes for the same parameters, the URL reproduces a view, and a bad URL
parameter gives a message instead of a traceback."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Frame, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from sqlalchemy import Engine

from dashboard.maps import HOT_COLORS
from geo.coverage import coverage_by_unit, last_passed, under_patrolled
from geo.hotspots import hotspots
from store import queries
from store.settings import get_settings
from tests.browser.conftest import (
    ARTIFACTS,
    MAP_IFRAME,
    OfflinePage,
    goto,
    map_frame,
    wait_map_settled,
)

#: Outline of the analysis units (class_layer's line colour in dashboard.maps.hotspot_map).
UNIT_STROKE = "#ffffff"
TABLE_ROW = '[data-testid="stTable"] tbody tr'
#: Tall enough for the whole page (map and ranked list) in one screenshot: Streamlit scrolls
#: its main block itself, so a "full page" screenshot stops at the viewport.
VIEWPORT = {"width": 1280, "height": 1800}


@pytest.fixture(scope="module")
def demo_view(demo_engine: Engine) -> tuple[str, dt.date, dt.date]:
    """The demo's street and the page's default period: 90 days up to the latest incident."""
    with demo_engine.connect() as conn:
        (street,) = queries.street_names(conn)
        last = queries.summary(conn).last_reported
    end = last.astimezone(ZoneInfo(get_settings().timezone)).date()
    return street, end - dt.timedelta(days=89), end


def top_hot(demo_engine: Engine, view: tuple[str, dt.date, dt.date], **kw: object) -> dict:
    """The hottest unit as geo.hotspots computes it for the page's period, and how many hot
    units geo.coverage finds under-patrolled with the page's defaults (7 days, 80 %)."""
    street, start, end = view
    with demo_engine.connect() as conn:
        result = hotspots(conn, street=street, start=start, end=end + dt.timedelta(days=1), **kw)
        buildings = last_passed(conn, end, 7, street=street)
    units = result.units
    under = under_patrolled(units, coverage_by_unit(units, buildings), 0.8)
    hot = units[units["bin"] > 0].sort_values(["z", "count"], ascending=False, kind="stable")
    assert len(hot), "the demo street should have hot spots over its last 90 days"
    row = hot.iloc[0]
    return {
        "unit": row["unit"],
        "name": row["name"],
        "count": int(row["count"]),
        "z": float(row["z"]),
        "label": row["label_zh"],
        "n_units": len(units),
        "n_hot": int((units["bin"] > 0).sum()),
        "resolution": result.params.resolution,
        "under_patrolled": len(under),
        "under_units": under["unit"].tolist(),
    }


def wait_for_units(page: Page, n: int | None = None, *, more_than: int = 0) -> Frame:
    """Wait until the map holds exactly ``n`` analysis-unit polygons (or, with ``n`` None,
    more than ``more_than``) and return its frame; on timeout, fail with what the page shows.

    Looks into whichever map iframe is there at each poll: a rerun may replace the iframe,
    which would leave a frame taken earlier detached.
    """
    try:
        page.wait_for_function(
            "([iframe, stroke, n, more]) => {"
            "  const doc = document.querySelector(iframe)?.contentDocument;"
            "  if (!doc) return false;"
            "  const k = doc.querySelectorAll("
            "    `path.leaflet-interactive[stroke='${stroke}']`).length;"
            "  return n === null ? k > more : k === n; }",
            arg=[MAP_IFRAME, UNIT_STROKE, n, more_than],
            timeout=60_000,
            polling=250,  # not requestAnimationFrame: Chromium may stop painting the iframe
        )
    except PlaywrightTimeoutError:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "hotspots_FAILED.png"), full_page=True)
        alerts = page.locator('[data-testid="stAlert"]').all_inner_texts()
        pytest.fail(f"the map never showed the units: alerts {alerts}, url {page.url}")
    return map_frame(page)[1]


def count_filled(frame: Frame, colors: list[str]) -> int:
    return frame.evaluate(
        "(colors) => colors.reduce((n, c) => n + document.querySelectorAll("
        "  `path.leaflet-interactive[fill='${c}']`).length, 0)",
        colors,
    )


def first_row(page: Page) -> list[str]:
    row = page.locator(TABLE_ROW).first
    row.wait_for(timeout=60_000)
    return [c.strip() for c in row.locator("th, td").all_inner_texts()]


def assert_no_traceback(page: Page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator("text=Traceback").count() == 0


def assert_clean(offline: OfflinePage) -> None:
    """``offline.assert_clean`` allowing Streamlit's probes under ``/hotspots``."""
    offline.assert_clean("/hotspots")


def open_page(offline: OfflinePage, url: str) -> Page:
    page = offline.page
    page.set_viewport_size(VIEWPORT)
    goto(page, url)
    return page


def shot(page: Page, frame: Frame, name: str) -> None:
    """Screenshot of the whole page once the map has stopped zooming, the pointer moved off
    the map (the login click leaves it there, and a unit's tooltip would cover the map)."""
    wait_map_settled(frame)
    page.mouse.move(2, 2)
    frame.locator(".leaflet-tooltip").first.wait_for(state="detached", timeout=10_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


@pytest.mark.browser
def test_default_view_ranks_what_geo_computes(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, demo_view: tuple
) -> None:
    expected = top_hot(demo_engine, demo_view, unit="grid")
    page = open_page(offline_page, f"{app_url}/hotspots")
    frame = wait_for_units(page, expected["n_units"])  # every grid drawn, coloured by class
    handle = page.wait_for_selector(MAP_IFRAME)
    assert handle is not None
    hot_colors = [HOT_COLORS[b] for b in (1, 2, 3)]
    assert count_filled(frame, hot_colors) == expected["n_hot"]
    frame.wait_for_selector(".gridone-legend")
    assert "热点（99%置信度）" in frame.inner_text(".gridone-legend")
    box = handle.bounding_box()
    assert box is not None and box["height"] > 400

    rank, name, code, count, z, label = first_row(page)
    assert (rank, name, code, count, label) == (
        "1",
        expected["name"],
        expected["unit"],
        str(expected["count"]),
        expected["label"],
    )
    assert float(z) == pytest.approx(expected["z"], abs=0.01)
    # the default period is in the URL, so a copied link pins it
    _street, start, end = demo_view
    page.wait_for_url(f"**from={start.isoformat()}**to={end.isoformat()}**")
    assert "method=grid" in page.url
    page.get_by_text("剔除偶然热点", exact=False).first.wait_for()  # Chinese explanations
    # hot but under-patrolled: what geo.coverage finds (since the demo's rising area is
    # planted all year, a grid around it is hot over these 90 days, and its worker's last
    # week of patrols may not pass 80 % of its buildings)
    page.get_by_text("热点但巡查不足").first.wait_for()
    if expected["under_patrolled"] == 0:
        page.get_by_text("所有热点单元近7天的巡查覆盖率均不低于80%").wait_for()
    else:
        page.get_by_text("巡查经过的楼栋不足80%的单元", exact=False).first.wait_for()
        for code in expected["under_units"]:
            page.locator("table").get_by_text(code, exact=False).first.wait_for()
    assert_no_traceback(page)
    shot(page, frame, "hotspots_grid.png")
    assert_clean(offline_page)


@pytest.mark.browser
def test_url_reproduces_a_hexagon_view(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, demo_view: tuple
) -> None:
    expected = top_hot(demo_engine, demo_view, unit="hex", resolution=10)
    page = open_page(offline_page, f"{app_url}/hotspots?method=hex&resolution=10")
    frame = wait_for_units(page, expected["n_units"])  # the res-10 hexagons, not the 41 grids
    assert expected["n_units"] > 41
    page.get_by_text("10级", exact=False).first.wait_for()
    rank, code, _grid, count, z, label = first_row(page)
    assert (rank, code, count, label) == (
        "1",
        expected["unit"],
        str(expected["count"]),
        expected["label"],
    )
    assert float(z) == pytest.approx(expected["z"], abs=0.01)
    assert "resolution=10" in page.url and "method=hex" in page.url
    assert_no_traceback(page)
    shot(page, frame, "hotspots_hex10.png")
    assert_clean(offline_page)


@pytest.mark.browser
def test_bad_url_parameter_gives_a_message(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, demo_view: tuple
) -> None:
    expected = top_hot(demo_engine, demo_view, unit="grid")
    page = open_page(offline_page, f"{app_url}/hotspots?method=magic&resolution=99&from=2026-02-30")
    page.get_by_text("method=magic", exact=False).wait_for(timeout=60_000)
    page.get_by_text("resolution=99", exact=False).wait_for()
    page.get_by_text("from=2026-02-30", exact=False).wait_for()
    frame = wait_for_units(page, expected["n_units"])  # fell back to the default view
    assert first_row(page)[1] == expected["name"]
    page.wait_for_url("**method=grid**")
    assert_no_traceback(page)
    shot(page, frame, "hotspots_bad_param.png")
    assert_clean(offline_page)


@pytest.mark.browser
@pytest.mark.parametrize(
    ("query", "legend"),
    [("method=density", "核密度"), ("method=emerging&unit=hex", "时空趋势模式")],
)
def test_density_and_emerging_draw(
    app_url: str, offline_page: OfflinePage, query: str, legend: str
) -> None:
    page = open_page(offline_page, f"{app_url}/hotspots?{query}")
    frame = wait_for_units(page, more_than=41)  # hexagons, more than the 41 grids
    frame.wait_for_selector(".gridone-legend")
    assert legend in frame.inner_text(".gridone-legend")
    page.locator('[data-testid="stTable"]').wait_for(timeout=60_000)
    assert_no_traceback(page)
    shot(page, frame, f"hotspots_{query.split('&')[0].split('=')[1]}.png")
    assert_clean(offline_page)


@pytest.mark.browser
def test_under_patrolled_says_when_there_are_no_tracks(
    app_url: str, offline_page: OfflinePage
) -> None:
    # the demo's patrol tracks cover its last 30 days only
    page = open_page(
        offline_page, f"{app_url}/hotspots?method=hex&resolution=10&from=2026-07-01&to=2026-09-30"
    )
    _handle, frame = map_frame(page)
    page.get_by_text("没有巡查轨迹，无法判断巡查是否不足", exact=False).wait_for(timeout=60_000)
    assert_no_traceback(page)
    shot(page, frame, "hotspots_no_tracks.png")
    assert_clean(offline_page)


@pytest.mark.browser
def test_changing_the_method_updates_map_and_url(app_url: str, offline_page: OfflinePage) -> None:
    page = open_page(offline_page, f"{app_url}/hotspots")
    wait_for_units(page, 41)
    page.get_by_text("Gi* 六边形", exact=True).click()
    page.wait_for_url("**method=hex**")
    wait_for_units(page, more_than=41)  # hexagons replace the grids
    page.get_by_text("六边形大小").wait_for()
    assert_no_traceback(page)
    assert page.locator('[data-testid="stAlert"]', has_text="Session State").count() == 0
    assert_clean(offline_page)
