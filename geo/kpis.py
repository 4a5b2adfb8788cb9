"""Incident KPIs (事件考核指标) for any jurisdiction and any period, as of any instant.

Two entry points, one SQL statement underneath (``store.kpi_sql.KPI_FIGURES``):

* :func:`kpis` — every figure of one unit (district, street, community, grid, or the whole
  store), with the category table, the open-overdue list, the 4-hour-rule breaches and the
  change against the previous period: a :class:`KpiReport`.
* :func:`kpis_by_unit` — the same figures for every street (community, grid) at once, in one
  grouped pass: a :class:`UnitKpis` of frames, one row per unit.

Definitions (exact; "T" is the as-of instant, by default the end of the period):

* **Period** ``[start, end)``: local dates (``GRIDONE_TIMEZONE``, Asia/Shanghai), from the
  midnight starting ``start`` to the midnight starting ``end``. When T falls inside the
  period (month to date), the period is cut at T. The **state as of T** of an incident is
  its state after every transition logged before T (``store.kpi_sql``), so a past period's
  figures do not move when incidents are reopened later.
* **Reported** (上报数): incidents reported in the period, in the unit. Counts by category
  (2-digit) and subcategory (4-digit) are of these.
* **Closure rate** (办结率) = reported incidents closed as of T ÷ reported. "Closed" is the
  status ``closed``, whatever the path (rejected reports closed after ``returned``
  included); a reopened incident is open until it is closed again.
* **On-time closure rate** (按期办结率) = cases due that were closed by their deadline ÷
  cases due. The deadline in force is the last approved extension's ``new_due_at`` logged
  before T (``extended_due_at``), else ``due_at``; a case is **due** when that deadline
  lies in the period (and so before T). Closed by the deadline: closed as of T with the
  standing closure at or before the deadline.
* **Open overdue** (超期未办结): open as of T, reported before T, deadline in force before
  T — whenever reported; listed with days overdue = (T − deadline) in days.
* **Handling hours** (办理时长): of the incidents whose standing closure as of T falls in the
  period, closed_at − reported_at in hours; mean and median.
* **Rework rate** (返工率) = reported incidents with a ``reworked`` step before T ÷ reported.
  In the workflow (``store.vocab.WORKFLOW``) a failed review is ``feedback → reworked`` or
  ``verified → reworked``; ``returned`` is something else — a report sent back (rejected as
  invalid, or handed down a tier) — and is counted apart as the **return rate** (退回率).
* **Extension rate** (延期率) = reported incidents with an ``extended`` step before T ÷
  reported.
* **4-hour rule** (重大事件4小时上报): of the reported incidents with severity ≥ the major
  severity (重大, 3), the share with reported_at − occurred_at ≤ 4 h; the others are listed.
* **Tier shares** (层级办结): of the incidents closed in the period, the share whose closing
  step was at each tier. 小事不出网格 = share closed at the grid tier; 大事不出街道 = share
  closed at grid, community or street tier (not by a department).
* **Awaiting review** (待复核): reported incidents whose status as of T is ``feedback``.
* **Repeat rate** (重复发生率) = reported incidents with an earlier incident (any unit) of the
  same subcategory within 30 m (geodesic, on the ellipsoid) reported in the 90 days before
  ÷ reported (``geo.settings.RepeatRule``).
* **Previous period**: for a period of whole calendar months (start and end on the 1st),
  the same number of months before (March → February); otherwise the same number of days
  before. Its T lies as far after (or into) it as T does for the current period.

Rates are ``None`` (NaN in frames) when their denominator is 0, never 0.

How, and how fast. From the sums per street and local day (``store.kpi_summary``,
migration 0004), when they serve the query exactly: a street, a district or the whole
store (not a community or grid), periods and as-of instant on Beijing midnights, the
default 4-hour and repeat rules, and the sums in step with the incidents (the loaders
refresh them; any write not yet refreshed, or a community/grid access scope, sends the
query to the incidents). The incidents open across T and the irregular ones are taken
out of the sums and put back with their state as of T; the median comes from the packed
hours of the days. Every street's KPIs for a district year and the year before: ~0.5 s
(``benchmarks/kpis.py``). Otherwise one statement over the incidents
(``store.kpi_sql.KPI_FIGURES``, also inside :func:`from_incidents`): the incident row's
derived columns give the state as of T for every incident that has not moved since; the
log is read only for the others and for the rework/return steps (an index probe per
incident, or one scan of the log when the query covers a whole district); repeats are
found once for both periods by clustering the window's incidents per subcategory
(``ST_ClusterDBSCAN``) and measuring pairs inside clusters — seconds at district scale.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from geo.settings import AnalyticsSettings, default_settings
from store import kpi_sql, kpi_summary
from store.settings import get_settings
from store.vocab import TIERS

Level = Literal["district", "street", "community", "grid"]
LEVELS: tuple[str, ...] = ("district", "street", "community", "grid")

#: Every scalar figure: name -> (中文, English, kind). Kinds: count, rate (0–1), hours.
FIGURES: dict[str, tuple[str, str, str]] = {
    "reported": ("上报事件数", "Incidents reported", "count"),
    "reported_closed": ("已办结数", "Reported and closed", "count"),
    "closure_rate": ("办结率", "Closure rate", "rate"),
    "awaiting_review": ("待复核数", "Awaiting review", "count"),
    "due": ("到期事件数", "Cases due", "count"),
    "due_on_time": ("按期办结数", "Closed on time", "count"),
    "on_time_rate": ("按期办结率", "On-time closure rate", "rate"),
    "open_overdue": ("超期未办结数", "Open and overdue", "count"),
    "closed": ("本期办结数", "Closed in period", "count"),
    "mean_hours": ("平均办理时长(小时)", "Mean handling time (h)", "hours"),
    "median_hours": ("办理时长中位数(小时)", "Median handling time (h)", "hours"),
    "closed_grid": ("网格层级办结数", "Closed at grid tier", "count"),
    "closed_community": ("社区层级办结数", "Closed at community tier", "count"),
    "closed_street": ("街道层级办结数", "Closed at street tier", "count"),
    "closed_department": ("部门层级办结数", "Closed by a department", "count"),
    "grid_share": ("小事不出网格率", "Closed within the grid", "rate"),
    "street_share": ("大事不出街道率", "Closed within the street", "rate"),
    "reworked": ("返工数", "Reworked", "count"),
    "rework_rate": ("返工率", "Rework rate", "rate"),
    "extended": ("延期数", "Extended", "count"),
    "extension_rate": ("延期率", "Extension rate", "rate"),
    "returned": ("退回数", "Returned", "count"),
    "return_rate": ("退回率", "Return rate", "rate"),
    "major": ("重大事件数", "Major incidents", "count"),
    "major_in_time": ("4小时内上报数", "Reported within 4 h", "count"),
    "major_in_time_rate": ("重大事件4小时上报率", "Majors reported within 4 h", "rate"),
    "repeats": ("重复发生数", "Repeats", "count"),
    "repeat_rate": ("重复发生率", "Repeat rate", "rate"),
}

#: Counts returned by the SQL (the rest of :data:`FIGURES` is derived from them).
_COUNTS = tuple(k for k, (_, _, kind) in FIGURES.items() if kind == "count")

#: rate -> (numerator, denominator(s) summed)
_RATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "closure_rate": (("reported_closed",), ("reported",)),
    "on_time_rate": (("due_on_time",), ("due",)),
    "grid_share": (("closed_grid",), ("closed",)),
    "street_share": (("closed_grid", "closed_community", "closed_street"), ("closed",)),
    "rework_rate": (("reworked",), ("reported",)),
    "extension_rate": (("extended",), ("reported",)),
    "return_rate": (("returned",), ("reported",)),
    "major_in_time_rate": (("major_in_time",), ("major",)),
    "repeat_rate": (("repeats",), ("reported",)),
}

assert tuple(TIERS) == ("grid", "community", "street", "department")  # closed_<tier> above


# --- periods -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """A period ``[start, end)`` of local dates and the instant T its state is taken at.

    ``upto`` is ``min(end, T)`` as an instant: the cohorts (reported, due, closed) end there.
    """

    start: dt.date
    end: dt.date
    as_of: dt.datetime
    tz: str

    @property
    def start_ts(self) -> dt.datetime:
        """Midnight starting ``start``, local time."""
        return _midnight(self.start, self.tz)

    @property
    def end_ts(self) -> dt.datetime:
        """Midnight starting ``end``, local time."""
        return _midnight(self.end, self.tz)

    @property
    def upto(self) -> dt.datetime:
        """End of the cohorts: the period's end, or T when T comes first."""
        return min(self.end_ts, self.as_of)

    def previous(self) -> Period:
        """The previous period of equal length (whole months: the months before), with T
        as far after (or into) it as T is for this one."""
        if self.start.day == 1 and self.end.day == 1:
            months = (self.end.year - self.start.year) * 12 + self.end.month - self.start.month
            p_start = _add_months(self.start, -months)
        else:
            p_start = self.start - (self.end - self.start)
        p_end = self.start
        if self.as_of >= self.end_ts:
            as_of = _midnight(p_end, self.tz) + (self.as_of - self.end_ts)
        else:
            as_of = min(
                _midnight(p_start, self.tz) + (self.as_of - self.start_ts),
                _midnight(p_end, self.tz),
            )
        return Period(p_start, p_end, as_of, self.tz)


def _midnight(day: dt.date, tz: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), ZoneInfo(tz))


def _add_months(day: dt.date, months: int) -> dt.date:
    k = day.year * 12 + (day.month - 1) + months
    return dt.date(k // 12, k % 12 + 1, day.day)


def _as_date(value: dt.date | str, name: str) -> dt.date:
    if isinstance(value, dt.datetime):
        raise TypeError(f"{name} is a date (local day), not a datetime: got {value!r}")
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a date like 2026-03-01, got {value!r}") from None


def make_period(
    start: dt.date | str,
    end: dt.date | str,
    as_of: dt.datetime | dt.date | str | None = None,
    *,
    tz: str | None = None,
) -> Period:
    """Check and build a :class:`Period`.

    Parameters
    ----------
    start, end
        First day and the day after the last (local dates, ``end`` exclusive).
    as_of
        The instant T. A date means the midnight starting it (like ``end``); a naive
        datetime is local time. Default: the end of the period.
    tz
        Local time zone; default ``GRIDONE_TIMEZONE``.
    """
    tz = tz or get_settings().timezone
    d0, d1 = _as_date(start, "start"), _as_date(end, "end")
    if d1 <= d0:
        raise ValueError(f"the period's end ({d1}) must come after its start ({d0})")
    if as_of is None:
        t = _midnight(d1, tz)
    elif isinstance(as_of, dt.datetime):
        t = as_of if as_of.tzinfo else as_of.replace(tzinfo=ZoneInfo(tz))
    elif isinstance(as_of, dt.date):
        t = _midnight(as_of, tz)
    else:
        text = str(as_of)
        t = (
            _midnight(dt.date.fromisoformat(text), tz)
            if len(text) == 10
            else dt.datetime.fromisoformat(text)
        )
        if t.tzinfo is None:
            t = t.replace(tzinfo=ZoneInfo(tz))
    if t <= _midnight(d0, tz):
        raise ValueError(f"as_of ({t.isoformat()}) must come after the period's start ({d0})")
    return Period(d0, d1, t, tz)


# --- units ---------------------------------------------------------------------------------


def unit_level(code: str | None) -> str:
    """Level of a jurisdiction code: ``district`` (``DDDDDD000000``), ``street``
    (``DDDDDDSSS000``), ``community`` (other 12 digits), ``grid`` (15 digits); ``all`` for
    None."""
    if code is None:
        return "all"
    if not code.isdigit() or len(code) not in (12, 15):
        raise ValueError(
            f"unit {code!r} is not a jurisdiction code: 12 digits for a district, street or "
            "community (统计用区划代码), 15 for a grid"
        )
    if len(code) == 15:
        return "grid"
    if code.endswith("000000"):
        return "district"
    return "street" if code.endswith("000") else "community"


def _filters(code: str | None) -> dict[str, str | None]:
    """Bound filter parameters for one unit (street and grid filters use indexes)."""
    level = unit_level(code)
    out: dict[str, str | None] = {"district": None, "street": None, "community": None}
    out["grid"] = None
    if code is None:
        return out
    if level == "district":
        out["district"] = code
    else:
        out["street"] = code[:9] + "000"
    if level == "community":
        out["community"] = code
    if level == "grid":
        out["grid"] = code
    return out


# --- figures -------------------------------------------------------------------------------


def _rate(num: float, den: float) -> float | None:
    return None if not den else float(num) / float(den)


def _with_rates(frame: pd.DataFrame) -> pd.DataFrame:
    """Add every rate of :data:`FIGURES` to a frame of counts, in :data:`FIGURES` order."""
    out = frame.copy()
    for name, (num, den) in _RATES.items():
        n = out[list(num)].sum(axis=1).astype(float)
        d = out[list(den)].sum(axis=1).astype(float)
        out[name] = (n / d).where(d > 0)
    extra = [c for c in out.columns if c not in FIGURES]
    return out[extra + list(FIGURES)]


@dataclass(frozen=True)
class KpiFigures:
    """The scalar figures of one unit in one period (see the module docstring; names and
    labels in :data:`FIGURES`). Rates are shares in [0, 1], or None without a
    denominator."""

    reported: int = 0
    reported_closed: int = 0
    closure_rate: float | None = None
    awaiting_review: int = 0
    due: int = 0
    due_on_time: int = 0
    on_time_rate: float | None = None
    open_overdue: int = 0
    closed: int = 0
    mean_hours: float | None = None
    median_hours: float | None = None
    closed_grid: int = 0
    closed_community: int = 0
    closed_street: int = 0
    closed_department: int = 0
    grid_share: float | None = None
    street_share: float | None = None
    reworked: int = 0
    rework_rate: float | None = None
    extended: int = 0
    extension_rate: float | None = None
    returned: int = 0
    return_rate: float | None = None
    major: int = 0
    major_in_time: int = 0
    major_in_time_rate: float | None = None
    repeats: int | None = 0
    repeat_rate: float | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | None) -> KpiFigures:
        """From a row of SQL counts (None: no incident at all). A count that is NaN (not
        computed) gives None, and so do the rates using it."""
        if row is None:
            return cls()
        values: dict[str, Any] = {k: None if pd.isna(row[k]) else int(row[k]) for k in _COUNTS}
        for k in ("mean_hours", "median_hours"):
            v = row.get(k)
            values[k] = None if v is None or pd.isna(v) else float(v)
        for name, (num, den) in _RATES.items():
            parts = [values[k] for k in (*num, *den)]
            values[name] = (
                None
                if any(v is None for v in parts)
                else _rate(sum(values[k] for k in num), sum(values[k] for k in den))
            )
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """Figures by name, in :data:`FIGURES` order."""
        return {k: getattr(self, k) for k in FIGURES}


@dataclass(frozen=True)
class KpiReport:
    """Every KPI of one unit and period.

    Attributes
    ----------
    unit, level, name
        The unit's code (None: the whole store), level and name.
    period, previous_period
        The period (with its as-of instant T) and the one it is compared with.
    figures, previous
        The scalar figures of both periods.
    categories
        One row per category and subcategory with incidents in either period:
        ``level`` (``category`` / ``subcategory``), ``code``, ``parent_code``,
        ``name_zh``, ``name_en``, ``reported``, ``previous``, ``change``.
    overdue
        Incidents open and past their deadline as of T: ``code``, ``category_code``,
        ``category_zh``, ``category_en``, ``grid_code``, ``street_code``, ``reported_at``,
        ``deadline``, ``status``, ``tier``, ``days_overdue`` (local times), most overdue
        first.
    late_majors
        Major incidents reported in the period later than the 4-hour rule allows:
        ``code``, category columns, ``grid_code``, ``severity``, ``occurred_at``,
        ``reported_at``, ``delay_hours``.
    """

    unit: str | None
    level: str
    name: str | None
    period: Period
    previous_period: Period
    figures: KpiFigures
    previous: KpiFigures
    categories: pd.DataFrame = field(repr=False)
    overdue: pd.DataFrame = field(repr=False)
    late_majors: pd.DataFrame = field(repr=False)

    def comparison(self, lang: Literal["zh", "en"] = "zh") -> pd.DataFrame:
        """One row per figure: ``figure``, ``label``, ``current``, ``previous``, ``change``
        (current − previous; for rates a difference of shares, ×100 = percentage points)."""
        cur, prev = self.figures.as_dict(), self.previous.as_dict()
        rows = []
        for k, (zh, en, kind) in FIGURES.items():
            c, p = cur[k], prev[k]
            rows.append(
                {
                    "figure": k,
                    "label": zh if lang == "zh" else en,
                    "kind": kind,
                    "current": c,
                    "previous": p,
                    "change": None if c is None or p is None else c - p,
                }
            )
        return pd.DataFrame(rows)


@dataclass(frozen=True)
class UnitKpis:
    """KPIs of every unit of a level (:func:`kpis_by_unit`).

    ``current`` and ``previous`` have one row per unit (index ``unit``: the code; a row
    ``None`` gathers incidents with no unit at that level, e.g. outside every grid) with
    ``name`` and every figure of :data:`FIGURES`; ``categories`` is long: ``unit``,
    ``category_code`` (4-digit), ``reported``, ``previous``."""

    level: str
    period: Period
    previous_period: Period
    current: pd.DataFrame
    previous: pd.DataFrame | None
    categories: pd.DataFrame

    def change(self) -> pd.DataFrame:
        """current − previous for every figure, per unit."""
        if self.previous is None:
            raise ValueError("the previous period was not computed (previous=False)")
        cols = list(FIGURES)
        return self.current[cols].astype(float) - self.previous[cols].astype(float)


# --- running the SQL -------------------------------------------------------------------------


def _params(
    period: Period,
    filters: Mapping[str, str | None],
    level: str,
    s: AnalyticsSettings,
    *,
    previous: bool = True,
    repeats: bool = True,
) -> dict[str, Any]:
    prev = period.previous()
    return {
        **filters,
        "level": level,
        "start": period.start_ts,
        "upto": period.upto,
        "as_of": period.as_of,
        "prev_start": prev.start_ts,
        "prev_upto": prev.upto,
        "prev_as_of": prev.as_of,
        "with_previous": previous,
        "with_repeats": repeats,
        # one scan of the log beats an index probe per incident from about a street-year;
        # queries without a street or grid filter (a district, every unit) are that big
        "steps_by_scan": filters.get("street") is None and filters.get("grid") is None,
        "major_severity": s.reporting.major_severity,
        "max_delay_s": s.reporting.max_delay_h * 3600.0,
        "repeat_m": s.repeat.radius_m,
        "repeat_days": s.repeat.window_days,
    }


_SUMMARY_OFF: ContextVar[bool] = ContextVar("kpi_summary_off", default=False)


@contextmanager
def from_incidents() -> Iterator[None]:
    """Inside this block, compute every figure from the incidents and their log
    (``KPI_FIGURES``), never from the per street and day sums: the reference the sums are
    checked against (tests, ``benchmarks/kpis.py``)."""
    token = _SUMMARY_OFF.set(True)
    try:
        yield
    finally:
        _SUMMARY_OFF.reset(token)


def _is_midnight(ts: dt.datetime, tz: str) -> bool:
    return ts.astimezone(ZoneInfo(tz)).time() == dt.time()


def _summary_params(
    conn: Connection,
    period: Period,
    params: Mapping[str, Any],
    s: AnalyticsSettings,
) -> dict[str, Any] | None:
    """Parameters of KPI_SUMMARY_FIGURES when the per street and day sums
    (``store.kpi_summary``) give this query's figures exactly, else None: a street,
    district or whole-store query, periods whose start, end (upto) and as-of instant are
    local midnights of the sums' time zone, the sums made with these settings and in step
    with the incidents."""
    if _SUMMARY_OFF.get() or params["level"] not in ("street", "district", "all"):
        return None
    if params.get("community") is not None or params.get("grid") is not None:
        return None
    if period.tz != kpi_summary.SUMMARY_TZ:
        return None
    prev = period.previous()
    stamps = (period.start_ts, period.upto, period.as_of, prev.start_ts, prev.upto, prev.as_of)
    if not all(_is_midnight(t, period.tz) for t in stamps):
        return None
    rule = {
        "tz": period.tz,
        "major_severity": s.reporting.major_severity,
        "max_delay_s": s.reporting.max_delay_h * 3600.0,
        "repeat_m": s.repeat.radius_m,
        "repeat_days": s.repeat.window_days,
    }
    if not kpi_summary.usable(conn, rule):
        return None
    zone = ZoneInfo(period.tz)

    def day(t: dt.datetime) -> dt.date:
        return t.astimezone(zone).date()

    return {
        **params,
        "d0": period.start,
        "d1": day(period.upto),
        "t_day": day(period.as_of),
        "prev_d0": prev.start,
        "prev_d1": day(prev.upto),
        "prev_t_day": day(prev.as_of),
    }


def _percentile_cont_median(values: np.ndarray) -> float | None:
    """The median exactly as PostgreSQL's ``percentile_cont(0.5)`` computes it: the middle
    value, or ``lo + (hi - lo) * 0.5`` of the two middle ones (not ``(lo + hi) / 2``,
    which can differ in the last bit)."""
    n = len(values)
    if n == 0:
        return None
    k = (n - 1) // 2
    if n % 2:
        return float(np.partition(values, k)[k])
    part = np.partition(values, (k, k + 1))
    lo, hi = float(part[k]), float(part[k + 1])
    return lo + (hi - lo) * 0.5


def _with_medians(conn: Connection, frame: pd.DataFrame, params: Mapping[str, Any]) -> pd.DataFrame:
    """Fill the median hours of KPI_SUMMARY_FIGURES's unit rows from the packed hours of
    the days (KPI_SUMMARY_HOURS) and those of the incidents put back (``fix_hours``)."""
    parts: dict[tuple[int, str], list[np.ndarray]] = {}
    for period, unit, packed in conn.execute(kpi_sql.KPI_SUMMARY_HOURS, dict(params)):
        parts.setdefault((int(period), unit), []).append(np.frombuffer(bytes(packed), dtype=">f8"))
    totals = frame["category_code"].isna()
    medians = []
    for period, unit, fix in frame.loc[totals, ["period", "unit", "fix_hours"]].itertuples(
        index=False
    ):
        chunks = list(parts.get((int(period), unit), []))
        if isinstance(fix, list) and fix:
            chunks.append(np.asarray(fix, dtype=float))
        values = np.concatenate(chunks) if chunks else np.empty(0)
        medians.append(_percentile_cont_median(values))
    out = frame.drop(columns=["stored_closed", "fix_hours"])
    out["median_hours"] = out["median_hours"].astype(object)
    out.loc[totals, "median_hours"] = medians
    return out


def _figures_frame(
    conn: Connection,
    params: Mapping[str, Any],
    *,
    repeats: bool = True,
    period: Period | None = None,
    settings: AnalyticsSettings | None = None,
) -> pd.DataFrame:
    """Run KPI_SUMMARY_FIGURES when the sums serve the query (``period`` and ``settings``
    given, see :func:`_summary_params`), else KPI_FIGURES (JIT off for both), and type the
    columns; without repeats their counts are NaN."""
    fast = (
        _summary_params(conn, period, params, settings)
        if period is not None and settings is not None
        else None
    )
    jit = conn.execute(kpi_sql.JIT_GET).scalar_one()
    conn.execute(kpi_sql.JIT_SET, {"value": "off"})
    try:
        frame = None
        if fast is not None:
            result = conn.execute(kpi_sql.KPI_SUMMARY_FIGURES, fast)
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
            # a stored closure in the period of an incident taken out would be missing
            # from the median: never seen (its last step is at or after T), but checked
            stale_closure = bool((frame["stored_closed"] > 0).any())
            frame = None if stale_closure else _with_medians(conn, frame, fast)
        if frame is None:
            result = conn.execute(kpi_sql.KPI_FIGURES, dict(params))
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    finally:
        conn.execute(kpi_sql.JIT_SET, {"value": jit})
    for c in _COUNTS:
        frame[c] = frame[c].fillna(0).astype("int64")
    for c in ("mean_hours", "median_hours"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype(float)
    if not repeats:
        frame["repeats"] = np.nan
    return frame


def _category_table(cats: pd.DataFrame, counts: pd.DataFrame) -> pd.DataFrame:
    """Category and subcategory rows from subcategory counts (``category_code``,
    ``reported``, ``previous``); parents are the sums of their subcategories."""
    sub = cats[cats["code"].str.len() == 4].merge(
        counts, left_on="code", right_on="category_code", how="inner"
    )
    sub = sub[(sub["reported"] > 0) | (sub["previous"] > 0)]
    top = (
        sub.groupby("parent_code", as_index=False)[["reported", "previous"]]
        .sum()
        .rename(columns={"parent_code": "code"})
        .merge(cats[["code", "parent_code", "name_zh", "name_en"]], on="code")
    )
    top["level"] = "category"
    sub = sub.assign(level="subcategory")
    cols = ["level", "code", "parent_code", "name_zh", "name_en", "reported", "previous"]
    out = pd.concat([top[cols], sub[cols]], ignore_index=True)
    out["sort"] = out["code"].str.ljust(4, "0") + out["level"].map(
        {"category": "0", "subcategory": "1"}
    )
    out = out.sort_values("sort", kind="stable").drop(columns="sort").reset_index(drop=True)
    out["change"] = out["reported"] - out["previous"]
    return out


def _local(frame: pd.DataFrame, cols: tuple[str, ...], tz: str) -> pd.DataFrame:
    for c in cols:
        frame[c] = pd.to_datetime(frame[c], utc=True).dt.tz_convert(tz)
    return frame


def kpis(
    conn: Connection,
    *,
    unit: str | None = None,
    start: dt.date | str,
    end: dt.date | str,
    as_of: dt.datetime | dt.date | str | None = None,
    settings: AnalyticsSettings | None = None,
    tz: str | None = None,
    repeats: bool = True,
) -> KpiReport:
    """Every KPI of one unit in ``[start, end)`` as of ``as_of`` (see the module docstring).

    Parameters
    ----------
    conn
        A connection to the store.
    unit
        District, street or community code (12 digits) or grid code (15); None: everything
        in the store.
    start, end
        First day and the day after the last, local dates.
    as_of
        The instant the state is taken at; default the end of the period.
    settings
        Thresholds (4-hour rule, repeat rule); default :func:`geo.settings.default_settings`.
    tz
        Local time zone; default ``GRIDONE_TIMEZONE``.
    repeats
        Compute the repeat rate (False: ``repeats`` and ``repeat_rate`` are None).
    """
    s = settings or default_settings()
    period = make_period(start, end, as_of, tz=tz)
    level = unit_level(unit)
    filters = _filters(unit)
    params = _params(period, filters, level, s, repeats=repeats)
    frame = _figures_frame(conn, params, repeats=repeats, period=period, settings=s)
    totals = frame[frame["category_code"].isna()]

    def row(p: int) -> dict[str, Any] | None:
        r = totals[totals["period"] == p]
        return None if r.empty else r.iloc[0].to_dict()

    cats = _read(conn, kpi_sql.CATEGORIES, {})
    by_cat = frame[frame["category_code"].notna()]
    counts = (
        by_cat.pivot_table(
            index="category_code", columns="period", values="reported", aggfunc="sum"
        )
        .reindex(columns=[0, 1])
        .fillna(0)
        .astype("int64")
        .set_axis(["reported", "previous"], axis=1)
        .reset_index()
    )
    lists = _read(
        conn,
        kpi_sql.KPI_LISTS,
        {
            **filters,
            "start": period.start_ts,
            "upto": period.upto,
            "as_of": period.as_of,
            "major_severity": s.reporting.major_severity,
            "max_delay_s": s.reporting.max_delay_h * 3600.0,
        },
    )
    lists = _local(lists, ("occurred_at", "reported_at", "deadline"), period.tz)
    overdue = (
        lists[lists["overdue"].astype(bool)]
        .sort_values(["days_overdue", "code"], ascending=[False, True], kind="stable")[
            [
                "code",
                "category_code",
                "category_zh",
                "category_en",
                "grid_code",
                "street_code",
                "reported_at",
                "deadline",
                "status",
                "tier",
                "days_overdue",
            ]
        ]
        .reset_index(drop=True)
    )
    late = (
        lists[lists["late_major"].astype(bool)]
        .sort_values(["reported_at", "code"], kind="stable")[
            [
                "code",
                "category_code",
                "category_zh",
                "category_en",
                "grid_code",
                "street_code",
                "severity",
                "occurred_at",
                "reported_at",
                "delay_hours",
            ]
        ]
        .reset_index(drop=True)
    )
    name = None
    if unit is not None:
        names = conn.execute(kpi_sql.UNIT_NAME, {"code": unit}).scalars().all()
        name = names[0] if names else None
    return KpiReport(
        unit=unit,
        level=level,
        name=name,
        period=period,
        previous_period=period.previous(),
        figures=KpiFigures.from_row(row(0)),
        previous=KpiFigures.from_row(row(1)),
        categories=_category_table(cats, counts),
        overdue=overdue,
        late_majors=late,
    )


def kpis_by_unit(
    conn: Connection,
    level: Level = "street",
    start: dt.date | str | None = None,
    end: dt.date | str | None = None,
    *,
    within: str | None = None,
    as_of: dt.datetime | dt.date | str | None = None,
    settings: AnalyticsSettings | None = None,
    tz: str | None = None,
    previous: bool = True,
    repeats: bool = True,
) -> UnitKpis:
    """Every KPI of every unit of ``level`` in ``[start, end)``, in one grouped SQL pass
    (both periods, all units, categories by grouping sets).

    Parameters
    ----------
    level
        ``district``, ``street``, ``community`` or ``grid``.
    start, end, as_of, settings, tz
        As for :func:`kpis`.
    within
        Only the units inside this district or street (code); default all.
    previous
        Compute the previous period too (False: ``UnitKpis.previous`` is None).
    repeats
        Compute the repeat rate (False: its columns are NaN).

    Returns
    -------
    UnitKpis
        Units of the level (grids: those valid in the period) each with a row, zeros
        included; incidents without a unit at that level (no grid) in a row ``None``.
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    if start is None or end is None:
        raise TypeError("kpis_by_unit needs start and end dates")
    if within is not None and unit_level(within) not in ("district", "street"):
        raise ValueError(f"within must be a district or street code, got {within!r}")
    if within is not None and LEVELS.index(unit_level(within)) >= LEVELS.index(level):
        raise ValueError(f"units of level {level!r} do not lie within {within!r}")
    s = settings or default_settings()
    period = make_period(start, end, as_of, tz=tz)
    filters = _filters(within)
    params = _params(period, filters, level, s, previous=previous, repeats=repeats)
    frame = _figures_frame(conn, params, repeats=repeats, period=period, settings=s)
    units = _read(
        conn,
        kpi_sql.KPI_UNITS,
        {
            "level": level,
            "street": filters["street"],
            "district": filters["district"],
            "start_date": period.start,
            "end_date": period.end,
        },
    )
    totals = frame[frame["category_code"].isna()]
    index = pd.Index(units["unit"].tolist(), name="unit", dtype=object)
    extra = [u for u in totals["unit"].unique() if u not in set(index)]
    index = index.append(pd.Index(extra, name="unit", dtype=object))
    names = units.set_index("unit")["name"].reindex(index)

    def one(p: int) -> pd.DataFrame:
        part = totals[totals["period"] == p].set_index("unit")
        part = part.reindex(index)
        counts = part[list(_COUNTS)].fillna(0).astype("int64")
        if not repeats:
            counts["repeats"] = np.nan
        counts["mean_hours"] = part["mean_hours"]
        counts["median_hours"] = part["median_hours"]
        counts.insert(0, "name", names)
        return _with_rates(counts)

    by_cat = frame[frame["category_code"].notna()]
    cats = (
        by_cat.groupby(["unit", "category_code", "period"], dropna=False)["reported"]
        .sum()
        .unstack("period")
        .reindex(columns=[0, 1])
        .fillna(0)
        .astype("int64")
        .set_axis(["reported", "previous"], axis=1)
        .reset_index()
    )
    cats = cats[(cats["reported"] > 0) | (cats["previous"] > 0)].reset_index(drop=True)
    return UnitKpis(
        level=level,
        period=period,
        previous_period=period.previous(),
        current=one(0),
        previous=one(1) if previous else None,
        categories=cats,
    )


def _read(conn: Connection, sql: Any, params: Mapping[str, Any]) -> pd.DataFrame:
    result = conn.execute(sql, dict(params))
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
