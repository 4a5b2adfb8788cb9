"""Bulk writes: every row that enters the store goes through :func:`copy_frame`.

One call streams a frame into one table with PostgreSQL ``COPY`` on the caller's connection,
so the caller's transaction decides whether all of it lands or none of it does. Geometry
columns are checked for CRS (must be the storage CRS, EPSG:4490) before a byte is sent.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import shapely
from sqlalchemy import Connection, exists, select, text
from sqlalchemy import table as sa_table

from store.crs import STORAGE_EPSG
from store.errors import CrsMismatchError, SchemaMismatchError

_COLUMNS_SQL = text(
    """
    SELECT a.attname, format_type(a.atttypid, a.atttypmod)
    FROM pg_attribute a
    WHERE a.attrelid = to_regclass(:table) AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attgenerated = '' AND a.attidentity <> 'a'
    ORDER BY a.attnum
    """
)


_INTEGER_TYPES = {"smallint", "integer", "bigint"}


def table_columns(conn: Connection, table: str) -> dict[str, str]:
    """Writable columns of ``table`` → their SQL type, in table order. Generated columns and
    ``GENERATED ALWAYS`` identities are not writable."""
    cols = {r[0]: r[1] for r in conn.execute(_COLUMNS_SQL, {"table": table})}
    if not cols:
        raise SchemaMismatchError(
            f"table {table!r} does not exist; run `python -m store migrate` first"
        )
    return cols


NULL = "\\N"  # COPY text format's NULL
_CHUNK_ROWS = 100_000


def _geometry_text(series: pd.Series, column: str, table: str) -> pa.Array:
    # the CRS lives on the geometry array, also when a plain DataFrame holds the column
    crs = getattr(series.array, "crs", None)
    epsg = crs.to_epsg() if crs is not None else None
    if epsg != STORAGE_EPSG:
        raise CrsMismatchError(
            f"{table}.{column}: geometries are in {crs!r}, the store keeps "
            f"EPSG:{STORAGE_EPSG} (CGCS2000); reproject with .to_crs({STORAGE_EPSG}) first"
        )
    geoms = np.asarray(series.values, dtype=object)
    if _all_points(geoms):
        return _point_ewkb_hex(geoms)
    hexes = shapely.to_wkb(shapely.set_srid(geoms, STORAGE_EPSG), hex=True, include_srid=True)
    return pa.array(hexes, type=pa.string(), mask=shapely.is_missing(geoms))


def _all_points(geoms: np.ndarray) -> bool:
    """Non-empty 2-D points only (no None, no POINT EMPTY, no Z): the numpy fast path."""
    return bool(
        len(geoms)
        and (shapely.get_type_id(geoms) == 0).all()
        and not shapely.is_empty(geoms).any()
        and not shapely.has_z(geoms).any()
    )


_HEX = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)
_POINT_HEADER = np.frombuffer(  # little-endian EWKB: point type with the SRID flag, SRID
    b"\x01" + (0x20000001).to_bytes(4, "little") + STORAGE_EPSG.to_bytes(4, "little"),
    dtype=np.uint8,
)


def _point_ewkb_hex(geoms: np.ndarray) -> pa.Array:
    """Hex EWKB of 2-D points built with numpy (the bulk of incidents and GPS fixes):
    several times faster than going through GEOS for each point."""
    xy = shapely.get_coordinates(geoms)
    raw = np.empty((len(geoms), 25), dtype=np.uint8)
    raw[:, :9] = _POINT_HEADER
    raw[:, 9:] = xy.astype("<f8").view(np.uint8).reshape(len(geoms), 16)
    chars = np.empty((len(geoms), 50), dtype=np.uint8)
    chars[:, 0::2] = _HEX[raw >> 4]
    chars[:, 1::2] = _HEX[raw & 0x0F]
    return pa.array(chars.view("S50").ravel()).cast(pa.string())


def _digits(chars: np.ndarray, start: int, values: np.ndarray, width: int) -> None:
    """Write zero-padded decimal ``values`` into ``chars[:, start:start + width]``."""
    for k in range(width - 1, -1, -1):
        chars[:, start + k] = 48 + values % 10
        values = values // 10


def _timestamp_text(col: pd.Series) -> pa.Array:
    """``YYYY-MM-DD HH:MM:SS.ffffff+00`` in UTC, built with integer arithmetic in numpy
    (about 20 times faster than strftime; timestamps are in every large table)."""
    utc = col.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    us = utc.astype(np.int64)
    missing = np.isnat(utc)
    us = np.where(missing, 0, us)
    days, tod = np.divmod(us, 86_400_000_000)
    # civil_from_days (H. Hinnant): proleptic Gregorian date of a day count from 1970-01-01
    z = days + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    chars = np.full((len(us), 29), ord(" "), dtype=np.uint8)
    _digits(chars, 0, year, 4)
    _digits(chars, 5, month, 2)
    _digits(chars, 8, day, 2)
    _digits(chars, 11, tod // 3_600_000_000, 2)
    _digits(chars, 14, tod // 60_000_000 % 60, 2)
    _digits(chars, 17, tod // 1_000_000 % 60, 2)
    _digits(chars, 20, tod % 1_000_000, 6)
    chars[:, [4, 7]] = ord("-")
    chars[:, [13, 16]] = ord(":")
    chars[:, 19] = ord(".")
    chars[:, 26:29] = np.frombuffer(b"+00", dtype=np.uint8)
    out = pa.array(chars.view("S29").ravel(), mask=missing).cast(pa.string())
    return out


def _naive(column: object) -> SchemaMismatchError:
    return SchemaMismatchError(
        f"column {column!r} holds timestamps without a time zone; localise them "
        "(e.g. .dt.tz_localize('Asia/Shanghai')) before writing"
    )


def _object_text(value: object, column: object) -> str | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "t" if value else "f"
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise _naive(column)
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def column_text(col: pd.Series, sql_type: str | None = None, *, table: str = "?") -> pa.Array:
    """One column as COPY text-format fields: an Arrow string array, NULL as ``\\N``.

    Vectorised (Arrow compute and numpy), and checking as it converts: geometries must be
    in the storage CRS, timestamps must carry a time zone, and a float column bound for an
    integer column (pandas turns integers with gaps into floats) must hold whole numbers;
    each failure names the column.
    """
    if isinstance(col.dtype, gpd.array.GeometryDtype):
        out = _geometry_text(col, str(col.name), table)
    elif isinstance(col.dtype, pd.DatetimeTZDtype):
        out = _timestamp_text(col)
    elif pd.api.types.is_datetime64_dtype(col):
        raise _naive(col.name)
    elif pd.api.types.is_bool_dtype(col):
        out = pc.if_else(pa.array(col), "t", "f")
    elif pd.api.types.is_numeric_dtype(col):
        if sql_type in _INTEGER_TYPES and pd.api.types.is_float_dtype(col):
            finite = col.dropna()
            if not (finite == finite.round()).all():
                raise SchemaMismatchError(
                    f"column {col.name!r} is {sql_type} but holds fractional values, e.g. "
                    f"{finite[finite != finite.round()].iloc[0]!r}"
                )
            col = col.astype("Int64")
        out = pc.cast(pa.array(col), pa.string())
    else:
        try:
            out = pa.array(col, type=pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            out = pa.array([_object_text(v, col.name) for v in col.tolist()], type=pa.string())
        # COPY text escapes; a double quote as octal \042, because Arrow's CSV writer
        # (quoting off) refuses a field holding one, and COPY reads it back as ``"``
        for char, escaped in (
            ("\\", "\\\\"),
            ("\t", "\\t"),
            ("\n", "\\n"),
            ("\r", "\\r"),
            ('"', "\\042"),
        ):
            out = pc.replace_substring(out, char, escaped)
    return pc.fill_null(out, NULL)


_WRITE_OPTIONS = pacsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")


def copy_text(fields: list[pa.Array], names: list[str]) -> bytes:
    """Rows of COPY text format from column fields made by :func:`column_text`."""
    sink = io.BytesIO()
    pacsv.write_csv(pa.table(fields, names=names), sink, write_options=_WRITE_OPTIONS)
    return sink.getvalue()


def copy_frame(
    conn: Connection,
    table: str,
    frame: pd.DataFrame,
    *,
    columns: Iterable[str] | None = None,
) -> int:
    """Append ``frame`` to ``table`` with ``COPY`` on ``conn``; return the number of rows.

    Parameters
    ----------
    conn
        An open SQLAlchemy connection on a psycopg (3) engine, inside the caller's
        transaction: a failure anywhere leaves the table as it was once that rolls back.
    table
        Target table name (optionally schema-qualified).
    frame
        One column per target column, named as in the table. Geometry columns must be
        GeoSeries in EPSG:4490; timestamps must carry a time zone.
    columns
        Columns to write; default: every column of the frame, each of which must be a
        writable column of the table (a misspelt column is an error, not a silent NULL).
        A requested column missing from the frame is an error.
    """
    writable = table_columns(conn, table)
    if columns is None:
        extra = [c for c in frame.columns if c not in writable]
        if extra:
            raise SchemaMismatchError(
                f"{table} has no writable column(s) {extra}; it has {list(writable)}"
            )
        cols = [c for c in writable if c in frame.columns]
    else:
        cols = list(columns)
        unknown = [c for c in cols if c not in writable]
        if unknown:
            raise SchemaMismatchError(
                f"{table} has no writable column(s) {unknown}; it has {list(writable)}"
            )
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise SchemaMismatchError(f"frame for {table} lacks column(s) {missing}")
    if not cols or frame.empty:
        return 0
    raw = conn.connection.driver_connection
    quote = conn.dialect.identifier_preparer.quote
    target = ".".join(quote(p) for p in table.split("."))
    sql = f"COPY {target} ({', '.join(quote(c) for c in cols)}) FROM STDIN"
    n = len(frame)

    def fields(start: int) -> list[pa.Array]:
        part = frame.iloc[start : start + _CHUNK_ROWS]
        return [column_text(part[c], writable[c], table=table) for c in cols]

    # The first chunk is converted (and so checked) before COPY opens: a bad CRS, naive
    # timestamps or fractional ids leave the caller's transaction untouched. A fault found
    # in a later chunk aborts the COPY, and with it the caller's transaction.
    first = fields(0)
    with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[union-attr]
        for start in range(0, n, _CHUNK_ROWS):
            copy.write(copy_text(first if start == 0 else fields(start), cols))
    return n


_SECONDARY_INDEXES = text(
    """
    SELECT c.relname, pg_get_indexdef(i.indexrelid)
      FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
     WHERE i.indrelid = to_regclass(:table) AND NOT i.indisprimary AND NOT i.indisunique
     ORDER BY c.relname
    """
)
_FOREIGN_KEYS = text(
    """
    SELECT conname, pg_get_constraintdef(oid)
      FROM pg_constraint
     WHERE conrelid = to_regclass(:table) AND contype = 'f' AND conparentid = 0
     ORDER BY conname
    """
)


@contextmanager
def deferred_indexes(
    conn: Connection,
    tables: Iterable[str],
    *,
    only_if_empty: bool = True,
    foreign_keys: bool = True,
) -> Iterator[list[str]]:
    """Load empty tables fast: build their indexes and check their foreign keys once, at the
    end, instead of row by row.

    For each table in ``tables`` that is empty when the block starts, its secondary
    (non-unique) indexes and its foreign keys are dropped, and re-created when the block
    ends — indexes built in bulk, foreign keys validated by one join each. Everything
    happens in the caller's transaction, so an error anywhere (a dangling reference
    included) rolls the whole load back and the schema is as before. Primary keys, unique
    and CHECK constraints stay in force throughout.

    ``only_if_empty=False`` treats tables that hold rows too (a batch large against the
    table: rebuilding beats updating each index row by row); ``foreign_keys=False`` keeps
    the foreign keys checked row by row, so a bad reference fails its own row only.

    Yields the names of the tables that were treated this way.
    """
    if conn.connection.driver_connection.autocommit:  # type: ignore[union-attr]
        raise ValueError(
            "deferred_indexes needs a transaction: on an autocommit connection a failed load "
            "would leave the tables without their indexes and foreign keys"
        )
    quote = conn.dialect.identifier_preparer.quote
    saved: list[tuple[str, list[tuple[str, str]], list[tuple[str, str]]]] = []
    tables = list(tables)
    if tables:
        # dropping an index locks its table: wait a little for readers (the dashboard),
        # then give up with a clear error instead of queueing every reader behind us
        previous = conn.execute(text("SHOW lock_timeout")).scalar_one()
        conn.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": LOCK_WAIT})
    for table in tables:
        if (
            only_if_empty
            and conn.execute(select(exists().select_from(sa_table(table)))).scalar_one()
        ):
            continue
        indexes = [(n, d) for n, d in conn.execute(_SECONDARY_INDEXES, {"table": table})]
        fkeys = (
            [(n, d) for n, d in conn.execute(_FOREIGN_KEYS, {"table": table})]
            if foreign_keys
            else []
        )
        for name, _ in fkeys:
            conn.execute(text(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}"))
        for name, _ in indexes:
            conn.execute(text(f"DROP INDEX {quote(name)}"))
        saved.append((table, indexes, fkeys))
    if tables:
        conn.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": previous})
    yield [t for t, _, _ in saved]
    for table, indexes, fkeys in saved:
        for _, definition in indexes:
            # a partitioned table's index reads "ON ONLY parent": re-created like that it
            # would stay invalid and leave the partitions without theirs
            conn.execute(text(definition.replace(" ON ONLY ", " ON ", 1)))
        for name, definition in fkeys:
            conn.execute(
                text(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")
            )


#: How long a bulk load waits for readers to let go of a table before giving up.
LOCK_WAIT = "10s"


_CHECKXMIN_SQL = text(
    """
    SELECT DISTINCT c.relname
      FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid
     WHERE x.indcheckxmin AND c.relnamespace = 'public'::regnamespace
       AND c.relname = ANY(:tables)
     ORDER BY c.relname
    """
)


def reindex_unsettled(conn: Connection, tables: Iterable[str]) -> list[str]:
    """Rebuild the indexes of ``tables`` that no query may use yet, after a load; returns
    the tables rebuilt.

    An index built in the transaction that also updated the table's rows through
    heap-only (HOT) updates — the transition trigger updating incidents while
    :func:`deferred_indexes` had dropped their indexes, when a page had room for the new
    row version — is marked ``indcheckxmin``: the planner ignores it for every snapshot
    older than the load, cluster-wide, so on a busy server a plan that should read it
    falls back to a sequential scan for as long as an older transaction runs anywhere.
    Whether a page has room depends on the rows' sizes, so it comes and goes with the
    data. ``VACUUM`` in a later transaction prunes those chains (its horizon is this
    database's, where the load has ended) and ``REINDEX`` then finds none and clears the
    mark (``REINDEX`` alone was seen to keep it on a busy server). Needs an autocommit
    connection: ``VACUUM`` cannot run in a transaction."""
    names = conn.execute(_CHECKXMIN_SQL, {"tables": list(tables)}).scalars().all()
    quote = conn.dialect.identifier_preparer.quote
    for name in names:
        conn.execute(text(f"VACUUM {quote(name)}"))
        conn.execute(text(f"REINDEX TABLE {quote(name)}"))
    return list(names)


def utc_now() -> dt.datetime:
    """Current time, time-zone aware (for ``data_source.loaded_at``)."""
    return dt.datetime.now(dt.UTC)
