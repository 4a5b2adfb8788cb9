"""The 考核 (assessment) page in headless Chromium against the street demo, every non-local
request blocked: the ranking's stars, scores and grades are geo.assess's for the month shown,
changing the month changes them to geo's values for the new month, a URL reproduces a view
(month, community, patrols, worker), and bad URL values give a message, not a traceback."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from playwright.sync_api import Locator, Page
from sqlalchemy import Engine

from dashboard import assess_view as av
from geo.assess import assess
from geo.assess_detail import grade_caps
from geo.kpis import kpis_by_unit
from geo.settings import default_settings
from store import queries
from store.settings import get_settings
from tests.browser.conftest import ARTIFACTS, OfflinePage, goto

VIEWPORT = {"width": 1280, "height": 1800}
RANKING = '[data-testid="stTable"]'
COMMUNITY = "370214900004"


@pytest.fixture(scope="module")
def demo_street(demo_engine: Engine) -> tuple[str, str]:
    """The demo's street and the page's default month (the latest complete one)."""
    with demo_engine.connect() as conn:
        (street,) = queries.street_names(conn)
        last = queries.summary(conn).last_reported
    latest = last.astimezone(ZoneInfo(get_settings().timezone)).date()
    return street, av.default_month(latest)


def geo_assess(demo_engine: Engine, street: str, month: str, patrols: bool) -> pd.DataFrame:
    with demo_engine.connect() as conn:
        return assess(conn, street=street, month=month, patrol_share="compute" if patrols else None)


def ranking_rows(page: Page) -> list[list[str]]:
    """Cells of the worker ranking (the page's first table): rank, name, grids, stars,
    score, grade, …"""
    table = page.locator(RANKING).first
    return [
        [c.strip() for c in row.locator("th, td").all_inner_texts()]
        for row in table.locator("tbody tr").all()
    ]


def wait_first_name(page: Page, name: str) -> None:
    """Wait until the ranking's first row names ``name`` (a rerun has drawn the new table)."""
    page.wait_for_function(
        "([sel, name]) => { const r = document.querySelector(sel + ' tbody tr');"
        " return !!r && r.innerText.includes(name); }",
        arg=[RANKING, name],
        timeout=90_000,
        polling=250,
    )


def assert_rows_are_geos(rows: list[list[str]], expected: pd.DataFrame) -> None:
    """Each shown row's name, stars, score and grade equal geo.assess's row, in its order."""
    assert len(rows) == len(expected)
    for cells, (_, r) in zip(rows, expected.iterrows(), strict=True):
        _rank, name, _grids, stars, score, grade = cells[:6]
        assert name == r["worker_name"]
        assert stars.count("★") == int(r["stars"]), name
        assert score == f"{r['score']:.2f}", name
        assert grade == r["grade_label"], name


def assert_no_traceback(page: Page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator("text=Traceback").count() == 0


def assert_clean(offline: OfflinePage) -> None:
    """``offline.assert_clean`` allowing Streamlit's probes under ``/assess``."""
    offline.assert_clean("/assess")


def open_page(offline: OfflinePage, url: str) -> Page:
    page = offline.page
    page.set_viewport_size(VIEWPORT)
    goto(page, url)
    page.locator(RANKING).first.wait_for(timeout=90_000)
    return page


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def metric(page: Page, label: str) -> Locator:
    return page.locator('[data-testid="stMetric"]', has_text=label).first


@pytest.mark.browser
def test_default_month_shows_geos_assessment_and_month_change_follows(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, demo_street: tuple[str, str]
) -> None:
    street, month = demo_street
    assert month == "2026-10"  # the demo ends 2026-11-20
    # the demo's tracks cover only October's last days: patrols left out automatically
    expected = geo_assess(demo_engine, street, month, patrols=False)
    page = open_page(offline_page, f"{app_url}/assess")
    wait_first_name(page, expected.iloc[0]["worker_name"])
    page.wait_for_url(f"**month={month}**")
    assert f"street={street}" in page.url and "patrols=auto" in page.url
    assert_rows_are_geos(ranking_rows(page), expected)
    page.get_by_text("一日两巡暂不计入得分", exact=False).first.wait_for()

    # grades against the caps, as geo counts them
    caps = grade_caps(len(expected))
    for label, grade, cap in (("好", "good", caps["good"]), ("较好", "fairly_good", None)):
        n = int((expected["grade"] == grade).sum())
        assert f"{n} 人" in metric(page, label).inner_text()
        if cap is not None:
            page.get_by_text(f"上限 20% × {len(expected)} 人 = {cap} 人").wait_for()
    # the formula, from the settings
    page.get_by_text("0.25×事件上报", exact=False).first.wait_for()
    # the stars chart renders with Streamlit's bundled Vega (no CDN)
    page.locator(
        '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'
    ).first.wait_for()
    # the first worker's breakdown
    top = expected.iloc[0]
    page.get_by_text(
        f"{top['worker_name']}（{top['worker_code']}）：第 1 名", exact=False
    ).wait_for()
    page.get_by_text(f"= {top['score']:.2f}，四舍五入为 {int(top['stars'])} 星").wait_for()
    # the CSV download carries geo's columns and values
    with page.expect_download() as info:
        page.get_by_role("button", name="下载网格员考核表（CSV）").click()
    csv = pd.read_csv(info.value.path(), encoding="utf-8-sig", dtype={"人员编号": str})
    assert csv["人员编号"].tolist() == expected["worker_code"].tolist()
    assert csv["星级"].tolist() == expected["stars"].astype(int).tolist()
    assert csv["等次"].tolist() == expected["grade"].tolist()
    assert_no_traceback(page)
    shot(page, "assess_default.png")

    # another month: the table follows geo.assess for it
    september = geo_assess(demo_engine, street, "2026-09", patrols=False)
    page.get_by_role("combobox", name="考核月份").click()
    page.get_by_role("option", name="2026年9月", exact=True).click()
    page.wait_for_url("**month=2026-09**", timeout=90_000)
    wait_first_name(page, september.iloc[0]["worker_name"])
    assert_rows_are_geos(ranking_rows(page), september)
    assert september["score"].tolist() != expected["score"].tolist()
    assert_no_traceback(page)
    shot(page, "assess_september.png")
    assert_clean(offline_page)


@pytest.mark.browser
def test_url_reproduces_a_community_view_with_patrols(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, demo_street: tuple[str, str]
) -> None:
    street, _ = demo_street
    full = geo_assess(demo_engine, street, "2026-11", patrols=True)
    mine = full[[av.in_community(g, COMMUNITY) for g in full["grids"]]]
    assert 1 < len(mine) < len(full)
    worker = mine.iloc[-1]
    url = (
        f"{app_url}/assess?street={street}&month=2026-11&community={COMMUNITY}"
        f"&patrols=on&worker={worker['worker_code']}"
    )
    page = open_page(offline_page, url)
    wait_first_name(page, mine.iloc[0]["worker_name"])
    rows = ranking_rows(page)
    assert_rows_are_geos(rows, mine)
    # street ranks, not 1…n: the community's first worker keeps their place in the street
    ranks = av.ranks(full, default_settings())
    assert [int(r[0]) for r in rows] == ranks.loc[mine.index].tolist()
    # two-patrol compliance computed from the tracks, with the warning that days lack them
    assert rows[0][8] == av.pct(mine.iloc[0]["two_patrol_share"]) != "—"
    page.get_by_text("其余工作日一律计为未达标", exact=False).wait_for()
    # the worker in the link is the one explained
    page.get_by_text(
        f"{worker['worker_name']}（{worker['worker_code']}）", exact=False
    ).first.wait_for()
    page.get_by_text("在一张图上查看", exact=False).first.wait_for()
    # the grid ranking: the community's grids with geo.kpis's figures for the month
    with demo_engine.connect() as conn:
        kpis = kpis_by_unit(
            conn, "grid", "2026-11-01", "2026-12-01", within=street, previous=False, repeats=False
        ).current
    grid_rows = [
        [c.strip() for c in row.locator("th, td").all_inner_texts()]
        for row in page.locator(RANKING).nth(2).locator("tbody tr").all()
    ]
    ours = [c for c in kpis.index if isinstance(c, str) and c.startswith(COMMUNITY)]
    assert sorted(r[2] for r in grid_rows) == sorted(ours)
    for r in grid_rows:
        assert int(r[7]) == kpis.loc[r[2], "reported"]
        assert r[9] == av.pct(kpis.loc[r[2], "on_time_rate"])
    assert "community=370214900004" in page.url and "patrols=on" in page.url
    assert f"worker={worker['worker_code']}" in page.url
    assert_no_traceback(page)
    shot(page, "assess_community_patrols.png")
    assert_clean(offline_page)


@pytest.mark.browser
def test_bad_url_values_give_messages_and_the_default_view(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, demo_street: tuple[str, str]
) -> None:
    street, month = demo_street
    expected = geo_assess(demo_engine, street, month, patrols=False)
    page = open_page(offline_page, f"{app_url}/assess?month=2031-02&patrols=maybe&worker=nobody1")
    page.get_by_text("month=2031-02", exact=False).wait_for(timeout=60_000)
    page.get_by_text("patrols=maybe", exact=False).wait_for()
    page.get_by_text("网格员 nobody1 不在本月的名单中", exact=False).wait_for()
    wait_first_name(page, expected.iloc[0]["worker_name"])
    assert_rows_are_geos(ranking_rows(page), expected)
    page.wait_for_url(f"**month={month}**")
    assert_no_traceback(page)
    shot(page, "assess_bad_param.png")
    assert_clean(offline_page)
