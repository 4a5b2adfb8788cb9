"""Every SQL statement of patrol coverage (:mod:`geo.coverage`), as ``sqlalchemy.text`` with
bound parameters.

Coverage cleans GPS tracks and measures them against buildings and roads in Python (numpy
and shapely), because the speed filter is sequential ("from the previous *kept* fix") and
one STRtree query beats a spatial join in the database here (see :mod:`geo.coverage` and
``benchmarks/coverage.py`` for the figures). What the database does is select and ship:

* fixes of one day as a binary COPY of float8 columns parsed by numpy in one step (a
  million fixes in about 1.4 s; a row per fix in Python objects costs ten times that);
* the grids, each worker's own grids, buildings and roads in scope, already transformed
  to the metric CRS the caller names;
* :func:`buildings_passed_postgis`, the same building test done in PostGIS
  (``ST_DWithin`` on a GiST index), kept as the measured alternative and as a cross-check
  of the Python path in the tests.

Scope: ``street`` ``None`` means every street. With a street, the fixes read are the whole
day of every worker who owns the street (``patrol_fix.street_code``) or left a fix in one
of its grids, so a neighbour walking the boundary road counts for the buildings there too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import shapely
from numpy.typing import NDArray
from sqlalchemy import Connection, text

from store.queries import copy_csv_frame, copy_float_columns


@dataclass(frozen=True)
class RawFixes:
    """One period's fixes as arrays, sorted by worker then time (storage CRS degrees)."""

    worker: NDArray[np.int64]
    t: NDArray[np.float64]
    accuracy: NDArray[np.float64]
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.t)


_EXTENT = text(
    """
    SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)
      FROM (SELECT ST_Extent(g.geom) AS e
              FROM grid g
             WHERE (CAST(:street AS text) IS NULL OR g.street_code = :street)) x
    """
)


def grid_extent(
    conn: Connection, *, street: str | None = None
) -> tuple[float, float, float, float] | None:
    """``(minx, miny, maxx, maxy)`` in degrees of the grids in scope; ``None`` when there
    are none."""
    row = conn.execute(_EXTENT, {"street": street}).one()
    return None if row[0] is None else (row[0], row[1], row[2], row[3])


# One row per fix, every column float8 (read by a binary COPY straight into numpy): worker
# id, epoch seconds (``date_part`` is float8 already: the same value as
# ``extract(epoch)::float8`` without the numeric detour), accuracy rounded to float4 as it
# always was (NaN when unknown), longitude, latitude. Without a street every fix of the day
# is in scope and the scope scan is skipped.
_FIXES_ALL = text(
    """
    SELECT f.worker_id::float8, date_part('epoch', f.fixed_at),
           COALESCE(f.accuracy_m::real, CAST('NaN' AS real))::float8,
           ST_X(f.geom), ST_Y(f.geom)
      FROM patrol_fix f
     WHERE f.fixed_at >= :t0 AND f.fixed_at < :t1
    """
)
_FIXES_STREET = text(
    """
    SELECT f.worker_id::float8, date_part('epoch', f.fixed_at),
           COALESCE(f.accuracy_m::real, CAST('NaN' AS real))::float8,
           ST_X(f.geom), ST_Y(f.geom)
      FROM patrol_fix f
     WHERE f.fixed_at >= :t0 AND f.fixed_at < :t1
       AND f.worker_id IN (
            SELECT DISTINCT s.worker_id
              FROM patrol_fix s
             WHERE s.fixed_at >= :t0 AND s.fixed_at < :t1
               AND (s.street_code = :street OR left(s.grid_code, 9) = left(:street, 9)))
    """
)


def fixes(
    conn: Connection, start: dt.datetime, end: dt.datetime, *, street: str | None = None
) -> RawFixes:
    """Fixes taken in ``[start, end)`` (time-zone aware), sorted by worker and time.

    ``fixed_at`` bounds use the partition key, so only the month partitions concerned are
    read. The rows leave the database as a binary COPY parsed by numpy in one step (a
    district day, a million fixes: ~1.4 s, against ~3 s for the same fixes packed per
    worker with ``string_agg``, the server's aggregation being the slow part).
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be time-zone aware")
    if street is None:
        cols = copy_float_columns(conn, _FIXES_ALL, {"t0": start, "t1": end}, 5)
    else:
        cols = copy_float_columns(
            conn, _FIXES_STREET, {"t0": start, "t1": end, "street": street}, 5
        )
    worker = cols[:, 0].astype(np.int64)
    t = cols[:, 1]
    order = np.lexsort((t, worker))
    return RawFixes(
        worker=worker[order],
        t=t[order].copy(),
        accuracy=cols[order, 2],
        lon=cols[order, 3],
        lat=cols[order, 4],
    )


_GRIDS = text(
    """
    SELECT g.code AS grid_code, g.name AS grid_name, g.community_code, g.street_code,
           g.worker_id, ST_AsBinary(ST_Transform(g.geom, :metric)) AS geom
      FROM grid g
     WHERE (CAST(:street AS text) IS NULL OR g.street_code = :street)
       AND g.valid_from <= :day AND (g.valid_to IS NULL OR g.valid_to > :day)
     ORDER BY g.code
    """
)


def grids(
    conn: Connection, day: dt.date, metric: int, *, street: str | None = None
) -> pd.DataFrame:
    """Grids valid on ``day`` (``valid_to`` exclusive) with their polygon in ``metric``
    (shapely, column ``geom``)."""
    frame = _frame(conn, _GRIDS, {"day": day, "metric": metric, "street": street})
    frame["geom"] = shapely.from_wkb(frame["geom"].to_numpy(dtype=object))
    return frame


_OWN_GRIDS = text(
    """
    SELECT DISTINCT o.worker_id, o.grid_code
      FROM (SELECT a.staff_id AS worker_id, a.grid_code
              FROM staff_assignment a
             WHERE a.role = 'grid_worker'
               AND a.valid_from <= :day AND (a.valid_to IS NULL OR a.valid_to >= :day)
            UNION ALL
            SELECT g.worker_id, g.code
              FROM grid g
             WHERE g.worker_id IS NOT NULL) o
      JOIN grid g ON g.code = o.grid_code
      JOIN staff s ON s.id = o.worker_id
     WHERE g.valid_from <= :day AND (g.valid_to IS NULL OR g.valid_to > :day)
       AND s.active_from <= :day AND (s.active_to IS NULL OR s.active_to >= :day)
       AND (CAST(:street AS text) IS NULL OR g.street_code = :street)
     ORDER BY o.worker_id, o.grid_code
    """
)


def own_grids(conn: Connection, day: dt.date, *, street: str | None = None) -> pd.DataFrame:
    """``(worker_id, grid_code)``: the grids each grid worker answers for on ``day`` —
    a ``grid_worker`` assignment valid that day (``valid_to`` inclusive) or the grid's
    ``worker_id`` — limited to grids valid that day and staff active that day."""
    return _frame(conn, _OWN_GRIDS, {"day": day, "street": street})


_STAFF = text(
    """
    SELECT s.id AS worker_id, s.code AS worker_code, s.name AS worker_name, s.role,
           s.street_code
      FROM staff s
     WHERE s.id = ANY(:ids)
     ORDER BY s.id
    """
)


def staff(conn: Connection, ids: NDArray[np.int64]) -> pd.DataFrame:
    """Code, name, role and street of the given staff ids."""
    return _frame(conn, _STAFF, {"ids": [int(i) for i in ids]})


_BUILDINGS = text(
    """
    SELECT b.id AS building_id, b.code AS building_code, b.address, b.grid_code,
           b.street_code, ST_X(b.geom) AS lon, ST_Y(b.geom) AS lat
      FROM building b
     WHERE (CAST(:street AS text) IS NULL OR b.street_code = :street)
     ORDER BY b.id
    """
)


_BUILDING_TYPES = {
    "building_id": pa.int64(),
    "building_code": pa.string(),
    "address": pa.string(),
    "grid_code": pa.string(),
    "street_code": pa.string(),
    "lon": pa.float64(),
    "lat": pa.float64(),
}


def buildings(conn: Connection, *, street: str | None = None) -> pd.DataFrame:
    """Buildings in scope with their point in the storage CRS (``lon``, ``lat``).

    Plain coordinates, transformed by the caller with pyproj: for 200,000 buildings that
    is a tenth of the time ``ST_Transform`` takes per row. Read with one CSV ``COPY``
    (:func:`store.queries.copy_csv_frame`: the same frame as a row fetch, a third to a
    fifth of the time).
    """
    return copy_csv_frame(conn, _BUILDINGS, {"street": street}, _BUILDING_TYPES)


_ROADS = text(
    """
    SELECT r.id AS road_id, r.name, r.kind, ST_AsBinary(ST_Transform(r.geom, :metric)) AS geom
      FROM road r
     WHERE r.geom && ST_MakeEnvelope(:minx, :miny, :maxx, :maxy, 4490)
     ORDER BY r.id
    """
)


def roads(conn: Connection, metric: int, bounds: tuple[float, float, float, float]) -> pd.DataFrame:
    """Road centrelines whose box meets ``bounds`` (degrees), as shapely lines in
    ``metric`` (column ``geom``). Roads are shared reference data without codes, so the
    scope is spatial."""
    minx, miny, maxx, maxy = bounds
    frame = _frame(
        conn,
        _ROADS,
        {"metric": metric, "minx": minx, "miny": miny, "maxx": maxx, "maxy": maxy},
    )
    frame["geom"] = shapely.from_wkb(frame["geom"].to_numpy(dtype=object))
    return frame


# --- the same building test in PostGIS (the measured alternative) ---------------------------

_SEGMENT_TABLE = text(
    "CREATE TEMPORARY TABLE coverage_segment "
    "(t float8, x0 float8, y0 float8, x1 float8, y1 float8) ON COMMIT DROP"
)
_SEGMENT_COPY = "COPY coverage_segment (t, x0, y0, x1, y1) FROM STDIN (FORMAT binary)"
_SEGMENT_GEOM = (
    text("ALTER TABLE coverage_segment ADD COLUMN geom geometry(LineString)"),
    text(
        "UPDATE coverage_segment SET geom = ST_MakeLine(ST_MakePoint(x0, y0), ST_MakePoint(x1, y1))"
    ),
    text("CREATE INDEX ON coverage_segment USING gist (geom)"),
    text("ANALYZE coverage_segment"),
)
_PASSED_POSTGIS = text(
    """
    SELECT b.id AS building_id, max(s.t) AS last_t
      FROM building b
      JOIN coverage_segment s
        ON ST_DWithin(s.geom, ST_SetSRID(ST_Transform(b.geom, :metric), 0), :radius)
     WHERE (CAST(:street AS text) IS NULL OR b.street_code = :street)
     GROUP BY b.id
     ORDER BY b.id
    """
)
#: One row of PostgreSQL's binary COPY format: field count, then (length, value) per field.
_COPY_ROW = np.dtype(
    [("n", ">i2")] + [(f, g) for k in range(5) for f, g in ((f"l{k}", ">i4"), (f"v{k}", ">f8"))]
)
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"


def _binary_copy_rows(columns: list[NDArray[np.float64]]) -> bytes:
    """Float8 columns as one PostgreSQL binary COPY stream (no per-row Python)."""
    rows = np.zeros(len(columns[0]), dtype=_COPY_ROW)
    rows["n"] = len(columns)
    for k, col in enumerate(columns):
        rows[f"l{k}"] = 8
        rows[f"v{k}"] = col
    return _COPY_HEADER + rows.tobytes() + _COPY_TRAILER


def buildings_passed_postgis(
    conn: Connection,
    segments: NDArray[np.float64],
    seg_t: NDArray[np.float64],
    metric: int,
    radius_m: float,
    *,
    street: str | None = None,
) -> pd.DataFrame:
    """Buildings within ``radius_m`` of any track segment, tested in PostGIS.

    ``segments`` is ``(n, 4)`` ``x0, y0, x1, y1`` in ``metric``, ``seg_t`` the time of
    each segment's end (epoch seconds). The segments are copied (binary COPY) into a
    temporary table with a GiST index, and each building, transformed to ``metric``,
    probes it with ``ST_DWithin``. Must run inside a transaction (the table drops on
    commit). Returns ``building_id, last_t`` for the buildings passed.
    """
    conn.execute(_SEGMENT_TABLE)
    stream = _binary_copy_rows([seg_t, *(segments[:, k] for k in range(4))])
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(_SEGMENT_COPY) as copy:  # type: ignore[union-attr]
        copy.write(stream)
    for statement in _SEGMENT_GEOM:
        conn.execute(statement)
    rows = conn.execute(
        _PASSED_POSTGIS, {"metric": metric, "radius": radius_m, "street": street}
    ).fetchall()
    return pd.DataFrame(rows, columns=["building_id", "last_t"])


def _frame(conn: Connection, sql: Any, params: Mapping[str, Any]) -> pd.DataFrame:
    """Result as a frame, built column-wise from the driver's plain tuples.

    pandas inspects each ``Row`` object when given a list of them (seconds for 200,000
    rows), and wrapping every tuple in a ``Row`` costs as much again: the statements here
    are plain ``text`` with no result types to process, so the DBAPI rows are taken as
    they are (200,000 buildings: ~1 s instead of 2-3 s).
    """
    result = conn.execute(sql, dict(params))
    names = list(result.keys())
    rows = result.cursor.fetchall() if result.cursor is not None else []
    result.close()
    if not rows:
        return pd.DataFrame({name: [] for name in names})
    columns = zip(*rows, strict=True)
    return pd.DataFrame({name: list(col) for name, col in zip(names, columns, strict=True)})
