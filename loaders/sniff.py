"""What is this file? Format and text-encoding recognition for the loaders.

Street offices send whatever they have: Shapefiles (loose or zipped), Excel sheets exported
in GBK, GeoJSON from a vendor platform, GPX tracks from the patrol app, Open311 JSON from the
12345 hotline system, and files renamed by hand on the way. Before any row is read, this
module decides

* the **text encoding** of text files (:func:`detect_encoding`): UTF-8 with BOM, UTF-8, or
  GB18030 (the superset of GBK, which is what Excel and WPS write in China), and
* the **format** (:func:`sniff_format`) from the file's *content* — magic bytes, the entries
  of a ZIP archive, the root element of an XML document, the shape of a JSON document —
  and compares it with what the extension claims, so that a ZIP named ``.csv`` is named as
  such instead of failing later with a parser error nobody understands.

Every error subclasses :class:`ValueError`, names the file, says what is wrong and what to
do, Chinese first and then English.
"""

from __future__ import annotations

import codecs
import json
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Final

__all__ = [
    "FORMATS",
    "EmptyFileError",
    "EncodingDetectionError",
    "FileFormatError",
    "IncompleteShapefileError",
    "InputError",
    "Sniffed",
    "detect_encoding",
    "detect_file_encoding",
    "formats_for_extension",
    "known_extensions",
    "normalise_encoding",
    "read_text",
    "sniff_format",
]

#: Bytes of a text file looked at to decide its encoding (and of any file for its format).
SAMPLE_SIZE: Final = 64 * 1024

#: JSON documents up to this size are parsed in full to tell GeoJSON from Open311 and to
#: spot empty collections; larger ones are judged from their first :data:`SAMPLE_SIZE` bytes.
JSON_PARSE_LIMIT: Final = 16 * 1024 * 1024

#: Format names returned by :func:`sniff_format`, with their Chinese and English labels.
FORMATS: Final[dict[str, tuple[str, str]]] = {
    "geojson": ("GeoJSON", "GeoJSON"),
    "gpkg": ("GeoPackage 地理数据库", "GeoPackage"),
    "shapefile": ("Shapefile 矢量文件", "Shapefile"),
    "kml": ("KML 文件", "KML"),
    "kmz": ("KMZ 压缩的 KML", "KMZ (zipped KML)"),
    "csv": ("CSV 表格", "CSV table"),
    "xlsx": ("Excel 工作簿 (.xlsx)", "Excel workbook (.xlsx)"),
    "gpx": ("GPX 轨迹", "GPX track"),
    "open311": ("Open311 GeoReport v2 JSON", "Open311 GeoReport v2 JSON"),
}

# extension -> formats it may legitimately hold
_EXTENSIONS: Final[dict[str, tuple[str, ...]]] = {
    ".geojson": ("geojson",),
    ".json": ("geojson", "open311"),
    ".gpkg": ("gpkg",),
    ".shp": ("shapefile",),
    ".zip": ("shapefile", "kmz"),
    ".kml": ("kml",),
    ".kmz": ("kmz",),
    ".csv": ("csv",),
    ".txt": ("csv",),
    ".tsv": ("csv",),
    ".xlsx": ("xlsx",),
    ".xlsm": ("xlsx",),
    ".gpx": ("gpx",),
}

# what to do to get each format right (the suggested extension)
_SUFFIX_FOR: Final[dict[str, str]] = {
    "geojson": ".geojson",
    "gpkg": ".gpkg",
    "shapefile": ".zip",
    "kml": ".kml",
    "kmz": ".kmz",
    "csv": ".csv",
    "xlsx": ".xlsx",
    "gpx": ".gpx",
    "open311": ".json",
}

_SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_GPKG_APPLICATION_IDS: Final = (b"GPKG", b"GP10", b"GP11")
_ZIP_MAGICS: Final = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_SHP_MAGIC: Final = b"\x00\x00\x27\x0a"  # file code 9994, big-endian
_OLE2_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # legacy .xls / .doc
#: Compressed files the loaders do not open themselves: magic → 中文, English, how to unpack.
_PACKED_MAGICS: Final = {
    b"\x1f\x8b": ("gzip 压缩文件", "a gzip-compressed file", "gunzip"),
    b"\xfd7zXZ\x00": ("xz 压缩文件", "an xz-compressed file", "unxz"),
    b"7z\xbc\xaf\x27\x1c": ("7-Zip 压缩包", "a 7-Zip archive", "7z x"),
    b"Rar!\x1a\x07": ("RAR 压缩包", "a RAR archive", "unrar x"),
    **{
        b"BZh" + bytes([c]): ("bzip2 压缩文件", "a bzip2-compressed file", "bunzip2")
        for c in b"123456789"
    },
}
#: Extensions of data files that may sit in an archive (named when a ZIP holds them; not
#: ``.txt``, which in an archive is mostly a read-me).
_DATA_SUFFIXES: Final = (
    ".csv",
    ".tsv",
    ".geojson",
    ".json",
    ".gpx",
    ".xlsx",
    ".kml",
    ".gpkg",
)
_UTF8_BOM: Final = codecs.BOM_UTF8
_UTF16_BOMS: Final = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_UTF32_BOMS: Final = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)
_NON_ASCII: Final = re.compile(rb"[\x80-\xff]")
# C0 control characters other than tab, LF, VT, FF, CR (and ESC, SUB seen in old exports)
_CONTROL: Final = re.compile(rb"[\x00-\x08\x0e-\x19\x1c-\x1f\x7f]")


# --- errors ------------------------------------------------------------------------------


class InputError(ValueError):
    """Base of the loaders' input errors: the file cannot be read as given.

    ``file`` is the file's name (or another label of the data) the message refers to;
    every error raised here sets it (and names the file in the message too)."""

    def __init__(self, message: str, *, file: str | None = None) -> None:
        super().__init__(message)
        self.file = file


class EncodingDetectionError(InputError):
    """The text encoding could not be decided, or the data does not decode with it."""


class FileFormatError(InputError):
    """The content is not what the extension says, or is no format the loaders read.

    ``claimed`` is what the extension says (``None`` when it says nothing useful),
    ``actual`` what the content is (a short English description)."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        claimed: str | None = None,
        actual: str | None = None,
    ) -> None:
        super().__init__(message, file=file)
        self.claimed = claimed
        self.actual = actual


class IncompleteShapefileError(FileFormatError):
    """A Shapefile lacks a mandatory companion file (``.shx`` or ``.dbf``)."""

    def __init__(self, message: str, *, file: str, missing: tuple[str, ...]) -> None:
        super().__init__(message, file=file, claimed="shapefile", actual="shapefile")
        self.missing = missing


class EmptyFileError(InputError):
    """The file holds no records: zero bytes, only whitespace, or only a header line."""


def _msg(zh: str, en: str) -> str:
    """One bilingual message: Chinese first, then English."""
    return f"{zh} / {en}"


def _label(fmt: str, lang: int) -> str:
    return FORMATS[fmt][lang] if fmt in FORMATS else fmt


# --- encodings ---------------------------------------------------------------------------

_ENCODING_ALIASES: Final[dict[str, str]] = {
    # GBK and GB2312 are subsets of GB18030: decoding with the superset is never wrong.
    "gbk": "gb18030",
    "gb2312": "gb18030",
    "cp936": "gb18030",
    "936": "gb18030",
    "ansi936": "gb18030",
    "euccn": "gb18030",
    "gb18030": "gb18030",
    "utf8": "utf-8",
    "65001": "utf-8",
    "utf8sig": "utf-8-sig",
    "utf8bom": "utf-8-sig",
}


def normalise_encoding(name: str, *, source: str = "--encoding") -> str:
    """The Python codec name for an encoding given by a user, a ``.cpg`` file or GDAL.

    GBK, GB2312, CP936 and the Windows code page ``936`` all become ``"gb18030"`` (their
    superset, so nothing valid is refused); ``UTF8`` and code page ``65001`` become
    ``"utf-8"``. Anything else is looked up in :mod:`codecs`.

    Parameters
    ----------
    name
        The encoding as written, e.g. ``"GBK"``, ``"utf8"``, ``"ANSI 936"``.
    source
        Where the name came from, for the error message.

    Raises
    ------
    EncodingDetectionError
        The name is no known encoding.
    """
    key = re.sub(r"[\s_\-]", "", name.strip().lower())
    if key in _ENCODING_ALIASES:
        return _ENCODING_ALIASES[key]
    if key.isdigit():  # other Windows code pages: 1252 -> cp1252
        key = f"cp{key}"
    try:
        return codecs.lookup(key).name
    except LookupError:
        raise EncodingDetectionError(
            _msg(
                f"{source} 给出的编码“{name}”无法识别；常用编码为 UTF-8 或 GBK",
                f"{source}: unknown encoding {name!r}; the usual ones are UTF-8 and GBK",
            ),
            file=source,
        ) from None


def _decodes(data: bytes, encoding: str, *, final: bool) -> str | None:
    """``data`` decoded strictly, or ``None``. With ``final=False`` an incomplete
    multibyte sequence at the very end (a sample cut mid-character) is tolerated."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    try:
        return decoder.decode(data, final=final)
    except UnicodeDecodeError:
        return None


def _plausible(ch: str) -> bool:
    """Whether a non-ASCII character is expected in Chinese administrative data.

    Used only to choose between two encodings that both decode the sample."""
    o = ord(ch)
    return (
        0x4E00 <= o <= 0x9FFF  # CJK unified ideographs
        or 0x3400 <= o <= 0x4DBF  # extension A
        or 0xF900 <= o <= 0xFAFF  # compatibility ideographs
        or 0x20000 <= o <= 0x3134F  # extensions B-G (rare names)
        or 0x3000 <= o <= 0x303F  # CJK punctuation 、。《》「」
        or 0xFF00 <= o <= 0xFFEF  # full-width forms ，：（）
        or 0x00A0 <= o <= 0x00FF  # Latin-1: ° · × é
        or 0x2010 <= o <= 0x206F  # general punctuation — “” …
        or 0x2100 <= o <= 0x22FF  # letterlike, number forms, arrows, maths ℃ № Ⅲ → ≤
        or 0x2460 <= o <= 0x24FF  # enclosed numbers ①
        or 0x1F000 <= o <= 0x1FAFF  # emoji
        or 0x2600 <= o <= 0x27BF  # symbols, dingbats ☆ ✓
    )


def _score(text: str) -> float:
    """Share of the non-ASCII characters of ``text`` that are :func:`_plausible`."""
    chars = [c for c in text if ord(c) > 0x7F]
    if not chars:
        return 1.0
    return sum(map(_plausible, chars)) / len(chars)


def _utf16_without_bom(sample: bytes) -> bool:
    """Whether NUL bytes sit at every other position, as in UTF-16 text without a BOM."""
    if len(sample) < 4:
        return False
    even, odd = sample[0::2], sample[1::2]
    return (odd.count(0) > 0.3 * len(odd)) != (even.count(0) > 0.3 * len(even))


def _undecodable(source: str, why_zh: str, why_en: str) -> EncodingDetectionError:
    return EncodingDetectionError(
        _msg(
            f"无法识别文件 {source} 的文本编码：{why_zh}。请在 Excel/WPS 中另存为"
            "“CSV UTF-8（逗号分隔）”，或用 --encoding 指定编码",
            f"cannot tell the text encoding of {source}: {why_en}. Save it again as "
            '"CSV UTF-8 (comma delimited)" in Excel/WPS, or name the encoding with --encoding',
        ),
        file=source,
    )


def detect_encoding(data: bytes, *, source: str = "<data>", complete: bool = True) -> str:
    """The text encoding of ``data``: ``"utf-8-sig"``, ``"utf-8"`` or ``"gb18030"``.

    A UTF-8 byte-order mark decides at once. Otherwise a sample of :data:`SAMPLE_SIZE`
    bytes is decoded strictly as UTF-8 and as GB18030: the sample starts at the first
    non-ASCII byte when the first 64 KB are plain ASCII (so a Chinese value deep in a
    long file still counts), and a multibyte character cut at the sample's end is
    tolerated. Plain ASCII is UTF-8. When both decodings succeed — possible for short
    texts, since many GBK byte pairs are also valid UTF-8 — the one whose non-ASCII
    characters look more like Chinese text wins, UTF-8 on a tie.

    Parameters
    ----------
    data
        The file's bytes, or its beginning.
    source
        The file name, for error messages.
    complete
        ``False`` when ``data`` is only the beginning of the file (a character may be cut
        at its end).

    Returns
    -------
    str
        A Python codec name that decodes the sample strictly.

    Raises
    ------
    EncodingDetectionError
        UTF-16/UTF-32 (with or without BOM), binary data, or text that is neither UTF-8
        nor GB18030 (e.g. Big5 or Latin-1 with bytes GB18030 refuses).
    """
    if data.startswith(_UTF8_BOM):
        return "utf-8-sig"
    if data.startswith(_UTF32_BOMS) or data.startswith(_UTF16_BOMS):
        raise _undecodable(source, "文件是 UTF-16/UTF-32 编码", "it is UTF-16/UTF-32 encoded")
    m = _NON_ASCII.search(data)
    start = 0 if m is None or m.start() < SAMPLE_SIZE else m.start()
    sample = data[start : start + SAMPLE_SIZE]
    final = complete and start + SAMPLE_SIZE >= len(data)
    head = data[:SAMPLE_SIZE]
    if (b"\x00" in head or b"\x00" in sample) and _utf16_without_bom(head):
        raise _undecodable(
            source,
            "看起来是不带 BOM 的 UTF-16 编码",
            "it looks like UTF-16 without a byte-order mark",
        )
    # control bytes never occur inside UTF-8 or GB18030 multibyte characters. A stray NUL
    # in a text file (a damaged cell) is text still: the reader names its line.
    if len(_CONTROL.findall(head)) > max(2, len(head) // 1000):
        raise _undecodable(source, "这是二进制文件，不是文本", "it is binary data, not text")
    if m is None:
        return "utf-8"  # plain ASCII
    as_utf8 = _decodes(sample, "utf-8", final=final)
    as_gb = _decodes(sample, "gb18030", final=final)
    if as_utf8 is None and as_gb is None:
        raise _undecodable(
            source,
            f"第 {start + 1} 字节起既不是 UTF-8 也不是 GBK/GB18030",
            f"from byte {start + 1} on it is neither UTF-8 nor GBK/GB18030",
        )
    if as_gb is None:
        return "utf-8"
    if as_utf8 is None:
        return "gb18030"
    return "gb18030" if _score(as_gb) > _score(as_utf8) else "utf-8"


def _read_head(path: Path, size: int = SAMPLE_SIZE) -> bytes:
    with path.open("rb") as f:
        return f.read(size)


def detect_file_encoding(path: str | Path, *, chunk_size: int = 1024 * 1024) -> str:
    """:func:`detect_encoding` for a file, without reading all of a big one.

    Reads the first :data:`SAMPLE_SIZE` bytes; when they are plain ASCII, reads on in
    chunks only until the first non-ASCII byte and decides on the sample from there.
    """
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(SAMPLE_SIZE)
        if head.startswith(_UTF8_BOM) or _NON_ASCII.search(head) or b"\x00" in head:
            return detect_encoding(head, source=path.name, complete=len(head) < SAMPLE_SIZE)
        while chunk := f.read(chunk_size):
            m = _NON_ASCII.search(chunk)
            if m is not None:
                rest = chunk[m.start() :] + f.read(SAMPLE_SIZE)
                return detect_encoding(rest[:SAMPLE_SIZE], source=path.name, complete=False)
    return "utf-8"


def read_text(path: str | Path, encoding: str | None = None) -> str:
    """The whole text of ``path``, decoded with ``encoding`` or the detected one.

    The UTF-8 byte-order mark is removed. An override (``--encoding``) is normalised by
    :func:`normalise_encoding` (``GBK`` reads as GB18030) and applied strictly, so a
    wrong override fails loudly instead of loading mojibake.

    Raises
    ------
    EncodingDetectionError
        The encoding cannot be decided, or the text does not decode with it; the message
        gives the byte offset and suggests the other encoding.
    """
    path = Path(path)
    data = path.read_bytes()
    if encoding is None:
        enc = detect_encoding(data, source=path.name)
        how_zh, how_en = "自动识别的编码", "the detected encoding"
    else:
        enc = normalise_encoding(encoding)
        if enc == "utf-8":
            enc = "utf-8-sig"  # a BOM is never part of the data
        how_zh, how_en = "指定的编码", "the encoding given"
    try:
        return data.decode(enc)
    except UnicodeDecodeError as e:
        other = "GBK" if enc.startswith("utf") else "UTF-8"
        raise EncodingDetectionError(
            _msg(
                f"文件 {path.name} 不能按{how_zh} {enc} 解码（第 {e.start + 1} 字节）；"
                f"请试试 --encoding {other}",
                f"{path.name} does not decode as {how_en} {enc} (byte {e.start + 1}); "
                f"try --encoding {other}",
            ),
            file=path.name,
        ) from None


# --- formats -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sniffed:
    """What :func:`sniff_format` found out about a file.

    Attributes
    ----------
    format
        One of :data:`FORMATS`.
    path
        The file as given (for a Shapefile, the ``.shp`` or the ``.zip``).
    encoding_hint
        Text formats: the detected encoding (CSV) or ``"utf-8"`` (JSON, XML). Shapefile:
        the ``.cpg`` encoding, else the DBF language-driver byte, else detected from the
        DBF records; ``None`` when nothing says (plain ASCII attributes).
    prj_path
        The ``.prj`` next to a plain Shapefile, if any.
    cpg_encoding
        The encoding named by the Shapefile's ``.cpg``, normalised
        (:func:`normalise_encoding`); ``None`` without a ``.cpg``.
    member
        Inside a ZIP (zipped Shapefile, KMZ): the path of the ``.shp`` or ``.kml`` member.
    prj_text
        The ``.prj`` content (WKT) for plain and zipped Shapefiles, if any.
    warnings
        Things the reader should tell the user (bilingual), e.g. a missing ``.prj``.
    """

    format: str
    path: Path
    encoding_hint: str | None = None
    prj_path: Path | None = None
    cpg_encoding: str | None = None
    member: str | None = None
    prj_text: str | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def gdal_path(self) -> str:
        """The path to hand to GDAL/pyogrio (``/vsizip/…`` for a member of a ZIP)."""
        if self.member is not None:
            return f"/vsizip/{self.path}/{self.member}"
        return str(self.path)


def _describe_zip(names: list[str]) -> tuple[str, str | None, str, str]:
    """Classify a ZIP by its entries: (format or "zip", member, 中文说明, English)."""
    lower = {n.lower(): n for n in names}
    if "[content_types].xml" in lower and any(n.startswith("xl/") for n in lower):
        return "xlsx", None, "Excel 工作簿 (.xlsx)", "an Excel workbook (.xlsx)"
    if "[content_types].xml" in lower and any(n.startswith("word/") for n in lower):
        return "zip", None, "Word 文档 (.docx)", "a Word document (.docx)"
    shps = [n for n in names if n.lower().endswith(".shp") and not n.startswith("__MACOSX/")]
    if shps:
        return "shapefile", shps[0], "内含 Shapefile 的 ZIP 压缩包", "a ZIP archive of a Shapefile"
    kmls = [n for n in names if n.lower().endswith(".kml")]
    if kmls:
        doc = lower.get("doc.kml", min(kmls, key=lambda n: (n.count("/"), n)))
        return "kmz", doc, "KMZ（压缩的 KML）", "a KMZ (zipped KML)"
    return "zip", None, "ZIP 压缩包（内无可识别的数据文件）", "a ZIP archive with no data file"


def _xml_root(text: str) -> str | None:
    """Local name of the root element of an XML document (prolog, comments skipped)."""
    s = re.sub(r"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>", "", text[:SAMPLE_SIZE], flags=re.S)
    m = re.search(r"<\s*([A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)", s)
    return m.group(2).lower() if m else None


def _json_kind(doc: object) -> tuple[str, str, str]:
    """Classify a parsed JSON document: (format or a non-format tag, 中文, English)."""
    geo_types = {
        "FeatureCollection",
        "Feature",
        "Point",
        "MultiPoint",
        "LineString",
        "MultiLineString",
        "Polygon",
        "MultiPolygon",
        "GeometryCollection",
    }
    if isinstance(doc, dict):
        if doc.get("type") in geo_types:
            if doc.get("type") == "FeatureCollection" and not doc.get("features"):
                return "empty", "没有要素的 GeoJSON", "a GeoJSON FeatureCollection with no features"
            return "geojson", "GeoJSON", "GeoJSON"
        if isinstance(doc.get("service_requests"), list):
            return _json_kind(doc["service_requests"])
        return "json", "JSON 对象（不是 GeoJSON）", "a JSON object that is not GeoJSON"
    if isinstance(doc, list):
        if not doc:
            return "empty", "空的 JSON 数组", "an empty JSON array"
        first = doc[0]
        if isinstance(first, dict) and first.get("type") == "Feature":
            return (
                "feature-array",
                "GeoJSON 要素数组（缺少 FeatureCollection 外层）",
                "a bare array of GeoJSON features (no FeatureCollection around it)",
            )
        if isinstance(first, dict) and {"service_request_id", "service_code"} & set(first):
            return "open311", "Open311 GeoReport v2 JSON", "Open311 GeoReport v2 JSON"
        return "json", "JSON 数组（不是 Open311 工单）", "a JSON array that is not Open311"
    return "json", "JSON 值", "a bare JSON value"


def _json_kind_from_head(head: str) -> tuple[str, str, str]:
    """Classify a JSON document too big to parse here from its first bytes."""
    s = head.lstrip()
    if re.search(r'"type"\s*:\s*"(FeatureCollection|Feature)"', s[:SAMPLE_SIZE]):
        return "geojson", "GeoJSON", "GeoJSON"
    if s.startswith("[") and re.search(r'"service_request_id"|"service_code"', s[:SAMPLE_SIZE]):
        return "open311", "Open311 GeoReport v2 JSON", "Open311 GeoReport v2 JSON"
    return "json", "JSON（不是 GeoJSON 或 Open311）", "JSON that is neither GeoJSON nor Open311"


def _csv_records(text: str, limit: int = 3) -> list[list[str]]:
    """The first ``limit`` non-blank records of delimited text (delimiter guessed)."""
    import csv
    import io

    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t|", key=first_line.count)
    if first_line.count(delimiter) == 0:
        delimiter = ","
    rows: list[list[str]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append(row)
                if len(rows) >= limit:
                    break
    except csv.Error:
        pass  # a cut sample may end inside quotes; what was read is enough
    return rows


def _has_data_after_first_line(path: Path) -> bool:
    """Whether anything but whitespace follows the first line (for files > the sample)."""
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            i = chunk.find(b"\n")
            if i >= 0:
                rest = chunk[i + 1 :]
                while True:
                    if rest.strip():
                        return True
                    rest = f.read(1024 * 1024)
                    if not rest:
                        return False
    return False


def _cpg_encoding(text: str, source: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    name = re.sub(r"^ANSI\s*", "", text, flags=re.I)
    return normalise_encoding(name, source=source)


# DBF language-driver IDs (byte 29) that name an encoding; the usual ones in China.
_DBF_LDID: Final[dict[int, str]] = {0x4D: "gb18030", 0x7A: "gb18030", 0x57: "cp1252"}


def _dbf_encoding(dbf: bytes, source: str) -> str | None:
    """Encoding of a DBF from its language-driver byte, else from its records' bytes."""
    if len(dbf) < 32:
        return None
    if dbf[29] in _DBF_LDID:
        return _DBF_LDID[dbf[29]]
    header_len = int.from_bytes(dbf[8:10], "little")
    records = dbf[header_len:]
    if not _NON_ASCII.search(records):
        return None
    try:
        return detect_encoding(records, source=source, complete=False)
    except EncodingDetectionError:
        return None


def _siblings(shp: Path) -> dict[str, Path]:
    """Companion files of a ``.shp`` by lower-case extension (case-insensitive match)."""
    found: dict[str, Path] = {}
    for p in shp.parent.iterdir():
        if p.stem == shp.stem and p.suffix.lower() in {".shx", ".dbf", ".prj", ".cpg"}:
            found[p.suffix.lower()] = p
    return found


def _missing_parts(file: str, shp_name: str, missing: list[str]) -> IncompleteShapefileError:
    parts = "、".join(missing)
    return IncompleteShapefileError(
        _msg(
            f"Shapefile {file} 不完整：缺少 {shp_name} 的 {parts} 文件。Shapefile 由同名的"
            " .shp、.shx、.dbf（以及 .prj、.cpg）一起组成，请把它们全部复制过来，或打包成 ZIP",
            f"the Shapefile {file} is incomplete: {shp_name} lacks its {', '.join(missing)}. "
            "A Shapefile is the .shp together with the .shx and .dbf of the same name (and "
            ".prj, .cpg); copy them all, or zip them together",
        ),
        file=file,
        missing=tuple(missing),
    )


_NO_PRJ: Final = _msg(
    "没有 .prj 文件，坐标系未知：请用 --crs 指定（例如 EPSG:4490）",
    "no .prj file, so the coordinate system is unknown: give it with --crs (e.g. EPSG:4490)",
)


def _sniff_shapefile(path: Path) -> Sniffed:
    parts = _siblings(path)
    missing = [ext for ext in (".shx", ".dbf") if ext not in parts]
    if missing:
        raise _missing_parts(path.name, path.name, missing)
    cpg = None
    if ".cpg" in parts:
        cpg = _cpg_encoding(parts[".cpg"].read_text("ascii", errors="replace"), parts[".cpg"].name)
    hint = cpg or _dbf_encoding(_read_head(parts[".dbf"]), parts[".dbf"].name)
    prj = parts.get(".prj")
    return Sniffed(
        format="shapefile",
        path=path,
        encoding_hint=hint,
        prj_path=prj,
        cpg_encoding=cpg,
        prj_text=prj.read_text("utf-8", errors="replace") if prj else None,
        warnings=() if prj else (_NO_PRJ,),
    )


def _sniff_zipped_shapefile(path: Path, zf: zipfile.ZipFile, shp: str) -> Sniffed:
    names = [n for n in zf.namelist() if not n.startswith("__MACOSX/")]
    shps = sorted(n for n in names if n.lower().endswith(".shp"))
    if len(shps) > 1:
        listed = ", ".join(shps)
        raise FileFormatError(
            _msg(
                f"压缩包 {path.name} 里有多个 Shapefile（{listed}），请每个压缩包只放一个",
                f"the ZIP {path.name} holds several Shapefiles ({listed}); zip one per file",
            ),
            file=path.name,
            claimed="shapefile",
            actual="several shapefiles",
        )
    stem = PurePosixPath(shp).with_suffix("")
    members = {
        PurePosixPath(n).suffix.lower(): n
        for n in names
        if PurePosixPath(n).with_suffix("") == stem
    }
    missing = [ext for ext in (".shx", ".dbf") if ext not in members]
    if missing:
        raise _missing_parts(path.name, shp, missing)
    cpg = None
    if ".cpg" in members:
        cpg = _cpg_encoding(zf.read(members[".cpg"]).decode("ascii", "replace"), members[".cpg"])
    with zf.open(members[".dbf"]) as f:
        dbf_head = f.read(SAMPLE_SIZE)
    hint = cpg or _dbf_encoding(dbf_head, members[".dbf"])
    prj_text = zf.read(members[".prj"]).decode("utf-8", "replace") if ".prj" in members else None
    return Sniffed(
        format="shapefile",
        path=path,
        encoding_hint=hint,
        cpg_encoding=cpg,
        member=shp,
        prj_text=prj_text,
        warnings=() if prj_text is not None else (_NO_PRJ,),
    )


def _empty(path: Path, zh: str, en: str) -> EmptyFileError:
    return EmptyFileError(
        _msg(
            f"文件 {path.name} {zh}，没有可导入的数据；请检查是否导出了正确的文件",
            f"{path.name} {en}: there is nothing to load; check that the right file was exported",
        ),
        file=path.name,
    )


def _refuse_packed(path: Path, head: bytes) -> None:
    """A compressed file (gzip, bzip2, xz, 7-Zip, RAR) is refused with the advice to unpack
    it and load the file inside, not with an encoding the bytes do not have."""
    for magic, (zh, en, tool) in _PACKED_MAGICS.items():
        if head.startswith(magic):
            raise FileFormatError(
                _msg(
                    f"文件 {path.name} 是{zh}；请先解压（如 {tool} {path.name}），"
                    "再导入解压出的文件",
                    f"{path.name} is {en}: unpack it first (e.g. {tool} {path.name}) and load "
                    "the file inside",
                ),
                file=path.name,
                claimed=None,
                actual="compressed",
            )


def _refuse_zipped_data(path: Path, names: list[str]) -> None:
    """A ZIP with no Shapefile, KML or workbook but data files (a zipped CSV or GeoJSON) is
    refused naming them, with the advice to unpack it, not "export it again"."""
    data = [
        n for n in names if n.lower().endswith(_DATA_SUFFIXES) and not n.startswith("__MACOSX/")
    ]
    if data:
        listed = "、".join(data[:5]) + ("…" if len(data) > 5 else "")
        listed_en = ", ".join(data[:5]) + (", …" if len(data) > 5 else "")
        raise FileFormatError(
            _msg(
                f"文件 {path.name} 是 ZIP 压缩包，内有 {listed}；请先解压，再逐个导入其中的文件",
                f"{path.name} is a ZIP archive holding {listed_en}: unpack it and load those "
                "files one by one",
            ),
            file=path.name,
            claimed=None,
            actual="compressed",
        )


def _mismatch(path: Path, actual: str, actual_zh: str, actual_en: str) -> FileFormatError:
    ext = path.suffix.lower()
    claimed = _EXTENSIONS[ext]
    claim_zh = " 或 ".join(_label(f, 0) for f in claimed)
    claim_en = " or ".join(_label(f, 1) for f in claimed)
    if actual in FORMATS:
        fix_zh = f"请把文件扩展名改为 {_SUFFIX_FOR[actual]} 后再导入，或重新导出为{claim_zh}"
        fix_en = (
            f"Rename it to {_SUFFIX_FOR[actual]} and load it again, or export it again as "
            f"{claim_en}"
        )
    else:
        fix_zh = f"请重新导出为{claim_zh}"
        fix_en = f"Export it again as {claim_en}"
    return FileFormatError(
        _msg(
            f"文件 {path.name} 的扩展名 {ext} 表示{claim_zh}，但内容实际是{actual_zh}。{fix_zh}",
            f"{path.name}: the extension {ext} says {claim_en}, but the content is "
            f"{actual_en}. {fix_en}",
        ),
        file=path.name,
        claimed="/".join(claimed),
        actual=actual,
    )


def _unsupported(path: Path, actual: str, zh: str, en: str) -> FileFormatError:
    known = ", ".join(FORMATS[f][1] for f in FORMATS)
    return FileFormatError(
        _msg(
            f"文件 {path.name} 是{zh}，不是可导入的格式（支持：{known}）",
            f"{path.name} is {en}, which the loaders do not read (they read: {known})",
        ),
        file=path.name,
        claimed=None,
        actual=actual,
    )


def _classify(path: Path, head: bytes, size: int) -> tuple[str, str, str, Sniffed | None]:
    """Decide what ``path`` holds from its content: (format or tag, 中文, English, result).

    ``result`` is set when the decision already produced the full :class:`Sniffed`."""
    if head.startswith(_SQLITE_MAGIC):
        if head[68:72] in _GPKG_APPLICATION_IDS:
            return "gpkg", "GeoPackage 地理数据库", "a GeoPackage", Sniffed("gpkg", path)
        return (
            "sqlite",
            "SQLite 数据库（不是 GeoPackage）",
            "a SQLite database (no GeoPackage)",
            None,
        )
    if head.startswith(_ZIP_MAGICS):
        try:
            with zipfile.ZipFile(path) as zf:
                fmt, member, zh, en = _describe_zip(zf.namelist())
                if fmt == "zip":
                    _refuse_zipped_data(path, zf.namelist())
                if fmt == "shapefile" and member is not None:
                    return fmt, zh, en, _sniff_zipped_shapefile(path, zf, member)
        except zipfile.BadZipFile:
            return "zip", "损坏的 ZIP 压缩包", "a damaged ZIP archive", None
        result = Sniffed(fmt, path, member=member) if fmt in FORMATS else None
        return fmt, zh, en, result
    if head.startswith(_SHP_MAGIC):
        return "shapefile", "Shapefile 主文件 (.shp)", "a Shapefile (.shp)", None
    if head.startswith(_OLE2_MAGIC):
        return (
            "xls",
            "旧版 Excel 97-2003 工作簿 (.xls)",
            "a legacy Excel 97-2003 workbook (.xls)",
            None,
        )
    if head.startswith(b"%PDF"):
        return "pdf", "PDF 文档", "a PDF document", None
    if len(head) >= 32 and head[0] in (0x03, 0x83, 0x8B, 0xF5):
        # a DBF: version byte, then a plausible header length and record length
        hlen = int.from_bytes(head[8:10], "little")
        if 32 < hlen < 65536 and (hlen - 1) % 32 == 0 and head[hlen - 1 : hlen] == b"\r":
            return (
                "dbf",
                "Shapefile 的属性表 (.dbf)",
                "the attribute table (.dbf) of a Shapefile",
                None,
            )

    if size <= len(head):
        encoding = detect_encoding(head, source=path.name)
    else:  # looks past an all-ASCII beginning
        encoding = detect_file_encoding(path)
    text = head.decode(encoding, errors="ignore").lstrip("\ufeff \t\r\n")
    if not text:
        zh, en = (
            ("只有空白", "holds only whitespace") if size else ("是空文件（0 字节）", "is empty")
        )
        raise _empty(path, zh, en)
    if text.startswith("<"):
        root = _xml_root(text)
        if root in ("kml", "gpx"):
            return root, FORMATS[root][0], FORMATS[root][1], Sniffed(root, path, encoding)
        if root == "service_requests":
            return "open311-xml", "Open311 XML", "Open311 XML (only the JSON form is read)", None
        if root in ("html", "!doctype"):
            return "html", "网页 (HTML)", "a web page (HTML)", None
        return "xml", f"XML 文档（根元素 <{root}>）", f"an XML document (root <{root}>)", None
    if text.startswith(("{", "[")):
        if size <= JSON_PARSE_LIMIT:
            full = path.read_bytes().decode(encoding, errors="replace")
            try:
                kind, zh, en = _json_kind(json.loads(full.lstrip("\ufeff")))
            except json.JSONDecodeError as e:
                return (
                    "bad-json",
                    f"无法解析的 JSON（第 {e.lineno} 行第 {e.colno} 列：{e.msg}）",
                    f"malformed JSON (line {e.lineno}, column {e.colno}: {e.msg})",
                    None,
                )
        else:
            kind, zh, en = _json_kind_from_head(text)
        if kind == "empty":
            raise _empty(path, f"是{zh}", f"is {en}")
        result = Sniffed(kind, path, "utf-8") if kind in FORMATS else None
        return kind, zh, en, result
    return "csv", "CSV 文本表格", "delimited text (CSV)", Sniffed("csv", path, encoding)


def _check_csv(path: Path, sniffed: Sniffed, head: bytes, size: int) -> None:
    """Refuse a CSV with a header line but no data rows."""
    assert sniffed.encoding_hint is not None
    text = head.decode(sniffed.encoding_hint, errors="ignore").lstrip("\ufeff")
    rows = _csv_records(text)
    whole = size <= len(head)
    if (whole and len(rows) <= 1) or (not whole and not _has_data_after_first_line(path)):
        header = ", ".join(rows[0][:8]) if rows else ""
        raise _empty(
            path,
            f"只有表头（{header}），没有数据行",
            f"has a header line ({header}) but no data rows",
        )


def sniff_format(path: str | Path) -> Sniffed:
    """Find out what a file really is, and refuse it early with a clear message if it is
    not what its extension says.

    The decision is made from the content: the SQLite header and GeoPackage application id
    (``gpkg``), the entries of a ZIP (``xlsx``, ``kmz``, zipped ``shapefile``), the
    Shapefile magic number, the root element of XML (``kml``, ``gpx``), the shape of JSON
    (GeoJSON object vs. an array of Open311 service requests), otherwise delimited text
    (``csv``). Then it is compared with the extension. Unknown extensions (or none) are
    accepted with the content's verdict and a warning.

    Parameters
    ----------
    path
        The file. For a Shapefile, the ``.shp`` (its ``.shx`` and ``.dbf`` must sit next to
        it) or a ``.zip`` holding one.

    Returns
    -------
    Sniffed
        The format, the encoding hint, and for Shapefiles the ``.prj``/``.cpg`` found.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    EmptyFileError
        Zero bytes, only whitespace, a CSV with only a header line, an empty
        FeatureCollection or JSON array.
    FileFormatError
        The content is not what the extension says, or no format the loaders read;
        :class:`IncompleteShapefileError` when ``.shx`` or ``.dbf`` is missing.
    EncodingDetectionError
        A text file in an encoding other than UTF-8 or GBK/GB18030.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            _msg(f"找不到文件 {path}", f"no such file: {path}"),
        )
    if path.is_dir():
        shps = sorted(p.name for p in path.iterdir() if p.suffix.lower() == ".shp")
        hint = f"（{', '.join(shps)}）" if shps else ""
        raise FileFormatError(
            _msg(
                f"{path.name} 是一个文件夹{hint}；请给出其中的数据文件（例如 .shp），或打包成 ZIP",
                f"{path.name} is a folder{' (' + ', '.join(shps) + ')' if shps else ''}; give "
                "the data file inside it (e.g. the .shp), or zip it",
            ),
            file=path.name,
            actual="folder",
        )
    ext = path.suffix.lower()
    if ext in (".shx", ".dbf", ".prj", ".cpg"):
        raise FileFormatError(
            _msg(
                f"{path.name} 只是 Shapefile 的一个组成部分；请给出同名的 .shp 文件（或整个 ZIP）",
                f"{path.name} is only one part of a Shapefile; give the .shp of the same name "
                "(or the whole ZIP)",
            ),
            file=path.name,
            claimed="shapefile part",
            actual="shapefile part",
        )
    size = path.stat().st_size
    if size == 0:
        raise _empty(path, "是空文件（0 字节）", "is empty (0 bytes)")
    head = _read_head(path)
    _refuse_packed(path, head)
    fmt, zh, en, result = _classify(path, head, size)

    if fmt == "shapefile" and result is None:
        result = _sniff_shapefile(path)
    claimed = _EXTENSIONS.get(ext)
    if claimed is not None and fmt not in claimed:
        raise _mismatch(path, fmt, zh, en)
    if result is None:
        raise _unsupported(path, fmt, zh, en)
    if claimed is None:
        label = ext or "（无）"
        note = _msg(
            f"扩展名 {label} 未说明格式，按内容识别为{zh}",
            f"the extension {ext or '(none)'} says nothing; the content is {en}",
        )
        result = replace(result, warnings=(*result.warnings, note))
    if result.format == "csv":
        _check_csv(path, result, head, size)
    return result


def formats_for_extension(ext: str) -> tuple[str, ...]:
    """The formats a file with extension ``ext`` (``".csv"``) may hold; empty if unknown."""
    return _EXTENSIONS.get(ext.lower(), ())


def known_extensions() -> Iterable[str]:
    """Extensions :func:`sniff_format` knows (others are judged by content alone)."""
    return tuple(_EXTENSIONS)
