"""Format and encoding recognition of loader inputs (loaders.sniff) on the test corpus."""

from __future__ import annotations

import codecs
import shutil
import zipfile
from pathlib import Path

import pyogrio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loaders.sniff import (
    SAMPLE_SIZE,
    EmptyFileError,
    EncodingDetectionError,
    FileFormatError,
    IncompleteShapefileError,
    InputError,
    Sniffed,
    detect_encoding,
    detect_file_encoding,
    normalise_encoding,
    read_text,
    sniff_format,
)
from tests.corpus import CORPUS, write_long_line_csv

# --- formats on the corpus ---------------------------------------------------------------

GOOD = [
    # file, format, encoding hint
    ("grids.geojson", "geojson", "utf-8"),
    ("chinese_emoji.geojson", "geojson", "utf-8"),
    ("bowtie_grid.geojson", "geojson", "utf-8"),
    ("overlapping_grids.geojson", "geojson", "utf-8"),
    ("grids.gpkg", "gpkg", None),
    ("grids_shp/grids.shp", "shapefile", "utf-8"),
    ("grids_shp.zip", "shapefile", "utf-8"),
    ("grids_gbk_shp/grids_gbk.shp", "shapefile", "gb18030"),
    ("grids_gbk_nocpg_shp/grids_nocpg.shp", "shapefile", "gb18030"),
    ("incidents.kml", "kml", "utf-8"),
    ("incidents.kmz", "kmz", None),
    ("incidents.xlsx", "xlsx", None),
    ("incidents_en.csv", "csv", "utf-8"),
    ("incidents_bom.csv", "csv", "utf-8-sig"),
    ("incidents_gbk.csv", "csv", "gb18030"),
    ("incidents_tab.txt", "csv", "utf-8"),
    ("incidents_vendor.csv", "csv", "utf-8"),
    ("swapped_coords.csv", "csv", "utf-8"),
    ("wrong_types.csv", "csv", "utf-8"),
    ("sql_strings.csv", "csv", "utf-8"),
    ("chinese_emoji.csv", "csv", "utf-8"),
    ("missing_lonlat.csv", "csv", "utf-8"),
    ("patrol_track.gpx", "gpx", "utf-8"),
    ("incidents_open311.json", "open311", "utf-8"),
]


@pytest.mark.parametrize(("name", "fmt", "encoding"), GOOD, ids=[g[0] for g in GOOD])
def test_good_files_are_recognised(name: str, fmt: str, encoding: str | None) -> None:
    sniffed = sniff_format(CORPUS / name)
    assert sniffed.format == fmt
    assert sniffed.encoding_hint == encoding
    assert sniffed.path == CORPUS / name
    assert sniffed.warnings == ()


@pytest.mark.parametrize(
    "name",
    [
        "grids.gpkg",
        "grids_shp/grids.shp",
        "grids_shp.zip",
        "grids_gbk_shp/grids_gbk.shp",
        "incidents.kml",
        "incidents.kmz",
        "incidents.xlsx",
        "patrol_track.gpx",
        "grids.geojson",
    ],
)
def test_gdal_opens_what_was_sniffed(name: str) -> None:
    """The path handed on (``/vsizip/…`` inside ZIPs) opens in GDAL as the format said."""
    sniffed = sniff_format(CORPUS / name)
    layers = pyogrio.list_layers(sniffed.gdal_path)
    assert len(layers) >= 1


REFUSED = [
    # file, error class, pattern the message must match
    ("empty.csv", EmptyFileError, r"空文件.*empty \(0 bytes\)"),
    ("whitespace_only.csv", EmptyFileError, r"只有空白.*only whitespace"),
    ("header_only.csv", EmptyFileError, r"只有表头（事件编号, 事件类型.*no data rows"),
    ("empty_collection.geojson", EmptyFileError, r"没有要素.*FeatureCollection with no features"),
    ("open311_empty.json", EmptyFileError, r"空的 JSON 数组.*empty JSON array"),
    ("utf16_no_bom.csv", EncodingDetectionError, r"UTF-16.*UTF-16 without a byte-order mark"),
    ("binary.csv", EncodingDetectionError, r"二进制.*binary data, not text"),
    ("malformed.geojson", FileFormatError, r"无法解析的 JSON（第 6 行.*malformed JSON \(line 6"),
    ("features_array.json", FileFormatError, r"缺少 FeatureCollection.*bare array of GeoJSON"),
    (
        "shapefile_zip_named.csv",
        FileFormatError,
        r"扩展名 \.csv 表示CSV 表格，但内容实际是内含 Shapefile 的 ZIP.*改为 \.zip.*"
        r"the extension \.csv says CSV table, but the content is a ZIP archive of a "
        r"Shapefile\. Rename it to \.zip",
    ),
    ("grids_geojson_named.kml", FileFormatError, r"\.kml 表示KML.*GeoJSON.*Rename it to \.geojson"),
    ("grids_gpkg_named.geojson", FileFormatError, r"GeoPackage.*Rename it to \.gpkg"),
    ("incidents_csv_named.xlsx", FileFormatError, r"Excel.*delimited text \(CSV\).*to \.csv"),
    ("incidents_kml_named.gpx", FileFormatError, r"GPX.*the content is KML.*to \.kml"),
    ("not_a_geopackage.gpkg", FileFormatError, r"SQLite 数据库.*SQLite database \(no GeoPackage"),
    ("no_data.zip", FileFormatError, r"内无可识别的数据文件.*ZIP archive with no data file"),
    (
        "shp_missing_dbf/grids.shp",
        IncompleteShapefileError,
        r"缺少 grids\.shp 的 \.dbf.*lacks its \.dbf",
    ),
    ("shp_missing_shx.zip", IncompleteShapefileError, r"缺少 grids\.shp 的 \.shx.*lacks its \.shx"),
    ("grids_shp", FileFormatError, r"文件夹（grids\.shp）.*is a folder \(grids\.shp\)"),
    ("grids_shp/grids.dbf", FileFormatError, r"只是 Shapefile 的一个组成部分.*give the \.shp"),
]


@pytest.mark.parametrize(("name", "error", "pattern"), REFUSED, ids=[r[0] for r in REFUSED])
def test_broken_files_get_their_error(name: str, error: type[Exception], pattern: str) -> None:
    with pytest.raises(error, match=pattern) as info:
        sniff_format(CORPUS / name)
    message = str(info.value)
    file = Path(name).name
    assert isinstance(info.value, ValueError) and isinstance(info.value, InputError)
    assert info.value.file == file
    zh, sep, en = message.partition(" / ")
    assert sep, "bilingual: Chinese / English"
    assert file in zh and file in en, "both halves name the file"
    assert any("\u4e00" <= c <= "\u9fff" for c in zh)
    assert len([c for c in en if c.isascii() and c.isalpha()]) > 20, "an English sentence"


def test_mismatch_error_carries_claim_and_content() -> None:
    with pytest.raises(FileFormatError) as info:
        sniff_format(CORPUS / "shapefile_zip_named.csv")
    assert info.value.claimed == "csv"
    assert info.value.actual == "shapefile"
    with pytest.raises(IncompleteShapefileError) as info2:
        sniff_format(CORPUS / "shp_missing_shx.zip")
    assert info2.value.missing == (".shx",)


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match=r"找不到文件.*no such file"):
        sniff_format(CORPUS / "no_such_file.csv")


# --- shapefile companions -------------------------------------------------------------


def test_plain_shapefile_locates_prj_and_cpg() -> None:
    s = sniff_format(CORPUS / "grids_shp" / "grids.shp")
    assert s.prj_path == CORPUS / "grids_shp" / "grids.prj"
    assert s.prj_text is not None and "CGCS" in s.prj_text and "2000" in s.prj_text
    assert s.cpg_encoding == "utf-8"
    assert s.member is None and s.gdal_path == str(s.path)


def test_zipped_shapefile_reads_prj_and_cpg_inside() -> None:
    s = sniff_format(CORPUS / "grids_shp.zip")
    assert s.member == "grids/grids.shp"
    assert s.prj_path is None and s.prj_text is not None and "CGCS" in s.prj_text
    assert s.cpg_encoding == "utf-8"
    assert s.gdal_path == f"/vsizip/{CORPUS / 'grids_shp.zip'}/grids/grids.shp"


def test_gbk_cpg_becomes_gb18030() -> None:
    s = sniff_format(CORPUS / "grids_gbk_shp" / "grids_gbk.shp")
    assert (CORPUS / "grids_gbk_shp" / "grids_gbk.cpg").read_text().strip() == "GBK"
    assert s.cpg_encoding == "gb18030"


def test_shapefile_without_cpg_guesses_from_dbf(tmp_path: Path) -> None:
    s = sniff_format(CORPUS / "grids_gbk_nocpg_shp" / "grids_nocpg.shp")
    assert s.cpg_encoding is None and s.encoding_hint == "gb18030"
    # the DBF language-driver byte (0x4D = code page 936) decides when set
    for p in (CORPUS / "grids_shp").iterdir():
        if p.suffix != ".cpg":
            shutil.copy(p, tmp_path / p.name)
    dbf = tmp_path / "grids.dbf"
    data = bytearray(dbf.read_bytes())
    data[29] = 0x4D
    dbf.write_bytes(bytes(data))
    assert sniff_format(tmp_path / "grids.shp").encoding_hint == "gb18030"


def test_shapefile_without_prj_warns(tmp_path: Path) -> None:
    for p in (CORPUS / "grids_shp").iterdir():
        if p.suffix != ".prj":
            shutil.copy(p, tmp_path / p.name.upper().replace(".SHP", ".shp"))
    s = sniff_format(tmp_path / "GRIDS.shp")  # upper-case companions are found too
    assert s.prj_path is None and s.prj_text is None
    assert len(s.warnings) == 1 and "--crs" in s.warnings[0] and "坐标系未知" in s.warnings[0]


def test_zip_with_two_shapefiles_is_refused(tmp_path: Path) -> None:
    z = tmp_path / "two.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for stem in ("a", "b"):
            for p in (CORPUS / "grids_shp").iterdir():
                zf.write(p, f"{stem}{p.suffix}")
    with pytest.raises(FileFormatError, match=r"多个 Shapefile.*a\.shp, b\.shp.*one per file"):
        sniff_format(z)


def test_kml_zipped_as_zip_is_kmz(tmp_path: Path) -> None:
    z = tmp_path / "points.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(CORPUS / "incidents.kml", "data/points.kml")
    s = sniff_format(z)
    assert s.format == "kmz" and s.member == "data/points.kml"


@pytest.mark.parametrize(
    ("suffix", "pack", "named", "tool"),
    [
        (".csv.gz", "gzip", "gzip", "gunzip"),
        (".csv.bz2", "bz2", "bzip2", "bunzip2"),
        (".csv.xz", "lzma", "xz", "unxz"),
        (".csv", "gzip", "gzip", "gunzip"),  # compressed but named as plain text
    ],
)
def test_compressed_file_is_refused_with_the_way_to_unpack_it(
    tmp_path: Path, suffix: str, pack: str, named: str, tool: str
) -> None:
    """A compressed export (``.csv.gz``, as open-data portals publish them) gets "unpack it
    first", naming the tool and the file, instead of "binary data, not text"."""
    import importlib

    data = (CORPUS / "incidents_gbk.csv").read_bytes()
    p = tmp_path / f"incidents{suffix}"
    p.write_bytes(importlib.import_module(pack).compress(data))
    with pytest.raises(FileFormatError) as err:
        sniff_format(p)
    message = str(err.value)
    assert f"{named}" in message and f"{tool} {p.name}" in message
    assert "请先解压" in message and "unpack it first" in message
    assert err.value.file == p.name


def test_zip_holding_a_table_names_it_and_says_unpack(tmp_path: Path) -> None:
    """A ZIP of a CSV (no Shapefile, KML or workbook in it) names the files inside and
    says to unpack them, instead of "a ZIP archive with no data file: export it again"."""
    z = tmp_path / "export.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(CORPUS / "incidents_gbk.csv", "事件/incidents.csv")
        zf.writestr("__MACOSX/事件/._incidents.csv", b"junk")
        zf.writestr("readme.md", "not data")
    with pytest.raises(
        FileFormatError, match=r"内有 事件/incidents\.csv；请先解压.*holding 事件/incidents\.csv"
    ):
        sniff_format(z)
    empty = tmp_path / "nothing.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.md", "not data")
    with pytest.raises(FileFormatError, match=r"no data file"):
        sniff_format(empty)


# --- other decisions ------------------------------------------------------------------


def test_unknown_extension_goes_by_content_with_a_warning(tmp_path: Path) -> None:
    p = tmp_path / "export.dat"
    shutil.copy(CORPUS / "incidents_gbk.csv", p)
    s = sniff_format(p)
    assert s.format == "csv" and s.encoding_hint == "gb18030"
    assert "扩展名 .dat 未说明格式" in s.warnings[0]
    q = tmp_path / "noext"
    shutil.copy(CORPUS / "grids.gpkg", q)
    assert sniff_format(q).format == "gpkg"


def test_legacy_xls_is_named(tmp_path: Path) -> None:
    p = tmp_path / "old.xlsx"
    p.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    with pytest.raises(FileFormatError, match=r"Excel 97-2003.*legacy Excel 97-2003"):
        sniff_format(p)


def test_xml_other_than_kml_or_gpx(tmp_path: Path) -> None:
    p = tmp_path / "requests.kml"
    p.write_text('<?xml version="1.0"?>\n<!-- x -->\n<service_requests/>', encoding="utf-8")
    with pytest.raises(FileFormatError, match="Open311 XML"):
        sniff_format(p)


def test_open311_wrapped_object_and_geojson_feature(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_text('{"service_requests": [{"service_request_id": "1"}]}', encoding="utf-8")
    assert sniff_format(p).format == "open311"
    p.write_text('{"type": "Feature", "geometry": null, "properties": {}}', encoding="utf-8")
    assert sniff_format(p).format == "geojson"


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030"])
def test_ten_megabyte_line(tmp_path: Path, encoding: str) -> None:
    """A 10 MB data row: sniffed as CSV, the encoding decided on a sample that ends
    mid-character, and the whole text decodes."""
    p = write_long_line_csv(tmp_path / "long.csv", encoding=encoding)
    assert p.stat().st_size > 10 * 1024 * 1024
    head = p.read_bytes()[:SAMPLE_SIZE]
    with pytest.raises(UnicodeDecodeError):
        head.decode(encoding)  # the sample does cut a character
    s = sniff_format(p)
    assert s.format == "csv" and s.encoding_hint == encoding
    assert detect_file_encoding(p) == encoding
    assert read_text(p).count("\n") == 4


def test_header_line_longer_than_the_sample_without_rows(tmp_path: Path) -> None:
    p = tmp_path / "wide.csv"
    p.write_text(",".join(f"col{i}" for i in range(20000)) + "\n\n", encoding="utf-8")
    assert p.stat().st_size > SAMPLE_SIZE
    with pytest.raises(EmptyFileError, match="no data rows"):
        sniff_format(p)
    p.write_text(",".join(f"col{i}" for i in range(20000)) + "\n1,2\n", encoding="utf-8")
    assert sniff_format(p).format == "csv"


# --- encodings --------------------------------------------------------------------------


def test_gbk_deep_in_an_ascii_file(tmp_path: Path) -> None:
    """The first 64 KB are ASCII; the first Chinese value comes later and decides."""
    p = tmp_path / "late.csv"
    rows = ["code,name"] + [f"{i},grid {i}" for i in range(20000)] + ["x,海园一网格"]
    p.write_bytes("\n".join(rows).encode("gbk"))
    assert p.stat().st_size > SAMPLE_SIZE
    assert detect_encoding(p.read_bytes()) == "gb18030"
    assert detect_file_encoding(p) == "gb18030"
    assert sniff_format(p).encoding_hint == "gb18030"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"code,name\n1,a\n", "utf-8"),
        (b"", "utf-8"),
        (codecs.BOM_UTF8 + "经度".encode(), "utf-8-sig"),
        ("经度,纬度\n120.4,36.3\n".encode(), "utf-8"),
        ("经度,纬度\n120.4,36.3\n".encode("gbk"), "gb18030"),
        ("36.3°N, 120.4°E\n".encode(), "utf-8"),  # also valid GBK: 隆
        ("海园路12号·3单元".encode("gb18030"), "gb18030"),
        ("𠀀𪚥 😀".encode("gb18030"), "gb18030"),  # four-byte GB18030
    ],
)
def test_detect_encoding_cases(data: bytes, expected: str) -> None:
    assert detect_encoding(data) == expected


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (codecs.BOM_UTF16_LE + "经度".encode("utf-16-le"), "UTF-16/UTF-32"),
        ("code,name\n1,经度\n".encode("utf-16-be"), "UTF-16 without a byte-order mark"),
        (b"caf\xe9,na\xefve\n", r"neither UTF-8 nor GBK/GB18030"),
        (b"\x01\x02\x03\x04\x05\x06 abc \x07\x08" * 10, "binary data"),
    ],
)
def test_detect_encoding_refuses(data: bytes, pattern: str) -> None:
    with pytest.raises(EncodingDetectionError, match=pattern) as info:
        detect_encoding(data, source="x.csv")
    assert info.value.file == "x.csv" and "x.csv" in str(info.value)
    assert str(info.value).startswith("无法识别文件 x.csv 的文本编码")


@pytest.mark.parametrize(
    "data",
    [
        b"code,address\nB1,a\x00b\n",
        "code,地址\nB1,海\x00园路\n".encode(),
        "code,地址\nB1,海\x00园路\n".encode("gbk"),
    ],
)
def test_a_stray_nul_byte_is_text_still(data: bytes, tmp_path: Path) -> None:
    """A damaged cell is not a binary file: the reader names its line (tests/test_parse.py)."""
    path = tmp_path / "nul.csv"
    path.write_bytes(data)
    assert sniff_format(path).format == "csv"
    # many of them are binary data
    path.write_bytes(data + b"\x00" * 64)
    with pytest.raises(EncodingDetectionError, match="binary data"):
        sniff_format(path)


def test_sample_cut_mid_character_is_tolerated() -> None:
    data = ("a" + "网格" * 40000).encode("utf-8")
    cut = data[:SAMPLE_SIZE]
    assert detect_encoding(cut, complete=False) == "utf-8"
    gbk = ("a" + "网格" * 40000).encode("gbk")[:SAMPLE_SIZE]  # ends on a lead byte
    assert detect_encoding(gbk, complete=False) == "gb18030"


def test_read_text_detects_and_strips_bom() -> None:
    text = read_text(CORPUS / "incidents_bom.csv")
    assert text.startswith("事件编号,")
    assert read_text(CORPUS / "incidents_gbk.csv").startswith("事件编号,事件类型")


def test_read_text_honours_and_checks_the_override(tmp_path: Path) -> None:
    assert read_text(CORPUS / "incidents_gbk.csv", "GBK").startswith("事件编号")
    assert read_text(CORPUS / "incidents_bom.csv", "utf8").startswith("事件编号")
    with pytest.raises(EncodingDetectionError, match=r"incidents_gbk\.csv.*--encoding GBK"):
        read_text(CORPUS / "incidents_gbk.csv", "utf-8")
    with pytest.raises(EncodingDetectionError, match=r"无法识别.*unknown encoding 'klingon'"):
        read_text(CORPUS / "incidents_gbk.csv", "klingon")
    # Latin-1 forced on GBK gives mojibake but is what the user asked for
    assert read_text(CORPUS / "incidents_gbk.csv", "latin-1")[:4] != "事件编号"


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("GBK", "gb18030"),
        ("gb2312", "gb18030"),
        ("CP936", "gb18030"),
        ("936", "gb18030"),
        ("ANSI 936", "gb18030"),
        ("UTF8", "utf-8"),
        ("utf_8", "utf-8"),
        ("65001", "utf-8"),
        ("UTF-8-SIG", "utf-8-sig"),
        ("1252", "cp1252"),
        ("big5", "big5"),
    ],
)
def test_normalise_encoding(name: str, codec: str) -> None:
    assert normalise_encoding(name) == codec


def test_sniffed_is_a_value() -> None:
    s = Sniffed("csv", Path("a.csv"), "utf-8")
    assert s == Sniffed("csv", Path("a.csv"), "utf-8") and s.warnings == ()


# --- property: detection round-trips Chinese + ASCII text ------------------------------

HANZI = st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5)  # all in GBK
ASCII = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.sampled_from("\t\r\n"),
    max_size=12,
)


@st.composite
def chinese_ascii_text(draw: st.DrawFn, min_hanzi: int = 4) -> str:
    hanzi = draw(st.lists(HANZI, min_size=min_hanzi, max_size=40, unique=True))
    runs = draw(st.lists(st.integers(1, 4), min_size=len(hanzi), max_size=len(hanzi)))
    ascii_parts = draw(st.lists(ASCII, min_size=len(hanzi), max_size=len(hanzi)))
    return "".join(a + h * n for a, h, n in zip(ascii_parts, hanzi, runs, strict=True))


@settings(max_examples=300, deadline=None)
@given(text=chinese_ascii_text(), encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]))
def test_detect_encoding_round_trips(text: str, encoding: str) -> None:
    data = text.encode(encoding)
    detected = detect_encoding(data)
    assert data.decode(detected) == text
    assert detected == encoding


@settings(max_examples=300, deadline=None)
@given(
    text=chinese_ascii_text(min_hanzi=0),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]),
)
def test_detect_encoding_always_decodes(text: str, encoding: str) -> None:
    """Very short texts can be ambiguous (many GBK byte pairs are valid UTF-8), but the
    answer always decodes the data."""
    data = text.encode(encoding)
    data.decode(detect_encoding(data))
