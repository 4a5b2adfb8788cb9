"""The 简报 (briefing) page in headless Chromium against the street demo, every non-local
request blocked: one click makes the briefing, the PDF downloads and its text holds every
section and the key figures geo.kpis computes for the page's default view; the Word file
downloads too; both carry the viewer's watermark and the click wrote one audit row; the URL
reproduces the view; an empty period and a bad URL parameter give a message instead of a
traceback."""

from __future__ import annotations

import datetime as dt
import io
from zoneinfo import ZoneInfo

import docx
import pytest
from playwright.sync_api import Page
from pypdf import PdfReader
from sqlalchemy import Engine, text

from dashboard.briefing.content import fmt_change, fmt_value
from dashboard.briefing.data import KEY_FIGURES
from geo.kpis import FIGURES, kpis
from store import queries
from store.settings import get_settings
from tests.browser.conftest import ARTIFACTS, DEMO_USERS, OfflinePage, goto
from tests.pdf import pdf_marks, pdf_text

VIEWPORT = {"width": 1280, "height": 900}
SECTIONS = (
    "一、主要指标",
    "二、专题图",
    "三、事件热点",
    "四、热点但巡查不足",
    "五、超期未办结事件",
    "六、各社区情况",
    "七、数据来源与时效",
)


@pytest.fixture(scope="module")
def default_view(demo_engine: Engine) -> tuple[str, dt.date, dt.date]:
    """The demo street and the page's default period: month to date of the latest incident
    (both days included)."""
    with demo_engine.connect() as conn:
        (street,) = queries.street_names(conn)
        last = queries.summary(conn).last_reported
    end = last.astimezone(ZoneInfo(get_settings().timezone)).date()
    return street, end.replace(day=1), end


def squash(text: str) -> str:
    return "".join(text.split())


def no_traceback(page: Page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator("text=Traceback").count() == 0


def assert_clean(offline: OfflinePage) -> None:
    """``offline.assert_clean`` allowing Streamlit's probes under ``/briefing``."""
    offline.assert_clean("/briefing")


def briefing_audits(engine: Engine) -> list:
    """The audit rows of briefings made on the page, oldest first."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT login, detail FROM audit_log WHERE action = 'briefing' "
                "AND detail->>'via' = 'dashboard' ORDER BY id"
            )
        ).all()


def build(page: Page) -> None:
    page.get_by_role("button", name="生成简报").click()
    page.get_by_text("下载 PDF", exact=False).wait_for(timeout=90_000)


@pytest.mark.browser
def test_one_click_downloads_the_pdf_with_geos_figures(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, default_view: tuple, tmp_path
) -> None:
    street, start, end = default_view
    user = DEMO_USERS["street"]  # goto logs in as the street leader
    with demo_engine.connect() as conn:
        report = kpis(conn, unit=street, start=start, end=end + dt.timedelta(days=1))
        shown = conn.execute(
            text("SELECT display_name FROM app_user WHERE login = :l"), {"l": user.login}
        ).scalar_one()
    page = offline_page.page
    page.set_viewport_size(VIEWPORT)
    goto(page, f"{app_url}/briefing")
    page.get_by_role("button", name="生成简报").wait_for(timeout=60_000)
    page.wait_for_url(f"**from={start.isoformat()}**to={end.isoformat()}**")
    audited = len(briefing_audits(demo_engine))
    build(page)
    page.get_by_text("简报已生成", exact=False).wait_for()
    page.get_by_text("文件带有水印并已记入审计日志", exact=False).wait_for()
    no_traceback(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "briefing_page.png"), full_page=True)

    with page.expect_download() as info:
        page.get_by_text("下载 PDF", exact=False).click()
    download = info.value
    assert download.suggested_filename == f"briefing_{street}_{start}_{end}.pdf"
    path = tmp_path / "b.pdf"
    download.save_as(path)
    reader = PdfReader(path)
    body = path.read_bytes()
    content = squash(pdf_text(body))  # the content, without the diagonal watermark
    viewer = f"{shown}（{user.login}）"  # the logged-in user, on every page
    marks = pdf_marks(body)
    assert len(marks) == len(reader.pages)
    assert all(m and all(x.startswith(viewer) for x in m) for m in marks)
    assert content.count(squash(f"{viewer} 于")) == len(reader.pages)  # every page's footer
    for title in SECTIONS:
        assert title in content
    assert squash(f"统计时段：{start} 至 {end}") in content
    cur, prev = report.figures.as_dict(), report.previous.as_dict()
    for name in KEY_FIGURES:
        zh, _, kind = FIGURES[name]
        c, p = cur[name], prev[name]
        change = None if c is None or p is None else c - p
        row = f"{zh} {fmt_value(kind, c)} {fmt_value(kind, p)} {fmt_change(kind, change)}"
        assert squash(row) in content, row
    assert report.overdue.iloc[0]["code"] in content

    with page.expect_download() as info:
        page.get_by_text("下载 Word", exact=False).click()
    word = tmp_path / "b.docx"
    info.value.save_as(word)
    paragraphs = squash(
        "\n".join(p.text for p in docx.Document(io.BytesIO(word.read_bytes())).paragraphs)
    )
    for title in SECTIONS:
        assert title in paragraphs
    word_doc = docx.Document(io.BytesIO(word.read_bytes()))
    assert word_doc.sections[0].footer.paragraphs[0].text.startswith(f"{viewer} 于")
    rows = briefing_audits(demo_engine)
    assert len(rows) == audited + 1  # one click, one row; the downloads add none
    login, detail = rows[-1]
    assert (login, detail["code"], detail["from"], detail["to"]) == (
        user.login,
        street,
        str(start),
        str(end),
    )
    assert detail["files"]["pdf"]["bytes"] == len(body)
    assert_clean(offline_page)


@pytest.mark.browser
def test_url_reproduces_a_view_and_empty_period_is_explained(
    app_url: str, offline_page: OfflinePage, default_view: tuple
) -> None:
    street, _, _ = default_view
    page = offline_page.page
    page.set_viewport_size(VIEWPORT)
    goto(page, f"{app_url}/briefing?street={street}&from=2001-01-01&to=2001-01-31")
    page.get_by_role("button", name="生成简报").wait_for(timeout=60_000)
    build_button = page.get_by_role("button", name="生成简报")
    build_button.click()
    page.get_by_text("没有上报事件", exact=False).wait_for(timeout=60_000)
    assert page.get_by_text("下载 PDF", exact=False).count() == 0
    no_traceback(page)

    goto(page, f"{app_url}/briefing?street=nonsense&from=2026-13-01")
    page.get_by_text("链接参数 street=nonsense 无效", exact=False).wait_for(timeout=60_000)
    page.get_by_text("链接参数 from=2026-13-01 无效", exact=False).wait_for()
    no_traceback(page)
    assert_clean(offline_page)
