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

from dashboard.downloads import audit_detail, csv_bytes, xlsx_bytes
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
