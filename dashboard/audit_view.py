"""审计日志 · Audit log page, the view model (no Streamlit): the search's state in the URL,
the table's columns and the CSV file. The search itself is :func:`store.access.search_audit`
inside a transaction scoped for the auditor (only that role's scope reads ``audit_log``)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dashboard import url_state
from dashboard.url_state import BadParam
from store import vocab
from store.sheets import guard_text_columns
from store.vocab import Lang

#: Most rows one search shows (and puts in the CSV).
LIMIT = 2000
#: Days the default period covers, ending today.
DEFAULT_DAYS = 7


@dataclass(frozen=True)
class AuditQuery:
    """One search: days ``[start, end]`` (inclusive, local), a login, an action, a text."""

    start: dt.date
    end: dt.date
    login: str = ""
    action: str = ""
    text: str = ""

    @property
    def end_exclusive(self) -> dt.date:
        return self.end + dt.timedelta(days=1)

    def params(self) -> dict[str, str]:
        """The URL parameters of this search (empty ones left out)."""
        out = {"from": self.start.isoformat(), "to": self.end.isoformat()}
        for key, value in (("login", self.login), ("action", self.action), ("q", self.text)):
            if value:
                out[key] = value
        return out


def default_query(today: dt.date) -> AuditQuery:
    """The last :data:`DEFAULT_DAYS` days up to today, everything."""
    return AuditQuery(today - dt.timedelta(days=DEFAULT_DAYS - 1), today)


def _text(raw: str) -> str:
    value = raw.strip()
    if len(value) > 200 or "\x00" in value:
        raise ValueError(raw)
    return value


def parse_query(params: Mapping[str, str], *, today: dt.date) -> tuple[AuditQuery, list[BadParam]]:
    """The search a URL asks for; unusable parameters are reported and replaced by the
    default (an action must be one of the audit log's; dates ISO, start not after end)."""
    d = default_query(today)
    fields, bad = url_state.read_params(
        params,
        [
            ("from", "start", url_state.date, d.start.isoformat()),
            ("to", "end", url_state.date, d.end.isoformat()),
            ("login", "login", _text, ""),
            ("action", "action", url_state.choice(vocab.AUDIT_ACTIONS), ""),
            ("q", "text", _text, ""),
        ],
    )
    q = AuditQuery(**{**d.__dict__, **fields})
    if q.start > q.end:
        bad.append(BadParam("from", q.start.isoformat(), d.start.isoformat()))
        q = AuditQuery(d.start, d.end, q.login, q.action, q.text)
    return q, bad


COLUMNS = ("at", "login", "user_role", "scope_code", "action", "ok", "detail", "client")
_HEADERS = {
    "at": "au_col_at",
    "login": "au_col_login",
    "user_role": "au_col_role",
    "scope_code": "au_col_scope",
    "action": "au_col_action",
    "ok": "au_col_ok",
    "detail": "au_col_detail",
    "client": "au_col_client",
}


def table(rows: list[dict[str, Any]], lang: Lang, timezone: str) -> pd.DataFrame:
    """The rows as shown: local time, role and action labels, the detail as JSON text."""
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    if frame.empty:
        return frame
    frame["at"] = pd.to_datetime(frame["at"], utc=True).dt.tz_convert(timezone)
    frame["at"] = frame["at"].dt.strftime("%Y-%m-%d %H:%M:%S")
    frame["user_role"] = [
        vocab.label("user_role", r, lang) if r else "" for r in frame["user_role"]
    ]
    frame["action"] = [vocab.label("audit_action", a, lang) for a in frame["action"]]
    frame["detail"] = [
        json.dumps(d, ensure_ascii=False, sort_keys=True) if d else "" for d in frame["detail"]
    ]
    return frame


def headers(lang: Lang) -> dict[str, str]:
    """Column name → its heading in ``lang``."""
    from dashboard.i18n import t

    return {c: t(k, lang) for c, k in _HEADERS.items()}


def csv_bytes(frame: pd.DataFrame, lang: Lang) -> bytes:
    """The table as UTF-8 CSV with a byte-order mark (Excel opens the Chinese right), text
    cells guarded against formula injection (an attacker's login or detail text)."""
    table = guard_text_columns(frame.rename(columns=headers(lang)))
    return table.to_csv(index=False).encode("utf-8-sig")
