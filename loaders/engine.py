"""Loading one file of one kind into the store: all of it checked, all-or-nothing, reported.

The steps, each collecting problems by row instead of stopping at the first:

1. sniff and read the file (:mod:`loaders.sniff`, :mod:`loaders.read`);
2. find the columns (:mod:`loaders.columns`, a ``--mapping`` file for the rest);
3. parse every field by type, with the time zone for times that have none;
4. build geometries, reproject to CGCS2000 (GCJ-02/BD-09 included), repair invalid
   polygons, and guard against swapped coordinates, points outside the area and data that
   sits a systematic GCJ-02/BD-09 offset off the existing grids;
5. in one transaction: stage the good rows, complete them in SQL (grid by location, street,
   worker ids…), and upsert them on their natural key. A row the database refuses is found
   by bisection and reported with the database's explained reason; the other rows land.

``strict`` turns the first problem into a failure of the whole file; ``dry_run`` does
everything and rolls back. A run killed at any point leaves the store as it was.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from loaders import coords
from loaders.assign import GridIndex
from loaders.columns import MissingColumnError, load_mapping, resolve_columns
from loaders.kinds import KINDS, SQL_TYPES, Kind
from loaders.parse import _Problems, parse_fields
from loaders.read import RawTable, iter_table
from loaders.report import LoadReport, RowProblem
from loaders.sniff import InputError, Sniffed, sniff_format
from store import kpi_summary
from store.cells import CELL_COLUMNS, fill_incident_cells, point_cells
from store.crs import STORAGE_EPSG
from store.errors import explain
from store.workcal import CalendarNotCoveredError, due_at
from store.write import copy_frame, deferred_indexes

CHINA_BOUNDS = (73.0, 3.0, 136.0, 54.0)
#: Margin around the stored streets' extent within which new data is accepted (the area's
#: bounds): a point farther out is another place's, or a typo (:func:`_guard_area`).
AREA_MARGIN_M = 5_000.0
GEOMETRY_FIELDS = ("lon", "lat", "x", "y", "wkt")


class LoadRejectedError(InputError):
    """The file was refused as a whole (``--strict`` with a bad row, or a file-wide
    problem); nothing was written. ``report`` says what was found."""

    def __init__(self, message: str, report: LoadReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class Options:
    """How to load: everything the CLI options say."""

    crs: str | None = None
    encoding: str | None = None
    mapping: Path | None = None
    dry_run: bool = False
    strict: bool = False
    timezone: str = "Asia/Shanghai"
    progress: Callable[[str], None] | None = None


# --- geometry ---------------------------------------------------------------------------


def _to_storage(geoms: np.ndarray, spec: coords.CrsSpec) -> np.ndarray:
    # WGS84 and CGCS2000 coincide at map accuracy (a few centimetres): no transform
    if spec.kind == "epsg" and spec.epsg in (STORAGE_EPSG, 4326):
        return geoms

    def move(xy: np.ndarray) -> np.ndarray:
        lon, lat = coords.to_storage(xy[:, 0], xy[:, 1], spec)
        return np.column_stack([lon, lat])

    return shapely.transform(geoms, move)


def _centres(geoms: np.ndarray) -> np.ndarray:
    """A point on each geometry (on its surface for outlines). Points are their own: a file
    of points skips the GEOS call per point that ``point_on_surface`` makes."""
    if len(geoms) and (shapely.get_type_id(geoms) == 0).all():
        return geoms
    return shapely.point_on_surface(geoms)


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry | None:
    """The polygonal part of a (repaired) geometry as a MultiPolygon, or None."""
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return None
    merged = shapely.union_all(parts)
    return shapely.multipolygons(shapely.get_parts(merged)) if not merged.is_empty else None


def build_geometry(
    raw: RawTable,
    frame: pd.DataFrame,
    kind: Kind,
    spec: coords.CrsSpec,
    problems: _Problems,
    report: LoadReport,
    anchors: np.ndarray | None = None,
) -> np.ndarray:
    """Geometries in EPSG:4490 (None where a row has none), checked and repaired.

    ``anchors`` (:func:`anchor_points`): a building file's points given beside its
    footprints; a row with no footprint takes its point from there."""
    n = len(frame)
    if raw.geometry is not None:
        geoms = np.asarray(raw.geometry.values, dtype=object)
    elif "wkt" in frame:
        text_wkt = frame["wkt"]
        geoms = np.array([None] * n, dtype=object)
        for i, w in enumerate(text_wkt.tolist()):
            if w:
                try:
                    geoms[i] = shapely.from_wkt(w)
                except shapely.errors.GEOSException:
                    problems.add([i], "wkt", [w], "不是有效的 WKT / not valid WKT")
    else:
        xname, yname = ("lon", "lat") if "lon" in frame else ("x", "y")
        xs = pd.to_numeric(frame[xname], errors="coerce").to_numpy(dtype=float, copy=True)
        ys = pd.to_numeric(frame[yname], errors="coerce").to_numpy(dtype=float, copy=True)
        bad = np.isnan(xs) | np.isnan(ys)
        if bad.any():
            rows = np.flatnonzero(bad)
            problems.add(
                rows,
                xname,
                frame[xname].iloc[rows].tolist(),
                f"坐标缺失或不是数字 / {xname}/{yname} missing or not numbers",
            )
        xs[bad], ys[bad] = np.nan, np.nan
        geoms = shapely.points(xs, ys)
        geoms[bad] = None
    if anchors is not None:
        geoms = geoms.copy()
        fill = shapely.is_missing(geoms) & ~shapely.is_missing(anchors)
        geoms[fill] = anchors[fill]
    present = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    if kind.geometry_required and (~present).any():
        rows = np.flatnonzero(~present)
        problems.add(rows, "geometry", [None] * len(rows), "缺少几何 / no geometry")
    _guard_swapped(geoms, present, spec, raw.source)
    geoms = geoms.copy()
    # heights (GPS altitude, 3D survey exports) are not stored: the columns are 2D
    if shapely.has_z(geoms[present]).any():
        geoms[present] = shapely.force_2d(geoms[present])
    geoms[present] = _to_storage(geoms[present], spec)
    lon = np.full(n, np.nan)
    lat = np.full(n, np.nan)
    centres = _centres(geoms[present])
    lon[present], lat[present] = shapely.get_x(centres), shapely.get_y(centres)
    outside = present & ~(
        (lon >= CHINA_BOUNDS[0])
        & (lon <= CHINA_BOUNDS[2])
        & (lat >= CHINA_BOUNDS[1])
        & (lat <= CHINA_BOUNDS[3])
    )
    if outside.any():
        rows = np.flatnonzero(outside)
        swapped = (lat[rows] >= 73) & (lat[rows] <= 136) & (lon[rows] >= 3) & (lon[rows] <= 54)
        for row, sw in zip(rows.tolist(), swapped.tolist(), strict=True):
            problems.add(
                [row],
                "geometry",
                [f"{lon[row]:.6f},{lat[row]:.6f}"],
                "经纬度颠倒 / longitude and latitude are swapped"
                if sw
                else "坐标不在中国范围内 / coordinates outside China",
            )
    usable = present & ~outside
    if kind.geometry == "point":  # points need no repair: check their types at once
        types = np.full(len(geoms), -1)
        types[usable] = shapely.get_type_id(geoms[usable])
        odd = usable & ~np.isin(types, [0, 3, 6])  # point; polygon footprints allowed
        for i in np.flatnonzero(odd).tolist():
            problems.add([i], "geometry", [geoms[i].geom_type], "需要点 / needs a point")
        return geoms
    for i in np.flatnonzero(usable).tolist():
        g = geoms[i]
        if kind.geometry == "polygon":
            if g.geom_type not in ("Polygon", "MultiPolygon"):
                problems.add([i], "geometry", [g.geom_type], "需要面 / needs a polygon")
                continue
            if not g.is_valid:
                reason = shapely.is_valid_reason(g)
                fixed = _polygonal(shapely.make_valid(g))
                if fixed is None:
                    problems.add([i], "geometry", [reason], "无法修复的面 / unrepairable polygon")
                    continue
                report.repaired.append(
                    RowProblem(
                        raw.source,
                        int(raw.lines[i]),
                        "geometry",
                        reason,
                        "已修复无效面 / invalid polygon repaired",
                        unit=raw.unit,
                    )
                )
                geoms[i] = fixed
            else:
                geoms[i] = shapely.multipolygons(shapely.get_parts(g))
    return geoms


def anchor_points(raw: RawTable, frame: pd.DataFrame, kind: Kind) -> np.ndarray | None:
    """A building's own point when the file gives it beside the footprint: coordinate
    columns (``lon``/``lat`` or ``x``/``y``) in a file whose geometry is the footprint (a
    vector file, or a ``wkt`` column). In the file's CRS; None where a row has none, and
    None for files that give only one of the two (the point is then the footprint's
    point on surface, as before). An export of buildings carries both, so a reload gives
    the stored point back exactly."""
    if not kind.footprints or (raw.geometry is None and "wkt" not in frame):
        return None
    names = next((xy for xy in (("lon", "lat"), ("x", "y")) if set(xy) <= set(frame)), None)
    if names is None:
        return None
    xs = pd.to_numeric(frame[names[0]], errors="coerce").to_numpy(dtype=float)
    ys = pd.to_numeric(frame[names[1]], errors="coerce").to_numpy(dtype=float)
    ok = ~(np.isnan(xs) | np.isnan(ys))
    points = np.full(len(frame), None, dtype=object)
    points[ok] = shapely.points(xs[ok], ys[ok])
    return points


def _guard_swapped(
    geoms: np.ndarray, present: np.ndarray, spec: coords.CrsSpec, source: str
) -> None:
    """A whole file with latitude and longitude exchanged is refused, naming the fix."""
    if spec.kind != "epsg" or spec.epsg not in (4326, 4490) or not present.any():
        return
    pts = _centres(geoms[present])
    check = coords.detect_swapped(shapely.get_x(pts), shapely.get_y(pts), CHINA_BOUNDS)
    if check.swapped and check.share_inside_swapped > 0.9:
        raise InputError(f"{source}: {check.message}")


_AREA = text(
    "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
    "(SELECT ST_Extent(geom) AS e FROM admin_unit WHERE level = 'street') x"
)


def _area_bounds(conn: Connection, kind: Kind) -> coords.Bounds | None:
    """The area's bounds (the stored streets' extent) for a kind whose rows must lie in
    it; None for streets (they make the area) and while no street is stored."""
    if not kind.geometry or kind.name == "streets":
        return None
    row = conn.execute(_AREA).one()
    return None if row[0] is None else (row[0], row[1], row[2], row[3])


def _guard_area(
    geoms: np.ndarray, area: coords.Bounds, problems: _Problems, report: LoadReport
) -> None:
    """Rows whose point (a point on an outline) lies more than :data:`AREA_MARGIN_M` outside
    the stored streets' extent are rejected, each naming its coordinates: a patrol app's
    fix in another province, a column of another city's data. Rows refused already
    (outside China, swapped) keep that reason."""
    present = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
    if not present.any():
        return
    rows = np.flatnonzero(present)
    pts = _centres(geoms[present])
    x, y = shapely.get_x(pts), shapely.get_y(pts)
    check = coords.check_bounds(x, y, area, margin_m=AREA_MARGIN_M)
    if check.ok:
        return
    out = check.outside
    problems.add(
        rows[out],
        "geometry",
        [f"{a:.6f},{b:.6f}" for a, b in zip(x[out].tolist(), y[out].tolist(), strict=True)],
        f"不在本区域范围内（已导入街道的范围外 {AREA_MARGIN_M / 1000:g} 公里以上）/ outside the "
        f"area (more than {AREA_MARGIN_M / 1000:g} km beyond the stored streets)",
    )
    if not any("outside the area's bounds" in w for w in report.warnings):
        report.warnings.append(check.message)  # once per file, with examples


def _guard_offset(
    conn: Connection, geoms: np.ndarray, spec: coords.CrsSpec, explicit: bool, source: str
) -> None:
    """Refuse data that sits a GCJ-02/BD-09 offset off the stored grids, unless the CRS was
    given explicitly (the user has decided)."""
    if explicit:
        return
    present = ~shapely.is_missing(geoms)
    if present.sum() < 5:
        return
    grids = conn.execute(text("SELECT ST_AsBinary(geom) FROM grid")).scalars().all()
    if not grids:
        return
    pts = shapely.point_on_surface(geoms[present][:5000])
    check = coords.detect_offset(
        shapely.get_x(pts), shapely.get_y(pts), shapely.from_wkb(np.asarray(grids, dtype=object))
    )
    if check.verdict is not None:
        raise InputError(f"{source}: {check.message}")


# --- the load ---------------------------------------------------------------------------


def _create_stage(conn: Connection, kind: Kind) -> None:
    """The temporary staging table of one load (dropped at commit)."""
    cols = ["_row bigint", "_line bigint", "_error text", "_field text"]
    for name, ftype in kind.fields.items():
        cols.append(f"{name} {SQL_TYPES.get(ftype, 'text')}")
    for name, sqltype in kind.extra.items():
        if name not in kind.fields:
            cols.append(f"{name} {sqltype}")
    if kind.geometry:
        cols.append("geom geometry")
    conn.execute(text("DROP TABLE IF EXISTS stage_load"))
    conn.execute(text(f"CREATE TEMP TABLE stage_load ({', '.join(cols)}) ON COMMIT DROP"))


class _StageLines:
    """The file line of a staged row, looked up when a refused row is reported (rarely)
    instead of reading every staged row's line into a dict up front (a million of them
    on a big file: time, and memory that grows with the file)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.indexed = False

    def index(self) -> None:
        """Index the staged rows by ``_row`` (once): when the database refuses rows, the
        bisection reads ranges of them and each refused row's line is looked up."""
        if not self.indexed:
            self.conn.execute(text("CREATE INDEX ON stage_load (_row)"))
            self.indexed = True

    def get(self, row: int, default: int) -> int:
        self.index()
        line = self.conn.execute(
            text("SELECT _line FROM stage_load WHERE _row = :row"), {"row": row}
        ).scalar()
        return default if line is None else int(line)


def _write(
    conn: Connection,
    kind: Kind,
    present: set[str],
    sql: str,
    rows: int,
    report: LoadReport,
    lines: _StageLines,
    strict: bool,
) -> tuple[int, int]:
    """Write staged rows ``1..rows``; the numbers inserted and updated.

    Rows whose key is stored go through the upsert; the others (all of them on a first
    load) through one plain ``INSERT`` (:meth:`Kind.new_rows_sql`). Should that refuse
    anything, it is undone (savepoint) and the upsert writes those rows instead, finding
    the refused ones by bisection, as it always did."""
    plain = kind.new_rows_sql()
    if plain is None or rows == 0:
        flags = _upsert(conn, sql, 1, rows, report, lines, strict)
        return sum(flags), len(flags) - sum(flags)
    stored = kind.insert_sql(present, stored_only=True)
    flags = _upsert(conn, stored, 1, rows, report, lines, strict)
    sp = conn.begin_nested()
    try:
        inserted = conn.execute(text(plain), {"lo": 1, "hi": rows}).rowcount
        sp.commit()
    except DBAPIError:
        sp.rollback()
        flags += _upsert(conn, sql, 1, rows, report, lines, strict)
        inserted = 0
    return inserted + sum(flags), len(flags) - sum(flags)


def _upsert(
    conn: Connection,
    sql: str,
    lo: int,
    hi: int,
    report: LoadReport,
    lines: _StageLines,
    strict: bool,
) -> list[bool]:
    """Insert rows ``lo..hi``; when the database refuses, bisect to the refused rows."""
    sp = conn.begin_nested()
    try:
        flags = [bool(f) for f in conn.execute(text(sql), {"lo": lo, "hi": hi}).scalars()]
        sp.commit()
        return flags
    except DBAPIError as exc:
        sp.rollback()
        if not strict:
            lines.index()
        if strict or lo == hi:
            reason = str(explain(exc))
            if strict:
                raise LoadRejectedError(
                    f"{report.file}: 数据库拒绝 / refused by the database: {reason}", report
                ) from exc
            report.rejected.append(RowProblem(report.file, lines.get(lo, lo), None, None, reason))
            # so that `after` statements (which read the staged rows) skip it too
            conn.execute(
                text("UPDATE stage_load SET _error = :why WHERE _row = :row"),
                {"why": reason, "row": lo},
            )
            return []
        mid = (lo + hi) // 2
        return _upsert(conn, sql, lo, mid, report, lines, strict) + _upsert(
            conn, sql, mid + 1, hi, report, lines, strict
        )


def _columns(raw: RawTable, kind: Kind, mapping: dict[str, str] | None) -> dict[str, str]:
    """Canonical field → header for this file, or a clear error naming what is missing."""
    geometry_inputs: tuple[str, ...] = ()
    if kind.geometry and raw.geometry is None:
        geometry_inputs = GEOMETRY_FIELDS
    elif kind.footprints:  # a footprint file may give the building's point beside it
        geometry_inputs = ("lon", "lat", "x", "y")
    cols = resolve_columns(
        list(raw.frame.columns),
        required=kind.required,
        optional=[f for f in kind.fields if f not in kind.required] + list(geometry_inputs),
        mapping=mapping,
        source=raw.source,
        kind=kind.name,
        values=raw.frame,
    )
    if (
        geometry_inputs
        and raw.geometry is None
        and kind.geometry_required
        and not ({"lon", "lat"} <= cols.keys() or {"x", "y"} <= cols.keys() or "wkt" in cols)
    ):
        raise MissingColumnError(
            f"{raw.source}: 缺少坐标列（经度/纬度、X/Y 或 WKT）/ no coordinate columns "
            f"(longitude/latitude, x/y or WKT); headers found: {list(raw.frame.columns)}",
            file=raw.source,
            missing=["lon", "lat"],
            found=list(raw.frame.columns),
        )
    return cols


def _staged(
    typed: pd.DataFrame,
    geoms: np.ndarray | None,
    ok: np.ndarray,
    lines: np.ndarray,
    kind: Kind,
    first_row: int,
    anchors: np.ndarray | None = None,
) -> pd.DataFrame:
    """The good rows of a chunk as staging rows, numbered from ``first_row``. A footprint
    becomes the building's ``footprint``, and its point the one given beside it
    (``anchors``, storage CRS) or else its point on surface."""
    staged = typed[ok].copy()
    staged.insert(0, "_row", np.arange(first_row, first_row + int(ok.sum())))
    staged.insert(1, "_line", lines[ok])
    if geoms is not None:
        g = geoms[ok]
        if kind.footprints:
            is_poly = np.isin(shapely.get_type_id(g), [3, 6])
            staged["footprint"] = gpd.GeoSeries(
                np.where(is_poly, g, None), crs=STORAGE_EPSG, index=staged.index
            )
            point = np.where(is_poly, shapely.point_on_surface(g), g)
            if anchors is not None:
                given = is_poly & ~shapely.is_missing(anchors[ok])
                point[given] = anchors[ok][given]
            g = point
        staged["geom"] = gpd.GeoSeries(g, crs=STORAGE_EPSG, index=staged.index)
    return staged


def _assign_grids(staged: pd.DataFrame, grids: GridIndex, kind: Kind) -> None:
    """Grid (and, where the kind says so, street from the grid) of the staged points that
    have none and lie clearly inside one grid, in Python (:mod:`loaders.assign`): the
    SQL rule's answer without a subquery and an update per row. The SQL still runs and
    completes the rest (points near an edge, outside every grid, outlines)."""
    n = len(staged)
    if not n or "geom" not in staged:
        return
    given = staged["grid_code"] if "grid_code" in staged else pd.Series(None, index=staged.index)
    found = given.to_numpy(dtype=object, na_value=None).copy()
    todo = pd.isna(found)
    found[todo] = grids.grid_of(np.asarray(staged["geom"].values, dtype=object)[todo])
    staged["grid_code"] = found
    if kind.street_from_grid:
        street = (
            staged["street_code"].to_numpy(dtype=object, na_value=None).copy()
            if "street_code" in staged
            else np.full(n, None, dtype=object)
        )
        fill = pd.isna(street) & pd.notna(found)
        street[fill] = [g[:9] + "000" for g in found[fill]]
        staged["street_code"] = street


def _stage_cells(staged: pd.DataFrame) -> None:
    """The H3 cells of the staged points (:func:`store.cells.point_cells`), written with
    the rows: a second pass updating every new incident (and each of its indexes) after
    the write took more time than the write itself."""
    cells = point_cells(np.asarray(staged["geom"].values, dtype=object))
    for name, values in cells.items():
        staged[name] = pd.Series(values, index=staged.index)


def _refuse(report: LoadReport, problems: list[RowProblem]) -> LoadRejectedError:
    report.rejected = sorted(problems, key=lambda p: p.line)
    first = report.rejected[0]
    return LoadRejectedError(
        f"{report.file}: {first.reason} ({first.where}"
        + (f", {first.field}" if first.field else "")
        + ")",
        report,
    )


def load_file(engine: Engine, kind_name: str, path: Path, options: Options) -> LoadReport:
    """Load ``path`` as ``kind_name``; return the report (raise :class:`LoadRejectedError`
    when the file is refused as a whole, :class:`loaders.sniff.InputError` when it cannot
    be read).

    A CSV is streamed in chunks (:data:`loaders.read.CHUNK_ROWS`): each chunk is checked
    and staged in the database, so the loader's memory stays flat however long the file;
    the whole file still lands in one transaction, or not at all."""
    t0 = time.perf_counter()
    kind = KINDS[kind_name]
    say = options.progress or (lambda _m: None)
    sniffed = sniff_format(path)
    report = LoadReport(kind=kind.name, file=sniffed.path.name, dry_run=options.dry_run)
    report.warnings += list(sniffed.warnings)
    mapping = load_mapping(options.mapping) if options.mapping else None
    try:
        _load(engine, kind, sniffed, options, report, mapping, say)
    except DBAPIError as exc:
        # refused as a whole by the database (a lock, a foreign key re-checked at the end
        # of a big batch, …): the transaction is rolled back, the file named
        raise LoadRejectedError(
            f"{report.file}: 数据库拒绝 / refused by the database: {explain(exc)}", report
        ) from exc
    report.seconds = time.perf_counter() - t0
    return report


def _load(
    engine: Engine,
    kind: Kind,
    sniffed: Sniffed,
    options: Options,
    report: LoadReport,
    mapping: dict[str, str] | None,
    say: Callable[[str], None],
) -> None:
    """The body of :func:`load_file`: one transaction."""
    early: list[RowProblem] = []
    present: set[str] = set()
    next_row = 1
    total = _count_lines(sniffed.path) if sniffed.format == "csv" else None
    grids: GridIndex | None = None
    area: coords.Bounds | None = None
    with engine.begin() as conn:
        # each statement of a load runs once over many rows: compiling it (JIT, ~0.2 s a
        # statement) never pays back here
        conn.execute(text("SET LOCAL jit = off"))
        for number, raw in enumerate(iter_table(sniffed, encoding=options.encoding)):
            report.rows_read += len(raw.frame)
            if number == 0:
                cols = _columns(raw, kind, mapping)
                spec = coords.parse_crs(options.crs or raw.crs or "EPSG:4326")
                _create_stage(conn, kind)
                area = _area_bounds(conn, kind)
                if kind.grids_by_point:
                    grids = GridIndex.from_store(conn)
            staged_rows, found = _stage_chunk(
                conn, raw, kind, cols, spec, grids, area, options, report, present, next_row, number
            )
            next_row += staged_rows
            early += found
            # the chunk's frames die here, before the reader builds the next one (held by
            # the loop's names, two chunks were alive at once)
            del raw
            say(_progress_line("已检查 checked", report.rows_read, total))
        conn.execute(text("ANALYZE stage_load"))
        for sql in kind.derive:
            conn.execute(text(sql))
        # after the checks: of rows repeating a key, the last *valid* one wins
        report.duplicates = _mark_superseded(conn, kind, report)
        refused = [
            RowProblem(report.file, int(line), fld, None, err)
            for line, fld, err in conn.execute(
                text(
                    "SELECT _line, _field, _error FROM stage_load WHERE _error IS NOT NULL "
                    "AND _error <> :sup ORDER BY _row"
                ),
                {"sup": SUPERSEDED},
            )
        ]
        if refused and options.strict:
            raise _refuse(report, refused)
        lines = _StageLines(conn)
        say(f"写入 writing {next_row - 1:,} rows")
        sql = kind.insert_sql(present)
        with deferred_indexes(
            conn,
            # a dry run never drops indexes: it must not lock the table for nothing
            [kind.table] if not options.dry_run and _big_batch(conn, kind, next_row - 1) else [],
            only_if_empty=False,
            foreign_keys=kind.references_checked,
        ):
            inserted, updated = _write(
                conn, kind, present, sql, next_row - 1, report, lines, options.strict
            )
            revived = _revive_superseded(conn, kind, sql, report, lines)
        for statement in kind.after:
            conn.execute(text(statement))
        if kind.table == "incident" and not options.dry_run:
            # new rows carry their cells; a stored row whose point moved within all its
            # cells lost them to the trigger of migration 0009 (its cells looked unset):
            # found through the partial index of rows without cells, usually none
            fill_incident_cells(conn)
        if kind.table in KPI_SUMMARY_TABLES and not options.dry_run:
            # the KPI sums of the (street, day) keys and repeat regions this load touched
            # (a dry run is rolled back anyway)
            kpi_summary.refresh(conn)
        report.inserted = inserted + sum(revived)
        report.updated = updated + len(revived) - sum(revived)
        report.rejected = sorted([*early, *refused, *report.rejected], key=lambda p: p.line)
        report.unchanged = (
            report.rows_read
            - report.inserted
            - report.updated
            - len(report.rejected)
            - report.duplicates
        )
        post = POST_CHECKS.get(kind.name)
        if post:
            post(conn, report)
        if options.dry_run:
            conn.rollback()


def _stage_chunk(
    conn: Connection,
    raw: RawTable,
    kind: Kind,
    cols: dict[str, str],
    spec: coords.CrsSpec,
    grids: GridIndex | None,
    area: coords.Bounds | None,
    options: Options,
    report: LoadReport,
    present: set[str],
    first_row: int,
    number: int,
) -> tuple[int, list[RowProblem]]:
    """Check one chunk of the file and COPY its good rows into the stage, numbered from
    ``first_row``; the number staged and the chunk's problems. ``present`` gains the
    fields the file carries. A function of its own so the chunk's frames are freed when
    it returns: memory stays one chunk's worth however long the file."""
    frame = pd.DataFrame({c: raw.frame[h] for c, h in cols.items()})
    problems = _Problems(raw.source, raw.lines, raw.unit)
    typed = parse_fields(frame, kind, problems, options.timezone)
    anchors = anchor_points(raw, frame, kind)
    geoms = (
        build_geometry(raw, frame, kind, spec, problems, report, anchors) if kind.geometry else None
    )
    if anchors is not None:  # to the storage CRS, like the geometries
        given = ~shapely.is_missing(anchors)
        anchors[given] = _to_storage(shapely.force_2d(anchors[given]), spec)
    if geoms is not None and area is not None:
        _guard_area(geoms, area, problems, report)
    # what the file carries, before a Python step fills in defaults (a title or
    # a deadline computed for new rows must not overwrite stored ones on reload)
    present.update(typed.columns)
    if geoms is not None:
        present.add("geometry")
    prepare = PREPARE.get(kind.name)
    if prepare:
        prepare(conn, typed, problems, options)
    if number == 0 and geoms is not None:
        _guard_offset(conn, geoms, spec, options.crs is not None, raw.source)
    if options.strict and problems.by_row:
        raise _refuse(report, list(problems.by_row.values()))
    ok = ~problems.mask(len(typed))
    staged = _staged(typed, geoms, ok, raw.lines, kind, first_row, anchors)
    if grids is not None:
        _assign_grids(staged, grids, kind)
    if set(CELL_COLUMNS) <= kind.extra.keys() and "geom" in staged:
        _stage_cells(staged)
    copy_frame(conn, "stage_load", staged)
    return len(staged), list(problems.by_row.values())


#: Tables whose writes make the KPI sums stale (``store.kpi_summary``): the incident, and
#: the log whose steps its trigger applies to it.
KPI_SUMMARY_TABLES = ("incident", "incident_transition")

#: A batch at least this large, and at least :data:`BIG_BATCH_SHARE` of the table, is written
#: with the table's secondary indexes dropped and rebuilt once (measured on incidents: the
#: write takes half the time from 100,000 rows on).
BIG_BATCH_ROWS = 50_000
BIG_BATCH_SHARE = 0.25


def _big_batch(conn: Connection, kind: Kind, rows: int) -> bool:
    if rows < BIG_BATCH_ROWS:
        return False
    estimate = conn.execute(
        text("SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = to_regclass(:t)"),
        {"t": kind.table},
    ).scalar_one()
    return rows >= BIG_BATCH_SHARE * float(estimate or 0)


#: The staging mark of a row a later row of the same file replaces.
SUPERSEDED = "__superseded__"


def _mark_superseded(conn: Connection, kind: Kind, report: LoadReport) -> int:
    """Rows repeating a later row's natural key in the same file: the last one wins (as
    loading them one after another would); the others are left out and counted."""
    if not kind.key:
        return 0
    # most files repeat no key: a hash aggregate says so without the sort and the join
    repeats = kind.repeats_sql()
    if repeats is not None and not conn.execute(text(repeats)).scalar_one():
        return 0
    n = conn.execute(text(kind.supersede_sql()), {"sup": SUPERSEDED}).rowcount
    if n:
        report.warnings.append(
            f"{n} 行与后面的行编码重复，以最后一行为准 / rows repeat a later row's key "
            f"({', '.join(kind.key)}); the last one wins"
        )
    return int(n)


def _revive_superseded(
    conn: Connection, kind: Kind, sql: str, report: LoadReport, lines: _StageLines
) -> list[bool]:
    """When the database refused the row that won its key, the latest earlier row with that
    key is written instead (as loading the rows one after another would have left it),
    until a row of the key is stored or none is left."""
    if not kind.key:
        return []
    flags: list[bool] = []
    while True:
        revived = conn.execute(text(kind.revive_sql()), {"sup": SUPERSEDED}).scalars().all()
        if not revived:
            return flags
        for row in revived:
            report.duplicates -= 1
            flags += _upsert(conn, sql, row, row, report, lines, strict=False)


# --- kind-specific Python steps -----------------------------------------------------------


def _prepare_incidents(
    conn: Connection, typed: pd.DataFrame, problems: _Problems, options: Options
) -> None:
    """Category by code or name; title from the category; deadline from its time limit."""
    cats = conn.execute(
        text(
            "SELECT code, name_zh, name_en, limit_value, limit_unit FROM incident_category "
            "WHERE length(code) = 4"
        )
    ).all()
    lookup = {}
    for code, zh, en, *_ in cats:
        for w in (code, zh, en):
            lookup[w.casefold()] = code
    limits = {c: (v, u) for c, _zh, _en, v, u in cats}
    names = {c: zh for c, zh, *_ in cats}
    raw = typed["category_code"]
    # looked up once per distinct value (a file holds a few dozen), not once per row
    which, distinct = pd.factorize(raw.to_numpy(dtype=object))
    found = np.array([lookup.get(str(v).casefold()) for v in distinct] + [None], dtype=object)
    code = pd.Series(found[which], index=raw.index, dtype=object)  # -1 (blank): None
    bad = raw.notna() & code.isna()
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())
        problems.add(
            rows,
            "category_code",
            raw.iloc[rows].tolist(),
            "未知事件类型（需小类编码或名称，如 0301 或 违规停车）/ unknown category: give "
            "a subcategory code or name, e.g. 0301 or 违规停车",
        )
    typed["category_code"] = code
    if "title" not in typed:
        typed["title"] = None
    typed["title"] = typed["title"].where(typed["title"].notna(), code.map(names))
    if "occurred_at" in typed:
        late = (typed["occurred_at"] > typed["reported_at"]).fillna(False).to_numpy()
        if late.any():
            rows = np.flatnonzero(late)
            problems.add(
                rows,
                "occurred_at",
                typed["occurred_at"].iloc[rows].astype(str).tolist(),
                "发生时间晚于上报时间 / occurred after it was reported",
            )
    if "due_at" not in typed:
        typed["due_at"] = pd.Series(pd.NaT, index=typed.index, dtype="datetime64[us, UTC]")
    need = (typed["due_at"].isna() & code.notna() & typed["reported_at"].notna()).to_numpy()
    if need.any():
        rows = np.flatnonzero(need)
        sub = typed.iloc[rows]
        # looked up in dicts (hashed in C), not by a Python function per row
        value = sub["category_code"].map({c: v for c, (v, _u) in limits.items()})
        unit = sub["category_code"].map({c: u for c, (_v, u) in limits.items()})
        try:
            # the deadlines as a datetime array: .to_numpy() made a Timestamp object a row
            typed.loc[typed.index[rows], "due_at"] = due_at(
                sub["reported_at"], value, unit, tz=options.timezone
            ).array
        except CalendarNotCoveredError as exc:
            problems.add(rows, "reported_at", sub["reported_at"].astype(str).tolist(), str(exc))


#: What separates the words of a GPS track's name ("巡查轨迹 W0001 2025-03-01").
_NAME_SEPARATORS = re.compile(r"[\s_/|,，;；:：()（）\[\]【】]+")


def _worker_codes_in_names(conn: Connection, names: pd.Series) -> pd.Series:
    """Worker codes for values that are not one themselves but hold exactly one among other
    words: the patrol apps name a track "巡查轨迹 <worker code> <date>" and a GPX's track
    name is all the reader has. Values that resolve to nothing are left as they are (and
    reported by the kind's worker check)."""
    values = [str(v) for v in names.dropna().unique()]
    if not values:
        return names
    find = text("SELECT code FROM staff WHERE code = ANY(:codes)")
    known = set(conn.execute(find, {"codes": values}).scalars())
    words = {v: {w for w in _NAME_SEPARATORS.split(v) if w} for v in values if v not in known}
    if not words:
        return names
    staff = set(conn.execute(find, {"codes": sorted(set().union(*words.values()))}).scalars())
    found = {v: (ws & staff).pop() for v, ws in words.items() if len(ws & staff) == 1}
    return names.map(lambda v: found.get(v, v))


def _prepare_patrols(
    conn: Connection, typed: pd.DataFrame, problems: _Problems, options: Options
) -> None:
    """Worker codes from track names; the monthly partitions the fixes fall in (only the
    months that have fixes: one stray year in a file makes one partition, not a hundred)."""
    typed["worker_code"] = _worker_codes_in_names(conn, typed["worker_code"])
    months = typed["fixed_at"].dropna().dt.strftime("%Y-%m-01").unique()
    for month in sorted(months):
        start = pd.Timestamp(month, tz="UTC").to_pydatetime()
        conn.execute(
            text("SELECT ensure_patrol_fix_partitions(:lo, :hi)"), {"lo": start, "hi": start}
        )


PREPARE: dict[str, Callable[[Connection, pd.DataFrame, _Problems, Options], None]] = {
    "incidents": _prepare_incidents,
    "patrols": _prepare_patrols,
}


def _post_grids(conn: Connection, report: LoadReport) -> None:
    """Overlaps with neighbouring grids and gaps inside each community, with their area."""
    rows = conn.execute(
        text(
            """
            SELECT a.code, b.code,
                   ST_Area(ST_Transform(ST_Intersection(a.geom, b.geom), :srid)) AS m2
              FROM grid a JOIN grid b ON a.code < b.code AND ST_Intersects(a.geom, b.geom)
             WHERE (a.code IN (SELECT code FROM stage_load) OR b.code IN
                    (SELECT code FROM stage_load))
               AND ST_Area(ST_Transform(ST_Intersection(a.geom, b.geom), :srid)) > 1
            """
        ),
        {"srid": _metric_srid(conn)},
    ).all()
    for a, b, m2 in rows:
        report.warnings.append(f"网格重叠 / grids overlap: {a} × {b}: {m2:,.0f} m²")
    gaps = conn.execute(
        text(
            """
            SELECT c.code, c.name,
                   ST_Area(ST_Transform(ST_Difference(c.geom, u.geom), :srid)) AS m2
              FROM admin_unit c
              JOIN LATERAL (SELECT ST_Union(g.geom) AS geom FROM grid g
                             WHERE g.community_code = c.code) u ON u.geom IS NOT NULL
             WHERE c.level = 'community'
               AND c.code IN (SELECT left(code, 12) FROM stage_load WHERE _error IS NULL)
            """
        ),
        {"srid": _metric_srid(conn)},
    ).all()
    for code, name, m2 in gaps:
        if m2 is not None and m2 >= GAP_MIN_M2:
            report.warnings.append(
                f"社区 {name}（{code}）有 {m2:,.0f} m² 未划入任何网格 / community {code}: "
                f"{m2:,.0f} m² not covered by any grid"
            )


#: Gaps smaller than this (digitising slivers) are not reported.
GAP_MIN_M2 = 10.0


def _metric_srid(conn: Connection) -> int:
    from store.crs import gk_zone_epsg

    lon = conn.execute(text("SELECT ST_X(ST_Centroid(ST_Extent(geom)::geometry)) FROM grid"))
    value = lon.scalar_one()
    return gk_zone_epsg(value if value is not None else 120.0)


def _post_points(conn: Connection, report: LoadReport) -> None:
    """Points outside every grid are stored (a street's data is never silently dropped)
    and listed, line by line, for someone to look at."""
    rows = conn.execute(
        text(
            "SELECT _line, ST_X(geom), ST_Y(geom) FROM stage_load "
            "WHERE _error IS NULL AND grid_code IS NULL ORDER BY _row"
        )
    ).all()
    report.flagged += [
        RowProblem(
            report.file,
            int(line),
            "geometry",
            None if x is None else f"{x:.6f}, {y:.6f}",
            "不在任何网格内（已保留）/ outside every grid (kept)",
        )
        for line, x, y in rows
    ]
    if rows:
        report.warnings.append(
            f"{len(rows)} 个点不在任何网格内（已保留，见报告）/ points outside every grid "
            "(kept, listed in the report)"
        )


POST_CHECKS: dict[str, Callable[[Connection, LoadReport], None]] = {
    "grids": _post_grids,
    "buildings": _post_points,
    "incidents": _post_points,
    "places": _post_points,
    "facilities": _post_points,
    "patrols": _post_points,
}


def _count_lines(path: Path) -> int | None:
    """Lines of a big text file (the progress bar's 100 %), read in 1 MiB blocks: ~0.1 s
    per 100 MB. ``None`` for small files, which need no bar."""
    if path.stat().st_size < 5_000_000:
        return None
    with path.open("rb") as fh:
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))


def _progress_line(what: str, done: int, total: int | None) -> str:
    """``[########------------]  40%  已检查 checked 400,000 rows`` (no bar without a total)."""
    if not total:
        return f"{what} {done:,} rows"
    share = min(done / total, 1.0)
    filled = round(share * 24)
    return f"[{'#' * filled}{'-' * (24 - filled)}] {share:4.0%}  {what} {done:,} rows"


def print_progress(message: str) -> None:
    """Progress on stderr, redrawn on one line, when a person is watching (a terminal);
    silent in pipes and logs."""
    if sys.stderr.isatty():
        print(f"\r\033[K… {message}", end="", file=sys.stderr, flush=True)
