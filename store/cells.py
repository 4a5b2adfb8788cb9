"""The H3 cells of every incident, computed once when it is written (migration 0009).

Hot spots on hexagons count incidents per H3 cell. Reading a million points and finding
each one's cell in Python took two of the 2.4 s of a district's Gi*; with the cell stored
on the incident, PostgreSQL counts per cell (``GROUP BY``) and sends a few tens of
thousands of rows instead (:func:`store.queries.incident_cell_counts`).

The cell is stored at each resolution the analyses offer (:data:`CELL_RESOLUTIONS`, the
automatic choice's range in :mod:`geo.units`), not at one resolution with the coarser ones
derived by ``cell_to_parent``: H3 is not exactly hierarchical — a parent only
approximately covers its seven children — and about 7 % of points lie in another cell at
resolution *r* than the parent of their cell at *r* + 1, which would change the counts.
Other resolutions are computed from the points as before.

There is no h3 extension in this PostgreSQL, so cells are computed in Python with the same
function the analyses use (:func:`points_to_cells`), from the stored coordinates
transformed to EPSG:4326 as :func:`store.queries.incident_lonlat` does: the stored cell is
exactly the cell the reading path would compute. The loader computes them in its staging
frame (:func:`point_cells`) and writes them with the rows; the demo writer likewise
(:func:`with_incident_cells`). Rules kept by the database:

* the cells of a row are all set or all NULL (``ck_incident_cells_all_or_none``);
* a row whose ``geom`` changes without its cells changing in the same statement loses them
  (trigger ``incident_cells_stale``), so a stored cell never belongs to an old place;
* the counts are an index-only scan of ``ix_incident_cells`` (street and report time, with
  the grid, the category and the cells included: every column the filters and the
  row-level security policy read), ~110 MB for a million incidents instead of the table;
* a row without cells is read as a point and binned in Python (a partial index,
  ``ix_incident_without_cells``, finds those rows), so results never depend on the cells
  having been filled — only the time does. :func:`fill_incident_cells` fills them.
"""

from __future__ import annotations

from typing import Any

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from sqlalchemy import Connection, text

from store.queries import _incident_sql, _to_web, copy_binary_columns, copy_float_columns
from store.write import copy_frame

#: Resolutions whose cell every incident carries (columns ``h3_r7`` … ``h3_r11``).
CELL_RESOLUTIONS: tuple[int, ...] = (7, 8, 9, 10, 11)


def cell_column(resolution: int) -> str:
    """The incident column holding the cell at ``resolution`` (one of
    :data:`CELL_RESOLUTIONS`)."""
    if resolution not in CELL_RESOLUTIONS:
        raise ValueError(
            f"incidents store their H3 cell at resolutions {CELL_RESOLUTIONS}, not {resolution!r}"
        )
    return f"h3_r{int(resolution)}"


#: The incident columns of the cells, finest last.
CELL_COLUMNS: tuple[str, ...] = tuple(cell_column(r) for r in CELL_RESOLUTIONS)


def points_to_cells(
    lon: NDArray[np.float64], lat: NDArray[np.float64], resolution: int
) -> NDArray[np.int64]:
    """H3 cell (integer) of each point (degrees, EPSG:4326 ≈ CGCS2000).

    One C call per point through h3's integer API (~0.6 µs each): a million points take
    well under a second, far less than building point geometries would. The one
    implementation of point → cell: the stored cells and :func:`geo.units.points_to_cells`
    both come from here.
    """
    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    if lon.shape != lat.shape:
        raise ValueError(f"lon and lat differ in length: {lon.shape} vs {lat.shape}")
    n = lon.size
    res = [int(resolution)] * n
    return np.fromiter(
        map(h3i.latlng_to_cell, lat.tolist(), lon.tolist(), res), dtype=np.int64, count=n
    )


def incident_cells(x: NDArray[np.float64], y: NDArray[np.float64]) -> dict[str, NDArray]:
    """The cell columns of incidents at storage-CRS coordinates ``x``, ``y`` (EPSG:4490),
    transformed to EPSG:4326 exactly as the reading path transforms them."""
    lon, lat = _to_web(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return {cell_column(r): points_to_cells(lon, lat, r) for r in CELL_RESOLUTIONS}


def point_cells(geoms: NDArray[np.object_]) -> dict[str, pd.arrays.IntegerArray]:
    """The cell columns of incident geometries (storage CRS): the cells of each non-empty
    point, NA for a row without one (no geometry, or not a point). The loader stages
    these beside the rows, so an incident is written with its cells in the same
    ``INSERT`` (no second pass over the table), and the values are those
    :func:`fill_incident_cells` would store: same coordinates, same transform, same
    function."""
    geoms = np.asarray(geoms, dtype=object)
    has = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    has[has] = shapely.get_type_id(geoms[has]) == 0
    xy = shapely.get_coordinates(geoms[has])
    cells = incident_cells(xy[:, 0], xy[:, 1])
    out = {}
    for name, values in cells.items():
        full = np.zeros(len(geoms), dtype=np.int64)
        full[has] = values
        out[name] = pd.arrays.IntegerArray(full, ~has)
    return out


def with_incident_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (incident rows with a ``geom`` column of points, storage CRS) with the cell
    columns added, for a writer that copies incident rows straight into the table (the
    demo). Rows without a point get no cells."""
    out = frame.copy()
    for name, values in point_cells(np.asarray(frame["geom"].values, dtype=object)).items():
        out[name] = pd.Series(values, index=frame.index)
    return out


_UNCELLED = text(
    """
    SELECT CAST(i.id AS float8), ST_X(i.geom), ST_Y(i.geom)
      FROM incident i
     WHERE i.h3_r7 IS NULL AND i.geom IS NOT NULL
    """
)
_FILL_TABLE = text(
    "CREATE TEMP TABLE incident_cells_fill (id bigint, h3_r7 bigint, h3_r8 bigint, "
    "h3_r9 bigint, h3_r10 bigint, h3_r11 bigint) ON COMMIT DROP"
)
_FILL = text(
    """
    UPDATE incident i
       SET h3_r7 = f.h3_r7, h3_r8 = f.h3_r8, h3_r9 = f.h3_r9, h3_r10 = f.h3_r10,
           h3_r11 = f.h3_r11
      FROM incident_cells_fill f
     WHERE i.id = f.id
    """
)

#: Ids are read as float8 (one binary COPY of floats); exact below this.
_EXACT_FLOAT_INT = 2**53


def fill_incident_cells(conn: Connection) -> int:
    """Compute and store the cells of every incident that has none (written by a path that
    does not set them, moved since, or stored before migration 0009); returns how many.

    In the caller's transaction. A row is found through the partial index of rows without
    cells, so the call costs next to nothing when there are none. It updates the rows, so
    the KPI triggers mark their days for a refresh (nothing they sum changes; the loader
    refreshes those days anyway)."""
    rows = copy_float_columns(conn, _UNCELLED, {}, 3)
    if not len(rows):
        return 0
    if rows[:, 0].max() >= _EXACT_FLOAT_INT:
        raise ValueError("incident ids beyond 2**53 cannot be read as float8")
    ids = rows[:, 0].astype(np.int64)
    cells = incident_cells(rows[:, 1], rows[:, 2])
    conn.execute(text("DROP TABLE IF EXISTS incident_cells_fill"))
    conn.execute(_FILL_TABLE)
    copy_frame(conn, "incident_cells_fill", pd.DataFrame({"id": ids, **cells}))
    conn.execute(_FILL)
    conn.execute(text("DROP TABLE incident_cells_fill"))
    return len(ids)


def cells_missing(conn: Connection) -> int:
    """Number of incidents without their cells (served by the slower path until filled)."""
    return int(conn.execute(text("SELECT count(*) FROM incident WHERE h3_r7 IS NULL")).scalar_one())


# --- reading: counts per stored cell, points of the rows without cells ----------------------

#: Per resolution: incidents matching the hotspot filters that carry their cells, counted
#: per cell (``h3_r7 IS NOT NULL``: all of a row's cells are set or none is). The column is
#: one of the constants above, spliced into a constant text; the filters stay bound.
_CELL_COUNTS = {
    r: _incident_sql(
        """
        SELECT i.{column} AS cell, count(*) AS n
          FROM incident i
         WHERE {incident_filter}
           AND i.h3_r7 IS NOT NULL
         GROUP BY i.{column}
        """.replace("{column}", cell_column(r))
    )
    for r in CELL_RESOLUTIONS
}

#: The complement: points of the matching incidents without cells (through the partial
#: index ``ix_incident_without_cells``; usually none), as in ``incident_lonlat``.
_UNCELLED_LONLAT = _incident_sql(
    """
    SELECT ST_X(i.geom), ST_Y(i.geom)
      FROM incident i
     WHERE {incident_filter}
       AND i.h3_r7 IS NULL
    """
)


def incident_cell_counts(
    conn: Connection,
    resolution: int,
    *,
    street_code: str | None = None,
    since: Any = None,
    until: Any = None,
    category: str | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Incidents matching the hotspot filters (as :func:`store.queries.incident_lonlat`):
    ``(cells, counts, lon, lat)`` — the stored cells at ``resolution`` (one of
    :data:`CELL_RESOLUTIONS`) with their counts, counted by the database, and the
    EPSG:4326 points of the matching incidents that have no cells yet."""
    params = {"street": street_code, "since": since, "until": until, "category": category}
    pairs = copy_binary_columns(conn, _CELL_COUNTS[_check(resolution)], params, 2, "i8")
    cells, counts = pairs[:, 0].copy(), pairs[:, 1].copy()
    xy = copy_float_columns(conn, _UNCELLED_LONLAT, params, 2)
    lon, lat = _to_web(xy[:, 0], xy[:, 1])
    return cells, counts, lon, lat


def _check(resolution: int) -> int:
    cell_column(resolution)
    return int(resolution)
