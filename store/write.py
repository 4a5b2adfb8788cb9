"""Bulk writes: every row that enters the store goes through :func:`copy_frame`.

One call streams a frame into one table with PostgreSQL ``COPY`` on the caller's connection,
so the caller's transaction decides whether all of it lands or none of it does. Geometry
columns are checked for CRS (must be the storage CRS, EPSG:4490) before a byte is sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
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


def _geometry_values(series: gpd.GeoSeries, column: str, table: str) -> list[str | None]:
    epsg = series.crs.to_epsg() if series.crs is not None else None
    if epsg != STORAGE_EPSG:
        raise CrsMismatchError(
            f"{table}.{column}: geometries are in {series.crs!r}, the store keeps "
            f"EPSG:{STORAGE_EPSG} (CGCS2000); reproject with .to_crs({STORAGE_EPSG}) first"
        )
    geoms = shapely.set_srid(np.asarray(series.values, dtype=object), STORAGE_EPSG)
    hexes = shapely.to_wkb(geoms, hex=True, include_srid=True)
    return [None if g is None else h for g, h in zip(series.values, hexes, strict=True)]


def _python_values(col: pd.Series, sql_type: str | None = None) -> list[Any]:
    """Column values as plain Python objects psycopg adapts, with missing values as None.

    A float column bound for an integer column (pandas turns integers with gaps into
    floats) is written as integers; a fractional value there is an error naming the column.
    """
    if sql_type in _INTEGER_TYPES and pd.api.types.is_float_dtype(col):
        finite = col.dropna()
        if not (finite == finite.round()).all():
            raise SchemaMismatchError(
                f"column {col.name!r} is {sql_type} but holds fractional values, e.g. "
                f"{finite[finite != finite.round()].iloc[0]!r}"
            )
        col = col.astype("Int64")
    if isinstance(col.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(col):
        if not isinstance(col.dtype, pd.DatetimeTZDtype):
            raise SchemaMismatchError(
                f"column {col.name!r} holds timestamps without a time zone; "
                "localise them (e.g. .dt.tz_localize('Asia/Shanghai')) before writing"
            )
        values: list[Any] = list(col.dt.to_pydatetime())
        mask = col.isna().to_numpy()
    else:
        values = col.tolist()
        if col.dtype == object and any(
            isinstance(v, dt.datetime) and v.tzinfo is None for v in values
        ):
            raise SchemaMismatchError(
                f"column {col.name!r} holds timestamps without a time zone; "
                "give them one (e.g. Asia/Shanghai) before writing"
            )
        mask = pd.isna(col).to_numpy() if col.dtype != object else None
        if mask is None:
            mask = np.fromiter(
                (v is None or (isinstance(v, float) and v != v) for v in values),
                dtype=bool,
                count=len(values),
            )
    if mask.any():
        values = [None if m else v for v, m in zip(values, mask, strict=True)]
    return values


def iter_rows(
    frame: pd.DataFrame,
    columns: Sequence[str],
    table: str,
    sql_types: dict[str, str] | None = None,
) -> Iterator[tuple]:
    """Rows of ``frame`` restricted to ``columns`` as tuples of Python values."""
    data = []
    types = sql_types or {}
    for c in columns:
        col = frame[c]
        if isinstance(col, gpd.GeoSeries) or isinstance(col.dtype, gpd.array.GeometryDtype):
            data.append(
                _geometry_values(gpd.GeoSeries(col, crs=getattr(col, "crs", None)), c, table)
            )
        else:
            data.append(_python_values(col, types.get(c)))
    return zip(*data, strict=True) if data else iter(())


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
    rows = iter_rows(frame, cols, table, writable)  # checks CRS and types before COPY starts
    n = 0
    with raw.cursor() as cur, cur.copy(sql) as copy:  # type: ignore[union-attr]
        for row in rows:
            copy.write_row(row)
            n += 1
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
def deferred_indexes(conn: Connection, tables: Iterable[str]) -> Iterator[list[str]]:
    """Load empty tables fast: build their indexes and check their foreign keys once, at the
    end, instead of row by row.

    For each table in ``tables`` that is empty when the block starts, its secondary
    (non-unique) indexes and its foreign keys are dropped, and re-created when the block
    ends — indexes built in bulk, foreign keys validated by one join each. Everything
    happens in the caller's transaction, so an error anywhere (a dangling reference
    included) rolls the whole load back and the schema is as before. Primary keys, unique
    and CHECK constraints stay in force throughout.

    Yields the names of the tables that were treated this way.
    """
    if conn.connection.driver_connection.autocommit:  # type: ignore[union-attr]
        raise ValueError(
            "deferred_indexes needs a transaction: on an autocommit connection a failed load "
            "would leave the tables without their indexes and foreign keys"
        )
    quote = conn.dialect.identifier_preparer.quote
    saved: list[tuple[str, list[tuple[str, str]], list[tuple[str, str]]]] = []
    for table in tables:
        if conn.execute(select(exists().select_from(sa_table(table)))).scalar_one():
            continue
        indexes = [(n, d) for n, d in conn.execute(_SECONDARY_INDEXES, {"table": table})]
        fkeys = [(n, d) for n, d in conn.execute(_FOREIGN_KEYS, {"table": table})]
        for name, _ in fkeys:
            conn.execute(text(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}"))
        for name, _ in indexes:
            conn.execute(text(f"DROP INDEX {quote(name)}"))
        saved.append((table, indexes, fkeys))
    yield [t for t, _, _ in saved]
    for table, indexes, fkeys in saved:
        for _, definition in indexes:
            conn.execute(text(definition))
        for name, definition in fkeys:
            conn.execute(
                text(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")
            )


def utc_now() -> dt.datetime:
    """Current time, time-zone aware (for ``data_source.loaded_at``)."""
    return dt.datetime.now(dt.UTC)
