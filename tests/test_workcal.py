"""Working days and deadlines, against dates one can check on a wall calendar."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from store import workcal

SH = "Asia/Shanghai"


@pytest.mark.parametrize(
    ("day", "work"),
    [
        ("2026-10-01", False),  # 国庆
        ("2026-10-10", True),  # Saturday worked in exchange (调休)
        ("2026-02-14", True),  # Saturday worked before the Spring Festival
        ("2026-02-16", False),  # Spring Festival, a Monday
        ("2026-11-20", True),  # ordinary Friday
        ("2026-11-21", False),  # ordinary Saturday
        ("2023-01-29", True),  # Sunday worked in 2023
    ],
)
def test_is_workday(day: str, work: bool) -> None:
    assert workcal.is_workday(dt.date.fromisoformat(day)) is work


def _due(reported: str, value: int, unit: str) -> pd.Timestamp:
    s = pd.Series(pd.to_datetime([reported]).tz_localize(SH))
    return workcal.due_at(s, pd.Series([value]), pd.Series([unit])).dt.tz_convert(SH).iloc[0]


def test_working_day_deadlines_skip_holidays_and_count_exchange_days() -> None:
    # Wed 30 Sep 2026 + 3 working days: 8 Oct (Thu), 9 Oct (Fri), 10 Oct (Sat, 调休)
    assert _due("2026-09-30 10:00", 3, "working_days") == pd.Timestamp("2026-10-11", tz=SH)
    # Friday + 1 working day -> end of Monday
    assert _due("2026-11-20 17:00", 1, "working_days") == pd.Timestamp("2026-11-24", tz=SH)
    # hours are elapsed hours, holidays or not
    assert _due("2026-10-01 08:00", 24, "hours") == pd.Timestamp("2026-10-02 08:00", tz=SH)


def test_dates_outside_the_calendar_are_refused() -> None:
    with pytest.raises(workcal.CalendarNotCoveredError, match="add that year"):
        workcal.is_workday(dt.date(2031, 5, 6))
    with pytest.raises(workcal.CalendarNotCoveredError, match="next year"):
        _due("2026-12-30 09:00", 10, "working_days")


@given(
    st.dates(min_value=dt.date(2023, 1, 1), max_value=dt.date(2026, 11, 30)),
    st.integers(min_value=1, max_value=10),
)
def test_nth_working_day_has_exactly_n_working_days_after_the_start(start, n) -> None:
    end = workcal.add_working_days(np.array([np.datetime64(start)]), n)[0].astype(dt.date)
    days = [start + dt.timedelta(days=k) for k in range(1, (end - start).days + 1)]
    assert workcal.is_workday(end)
    assert sum(workcal.is_workday(d) for d in days) == n
