"""Cached loaders of the 事件 (incidents) page: geo.kpis and geo.trend results keyed on plain
arguments (engine and settings from :mod:`dashboard.data`)."""

from __future__ import annotations

import datetime as dt

from dashboard.data import scoped_cache, scoped_conn
from geo import category_kpis as geo_category_kpis
from geo import kpis as geo_kpis
from geo import trend as geo_trend
from store import queries


@scoped_cache
def communities(street: str | None) -> dict[str, str]:
    """Community code → name, of one street or all."""
    with scoped_conn() as conn:
        units = queries.admin_units(conn, "community", street_code=street)
    return dict(zip(units["code"], units["name"], strict=True))


@scoped_cache
def grid_names(street: str | None) -> dict[str, str]:
    """Grid code → name (current grids) of one street or all."""
    with scoped_conn() as conn:
        grids = queries.grids(conn, street_code=street)
    return dict(zip(grids["code"], grids["name"], strict=True))


@scoped_cache
def has_incidents(street: str | None) -> bool:
    """Whether the store holds any incident of the street (all streets when None)."""
    with scoped_conn() as conn:
        return queries.incident_count(conn, street_code=street) > 0


@scoped_cache
def kpi_report(unit: str | None, start: dt.date, end: dt.date) -> geo_kpis.KpiReport:
    """:func:`geo.kpis.kpis` of ``unit`` for ``[start, end)`` (local days), as of its end."""
    with scoped_conn() as conn:
        return geo_kpis.kpis(conn, unit=unit, start=start, end=end)


@scoped_cache
def category_kpis(
    unit: str | None, start: dt.date, end: dt.date, category: str
) -> geo_category_kpis.CategoryKpis:
    """:func:`geo.category_kpis.category_kpis` of ``unit`` for ``[start, end)``."""
    with scoped_conn() as conn:
        return geo_category_kpis.category_kpis(
            conn, unit=unit, start=start, end=end, category=category
        )


@scoped_cache
def unit_kpis(
    level: geo_kpis.Level, start: dt.date, end: dt.date, within: str | None
) -> geo_kpis.UnitKpis:
    """:func:`geo.kpis.kpis_by_unit` for ``[start, end)``, within a street (or all)."""
    with scoped_conn() as conn:
        return geo_kpis.kpis_by_unit(conn, level, start, end, within=within)


@scoped_cache
def trend(
    unit: str | None,
    start: dt.date,
    end: dt.date,
    category: str | None,
    bin: geo_trend.TrendBin,
) -> geo_trend.Trend:
    """:func:`geo.trend.incident_trend` of ``unit`` for ``[start, end)``."""
    with scoped_conn() as conn:
        return geo_trend.incident_trend(
            conn, unit=unit, start=start, end=end, category=category, bin=bin
        )
