"""The data step of the briefing: every figure it prints, gathered from :mod:`geo`.

Nothing is computed twice: key figures, the change on the previous period, the overdue list
and the per-unit table are :func:`geo.kpis.kpis` / :func:`geo.kpis.kpis_by_unit`; hot spots
are :func:`geo.hotspots.hotspots` on H3 hexagons (resolution chosen for the area, FDR on, as
the hotspots page does); coverage and "hot but under-patrolled" are
:func:`geo.coverage.last_passed` (read from the stored days of :mod:`geo.coverage_store`
when they are all there), :func:`geo.coverage.coverage_by_unit` and
:func:`geo.coverage.under_patrolled` with the hotspots page's defaults (7 days, 80 %). The
per-grid rate is geo.overview's incidents per 1,000 households of the incidents reported
per grid (:func:`geo.grid_reported.reported_by_grid`, the ``reported`` of
:func:`geo.kpis.kpis_by_unit` at grid level, counted alone).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import Connection

from geo import coverage_store
from geo.coverage import coverage_by_unit, last_passed, under_patrolled
from geo.grid_reported import reported_by_grid
from geo.hotspots import HotspotResult, hotspots
from geo.kpis import KpiReport, UnitKpis, from_incidents, kpis, kpis_by_unit
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
    early_maps
        What ``draw`` and ``draw_rates`` of :func:`gather` returned (maps drawn while the
        key figures were computed), by ``"spatial"`` and ``"indicator"``; None without.
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
    early_maps: Any = field(default=None, compare=False)

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
    parallel: bool = True,
    stored: bool = True,
    draw: Callable[[HotspotResult, gpd.GeoDataFrame, pd.DataFrame | None, gpd.GeoDataFrame], Any]
    | None = None,
    draw_rates: Callable[[gpd.GeoDataFrame, gpd.GeoDataFrame], Any] | None = None,
    token: str | None = None,
) -> BriefingData:
    """Every figure of the briefing of ``street`` (None: the whole district) for reports
    in ``[start, end)`` (local dates).

    The key figures, the per-unit table, the per-grid rates, the hot spots and the patrol
    coverage run side by side on their own connections, reading one snapshot (the
    coverage takes the hot spots only at its end, for "hot but under-patrolled";
    ``parallel`` False: one after the other on ``conn``). ``stored`` False: every figure
    the straightforward way, for the benchmark's baseline (the figures are the same):
    patrol coverage computed live from the fixes, never read from
    :mod:`geo.coverage_store`; the KPIs from the incidents, never from the per street and
    day sums (:func:`geo.kpis.from_incidents`); the incidents per grid from
    :func:`geo.kpis.kpis_by_unit`, not counted alone
    (:func:`geo.grid_reported.reported_by_grid`). ``draw``, given the hot spots, the
    grids, their coverage and the outlines as soon as the spatial sections are done, runs
    on the calling thread while the key figures may still be computed (the briefing draws
    two maps there); ``draw_rates``, given the per-grid rates and the outlines, likewise
    on the thread that computed them (the indicator map). What they return is kept in
    ``early_maps`` (keys ``"spatial"`` and ``"indicator"``).

    ``token``: the session token ``conn``'s scope was bound with
    (:func:`store.access.scoped`); each helper connection binds its own transaction to
    that session (a signed scope cannot be copied). When ``conn`` is scoped and no token
    is given, the sections run one after the other on ``conn`` (a helper would read
    nothing).

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

    def key_figures(c: Connection) -> KpiReport:
        with _kpi_path(stored):
            return kpis(c, unit=code, start=start, end=end)

    def per_unit(c: Connection) -> UnitKpis:
        with _kpi_path(stored):
            return kpis_by_unit(c, level, start, end, within=code)  # type: ignore[arg-type]

    def rates(c: Connection) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, Any]:
        grids = queries.grids(c, street_code=street)
        if stored:  # the count alone (geo.grid_reported: the same figure)
            per_grid = reported_by_grid(c, start, end, within=code)
        else:
            with _kpi_path(stored):
                per_grid = kpis_by_unit(
                    c, "grid", start, end, within=code, previous=False, repeats=False
                ).current["reported"]
        grid_rates = grids[["code", "name", "households", "geometry"]].copy()
        grid_rates["reported"] = grid_rates["code"].map(per_grid).fillna(0).astype(int)
        grid_rates["per_1000"] = per_1000_households(
            grid_rates["reported"], grid_rates["households"]
        ).to_numpy()
        outlines = grid_rates if scope == "street" else queries.admin_units(c, "street")
        if draw_rates is None:
            return grid_rates, outlines, None
        t0 = time.perf_counter()
        picture = draw_rates(grid_rates, outlines[["code", "geometry"]])
        seconds["maps_indicator"] = time.perf_counter() - t0
        return grid_rates, outlines, picture

    # the hot spots are their own section, computed beside the patrol coverage (which
    # needs them only at its end, for "hot but under-patrolled"): handed over here
    hot_done: Future[Any] = Future()

    def hot_spots(c: Connection) -> HotspotResult:
        return hotspots(c, street=street, start=start, end=end, unit="hex", resolution=None)

    def spatial(c: Connection) -> tuple[HotspotResult, _Coverage, Any]:
        t1 = time.perf_counter()
        grids = queries.grids(c, street_code=street)
        buildings = _last_passed(c, street, end, tz, stored)
        t_read = time.perf_counter()
        grid_coverage = _grid_coverage(grids, buildings)
        t2 = time.perf_counter()
        hot = hot_done.result()
        t3 = time.perf_counter()
        under = _under_patrolled(hot, buildings)
        t4 = time.perf_counter()
        seconds["coverage"] = (t2 - t1) + (t4 - t3)
        seconds["coverage_read"] = t_read - t1
        seconds["coverage_units"] = (t2 - t_read) + (t4 - t3)
        seconds["hotspots_wait"] = t3 - t2
        cov = (buildings, grid_coverage, under)
        if draw is None:
            return hot, cov, None
        outlines = grids if scope == "street" else queries.admin_units(c, "street")
        early = draw(hot, grids, grid_coverage, outlines[["code", "geometry"]])
        seconds["maps_early"] = time.perf_counter() - t4
        return hot, cov, early

    if parallel and token is None and briefing_sql.scope_set(conn):
        parallel = False
    sections: dict[str, Callable[[Connection], Any]] = {
        "spatial": spatial,  # the longest, on ``conn`` (the first job)
        "hotspots": hot_spots,
        "kpis": key_figures,
        "by_unit": per_unit,
        "grid_rates": rates,
    }
    if not parallel:  # one after the other: the hot spots before the coverage waits for them
        sections = {"hotspots": hot_spots, **sections}
    done = _concurrently(conn, sections, seconds, parallel, token, {"hotspots": hot_done})
    report = _result(done["kpis"])
    if report.figures.reported == 0:  # before any other section's failure on no data
        raise EmptyPeriodError(f"{name}: no incident reported in [{start}, {end})")
    by_unit = _result(done["by_unit"])
    grid_rates, outlines, indicator = _result(done["grid_rates"])
    hot, (buildings, grid_coverage, under), spatial_maps = _result(done["spatial"])
    early = {
        k: v for k, v in (("spatial", spatial_maps), ("indicator", indicator)) if v is not None
    }
    as_of = end - dt.timedelta(days=1)
    clock = time.perf_counter()

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
        early_maps=early or None,
    )


_Coverage = tuple[gpd.GeoDataFrame | None, pd.DataFrame | None, gpd.GeoDataFrame | None]


def _last_passed(
    conn: Connection, street: str | None, end: dt.date, tz: str, stored: bool
) -> gpd.GeoDataFrame | None:
    """Buildings last passed over the look-back ending on the period's last day (None
    when no fix in the window)."""
    as_of = end - dt.timedelta(days=1)
    since = as_of - dt.timedelta(days=COVERAGE_DAYS - 1)
    if not queries.patrol_fixes_exist(
        conn, street_code=street, since=_midnight(since, tz), until=_midnight(end, tz)
    ):
        return None
    # the stored days when every one is there (geo.coverage_store: the same figures),
    # else computed live from the fixes
    if stored:
        buildings, _ = coverage_store.last_passed_or_live(conn, as_of, COVERAGE_DAYS, street=street)
        return buildings
    return last_passed(conn, as_of, COVERAGE_DAYS, street=street)


def _grid_coverage(
    grids: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame | None
) -> pd.DataFrame | None:
    """The grids' coverage (None without tracks)."""
    return None if buildings is None else coverage_by_unit(grids, buildings, unit_col="code")


def _under_patrolled(
    hot: HotspotResult, buildings: gpd.GeoDataFrame | None
) -> gpd.GeoDataFrame | None:
    """ "Hot but under-patrolled" hexagons (None without tracks)."""
    if buildings is None:
        return None
    return under_patrolled(
        hot.units, coverage_by_unit(hot.units, buildings), COVERAGE_MIN
    ).reset_index(drop=True)


def _concurrently(
    conn: Connection,
    jobs: dict[str, Callable[[Connection], Any]],
    seconds: dict[str, float],
    parallel: bool,
    token: str | None = None,
    settle: Mapping[str, Future[Any]] | None = None,
) -> dict[str, Any]:
    """Run ``jobs`` (name → function of a connection): the first on ``conn``, the others
    each in a thread on a connection of its own that reads the same snapshot, bound to the
    scope of the session ``token`` when given (:func:`store.briefing_sql.share_view`), so
    the database's cores work side by side and every section still sees the same data.
    Each job's own time goes to ``seconds`` under its name. A job that raises gives a
    :class:`_Failed` (see :func:`_result`), so that the caller chooses which failure to
    report. ``parallel`` False: one after the other on ``conn``.

    ``settle``: futures (by job name) resolved with that job's value or error as soon as
    it ends — its helper connection failing included — so that another job can wait for
    it without ever waiting forever (one after the other, the job waited for must come
    first)."""
    names = list(jobs)
    waited = dict(settle or {})

    def done(name: str, outcome: Any) -> Any:
        future = waited.get(name)
        if future is not None and not future.done():
            if isinstance(outcome, _Failed):
                future.set_exception(outcome.error)
            else:
                future.set_result(outcome)
        return outcome

    def timed(name: str, c: Connection) -> Any:
        t0 = time.perf_counter()
        try:
            return jobs[name](c)
        except Exception as exc:  # handed to the caller, who decides which one to raise
            return _Failed(exc)
        finally:
            seconds.setdefault(name, time.perf_counter() - t0)

    if not parallel:
        return {name: done(name, timed(name, conn)) for name in names}
    view = briefing_sql.share_view(conn, token)

    def helper(name: str) -> Any:
        try:
            with conn.engine.connect() as own:
                own = own.execution_options(isolation_level="REPEATABLE READ")
                briefing_sql.join_view(own, view)
                try:
                    return done(name, timed(name, own))
                finally:
                    own.rollback()
        except Exception as exc:  # the connection itself failed
            return done(name, _Failed(exc))

    with ThreadPoolExecutor(max_workers=len(names) - 1) as pool:
        futures = {name: pool.submit(helper, name) for name in names[1:]}
        first = done(names[0], timed(names[0], conn))
        return {names[0]: first, **{name: f.result() for name, f in futures.items()}}


@dataclass(frozen=True)
class _Failed:
    """A job of :func:`_concurrently` that raised."""

    error: Exception


def _result(outcome: Any) -> Any:
    """A job's value, or its exception raised again."""
    if isinstance(outcome, _Failed):
        raise outcome.error
    return outcome


def _kpi_path(stored: bool) -> AbstractContextManager[None]:
    """The KPIs from the per street and day sums where they serve (``stored``), else
    always from the incidents (:func:`geo.kpis.from_incidents`: the benchmark's
    baseline). Entered inside each job: the choice is a context variable, which the
    helper threads would not inherit."""
    return nullcontext() if stored else from_incidents()


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
