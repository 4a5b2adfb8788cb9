"""Cached loaders of the 事件 (incidents) page: geo.kpis and geo.trend results keyed on plain
arguments (engine and settings from :mod:`dashboard.data`)."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from dashboard.data import CACHE_SECONDS, engine
from geo import category_kpis as geo_category_kpis
from geo import kpis as geo_kpis
from geo import trend as geo_trend
from store import queries


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def communities(street: str | None) -> dict[str, str]:
    """Community code → name, of one street or all."""
    with engine().connect() as conn:
        units = queries.admin_units(conn, "community", street_code=street)
    return dict(zip(units["code"], units["name"], strict=True))


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def grid_names(street: str | None) -> dict[str, str]:
    """Grid code → name (current grids) of one street or all."""
    with engine().connect() as conn:
        grids = queries.grids(conn, street_code=street)
    return dict(zip(grids["code"], grids["name"], strict=True))


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def has_incidents(street: str | None) -> bool:
    """Whether the store holds any incident of the street (all streets when None)."""
    with engine().connect() as conn:
        return queries.incident_count(conn, street_code=street) > 0


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def kpi_report(unit: str | None, start: dt.date, end: dt.date) -> geo_kpis.KpiReport:
    """:func:`geo.kpis.kpis` of ``unit`` for ``[start, end)`` (local days), as of its end."""
    with engine().connect() as conn:
        return geo_kpis.kpis(conn, unit=unit, start=start, end=end)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def category_kpis(
    unit: str | None, start: dt.date, end: dt.date, category: str
) -> geo_category_kpis.CategoryKpis:
    """:func:`geo.category_kpis.category_kpis` of ``unit`` for ``[start, end)``."""
    with engine().connect() as conn:
        return geo_category_kpis.category_kpis(
            conn, unit=unit, start=start, end=end, category=category
        )


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def unit_kpis(
    level: geo_kpis.Level, start: dt.date, end: dt.date, within: str | None
) -> geo_kpis.UnitKpis:
    """:func:`geo.kpis.kpis_by_unit` for ``[start, end)``, within a street (or all)."""
    with engine().connect() as conn:
        return geo_kpis.kpis_by_unit(conn, level, start, end, within=within)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def trend(
    unit: str | None,
    start: dt.date,
    end: dt.date,
    category: str | None,
    bin: geo_trend.TrendBin,
) -> geo_trend.Trend:
    """:func:`geo.trend.incident_trend` of ``unit`` for ``[start, end)``."""
    with engine().connect() as conn:
        return geo_trend.incident_trend(
            conn, unit=unit, start=start, end=end, category=category, bin=bin
        )
