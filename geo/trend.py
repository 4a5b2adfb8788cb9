"""Incident trend (事件趋势): incidents reported per local week or month over a period, per
top-level category, for any jurisdiction — the series behind the 事件 page's trend chart.

Definitions:

* **Period** ``[start, end)`` of local dates, cut at the as-of instant as in
  :func:`geo.kpis.make_period`; a bin's count is of incidents reported in the period, so
  the bins of a period add up to :attr:`geo.kpis.KpiFigures.reported` (without a category
  filter).
* **Bins**: ISO weeks (Monday to Sunday) or calendar months in the local time zone,
  labelled by their first day. The first and last bins may be cut by the period; every
  bin the period touches has a row, zero included, so a quiet week shows as a gap in
  the bars and not as a missing week.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, get_args

import pandas as pd
from sqlalchemy import Connection

from geo.kpis import Period, make_period, unit_level
from store import incident_trend_sql

TrendBin = Literal["week", "month"]
TREND_BINS: tuple[TrendBin, ...] = get_args(TrendBin)


@dataclass(frozen=True)
class Trend:
    """Incidents reported per bin.

    Attributes
    ----------
    bin
        ``week`` or ``month``.
    period
        The period counted (its cohort ends at ``period.upto``).
    counts
        Long frame, one row per bin and top-level category with incidents: ``bin_start``
        (date), ``category_code`` (2 digits), ``reported``.
    totals
        One row per bin the period touches, zeros included: ``bin_start``, ``reported``.
    """

    bin: TrendBin
    period: Period
    counts: pd.DataFrame
    totals: pd.DataFrame


def bin_start(day: dt.date, bin: TrendBin) -> dt.date:
    """First day of the week (Monday) or month holding ``day``."""
    if bin == "week":
        return day - dt.timedelta(days=day.weekday())
    return day.replace(day=1)


def bin_starts(start: dt.date, end: dt.date, bin: TrendBin) -> list[dt.date]:
    """First days of the bins that ``[start, end)`` touches, in order."""
    if bin not in TREND_BINS:
        raise ValueError(f"bin must be one of {', '.join(TREND_BINS)}, got {bin!r}")
    out: list[dt.date] = []
    day = bin_start(start, bin)
    while day < end:
        out.append(day)
        if bin == "week":
            day += dt.timedelta(days=7)
        else:
            day = (day + dt.timedelta(days=32)).replace(day=1)
    return out


def _filters(unit: str | None) -> dict[str, str | None]:
    """Bound jurisdiction filters of one unit, as ``geo.kpis`` builds them."""
    level = unit_level(unit)
    out: dict[str, str | None] = {"district": None, "street": None, "community": None}
    out["grid"] = None
    if unit is None:
        return out
    if level == "district":
        out["district"] = unit
        return out
    out["street"] = unit[:9] + "000"
    if level == "community":
        out["community"] = unit
    elif level == "grid":
        out["grid"] = unit
    return out


def incident_trend(
    conn: Connection,
    *,
    unit: str | None = None,
    start: dt.date | str,
    end: dt.date | str,
    category: str | None = None,
    bin: TrendBin = "week",
    as_of: dt.datetime | dt.date | str | None = None,
    tz: str | None = None,
) -> Trend:
    """Incidents of ``unit`` (district, street, community or grid code; None: all) reported
    in ``[start, end)`` per ``bin``, per top-level category.

    Parameters
    ----------
    category
        Only this category ("03") or subcategory ("0302"); None: all.
    as_of, tz
        As for :func:`geo.kpis.kpis` (the period is cut at ``as_of``).
    """
    if bin not in TREND_BINS:
        raise ValueError(f"bin must be one of {', '.join(TREND_BINS)}, got {bin!r}")
    if category is not None and (not category.isdigit() or len(category) not in (2, 4)):
        raise ValueError(f"category must be a 2- or 4-digit code, got {category!r}")
    period = make_period(start, end, as_of, tz=tz)
    result = conn.execute(
        incident_trend_sql.INCIDENT_TREND,
        {
            **_filters(unit),
            "bin": bin,
            "tz": period.tz,
            "start": period.start_ts,
            "upto": period.upto,
            "category": category,
        },
    )
    counts = pd.DataFrame(result.fetchall(), columns=["bin_start", "category_code", "reported"])
    counts["reported"] = counts["reported"].astype("int64")
    last_day = (period.upto - dt.timedelta(microseconds=1)).astimezone(period.start_ts.tzinfo)
    starts = bin_starts(period.start, last_day.date() + dt.timedelta(days=1), bin)
    totals = (
        counts.groupby("bin_start")["reported"]
        .sum()
        .reindex(pd.Index(starts, name="bin_start"), fill_value=0)
        .astype("int64")
        .reset_index()
    )
    return Trend(bin=bin, period=period, counts=counts, totals=totals)
