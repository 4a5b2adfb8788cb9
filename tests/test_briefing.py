"""The briefing against the street demo: every figure it holds is what geo/ returns for the
same jurisdiction and period; the PDF (A4) and the Word file hold every section and the key
figures; the command line and the page's URL state behave. The PDF's pages are rendered to
artifacts/briefing_page-*.png to be looked at.

Every file carries the watermark of :data:`WM` (diagonal on every PDF page, a footer line,
the Word header and footer); the PDF's content is read without the diagonal marks
(``tests/pdf.py``: they are the only rotated text) and the marks are checked on their own.
The command line records each briefing in the demo database's audit_log (append-only, read
by no figure): the one write these tests make to it."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import shutil
import subprocess
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import docx
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader
from sqlalchemy import Engine, text

from dashboard import briefing_view as bv
from dashboard.briefing import Briefing, EmptyPeriodError, build
from dashboard.briefing.__main__ import main as cli
from dashboard.briefing.content import Document, Table, fmt_change, fmt_value, top_hotspots
from dashboard.briefing.data import COVERAGE_DAYS, COVERAGE_MIN, KEY_FIGURES
from dashboard.briefing.maps import font_available
from dashboard.briefing.render import MARK_AT, css_string, to_docx, to_pdf
from geo.coverage import coverage_by_unit, last_passed, under_patrolled
from geo.hotspots import hotspots
from geo.kpis import FIGURES, kpis, kpis_by_unit
from store import queries
from store.settings import PROJECT_ROOT, get_settings
from store.watermark import Watermark, os_user
from tests.pdf import pdf_marks, pdf_text

ARTIFACTS = PROJECT_ROOT / "artifacts"
A4_POINTS = (595.3, 841.9)
#: The watermark of the briefings made here: 21:45 UTC is 05:45 the next day in Beijing.
WM = Watermark("张三", "zhangsan", dt.datetime(2026, 11, 30, 21, 45, tzinfo=dt.UTC))


@pytest.fixture(scope="module")
def period(demo_engine: Engine) -> tuple[str, dt.date, dt.date]:
    """The demo street and month to date up to its latest incident (end excluded)."""
    with demo_engine.connect() as conn:
        (street,) = queries.street_names(conn)
        last = queries.summary(conn).last_reported
    day = last.astimezone(ZoneInfo(get_settings().timezone)).date()
    return street, day.replace(day=1), day + dt.timedelta(days=1)


@pytest.fixture(scope="module")
def made(demo_engine: Engine, period: tuple[str, dt.date, dt.date]) -> Briefing:
    street, start, end = period
    with demo_engine.connect() as conn:
        return build(conn, street=street, start=start, end=end, watermark=WM, lang="zh")


def docx_text(body: bytes) -> str:
    d = docx.Document(io.BytesIO(body))
    parts = [p.text for p in d.paragraphs]
    for table in d.tables:
        parts += [" ".join(c.text for c in row.cells) for row in table.rows]
    return "\n".join(parts)


def squash(text: str) -> str:
    """Text without whitespace (PDF extraction breaks and spaces lines at will)."""
    return "".join(text.split())


# --- the data step equals geo/ -----------------------------------------------------------


def test_key_figures_and_change_are_geo_kpis(demo_engine, made, period) -> None:
    street, start, end = period
    with demo_engine.connect() as conn:
        report = kpis(conn, unit=street, start=start, end=end)
    assert made.data.report.figures == report.figures
    assert made.data.report.previous == report.previous
    assert made.data.report.figures.reported > 0
    pd.testing.assert_frame_equal(made.data.report.overdue, report.overdue)


def test_unit_table_and_indicator_are_geo_kpis_by_unit(demo_engine, made, period) -> None:
    street, start, end = period
    with demo_engine.connect() as conn:
        by = kpis_by_unit(conn, "community", start, end, within=street)
        grid = kpis_by_unit(conn, "grid", start, end, within=street, previous=False).current
        grids = queries.grids(conn, street_code=street)
    pd.testing.assert_frame_equal(made.data.by_unit.current, by.current)
    pd.testing.assert_frame_equal(made.data.by_unit.previous, by.previous)
    rates = made.data.grid_rates.set_index("code")
    households = grids.set_index("code")["households"].astype(float)
    want = grid["reported"].reindex(households.index).fillna(0) * 1000 / households
    np.testing.assert_allclose(
        rates["per_1000"].to_numpy(float), want.where(households > 0).to_numpy(float)
    )
    assert rates["reported"].sum() > 0


def test_hotspots_and_under_patrolled_are_geo(demo_engine, made, period) -> None:
    street, start, end = period
    with demo_engine.connect() as conn:
        hot = hotspots(conn, street=street, start=start, end=end, unit="hex", resolution=None)
        buildings = last_passed(conn, end - dt.timedelta(days=1), COVERAGE_DAYS, street=street)
    units = made.data.hot.units
    assert list(units["unit"]) == list(hot.units["unit"])
    np.testing.assert_allclose(units["z"].to_numpy(float), hot.units["z"].to_numpy(float))
    assert list(units["bin"]) == list(hot.units["bin"])
    assert made.data.hot.params.resolution == hot.params.resolution
    under = under_patrolled(hot.units, coverage_by_unit(hot.units, buildings), COVERAGE_MIN)
    assert made.data.under is not None
    assert list(made.data.under["unit"]) == list(under["unit"])
    ranked = top_hotspots(made.data)
    hottest = hot.units[hot.units["bin"] > 0].sort_values(["z", "count"], ascending=False)
    assert len(ranked) == min(10, len(hottest)) > 0
    assert ranked.iloc[0]["编码"] == hottest.iloc[0]["unit"]
    assert made.data.buildings is not None
    passed = int(buildings["last_passed_at"].notna().sum())
    assert int(made.data.buildings["last_passed_at"].notna().sum()) == passed


# --- the documents -----------------------------------------------------------------------


def expected_strings(made: Briefing) -> list[str]:
    """What both documents must hold: title, jurisdiction, period, freshness, every section
    title, every key figure (this period, previous, change), the hottest unit, the first
    overdue case, every community name, the data source."""
    doc, data = made.document, made.data
    out = [doc.title, *doc.meta, *(s.title for s in doc.sections)]
    cur, prev = data.report.figures.as_dict(), data.report.previous.as_dict()
    for name in KEY_FIGURES:
        zh, _, kind = FIGURES[name]
        c, p = cur[name], prev[name]
        change = None if c is None or p is None else c - p
        out.append(f"{zh} {fmt_value(kind, c)} {fmt_value(kind, p)} {fmt_change(kind, change)}")
    top = data.hot.units[data.hot.units["bin"] > 0].sort_values("z", ascending=False)
    out.append(str(top.iloc[0]["unit"]))
    out.append(str(data.report.overdue.iloc[0]["code"]))
    out += [str(n) for n in data.by_unit.current["name"].dropna()]
    out += [str(s) for s in data.sources["source"]]
    return out


def test_pdf_is_a4_and_holds_every_section_and_figure(made) -> None:
    assert made.pdf is not None and made.pdf.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(made.pdf))
    for page in reader.pages:
        size = (float(page.mediabox.width), float(page.mediabox.height))
        assert size == pytest.approx(A4_POINTS, abs=1)
    text = squash(pdf_text(made.pdf))
    missing = [s for s in expected_strings(made) if squash(s) not in text]
    assert not missing, f"not in the PDF's text: {missing}"
    assert len(reader.pages) >= 3  # three maps cannot share one page with the tables


def test_pdf_pages_to_png_for_looking(made, tmp_path) -> None:
    """Render every page (poppler's pdftoppm) into artifacts/ to look at: fonts, maps,
    tables within A4. Checks the font is embedded and is the CJK one."""
    assert font_available(), "Noto Sans CJK SC missing: apt-get install fonts-noto-cjk"
    assert shutil.which("pdftoppm"), "pdftoppm missing: apt-get install poppler-utils"
    path = tmp_path / "briefing.pdf"
    path.write_bytes(made.pdf or b"")
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True)
    assert "Noto-Sans-CJK-SC" in fonts.stdout
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("briefing_page-*.png"):
        old.unlink()
    subprocess.run(
        ["pdftoppm", "-r", "80", "-png", str(path), str(ARTIFACTS / "briefing_page")], check=True
    )
    (ARTIFACTS / "briefing_street.pdf").write_bytes(made.pdf or b"")
    pages = sorted(ARTIFACTS.glob("briefing_page-*.png"))
    assert len(pages) == len(PdfReader(io.BytesIO(made.pdf or b"")).pages)


def test_docx_holds_the_same(made) -> None:
    assert made.docx is not None
    d = docx.Document(io.BytesIO(made.docx))
    assert d.sections[0].page_width.cm == pytest.approx(21.0, abs=0.05)
    assert d.sections[0].page_height.cm == pytest.approx(29.7, abs=0.05)
    assert len(d.inline_shapes) == 3
    text = squash(docx_text(made.docx))
    missing = [s for s in expected_strings(made) if squash(s) not in text]
    assert not missing, f"not in the Word file: {missing}"
    tables = [b for s in made.document.sections for b in s.blocks if isinstance(b, Table)]
    assert len(d.tables) == len(tables)


def test_every_pdf_page_carries_the_watermark(made) -> None:
    """Diagonal marks (who and when, Beijing time) across every page, the footer sentence on
    every page, and the file's author and subject."""
    assert made.pdf is not None
    pages = PdfReader(io.BytesIO(made.pdf)).pages
    marks = pdf_marks(made.pdf)
    assert len(marks) == len(pages)
    for on_page in marks:
        assert on_page == [WM.mark("zh")] * len(MARK_AT)
    assert WM.mark("zh") == "张三（zhangsan） 2026-12-01 05:45 北京时间"
    footer = squash(WM.line("zh"))
    assert squash(pdf_text(made.pdf)).count(footer) == len(pages)
    meta = PdfReader(io.BytesIO(made.pdf)).metadata
    assert meta is not None
    assert (meta.author, meta.subject) == ("张三（zhangsan）", WM.line("zh"))


def test_docx_carries_the_watermark(made) -> None:
    """Every page's header (who and when) and footer (the sentence); the file's author."""
    d = docx.Document(io.BytesIO(made.docx or b""))
    assert len(d.sections) == 1  # one section: its header and footer are on every page
    header, footer = d.sections[0].header, d.sections[0].footer
    assert not header.is_linked_to_previous and not footer.is_linked_to_previous
    assert [p.text for p in header.paragraphs] == [WM.mark("zh")]
    assert [p.text for p in footer.paragraphs] == [WM.line("zh")]
    props = d.core_properties
    assert (props.author, props.last_modified_by) == ("张三（zhangsan）", "zhangsan")
    assert props.created == WM.at


NASTY = '张"三\\</style><p style="font-size:40pt">x</p>'


def test_a_user_name_stays_text_in_the_pdf_and_word_file() -> None:
    """Quotes, a backslash and markup in a name are printed as they are, not run as CSS or
    HTML."""
    wm = Watermark(NASTY, "nasty", WM.at)
    doc = Document("zh", "标题", ("辖区：测试",), (), "第 {page} 页")
    body = to_pdf(doc, wm)
    assert pdf_marks(body) == [[wm.mark("zh")] * len(MARK_AT)]
    assert squash(wm.line("zh")) in squash(pdf_text(body))
    word = docx.Document(io.BytesIO(to_docx(doc, wm)))
    assert word.sections[0].footer.paragraphs[0].text == wm.line("zh")


def test_english_briefing(demo_engine, period) -> None:
    street, start, end = period
    with demo_engine.connect() as conn:
        made = build(conn, street=street, start=start, end=end, watermark=WM, lang="en", docx=False)
    text = squash(pdf_text(made.pdf or b""))
    for title in ("1.Keyfigures", "2.Maps", "4.Hotbutunder-patrolled", "7.Datasourcesandfreshness"):
        assert title in text
    closure = made.data.report.figures.closure_rate
    assert squash(f"Closure rate {fmt_value('rate', closure)}") in text
    assert squash("Made for 张三（zhangsan） at 2026-12-01 05:45 Beijing time") in text
    assert pdf_marks(made.pdf or b"")[0][0] == "张三（zhangsan） 2026-12-01 05:45 Beijing time"


def test_district_briefing_has_a_row_per_street(demo_engine, period) -> None:
    _, start, end = period
    with demo_engine.connect() as conn:
        made = build(conn, street=None, start=start, end=end, watermark=WM, pdf=False, docx=False)
        report = kpis(conn, unit=made.data.code, start=start, end=end)
    assert made.data.scope == "district"
    assert made.data.report.figures == report.figures
    assert made.data.by_unit.level == "street"
    assert made.document.sections[5].title == "六、各街道情况"


def test_empty_period_and_unknown_street(demo_engine, period) -> None:
    street, _, _ = period
    with demo_engine.connect() as conn:
        with pytest.raises(EmptyPeriodError):
            build(
                conn,
                street=street,
                start=dt.date(2001, 1, 1),
                end=dt.date(2001, 2, 1),
                watermark=WM,
            )
        with pytest.raises(ValueError, match="街道编码不存在"):
            build(
                conn,
                street="999999999000",
                start=dt.date(2026, 1, 1),
                end=dt.date(2026, 2, 1),
                watermark=WM,
            )
        with pytest.raises(ValueError, match="结束日期须晚于起始日期"):
            build(
                conn,
                street=street,
                start=dt.date(2026, 2, 1),
                end=dt.date(2026, 2, 1),
                watermark=WM,
            )


# --- command line ------------------------------------------------------------------------


@pytest.fixture
def cli_db(demo_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("DATABASE_URL", demo_engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    yield demo_engine
    get_settings.cache_clear()


def _last_briefing_audit(engine: Engine) -> tuple | None:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT id, login, detail FROM audit_log WHERE action = 'briefing' "
                "ORDER BY id DESC LIMIT 1"
            )
        ).first()


def test_cli_writes_pdf_and_docx(cli_db, period, tmp_path, capsys) -> None:
    street, start, end = period
    out = tmp_path / "b.docx"
    args = ["--street", street, "--from", str(start), "--to", str(end), "--out", str(out)]
    assert cli([*args, "--user", "zhangsan"]) == 0
    body = out.read_bytes()
    assert body.startswith(b"PK")
    assert "已写入" in capsys.readouterr().out
    d = docx.Document(io.BytesIO(body))
    assert d.sections[0].header.paragraphs[0].text.startswith("zhangsan ")
    row = _last_briefing_audit(cli_db)
    assert row is not None and row.login == "zhangsan"
    detail = row.detail
    assert (detail["via"], detail["code"], detail["from"], detail["lang"]) == (
        "cli",
        street,
        str(start),
        "zh",
    )
    assert detail["to"] == str(end - dt.timedelta(days=1))
    assert detail["out"] == str(out.resolve())
    assert detail["files"] == {
        "docx": {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    }
    assert detail["watermark"]["login"] == "zhangsan"
    assert detail["watermark"]["at"].endswith("+08:00")

    assert cli([*args[:-1], str(tmp_path / "b.txt")]) == 2
    assert ".pdf" in capsys.readouterr().err
    empty = ["--district", "--from", "2001-01-01", "--to", "2001-02-01", "--out", str(out)]
    assert cli(empty) == 2
    assert "没有上报事件" in capsys.readouterr().err
    assert _last_briefing_audit(cli_db).id == row.id  # refused: nothing made, nothing recorded


def test_cli_user_defaults_to_the_os_user(cli_db, period, tmp_path, capsys) -> None:
    street, start, end = period
    out = tmp_path / "b.pdf"
    args = ["--street", street, "--from", str(start), "--to", str(end), "--out", str(out)]
    assert cli(args) == 0
    assert _last_briefing_audit(cli_db).login == os_user()
    assert pdf_marks(out.read_bytes())[0][0].startswith(f"{os_user()} ")
    with pytest.raises(SystemExit):
        cli(["--help"])
    assert f"the OS user running this, now {os_user()!r}" in squash_spaces(capsys.readouterr().out)
    assert cli([*args, "--user", "a\tb"]) == 2
    assert "控制字符" in capsys.readouterr().err


def squash_spaces(value: str) -> str:
    """Help text with argparse's line wrapping undone."""
    return " ".join(value.split())


# --- the page's URL state ----------------------------------------------------------------

STREETS = ("370214900000", "370214901000")
DEFAULTS = bv.BriefingQuery(None, dt.date(2026, 11, 1), dt.date(2026, 11, 20))


@given(st.dictionaries(st.sampled_from(["street", "from", "to", "x"]), st.text(max_size=12)))
def test_parse_never_raises_and_reports_what_it_dropped(params: dict[str, str]) -> None:
    q, bad = bv.parse_query(params, defaults=DEFAULTS, streets=STREETS)
    assert q.start <= q.end
    assert q.street is None or q.street in STREETS
    assert {b.key for b in bad} <= {"street", "from", "to"}


@given(
    st.sampled_from([None, *STREETS]),
    st.dates(dt.date(2000, 1, 1), dt.date(2100, 1, 1)),
    st.integers(0, 400),
)
def test_url_round_trip(street: str | None, start: dt.date, days: int) -> None:
    q = bv.BriefingQuery(street, start, start + dt.timedelta(days=days))
    assert bv.parse_query(bv.to_params(q), defaults=DEFAULTS, streets=STREETS) == (q, [])


def test_default_is_month_to_date_of_the_latest_day() -> None:
    q = bv.default_query(dt.date(2026, 11, 20), ["370214900000"])
    assert q == bv.BriefingQuery("370214900000", dt.date(2026, 11, 1), dt.date(2026, 11, 20))
    assert bv.default_query(dt.date(2026, 11, 20), STREETS).street is None


# --- the watermark's text in CSS -----------------------------------------------------------


@given(st.text(max_size=40))
def test_css_string_escapes_everything_but_letters_and_digits(value: str) -> None:
    """Nothing in a name can end the CSS string or the style element; decoding the escapes
    gives the name back."""
    literal = str(css_string(value))
    assert literal[0] == literal[-1] == '"'
    body = literal[1:-1]
    assert re.fullmatch(r"([A-Za-z0-9]|\\[0-9a-f]{6})*", body)
    assert re.sub(r"\\([0-9a-f]{6})", lambda m: chr(int(m.group(1), 16)), body) == value
