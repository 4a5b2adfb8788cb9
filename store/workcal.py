"""Working days and handling deadlines (办理时限).

The calendar is ``data/cn_calendar.csv``: public holidays and the weekend days worked in
exchange (调休), as the State Council publishes them; any other date is a working day when it
is Monday to Friday. Deadlines in working days end at midnight (local time) after the Nth
working day following the day of the report; deadlines in hours are plain elapsed hours.
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
_FIRST = dt.date(2015, 1, 1)
_LAST = dt.date(2040, 12, 31)


@lru_cache(maxsize=4)
def _overrides(path: Path = CALENDAR_CSV) -> dict[dt.date, bool]:
    out: dict[dt.date, bool] = {}
    with path.open(encoding="utf-8") as fh:
        rows = csv.DictReader(line for line in fh if not line.startswith("#"))
        for row in rows:
            out[dt.date.fromisoformat(row["date"])] = row["workday"] == "1"
    return out


@lru_cache(maxsize=4)
def _workdays(path: Path = CALENDAR_CSV) -> np.ndarray:
    """Every working day from 2015 to 2040 as sorted datetime64[D]."""
    days = np.arange(np.datetime64(_FIRST), np.datetime64(_LAST) + 1, dtype="datetime64[D]")
    weekday = (days.astype("int64") + 3) % 7  # 1970-01-01 was a Thursday (3)
    is_work = weekday < 5
    index = {d: i for i, d in enumerate(days.astype(object))}
    for day, work in _overrides(path).items():
        if day in index:
            is_work[index[day]] = work
    return days[is_work]


def is_workday(day: dt.date) -> bool:
    """Whether ``day`` is a working day in mainland China."""
    override = _overrides().get(day)
    if override is not None:
        return override
    return day.weekday() < 5


def add_working_days(days: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """The Nth working day after each date in ``days`` (datetime64[D]), vectorised."""
    work = _workdays()
    idx = np.searchsorted(work, days, side="right") + (np.asarray(n) - 1)
    if np.any(idx >= len(work)) or np.any(np.asarray(n) < 1):
        raise ValueError("deadline beyond the calendar (2040) or a non-positive day count")
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
