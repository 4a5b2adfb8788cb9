"""Reading any supported file into one table of text columns plus, for vector formats, its
geometries — before any field is interpreted.

Every attribute is read as text (a grid code ``370214900001001`` must not become
``3.70214900001001e14``); :mod:`loaders.engine` parses types, so that a bad value is
reported with its line and field instead of failing the whole read.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import zipfile
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyogrio

from loaders.sniff import (
    EmptyFileError,
    EncodingDetectionError,
    InputError,
    Sniffed,
    detect_file_encoding,
)

#: Put before the text of a spreadsheet cell that holds a formula without a saved result
#: (GDAL reads it as empty): :mod:`loaders.parse` refuses its row, naming the cell. Starts
#: with a NUL character, which no value stored in PostgreSQL can hold.
UNSAVED_FORMULA = "\x00unsaved formula\x00"

#: Open311 GeoReport v2 request fields → canonical field names.
OPEN311_FIELDS = {
    "service_request_id": "code",
    "service_code": "category_code",
    "service_name": "title",
    "description": "description",
    "address": "address",
    "requested_datetime": "reported_at",
    "expected_datetime": "due_at",
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
    unit
        What ``lines`` count (:data:`loaders.report.UNITS`): ``"line"`` of a text file,
        ``"row"`` of a sheet, ``"feature"`` of a vector file, ``"record"`` of Open311.
    """

    frame: pd.DataFrame
    geometry: gpd.GeoSeries | None
    lines: np.ndarray
    source: str
    crs: str | None
    unit: str = "line"


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
        # a text column's missing values stay NaN through map(): None, as documented
        out[str(c)] = text.astype(object).where(text.notna(), None)
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

#: Largest field the line counter reads (the csv module's default is 128 KB; a cell of a
#: long polygon's WKT is longer).
_FIELD_LIMIT = 2**31 - 1


def _record_lines(
    path: Path, encoding: str, sep: str
) -> Generator[tuple[int, list[str]], None, None]:
    """Each record of a delimited text file with the physical line it starts on (the file's
    first line is 1), blank lines left out as pandas leaves them out.

    A quoted value may hold line breaks, so record *n* is not line *n* + 1; the user looks
    a problem up by the line number their editor shows."""
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    blank_chars = " \r\n" if sep == "\t" else " \t\r\n"
    with path.open(encoding=encoding, newline="") as fh:
        last = [""]

        def feed() -> Iterator[str]:
            for physical in fh:
                last[0] = physical
                yield physical

        reader = csv.reader(feed(), delimiter=sep, skipinitialspace=True)
        end = 0
        for record in reader:
            start, end = end + 1, reader.line_num
            # pandas skips a line of spaces, but not a line of "" (an empty quoted value)
            if start == end and not last[0].strip(blank_chars):
                continue
            yield start, record


#: Encodings in which ``\n``, ``\r``, ``"``, space and tab are single bytes that never occur
#: inside another character (the trail bytes of GBK/GB18030/Big5 are 0x30 and up).
_BYTE_SAFE = {"ascii", "utf-8", "utf-8-sig", "gb18030", "gbk", "gb2312", "big5", "latin-1"}
_BLANK_LINE = re.compile(rb"\n[ \t\r]*\n")
_BARE_CR = re.compile(rb"\r(?!\n)")


def _plain_lines(path: Path, encoding: str) -> tuple[bool, bool]:
    """Whether every record of the file can be numbered without parsing it again: no blank
    line anywhere (pandas skips those) and no line ending in a bare ``\r``; and whether it
    holds a ``"`` at all (without one, no value spans lines). Read in 1 MiB blocks of
    bytes, ~0.1 s per 100 MB; ``(False, True)`` for encodings where bytes cannot say."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return False, True
    if name not in _BYTE_SAFE and name.replace("_", "-") not in _BYTE_SAFE:
        return False, True
    tail, quoted = b"\n", False  # as if after a line break: a blank first line counts
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            data = tail + block
            cut = data[:-1] if data.endswith(b"\r") else data  # its \n may be in the next block
            if _BLANK_LINE.search(data) or _BARE_CR.search(cut):
                return False, True
            quoted = quoted or b'"' in block
            last = data.rfind(b"\n")
            if last < 0 and not data.strip(b" \t\r"):
                return False, True
            tail = data[last:] if last >= 0 else b"x"
    if tail != b"\n" and not tail.strip(b" \t\r\n"):
        return False, True  # the last line holds only spaces (or a bare \r)
    return True, quoted


def _line_breaks(frame: pd.DataFrame) -> np.ndarray:
    """Line breaks inside each row's values (quoted values that span lines)."""
    total = np.zeros(len(frame), dtype=np.int64)
    for name in frame.columns:
        values = pa.array(frame[name].to_numpy(dtype=object), type=pa.string(), from_pandas=True)
        total += pc.fill_null(pc.count_substring(values, "\n"), 0).to_numpy(zero_copy_only=False)
    return total


def _unreadable_csv(path: Path, encoding: str, sep: str, width: int) -> InputError:
    """The clear error for a file pandas' parser refused: the first record with more values
    than the header, by its line."""
    for line, record in _record_lines(path, encoding, sep):
        if len(record) > width and any(v.strip() for v in record[width:]):
            return InputError(
                f"{path.name}：第{line}行有 {len(record)} 个值，表头只有 {width} 列；请检查这一行"
                f"是否多了分隔符或引号 / {path.name}: line {line} has {len(record)} values "
                f"but the header has {width} columns; look for an extra delimiter or a stray "
                "quote",
                file=path.name,
            )
    return InputError(
        f"{path.name}：无法按 CSV 读取 / cannot be read as CSV", file=path.name
    )  # pragma: no cover - pandas refuses only what the loop above finds


def iter_csv(
    path: Path, *, encoding: str | None = None, chunk_rows: int | None = None
) -> Iterator[RawTable]:
    """A CSV or tab-separated text file in chunks of ``chunk_rows``, all columns as text.

    Line numbers are the file's physical lines (the header is line 1 when it is the first
    line), also after values that hold line breaks and after blank lines. Headers are kept
    as written: two columns with the same header are one column when they hold the same
    values, else an :class:`InputError` naming both."""
    enc = encoding or detect_file_encoding(path)
    sep = _csv_delimiter(path, enc)
    reader = pd.read_csv(
        path,
        dtype=str,
        keep_default_na=False,
        na_values=[""],
        encoding=enc,
        sep=sep,
        skipinitialspace=True,
        # a delimiter at the end of every line is not a column of row labels
        index_col=False,
        chunksize=chunk_rows or CHUNK_ROWS,  # read at call time: tests shrink it
    )
    records = _record_lines(path, enc, sep)
    # a file without blank lines: each record's line from the line breaks in its values,
    # instead of parsing the file a second time with the csv module
    plain, quoted = _plain_lines(path, enc)
    seen = 0
    try:
        # pandas renames a repeated header ("经度.1"): the file's own names are kept
        header_line, header = next(records, (1, []))
        written = [w.lstrip("\ufeff") for w in header]
        next_line = header_line + sum(w.count("\n") for w in header) + 1
        with reader:
            for frame in reader:
                frame.columns = [
                    w if w.strip() else str(p) for w, p in zip(written, frame.columns, strict=False)
                ] + [str(p) for p in frame.columns[len(written) :]]
                if plain:
                    breaks = _line_breaks(frame) if quoted else np.zeros(len(frame), np.int64)
                    before = np.cumsum(breaks) - breaks
                    lines = next_line + np.arange(len(frame), dtype=np.int64) + before
                    next_line = int(lines[-1] + breaks[-1] + 1) if len(frame) else next_line
                frame = frame.astype(object).where(frame.notna(), None)
                if not plain:
                    starts = [line for line, _ in islice(records, len(frame))]
                    lines = np.array(starts, dtype=np.int64)
                if len(lines) < len(frame):  # pragma: no cover - the two parsers agree
                    more = np.arange(1, len(frame) - len(lines) + 1)
                    lines = np.concatenate([lines, (lines[-1] if len(lines) else 1) + more])
                seen += len(frame)
                frame = _one_column_per_header(frame, path.name)
                yield RawTable(frame, None, lines, path.name, None)
    except pd.errors.ParserError as exc:
        raise _unreadable_csv(path, enc, sep, len(written)) from exc
    except UnicodeDecodeError as exc:
        raise EncodingDetectionError(
            f"{path.name}：不能按 {enc} 解码（第 {exc.start + 1} 字节附近）；请用 --encoding 指定"
            f"正确的编码 / {path.name} does not decode as {enc} (near byte {exc.start + 1}); "
            "name the right encoding with --encoding",
            file=path.name,
        ) from exc
    finally:
        records.close()
    if seen == 0:
        raise EmptyFileError(f"{path.name}: 只有表头，没有数据行 / has a header but no data rows")


def _one_column_per_header(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Columns under the same header: one column when they hold the same values (an export
    that repeats a column), else refused naming both — which one is meant cannot be
    guessed."""
    headers = [str(c) for c in frame.columns]
    if len(set(headers)) == len(headers):
        return frame
    first: dict[str, int] = {}
    keep = []
    for i, h in enumerate(headers):
        if h not in first:
            first[h] = i
            keep.append(i)
            continue
        a, b = frame.iloc[:, first[h]], frame.iloc[:, i]
        same = (a.isna() & b.isna()) | (a.astype(object) == b.astype(object))
        if not same.all():
            j = first[h] + 1
            raise InputError(
                f"{source}：第{j}列和第{i + 1}列的表头都是“{h}”，内容却不同；请删去或改名其中一列"
                f" / {source}: columns {j} and {i + 1} are both headed {h!r} but hold different "
                "values; delete or rename one of them",
                file=source,
            )
    return frame.iloc[:, keep]


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
    if sniffed.format in ("kml", "kmz") and "id" in attrs:
        # GDAL's LIBKML driver numbers placemarks without an id itself ("layer.1", …);
        # such an id is not the user's and would compete with their code column
        ids = attrs["id"].astype("string")
        if ids.str.fullmatch(r".+\.\d+").fillna(True).all():
            attrs = attrs.drop(columns=["id"])
    if sniffed.format == "gpx" and "track_fid" in attrs:
        names = _gpx_track_names(path)
        attrs["worker_code"] = attrs["track_fid"].map(names)
    crs = geometry.crs.to_string() if geometry is not None and geometry.crs else None
    if crs is None and sniffed.prj_text:
        crs = sniffed.prj_text
    text = _as_text(attrs)
    if sniffed.format == "geojson":
        _restore_nul(sniffed.path, text)
    return RawTable(
        _one_column_per_header(text, sniffed.path.name),
        geometry,
        np.arange(len(gdf)) + 1,
        sniffed.path.name,
        crs,
        unit="feature",
    )


def _restore_nul(path: Path, text: pd.DataFrame) -> None:
    """Put back the values GDAL cut at an escaped NUL (``"ab\\u0000cd"`` reads as ``ab``),
    so that :mod:`loaders.parse` refuses their rows instead of storing a cut value."""
    with path.open("rb") as fh:
        if not any(b"\\u0000" in block.lower() for block in _blocks(fh)):
            return
    doc = json.loads(path.read_text(encoding="utf-8-sig"))
    features = doc.get("features", []) if isinstance(doc, dict) else []
    for i, feature in enumerate(features[: len(text)]):
        props = (feature or {}).get("properties") or {}
        for key, value in props.items():
            if isinstance(value, str) and "\x00" in value and key in text.columns:
                text.iloc[i, text.columns.get_loc(key)] = value


def _blocks(fh: object, size: int = 1 << 20) -> Iterator[bytes]:
    """A binary file in blocks overlapping by 5 bytes (so a 6-byte escape is never cut)."""
    tail = b""
    while block := fh.read(size):  # type: ignore[attr-defined]
        yield tail + block
        tail = block[-5:]


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
    # GDAL cannot tell a lone header row from data: it names the columns Field1, Field2, …
    header_only = len(frame) == 1 and all(re.fullmatch(r"Field\d+", c) for c in frame.columns)
    if frame.empty or header_only:
        raise EmptyFileError(f"{sniffed.path.name}: 工作表没有数据行 / the sheet has no data rows")
    headers = [str(c) for c in frame.columns]
    if len(set(headers)) < len(headers):
        # GDAL fills every column of a repeated header with the last one's values: read
        # the sheet again without a header row to see each column as it is
        frame = pyogrio.read_dataframe(
            str(sniffed.path), read_geometry=False, FIELD_TYPES="STRING", HEADERS="DISABLE"
        ).iloc[1:]
    text = _as_text(frame.set_axis(range(frame.shape[1]), axis=1).reset_index(drop=True))
    for row, col, shown in _unsaved_formulas(sniffed.path):
        # GDAL reads the sheet from its row 1 (the header): sheet row r is frame row r - 2
        if 0 <= row - 2 < len(text) and col < text.shape[1] and _missing(text.iat[row - 2, col]):
            text.iat[row - 2, col] = UNSAVED_FORMULA + shown
    text.columns = headers
    return RawTable(
        _one_column_per_header(text, sniffed.path.name),
        None,
        np.arange(len(frame)) + 2,
        sniffed.path.name,
        None,
        unit="row",
    )


_SHEET_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
# a formula element, with or without a namespace prefix
_FORMULA_TAG = re.compile(rb"<(?:\w+:)?f[\s>/]")


def _first_sheet(book: zipfile.ZipFile) -> str | None:
    """The member of the workbook's first sheet (the one GDAL reads first)."""
    try:
        workbook = ElementTree.fromstring(book.read("xl/workbook.xml"))
        rels = ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels"))
    except (KeyError, ElementTree.ParseError):
        return None
    sheet = next((e for e in workbook.iter() if e.tag.rsplit("}", 1)[-1] == "sheet"), None)
    rid = None if sheet is None else sheet.get(_SHEET_NS)
    target = next((r.get("Target") for r in rels.iter() if r.get("Id") == rid), None)
    if not target:
        return None
    return target.lstrip("/") if target.startswith("/") else str(PurePosixPath("xl", target))


def _cell_position(ref: str) -> tuple[int, int] | None:
    """``"C12"`` → (12, 2): the sheet row (1-based) and the column index (0-based)."""
    m = re.fullmatch(r"([A-Z]+)(\d+)", ref)
    if m is None:
        return None
    col = 0
    for letter in m[1]:
        col = col * 26 + ord(letter) - 64
    return int(m[2]), col - 1


def _unsaved_formulas(path: Path) -> list[tuple[int, int, str]]:
    """The cells of the first sheet that hold a formula but no saved result, as (sheet row,
    column index, ``"B3 =A3*2"``). A workbook written by a program (openpyxl, a web export)
    rather than saved by Excel or WPS has formulas that were never calculated: GDAL reads
    them as empty cells, which would load as blanks."""
    try:
        with zipfile.ZipFile(path) as book:
            member = _first_sheet(book)
            if member is None or member not in book.namelist():
                return []
            with book.open(member) as fh:
                if not any(_FORMULA_TAG.search(block) for block in _blocks(fh)):
                    return []
            found = []
            with book.open(member) as fh:
                for _event, cell in ElementTree.iterparse(fh):
                    if cell.tag.rsplit("}", 1)[-1] != "c":
                        continue
                    children = {child.tag.rsplit("}", 1)[-1]: child for child in cell}
                    saved = children.get("v")
                    if "f" in children and (
                        saved is None
                        or (not saved.text and cell.get("t") not in ("str", "inlineStr"))
                    ):
                        ref = cell.get("r", "")
                        where = _cell_position(ref)
                        if where is not None:
                            formula = children["f"].text or "…"
                            found.append((*where, f"{ref} ={formula}"))
                    cell.clear()
            return found
    except (zipfile.BadZipFile, ElementTree.ParseError):
        return []  # GDAL has read it: what it read stands


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
        _as_text(frame),
        None,
        np.arange(len(frame)) + 1,
        sniffed.path.name,
        "EPSG:4326",
        unit="record",
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
