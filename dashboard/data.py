"""Cached access to the store for pages: one engine per process, query results cached by
their plain arguments. The only module of the dashboard that talks to the database layer."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import geopandas as gpd
import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from dashboard.hotspot_view import HotspotQuery, Result
from geo import coverage as geo_coverage
from geo import emerging as geo_emerging
from geo import hotspots as geo_hotspots
from geo import kde as geo_kde
from geo.period import as_instant
from store import queries
from store.db import check_connection, make_engine, resolve_url
from store.settings import Settings, get_settings
from store.vocab import Lang

CACHE_SECONDS = 300


@st.cache_resource(show_spinner=False)
def settings() -> Settings:
    """The settings, read once per server process."""
    return get_settings()


@st.cache_resource(show_spinner=False)
def engine() -> Engine:
    """The engine (pre-ping: a restarted database is picked up again)."""
    return make_engine(resolve_url(settings()))


#: Session-state key of the language picked in the sidebar (dashboard/app.py).
LANG_KEY = "lang"


def language() -> Lang:
    """The language of this browser session: the one picked in the sidebar, else the
    ``GRIDONE_LANGUAGE`` setting."""
    picked = st.session_state.get(LANG_KEY)
    return picked if picked in ("zh", "en") else settings().language


def check() -> None:
    """Raise :class:`store.errors.DatabaseUnavailableError` when the store is unreachable."""
    check_connection(engine())


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def summary() -> queries.StoreSummary:
    """Row counts of the store."""
    with engine().connect() as conn:
        return queries.summary(conn)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def street_names() -> dict[str, str]:
    """Street code → name."""
    with engine().connect() as conn:
        return queries.street_names(conn)


# --- 热点 hotspots page: every figure comes from geo/, cached by its plain arguments ----------


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def categories() -> pd.DataFrame:
    """The incident categories, both levels (``code``, ``parent_code``, ``name_zh``,
    ``name_en``)."""
    with engine().connect() as conn:
        return queries.incident_categories(conn)


def latest_incident_day() -> dt.date | None:
    """The local day (``GRIDONE_TIMEZONE``) of the latest incident in the store; None when
    there is none. Default periods end here, not today: a store is loaded in batches."""
    last = summary().last_reported
    if last is None:
        return None
    return last.astimezone(ZoneInfo(settings().timezone)).date()


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def grid_outlines(street: str | None) -> gpd.GeoDataFrame:
    """Current grids (code, name, polygon in EPSG:4326) of a street or all."""
    with engine().connect() as conn:
        return queries.grids(conn, street_code=street)[["code", "name", "geometry"]]


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def hotspots(
    street: str | None,
    start: dt.date,
    end: dt.date,
    category: str | None,
    unit: geo_hotspots.UnitKind,
    resolution: int | None,
    fdr: bool,
) -> geo_hotspots.HotspotResult:
    """:func:`geo.hotspots.hotspots` for reports in ``[start, end)`` (local days), analytic
    p-values and contiguity weights (the defaults); ``resolution`` None chooses it."""
    with engine().connect() as conn:
        return geo_hotspots.hotspots(
            conn,
            street=street,
            start=start,
            end=end,
            category=category,
            unit=unit,
            resolution=resolution,
            fdr=fdr,
        )


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def density(
    street: str | None,
    start: dt.date,
    end: dt.date,
    category: str | None,
    resolution: int | None,
) -> geo_kde.KdeResult:
    """:func:`geo.kde.kde` for reports in ``[start, end)``, bandwidth by ArcGIS's rule."""
    with engine().connect() as conn:
        return geo_kde.kde(
            conn, street=street, start=start, end=end, category=category, resolution=resolution
        )


#: Fewest whole time steps an emerging hot spot analysis accepts.
EMERGING_MIN_BINS = geo_emerging.MIN_BINS


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def incident_count(street: str | None, start: dt.date, end: dt.date, category: str | None) -> int:
    """Incidents reported in ``[start, end)`` (local days) of a street and category."""
    with engine().connect() as conn:
        return queries.incident_count(
            conn,
            street_code=street,
            since=as_instant(start),
            until=as_instant(end),
            category=category,
        )


def emerging_bins(start: dt.date, end: dt.date, bin: geo_emerging.BinKind) -> int:
    """Whole weeks or months :func:`geo.emerging.emerging` finds in ``[start, end)``."""
    t0 = geo_emerging.local_instant(start, settings().timezone)
    t1 = geo_emerging.local_instant(end, settings().timezone)
    return len(geo_emerging.bin_edges(t0, t1, bin)) - 1


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def emerging(
    street: str | None,
    start: dt.date,
    end: dt.date,
    category: str | None,
    unit: geo_hotspots.UnitKind,
    resolution: int | None,
    bin: geo_emerging.BinKind,
    fdr: bool,
) -> geo_emerging.EmergingResult:
    """:func:`geo.emerging.emerging` for ``[start, end)`` in weekly or monthly steps."""
    with engine().connect() as conn:
        return geo_emerging.emerging(
            conn,
            street=street,
            start=start,
            end=end,
            category=category,
            unit=unit,
            resolution=resolution,
            bin=bin,
            fdr=fdr,
        )


def analysis(q: HotspotQuery) -> Result:
    """The analysis ``q`` asks for (each cached by its plain arguments)."""
    end = q.end_exclusive
    if q.method in ("grid", "hex"):
        return hotspots(q.street, q.start, end, q.category, q.method, q.resolution, q.fdr)
    if q.method == "emerging":
        return emerging(q.street, q.start, end, q.category, q.unit, q.resolution, q.bin, q.fdr)
    return density(q.street, q.start, end, q.category, q.resolution)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def buildings_last_passed(street: str | None, as_of: dt.date, days: int) -> gpd.GeoDataFrame | None:
    """:func:`geo.coverage.last_passed`: when each building was last passed by a patrol in
    the ``days`` days up to ``as_of`` (inclusive); None when the store holds no patrol fix
    in that window (nothing to judge coverage by)."""
    since = as_of - dt.timedelta(days=days - 1)
    with engine().connect() as conn:
        if not queries.patrol_fixes_exist(
            conn,
            street_code=street,
            since=as_instant(since),
            until=as_instant(as_of + dt.timedelta(days=1)),
        ):
            return None
        return geo_coverage.last_passed(conn, as_of, days, street=street)


def under_patrolled(
    units: gpd.GeoDataFrame, street: str | None, as_of: dt.date, days: int, min_share: float
) -> gpd.GeoDataFrame | None:
    """Hot units of a Gi* result whose share of buildings passed in the ``days`` days up to
    ``as_of`` is below ``min_share`` (:func:`geo.coverage.coverage_by_unit`,
    :func:`geo.coverage.under_patrolled`); None when there are no patrol tracks in that
    window, or they pass no building (coverage cannot be judged)."""
    since = as_of - dt.timedelta(days=days - 1)
    hot = units[units["bin"] >= 1]
    with engine().connect() as conn:
        if not queries.patrol_fixes_exist(
            conn,
            street_code=street,
            since=as_instant(since),
            until=as_instant(as_of + dt.timedelta(days=1)),
        ):
            return None
        # only the hot units' buildings: their coverage is all the list needs
        buildings = geo_coverage.last_passed(conn, as_of, days, street=street, within=hot)
        if not buildings["last_passed_at"].notna().any():
            # none of theirs passed: are any passed at all (else coverage cannot be judged)?
            everywhere = buildings_last_passed(street, as_of, days)
            if everywhere is None or not everywhere["last_passed_at"].notna().any():
                return None
    coverage = geo_coverage.coverage_by_unit(units, buildings)
    return geo_coverage.under_patrolled(units, coverage, min_share)
