"""The data step of the briefing: every figure it prints, gathered from :mod:`geo`.

Nothing is computed twice: key figures, the change on the previous period, the overdue list
and the per-unit table are :func:`geo.kpis.kpis` / :func:`geo.kpis.kpis_by_unit`; hot spots
are :func:`geo.hotspots.hotspots` on H3 hexagons (resolution chosen for the area, FDR on, as
the hotspots page does); coverage and "hot but under-patrolled" are
:func:`geo.coverage.last_passed`, :func:`geo.coverage.coverage_by_unit` and
:func:`geo.coverage.under_patrolled` with the hotspots page's defaults (7 days, 80 %). The
per-grid rate is geo.overview's incidents per 1,000 households of geo's grid counts.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import Connection

from geo.coverage import coverage_by_unit, last_passed, under_patrolled
from geo.hotspots import HotspotResult, hotspots
from geo.kpis import KpiReport, UnitKpis, kpis, kpis_by_unit
from geo.overview import per_1000_households
from store import briefing_sql, queries
from store.settings import get_settings

#: Key figures of the first section, in order (names of :data:`geo.kpis.FIGURES`).
KEY_FIGURES: tuple[str, ...] = (
    "reported",
    "closure_rate",
    "on_time_rate",
    "open_overdue",
    "awaiting_review",
    "mean_hours",
    "grid_share",
    "street_share",
    "rework_rate",
    "major_in_time_rate",
    "repeat_rate",
)
#: Patrol look-back (days) and coverage threshold of "hot but under-patrolled": the
#: hotspots page's defaults (dashboard.hotspot_view).
COVERAGE_DAYS = 7
COVERAGE_MIN = 0.8
#: Rows of the ranked lists printed (the total is always stated).
TOP_HOT = 10
TOP_OVERDUE = 15

Scope = Literal["street", "district"]


class EmptyPeriodError(ValueError):
    """No incident was reported in the jurisdiction and period: nothing to brief."""


@dataclass(frozen=True)
class BriefingData:
    """Every figure of one briefing, as :mod:`geo` returns it.

    Attributes
    ----------
    scope, code, name
        ``"street"`` or ``"district"``; the jurisdiction's code (None: the whole store) and
        name.
    start, end
        The period ``[start, end)``, local dates (``end`` excluded).
    generated_at
        When the data was read (local time).
    report
        :func:`geo.kpis.kpis` of the jurisdiction (key figures, previous period, overdue).
    by_unit
        :func:`geo.kpis.kpis_by_unit` one level down (communities of a street, streets of
        the district).
    grid_rates
        Current grids (EPSG:4326) with ``households``, ``reported`` (geo.kpis, grid level)
        and ``per_1000`` (reported per 1,000 households; NaN without households).
    outlines
        Boundaries drawn over the maps (EPSG:4326): the grids of a street, the streets of
        the district (1,500 grid outlines would hide the colours).
    hot
        :func:`geo.hotspots.hotspots` on H3 hexagons.
    coverage_as_of
        Last day of the patrol look-back (the period's last day).
    buildings
        :func:`geo.coverage.last_passed` over :data:`COVERAGE_DAYS` days; None when the
        store holds no patrol fix in that window.
    grid_coverage
        :func:`geo.coverage.coverage_by_unit` of the grids (``unit`` = grid code); None
        without tracks.
    under
        :func:`geo.coverage.under_patrolled` of the hexagons; None without tracks.
    freshness, sources
        Latest incident and patrol fix in scope; the loads recorded in the store.
    seconds
        Time spent per step, for the benchmark.
    """

    scope: Scope
    code: str | None
    name: str
    start: dt.date
    end: dt.date
    generated_at: dt.datetime
    report: KpiReport
    by_unit: UnitKpis
    grid_rates: gpd.GeoDataFrame
    outlines: gpd.GeoDataFrame
    hot: HotspotResult
    coverage_as_of: dt.date
    buildings: gpd.GeoDataFrame | None
    grid_coverage: pd.DataFrame | None
    under: gpd.GeoDataFrame | None
    freshness: briefing_sql.Freshness
    sources: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def last_day(self) -> dt.date:
        """The period's last day (included)."""
        return self.end - dt.timedelta(days=1)

    @property
    def street(self) -> str | None:
        """The street filter of the spatial analyses (None for the district)."""
        return self.code if self.scope == "street" else None


def district(conn: Connection) -> tuple[str | None, str]:
    """The store's district: its code and name (code None and the names joined when the
    store holds several, or none)."""
    units = queries.admin_units(conn, "district")
    if len(units) == 1:
        return str(units["code"].iloc[0]), str(units["name"].iloc[0])
    return None, "、".join(units["name"].astype(str)) or "—"


def gather(
    conn: Connection,
    *,
    street: str | None,
    start: dt.date,
    end: dt.date,
    now: dt.datetime | None = None,
) -> BriefingData:
    """Every figure of the briefing of ``street`` (None: the whole district) for reports
    in ``[start, end)`` (local dates).

    Raises
    ------
    EmptyPeriodError
        When no incident was reported in scope in the period.
    ValueError
        For a street code that is not in the store, or an end not after the start.
    """
    if end <= start:
        raise ValueError(f"结束日期须晚于起始日期 / the end ({end}) must come after the start")
    tz = get_settings().timezone
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now_ = time.perf_counter()
        seconds[step] = now_ - clock
        clock = now_

    if street is not None:
        streets = queries.street_names(conn)
        if street not in streets:
            raise ValueError(f"街道编码不存在 / no street with code {street!r}")
        scope: Scope = "street"
        code: str | None = street
        name = streets[street]
        level = "community"
    else:
        scope = "district"
        code, name = district(conn)
        level = "street"
    report = kpis(conn, unit=code, start=start, end=end)
    if report.figures.reported == 0:
        raise EmptyPeriodError(f"{name}: no incident reported in [{start}, {end})")
    by_unit = kpis_by_unit(conn, level, start, end, within=code)  # type: ignore[arg-type]
    lap("kpis")

    grids = queries.grids(conn, street_code=street)
    per_grid = kpis_by_unit(
        conn, "grid", start, end, within=code, previous=False, repeats=False
    ).current
    grid_rates = grids[["code", "name", "households", "geometry"]].copy()
    grid_rates["reported"] = grid_rates["code"].map(per_grid["reported"]).fillna(0).astype(int)
    grid_rates["per_1000"] = per_1000_households(
        grid_rates["reported"], grid_rates["households"]
    ).to_numpy()
    outlines = grid_rates if scope == "street" else queries.admin_units(conn, "street")
    lap("grid_rates")

    hot = hotspots(conn, street=street, start=start, end=end, unit="hex", resolution=None)
    lap("hotspots")

    as_of = end - dt.timedelta(days=1)
    since = as_of - dt.timedelta(days=COVERAGE_DAYS - 1)
    buildings = grid_coverage = under = None
    if queries.patrol_fixes_exist(
        conn,
        street_code=street,
        since=_midnight(since, tz),
        until=_midnight(end, tz),
    ):
        buildings = last_passed(conn, as_of, COVERAGE_DAYS, street=street)
        grid_coverage = coverage_by_unit(grids, buildings, unit_col="code")
        under = under_patrolled(
            hot.units, coverage_by_unit(hot.units, buildings), COVERAGE_MIN
        ).reset_index(drop=True)
    lap("coverage")

    fresh = briefing_sql.freshness(conn, street=street)
    sources = briefing_sql.data_sources(conn)
    lap("freshness")
    return BriefingData(
        scope=scope,
        code=code,
        name=name,
        start=start,
        end=end,
        generated_at=now or dt.datetime.now(ZoneInfo(tz)),
        report=report,
        by_unit=by_unit,
        grid_rates=grid_rates,
        outlines=outlines[["code", "geometry"]],
        hot=hot,
        coverage_as_of=as_of,
        buildings=buildings,
        grid_coverage=grid_coverage,
        under=under,
        freshness=fresh,
        sources=sources,
        seconds=seconds,
    )


def _midnight(day: dt.date, tz: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), ZoneInfo(tz))


def coverage_total(data: BriefingData) -> tuple[int, int] | None:
    """Buildings passed and buildings in scope over the look-back (None without tracks)."""
    if data.buildings is None:
        return None
    b = data.buildings
    return int(b["last_passed_at"].notna().sum()), len(b)


def hot_count(data: BriefingData) -> int:
    """Significant hot hexagons (any confidence)."""
    return int((np.asarray(data.hot.units["bin"]) > 0).sum())
