"""Cached access to the store for pages: one engine per process (as ``gridone_app``), every
transaction scoped to the logged-in user, query results cached per scope and by their plain
arguments. The only module of the dashboard that talks to the database layer.

Two rules every loader of ``dashboard/data*.py`` follows (tests/test_dashboard_scope.py):

* it reads through :func:`scoped_conn`, which begins a transaction and makes the session's
  scope its first statement (:func:`store.access.scoped`: the database looks the user up
  from the token), so row-level security shows only the user's jurisdiction;
* it is cached with :func:`scoped_cache`, not ``st.cache_data`` directly: the cache key
  starts with the user's :class:`ScopeKey` (role, scope prefix, staff code), so a result
  read for one jurisdiction is never served to another. The token rides along as an
  underscore argument (not hashed: a new login of the same user reuses the cache); the key
  is derived from the user that token was validated for at the start of this run.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

import geopandas as gpd
import pandas as pd
import streamlit as st
from sqlalchemy import Connection, Engine

from dashboard.hotspot_view import HotspotQuery, Result
from geo import coverage as geo_coverage
from geo import emerging as geo_emerging
from geo import hotspots as geo_hotspots
from geo import kde as geo_kde
from geo.period import as_instant
from store import access, queries
from store.db import check_connection, make_app_engine, resolve_app_url
from store.settings import Settings, get_settings
from store.vocab import Lang

CACHE_SECONDS = 300


@st.cache_resource(show_spinner=False)
def settings() -> Settings:
    """The settings, read once per server process."""
    return get_settings()


@st.cache_resource(show_spinner=False)
def engine() -> Engine:
    """The engine, connected as ``gridone_app`` (owns nothing, row-level security binds it;
    pre-ping: a restarted database is picked up again)."""
    return make_app_engine(resolve_app_url(settings()))


# --- the scope of every read ----------------------------------------------------------------

#: Session-state keys of the login (dashboard/auth.py): the session token and the user it
#: was last validated for (at the start of this run).
TOKEN_KEY = "_gridone_token"
USER_KEY = "_gridone_user"

#: The token of the cached call being computed (set by :func:`scoped_cache`).
_TOKEN: contextvars.ContextVar[str | None] = contextvars.ContextVar("gridone_token", default=None)


class ScopeKey(NamedTuple):
    """What a user may read, as a cache key: role, scope code prefix, own worker code."""

    role: str
    prefix: str
    staff_code: str


NO_SCOPE = ScopeKey("", "", "")


def scope_key(user: access.User | None) -> ScopeKey:
    """The cache key of ``user``'s jurisdiction (:data:`NO_SCOPE` for nobody)."""
    if user is None:
        return NO_SCOPE
    return ScopeKey(user.role, user.scope_prefix or "", user.staff_code or "")


def session_scope() -> tuple[ScopeKey, str]:
    """The scope key and token of this browser session's logged-in user (nobody: a key
    that reads nothing and an empty token)."""
    user = st.session_state.get(USER_KEY)
    token = st.session_state.get(TOKEN_KEY) or ""
    return (scope_key(user), token) if user is not None and token else (NO_SCOPE, "")


@contextmanager
def scoped_conn(token: str | None = None) -> Iterator[Connection]:
    """A transaction whose first statement binds it to the session's scope; rows outside
    the user's jurisdiction are invisible in it (nothing at all without a live session).
    ``token`` defaults to the one of the cached call being computed, else this session's."""
    tok = token if token is not None else _TOKEN.get()
    if tok is None:
        tok = session_scope()[1]
    with engine().begin() as conn:
        access.scoped(conn, tok)
        yield conn


P = ParamSpec("P")
R = TypeVar("R")


def scoped_cache(
    fn: Callable[P, R] | None = None, *, ttl: int = CACHE_SECONDS, max_entries: int | None = None
) -> Any:
    """``st.cache_data`` keyed first by the logged-in user's :class:`ScopeKey`: the cached
    function gets ``(scope_key, _token, *args)``, so two jurisdictions never share a
    result, and runs with the token in reach of :func:`scoped_conn`."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        def per_scope(scope: ScopeKey, _token: str, *args: Any, **kwargs: Any) -> R:
            reset = _TOKEN.set(_token)
            try:
                return fn(*args, **kwargs)
            finally:
                _TOKEN.reset(reset)

        # streamlit keys a cached function by module, qualified name and source: each
        # loader gets its own name here (the source of per_scope is the same for all)
        # and its parameters are the loader's behind the two of its own, so that streamlit
        # sees which are underscored (not hashed)
        own = [
            inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            for name in ("scope", "_token")
        ]
        per_scope.__signature__ = inspect.signature(fn).replace(  # type: ignore[attr-defined]
            parameters=[*own, *inspect.signature(fn).parameters.values()]
        )
        per_scope.__module__ = fn.__module__
        per_scope.__qualname__ = fn.__qualname__
        per_scope.__name__ = fn.__name__
        cached = st.cache_data(ttl=ttl, show_spinner=False, max_entries=max_entries)(per_scope)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            key, token = session_scope()
            return cached(key, token, *args, **kwargs)

        wrapper.clear = cached.clear  # type: ignore[attr-defined]
        wrapper.cached = cached  # type: ignore[attr-defined]
        return wrapper

    return decorate(fn) if fn is not None else decorate


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


@scoped_cache
def summary() -> queries.StoreSummary:
    """Row counts of the store."""
    with scoped_conn() as conn:
        return queries.summary(conn)


@scoped_cache
def street_names() -> dict[str, str]:
    """Street code → name."""
    with scoped_conn() as conn:
        return queries.street_names(conn)


# --- 热点 hotspots page: every figure comes from geo/, cached by its plain arguments ----------


@scoped_cache
def categories() -> pd.DataFrame:
    """The incident categories, both levels (``code``, ``parent_code``, ``name_zh``,
    ``name_en``)."""
    with scoped_conn() as conn:
        return queries.incident_categories(conn)


def latest_incident_day() -> dt.date | None:
    """The local day (``GRIDONE_TIMEZONE``) of the latest incident in the store; None when
    there is none. Default periods end here, not today: a store is loaded in batches."""
    last = summary().last_reported
    if last is None:
        return None
    return last.astimezone(ZoneInfo(settings().timezone)).date()


@scoped_cache
def grid_outlines(street: str | None) -> gpd.GeoDataFrame:
    """Current grids (code, name, polygon in EPSG:4326) of a street or all."""
    with scoped_conn() as conn:
        return queries.grids(conn, street_code=street)[["code", "name", "geometry"]]


@scoped_cache
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
    with scoped_conn() as conn:
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


@scoped_cache
def density(
    street: str | None,
    start: dt.date,
    end: dt.date,
    category: str | None,
    resolution: int | None,
) -> geo_kde.KdeResult:
    """:func:`geo.kde.kde` for reports in ``[start, end)``, bandwidth by ArcGIS's rule."""
    with scoped_conn() as conn:
        return geo_kde.kde(
            conn, street=street, start=start, end=end, category=category, resolution=resolution
        )


#: Fewest whole time steps an emerging hot spot analysis accepts.
EMERGING_MIN_BINS = geo_emerging.MIN_BINS


@scoped_cache
def incident_count(street: str | None, start: dt.date, end: dt.date, category: str | None) -> int:
    """Incidents reported in ``[start, end)`` (local days) of a street and category."""
    with scoped_conn() as conn:
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


@scoped_cache
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
    with scoped_conn() as conn:
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


@scoped_cache
def buildings_last_passed(street: str | None, as_of: dt.date, days: int) -> gpd.GeoDataFrame | None:
    """:func:`geo.coverage.last_passed`: when each building was last passed by a patrol in
    the ``days`` days up to ``as_of`` (inclusive); None when the store holds no patrol fix
    in that window (nothing to judge coverage by)."""
    since = as_of - dt.timedelta(days=days - 1)
    with scoped_conn() as conn:
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
    with scoped_conn() as conn:
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
