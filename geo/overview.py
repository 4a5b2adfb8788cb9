"""Figures of the 一张图 (overview) map: one indicator value per grid, and one grid's KPIs
against its street's, taken from :mod:`geo.kpis` and :mod:`geo.coverage` (no second
implementation of any figure).

Indicators (:data:`INDICATORS`):

* ``per_1000`` — incidents reported in the period per 1,000 households of the grid
  (:func:`geo.kpis.kpis_by_unit` ``reported``; with a category, the sum of its
  subcategories' ``reported`` from the same result). NaN for a grid with no households.
* ``closure_rate``, ``on_time_rate``, ``open_overdue`` — as :mod:`geo.kpis` defines them
  (all categories: the KPIs are defined per unit, not per category).
* ``two_patrol`` — two-patrol compliance (一日两巡达标率) of the grid's own worker(s) over
  the working days of the period that the store holds patrols for (:func:`patrol_window`,
  :func:`geo.coverage.patrol_compliance`); for a grid with several own workers, the lowest
  share. NaN when the grid's worker had no such working day.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Connection

from geo import coverage, kpis
from store import coverage_sql, overview_sql
from store.settings import get_settings

#: indicator -> (中文, English, kind); kinds: rate (0–1, shown as %), count, ratio.
INDICATORS: dict[str, tuple[str, str, str]] = {
    "per_1000": ("每千户事件数", "Incidents per 1,000 households", "ratio"),
    "closure_rate": ("办结率", "Closure rate", "rate"),
    "on_time_rate": ("按期办结率", "On-time closure rate", "rate"),
    "open_overdue": ("超期未办结数", "Open and overdue", "count"),
    "two_patrol": ("一日两巡达标率", "Two-patrol compliance", "rate"),
}
#: Indicators where a higher value is worse (drawn darker red); the others are better high.
WORSE_HIGH = frozenset({"per_1000", "open_overdue"})


def grid_kpis(
    conn: Connection, start: dt.date, end: dt.date, *, street: str | None = None
) -> kpis.UnitKpis:
    """:func:`geo.kpis.kpis_by_unit` at grid level for ``[start, end)`` (``end`` exclusive),
    without the previous period or repeats (the map does not show them)."""
    return kpis.kpis_by_unit(conn, "grid", start, end, within=street, previous=False, repeats=False)


def reported_in_category(unit_kpis: kpis.UnitKpis, category: str | None) -> pd.Series:
    """Incidents reported per grid in ``category`` (a 2-digit group or 4-digit code; None:
    all), from the same :class:`~geo.kpis.UnitKpis`."""
    current = unit_kpis.current
    if category is None:
        return current["reported"].astype(float)
    cats = unit_kpis.categories
    picked = cats[cats["category_code"].astype(str).str.startswith(category)]
    counts = picked.groupby("unit")["reported"].sum()
    return counts.reindex(current.index).fillna(0).astype(float)


def per_1000_households(reported: pd.Series, households: pd.Series) -> pd.Series:
    """``reported`` per 1,000 ``households`` (aligned on the index); NaN where there are
    no households."""
    h = households.reindex(reported.index).astype(float)
    return (reported * 1000.0 / h).where(h > 0)


def patrol_window(
    conn: Connection, start: dt.date, last_day: dt.date, *, street: str | None = None
) -> tuple[dt.date, dt.date] | None:
    """``start`` … ``last_day`` cut to the local days the store holds patrols for (days
    before the first track was loaded are not "no patrol"); None when nothing is left."""
    span = overview_sql.patrol_span(conn, street=street)
    if span is None:
        return None
    tz = ZoneInfo(get_settings().timezone)
    first, last = (t.astimezone(tz).date() for t in span)
    a, b = max(start, first), min(last_day, last)
    return None if b < a else (a, b)


def grid_two_patrol(
    conn: Connection, start: dt.date, last_day: dt.date, *, street: str | None = None
) -> pd.Series:
    """Two-patrol compliance share per grid code over ``start`` … ``last_day`` (inclusive;
    pass :func:`patrol_window`'s days): the share of
    :func:`geo.coverage.patrol_compliance` of the grid's own worker(s) on ``last_day`` (the
    lowest when several)."""
    shares = coverage.patrol_compliance(conn, start, last_day, street=street)
    own = coverage_sql.own_grids(conn, last_day, street=street)
    if shares.empty or own.empty:
        return pd.Series(dtype=float, name="two_patrol")
    by_worker = shares.set_index("worker_id")["share"]
    own = own.assign(share=own["worker_id"].map(by_worker))
    return own.groupby("grid_code")["share"].min().astype(float).rename("two_patrol")


def grid_indicator(
    unit_kpis: kpis.UnitKpis,
    indicator: str,
    *,
    households: pd.Series | None = None,
    category: str | None = None,
    two_patrol: pd.Series | None = None,
) -> pd.Series:
    """One indicator per grid code (index: the grids of ``unit_kpis``; the row ``None`` of
    incidents outside every grid is left out).

    Parameters
    ----------
    households
        Households per grid code; needed for ``per_1000``.
    category
        Category filter of ``per_1000`` (the rates are for all categories).
    two_patrol
        :func:`grid_two_patrol`; needed for ``two_patrol``.
    """
    if indicator not in INDICATORS:
        raise ValueError(f"indicator must be one of {', '.join(INDICATORS)}, got {indicator!r}")
    current = unit_kpis.current
    current = current[[u is not None and not pd.isna(u) for u in current.index]]
    if indicator == "per_1000":
        if households is None:
            raise ValueError("per_1000 needs the households of each grid")
        out = per_1000_households(reported_in_category(unit_kpis, category), households)
    elif indicator == "two_patrol":
        if two_patrol is None:
            raise ValueError("two_patrol needs grid_two_patrol()")
        out = two_patrol.reindex(current.index).astype(float)
    else:
        out = current[indicator].astype(float)
    return out.reindex(current.index).astype(float).rename(indicator)


def compare_with_street(
    grid_row: pd.Series, street_figures: kpis.KpiFigures, names: tuple[str, ...]
) -> pd.DataFrame:
    """The grid's figures ``names`` beside its street's: ``figure``, ``grid``, ``street``.

    ``grid_row`` is the grid's row of :attr:`geo.kpis.UnitKpis.current`; the street's from
    :func:`geo.kpis.kpis` for the same period."""
    street = street_figures.as_dict()
    rows = []
    for name in names:
        g = grid_row.get(name)
        rows.append(
            {
                "figure": name,
                "grid": None if g is None or pd.isna(g) else float(g),
                "street": None if street[name] is None else float(street[name]),
            }
        )
    return pd.DataFrame(rows)
