"""The 事件 (incidents) page in headless Chromium against the street demo, every non-local
request blocked: the KPI cards show what geo.kpis computes for the same unit and period, a
filter change moves them to geo's new values, the URL reproduces a view, each overdue row
links to the map, and a bad URL parameter gives a message instead of a traceback."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urljoin, urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page
from sqlalchemy import Engine

from dashboard import incidents_view as iv
from geo.category_kpis import category_kpis
from geo.kpis import KpiReport, kpis
from geo.trend import incident_trend
from store import queries
from store.settings import get_settings
from tests.browser.conftest import ARTIFACTS, OfflinePage, goto

VIEWPORT = {"width": 1400, "height": 3000}
METRIC = '[data-testid="stMetric"]'


@pytest.fixture(scope="module")
def demo_latest(demo_engine: Engine) -> tuple[str, dt.date]:
    """The demo's street and its latest incident day (the page's default end)."""
    with demo_engine.connect() as conn:
        (street,) = queries.street_names(conn)
        last = queries.summary(conn).last_reported
    return street, last.astimezone(ZoneInfo(get_settings().timezone)).date()


def geo_report(engine: Engine, unit: str, start: dt.date, end: dt.date) -> KpiReport:
    with engine.connect() as conn:
        return kpis(conn, unit=unit, start=start, end=end + dt.timedelta(days=1))


def open_page(offline: OfflinePage, url: str) -> Page:
    page = offline.page
    page.set_viewport_size(VIEWPORT)
    goto(page, url)
    return page


def wait_cards(page: Page, report: iv.Figures) -> list[tuple[str, str, str | None]]:
    """Wait until the four headline cards show ``report``'s values; (label, value, delta)."""
    expected = [c.value for c in iv.cards(report)]
    page.wait_for_function(
        "([sel, want]) => { const v = [...document.querySelectorAll(sel)].slice(0, 4)"
        "  .map(m => m.querySelector('[data-testid=stMetricValue]')?.innerText.trim());"
        "  return JSON.stringify(v) === JSON.stringify(want); }",
        arg=[METRIC, expected],
        timeout=60_000,
        polling=250,
    )
    out = []
    for m in page.locator(METRIC).all()[:4]:
        delta = m.locator('[data-testid="stMetricDelta"]')
        out.append(
            (
                m.locator('[data-testid="stMetricLabel"]').inner_text().strip(),
                m.locator('[data-testid="stMetricValue"]').inner_text().strip(),
                delta.inner_text().strip() if delta.count() else None,
            )
        )
    return out


def assert_cards(shown: list[tuple[str, str, str | None]], report: iv.Figures) -> None:
    assert shown == [(c.label, c.value, c.delta) for c in iv.cards(report)]


def wait_charts(page: Page, n: int = 3) -> None:
    """Wait until ``n`` Vega charts have drawn (bundled by Streamlit: no CDN)."""
    page.wait_for_function(
        "(n) => document.querySelectorAll("
        "'[data-testid=stVegaLiteChart] canvas, [data-testid=stVegaLiteChart] svg.marks')"
        ".length >= n",
        arg=n,
        timeout=60_000,
        polling=250,
    )


def assert_no_traceback(page: Page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator("text=Traceback").count() == 0


def assert_clean(offline: OfflinePage) -> None:
    """``offline.assert_clean`` allowing Streamlit's probes under ``/incidents``."""
    offline.assert_clean("/incidents")


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


@pytest.mark.browser
def test_default_view_shows_geo_figures(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, demo_latest: tuple
) -> None:
    street, latest = demo_latest
    start = latest.replace(day=1)
    report = geo_report(demo_engine, street, start, latest)
    page = open_page(offline_page, f"{app_url}/incidents")
    assert_cards(wait_cards(page, report), report)
    f = report.figures
    page.get_by_text(f"期限内办结 {f.due_on_time} ÷ 本期到期 {f.due}", exact=False).wait_for()
    page.wait_for_url(f"**from={start.isoformat()}**to={latest.isoformat()}**")
    assert "period=month" in page.url and f"street={street}" in page.url
    # tier shares and the trend caption are geo's too
    for c in iv.tier_cards(report):
        page.locator(METRIC, has_text=c.label).get_by_text(c.value, exact=True).wait_for()
    with demo_engine.connect() as conn:
        trend = incident_trend(
            conn, unit=street, start=start, end=latest + dt.timedelta(days=1), bin="week"
        )
    assert int(trend.totals["reported"].sum()) == f.reported
    page.get_by_text(f"共 {f.reported} 件", exact=False).first.wait_for()
    wait_charts(page)
    assert_no_traceback(page)
    shot(page, "incidents_default.png")
    assert_clean(offline_page)


@pytest.mark.browser
def test_overdue_rows_link_to_the_map(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, demo_latest: tuple
) -> None:
    street, latest = demo_latest
    report = geo_report(demo_engine, street, latest.replace(day=1), latest)
    assert len(report.overdue) > 0, "the demo street should have open overdue cases"
    page = open_page(offline_page, f"{app_url}/incidents")
    wait_cards(page, report)
    links = page.locator('[data-testid="stMarkdownContainer"] table a')
    links.first.wait_for(timeout=60_000)
    shown = min(len(report.overdue), iv.OVERDUE_ROWS)
    assert links.count() == shown
    for k in (0, shown - 1):
        code = report.overdue["code"].iloc[k]
        a = links.nth(k)
        assert a.inner_text().strip() == code
        href = a.get_attribute("href")
        assert href is not None
        target = urlsplit(urljoin(page.url, href))
        assert target.path == "/"  # the 一张图 page
        assert parse_qs(target.query) == {"street": [street], "incident": [code]}
    assert_no_traceback(page)
    assert_clean(offline_page)


@pytest.mark.browser
def test_changing_the_period_moves_the_cards_to_geo_values(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, demo_latest: tuple
) -> None:
    street, latest = demo_latest
    this_month = geo_report(demo_engine, street, latest.replace(day=1), latest)
    page = open_page(offline_page, f"{app_url}/incidents")
    wait_cards(page, this_month)
    start, end = iv.preset_range("last_month", latest)
    last_month = geo_report(demo_engine, street, start, end)
    assert [c.value for c in iv.cards(last_month)] != [c.value for c in iv.cards(this_month)]
    page.get_by_text("上月", exact=True).click()
    assert_cards(wait_cards(page, last_month), last_month)
    page.wait_for_url(f"**period=last_month**from={start.isoformat()}**to={end.isoformat()}**")
    # the previous period of a whole month is the month before (geo.kpis' rule)
    prev = last_month.previous_period
    page.get_by_text(f"对比上期 {prev.start} 至 {prev.end - dt.timedelta(days=1)}").wait_for()
    # the overdue list is as of the new period's end too
    as_of = last_month.period.as_of.strftime("%Y-%m-%d %H:%M")
    n = len(last_month.overdue)
    page.get_by_text(f"截至 {as_of} 共 {n} 件", exact=False).wait_for(timeout=60_000)
    wait_charts(page)
    assert_no_traceback(page)
    assert page.locator('[data-testid="stAlert"]', has_text="Session State").count() == 0
    shot(page, "incidents_last_month.png")
    assert_clean(offline_page)


@pytest.mark.browser
def test_url_reproduces_a_community_category_view(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, demo_latest: tuple
) -> None:
    street, _latest = demo_latest
    community = street[:9] + "004"
    start, end = dt.date(2026, 6, 1), dt.date(2026, 8, 31)
    with demo_engine.connect() as conn:
        report = category_kpis(
            conn, unit=community, start=start, end=end + dt.timedelta(days=1), category="03"
        )
    whole = geo_report(demo_engine, community, start, end)
    assert [c.value for c in iv.cards(report)] != [c.value for c in iv.cards(whole)]
    query = (
        f"street={street}&community={community}&period=custom&from={start}&to={end}"
        "&category=03&bin=month"
    )
    page = open_page(offline_page, f"{app_url}/incidents?{query}")
    assert_cards(wait_cards(page, report), report)
    for key in ("community", "category", "from", "to", "bin"):
        page.wait_for_url(f"**{key}=**")
    q = parse_qs(urlsplit(page.url).query)
    assert q["community"] == [community] and q["category"] == ["03"] and q["bin"] == ["month"]
    assert q["period"] == ["custom"]
    # the cards are of 城市管理 only, and say so
    page.get_by_text("以下指标只含“城市管理”类事件", exact=False).wait_for()
    f = report.figures
    page.get_by_text(f"期限内办结 {f.due_on_time} ÷ 本期到期 {f.due}", exact=False).wait_for()
    with demo_engine.connect() as conn:
        trend = incident_trend(
            conn,
            unit=community,
            start=start,
            end=end + dt.timedelta(days=1),
            category="03",
            bin="month",
        )
    n = int(trend.totals["reported"].sum())
    page.get_by_text(f"每月上报的事件数（按大类堆叠），共 {n} 件", exact=False).wait_for()
    # the unit table holds this community's grids
    grid_rows = page.locator('[data-testid="stDataFrame"]')
    grid_rows.first.wait_for()
    wait_charts(page)
    assert_no_traceback(page)
    shot(page, "incidents_community_category.png")
    assert_clean(offline_page)


@pytest.mark.browser
def test_bad_parameters_and_an_empty_period_give_messages(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, demo_latest: tuple
) -> None:
    street, latest = demo_latest
    report = geo_report(demo_engine, street, latest.replace(day=1), latest)
    page = open_page(offline_page, f"{app_url}/incidents?period=decade&category=99")
    page.get_by_text("period=decade", exact=False).wait_for(timeout=60_000)
    page.get_by_text("category=99", exact=False).wait_for()
    assert_cards(wait_cards(page, report), report)  # the default view
    assert_no_traceback(page)
    shot(page, "incidents_bad_param.png")
    goto(page, f"{app_url}/incidents?period=custom&from=2020-01-01&to=2020-01-31")
    page.get_by_text("没有上报、到期或办结的事件", exact=False).wait_for(timeout=60_000)
    page.get_by_text("本年", exact=False).first.wait_for()
    assert page.locator(METRIC).count() == 0
    assert_no_traceback(page)
    shot(page, "incidents_empty_period.png")
    assert_clean(offline_page)
