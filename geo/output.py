"""Writing an analysis result to the file a user asked for: ``.geojson``, ``.csv`` or
``.parquet``, chosen by the file's extension.

GeoJSON needs geometries (in EPSG:4326, as the format says); a CSV carries a table's
geometry as WKT in a ``wkt`` column so that nothing is silently dropped; Parquet holds
either (GeoParquet for a GeoDataFrame). Text is UTF-8, with a BOM in CSV so that Excel in
China opens it right.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

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


def write_result(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` in the format its extension names; return the path."""
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
        gdf.to_file(path, driver="GeoJSON")
    elif suffix == ".csv":
        table = pd.DataFrame(frame)
        if is_geo:
            geom = frame.geometry.name
            table = table.drop(columns=[geom])
            table["wkt"] = shapely.to_wkt(frame.geometry.to_crs(4326).values, rounding_precision=7)
        table.to_csv(path, index=False, encoding="utf-8-sig")
    elif is_geo:
        frame.to_parquet(path)
    else:
        pd.DataFrame(frame).to_parquet(path)
    return path


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
