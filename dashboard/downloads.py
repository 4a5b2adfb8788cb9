"""Every table a page offers for download, through one function, audited on the click
(issue 7: "exports and briefings carry a watermark (user, time)" and are audited).

:func:`offer` draws the download button(s) of one table: CSV always, XLSX where the page
asks for it. Clicking one writes one ``audit_log`` row (action ``export``, as
``python -m loaders export`` and ``python -m geo`` write; :func:`audit_detail`): the
logged-in user, the page and the table, the page's filters (its URL parameters), the
rows, the file's name, format, size and SHA-256, and the watermark.

The files are made on the click, not on every run of the page (Streamlit's deferred
``data``): the button's callable makes the bytes, writes the audit row with their SHA-256
and hands exactly those bytes over, so a table merely shown writes nothing and costs no
XLSX. Eager bytes were registered as Streamlit media on every run, and a rerun (a language
switch) dropped the previous run's files while the browser still fetched them (404s).
The callable runs on the server's thread, outside the page run: the session is bound when
the button is drawn and checked again on the click (:func:`dashboard.auth.recorder`); no
row, no file.

Where the watermark goes: CSV has no place for it that every reader ignores (a comment
line or an extra column breaks Excel's reading and every script's), so the CSV stays
clean and the audit row's SHA-256 identifies it. XLSX carries it in the document
properties and the printed header and footer, written as ``python -m loaders export``
writes them (:func:`store.watermark.finish_xlsx`).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyogrio
import streamlit as st

from dashboard import auth
from dashboard.i18n import t
from store.sheets import guard_text_columns
from store.vocab import Lang
from store.watermark import Watermark, finish_xlsx, for_service

CSV_MIME = "text/csv"
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def viewer_watermark() -> Watermark:
    """The watermark of whoever views the page: the logged-in user (display name and
    login; app.py lets no one without a login reach a page). Without a user (a session
    ended between the login check and here): the service, shown as "dashboard"."""
    user = auth.current_user()
    if user is None:
        return for_service("dashboard")
    return Watermark.now(user.login, user.display_name)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as CSV in UTF-8 with a BOM (Excel in China reads a BOM-less file as GBK),
    without the index, its text cells guarded against formula injection
    (:func:`store.sheets.guard_text_columns`: a description typed as ``=HYPERLINK(…)``
    must not run on the computer that opens the file)."""
    return guard_text_columns(frame).to_csv(index=False).encode("utf-8-sig")


def xlsx_bytes(frame: pd.DataFrame, watermark: Watermark, sheet: str = "data") -> bytes:
    """``frame`` as an XLSX workbook (GDAL's XLSX driver, as the exports) carrying
    ``watermark`` in its properties and printed header and footer. Numbers stay number
    cells; every other value is written as its text."""
    table = pd.DataFrame(
        {
            str(c): frame[c]
            if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
            else frame[c].map(lambda v: None if _missing(v) else str(v)).astype(object)
            for c in frame.columns
        },
        index=range(len(frame)),
    )
    with tempfile.TemporaryDirectory(prefix="gridone_dl_") as folder:
        path = Path(folder) / "table.xlsx"
        pyogrio.write_dataframe(table, path, driver="XLSX", layer=sheet[:31])
        finish_xlsx(path, watermark, list(table.columns) if table.empty else None)
        return path.read_bytes()


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or array cell
        return False


def audit_detail(
    *,
    page: str,
    what: str,
    fmt: str,
    file_name: str,
    body: bytes,
    rows: int,
    filters: Mapping[str, str],
    watermark: Watermark,
) -> dict[str, Any]:
    """The ``audit_log`` detail of one download: the shape of the export rows of the
    command line (via, kind, format, filters, rows, size, SHA-256, watermark) plus the
    page and the file's name."""
    return {
        "via": "dashboard",
        "page": page,
        "kind": what,
        "format": fmt,
        "filters": dict(filters),
        "rows": rows,
        "file_name": file_name,
        "bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "watermark": watermark.as_dict(),
    }


def _deferred(
    make: Callable[[], bytes],
    write: Callable[[dict[str, Any]], None],
    **detail: Any,
) -> Callable[[], bytes]:
    """The button's ``data``: on the click, make the file, write its audit row (with the
    SHA-256 of exactly these bytes) and hand the bytes over. When the row cannot be
    written (the session ended, the database is down) the file is not handed over:
    Streamlit shows the button's error instead."""

    def build() -> bytes:
        body = make()
        write(audit_detail(body=body, **detail))
        return body

    return build


def offer(
    label: str,
    frame: pd.DataFrame,
    *,
    page: str,
    what: str,
    file_stem: str,
    lang: Lang,
    filters: Mapping[str, str] | None = None,
    csv: bytes | None = None,
    xlsx: bool = True,
    container: Any = None,
) -> None:
    """Offer ``frame`` for download as CSV (and XLSX), each click audited.

    Parameters
    ----------
    label
        The CSV button's text (the XLSX button's is shared).
    frame
        The table as shown (its rows are counted; the XLSX is made from it).
    page, what
        The page (its url_path, or ``overview``) and the table's name, for the audit row;
        ``what`` also keys the buttons, so it is unique on its page.
    file_stem
        The file name without extension.
    lang
        The page's language.
    filters
        What the table was filtered by; default the page's URL parameters.
    csv
        The CSV's bytes when the page makes them its own way (default :func:`csv_bytes`).
    xlsx
        Offer the watermarked XLSX too.
    container
        Where to draw (a column); default the page.
    """
    where = container if container is not None else st
    filters = dict(st.query_params.to_dict() if filters is None else filters)
    watermark = viewer_watermark()
    write = auth.recorder("export")
    table = frame.copy()  # the page may reuse its frame; the click may come much later
    files: list[tuple[str, Callable[[], bytes], str, str, str]] = [
        (
            "csv",
            (lambda: csv) if csv is not None else (lambda: csv_bytes(table)),
            CSV_MIME,
            label,
            ":material/download:",
        )
    ]
    if xlsx:
        files.append(
            (
                "xlsx",
                lambda: xlsx_bytes(table, watermark, sheet=what),
                XLSX_MIME,
                t("dl_xlsx", lang),
                ":material/table_view:",
            )
        )
    row = where.container(horizontal=True) if len(files) > 1 else where  # side by side
    for fmt, make, mime, text, icon in files:
        name = f"{file_stem}.{fmt}"
        # the tooltip on the XLSX button only: a button with one is drawn twice in the page
        # (Streamlit's hidden copy), and the CSV buttons' labels are what tests look for
        help_ = (
            t("dl_help", lang) + " " + t("dl_xlsx_help", lang, line=watermark.line(lang))
            if fmt == "xlsx"
            else None
        )
        row.download_button(
            text,
            _deferred(
                make,
                write,
                page=page,
                what=what,
                fmt=fmt,
                file_name=name,
                rows=len(table),
                filters=filters,
                watermark=watermark,
            ),
            file_name=name,
            mime=mime,
            key=f"dl_{page}_{what}_{fmt}",
            help=help_,
            on_click="ignore",
            icon=icon,
        )
