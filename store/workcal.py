"""Working days and handling deadlines (办理时限).

The calendar is ``data/cn_calendar.csv``: public holidays and the weekend days worked in
exchange (调休), as the State Council publishes them; any other date is a working day when it
is Monday to Friday. Only the years that appear in the file are covered: a date in another
year raises :class:`CalendarNotCoveredError` rather than silently counting, say, the Spring
Festival as working days. Deadlines in working days end at midnight (local time) after the
Nth working day following the day of the report; deadlines in hours are plain elapsed hours.
"""

from __future__ import annotations

import csv
import datetime as dt
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from store.settings import PROJECT_ROOT

CALENDAR_CSV = PROJECT_ROOT / "data" / "cn_calendar.csv"


class CalendarNotCoveredError(ValueError):
    """A date falls in a year whose holidays the calendar does not hold."""


@lru_cache(maxsize=4)
def _overrides(path: Path = CALENDAR_CSV) -> dict[dt.date, bool]:
    out: dict[dt.date, bool] = {}
    with path.open(encoding="utf-8") as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        for row in rows:
            out[dt.date.fromisoformat(row["date"])] = row["workday"] == "1"
    return out


def covered_years(path: Path = CALENDAR_CSV) -> range:
    """The contiguous years the calendar covers."""
    years = sorted({d.year for d in _overrides(path)})
    if years != list(range(years[0], years[-1] + 1)):
        raise CalendarNotCoveredError(f"{path.name} skips a year: it has {years}")
    return range(years[0], years[-1] + 1)


def _check_covered(first: dt.date, last: dt.date) -> None:
    years = covered_years()
    if first.year not in years or last.year not in years:
        raise CalendarNotCoveredError(
            f"dates {first}..{last} fall outside the working-day calendar "
            f"({years.start}–{years.stop - 1}); add that year's public holidays and adjusted "
            f"working days to data/{CALENDAR_CSV.name}"
        )


@lru_cache(maxsize=4)
def _workdays(path: Path = CALENDAR_CSV) -> np.ndarray:
    """Every working day of the covered years as sorted datetime64[D]."""
    years = covered_years(path)
    days = np.arange(
        np.datetime64(f"{years.start}-01-01"),
        np.datetime64(f"{years.stop}-01-01"),
        dtype="datetime64[D]",
    )
    weekday = (days.astype("int64") + 3) % 7  # 1970-01-01 was a Thursday (3)
    is_work = weekday < 5
    index = {d: i for i, d in enumerate(days.astype(object))}
    for day, work in _overrides(path).items():
        if day in index:
            is_work[index[day]] = work
    return days[is_work]


def is_workday(day: dt.date) -> bool:
    """Whether ``day`` is a working day in mainland China."""
    _check_covered(day, day)
    override = _overrides().get(day)
    if override is not None:
        return override
    return day.weekday() < 5


def add_working_days(days: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """The Nth working day after each date in ``days`` (datetime64[D]), vectorised."""
    if np.any(np.asarray(n) < 1):
        raise ValueError("working-day counts must be positive")
    work = _workdays()
    if len(days):
        _check_covered(days.min().astype(dt.date), days.max().astype(dt.date))
    idx = np.searchsorted(work, days, side="right") + (np.asarray(n) - 1)
    if np.any(idx >= len(work)):
        last = work[-1].astype(dt.date)
        raise CalendarNotCoveredError(
            f"a deadline falls after {last}, the end of the working-day calendar; add the next "
            f"year's public holidays to data/{CALENDAR_CSV.name}"
        )
    return work[idx]


def due_at(
    reported_at: pd.Series,
    limit_value: pd.Series,
    limit_unit: pd.Series,
    *,
    tz: str = "Asia/Shanghai",
) -> pd.Series:
    """Deadline of each incident from its report time and its category's time limit.

    Parameters
    ----------
    reported_at
        Time-zone-aware timestamps.
    limit_value, limit_unit
        The category's limit: a positive number of ``"hours"`` or ``"working_days"``.
    tz
        Local time zone whose midnight ends a working day.
    """
    local = reported_at.dt.tz_convert(ZoneInfo(tz))
    value = limit_value.to_numpy(dtype="int64")
    hours = limit_unit.to_numpy() == "hours"
    out = local + pd.to_timedelta(np.where(hours, value, 0), unit="h")
    wd = ~hours
    if wd.any():
        start = local[wd].dt.tz_localize(None).to_numpy().astype("datetime64[D]")
        last = add_working_days(start, value[wd])
        end = pd.DatetimeIndex(last + np.timedelta64(1, "D")).tz_localize(ZoneInfo(tz))
        out = out.copy()
        out[wd] = end
    return out.dt.tz_convert("UTC")
