"""Read queries of the 一张图 (overview) page: the map's point and line layers, clipped to the
filters in PostGIS so that only what is drawn leaves the database, and the facts of one grid's
panel (contacts, aggregate population counts, last patrols, open incidents).

Every statement is ``sqlalchemy.text`` with bound parameters; ``None`` means "no filter".
Spatial reads return GeoDataFrames in EPSG:4326 (:func:`store.queries.read_gdf`). Population
figures leave the database as sums per grid only: no resident row is ever read here.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import pandas as pd
from sqlalchemy import Connection, text

from store.crs import WEB_EPSG
from store.queries import read_gdf

#: Simplification tolerance of grid outlines for the map, in degrees (~1 m): invisible at
#: street zoom, and it drops the redundant vertices of digitised boundaries.
GRID_SIMPLIFY_DEG = 1e-5
#: Tolerance of the outlines of the whole district's map (~5 m): it opens ~3 zoom levels out
#: (a pixel is ~30 m), and its 1,500 grids would otherwise be most of the page sent.
DISTRICT_SIMPLIFY_DEG = 5e-5

_GRIDS = text(
    """
    SELECT g.code, g.name, g.community_code, c.name AS community_name, g.street_code,
           g.households, s.name AS worker_name,
           ST_AsBinary(ST_Transform(ST_SimplifyPreserveTopology(g.geom, :tol), :srid)) AS geom
      FROM grid g
      JOIN admin_unit c ON c.code = g.community_code
      LEFT JOIN staff s ON s.id = g.worker_id
     WHERE (CAST(:street AS text) IS NULL OR g.street_code = :street)
       AND (CAST(:community AS text) IS NULL OR g.community_code = :community)
       AND (g.valid_to IS NULL OR g.valid_to > CURRENT_DATE)
     ORDER BY g.code
    """
)


def map_grids(
    conn: Connection,
    *,
    street: str | None = None,
    community: str | None = None,
    simplify_deg: float = GRID_SIMPLIFY_DEG,
) -> gpd.GeoDataFrame:
    """Current grids (code, name, community, households, worker name), outlines simplified
    by ``simplify_deg`` in PostGIS (topology kept)."""
    params = {"street": street, "community": community, "tol": simplify_deg, "srid": WEB_EPSG}
    return read_gdf(conn, _GRIDS, params)


_ADMIN_OUTLINES = text(
    """
    SELECT code, level, name, parent_code,
           ST_AsBinary(ST_Transform(ST_SimplifyPreserveTopology(geom, :tol), :srid)) AS geom
      FROM admin_unit
     WHERE level = :level AND (CAST(:street AS text) IS NULL OR left(code, 9) = left(:street, 9))
     ORDER BY code
    """
)


def map_admin_units(
    conn: Connection,
    level: str,
    *,
    street: str | None = None,
    simplify_deg: float = GRID_SIMPLIFY_DEG,
) -> gpd.GeoDataFrame:
    """Streets or communities (``level``) as :func:`store.queries.admin_units` reads them,
    outlines simplified by ``simplify_deg`` in PostGIS, for the map."""
    params = {"level": level, "street": street, "tol": simplify_deg, "srid": WEB_EPSG}
    return read_gdf(conn, _ADMIN_OUTLINES, params)


_INCIDENTS = text(
    """
    SELECT i.code, i.title, i.category_code, left(i.category_code, 2) AS category_group,
           c.name_zh AS category_zh, c.name_en AS category_en, i.status, i.grid_code,
           i.reported_at, ST_AsBinary(ST_Transform(i.geom, :srid)) AS geom
      FROM incident i
      JOIN incident_category c ON c.code = i.category_code
     WHERE (CAST(:street AS text) IS NULL OR i.street_code = :street)
       AND (CAST(:community AS text) IS NULL OR left(i.grid_code, 12) = :community)
       AND (CAST(:grid AS text) IS NULL OR i.grid_code = :grid)
       AND i.reported_at >= :since AND i.reported_at < :until
       AND (CAST(:category AS text) IS NULL
            OR left(i.category_code, length(CAST(:category AS text))) = :category)
       AND (CAST(:status AS text) IS NULL OR i.status = :status)
     ORDER BY i.reported_at
    """
)


def map_incidents(
    conn: Connection,
    *,
    since: Any,
    until: Any,
    street: str | None = None,
    community: str | None = None,
    grid: str | None = None,
    category: str | None = None,
    status: str | None = None,
) -> gpd.GeoDataFrame:
    """Incidents reported in ``[since, until)`` matching the filters (``category`` a
    2-digit group or 4-digit subcategory; ``status`` the current status)."""
    params = {
        "street": street,
        "community": community,
        "grid": grid,
        "since": since,
        "until": until,
        "category": category,
        "status": status,
        "srid": WEB_EPSG,
    }
    return read_gdf(conn, _INCIDENTS, params)


_INCIDENT = text(
    """
    SELECT i.code, i.title, i.category_code, c.name_zh AS category_zh,
           c.name_en AS category_en, i.status, i.grid_code, i.street_code, i.reported_at,
           i.address, ST_AsBinary(ST_Transform(i.geom, :srid)) AS geom
      FROM incident i
      JOIN incident_category c ON c.code = i.category_code
     WHERE i.code = :code
    """
)


def incident_by_code(conn: Connection, code: str) -> gpd.GeoDataFrame:
    """The incident with this code (zero or one row), whatever the filters: a link to it
    must find it."""
    return read_gdf(conn, _INCIDENT, {"code": code, "srid": WEB_EPSG})


_KEY_PLACES = text(
    """
    SELECT p.code, p.name, p.kind, p.address, p.grid_code,
           ST_AsBinary(ST_Transform(p.geom, :srid)) AS geom
      FROM key_place p
     WHERE (CAST(:street AS text) IS NULL OR p.street_code = :street)
       AND (CAST(:community AS text) IS NULL OR left(p.grid_code, 12) = :community)
     ORDER BY p.code
    """
)


def key_places(
    conn: Connection, *, street: str | None = None, community: str | None = None
) -> gpd.GeoDataFrame:
    """Key places (重点场所) with their kind."""
    return read_gdf(conn, _KEY_PLACES, {"street": street, "community": community, "srid": WEB_EPSG})


_CAMERAS = text(
    """
    SELECT f.code, f.name, f.kind, f.view_radius_m, f.grid_code,
           ST_AsBinary(ST_Transform(f.geom, :srid)) AS geom
      FROM facility f
     WHERE left(f.kind, 6) = 'camera'
       AND (CAST(:street AS text) IS NULL OR f.street_code = :street)
       AND (CAST(:community AS text) IS NULL OR left(f.grid_code, 12) = :community)
     ORDER BY f.code
    """
)


def cameras(
    conn: Connection, *, street: str | None = None, community: str | None = None
) -> gpd.GeoDataFrame:
    """Surveillance cameras (天网, 雪亮工程) with their kind and view radius."""
    return read_gdf(conn, _CAMERAS, {"street": street, "community": community, "srid": WEB_EPSG})


_TRACKS = text(
    """
    SELECT p.id, s.name AS worker_name, p.grid_code, p.started_at, p.ended_at,
           round(p.length_m) AS length_m,
           ST_AsBinary(ST_Transform(ST_Simplify(p.geom, :tol), :srid)) AS geom
      FROM patrol p
      JOIN staff s ON s.id = p.worker_id
     WHERE (CAST(:street AS text) IS NULL OR p.street_code = :street)
       AND (CAST(:community AS text) IS NULL OR left(p.grid_code, 12) = :community)
       AND p.started_at >= :since AND p.started_at < :until
     ORDER BY p.started_at
    """
)


def patrol_tracks(
    conn: Connection,
    *,
    since: Any,
    until: Any,
    street: str | None = None,
    community: str | None = None,
) -> gpd.GeoDataFrame:
    """Patrol tracks (lines) started in ``[since, until)``, simplified to ~1 m."""
    params = {
        "street": street,
        "community": community,
        "since": since,
        "until": until,
        "tol": GRID_SIMPLIFY_DEG,
        "srid": WEB_EPSG,
    }
    return read_gdf(conn, _TRACKS, params)


_PATROL_SPAN = text(
    """
    SELECT min(p.started_at), max(p.started_at)
      FROM patrol p
     WHERE (CAST(:street AS text) IS NULL OR p.street_code = :street)
    """
)


def patrol_span(conn: Connection, *, street: str | None = None) -> tuple[Any, Any] | None:
    """First and last patrol start in the store (aware datetimes); None without patrols.
    Compliance is judged only on days the store has patrol data for."""
    first, last = conn.execute(_PATROL_SPAN, {"street": street}).one()
    return None if first is None else (first, last)


# --- one grid's panel ----------------------------------------------------------------------

_GRID_CONTACTS = text(
    """
    SELECT 'grid_worker' AS role, s.name, p.phone, 0 AS ord
      FROM grid g JOIN staff s ON s.id = g.worker_id
      LEFT JOIN staff_phone p ON p.id = s.id
     WHERE g.code = :grid
    UNION
    SELECT a.role, s.name, p.phone, 1 AS ord
      FROM staff_assignment a JOIN staff s ON s.id = a.staff_id
      LEFT JOIN staff_phone p ON p.id = s.id
     WHERE a.grid_code = :grid
       AND (a.valid_to IS NULL OR a.valid_to >= CURRENT_DATE)
       AND (s.active_to IS NULL OR s.active_to >= CURRENT_DATE)
     ORDER BY ord, role, name
    """
)


def grid_contacts(conn: Connection, grid: str) -> pd.DataFrame:
    """The grid's worker, then the staff assigned to it: ``role``, ``name``, ``phone``
    (from ``staff_phone``: masked by the database except the user's own and for the
    district role, issue 7; the page masks again what it shows)."""
    rows = conn.execute(_GRID_CONTACTS, {"grid": grid}).all()
    frame = pd.DataFrame(rows, columns=["role", "name", "phone", "ord"]).drop(columns="ord")
    # the worker is often also assigned to the grid: list each person and role once
    return frame.drop_duplicates(["role", "name", "phone"]).reset_index(drop=True)


_GRID_POPULATION = text(
    """
    SELECT g.households,
           count(h.id) AS housing_units,
           count(h.id) FILTER (WHERE h.occupancy = 'rented') AS rented,
           count(h.id) FILTER (WHERE h.occupancy = 'vacant') AS vacant,
           COALESCE(sum(h.n_floating), 0) AS floating,
           COALESCE(sum(h.n_elderly_alone), 0) AS elderly_alone,
           COALESCE(sum(h.n_low_income), 0) AS low_income,
           COALESCE(sum(h.n_disabled), 0) AS disabled,
           COALESCE(sum(h.n_veterans), 0) AS veterans,
           COALESCE(sum(h.n_party_members), 0) AS party_members
      FROM grid g
      LEFT JOIN housing_unit h ON h.grid_code = g.code
     WHERE g.code = :grid
     GROUP BY g.households
    """
)

#: The aggregate figures :func:`grid_population` returns, in order.
POPULATION_FIGURES = (
    "households",
    "housing_units",
    "rented",
    "vacant",
    "floating",
    "elderly_alone",
    "low_income",
    "disabled",
    "veterans",
    "party_members",
)


def grid_population(conn: Connection, grid: str) -> dict[str, int]:
    """Aggregate counts of one grid (households, housing units, rented, vacant, and the
    residents by category summed over its housing units); empty when the grid is unknown.
    The sensitive special groups are not read."""
    row = conn.execute(_GRID_POPULATION, {"grid": grid}).mappings().one_or_none()
    return {} if row is None else {k: int(row[k]) for k in POPULATION_FIGURES}


_LAST_PATROLS = text(
    """
    SELECT s.name AS worker_name, p.started_at, p.ended_at, round(p.length_m) AS length_m
      FROM patrol p JOIN staff s ON s.id = p.worker_id
     WHERE p.grid_code = :grid
     ORDER BY p.started_at DESC
     LIMIT :n
    """
)


def last_patrols(conn: Connection, grid: str, n: int = 5) -> pd.DataFrame:
    """The ``n`` latest patrols in the grid: worker, start, end, length in metres."""
    rows = conn.execute(_LAST_PATROLS, {"grid": grid, "n": n}).all()
    return pd.DataFrame(rows, columns=["worker_name", "started_at", "ended_at", "length_m"])


_OPEN_INCIDENTS = text(
    """
    SELECT i.code, i.title, c.name_zh AS category_zh, c.name_en AS category_en, i.status,
           i.reported_at, COALESCE(i.extended_due_at, i.due_at) AS deadline
      FROM incident i JOIN incident_category c ON c.code = i.category_code
     WHERE i.grid_code = :grid AND i.status <> 'closed'
     ORDER BY i.reported_at
    """
)


def open_incidents(conn: Connection, grid: str) -> pd.DataFrame:
    """The grid's incidents open now, oldest first, with the deadline in force."""
    rows = conn.execute(_OPEN_INCIDENTS, {"grid": grid}).all()
    cols = ["code", "title", "category_zh", "category_en", "status", "reported_at", "deadline"]
    return pd.DataFrame(rows, columns=cols)


# --- incidents aggregated per grid (the map zoomed out over many streets) ---------------------

_INCIDENT_COUNTS = text(
    """
    WITH hits AS (
        SELECT i.grid_code,
               CASE WHEN :by_status THEN i.status ELSE left(i.category_code, 2) END AS key
          FROM incident i
         WHERE (CAST(:street AS text) IS NULL OR i.street_code = :street)
           AND (CAST(:community AS text) IS NULL OR left(i.grid_code, 12) = :community)
           AND i.reported_at >= :since AND i.reported_at < :until
           AND (CAST(:category AS text) IS NULL
                OR left(i.category_code, length(CAST(:category AS text))) = :category)
           AND (CAST(:status AS text) IS NULL OR i.status = :status)
           AND i.grid_code IS NOT NULL
    ), per_key AS (
        SELECT grid_code, key, count(*) AS n FROM hits GROUP BY grid_code, key
    ), per_grid AS (
        SELECT grid_code, sum(n)::int AS count,
               (array_agg(key ORDER BY n DESC, key))[1] AS top_key
          FROM per_key GROUP BY grid_code
    )
    SELECT p.grid_code, g.name, p.count, p.top_key,
           ST_AsBinary(ST_Transform(ST_PointOnSurface(g.geom), :srid)) AS geom
      FROM per_grid p
      JOIN grid g ON g.code = p.grid_code
     ORDER BY p.grid_code
    """
)


def incident_counts(
    conn: Connection,
    *,
    since: Any,
    until: Any,
    street: str | None = None,
    community: str | None = None,
    category: str | None = None,
    status: str | None = None,
    by_status: bool = False,
) -> gpd.GeoDataFrame:
    """The incidents :func:`map_incidents` reads, counted per grid in PostGIS: ``grid_code``,
    ``name``, ``count`` and ``top_key`` (the most frequent category group, or status with
    ``by_status``), at a point inside the grid. What the map draws when there are too many
    incidents to send one by one; incidents outside every grid are not counted."""
    params = {
        "street": street,
        "community": community,
        "since": since,
        "until": until,
        "category": category,
        "status": status,
        "by_status": by_status,
        "srid": WEB_EPSG,
    }
    return read_gdf(conn, _INCIDENT_COUNTS, params)


_INCIDENT_TOTAL = text(
    """
    SELECT count(*)
      FROM incident i
     WHERE (CAST(:street AS text) IS NULL OR i.street_code = :street)
       AND (CAST(:community AS text) IS NULL OR left(i.grid_code, 12) = :community)
       AND (CAST(:grid AS text) IS NULL OR i.grid_code = :grid)
       AND i.reported_at >= :since AND i.reported_at < :until
       AND (CAST(:category AS text) IS NULL
            OR left(i.category_code, length(CAST(:category AS text))) = :category)
       AND (CAST(:status AS text) IS NULL OR i.status = :status)
    """
)


def incident_total(
    conn: Connection,
    *,
    since: Any,
    until: Any,
    street: str | None = None,
    community: str | None = None,
    grid: str | None = None,
    category: str | None = None,
    status: str | None = None,
) -> int:
    """How many incidents :func:`map_incidents` would read (to choose points or counts)."""
    params = {
        "street": street,
        "community": community,
        "grid": grid,
        "since": since,
        "until": until,
        "category": category,
        "status": status,
    }
    return int(conn.execute(_INCIDENT_TOTAL, params).scalar_one())
