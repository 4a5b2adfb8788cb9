"""Reading the values of street offices' files (loaders.parse, with loaders.read for the
file-level cases): time zones, Chinese dates, day/month order, numbers that do not fit,
codes Excel turned into numbers, NUL bytes, spreadsheet formulas without a saved value,
repeated headers, physical line numbers and the CSV formula guard.

Parsing rules are checked on values (with hypothesis where the space is wide); the reader's
part on real files written here; the whole path once against PostGIS."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

import loaders.read
from loaders import parse
from loaders.engine import Options, load_file
from loaders.kinds import KINDS
from loaders.parse import _Problems, int_range, parse_fields
from loaders.read import iter_csv, read_table
from loaders.report import LoadReport, RowProblem
from loaders.sniff import FileFormatError, InputError, sniff_format
from store.sheets import guard_formula
from tests import factories

SH = "Asia/Shanghai"
FAST = settings(max_examples=150, deadline=None)
SLOW = settings(max_examples=40, deadline=None)  # each example writes and reads a file


def _parse(
    kind_name: str, tz: str = SH, /, **columns: list[object]
) -> tuple[pd.DataFrame, dict[int, RowProblem]]:
    """``columns`` parsed as ``kind_name``; the problems by line (data rows from line 2)."""
    frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})
    problems = _Problems("t.csv", np.arange(len(frame)) + 2)
    out = parse_fields(frame, KINDS[kind_name], problems, tz)
    return out, {p.line: p for p in problems.by_row.values()}


def _times(values: list[object], tz: str = SH) -> tuple[list[pd.Timestamp], dict[int, str]]:
    """Incident report times: the parsed UTC instants and the reasons by row (from 0)."""
    out, problems = _parse("incidents", tz, reported_at=values)
    return out["reported_at"].tolist(), {line - 2: p.reason for line, p in problems.items()}


# --- time zones ------------------------------------------------------------------------------

MOMENTS = st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2099, 12, 31))


def _spellings(minutes: int) -> list[str]:
    """Every way of writing an offset of ``minutes`` east of UTC that files use."""
    sign = "+" if minutes >= 0 else "-"
    h, m = divmod(abs(minutes), 60)
    out = [f"{sign}{h:02d}:{m:02d}", f"{sign}{h:02d}{m:02d}", f" UTC{sign}{h:02d}:{m:02d}"]
    if m == 0:
        out += [f"{sign}{h:02d}", f" GMT{sign}{h}", f"UTC{sign}{h}"]
    if minutes == 0:
        out += ["Z", " UTC", " GMT", "+00", "z"]
    return out


@FAST
@given(
    moment=MOMENTS,
    minutes=st.sampled_from([-720, -300, -210, 0, 330, 345, 480, 525, 540, 840]),
    data=st.data(),
)
def test_a_time_with_an_offset_is_that_instant_in_any_spelling(
    moment: dt.datetime, minutes: int, data: st.DataObject
) -> None:
    spelling = data.draw(st.sampled_from(_spellings(minutes)))
    separator = data.draw(st.sampled_from([" ", "T"]))
    if not data.draw(st.booleans()):
        moment = moment.replace(microsecond=0)
    value = moment.strftime(f"%Y-%m-%d{separator}%H:%M:%S.%f") + spelling
    got, why = _times([value])
    expected = pd.Timestamp(moment - dt.timedelta(minutes=minutes), tz="UTC")
    assert why == {} and got == [expected], value


@FAST
@given(moment=MOMENTS, tz=st.sampled_from([SH, "Asia/Urumqi", "UTC"]))
def test_a_time_without_an_offset_is_read_in_the_configured_zone(
    moment: dt.datetime, tz: str
) -> None:
    got, why = _times([moment.strftime("%Y-%m-%d %H:%M:%S.%f")], tz)
    assert why == {} and got == [pd.Timestamp(moment, tz=tz).tz_convert("UTC")]


def test_a_column_mixing_offsets_and_local_times_is_read_row_by_row() -> None:
    got, why = _times(
        [
            "2026-03-01 08:30",  # Shanghai
            "2026-03-01 08:30+08",
            "2026-03-01 00:30Z",
            "2026-03-01 00:30 UTC",
            "2026-03-01 08:30 GMT+8",  # east, not POSIX's west
            "2026-03-01 08:30 UTC+08:00",
            "2026-03-01T08:30:00+0800",
            "2026/3/1 8:30",
        ]
    )
    assert why == {}
    assert got == [pd.Timestamp("2026-03-01 00:30", tz="UTC")] * 8


@pytest.mark.parametrize(
    "value",
    [
        "2026-03-01 08:30 UTC+15",  # no such offset
        "2026-03-01+08",  # an offset without a time
        "2026-03-01 25:00",
        "2026-13-01",
        "不是时间",
    ],
)
def test_what_is_no_time_is_a_row_problem_naming_the_value(value: str) -> None:
    _, problems = _parse("incidents", reported_at=[value])
    assert problems[2].field == "reported_at"
    assert problems[2].value == value
    assert problems[2].reason == parse.WHY_TIME


# --- Chinese, dotted and full-width dates ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "local"),
    [
        ("2026年3月1日", "2026-03-01 00:00"),
        ("2026年3月1日 8时30分", "2026-03-01 08:30"),
        ("2026年3月1日8:30", "2026-03-01 08:30"),
        ("2026年03月01日 08时30分15秒", "2026-03-01 08:30:15"),
        ("2026年3月1号 8点半", "2026-03-01 08:30"),
        ("2026年3月1日下午3时", "2026-03-01 15:00"),
        ("2026.3.1 8:30", "2026-03-01 08:30"),
        ("2026/3/1 8:30", "2026-03-01 08:30"),
        ("２０２６－０３－０１　０８：３０", "2026-03-01 08:30"),  # full-width
        ("２０２６年３月１日", "2026-03-01 00:00"),
    ],
)
def test_chinese_dotted_and_full_width_times(value: str, local: str) -> None:
    got, why = _times([value])
    assert why == {} and got == [pd.Timestamp(local, tz=SH).tz_convert("UTC")]


@pytest.mark.parametrize(
    "value", ["2026年3月1日", "2026年3月1日 8时30分", "2026.3.1", "2026/3/1", "２０２６年３月１日"]
)
def test_chinese_and_dotted_dates(value: str) -> None:
    out, problems = _parse("workers", active_from=[value])
    assert problems == {} and out["active_from"].tolist() == [dt.date(2026, 3, 1)]


@FAST
@given(moment=MOMENTS.map(lambda d: d.replace(second=0, microsecond=0)))
def test_any_time_written_the_chinese_way(moment: dt.datetime) -> None:
    value = f"{moment.year}年{moment.month}月{moment.day}日 {moment.hour}时{moment.minute}分"
    got, why = _times([value])
    assert why == {} and got == [pd.Timestamp(moment, tz=SH).tz_convert("UTC")]


# --- day and month order --------------------------------------------------------------------

DATES = st.dates(min_value=dt.date(2000, 1, 1), max_value=dt.date(2099, 12, 31))


@FAST
@given(days=st.lists(DATES, min_size=1, max_size=12), month_first=st.booleans())
def test_day_month_order_is_decided_by_the_column_or_refused(
    days: list[dt.date], month_first: bool
) -> None:
    fmt = "%m/%d/%Y" if month_first else "%d/%m/%Y"
    out, problems = _parse("workers", active_from=[d.strftime(fmt) for d in days])
    decided = any(d.day > 12 for d in days)
    for i, d in enumerate(days):
        if decided or d.day == d.month:
            assert out["active_from"][i] == d and i + 2 not in problems
        else:
            assert problems[i + 2].reason == parse.WHY_DAY_MONTH
            assert problems[i + 2].value == d.strftime(fmt)


def test_a_column_with_both_orders_refuses_what_it_cannot_decide() -> None:
    out, problems = _parse(
        "workers", active_from=["25/03/2026", "03/25/2026", "03/04/2026", "04/04/2026"]
    )
    assert out["active_from"][:2].tolist() == [dt.date(2026, 3, 25)] * 2
    assert out["active_from"][3] == dt.date(2026, 4, 4)
    assert list(problems) == [4]
    assert problems[4].reason == parse.WHY_DAY_MONTH_MIXED


def test_day_month_order_of_times_and_year_first_dates() -> None:
    got, why = _times(["03/04/2026 08:30", "13/04/2026 09:00"])
    assert why == {} and got[0] == pd.Timestamp("2026-04-03 08:30", tz=SH).tz_convert("UTC")
    # year first is the Chinese order, and never ambiguous
    out, problems = _parse("workers", active_from=["2026/3/4", "2026.3.4", "2026-3-4"])
    assert problems == {} and out["active_from"].tolist() == [dt.date(2026, 3, 4)] * 3


# --- numbers --------------------------------------------------------------------------------


def test_int_ranges_come_from_the_store_schema() -> None:
    smallint = (-(2**15), 2**15 - 1)
    assert int_range(KINDS["buildings"], "floors") == smallint
    assert int_range(KINDS["housing"], "n_registered") == smallint
    assert int_range(KINDS["incidents"], "severity") == smallint
    assert int_range(KINDS["grids"], "households") == (-(2**31), 2**31 - 1)


@FAST
@given(n=st.integers(min_value=-(2**70), max_value=2**70), form=st.sampled_from(["{}", "+{}"]))
def test_whole_numbers_are_read_exactly_or_refused_by_range(n: int, form: str) -> None:
    value = form.format(n) if n >= 0 else str(n)
    out, problems = _parse("buildings", code=["B1"], address=["x"], floors=[value])
    lo, hi = int_range(KINDS["buildings"], "floors")
    if lo <= n <= hi:
        assert problems == {} and out["floors"][0] == n
    else:
        assert problems[2].field == "floors" and problems[2].value == value
        assert "out of the column's range -32768 to 32767" in problems[2].reason


@FAST
@given(x=st.floats(allow_nan=False, allow_infinity=False))
def test_finite_floats_round_trip_exactly(x: float) -> None:
    out, problems = _parse("facilities", code=["F1"], kind=["hydrant"], view_radius_m=[repr(x)])
    assert problems == {} and out["view_radius_m"][0] == x


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "NaN", "Infinity", "1e400"])
def test_inf_and_nan_are_row_problems(value: str) -> None:
    _, problems = _parse("facilities", code=["F1"], kind=["hydrant"], view_radius_m=[value])
    assert (problems[2].field, problems[2].value) == ("view_radius_m", value)
    assert problems[2].reason == parse.WHY_NOT_FINITE
    _, problems = _parse("buildings", code=["B1"], address=["x"], floors=[value])
    assert (problems[2].field, problems[2].value) == ("floors", value)
    assert problems[2].reason == parse.WHY_NOT_FINITE


def test_twenty_digits_are_refused_not_rounded() -> None:
    value = "12345678901234567890"
    _, problems = _parse("grids", code=["370214900001001"], name=["一"], households=[value])
    assert (problems[2].field, problems[2].value) == ("households", value)
    assert "out of the column's range" in problems[2].reason


def test_numbers_in_full_width_digits_and_whole_floats() -> None:
    out, problems = _parse(
        "buildings",
        code=["B1", "B2", "B3", "B4"],
        address=["x"] * 4,
        floors=["１２", "12.0", "1e1", "十二"],
    )
    assert out["floors"][:3].tolist() == [12, 12, 10]
    assert list(problems) == [5] and problems[5].reason == parse.WHY_WHOLE


# --- codes, NUL, formulas, the CSV formula guard -------------------------------------------


@pytest.mark.parametrize(
    ("kind", "field", "others"),
    [
        ("buildings", "code", {"address": ["x"]}),
        ("incidents", "code", {"category_code": ["0301"], "reported_at": ["2026-03-01"]}),
        ("workers", "phone", {"code": ["W1"], "name": ["张三"]}),
        ("housing", "building_code", {"unit_no": ["101"], "occupancy": ["自住"]}),
    ],
)
@pytest.mark.parametrize("value", ["1.23457E+17", "1.38001E+10", "3.70214E+14", "1E+15"])
def test_codes_excel_turned_into_numbers_are_named(
    kind: str, field: str, others: dict[str, list[object]], value: str
) -> None:
    _, problems = _parse(kind, **{field: [value]}, **others)
    assert (problems[2].field, problems[2].value) == (field, value)
    assert problems[2].reason.startswith("像被 Excel 改成科学计数法 / looks like Excel")


def test_scientific_looking_text_that_is_no_code_is_text() -> None:
    out, problems = _parse("buildings", code=["B1"], address=["1.5E+3"])
    assert problems == {} and out["address"][0] == "1.5E+3"


def test_a_nul_character_is_a_row_problem_in_any_field() -> None:
    _, problems = _parse(
        "buildings", code=["B1", "B\x002"], address=["x\x00y", "z"], floors=["1", "2"]
    )
    assert problems[2].field == "address" and problems[3].field == "code"
    assert problems[2].value == "x\\x00y"
    assert problems[2].reason == parse.WHY_NUL


@pytest.mark.parametrize("value", ['=HYPERLINK("http://x")', "+1", "-5", "@SUM(A1)", "\tx", "=1"])
def test_the_exporters_formula_guard_comes_off(value: str) -> None:
    guarded = guard_formula(value)
    assert guarded == "'" + value
    out, problems = _parse("buildings", code=["B1"], address=[guarded])
    assert problems == {} and out["address"][0] == value


@FAST
@given(
    prefix=st.sampled_from(["", "=", "+", "-", "@", "\t", "\r", "'", "'=", "''-", "'x"]),
    body=st.text(st.characters(exclude_categories=["Cc", "Cs", "Zs", "Zl", "Zp"]), min_size=1),
)
def test_guarded_text_loads_back_exactly(prefix: str, body: str) -> None:
    """Guarding ``'*[=+-@\\t\\r]`` with one ``'`` on export and taking one off on load is
    exact for every text (plain ``'x`` included)."""
    value = prefix + body
    guarded = (
        "'" + value if value.lstrip("'").startswith(("=", "+", "-", "@", "\t", "\r")) else value
    )
    out, problems = _parse("buildings", code=["B1"], address=[guarded])
    assert problems == {} and out["address"][0] == value


def test_text_cells_are_otherwise_untouched() -> None:
    values = ["'引号开头", "''", "'", "O'Brien", "'; DROP TABLE building; --"]
    out, problems = _parse("buildings", code=["B1"] * 5, address=values)
    assert problems == {} and out["address"].tolist() == values


# --- files: CSV -----------------------------------------------------------------------------

CELL = st.lists(
    st.sampled_from(["a", "网", '"', ",", "\n", "\r\n", " ", "x", "'"]), max_size=6
).map("".join)


@SLOW
@given(
    rows=st.lists(st.tuples(CELL, CELL), min_size=1, max_size=25),
    blanks=st.lists(st.sampled_from(["", "   ", "\t"]), max_size=25),
    terminator=st.sampled_from(["\n", "\r\n"]),
    chunk=st.integers(min_value=1, max_value=7),
)
def test_csv_lines_are_the_files_physical_lines(
    rows: list[tuple[str, str]], blanks: list[str], terminator: str, chunk: int
) -> None:
    """Values with line breaks and blank lines between rows: a row's line is the line it
    starts on in an editor, in every chunk."""
    body = io.StringIO()
    out = csv.writer(body, lineterminator=terminator)
    out.writerow(["code", "name", "address"])
    expected = []
    line = 2
    for i, (name, address) in enumerate(rows):
        if i < len(blanks):  # a blank line before this row
            body.write(blanks[i] + terminator)
            line += 1
        start = body.tell()
        out.writerow([f"R{i}", name, address])
        expected.append(line)
        line += body.getvalue()[start:].count("\n")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.csv"
        path.write_bytes(body.getvalue().encode())
        parts = list(iter_csv(path, chunk_rows=chunk))
    codes = [c for p in parts for c in p.frame["code"]]
    lines = [int(n) for p in parts for n in p.lines]
    assert codes == [f"R{i}" for i in range(len(rows))]
    assert lines == expected


@SLOW
@given(
    rows=st.lists(st.tuples(CELL, CELL), min_size=1, max_size=25),
    terminator=st.sampled_from(["\n", "\r\n"]),
    chunk=st.integers(min_value=1, max_value=7),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]),
)
def test_csv_lines_without_blank_lines_are_counted_not_parsed_again(
    rows: list[tuple[str, str]], terminator: str, chunk: int, encoding: str
) -> None:
    """No blank line between rows: the loader numbers the rows from the line breaks inside
    their values (no second pass with the csv module) and gets the csv module's lines."""
    body = io.StringIO()
    csv.writer(body, lineterminator=terminator).writerows(
        [["code", "name", "address"], *([f"R{i}", n, a] for i, (n, a) in enumerate(rows))]
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "rows.csv"
        path.write_bytes(body.getvalue().encode(encoding))
        enc = "utf-8-sig" if encoding == "utf-8-sig" else encoding
        # a value holding an empty line looks like a blank line: the csv module numbers it
        blank_inside = re.search(r"\n[ \t\r]*\n", body.getvalue())
        assert loaders.read._plain_lines(path, enc)[0] == (not blank_inside)
        fast = [int(n) for p in iter_csv(path, encoding=enc, chunk_rows=chunk) for n in p.lines]
        by_csv = [line for line, _ in loaders.read._record_lines(path, enc, ",")][1:]
    assert fast == by_csv


@pytest.mark.parametrize(
    ("data", "plain"),
    [
        (b"a,b\n1,2\n", (True, False)),
        (b"a,b\r\n1,2", (True, False)),
        (b'a,b\n1,"x\ny"\n', (True, True)),
        (b"\na,b\n1,2\n", (False, True)),  # a blank first line
        (b"a,b\n\n1,2\n", (False, True)),
        (b"a,b\n \t\r\n1,2\n", (False, True)),
        (b"a,b\n1,2\n   ", (False, True)),  # a last line of spaces
        (b"a,b\r1,2\r", (False, True)),  # old Mac line ends
        ("a,b\n1,2\n".encode("utf-16"), (False, True)),
    ],
)
def test_which_files_have_plain_lines(tmp_path: Path, data: bytes, plain: tuple) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    enc = "utf-16" if data.startswith(b"\xff\xfe") else "utf-8"
    assert loaders.read._plain_lines(path, enc) == plain


def test_a_blank_line_across_two_blocks_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * 300_000 + b"\n3,4\n")  # \n\n across 1 MiB
    assert loaders.read._plain_lines(path, "utf-8") == (False, True)
    path.write_bytes(b"a,b\n" + b"1,2\r\n" * 300_000)
    assert loaders.read._plain_lines(path, "utf-8") == (True, False)


def test_a_bad_value_after_a_multi_line_cell_is_named_by_its_line(tmp_path: Path) -> None:
    path = tmp_path / "buildings.csv"
    path.write_text(
        'code,address,floors\nB1,"海园路1号\n北门\n东侧",3\n\nB2,海园路2号,很高\n', encoding="utf-8"
    )
    raw = read_table(sniff_format(path))
    problems = _Problems(raw.source, raw.lines)
    parse_fields(raw.frame, KINDS["buildings"], problems, SH)
    assert [(p.line, p.field, p.value) for p in problems.by_row.values()] == [(6, "floors", "很高")]


def test_a_row_with_more_values_than_the_header_is_named_by_its_line(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text('code,address\nB1,"a\nb"\nB2,c,d\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"ragged\.csv: line 4 has 3 values but the header"):
        read_table(sniff_format(path))


def test_a_nul_byte_in_a_csv_costs_its_row_only(tmp_path: Path) -> None:
    path = tmp_path / "nul.csv"
    path.write_bytes(b"code,address,floors\nB1,a,1\nB2,b\x00c,2\nB3,d,3\n")
    sniffed = sniff_format(path)
    assert sniffed.format == "csv"
    raw = read_table(sniffed)
    problems = _Problems(raw.source, raw.lines)
    typed = parse_fields(raw.frame, KINDS["buildings"], problems, SH)
    assert [(p.line, p.field, p.reason) for p in problems.by_row.values()] == [
        (3, "address", parse.WHY_NUL)
    ]
    assert typed["code"].tolist() == ["B1", "B2", "B3"]


@pytest.mark.parametrize(
    ("header", "second", "fine"),
    [("经度", "120.401", True), ("经度", "120.5", False), ("code", "B9", False)],
)
def test_a_header_written_twice(tmp_path: Path, header: str, second: str, fine: bool) -> None:
    path = tmp_path / "twice.csv"
    path.write_text(
        f"code,经度,纬度,{header}\nB1,120.401,36.301,{'B1' if header == 'code' else '120.401'}\n"
        f"B2,120.401,36.301,{second}\n",
        encoding="utf-8",
    )
    if fine:
        assert list(read_table(sniff_format(path)).frame.columns) == ["code", "经度", "纬度"]
        return
    j = 1 if header == "code" else 2
    with pytest.raises(InputError, match=rf"twice\.csv: columns {j} and 4 are both headed") as e:
        read_table(sniff_format(path))
    assert f"第{j}列和第4列的表头都是“{header}”" in str(e.value)


# --- files: GeoJSON -------------------------------------------------------------------------


def _feature(code: str, x: float = 120.401) -> dict:
    return {
        "type": "Feature",
        "properties": {"code": code, "address": "海园路"},
        "geometry": {"type": "Point", "coordinates": [x, 36.301]},
    }


def test_an_escaped_nul_in_geojson_is_not_cut_off_silently(tmp_path: Path) -> None:
    """GDAL ends a string at ``\\u0000`` ("B\\u00002" reads as "B"): the reader puts the
    value back so that its feature is refused, not stored as another code."""
    path = tmp_path / "nul.geojson"
    doc = {"type": "FeatureCollection", "features": [_feature("B1"), _feature("B\x002")]}
    path.write_text(json.dumps(doc), encoding="utf-8")
    raw = read_table(sniff_format(path))
    assert raw.unit == "feature"
    problems = _Problems(raw.source, raw.lines, raw.unit)
    parse_fields(raw.frame, KINDS["buildings"], problems, SH)
    [problem] = problems.by_row.values()
    assert (problem.line, problem.field, problem.value) == (2, "code", "B\\x002")
    assert problem.where == "第2个要素 feature 2"


def test_a_raw_nul_byte_in_geojson_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "raw_nul.geojson"
    text_ = json.dumps({"type": "FeatureCollection", "features": [_feature("B1")]}, indent=1)
    path.write_bytes(text_.replace('"B1"', '"B\x001"').encode())
    with pytest.raises(FileFormatError, match=r"raw_nul\.geojson.*malformed JSON \(line 7"):
        sniff_format(path)


# --- files: XLSX ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Formula:
    """A formula cell; ``saved`` is its cached result (None: never calculated, as openpyxl
    and web exports write them)."""

    formula: str
    saved: str | None = None
    kind: str | None = None  # the cell's t= attribute


def write_xlsx(path: Path, rows: list[list[object]]) -> None:
    """A minimal OOXML workbook of one sheet, as openpyxl writes it (openpyxl is not a
    dependency): strings inline, numbers as numbers, formulas with or without ``<v>``."""

    def cell(ref: str, value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, Formula):
            t = f' t="{value.kind}"' if value.kind else ""
            v = "<v></v>" if value.saved is None else f"<v>{escape(value.saved)}</v>"
            return f'<c r="{ref}"{t}><f>{escape(value.formula)}</f>{v}</c>'
        if isinstance(value, int | float):
            return f'<c r="{ref}"><v>{value}</v></c>'
        return f'<c r="{ref}" t="inlineStr"><is><t>{escape(str(value))}</t></is></c>'

    letters = "ABCDEFGHIJ"
    sheet_rows = "".join(
        f'<row r="{r}">'
        + "".join(cell(f"{letters[c]}{r}", v) for c, v in enumerate(row))
        + "</row>"
        for r, row in enumerate(rows, start=1)
    )
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg = "http://schemas.openxmlformats.org/package/2006/relationships"
    doc = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{doc}.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" '
            f'ContentType="{doc}.worksheet+xml"/></Types>'
        ),
        "_rels/.rels": (
            f'<Relationships xmlns="{pkg}"><Relationship Id="rId1" '
            f'Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
            '<sheet name="楼栋" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships xmlns="{pkg}"><Relationship Id="rId1" Type="{rel}/worksheet" '
            'Target="worksheets/sheet1.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": (
            f'<worksheet xmlns="{main}"><sheetData>{sheet_rows}</sheetData></worksheet>'
        ),
    }
    with zipfile.ZipFile(path, "w") as book:
        for name, body in parts.items():
            book.writestr(name, '<?xml version="1.0" encoding="UTF-8"?>\n' + body)


BUILDING_HEADER = ["code", "address", "floors", "lng", "lat"]


def test_formulas_without_a_saved_value_are_named_by_cell(tmp_path: Path) -> None:
    path = tmp_path / "formulas.xlsx"
    write_xlsx(
        path,
        [
            [*BUILDING_HEADER, "use"],
            ["B1", "海园路1号", 6, 120.401, 36.301],
            ["B2", "海园路2号", Formula("C2+1"), 120.401, 36.301],  # never calculated
            ["B3", "海园路3号", Formula("C2*2", saved="12"), 120.401, 36.301],  # saved
            ["B4", "海园路4号", 2, 120.401, 36.301, Formula('""', kind="str")],  # saved ""
        ],
    )
    raw = read_table(sniff_format(path))
    assert raw.unit == "row"
    problems = _Problems(raw.source, raw.lines, raw.unit)
    typed = parse_fields(raw.frame, KINDS["buildings"], problems, SH)
    [problem] = problems.by_row.values()
    assert (problem.line, problem.field, problem.value) == (3, "floors", "C3 =C2+1")
    assert problem.reason == parse.WHY_FORMULA
    assert problem.where == "第3行 row 3"
    assert typed["floors"].tolist()[2:] == [12, 2]


def test_an_xlsx_header_written_twice_with_different_values(tmp_path: Path) -> None:
    path = tmp_path / "twice.xlsx"
    write_xlsx(path, [["code", "经度", "经度"], ["B1", 120.401, 120.402]])
    with pytest.raises(InputError, match=r"twice\.xlsx: columns 2 and 3 are both headed"):
        read_table(sniff_format(path))
    write_xlsx(path, [["code", "经度", "经度"], ["B1", 120.401, 120.401]])
    assert list(read_table(sniff_format(path)).frame.columns) == ["code", "经度"]


# --- reports --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "where"),
    [
        ("a.csv", "第7行 line 7"),
        ("a.xlsx", "第7行 row 7"),
        ("a.geojson", "第7个要素 feature 7"),
        ("a.gpkg", "第7个要素 feature 7"),
        ("a.zip", "第7个要素 feature 7"),
        ("a.json", "第7条 record 7"),
    ],
)
def test_problems_say_what_their_number_counts(file: str, where: str, tmp_path: Path) -> None:
    problem = RowProblem(file, 7, "code", "x", "why")
    assert problem.where == where
    report = LoadReport(kind="buildings", file=file, rejected=[problem])
    assert f"✗ {where}, code: why" in report.summary()
    report.write(tmp_path / "r.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text("utf-8-sig"))))
    assert (rows[0]["unit"], rows[0]["line"]) == (problem.unit, "7")


# --- the whole path, against PostGIS --------------------------------------------------------

INSIDE = (120.401, 36.301)  # in tests.factories.GRID


def test_a_messy_file_lands_row_by_row(fresh_engine: Engine, tmp_path: Path) -> None:
    """Multi-line cells and blank lines (lines stay the file's), a NUL byte, a code Excel
    turned into a number, floors beyond smallint, inf, full-width digits and a guarded
    formula: the bad rows named, the good ones stored as written."""
    with fresh_engine.begin() as conn:
        factories.area(conn)
    x, y = INSIDE
    path = tmp_path / "buildings.csv"
    path.write_bytes(
        (
            "code,address,floors,lng,lat\n"  # 1
            f"B001,海园路1号,6,{x},{y}\n"  # 2
            f'B002,"海园路2号\n北门",5,{x},{y}\n'  # 3-4
            f"B003,海园路3号,40000,{x},{y}\n"  # 5
            "\n"  # 6
            f"1.23457E+17,海园路4号,3,{x},{y}\n"  # 7
            f"B005,海\x00园路5号,3,{x},{y}\n"  # 8
            f'B006,\'=HYPERLINK("http://x"),2,{x},{y}\n'  # 9
            f"B007,海园路7号,１２,{x},{y}\n"  # 10
            f"B008,海园路8号,inf,{x},{y}\n"  # 11
        ).encode()
    )
    report = load_file(fresh_engine, "buildings", path, Options())
    assert [(p.line, p.field) for p in report.rejected] == [
        (5, "floors"),
        (7, "code"),
        (8, "address"),
        (11, "floors"),
    ], report.summary()
    assert "第5行 line 5, floors" in report.summary()
    with fresh_engine.connect() as conn:
        stored = dict(
            conn.execute(text("SELECT code, address || '|' || floors FROM building")).all()
        )
    assert stored == {
        "B001": "海园路1号|6",
        "B002": "海园路2号\n北门|5",
        "B006": '=HYPERLINK("http://x")|2',
        "B007": "海园路7号|12",
    }


def test_vector_and_sheet_problems_say_feature_and_row(
    fresh_engine: Engine, tmp_path: Path
) -> None:
    with fresh_engine.begin() as conn:
        factories.area(conn)
    geojson = tmp_path / "buildings.geojson"
    doc = {"type": "FeatureCollection", "features": [_feature("B1"), _feature("B\x002")]}
    geojson.write_text(json.dumps(doc), encoding="utf-8")
    report = load_file(fresh_engine, "buildings", geojson, Options())
    assert [(p.line, p.field) for p in report.rejected] == [(2, "code")]
    assert "第2个要素 feature 2, code" in report.summary()
    sheet = tmp_path / "buildings.xlsx"
    write_xlsx(
        sheet,
        [
            BUILDING_HEADER,
            ["B3", "海园路3号", 6, *INSIDE],
            ["B4", "海园路4号", Formula("C2+1"), *INSIDE],
        ],
    )
    report = load_file(fresh_engine, "buildings", sheet, Options())
    assert report.inserted == 1
    assert "第3行 row 3, floors: 公式没有计算结果" in report.summary()
