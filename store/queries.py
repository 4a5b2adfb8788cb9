"""Every read query of the application, as ``sqlalchemy.text`` with bound parameters.

Spatial reads return GeoDataFrames in EPSG:4326 (web output): geometries leave the database
as WKB in the CRS asked for, and :func:`read_gdf` fails loudly when a query has no geometry.
Filters are optional parameters; ``None`` means "no filter" (``:p IS NULL OR col = :p``), so
no SQL is ever built from user input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, TextClause, text

from store.crs import WEB_EPSG


def read_gdf(
    conn: Connection,
    sql: TextClause,
    params: Mapping[str, Any] | None = None,
    *,
    geom_col: str = "geom",
    crs: int = WEB_EPSG,
) -> gpd.GeoDataFrame:
    """Run ``sql`` (whose ``geom_col`` is WKB in ``crs``) and return a GeoDataFrame.

    Raises
    ------
    KeyError
        When the result has no ``geom_col`` column.
    """
    result = conn.execute(sql, dict(params or {}))
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    if geom_col not in frame.columns:
        raise KeyError(f"query result has no geometry column {geom_col!r}: {list(frame)}")
    geoms = shapely.from_wkb(frame.pop(geom_col).to_numpy(dtype=object))
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=crs), crs=crs)


_ADMIN_UNITS = text(
    """
    SELECT code, level, name, parent_code,
           ST_AsBinary(ST_Transform(geom, :srid)) AS geom
      FROM admin_unit
     WHERE level = :level AND (CAST(:street AS text) IS NULL OR left(code, 9) = left(:street, 9))
     ORDER BY code
    """
)


def admin_units(
    conn: Connection, level: str, *, street_code: str | None = None
) -> gpd.GeoDataFrame:
    """Streets or communities (``level``), optionally only within one street."""
    return read_gdf(conn, _ADMIN_UNITS, {"level": level, "street": street_code, "srid": WEB_EPSG})


_GRIDS = text(
    """
    SELECT g.code, g.name, g.kind, g.community_code, c.name AS community_name,
           g.street_code, g.households, s.name AS worker_name,
           (SELECT count(*) FROM building b WHERE b.grid_code = g.code) AS buildings,
           ST_AsBinary(ST_Transform(g.geom, :srid)) AS geom
      FROM grid g
      JOIN admin_unit c ON c.code = g.community_code
      LEFT JOIN staff s ON s.id = g.worker_id
     WHERE (CAST(:street AS text) IS NULL OR g.street_code = :street)
       AND (g.valid_to IS NULL OR g.valid_to > CURRENT_DATE)
     ORDER BY g.code
    """
)


def grids(conn: Connection, *, street_code: str | None = None) -> gpd.GeoDataFrame:
    """Current grids with community, households, responsible worker and building count."""
    return read_gdf(conn, _GRIDS, {"street": street_code, "srid": WEB_EPSG})


_BUILDINGS = text(
    """
    SELECT b.code, b.address, b.floors, b.use, b.grid_code,
           ST_AsBinary(ST_Transform(b.geom, :srid)) AS geom
      FROM building b
     WHERE (CAST(:street AS text) IS NULL OR b.street_code = :street)
     ORDER BY b.code
    """
)


def buildings(conn: Connection, *, street_code: str | None = None) -> gpd.GeoDataFrame:
    """Buildings as points."""
    return read_gdf(conn, _BUILDINGS, {"street": street_code, "srid": WEB_EPSG})


_INCIDENTS = text(
    """
    SELECT i.code, i.title, i.category_code, c.parent_code AS category_group,
           c.name_zh AS category_zh, c.name_en AS category_en, i.status, i.tier,
           i.reported_at, i.grid_code,
           ST_AsBinary(ST_Transform(i.geom, :srid)) AS geom
      FROM incident i
      JOIN incident_category c ON c.code = i.category_code
     WHERE (CAST(:street AS text) IS NULL OR i.street_code = :street)
       AND (CAST(:since AS timestamptz) IS NULL OR i.reported_at >= :since)
       AND (CAST(:until AS timestamptz) IS NULL OR i.reported_at < :until)
     ORDER BY i.reported_at
    """
)


def incidents(
    conn: Connection,
    *,
    street_code: str | None = None,
    since: Any = None,
    until: Any = None,
) -> gpd.GeoDataFrame:
    """Incidents reported in ``[since, until)`` with category names and current status."""
    return read_gdf(
        conn,
        _INCIDENTS,
        {"street": street_code, "since": since, "until": until, "srid": WEB_EPSG},
    )


@dataclass(frozen=True)
class StoreSummary:
    """How much the store holds, and the time span of its incidents."""

    streets: int
    grids: int
    buildings: int
    incidents: int
    first_reported: Any
    last_reported: Any


_SUMMARY = text(
    """
    SELECT (SELECT count(*) FROM admin_unit WHERE level = 'street'),
           (SELECT count(*) FROM grid),
           (SELECT count(*) FROM building),
           (SELECT count(*) FROM incident),
           (SELECT min(reported_at) FROM incident),
           (SELECT max(reported_at) FROM incident)
    """
)


def summary(conn: Connection) -> StoreSummary:
    """Row counts of the main tables (an empty store has zeros)."""
    return StoreSummary(*conn.execute(_SUMMARY).one())


_STREETS = text("SELECT code, name FROM admin_unit WHERE level = 'street' ORDER BY code")


def street_names(conn: Connection) -> dict[str, str]:
    """Street code → name, for filters."""
    return {code: name for code, name in conn.execute(_STREETS)}


# --- hotspot analysis (geo/units.py, geo/hotspots.py) ---------------------------------------
# Shared incident filter of the queries below (street, [since, until), category prefix):
# ``category`` is a top-level code ("03") or a subcategory ("0302"); None = all.

_GRID_INCIDENT_COUNTS = text(
    """
    WITH cur AS (
        SELECT g.code, g.name, g.community_code, g.geom
          FROM grid g
         WHERE (CAST(:street AS text) IS NULL OR g.street_code = :street)
           AND (g.valid_to IS NULL OR g.valid_to > CURRENT_DATE)
    ), inc AS (
        SELECT i.grid_code, i.geom
          FROM incident i
         WHERE (CAST(:street AS text) IS NULL OR i.street_code = :street)
           AND (CAST(:since AS timestamptz) IS NULL OR i.reported_at >= :since)
           AND (CAST(:until AS timestamptz) IS NULL OR i.reported_at < :until)
           AND (CAST(:category AS text) IS NULL
                OR left(i.category_code, length(CAST(:category AS text))) = :category)
    ), placed AS (
        -- the stored grid when it is current; else (retired or no grid) the current grid
        -- the point lies in, the lowest code on a shared edge; NULL outside every grid
        SELECT COALESCE(
                 c.code,
                 (SELECT g2.code
                    FROM grid g2
                   WHERE ST_Intersects(g2.geom, inc.geom)
                     AND (g2.valid_to IS NULL OR g2.valid_to > CURRENT_DATE)
                     AND (CAST(:street AS text) IS NULL OR g2.street_code = :street)
                   ORDER BY g2.code
                   LIMIT 1)
               ) AS code
          FROM inc
          LEFT JOIN cur c ON c.code = inc.grid_code
    ), n AS (
        SELECT code, count(*) AS incidents FROM placed WHERE code IS NOT NULL GROUP BY code
    )
    SELECT cur.code, cur.name, cur.community_code, COALESCE(n.incidents, 0) AS incidents,
           ST_AsBinary(ST_Transform(cur.geom, :srid)) AS geom
      FROM cur
      LEFT JOIN n ON n.code = cur.code
     ORDER BY cur.code
    """
)


def grid_incident_counts(
    conn: Connection,
    *,
    street_code: str | None = None,
    since: Any = None,
    until: Any = None,
    category: str | None = None,
) -> gpd.GeoDataFrame:
    """Current grids with the number of incidents in each (``incidents``; 0 included).

    Incidents are counted on their stored ``grid_code``; one whose grid has since been
    retired (or that has none) is placed by location in a current grid. Incidents outside
    every current grid are not in any row: compare with :func:`incident_count`.
    """
    params = {
        "street": street_code,
        "since": since,
        "until": until,
        "category": category,
        "srid": WEB_EPSG,
    }
    return read_gdf(conn, _GRID_INCIDENT_COUNTS, params)


_INCIDENT_COUNT = text(
    """
    SELECT count(*)
      FROM incident i
     WHERE (CAST(:street AS text) IS NULL OR i.street_code = :street)
       AND (CAST(:since AS timestamptz) IS NULL OR i.reported_at >= :since)
       AND (CAST(:until AS timestamptz) IS NULL OR i.reported_at < :until)
       AND (CAST(:category AS text) IS NULL
            OR left(i.category_code, length(CAST(:category AS text))) = :category)
    """
)


def incident_count(
    conn: Connection,
    *,
    street_code: str | None = None,
    since: Any = None,
    until: Any = None,
    category: str | None = None,
) -> int:
    """Number of incidents matching the filters (same filters as the hotspot queries)."""
    params = {"street": street_code, "since": since, "until": until, "category": category}
    return int(conn.execute(_INCIDENT_COUNT, params).scalar_one())


# One MultiPoint as WKB rather than a row per incident: for a million incidents a row-wise
# fetch costs ~30 s in Python, this ~2 s (transforming the collection once, not each point).
_INCIDENT_LONLAT = text(
    """
    SELECT ST_AsBinary(ST_Transform(ST_Collect(i.geom), :srid))
      FROM incident i
     WHERE (CAST(:street AS text) IS NULL OR i.street_code = :street)
       AND (CAST(:since AS timestamptz) IS NULL OR i.reported_at >= :since)
       AND (CAST(:until AS timestamptz) IS NULL OR i.reported_at < :until)
       AND (CAST(:category AS text) IS NULL
            OR left(i.category_code, length(CAST(:category AS text))) = :category)
    """
)


def incident_lonlat(
    conn: Connection,
    *,
    street_code: str | None = None,
    since: Any = None,
    until: Any = None,
    category: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Longitudes and latitudes (EPSG:4326) of the matching incidents, as float arrays.

    Plain coordinates rather than a GeoDataFrame: binning a million points into H3 cells
    needs nothing else, and building point geometries would cost more than the binning.
    """
    params = {
        "street": street_code,
        "since": since,
        "until": until,
        "category": category,
        "srid": WEB_EPSG,
    }
    wkb = conn.execute(_INCIDENT_LONLAT, params).scalar_one()
    if wkb is None:
        return np.empty(0), np.empty(0)
    xy = shapely.get_coordinates(shapely.from_wkb(bytes(wkb)))
    return xy[:, 0].copy(), xy[:, 1].copy()
