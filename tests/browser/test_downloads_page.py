"""Downloads on a dashboard page (dashboard/downloads.py) in headless Chromium against the
street demo, every non-local request blocked: on the 事件 (incidents) page a click on the
units table's CSV writes one audit row naming the logged-in user, the page's filters, the
rows and the SHA-256 of the very file the browser received; the XLSX beside it carries the
user's watermark and is audited the same way; showing the page writes no such row."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Page
from sqlalchemy import Engine, Row, text

from tests.browser.conftest import ARTIFACTS, DEMO_USERS, OfflinePage, goto

VIEWPORT = {"width": 1400, "height": 2400}
CSV_LABEL = "下载（CSV）"
XLSX_LABEL = "下载 Excel（带水印）"


def _downloads(engine: Engine, after: int) -> list[Row]:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT id, login, user_role, detail FROM audit_log WHERE action = 'export' "
                "AND detail->>'via' = 'dashboard' AND id > :after ORDER BY id"
            ),
            {"after": after},
        ).all()


def _last_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT coalesce(max(id), 0) FROM audit_log")).scalar_one()


def _wait_rows(engine: Engine, after: int, n: int, timeout: float = 60.0) -> list[Row]:
    """The dashboard download rows after id ``after`` once there are ``n`` (the click's
    callback runs at the start of the rerun the click asks for)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = _downloads(engine, after)
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def _settled(page: Page) -> None:
    """Wait until the script run has finished (the running indicator is gone)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=120_000,
        polling=250,
    )


@pytest.mark.browser
def test_a_download_click_writes_one_audit_row_with_the_users_name_and_the_files_hash(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, tmp_path: Path
) -> None:
    page = offline_page.page
    page.set_viewport_size(VIEWPORT)
    goto(page, f"{app_url}/incidents", role="street")
    user = DEMO_USERS["street"]
    csv_button = page.get_by_role("button", name=CSV_LABEL).first
    csv_button.wait_for(timeout=120_000)
    _settled(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "downloads_incidents.png"), full_page=True)
    start = _last_id(demo_engine)
    assert _downloads(demo_engine, start) == []  # shown, not downloaded: nothing yet

    with page.expect_download() as info:
        csv_button.click()
    download = info.value
    assert re.fullmatch(
        r"incident_units_\d{4}-\d\d-\d\d_\d{4}-\d\d-\d\d\.csv", download.suggested_filename
    )
    path = tmp_path / "units.csv"
    download.save_as(path)
    body = path.read_bytes()
    rows = _wait_rows(demo_engine, start, 1)
    assert len(rows) == 1
    row = rows[0]
    assert (row.login, row.user_role) == (user.login, "street")
    d = row.detail
    assert (d["page"], d["kind"], d["format"]) == ("incidents", "incident_units", "csv")
    assert d["file_name"] == download.suggested_filename
    assert d["sha256"] == hashlib.sha256(body).hexdigest() and d["bytes"] == len(body)
    table = pd.read_csv(io.BytesIO(body), encoding="utf-8-sig", dtype=str)
    assert d["rows"] == len(table) > 0
    assert d["filters"]["street"] == user.scope_code and "from" in d["filters"]
    assert f"street={user.scope_code}" in page.url
    assert d["watermark"]["login"] == user.login
    assert body.startswith(b"\xef\xbb\xbf") and user.login.encode() not in body  # clean CSV
    _settled(page)

    xlsx_button = page.get_by_role("button", name=XLSX_LABEL).first
    before = dt.datetime.now(dt.UTC)
    with page.expect_download() as info:
        xlsx_button.click()
    xlsx = tmp_path / "units.xlsx"
    info.value.save_as(xlsx)
    rows = _wait_rows(demo_engine, start, 2)
    assert len(rows) == 2  # one click, one row each
    d = rows[1].detail
    assert (rows[1].login, d["format"], d["kind"]) == (user.login, "xlsx", "incident_units")
    got = xlsx.read_bytes()
    assert d["sha256"] == hashlib.sha256(got).hexdigest()
    with zipfile.ZipFile(xlsx) as z:
        core = z.read("docProps/core.xml").decode()
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    shown = f"{user.login.replace('test-', '测试')}（{user.login}）"
    assert f"<dc:creator>{shown}</dc:creator>" in core
    assert re.search(rf"<oddHeader>&amp;C{re.escape(shown)} 于 \d{{4}}-\d\d-\d\d \d\d:\d\d", sheet)
    made = dt.datetime.fromisoformat(d["watermark"]["at"])
    assert made <= dt.datetime.now(dt.UTC) and before - made < dt.timedelta(minutes=10)
    _settled(page)
    assert len(_downloads(demo_engine, start)) == 2  # the reruns added none
    assert page.locator('[data-testid="stException"]').count() == 0
    offline_page.assert_clean("/incidents")
