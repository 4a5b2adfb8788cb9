"""Who made a file and when: the watermark every briefing and export carries (issue 7).

A watermark names the user (display name and login) and the moment the file was made, shown
in Beijing time whatever the machine's zone. It deters passing a file on and tells, when one
turns up where it should not, whose copy it was; the audit row written with it
(:func:`store.access.audit`, actions ``briefing`` and ``export``) says what the file held.

Where it goes per format: the briefing PDF and Word file (``dashboard/briefing/render.py``),
GeoJSON, GeoPackage and XLSX exports (``loaders/export.py``), the analyses' GeoJSON and
Parquet files (``geo/output.py``) and the dashboard's XLSX downloads
(``dashboard/downloads.py``). CSV and Open311 JSON have no place for it that every reader
ignores; their audit row holds the file's SHA-256 instead.

The pieces every writer shares live here, so that one file format carries the watermark
one way whoever writes it: :data:`WATERMARK_KEY` (the GeoJSON foreign member, the Parquet
key, the GeoPackage metadata prefix), :func:`watermark_fields` and :func:`finish_xlsx`.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import re
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, text

from store.errors import UserInputError
from store.vocab import Lang

#: The watermark's clock: Beijing time (UTC+8, no daylight saving), named as such.
BEIJING = ZoneInfo("Asia/Shanghai")

#: Longest user or login a watermark takes (as a login name, ``store.access.LOGIN_RE``).
MAX_NAME = 64


def _check_name(value: str, what: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_NAME:
        raise UserInputError(
            f"水印的{what}须为1–{MAX_NAME}个字符 / the watermark's {what} must be 1–{MAX_NAME} "
            f"characters, got {value!r}"
        )
    if any(unicodedata.category(c).startswith("C") for c in value):
        raise UserInputError(
            f"水印的{what}含控制字符 / the watermark's {what} contains control characters: "
            f"{value!r}"
        )
    return value


@dataclass(frozen=True)
class Watermark:
    """A file's maker and time.

    Attributes
    ----------
    user
        Who, as shown (a dashboard user's display name, else the login again).
    login
        The login (a dashboard user's, or the operating-system user of a command).
    at
        When the file was made (timezone-aware).
    """

    user: str
    login: str
    at: dt.datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "user", _check_name(self.user, "用户 / user"))
        object.__setattr__(self, "login", _check_name(self.login, "登录名 / login"))
        if self.at.tzinfo is None:
            raise ValueError("Watermark.at must be timezone-aware")

    @classmethod
    def now(cls, login: str, user: str | None = None) -> Watermark:
        """A watermark for ``login`` (shown as ``user``, default the login) made now."""
        return cls(user or login, login, dt.datetime.now(BEIJING))

    @property
    def beijing(self) -> str:
        """The time in Beijing, to the minute: ``2026-11-30 21:45``."""
        return self.at.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")

    @property
    def who(self) -> str:
        """``张三（zhangsan）``, or the login alone when it is also the name shown."""
        return self.login if self.user == self.login else f"{self.user}（{self.login}）"

    def mark(self, lang: Lang = "zh") -> str:
        """The short text repeated across a page: who and when."""
        zone = "北京时间" if lang == "zh" else "Beijing time"
        return f"{self.who} {self.beijing} {zone}"

    def line(self, lang: Lang = "zh") -> str:
        """The sentence in a footer: made for whom, when, not to be passed on."""
        if lang == "zh":
            return f"{self.who} 于 {self.beijing}（北京时间）生成 · 内部资料，请勿外传"
        return f"Made for {self.who} at {self.beijing} Beijing time · internal, do not pass on"

    def bilingual(self) -> str:
        """Both languages, for files read in either (export metadata)."""
        return f"{self.line('zh')} / {self.line('en')}"

    def as_dict(self) -> dict[str, Any]:
        """The watermark as JSON-ready fields (the export metadata and the audit detail)."""
        return {
            "user": self.user,
            "login": self.login,
            "at": self.at.astimezone(BEIJING).isoformat(timespec="seconds"),
        }


def os_user() -> str:
    """The operating-system user running this process (``getpass.getuser``), or
    ``uid<N>`` when the system has no name for it (a container with a bare uid)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


def for_command(conn: Connection, name: str | None = None) -> Watermark:
    """The watermark of a command-line run: ``name`` (``--user``; default the OS user),
    shown with its display name when it is a dashboard login."""
    login = _check_name(name if name is not None else os_user(), "用户 / user")
    shown = conn.execute(
        text("SELECT display_name FROM app_user WHERE login = :login"), {"login": login}
    ).scalar()
    return Watermark.now(login, shown)


def for_service(service: str = "dashboard") -> Watermark:
    """The watermark of a process without a logged-in user: ``service`` as the name shown,
    the OS user running it as the login."""
    return Watermark.now(os_user(), service)


# --- in files ------------------------------------------------------------------------------

#: Name of the GeoJSON foreign member and of the Parquet key-value metadata entry, and the
#: prefix of the GeoPackage metadata items.
WATERMARK_KEY = "gridone_watermark"


def watermark_fields(watermark: Watermark) -> dict[str, str]:
    """What a file's metadata says of its watermark: user, login, time (ISO, +08:00) and
    the sentence in both languages."""
    return {**watermark.as_dict(), "text": watermark.bilingual()}


def _header_footer_text(value: str) -> str:
    """Text for a SpreadsheetML header or footer: ``&`` starts a code there."""
    return escape(value.replace("&", "&&"))


def finish_xlsx(path: Path, watermark: Watermark, empty_header: list[str] | None = None) -> None:
    """Put into an XLSX file (GDAL's XLSX driver's) what that driver cannot write.

    * The watermark: author (``dc:creator``), last modified by, description and creation
      time in ``docProps/core.xml``; the sheet's printed header (Chinese) and footer
      (English, page numbers), after ``sheetData`` as the schema orders them.
    * ``empty_header``: GDAL writes an empty sheet for an empty table; a user filling in
      the template (and our reader) needs the header row, so it is put in as inline
      strings.
    """
    sheet, core = "xl/worksheets/sheet1.xml", "docProps/core.xml"
    with zipfile.ZipFile(path) as zin:
        parts = {n: zin.read(n) for n in zin.namelist()}
    xml = parts[sheet].decode("utf-8")
    if empty_header is not None:
        cells = "".join(f'<c t="inlineStr"><is><t>{escape(c)}</t></is></c>' for c in empty_header)
        xml = re.sub(
            r"<sheetData>\s*</sheetData>|<sheetData/>",
            f'<sheetData><row r="1">{cells}</row></sheetData>',
            xml,
        )
    head = _header_footer_text(watermark.line("zh"))
    foot = _header_footer_text(watermark.line("en"))
    header_footer = (
        f"<headerFooter><oddHeader>&amp;C{head}</oddHeader>"
        f"<oddFooter>&amp;L{foot}&amp;R&amp;P / &amp;N</oddFooter></headerFooter>"
    )
    parts[sheet] = xml.replace("</sheetData>", "</sheetData>" + header_footer, 1).encode("utf-8")
    created = watermark.at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    props = (
        f"<dc:creator>{escape(watermark.who)}</dc:creator>"
        f"<cp:lastModifiedBy>{escape(watermark.login)}</cp:lastModifiedBy>"
        f"<dc:description>{escape(watermark.bilingual())}</dc:description>"
        f'<dcterms:created xsi:type="dcterms:W3CDTF">{created}</dcterms:created>'
    )
    core_xml = parts[core].decode("utf-8")
    parts[core] = core_xml.replace(
        "</cp:coreProperties>", props + "</cp:coreProperties>", 1
    ).encode("utf-8")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for name, data in parts.items():
            zout.writestr(name, data)
