"""Writing an analysis result to the file a user asked for: ``.geojson``, ``.csv`` or
``.parquet``, chosen by the file's extension; watermarked where the format has room, and
recorded in the audit log (issue 7).

GeoJSON needs geometries (in EPSG:4326, as the format says); a CSV carries a table's
geometry as WKT in a ``wkt`` column so that nothing is silently dropped; Parquet holds
either (GeoParquet for a GeoDataFrame). Text is UTF-8, with a BOM in CSV so that Excel in
China opens it right.

The watermark (:mod:`store.watermark`: user and time) goes where every reader ignores it,
as ``python -m loaders export`` puts it:

========  ==================================================================================
geojson   a foreign member ``gridone_watermark`` of the FeatureCollection (RFC 7946 §6.1)
parquet   the file's key-value metadata, key ``gridone_watermark`` (JSON)
csv       nothing: a comment line or an extra column would change what every reader
          reads; the audit row's SHA-256 identifies the file
========  ==================================================================================

:func:`write_audited` writes under a temporary name, records the file in ``audit_log``
(action ``export``: the command and its arguments, format, rows, path, size, SHA-256,
watermark), and only then gives it its name, so no file leaves without its row.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyarrow.parquet as pq
import shapely
from sqlalchemy import Engine

from store.access import audit
from store.sheets import guard_text_columns
from store.watermark import WATERMARK_KEY, Watermark, watermark_fields

#: Output formats by extension.
SUFFIXES = (".geojson", ".csv", ".parquet")


class OutputError(ValueError):
    """An output file that cannot hold the result, with what to do instead."""


def check_output(path: Path) -> str:
    """The format of ``path`` by its extension, or :class:`OutputError` saying which ones
    work (checked before an analysis runs, not after)."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise OutputError(
            f"{Path(path).name}: 不支持的输出格式，请用 .geojson、.csv 或 .parquet / unsupported "
            "output format: use .geojson, .csv or .parquet"
        )
    return suffix


def write_result(frame: pd.DataFrame, path: Path, watermark: Watermark | None = None) -> Path:
    """Write ``frame`` to ``path`` in the format its extension names, with ``watermark``
    where the format has room for it; return the path."""
    path = Path(path)
    suffix = check_output(path)
    frame = _flat(frame)
    is_geo = isinstance(frame, gpd.GeoDataFrame) and frame.geometry.name in frame
    if suffix == ".geojson":
        if not is_geo:
            raise OutputError(
                f"{path.name}: 该结果没有几何，请输出 .csv 或 .parquet / this result has no "
                "geometry: write .csv or .parquet"
            )
        gdf = frame if frame.crs is None else frame.to_crs(4326)
        options: dict[str, Any] = {}
        if watermark is not None:
            member = json.dumps({WATERMARK_KEY: watermark_fields(watermark)}, ensure_ascii=False)
            options["layer_options"] = {"FOREIGN_MEMBERS_COLLECTION": member}
        gdf.to_file(path, driver="GeoJSON", engine="pyogrio", **options)
    elif suffix == ".csv":
        table = pd.DataFrame(frame)
        if is_geo:
            geom = frame.geometry.name
            table = table.drop(columns=[geom])
            table["wkt"] = shapely.to_wkt(frame.geometry.to_crs(4326).values, rounding_precision=7)
        guard_text_columns(table).to_csv(path, index=False, encoding="utf-8-sig")
    else:
        if is_geo:
            frame.to_parquet(path)
        else:
            pd.DataFrame(frame).to_parquet(path)
        if watermark is not None:
            _watermark_parquet(path, watermark)
    return path


def _watermark_parquet(path: Path, watermark: Watermark) -> None:
    """Add the watermark to a Parquet file's key-value metadata (the schema's, which
    pyarrow writes to the footer), keeping what is there (GeoParquet's ``geo``, pandas')."""
    table = pq.read_table(path)
    meta = dict(table.schema.metadata or {})
    meta[WATERMARK_KEY.encode()] = json.dumps(
        watermark_fields(watermark), ensure_ascii=False
    ).encode("utf-8")
    pq.write_table(table.replace_schema_metadata(meta), path)


@dataclass(frozen=True)
class Written:
    """A file :func:`write_audited` wrote: its path, rows, size and SHA-256 (as audited)."""

    path: Path
    rows: int
    bytes: int
    sha256: str
    watermarked: bool

    def summary(self) -> str:
        """Two bilingual lines: what was written, and the audit row (and, for CSV, that the
        file carries no watermark)."""
        lines = [f"已写入 written: {self.path} ({self.rows:,} 行 rows)"]
        if not self.watermarked:
            lines.append(
                "  ! csv 文件内无处放置水印，已在审计日志中记录其 SHA-256 / a csv file has no "
                "place for the watermark: the audit log records its SHA-256 instead"
            )
        lines.append(f"  已记入审计日志 / recorded in the audit log: sha256 {self.sha256}")
        return "\n".join(lines)


def write_audited(
    engine: Engine,
    frame: pd.DataFrame,
    path: Path,
    *,
    watermark: Watermark,
    detail: dict[str, Any],
) -> Written:
    """Write ``frame`` to ``path`` (:func:`write_result`, watermarked) and record it in
    ``audit_log`` (action ``export``, as the login of ``watermark``).

    The file is written under a temporary name, hashed, audited in its own transaction,
    and only then renamed to ``path``: a failed audit leaves no file. ``detail`` (what
    made it: the command and its arguments) is completed with the format, rows, path,
    size, SHA-256 and watermark.
    """
    path = Path(path)
    suffix = check_output(path)
    partial = path.with_name(f"{path.stem}.partial{path.suffix}")
    partial.unlink(missing_ok=True)
    try:
        write_result(frame, partial, watermark)
        body = partial.read_bytes()
        done = Written(
            path,
            len(frame),
            len(body),
            hashlib.sha256(body).hexdigest(),
            watermarked=suffix != ".csv",
        )
        record = {
            **detail,
            "format": suffix.lstrip("."),
            "rows": done.rows,
            "out": str(path.resolve()),
            "bytes": done.bytes,
            "sha256": done.sha256,
            "watermark": watermark.as_dict(),
        }
        with engine.begin() as conn:  # recorded before the file takes its name
            audit(conn, "export", login=watermark.login, detail=record)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return done


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """List cells (a repeat location's incident codes) as ``a;b;c`` text: GeoJSON and CSV
    hold no lists, and one format should not differ from another."""
    listed = [
        c
        for c in frame.columns
        if frame[c].dtype == object and frame[c].map(lambda v: isinstance(v, list | tuple)).any()
    ]
    if not listed:
        return frame
    out = frame.copy()
    for c in listed:
        out[c] = out[c].map(lambda v: ";".join(map(str, v)) if isinstance(v, list | tuple) else v)
    return out
