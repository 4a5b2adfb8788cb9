"""Reading any supported file into one table of text columns plus, for vector formats, its
geometries — before any field is interpreted.

Every attribute is read as text (a grid code ``370214900001001`` must not become
``3.70214900001001e14``); :mod:`loaders.engine` parses types, so that a bad value is
reported with its line and field instead of failing the whole read.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio

from loaders.sniff import EmptyFileError, InputError, Sniffed, detect_file_encoding

#: Open311 GeoReport v2 request fields → canonical field names.
OPEN311_FIELDS = {
    "service_request_id": "code",
    "service_code": "category_code",
    "service_name": "title",
    "description": "description",
    "address": "address",
    "requested_datetime": "reported_at",
    "status": "open311_status",
    "lat": "lat",
    "long": "lon",
    "agency_responsible": "actor",
}


@dataclass
class RawTable:
    """A file's rows before interpretation.

    Attributes
    ----------
    frame
        One text column per attribute (missing values as ``None``).
    geometry
        The geometries of vector formats, in the file's CRS (``geometry.crs``), else None.
    lines
        The line (or feature number) of each row as a person would look it up.
    source
        The file's name, for messages.
    crs
        The CRS the file declares (``.prj``, GeoPackage, KML/GPX/GeoJSON: EPSG:4326), or None.
    """

    frame: pd.DataFrame
    geometry: gpd.GeoSeries | None
    lines: np.ndarray
    source: str
    crs: str | None


def _missing(value: object) -> bool:
    """None, NaN, NaT — but not a list-valued cell, which ``pd.isna`` cannot judge."""
    if value is None or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for c in frame.columns:
        col = frame[c]
        if pd.api.types.is_float_dtype(col):
            # whole numbers read as floats by a driver: 12.0 -> "12"
            text = col.map(
                lambda v: None if pd.isna(v) else (str(int(v)) if v == int(v) else repr(float(v)))
            )
        else:
            # missing in any form (None, NaN, NaT from a driver's date field) -> None
            text = col.map(lambda v: None if _missing(v) else str(v))
        out[str(c)] = text.astype(object)
    return pd.DataFrame(out, index=frame.index)


def _csv_delimiter(path: Path, encoding: str) -> str:
    with path.open(encoding=encoding, newline="") as fh:
        head = fh.read(64 * 1024)
    try:
        return csv.Sniffer().sniff(head.splitlines()[0] if head else "", ",\t;|").delimiter
    except csv.Error:
        return ","


#: Rows per chunk when a CSV is streamed: memory stays flat however long the file is.
CHUNK_ROWS = 200_000


def iter_csv(
    path: Path, *, encoding: str | None = None, chunk_rows: int | None = None
) -> Iterator[RawTable]:
    """A CSV or tab-separated text file in chunks of ``chunk_rows``, all columns as text;
    line numbers count from the header (line 1)."""
    enc = encoding or detect_file_encoding(path)
    reader = pd.read_csv(
        path,
        dtype=str,
        keep_default_na=False,
        na_values=[""],
        encoding=enc,
        sep=_csv_delimiter(path, enc),
        skipinitialspace=True,
        chunksize=chunk_rows or CHUNK_ROWS,  # read at call time: tests shrink it
    )
    seen = 0
    with reader:
        for frame in reader:
            frame = frame.astype(object).where(frame.notna(), None)
            lines = np.arange(seen, seen + len(frame)) + 2
            seen += len(frame)
            yield RawTable(frame, None, lines, path.name, None)
    if seen == 0:
        raise EmptyFileError(f"{path.name}: 只有表头，没有数据行 / has a header but no data rows")


def read_csv(path: Path, *, encoding: str | None = None) -> RawTable:
    """A whole CSV file at once (small files; see :func:`iter_csv`)."""
    parts = list(iter_csv(path, encoding=encoding))
    frame = pd.concat([p.frame for p in parts], ignore_index=True)
    return RawTable(frame, None, np.concatenate([p.lines for p in parts]), path.name, None)


def read_vector(sniffed: Sniffed, *, encoding: str | None = None) -> RawTable:
    """GeoJSON, GeoPackage, Shapefile, KML/KMZ, GPX: attributes as text plus geometries."""
    path = sniffed.gdal_path
    layer = None
    if sniffed.format == "gpx":
        layer = "track_points"
        layers = {name for name, _ in pyogrio.list_layers(path)}
        if (
            "track_points" not in layers
            or pyogrio.read_info(path, layer="track_points")["features"] == 0
        ):
            layer = "waypoints"
    kwargs: dict = {"layer": layer} if layer else {}
    enc = encoding or sniffed.cpg_encoding
    if enc:
        kwargs["encoding"] = enc
    gdf = pyogrio.read_dataframe(path, **kwargs)
    if gdf.empty:
        raise EmptyFileError(f"{sniffed.path.name}: 文件中没有要素 / the file has no features")
    geometry = gdf.geometry if isinstance(gdf, gpd.GeoDataFrame) else None
    attrs = pd.DataFrame(gdf.drop(columns=[gdf.geometry.name]) if geometry is not None else gdf)
    if sniffed.format == "gpx" and "track_fid" in attrs:
        names = _gpx_track_names(path)
        attrs["worker_code"] = attrs["track_fid"].map(names)
    crs = geometry.crs.to_string() if geometry is not None and geometry.crs else None
    if crs is None and sniffed.prj_text:
        crs = sniffed.prj_text
    return RawTable(_as_text(attrs), geometry, np.arange(len(gdf)) + 1, sniffed.path.name, crs)


def _gpx_track_names(path: str) -> dict[int, str | None]:
    """Track number → track name: the patrol app writes the worker's code there."""
    tracks = pyogrio.read_dataframe(path, layer="tracks", read_geometry=False)
    return {i: (None if pd.isna(n) else str(n)) for i, n in enumerate(tracks.get("name", []))}


def read_xlsx(sniffed: Sniffed) -> RawTable:
    """The first sheet of a workbook (through GDAL's XLSX driver), every cell as text."""
    # dataset open options of GDAL's XLSX driver: every cell as text, first row as header
    frame = pyogrio.read_dataframe(
        str(sniffed.path), read_geometry=False, FIELD_TYPES="STRING", HEADERS="FORCE"
    )
    if frame.empty:
        raise EmptyFileError(f"{sniffed.path.name}: 工作表没有数据行 / the sheet has no data rows")
    return RawTable(_as_text(frame), None, np.arange(len(frame)) + 2, sniffed.path.name, None)


def read_open311(sniffed: Sniffed, *, encoding: str | None = None) -> RawTable:
    """Open311 GeoReport v2 service requests (a JSON array), renamed to canonical fields."""
    text = sniffed.path.read_text(encoding=encoding or "utf-8-sig")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{sniffed.path.name}: JSON 格式错误（第{exc.lineno}行）/ invalid JSON at line "
            f"{exc.lineno}: {exc.msg}"
        ) from exc
    frame = pd.DataFrame(doc).rename(columns=OPEN311_FIELDS)
    if frame.empty:
        raise EmptyFileError(f"{sniffed.path.name}: 没有服务请求 / no service requests")
    return RawTable(
        _as_text(frame), None, np.arange(len(frame)) + 1, sniffed.path.name, "EPSG:4326"
    )


def iter_table(sniffed: Sniffed, *, encoding: str | None = None) -> Iterator[RawTable]:
    """A sniffed file in chunks: CSV streamed, other formats in one piece."""
    if sniffed.format == "csv":
        yield from iter_csv(sniffed.path, encoding=encoding)
    else:
        yield read_table(sniffed, encoding=encoding)


def read_table(sniffed: Sniffed, *, encoding: str | None = None) -> RawTable:
    """Read a sniffed file (see :func:`loaders.sniff.sniff_format`)."""
    fmt = sniffed.format
    if fmt == "csv":
        return read_csv(sniffed.path, encoding=encoding)
    if fmt == "xlsx":
        return read_xlsx(sniffed)
    if fmt == "open311":
        return read_open311(sniffed, encoding=encoding)
    return read_vector(sniffed, encoding=encoding)
