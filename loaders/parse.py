"""Parsing the text of a table's fields into typed columns, problems collected by row.

Every value read from a file arrives as text. :func:`parse_fields` turns the columns of a
kind into their types (text, int, float, timestamp, date, bool, vocabulary code) in a few
vectorised passes over a whole chunk; a value that does not parse becomes a
:class:`~loaders.report.RowProblem` naming the field, the value and a bilingual reason,
never an exception, so that one bad cell costs its row and not the file.

What the street offices' files hold, and what is done with it:

* times with any common offset (``+08``, ``+0800``, ``+08:00``, ``Z``, `` UTC``,
  ``GMT+8``, ``UTC+08:00``) are converted to UTC; times without one are read in the
  configured time zone — row by row, so a column may mix both;
* Chinese dates and times (``2026年3月1日 8时30分``), dotted and slashed dates
  (``2026.3.1 8:30``, ``2026/3/1``) and full-width digits (``２０２６``) are read;
* ``03/04/2026`` is read as day/month or month/day only when another value of the column
  decides which (``25/03/2026``); otherwise it is a row problem, never a guess;
* ``inf``, ``nan``, integers that do not fit the column they are written to (a smallint
  ``floors``) and codes that Excel turned into ``1.23457E+17`` are row problems, not
  database errors or silent NULLs;
* NUL characters (which PostgreSQL text cannot hold) and spreadsheet formulas without a
  saved result are row problems naming the field;
* a text cell guarded against CSV formula injection by the exporter (``'=SUM(…)``) loses
  its guard, so that an export loads back exactly.

Split out of :mod:`loaders.engine` so the parsing rules can be tested without a database.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Integer, SmallInteger

from loaders.kinds import Kind
from loaders.read import UNSAVED_FORMULA
from loaders.report import RowProblem
from store import vocab
from store.models import Base


class _Problems:
    """Problems by row index, the first per row kept.

    ``unit`` says what ``lines`` count (``"line"``, ``"row"``, ``"feature"``,
    ``"record"``, see :data:`loaders.report.UNITS`); empty: judged from the file's name."""

    def __init__(self, source: str, lines: np.ndarray, unit: str = "") -> None:
        self.source = source
        self.lines = lines
        self.unit = unit
        self.by_row: dict[int, RowProblem] = {}

    def add(
        self, rows: np.ndarray | list[int], field: str | None, values: object, reason: str
    ) -> None:
        vals = list(values) if isinstance(values, list | np.ndarray | pd.Series) else None
        for k, row in enumerate(np.asarray(rows, dtype=int).tolist()):
            if row not in self.by_row:
                value = None if vals is None else vals[k]
                self.by_row[row] = RowProblem(
                    self.source,
                    int(self.lines[row]),
                    field,
                    None if value is None else str(value)[:200],
                    reason,
                    self.unit,
                )

    def mask(self, n: int) -> np.ndarray:
        bad = np.zeros(n, dtype=bool)
        bad[list(self.by_row)] = True
        return bad


_TRUE = {"1", "true", "t", "yes", "y", "是", "有", "对"}
_FALSE = {"0", "false", "f", "no", "n", "否", "无", "不"}


def _vocab_lookup(vocabulary: str) -> dict[str, str]:
    lookup = {}
    for code, (zh, en) in vocab.LABELS[vocabulary].items():
        for word in (code, zh, en):
            lookup[word.casefold()] = code
    return lookup


def _nfkc(text: pd.Series) -> pd.Series:
    """Full-width digits, letters, colons and spaces (``２０２６：３０``) as ASCII; only the
    values that hold any non-ASCII character are touched."""
    wide = text.str.contains(r"[^\x00-\x7f]", regex=True).fillna(False).to_numpy(dtype=bool)
    if not wide.any():
        return text
    out = text.copy()
    out[wide] = text[wide].str.normalize("NFKC").str.strip()
    return out


# --- reasons ------------------------------------------------------------------------------

WHY_TIME = "不是有效时间（如 2026-11-20 08:30）/ not a valid time, e.g. 2026-11-20 08:30"
WHY_DATE = "不是有效日期（如 2026-11-20）/ not a valid date, e.g. 2026-11-20"
WHY_DAY_MONTH = (
    "日月顺序不明，请写成年-月-日，如 2026-04-03 / day and month order ambiguous; write "
    "year-month-day, e.g. 2026-04-03"
)
WHY_DAY_MONTH_MIXED = (
    "本列既有“日/月”也有“月/日”顺序，这一行无法判断；请写成年-月-日，如 2026-04-03 / the "
    "column mixes day/month and month/day order, so this one cannot be read; write "
    "year-month-day, e.g. 2026-04-03"
)
WHY_WHOLE = "不是整数 / not a whole number"
WHY_NUMBER = "不是数字 / not a number"
WHY_NOT_FINITE = "inf、nan 不是可用的数值 / inf and nan are not usable numbers"
WHY_EXCEL_E = (
    "像被 Excel 改成科学计数法 / looks like Excel turned it into scientific notation; format "
    "the column as text and export again"
)
WHY_NUL = (
    "含有空字符 (NUL, \\x00)，文件可能已损坏；请删去该字符或重新导出 / contains a NUL "
    "character (\\x00): the file may be damaged; remove it or export again"
)
WHY_FORMULA = (
    "公式没有计算结果 / formula without a saved value; open and save in Excel (or WPS) and "
    "load it again"
)


def _why_range(lo: int, hi: int) -> str:
    return f"超出该列允许的范围 {lo}～{hi} / out of the column's range {lo} to {hi}"


# --- times and dates ----------------------------------------------------------------------

# Already canonical: the vectorised ISO 8601 parser reads these, no Python per value.
_ISO_LOCAL = r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?"
_ISO_ZONED = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)"

_CHINESE = re.compile(r"[年月日号时時点點分秒午晚早凌]")
_CN_DATE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?")
_CN_TIME = re.compile(
    r"(上午|早上|凌晨|中午|下午|晚上)?\s*(\d{1,2})\s*[时時点點]"
    r"(?:\s*(半)|\s*(\d{1,2})\s*分(?:\s*(\d{1,2})\s*秒)?)?"
)
_YMD = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_DMY = re.compile(r"(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})")
# what may follow a date: a time, then an offset (only after a time)
_TAIL = re.compile(
    r"""(?:(?:T|\s+)(?P<h>\d{1,2})(?::(?P<mi>\d{1,2}))?(?::(?P<s>\d{1,2})(?:[.,](?P<f>\d{1,9}))?)?)?
    \s*(?:(?P<utc>Z|UTC|GMT)|(?:UTC|GMT)?\s*(?P<sign>[+-])(?P<oh>\d{1,2})(?::?(?P<om>\d{2}))?)?""",
    re.VERBOSE | re.IGNORECASE,
)
# offsets written as words that the fall-back parser (dateutil) would read backwards
# (POSIX: "GMT+8" is eight hours *west*): never handed to it
_POSIX_SIGN = r"(?i)(?:GMT|UTC)\s*[+-]"


class _DayMonth(NamedTuple):
    """``a/b/year`` with the order of day and month still to be decided by the column."""

    a: int
    b: int
    year: int
    tail: str


def _cn_time(m: re.Match[str]) -> str:
    """``下午3时30分`` → `` 15:30:00``."""
    part, hour, half, minute, second = m.groups()
    h = int(hour)
    if part in ("下午", "晚上") and h < 12:
        h += 12
    elif part in ("凌晨", "上午", "早上") and h == 12:
        h = 0
    mi = 30 if half else int(minute or 0)
    return f" {h:02d}:{mi:02d}:{int(second or 0):02d}"


def _with_tail(year: int, month: int, day: int, tail: str) -> str | None:
    """A canonical ``YYYY-MM-DD[ HH:MM:SS[.f][±HH:MM]]`` for a date and what follows it,
    or None when the rest is no time (and offset) this module reads."""
    t = _TAIL.fullmatch(tail)
    if t is None:
        return None
    zoned = t["utc"] is not None or t["sign"] is not None
    if zoned and t["h"] is None:
        return None  # an offset without a time ("2026-03-01+08") is not a thing people write
    text = f"{year:04d}-{month:02d}-{day:02d}"
    if t["h"] is not None:
        text += f" {int(t['h']):02d}:{int(t['mi'] or 0):02d}:{int(t['s'] or 0):02d}"
        if t["f"]:
            text += "." + t["f"]
    if t["utc"] is not None:
        text += "+00:00"
    elif t["sign"] is not None:
        oh, om = int(t["oh"]), int(t["om"] or 0)
        if oh > 14 or om > 59:
            return None
        text += f"{t['sign']}{oh:02d}:{om:02d}"
    return text


def _canonical_time(value: str) -> str | _DayMonth | None:
    """One value that is not ISO 8601 already, rewritten as canonical ISO text — or, for
    ``03/04/2026``, its parts for the column to decide; None when not recognised."""
    v = unicodedata.normalize("NFKC", value).strip()
    if _CHINESE.search(v):
        v = _CN_DATE.sub(lambda m: f"{m[1]}-{m[2]}-{m[3]} ", v, count=1)
        v = _CN_TIME.sub(_cn_time, v, count=1).rstrip()
    m = _YMD.match(v)
    if m:
        return _with_tail(int(m[1]), int(m[2]), int(m[3]), v[m.end() :])
    m = _DMY.match(v)
    if m and _TAIL.fullmatch(v[m.end() :]):
        return _DayMonth(int(m[1]), int(m[2]), int(m[3]), v[m.end() :])
    return None


def _time_texts(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Canonical ISO text of each value (NA where not recognised) and, where a value is a
    day/month order the column does not decide, the reason it is refused (else None).

    ISO 8601 values pass untouched (the usual case, vectorised); the others are rewritten
    one distinct value at a time. ``a/b/yyyy`` is day/month when some value of the column
    has ``a`` > 12, month/day when some has ``b`` > 12; when nothing decides, or the column
    shows both orders, a value with ``a`` ≠ ``b`` that both orders could read is refused.
    """
    text = raw.astype("string")
    present = text.notna().to_numpy()
    fast = text.str.fullmatch(f"(?:{_ISO_LOCAL})|(?:{_ISO_ZONED})").fillna(False).to_numpy(bool)
    canon = text.where(fast)
    why = pd.Series(None, index=raw.index, dtype=object)
    slow = present & ~fast
    if not slow.any():
        return canon, why
    rewritten = {v: _canonical_time(v) for v in pd.unique(text[slow].to_numpy(dtype=object))}
    rows = np.flatnonzero(slow)
    results = [rewritten[v] for v in text.iloc[rows].tolist()]
    day_month = [
        (i, r) for i, r in zip(rows.tolist(), results, strict=True) if isinstance(r, _DayMonth)
    ]
    day_first = any(r.a > 12 >= r.b for _, r in day_month)
    month_first = any(r.b > 12 >= r.a for _, r in day_month)
    out = canon.to_numpy(dtype=object, na_value=None)
    for i, r in zip(rows.tolist(), results, strict=True):
        if isinstance(r, str):
            out[i] = r
    for i, r in day_month:
        if r.a == r.b or r.a > 12 or r.b > 12:
            day, month = (r.a, r.b) if r.a > 12 or r.a == r.b else (r.b, r.a)
        elif day_first and not month_first:
            day, month = r.a, r.b
        elif month_first and not day_first:
            day, month = r.b, r.a
        else:
            why.iloc[i] = WHY_DAY_MONTH_MIXED if day_first else WHY_DAY_MONTH
            continue
        out[i] = _with_tail(r.year, month, day, r.tail)
    return pd.Series(out, index=raw.index, dtype="string"), why


def _fallback(text: pd.Series) -> pd.Series:
    """Values in no form :func:`_canonical_time` knows (``1 Mar 2026``), by pandas' general
    parser: naive results as they are, zoned ones in UTC (object Series of Timestamps)."""
    text = text[~text.str.contains(_POSIX_SIGN, regex=True).fillna(False)]
    if text.empty:
        return pd.Series(dtype=object)
    try:
        parsed = pd.to_datetime(text, errors="coerce", format="mixed")
        return parsed.astype(object)
    except (ValueError, TypeError, OverflowError):  # naive and zoned mixed
        out = {}
        for idx, v in text.items():
            try:
                out[idx] = pd.Timestamp(str(v))
            except (ValueError, TypeError, OverflowError):
                out[idx] = pd.NaT
        return pd.Series(out, dtype=object)


def _parse_timestamps(raw: pd.Series, tz: str) -> tuple[pd.Series, pd.Series]:
    """UTC times and the day/month reasons of :func:`_time_texts`. A time with an offset
    is converted; a time without one is read in ``tz``, row by row."""
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us, UTC]")
    canon, why = _time_texts(raw)
    zoned = canon.str.fullmatch(_ISO_ZONED).fillna(False).to_numpy(bool)
    local = canon.notna().to_numpy() & ~zoned
    if zoned.any():
        out[zoned] = pd.to_datetime(
            canon[zoned], errors="coerce", utc=True, format="ISO8601"
        ).astype("datetime64[us, UTC]")
    naive = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us]")
    if local.any():
        naive[local] = pd.to_datetime(canon[local], errors="coerce", format="ISO8601").astype(
            "datetime64[us]"
        )
    rest = raw.notna().to_numpy() & canon.isna().to_numpy() & why.isna().to_numpy()
    if rest.any():
        for idx, ts in _fallback(raw[rest].astype("string")).items():
            if pd.isna(ts):
                continue
            if ts.tzinfo is not None:
                out[idx] = ts.tz_convert("UTC")
            else:
                naive[idx] = ts
    has_naive = naive.notna().to_numpy()
    if has_naive.any():
        out[has_naive] = (
            naive[has_naive]
            .dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
            .dt.tz_convert("UTC")
            .astype("datetime64[us, UTC]")
        )
    return out, why


def _parse_dates(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Dates as written (a time or an offset after them is ignored) as datetime64, and the
    day/month reasons of :func:`_time_texts`."""
    canon, why = _time_texts(raw)
    out = pd.to_datetime(canon.str.slice(0, 10), errors="coerce", format="%Y-%m-%d").astype(
        "datetime64[us]"
    )
    rest = raw.notna().to_numpy() & canon.isna().to_numpy() & why.isna().to_numpy()
    if rest.any():
        for idx, ts in _fallback(raw[rest].astype("string")).items():
            if not pd.isna(ts):
                out[idx] = pd.Timestamp(ts.date())
    return out, why


# --- numbers ------------------------------------------------------------------------------

_INT64 = (-(2**63), 2**63 - 1)
_SQL_INT_RANGES = (
    (SmallInteger, (-(2**15), 2**15 - 1)),
    (BigInteger, _INT64),
    (Integer, (-(2**31), 2**31 - 1)),  # after its subclasses above
)
_NOT_FINITE = r"(?i)[+-]?(?:inf(?:inity)?|nan)"


def int_range(kind: Kind, name: str) -> tuple[int, int]:
    """The values the column an int field of ``kind`` is written to can hold: from the
    SQL type of that column in :mod:`store.models` (``floors`` and the ``n_*`` counts are
    smallint), else the staging column's bigint."""
    table = Base.metadata.tables.get(kind.table)
    if table is not None:
        for column, expr in kind.columns.items():
            if column in table.c and re.search(rf"\bs\.{re.escape(name)}\b", expr):
                for sqltype, bounds in _SQL_INT_RANGES:
                    if isinstance(table.c[column].type, sqltype):
                        return bounds
    return _INT64


def _parse_ints(text: pd.Series, lo: int, hi: int) -> tuple[pd.Series, dict[str, np.ndarray]]:
    """Whole numbers within ``lo``–``hi``; the rows refused, by reason. Digit strings are
    read exactly (no float in between: 20 digits stay 20 digits); ``12.0`` and ``1e3``
    are whole numbers too."""
    n = len(text)
    out = pd.Series(pd.NA, index=text.index, dtype="Int64")
    present = text.notna().to_numpy()
    digits = text.str.fullmatch(r"[+-]?\d+").fillna(False).to_numpy(bool)
    short = digits & (text.str.len().fillna(0).to_numpy() <= 18)  # fits int64 whatever it is
    out[short] = text[short].astype("int64")
    out_of_range = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(digits & ~short).tolist():
        value = int(text.iloc[i])
        if lo <= value <= hi:
            out.iloc[i] = value
        else:
            out_of_range[i] = True
    other = present & ~digits
    not_finite = np.zeros(n, dtype=bool)
    not_whole = np.zeros(n, dtype=bool)
    if other.any():
        num = pd.to_numeric(text[other].astype(object), errors="coerce").to_numpy(dtype=float)
        finite = np.isfinite(num)
        whole = finite & (num == np.round(num)) & (np.abs(num) < 2**53)
        rows = np.flatnonzero(other)
        out.iloc[rows[whole]] = num[whole].astype("int64")
        words = text[other].str.fullmatch(_NOT_FINITE).fillna(False).to_numpy(bool)
        not_finite[rows[~finite & (words | ~np.isnan(num))]] = True
        not_whole[rows[~whole & ~not_finite[rows]]] = True
    values = out.to_numpy(dtype="float64", na_value=np.nan)  # only to compare with bounds
    with np.errstate(invalid="ignore"):
        out_of_range |= ~np.isnan(values) & ((values < lo) | (values > hi))
    out[out_of_range] = pd.NA
    return out, {
        WHY_WHOLE: not_whole,
        WHY_NOT_FINITE: not_finite,
        _why_range(lo, hi): out_of_range,
    }


def _parse_floats(text: pd.Series) -> tuple[pd.Series, dict[str, np.ndarray]]:
    """Finite numbers; the rows refused, by reason."""
    num = pd.to_numeric(text.astype(object), errors="coerce").astype("float64")
    present = text.notna().to_numpy()
    values = num.to_numpy()
    words = text.str.fullmatch(_NOT_FINITE).fillna(False).to_numpy(bool)
    not_finite = present & (np.isinf(values) | (np.isnan(values) & words))
    not_number = present & np.isnan(values) & ~words
    return num.where(~(not_finite | not_number)), {
        WHY_NUMBER: not_number,
        WHY_NOT_FINITE: not_finite,
    }


# --- text ---------------------------------------------------------------------------------

#: A value the exporter guarded with a leading ``'`` (OWASP CSV injection advice): one
#: ``'`` comes off. Also ``''=x``, the guard of a value that itself began ``'=`` (the
#: exporter guards ``'*[=+-@\t\r]``), so that every text value loads back as it was.
_GUARDED = r"'+[=+\-@\t\r]"
#: A number as Excel shows a long code it took for one: ``1.23457E+17``.
_EXCEL_E = r"[+-]?\d+(?:\.\d+)?[eE]\+?\d{1,3}"


def _is_code(name: str) -> bool:
    """Codes and phone numbers: text that Excel must not take for a number."""
    return name.endswith(("code", "phone"))


def parse_fields(frame: pd.DataFrame, kind: Kind, problems: _Problems, tz: str) -> pd.DataFrame:
    """Typed columns for ``kind.fields`` present in ``frame``; unparseable values become
    row problems naming the field and the value."""
    out = pd.DataFrame(index=frame.index)
    for name, ftype in kind.fields.items():
        if name not in frame:
            continue
        text = frame[name].astype("string").str.strip()
        text = text.where(text.notna() & (text != ""))
        raw = text.astype(object).where(text.notna(), None)
        present = text.notna().to_numpy()
        refused: dict[str, np.ndarray] = {}
        shown = raw  # the values named in the problems
        nul = text.str.contains("\x00", regex=False).fillna(False).to_numpy(bool)
        if nul.any():
            formula = text.str.startswith(UNSAVED_FORMULA).fillna(False).to_numpy(bool)
            shown = raw.where(~formula, text.str.slice(len(UNSAVED_FORMULA)))
            shown = shown.where(~(nul & ~formula), text.str.replace("\x00", "\\x00"))
            refused[WHY_FORMULA] = formula
            refused[WHY_NUL] = nul & ~formula
            text = text.where(~nul)
            raw = raw.where(~nul, None)
        if ftype != "text":
            text = _nfkc(text)
        if ftype == "text":
            guarded = text.str.match(_GUARDED).fillna(False).to_numpy(bool)
            if guarded.any():
                raw = raw.where(~guarded, text.str.slice(1))
            if _is_code(name):
                refused[WHY_EXCEL_E] = text.str.fullmatch(_EXCEL_E).fillna(False).to_numpy(bool)
            out[name] = raw.astype(object)
        elif ftype == "int":
            out[name], reasons = _parse_ints(text, *int_range(kind, name))
            refused |= reasons
        elif ftype == "float":
            out[name], reasons = _parse_floats(text)
            refused |= reasons
        elif ftype == "timestamp":
            stamps, why = _parse_timestamps(text, tz)
            years = stamps.dt.year
            bad = (
                text.notna().to_numpy()
                & (stamps.isna() | (years < 2000) | (years > 2100)).to_numpy()
            )
            out[name] = stamps.where(~bad)
            _add_reasons(refused, why, bad, WHY_TIME)
        elif ftype == "date":
            parsed, why = _parse_dates(text)
            bad = (
                text.notna().to_numpy()
                & (parsed.isna() | (parsed.dt.year < 1949) | (parsed.dt.year > 2100)).to_numpy()
            )
            # blank cells too: NaT is not a date (copy_frame refuses it)
            out[name] = parsed.dt.date.where(~bad & parsed.notna().to_numpy(), None).astype(object)
            _add_reasons(refused, why, bad, WHY_DATE)
        elif ftype == "bool":
            folded = text.str.casefold().astype(object)
            val = folded.map(lambda v: True if v in _TRUE else False if v in _FALSE else None)
            refused["应为 是/否 / expected yes or no"] = (
                text.notna().to_numpy() & val.isna().to_numpy()
            )
            out[name] = val.astype("boolean")
        elif ftype.startswith("vocab:"):
            vocabulary = ftype.split(":", 1)[1]
            val = text.str.casefold().astype(object).map(_vocab_lookup(vocabulary))
            allowed = "、".join(zh for zh, _ in vocab.LABELS[vocabulary].values())
            refused[f"未知取值，可用 / unknown value; allowed: {allowed}"] = (
                text.notna().to_numpy() & val.isna().to_numpy()
            )
            out[name] = val.astype(object)
        else:  # pragma: no cover - kinds are data of this module
            raise ValueError(f"unknown field type {ftype}")
        for why_text, bad in refused.items():
            if (bad & present).any():
                rows = np.flatnonzero(bad & present)
                problems.add(rows, name, shown.iloc[rows].tolist(), why_text)
    for name in kind.required:
        if name in out:
            missing = np.flatnonzero(out[name].isna().to_numpy() & ~problems.mask(len(out)))
            if len(missing):
                problems.add(missing, name, [None] * len(missing), "必填字段为空 / required")
    return out


def _add_reasons(
    refused: dict[str, np.ndarray], why: pd.Series, bad: np.ndarray, default: str
) -> None:
    """The rows of ``bad`` by reason: the specific one in ``why`` where given, else
    ``default``."""
    specific = why.notna().to_numpy()
    for reason in pd.unique(why[specific].to_numpy(dtype=object)):
        refused[str(reason)] = (why == reason).fillna(False).to_numpy(bool)
    refused[default] = bad & ~specific
