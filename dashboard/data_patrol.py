"""Cached loaders of the 巡查 (patrol) page: geo.coverage results keyed by plain arguments
(street, day), so a page rerun or a second visitor does not recompute a day (a street day
takes 1-2 s, the 30-day unvisited list several seconds)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import geopandas as gpd
import pandas as pd

from dashboard.data import scoped_cache, scoped_conn, settings
from geo import coverage as geo_coverage
from geo import coverage_store
from geo import replay as geo_replay
from geo.period import as_instant
from geo.settings import CoverageParams, default_settings
from store import patrol_sql, queries


def params() -> CoverageParams:
    """The coverage parameters and the two-patrol rule the page applies (the documented
    defaults of :class:`geo.settings.AnalyticsSettings`)."""
    return default_settings().coverage


@scoped_cache
def latest_fix_day(street: str | None) -> dt.date | None:
    """The local day of the latest patrol fix of a street (all when None); None if none."""
    with scoped_conn() as conn:
        last = patrol_sql.latest_fix(conn, street=street)
    return None if last is None else last.astimezone(ZoneInfo(settings().timezone)).date()


@scoped_cache
def communities(street: str | None) -> dict[str, str]:
    """Community code → name of a street."""
    with scoped_conn() as conn:
        units = queries.admin_units(conn, "community", street_code=street)
    return dict(zip(units["code"], units["name"], strict=True))


@scoped_cache
def has_fixes(street: str | None, day: dt.date) -> bool:
    """Whether a street's workers left any patrol fix on the local ``day``."""
    with scoped_conn() as conn:
        return queries.patrol_fixes_exist(
            conn,
            street_code=street,
            since=as_instant(day),
            until=as_instant(day + dt.timedelta(days=1)),
        )


@scoped_cache
def coverage_day(street: str | None, day: dt.date) -> geo_coverage.CoverageResult:
    """:func:`geo.coverage.coverage_day` of a street and day."""
    with scoped_conn() as conn:
        return geo_coverage.coverage_day(conn, day, street=street, params=params())


@scoped_cache
def unvisited(street: str | None, day: dt.date) -> gpd.GeoDataFrame:
    """:func:`geo.coverage.unvisited_buildings` (7/14/30 days) as of ``day``: from the
    stored days (:func:`geo.coverage_store.unvisited_buildings`, the same frame) when all
    30 are stored, else replayed from the fixes day by day."""
    with scoped_conn() as conn:
        frame, _ = coverage_store.unvisited_buildings(conn, day, street=street, params=params())
    return frame


@scoped_cache
def worker_fixes(street: str | None, day: dt.date, worker_id: int) -> pd.DataFrame:
    """:func:`geo.replay.worker_day_fixes`: one worker's cleaned day, fix by fix."""
    with scoped_conn() as conn:
        return geo_replay.worker_day_fixes(conn, day, worker_id, street=street, params=params())
