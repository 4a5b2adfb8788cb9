"""Every read query of the application, as ``sqlalchemy.text`` with bound parameters.

Spatial reads return GeoDataFrames in EPSG:4326 (web output): geometries leave the database
as WKB in the CRS asked for, and :func:`read_gdf` fails loudly when a query has no geometry.
Filters are optional parameters; ``None`` means "no filter" (``:p IS NULL OR col = :p``), so
no SQL is ever built from user input.

Spatial predicates on a table with row-level security carry an explicit ``&&`` beside them
(``g.geom && x AND ST_Intersects(g.geom, x)``, ``x`` holding no column of ``g``): as
``gridone_app`` only ``&&`` is LEAKPROOF (migration 0005), so only it may run in the GiST
index below the policy; the exact predicate then runs on rows the policy passed. See
docs/access-control.md, "Spatial queries and the cost of the policies".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyproj
import shapely
from sqlalchemy import Connection, TextClause, text
from sqlalchemy.dialects import postgresql

from store.crs import STORAGE_EPSG, WEB_EPSG


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

#: The incident filter of the analysis queries below (street, [since, until), category
#: prefix; each None = no limit): ``category`` is a top-level code ("03") or a subcategory
#: ("0302"). A constant of this module spliced into their text, never user input.
_INCIDENT_FILTER = """(CAST(:street AS text) IS NULL OR i.street_code = :street)
           AND (CAST(:since AS timestamptz) IS NULL OR i.reported_at >= :since)
           AND (CAST(:until AS timestamptz) IS NULL OR i.reported_at < :until)
           AND (CAST(:category AS text) IS NULL
                OR left(i.category_code, length(CAST(:category AS text))) = :category)"""


def _incident_sql(sql: str) -> TextClause:
    """``sql`` with ``{incident_filter}`` replaced by :data:`_INCIDENT_FILTER`."""
    return text(sql.replace("{incident_filter}", _INCIDENT_FILTER))


_GRID_INCIDENT_COUNTS = _incident_sql(
    """
    WITH cur AS (
        SELECT g.code, g.name, g.community_code, g.geom
          FROM grid g
         WHERE (CAST(:street AS text) IS NULL OR g.street_code = :street)
           AND (g.valid_to IS NULL OR g.valid_to > CURRENT_DATE)
    ), inc AS (
        SELECT i.grid_code, i.geom
          FROM incident i
         WHERE {incident_filter}
    ), placed AS (
        -- the stored grid when it is current; else (retired or no grid) the current grid
        -- the point lies in, the lowest code on a shared edge; NULL outside every grid
        SELECT COALESCE(
                 c.code,
                 (SELECT g2.code
                    FROM grid g2
                   WHERE g2.geom && inc.geom  -- the GiST index, under row-level security too
                     AND ST_Intersects(g2.geom, inc.geom)
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


_INCIDENT_COUNT = _incident_sql(
    """
    SELECT count(*)
      FROM incident i
     WHERE {incident_filter}
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


# Coordinates leave the database in the storage CRS as a binary COPY of float8 columns, read
# straight into numpy, and are transformed to EPSG:4326 by pyproj on the whole array: for a
# million incidents a row-wise fetch costs ~30 s in Python, one transformed MultiPoint WKB
# ~2–4.5 s, ST_Transform per point in the COPY ~4 s, this about half (district demo).
_INCIDENT_LONLAT = _incident_sql(
    """
    SELECT ST_X(i.geom), ST_Y(i.geom)
      FROM incident i
     WHERE {incident_filter}
    """
)


#: Compiles statements for COPY: PostgreSQL with %(name)s placeholders and no "::VARCHAR"
#: casts on the parameters (the psycopg 3 dialect adds them; COPY binds client-side, where a
#: text-typed ISO date no longer compares with a timestamptz).
_COPY_DIALECT = postgresql.psycopg2.dialect()
_STORAGE_TO_WEB = pyproj.Transformer.from_crs(STORAGE_EPSG, WEB_EPSG, always_xy=True)


def _to_web(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Storage-CRS longitudes/latitudes to EPSG:4326, as new arrays."""
    lon, lat = _STORAGE_TO_WEB.transform(x, y)
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)


def _copy_out(
    conn: Connection, clause: TextClause, params: Mapping[str, Any], fmt: str
) -> tuple[bytearray, str]:
    """The bytes of ``COPY (clause) TO STDOUT (FORMAT fmt)`` and the client encoding they
    are written in. The statement is compiled by SQLAlchemy with placeholders, so the
    parameters stay bound (psycopg adapts and quotes them)."""
    compiled = clause.bindparams(**params).compile(dialect=_COPY_DIALECT)
    statement = f"COPY ({compiled.string}) TO STDOUT (FORMAT {fmt})"
    buf = bytearray()
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(statement, compiled.params) as copy:  # type: ignore[union-attr]
        for chunk in copy:
            buf += chunk
        encoding = cur.connection.info.encoding
    return buf, encoding


def copy_binary_columns(
    conn: Connection,
    clause: TextClause,
    params: Mapping[str, Any],
    ncols: int,
    kind: str = "f8",
) -> np.ndarray:
    """The result of ``clause`` (``ncols`` 8-byte columns of one ``kind``: ``"f8"`` float8
    or ``"i8"`` bigint, no NULLs) as an ``(n, ncols)`` array, through ``COPY (…) TO STDOUT
    (FORMAT binary)``: the binary rows are parsed by numpy in one step, where a row-wise
    fetch builds a Python object per value."""
    buf, _ = _copy_out(conn, clause, params, "binary")
    # 19-byte header (signature, flags, extension length), 2-byte trailer (-1)
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for k in range(ncols):
        fields += [(f"len{k}", ">i4"), (f"v{k}", f">{kind}")]
    body = np.frombuffer(memoryview(buf)[19 : len(buf) - 2], dtype=np.dtype(fields))
    if len(body) and (
        (body["n"] != ncols).any() or any((body[f"len{k}"] != 8).any() for k in range(ncols))
    ):
        raise ValueError(f"COPY: a NULL or a column other than {kind} in the result")
    out = np.empty((len(body), ncols), dtype=np.dtype(kind))
    for k in range(ncols):
        out[:, k] = body[f"v{k}"]
    return out


#: Bytes of binary COPY output parsed at a time by :func:`copy_binary_records`.
_RECORD_BLOCK = 1 << 22


def copy_binary_records(
    conn: Connection, clause: TextClause, params: Mapping[str, Any], kinds: Sequence[str]
) -> list[np.ndarray]:
    """The result of ``clause`` as one array per column, each column 8 bytes wide of its
    own kind (``"i8"`` bigint, ``"f8"`` float8; no NULLs), through ``COPY (…) TO STDOUT
    (FORMAT binary)``. Parsed by numpy block by block as the rows arrive, so the memory
    is the arrays' (8 bytes a value) plus one block, not the whole COPY output besides:
    for a caller reading a million rows of mixed types in one pass (ids, times and
    coordinates) where a row-wise fetch builds a Python object per value."""
    fields: list[tuple[str, str]] = [("n", ">i2")]
    for k, kind in enumerate(kinds):
        fields += [(f"len{k}", ">i4"), (f"v{k}", f">{kind}")]
    record = np.dtype(fields)
    parts: list[list[np.ndarray]] = [[] for _ in kinds]

    def take(buf: bytearray, start: int) -> int:
        """Parse the whole records of ``buf`` from ``start``; return where they end."""
        n = max(len(buf) - start, 0) // record.itemsize
        if not n:
            return start
        body = np.frombuffer(memoryview(buf)[start : start + n * record.itemsize], dtype=record)
        if (body["n"] != len(kinds)).any() or any(
            (body[f"len{k}"] != 8).any() for k in range(len(kinds))
        ):
            raise ValueError(f"COPY: a NULL or a column other than {list(kinds)} in the result")
        for k, kind in enumerate(kinds):
            parts[k].append(body[f"v{k}"].astype(kind))
        return start + n * record.itemsize

    compiled = clause.bindparams(**params).compile(dialect=_COPY_DIALECT)
    statement = f"COPY ({compiled.string}) TO STDOUT (FORMAT binary)"
    raw = conn.connection.driver_connection
    buf, start = bytearray(), 19  # 19-byte header (signature, flags, extension length)
    with raw.cursor() as cur, cur.copy(statement, compiled.params) as copy:  # type: ignore[union-attr]
        for chunk in copy:
            buf += chunk
            if len(buf) >= _RECORD_BLOCK:
                del buf[: take(buf, start)]
                start = 0
    end = take(buf, start)
    if bytes(buf[end:]) not in (b"", b"\xff\xff"):  # the 2-byte trailer (-1)
        raise ValueError("COPY: the binary output ends in an incomplete row")
    return [
        np.concatenate(p) if p else np.empty(0, dtype=kind)
        for p, kind in zip(parts, kinds, strict=True)
    ]


def copy_float_columns(
    conn: Connection, clause: TextClause, params: Mapping[str, Any], ncols: int
) -> np.ndarray:
    """The result of ``clause`` (``ncols`` float8 columns, no NULLs) as an ``(n, ncols)``
    float array, through a binary COPY (:func:`copy_binary_columns`)."""
    return copy_binary_columns(conn, clause, params, ncols, "f8")


def copy_csv_frame(
    conn: Connection, clause: TextClause, params: Mapping[str, Any], types: Mapping[str, Any]
) -> pd.DataFrame:
    """The result of ``clause`` as a frame, through ``COPY (…) TO STDOUT (FORMAT csv)``
    parsed by pyarrow's CSV reader; ``types`` names every column of the result, in order,
    with its pyarrow type (``pa.int64()``, ``pa.string()``, ``pa.float64()``).

    Why: fetching rows builds a Python object per value (200,000 buildings × 7 columns:
    1.5–3.5 s under load), where this reads one buffer and parses it in C++ (0.7 s, a
    quarter of the client CPU). The frame is the one a row fetch gives: NULL is NaN/None
    and an empty string stays an empty string (PostgreSQL quotes empty strings in CSV and
    leaves NULL unquoted, and the reader is told so); float8 values come back exactly
    (PostgreSQL writes the shortest text that reads back to the same double).
    """
    buf, encoding = _copy_out(conn, clause, params, "csv")  # encoding COPY wrote in
    names = list(types)
    if not buf:
        return pd.DataFrame({name: [] for name in names})
    table = pa_csv.read_csv(
        pa.py_buffer(bytes(buf)),
        read_options=pa_csv.ReadOptions(column_names=names, encoding=encoding),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict(types),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    return table.to_pandas()


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
    }
    xy = copy_float_columns(conn, _INCIDENT_LONLAT, params, 2)
    return _to_web(xy[:, 0], xy[:, 1])


# --- emerging hot spots (geo/emerging.py) ---------------------------------------------------
# Same incident filter as the hotspot queries above; bins are given by their edges (sorted,
# tz-aware), ``[edges[k], edges[k+1])`` being bin ``k`` (0-based).

_GRID_INCIDENT_BIN_COUNTS = _incident_sql(
    """
    WITH inc AS (
        SELECT i.grid_code, i.geom,
               width_bucket(i.reported_at, CAST(:edges AS timestamptz[])) - 1 AS bin
          FROM incident i
         WHERE {incident_filter}
    ), placed AS (
        -- as in grid_incident_counts: the stored grid when it is current, else the current
        -- grid the point lies in (lowest code on a shared edge), NULL outside every grid
        SELECT COALESCE(
                 (SELECT g.code
                    FROM grid g
                   WHERE g.code = inc.grid_code
                     AND (g.valid_to IS NULL OR g.valid_to > CURRENT_DATE)
                     AND (CAST(:street AS text) IS NULL OR g.street_code = :street)),
                 (SELECT g2.code
                    FROM grid g2
                   WHERE g2.geom && inc.geom  -- the GiST index, under row-level security too
                     AND ST_Intersects(g2.geom, inc.geom)
                     AND (g2.valid_to IS NULL OR g2.valid_to > CURRENT_DATE)
                     AND (CAST(:street AS text) IS NULL OR g2.street_code = :street)
                   ORDER BY g2.code
                   LIMIT 1)
               ) AS code,
               inc.bin
          FROM inc
    )
    SELECT code, bin, count(*) AS incidents
      FROM placed
     WHERE code IS NOT NULL
     GROUP BY code, bin
     ORDER BY code, bin
    """
)


def grid_incident_bin_counts(
    conn: Connection,
    *,
    edges: list[Any] | tuple[Any, ...],
    street_code: str | None = None,
    category: str | None = None,
) -> pd.DataFrame:
    """Incidents per current grid and time bin: ``code``, ``bin`` (0-based), ``incidents``.

    Bins are ``[edges[k], edges[k+1])`` (``edges`` sorted, tz-aware, at least two); only
    grid-bins with incidents have a row. Incidents are placed in grids as in
    :func:`grid_incident_counts`, so per grid the bins add up to its count there over
    ``[edges[0], edges[-1])``.
    """
    if len(edges) < 2:
        raise ValueError(f"need at least two bin edges, got {len(edges)}")
    params = {
        "edges": list(edges),
        "since": edges[0],
        "until": edges[-1],
        "street": street_code,
        "category": category,
    }
    result = conn.execute(_GRID_INCIDENT_BIN_COUNTS, params)
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    return frame.astype({"code": str, "bin": np.int64, "incidents": np.int64})


# As _INCIDENT_LONLAT, with each incident's report time (epoch seconds) in the same order.
_INCIDENT_LONLAT_TIME = _incident_sql(
    """
    SELECT ST_X(i.geom), ST_Y(i.geom), CAST(extract(epoch FROM i.reported_at) AS float8)
      FROM incident i
     WHERE {incident_filter}
     ORDER BY i.id
    """
)


def incident_lonlat_time(
    conn: Connection,
    *,
    street_code: str | None = None,
    since: Any = None,
    until: Any = None,
    category: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Longitudes, latitudes (EPSG:4326) and report times (UTC epoch seconds, float) of the
    matching incidents, as aligned float arrays (see :func:`incident_lonlat`)."""
    params = {
        "street": street_code,
        "since": since,
        "until": until,
        "category": category,
    }
    xyt = copy_float_columns(conn, _INCIDENT_LONLAT_TIME, params, 3)
    lon, lat = _to_web(xyt[:, 0], xyt[:, 1])
    return lon, lat, xyt[:, 2].copy()


# --- repeat locations (geo/repeats.py) ------------------------------------------------------
# Incidents of one subcategory (category_code, always 4 digits) in [since, until) are
# clustered by single linkage at ``eps`` metres: ST_ClusterDBSCAN with minpoints 1 makes
# every point a core point, so a cluster is a connected component of the graph "within eps
# metres of each other" (computed in the metric CRS ``metric_srid``). Clusters of at least
# ``min_count`` incidents are returned with their members, centre and grid.

_REPEAT_LOCATIONS = _incident_sql(
    """
    WITH inc AS (
        SELECT i.code, i.category_code, i.reported_at, i.grid_code,
               ST_Transform(i.geom, CAST(:metric_srid AS integer)) AS g
          FROM incident i
         WHERE {incident_filter}
    ), clustered AS (
        SELECT inc.*,
               ST_ClusterDBSCAN(g, eps => CAST(:eps AS float8), minpoints => 1)
                 OVER (PARTITION BY category_code) AS cluster
          FROM inc
    ), groups AS (
        SELECT category_code, cluster, count(*) AS n,
               min(reported_at) AS first_at, max(reported_at) AS last_at,
               array_agg(code ORDER BY reported_at, code) AS codes,
               array_agg(DISTINCT grid_code) FILTER (WHERE grid_code IS NOT NULL)
                 AS member_grids,
               ST_Centroid(ST_Collect(g)) AS centre,
               ST_Collect(g) AS members
          FROM clustered
         GROUP BY category_code, cluster
        HAVING count(*) >= CAST(:min_count AS integer)
    )
    SELECT gr.category_code, c.name_zh AS category_zh, c.name_en AS category_en,
           c.parent_code AS category_group, gr.n, gr.first_at, gr.last_at, gr.codes,
           gr.member_grids,
           ST_MaxDistance(gr.centre, gr.members) AS radius_m,
           (SELECT g.code
              FROM grid g
             WHERE g.geom && ST_Transform(gr.centre, 4490)  -- GiST, also under RLS
               AND ST_Intersects(g.geom, ST_Transform(gr.centre, 4490))
               AND (g.valid_to IS NULL OR g.valid_to > CURRENT_DATE)
             ORDER BY g.code
             LIMIT 1) AS grid_code,
           ST_AsBinary(ST_Transform(gr.centre, :srid)) AS geom
      FROM groups gr
      JOIN incident_category c ON c.code = gr.category_code
     ORDER BY gr.n DESC, gr.last_at DESC, gr.category_code, gr.codes[1]
    """
)


def repeat_location_clusters(
    conn: Connection,
    *,
    since: Any,
    until: Any,
    eps_m: float,
    min_count: int,
    metric_srid: int,
    street_code: str | None = None,
    category: str | None = None,
) -> gpd.GeoDataFrame:
    """Clusters of at least ``min_count`` incidents of one subcategory reported in
    ``[since, until)`` whose points chain within ``eps_m`` metres of each other (single
    linkage, ``ST_ClusterDBSCAN(geom, eps, 1)`` per subcategory in ``metric_srid``).

    Columns: ``category_code``, ``category_zh``, ``category_en``, ``category_group``,
    ``n``, ``first_at``, ``last_at``, ``codes`` (incident codes by report time),
    ``member_grids`` (the members' stored grids), ``radius_m`` (largest distance of a
    member from the centre), ``grid_code`` (the current grid holding the centre, None
    outside every grid) and the centre point (mean of the members in ``metric_srid``),
    EPSG:4326.
    """
    params = {
        "street": street_code,
        "since": since,
        "until": until,
        "category": category,
        "eps": float(eps_m),
        "min_count": int(min_count),
        "metric_srid": int(metric_srid),
        "srid": WEB_EPSG,
    }
    return read_gdf(conn, _REPEAT_LOCATIONS, params)


_INCIDENT_EXTENT = text(
    """
    SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)
      FROM (SELECT ST_Extent(ST_Transform(i.geom, :srid)) AS e
              FROM incident i
             WHERE (CAST(:street AS text) IS NULL OR i.street_code = :street)) AS x
    """
)


def incident_extent(
    conn: Connection, *, street_code: str | None = None
) -> tuple[float, float, float, float] | None:
    """``(minx, miny, maxx, maxy)`` in degrees (EPSG:4326) of the street's incidents (all
    streets when None); None when there are none. Chooses the metric CRS of an analysis."""
    row = conn.execute(_INCIDENT_EXTENT, {"street": street_code, "srid": WEB_EPSG}).one()
    if row[0] is None:
        return None
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


_CATEGORIES = text(
    """
    SELECT code, parent_code, name_zh, name_en
      FROM incident_category
     ORDER BY code
    """
)


def incident_categories(conn: Connection) -> pd.DataFrame:
    """The incident category table, both levels, in code order (``"01"``, ``"0101"``, …):
    ``code``, ``parent_code`` (None for the top level), ``name_zh``, ``name_en``; for filters."""
    rows = conn.execute(_CATEGORIES).all()
    return pd.DataFrame(rows, columns=["code", "parent_code", "name_zh", "name_en"])


_PATROL_FIXES_EXIST = text(
    """
    SELECT EXISTS (
        SELECT 1
          FROM patrol_fix f
         WHERE (CAST(:street AS text) IS NULL OR f.street_code = :street)
           AND f.fixed_at >= :since AND f.fixed_at < :until
    )
    """
)


def patrol_fixes_exist(
    conn: Connection, *, since: Any, until: Any, street_code: str | None = None
) -> bool:
    """Whether the store holds any patrol GPS fix in ``[since, until)`` by the workers of a
    street (all streets when None): is there patrol data to judge coverage by?"""
    params = {"street": street_code, "since": since, "until": until}
    return bool(conn.execute(_PATROL_FIXES_EXIST, params).scalar_one())
