"""The dashboard's shared download helper (dashboard/downloads.py) without a browser: the
XLSX carries the watermark where ``python -m loaders export`` puts it and keeps the table;
the audit detail has the shape of the command line's export rows and the hash of the very
bytes offered."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import zipfile

import pandas as pd
import pyogrio
import pytest

from dashboard.downloads import _deferred, audit_detail, csv_bytes, xlsx_bytes
from store.watermark import Watermark

WM = Watermark("张三", "zhangsan", dt.datetime(2026, 11, 30, 21, 45, tzinfo=dt.UTC))
FRAME = pd.DataFrame(
    {
        "网格": ["370214900001001", "370214900001002"],
        "事件数": [12, 3],
        "办结率": [0.5, None],
        "说明": ["=1+2 & <b>", None],
    }
)


def test_xlsx_carries_the_watermark_and_the_table(tmp_path) -> None:
    body = xlsx_bytes(FRAME, WM, sheet="units")
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        core = z.read("docProps/core.xml").decode()
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert re.search(r"<dc:creator>(.*?)</dc:creator>", core).group(1) == "张三（zhangsan）"
    assert WM.bilingual().replace("&", "&amp;") in core
    assert f"<oddHeader>&amp;C{WM.line('zh')}</oddHeader>" in sheet
    path = tmp_path / "t.xlsx"
    path.write_bytes(body)
    back = pyogrio.read_dataframe(path)
    assert list(back.columns) == list(FRAME.columns)
    assert back["网格"].tolist() == FRAME["网格"].tolist()  # codes stay text
    assert back["事件数"].tolist() == [12, 3]
    assert back["说明"].tolist()[0] == "=1+2 & <b>"


def test_an_empty_table_still_has_its_header(tmp_path) -> None:
    path = tmp_path / "e.xlsx"
    path.write_bytes(xlsx_bytes(FRAME.iloc[0:0], WM))
    with zipfile.ZipFile(path) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert all(c in sheet for c in FRAME.columns)


def test_audit_detail_hashes_the_bytes_offered() -> None:
    body = csv_bytes(FRAME)
    assert body.startswith(b"\xef\xbb\xbf") and b"zhangsan" not in body  # the CSV is clean
    detail = audit_detail(
        page="incidents",
        what="incident_units",
        fmt="csv",
        file_name="u.csv",
        body=body,
        rows=len(FRAME),
        filters={"street": "370214900000"},
        watermark=WM,
    )
    assert detail == {
        "via": "dashboard",
        "page": "incidents",
        "kind": "incident_units",
        "format": "csv",
        "filters": {"street": "370214900000"},
        "rows": 2,
        "file_name": "u.csv",
        "bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "watermark": {"user": "张三", "login": "zhangsan", "at": "2026-12-01T05:45:00+08:00"},
    }


def test_csv_text_cells_cannot_run_as_formulas() -> None:
    frame = pd.DataFrame(
        {
            "说明": ['=HYPERLINK("http://x","点此")', "+1", "-2", "@SUM(A1)", "普通", None],
            "数值": [-1.5, 2, 3, 4, 5, 6],
        }
    )
    table = pd.read_csv(io.BytesIO(csv_bytes(frame)), encoding="utf-8-sig", dtype=str)
    assert table["说明"].tolist()[:5] == [
        '\'=HYPERLINK("http://x","点此")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "普通",
    ]
    assert table["数值"].tolist()[0] == "-1.5"  # numbers stay numbers
    assert frame["说明"].tolist()[0].startswith("=")  # the page's frame is not changed


def test_the_deferred_file_is_audited_with_the_hash_of_the_bytes_handed_over() -> None:
    rows: list[dict] = []
    build = _deferred(
        lambda: csv_bytes(FRAME),
        rows.append,
        page="incidents",
        what="incident_units",
        fmt="csv",
        file_name="u.csv",
        rows=len(FRAME),
        filters={},
        watermark=WM,
    )
    assert rows == []  # drawn, not clicked: nothing made, nothing written
    body = build()
    assert len(rows) == 1 and rows[0]["sha256"] == hashlib.sha256(body).hexdigest()


def test_no_audit_row_no_file() -> None:
    def refuse(detail: dict) -> None:
        raise RuntimeError("database down")

    build = _deferred(
        lambda: b"secret",
        refuse,
        page="p",
        what="w",
        fmt="csv",
        file_name="f.csv",
        rows=0,
        filters={},
        watermark=WM,
    )
    with pytest.raises(RuntimeError):
        build()
