"""Cached loaders of the 一张图 (overview) page: every figure from geo/, every map layer from
store.overview_sql, each cached by its plain arguments (a filter change recomputes only what
it touches)."""

from __future__ import annotations

import datetime as dt

import geopandas as gpd
import pandas as pd

from dashboard import map_render
from dashboard.data import scoped_cache, scoped_conn
from dashboard.maps import OneMapLayers, onemap_base, onemap_layers
from dashboard.overview_view import MapBase, OverviewQuery
from geo import coverage_store
from geo import hotspots as geo_hotspots
from geo import kde as geo_kde
from geo import kpis as geo_kpis
from geo import overview as geo_overview
from geo.period import as_instant
from store import overview_sql as sql
from store import queries


@scoped_cache
def communities(street: str | None) -> dict[str, str]:
    """Community code → name of a street."""
    with scoped_conn() as conn:
        frame = queries.admin_units(conn, "community", street_code=street)
    return dict(zip(frame["code"], frame["name"], strict=True))


def _tolerance(street: str | None) -> float:
    """Outline simplification of the map: finer for one street than for the whole district
    (which opens zoomed further out)."""
    return sql.GRID_SIMPLIFY_DEG if street else sql.DISTRICT_SIMPLIFY_DEG


@scoped_cache
def admin_outlines(street: str | None) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Street and community outlines, simplified in PostGIS."""
    tol = _tolerance(street)
    with scoped_conn() as conn:
        return (
            sql.map_admin_units(conn, "street", street=street, simplify_deg=tol),
            sql.map_admin_units(conn, "community", street=street, simplify_deg=tol),
        )


@scoped_cache
def grids(street: str | None, community: str | None) -> gpd.GeoDataFrame:
    """Current grids, outlines simplified in PostGIS."""
    with scoped_conn() as conn:
        return sql.map_grids(
            conn, street=street, community=community, simplify_deg=_tolerance(street)
        )


@scoped_cache
def grid_kpis(street: str | None, start: dt.date, end: dt.date) -> geo_kpis.UnitKpis:
    """:func:`geo.overview.grid_kpis` for ``[start, end)``."""
    with scoped_conn() as conn:
        return geo_overview.grid_kpis(conn, start, end, street=street)


@scoped_cache
def unit_figures(unit: str, start: dt.date, end: dt.date) -> geo_kpis.KpiFigures:
    """:func:`geo.kpis.kpis` figures of one unit (the street, for the grid panel)."""
    with scoped_conn() as conn:
        return geo_kpis.kpis(conn, unit=unit, start=start, end=end, repeats=False).figures


@scoped_cache
def two_patrol(
    street: str | None, start: dt.date, last_day: dt.date
) -> tuple[pd.Series, tuple[dt.date, dt.date] | None]:
    """:func:`geo.overview.grid_two_patrol` over the days of ``start`` … ``last_day`` the
    store has patrols for, and those days (None: no patrol data; the series is empty).
    Slow: one pass over each working day."""
    with scoped_conn() as conn:
        window = geo_overview.patrol_window(conn, start, last_day, street=street)
        if window is None:
            return pd.Series(dtype=float, name="two_patrol"), None
        return geo_overview.grid_two_patrol(conn, *window, street=street), window


@scoped_cache
def incidents(
    street: str | None,
    community: str | None,
    grid: str | None,
    start: dt.date,
    end: dt.date,
    category: str | None,
    status: str | None,
) -> gpd.GeoDataFrame:
    """Incidents reported in ``[start, end)`` matching the filters."""
    with scoped_conn() as conn:
        return sql.map_incidents(
            conn,
            since=as_instant(start),
            until=as_instant(end),
            street=street,
            community=community,
            grid=grid,
            category=category,
            status=status,
        )


@scoped_cache
def incident_total(
    street: str | None,
    community: str | None,
    start: dt.date,
    end: dt.date,
    category: str | None,
    status: str | None,
) -> int:
    """How many incidents :func:`incidents` would return (without reading them)."""
    with scoped_conn() as conn:
        return sql.incident_total(
            conn,
            since=as_instant(start),
            until=as_instant(end),
            street=street,
            community=community,
            category=category,
            status=status,
        )


@scoped_cache
def incident_counts(
    street: str | None,
    community: str | None,
    start: dt.date,
    end: dt.date,
    category: str | None,
    status: str | None,
    by_status: bool,
) -> gpd.GeoDataFrame:
    """Incidents of ``[start, end)`` counted per grid in PostGIS
    (:func:`store.overview_sql.incident_counts`)."""
    with scoped_conn() as conn:
        return sql.incident_counts(
            conn,
            since=as_instant(start),
            until=as_instant(end),
            street=street,
            community=community,
            category=category,
            status=status,
            by_status=by_status,
        )


@scoped_cache
def incident(code: str) -> gpd.GeoDataFrame:
    """One incident by code (empty when unknown)."""
    with scoped_conn() as conn:
        return sql.incident_by_code(conn, code)


@scoped_cache
def heat(
    street: str | None, start: dt.date, end: dt.date, category: str | None
) -> gpd.GeoDataFrame:
    """:func:`geo.kde.kde` cells (``density_km2``)."""
    with scoped_conn() as conn:
        return geo_kde.kde(conn, street=street, start=start, end=end, category=category).cells


@scoped_cache
def hotspot_units(
    street: str | None, start: dt.date, end: dt.date, category: str | None
) -> gpd.GeoDataFrame:
    """:func:`geo.hotspots.hotspots` on grids (``bin``)."""
    with scoped_conn() as conn:
        return geo_hotspots.hotspots(
            conn, street=street, start=start, end=end, category=category, unit="grid"
        ).units


@scoped_cache
def tracks(street: str | None, community: str | None, day: dt.date) -> gpd.GeoDataFrame:
    """Patrol tracks started on ``day``."""
    with scoped_conn() as conn:
        return sql.patrol_tracks(
            conn,
            since=as_instant(day),
            until=as_instant(day + dt.timedelta(days=1)),
            street=street,
            community=community,
        )


@scoped_cache
def unvisited(street: str | None, as_of: dt.date, days: int) -> gpd.GeoDataFrame:
    """:func:`geo.coverage.unvisited_buildings` not passed in ``days`` days up to ``as_of``:
    from the stored days (:func:`geo.coverage_store.unvisited_buildings`, the same frame)
    when all are stored, else replayed from the fixes day by day."""
    with scoped_conn() as conn:
        frame, _ = coverage_store.unvisited_buildings(conn, as_of, (days,), street)
    return frame


@scoped_cache
def places(street: str | None, community: str | None) -> gpd.GeoDataFrame:
    """Key places."""
    with scoped_conn() as conn:
        return sql.key_places(conn, street=street, community=community)


@scoped_cache
def cameras(street: str | None, community: str | None) -> gpd.GeoDataFrame:
    """Cameras."""
    with scoped_conn() as conn:
        return sql.cameras(conn, street=street, community=community)


@scoped_cache
def grid_details(grid: str) -> tuple[pd.DataFrame, dict[str, int], pd.DataFrame, pd.DataFrame]:
    """Contacts, aggregate population, last patrols and open incidents of one grid."""
    with scoped_conn() as conn:
        return (
            sql.grid_contacts(conn, grid),
            sql.grid_population(conn, grid),
            sql.last_patrols(conn, grid),
            sql.open_incidents(conn, grid),
        )


@scoped_cache(max_entries=16)
def rendered_base(
    base_of: MapBase,
    _grids: gpd.GeoDataFrame,
    _streets: gpd.GeoDataFrame | None,
    _communities: gpd.GeoDataFrame | None,
    *,
    lang: str,
    view: tuple[float, float, float] | None,
    tile_url: str | None,
    attribution: str,
    max_zoom: int,
) -> map_render.RenderedMap:
    """The part of the 一张图 map no filter changes (:func:`dashboard.maps.onemap_base`:
    basemap, grid, community and street outlines) rendered once
    (:func:`dashboard.map_render.render`), cached by ``base_of``, from which the frames were
    read, and the view it opens at, per scope (:func:`dashboard.data.scoped_cache`: the
    grids of one jurisdiction are never served to another). While it stays the same, the
    browser keeps the map and a filter change only swaps the layers
    (:func:`rendered_layers`)."""
    m = onemap_base(
        _grids,
        streets=_streets,
        communities=_communities,
        lang=lang,  # type: ignore[arg-type]
        view=view,
        tile_url=tile_url,
        attribution=attribution,
        max_zoom=max_zoom,
        view_in_url=not base_of.gcj02,
    )
    return map_render.render(m)


@scoped_cache(max_entries=64)
def rendered_layers(view_of: OverviewQuery, _layers: OneMapLayers, *, lang: str) -> str:
    """The 一张图 map's filter-dependent layers of ``_layers``
    (:func:`dashboard.maps.onemap_layers`) rendered once into the script that swaps them
    into the map (:func:`dashboard.map_render.render_layers`), cached by ``view_of``: the
    page's query without what only moves the map (centre, zoom) or opens a panel (grid),
    from which ``_layers`` was built, and by scope (:func:`dashboard.data.scoped_cache`).
    A rerun that changes no filter (a click, the map reporting its centre) then costs
    nothing here."""
    return map_render.render_layers(onemap_layers(_layers, lang=lang))  # type: ignore[arg-type]
