"""Header recognition (loaders.columns) on the corpus: Chinese and English headers, mapping
files, and the messages when a column is missing or ambiguous."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyogrio
import pytest

from loaders.columns import (
    FIELD_LABELS,
    HEADER_ALIASES,
    KIND_ALIASES,
    AmbiguousColumnError,
    MappingError,
    MissingColumnError,
    load_mapping,
    match_field,
    normalise_header,
    resolve_columns,
)
from loaders.read import read_table
from loaders.sniff import read_text, sniff_format
from tests.corpus import CORPUS

INCIDENT_REQUIRED = (
    "code",
    "category_code",
    "source",
    "severity",
    "title",
    "occurred_at",
    "reported_at",
    "lon",
    "lat",
)
INCIDENT_OPTIONAL = ("description", "address", "grid_code", "x", "y", "wkt", "status")


def headers_of(name: str) -> list[str]:
    """The header row of a corpus CSV, read with the detected encoding and delimiter."""
    path = CORPUS / name
    text = read_text(path, sniff_format(path).encoding_hint)
    dialect = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",\t;")
    return next(csv.reader(io.StringIO(text), dialect))


@pytest.mark.parametrize(
    ("name", "lon", "lat", "category", "reported"),
    [
        ("incidents_en.csv", "lng", "lat", "category", "reported_at"),
        ("incidents_gbk.csv", "经度", "纬度", "事件类型", "上报时间"),
        ("incidents_bom.csv", "经度(°)", "纬度(°)", "事件类别", "报告时间"),
        ("incidents_tab.txt", "经度", "纬度", "事件类型", "上报时间"),
        ("swapped_coords.csv", "lng", "lat", "category", "reported_at"),
    ],
)
def test_incident_headers_resolve(
    name: str, lon: str, lat: str, category: str, reported: str
) -> None:
    headers = headers_of(name)
    cols = resolve_columns(
        headers,
        required=INCIDENT_REQUIRED,
        optional=INCIDENT_OPTIONAL,
        source=name,
        kind="incidents",
    )
    assert cols["lon"] == lon and cols["lat"] == lat
    assert cols["category_code"] == category and cols["reported_at"] == reported
    assert set(cols) == {*INCIDENT_REQUIRED, "description", "address", "grid_code"}
    assert list(cols)[: len(INCIDENT_REQUIRED)] == list(INCIDENT_REQUIRED)  # order requested
    assert set(cols.values()) <= set(headers)


def test_gbk_csv_chinese_headers_in_full() -> None:
    cols = resolve_columns(
        headers_of("incidents_gbk.csv"),
        required=INCIDENT_REQUIRED,
        optional=INCIDENT_OPTIONAL,
        source="incidents_gbk.csv",
        kind="incidents",
    )
    assert cols == {
        "code": "事件编号",
        "category_code": "事件类型",
        "source": "来源",
        "severity": "等级",
        "title": "标题",
        "occurred_at": "发生时间",
        "reported_at": "上报时间",
        "lon": "经度",
        "lat": "纬度",
        "description": "事件描述",
        "address": "地址",
        "grid_code": "网格编码",
    }


def test_gbk_shapefile_field_names() -> None:
    sniffed = sniff_format(CORPUS / "grids_gbk_shp" / "grids_gbk.shp")
    fields = list(pyogrio.read_info(sniffed.gdal_path, encoding=sniffed.encoding_hint)["fields"])
    cols = resolve_columns(
        fields,
        required=("code", "name", "community_code"),
        optional=("kind", "households", "valid_from"),
        source="grids_gbk.shp",
        kind="grids",
    )
    assert cols == {
        "code": "网格编码",
        "name": "网格名称",
        "community_code": "社区编码",
        "kind": "网格类型",
        "households": "户数",
        "valid_from": "启用日期",
    }


def test_open311_and_gpx_names() -> None:
    doc = json.loads((CORPUS / "incidents_open311.json").read_text(encoding="utf-8"))
    cols = resolve_columns(
        list(doc[0]),
        required=("code", "category_code", "reported_at", "lon", "lat"),
        optional=("description", "address", "status", "due_at"),
        source="incidents_open311.json",
        kind="incidents",
    )
    assert cols["code"] == "service_request_id" and cols["lon"] == "long"
    assert cols["category_code"] == "service_code" and cols["reported_at"] == "requested_datetime"
    assert cols["due_at"] == "expected_datetime"
    fields = pyogrio.read_info(CORPUS / "patrol_track.gpx", layer="track_points")["fields"]
    assert resolve_columns(list(fields), required=("fixed_at",), source="gpx") == {
        "fixed_at": "time"
    }


@pytest.mark.parametrize(
    ("header", "normalised"),
    [
        (" Longitude (°) ", "longitude"),
        ("ＬＮＧ", "lng"),
        ("网格_编码", "网格编码"),
        ("Grid-Code", "gridcode"),
        ("经度（GCJ-02）", "经度gcj02"),
        ("X 坐标", "x坐标"),
    ],
)
def test_normalise_header(header: str, normalised: str) -> None:
    assert normalise_header(header) == normalised


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("LNG", "lon"),
        ("Longitude", "lon"),
        ("经度（GCJ-02）", "lon"),  # the bracketed note is dropped when nothing else matches
        ("精度(米)", "accuracy_m"),
        ("X坐标", "x"),
        ("Y", "y"),
        ("THE_GEOM", "wkt"),
        ("网格代码", "grid_code"),
        ("所属街道", "street_code"),
        ("社区编号", "community_code"),
        ("事件类别", "category_code"),
        ("上报时间", "reported_at"),
        ("事发时间", "occurred_at"),
        ("严重程度", "severity"),
        ("事件标题", "title"),
        ("事件描述", "description"),
        ("手机号码", "phone"),
        ("门牌号", "unit_no"),
        ("户籍人口", "n_registered"),
        ("流动人口", "n_floating"),
        ("独居老人", "n_elderly_alone"),
        ("低保户", "n_low_income"),
        ("残疾人", "n_disabled"),
        ("退役军人", "n_veterans"),
        ("党员人数", "n_party_members"),
        ("社区矫正人员", "n_community_correction"),
        ("处理人", "actor"),
        ("备注", "note"),
        ("定位时间", "fixed_at"),
        ("timestamp", "fixed_at"),
        ("时间", "at"),
        ("日期", "log_date"),
        ("内容", "body"),
        ("层级", "tier"),
    ],
)
def test_match_field(header: str, field: str) -> None:
    assert match_field(header) == [field]


def test_every_alias_matches_its_field_alone() -> None:
    for field, aliases in HEADER_ALIASES.items():
        assert aliases[0] == field
        for alias in aliases:
            assert match_field(alias) == [field], (field, alias)


def test_kind_aliases_name_known_fields_and_do_not_compete() -> None:
    for kind, table in KIND_ALIASES.items():
        assert set(table) <= set(HEADER_ALIASES), kind
        for field, aliases in table.items():
            for alias in aliases:
                assert match_field(alias, kind=kind) == [field], (kind, field, alias)


@pytest.mark.parametrize(
    ("kind", "headers", "expected"),
    [
        # the same header means different fields in different kinds of file
        (
            "grids",
            ["网格编码", "网格名称", "社区编码"],
            {"code": "网格编码", "name": "网格名称", "community_code": "社区编码"},
        ),
        (
            "buildings",
            ["楼栋编码", "网格编码", "地址"],
            {"code": "楼栋编码", "grid_code": "网格编码", "address": "地址"},
        ),
        ("housing", ["楼栋编码", "房号"], {"building_code": "楼栋编码", "unit_no": "房号"}),
        (
            "communities",
            ["社区编码", "社区名称", "街道编码"],
            {"code": "社区编码", "name": "社区名称", "parent_code": "街道编码"},
        ),
        (
            "streets",
            ["街道编码", "街道名称", "区县编码"],
            {"code": "街道编码", "name": "街道名称", "parent_code": "区县编码"},
        ),
        (
            "transitions",
            ["事件编号", "时间", "状态", "层级", "处理人", "备注"],
            {
                "incident_code": "事件编号",
                "at": "时间",
                "to_status": "状态",
                "tier": "层级",
                "actor": "处理人",
                "note": "备注",
            },
        ),
        ("incidents", ["事件编号", "网格编码"], {"code": "事件编号", "grid_code": "网格编码"}),
        (
            "workers",
            ["工号", "姓名", "手机号"],
            {"code": "工号", "name": "姓名", "phone": "手机号"},
        ),
        (
            "worklogs",
            ["网格员编号", "日期", "日志类型", "内容"],
            {"worker_code": "网格员编号", "log_date": "日期", "kind": "日志类型", "body": "内容"},
        ),
        (
            "patrols",
            ["user_id", "time", "精度(米)"],
            {"worker_code": "user_id", "fixed_at": "time", "accuracy_m": "精度(米)"},
        ),
    ],
)
def test_kind_decides_what_a_header_means(
    kind: str, headers: list[str], expected: dict[str, str]
) -> None:
    fields = [
        "code",
        "name",
        "parent_code",
        "grid_code",
        "community_code",
        "address",
        "building_code",
        "unit_no",
        "incident_code",
        "at",
        "to_status",
        "tier",
        "actor",
        "note",
        "phone",
        "worker_code",
        "log_date",
        "kind",
        "body",
        "fixed_at",
        "accuracy_m",
    ]
    got = resolve_columns(headers, required=list(expected), optional=fields, kind=kind)
    assert got == expected


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown loader kind 'roads'"):
        resolve_columns(["a"], required=("code",), kind="roads")


def test_every_field_has_a_chinese_and_english_label() -> None:
    assert set(FIELD_LABELS) == set(HEADER_ALIASES)
    for zh, en in FIELD_LABELS.values():
        assert any("\u4e00" <= c <= "\u9fff" for c in zh) and en.isascii()


def test_store_columns_are_covered() -> None:
    """Every column a loader fills has aliases; id keys are given as codes in files."""
    from store.models import ACCESS_TABLES, COVERAGE_STORE_TABLES, KPI_SUMMARY_TABLES, Base

    # the KPI sums (store.kpi_summary) and stored coverage (geo.coverage_store) are computed,
    # never loaded
    skip_tables = {
        "data_source",
        "incident_category",
        "workflow_rule",
        *ACCESS_TABLES,
        *KPI_SUMMARY_TABLES,
        *COVERAGE_STORE_TABLES,
    }
    from store.cells import CELL_COLUMNS

    # an incident's H3 cells (migration 0009) are computed from its point at load
    derived = {"id", "geom", "footprint", "rented", "status_at", "closed_at", "extended_due_at"}
    derived |= set(CELL_COLUMNS)
    by_code = {"worker_id", "reporter_id", "staff_id", "building_id", "housing_unit_id"}
    for table in Base.metadata.sorted_tables:
        if table.name in skip_tables:
            continue
        for column in table.columns:
            if column.name in derived | by_code or column.name == "incident_id":
                continue
            assert column.name in HEADER_ALIASES, f"{table.name}.{column.name}"
    assert {"worker_code", "building_code", "incident_code"} <= set(HEADER_ALIASES)


# --- errors --------------------------------------------------------------------------


def test_missing_columns_are_named_with_the_headers_found() -> None:
    headers = headers_of("missing_lonlat.csv")
    with pytest.raises(MissingColumnError) as info:
        resolve_columns(
            headers, required=INCIDENT_REQUIRED, source="missing_lonlat.csv", kind="incidents"
        )
    err = info.value
    assert err.missing == ["lon", "lat"] and err.found == headers
    assert isinstance(err, ValueError) and err.file == "missing_lonlat.csv"
    msg = str(err)
    zh, _, en = msg.partition(" / ")
    assert zh.startswith("missing_lonlat.csv 缺少必需的列：经度（lon）、纬度（lat）")
    assert "文件中的列：“code”, “category”" in zh and "--mapping" in zh
    assert "lacks the required column(s) lon (longitude), lat (latitude)" in en
    assert "Headers found: “code”, “category”, “source”" in en
    assert "lon: lon, 经度" in en and "lng" in en  # what would have been recognised


def test_vendor_headers_need_a_mapping() -> None:
    headers = headers_of("incidents_vendor.csv")
    with pytest.raises(MissingColumnError, match=r"经度（lon）、纬度（lat）.*“东经度”, “北纬度”"):
        resolve_columns(
            headers, required=INCIDENT_REQUIRED, source="incidents_vendor.csv", kind="incidents"
        )


@pytest.mark.parametrize("mapping_file", ["mapping.json", "mapping.toml"])
def test_mapping_files_resolve_the_vendor_headers(mapping_file: str) -> None:
    mapping = load_mapping(CORPUS / mapping_file)
    assert mapping["lon"] == "东经度" and mapping["lat"] == "北纬度"
    cols = resolve_columns(
        headers_of("incidents_vendor.csv"),
        required=[f for f in INCIDENT_REQUIRED if f in mapping],
        optional=INCIDENT_OPTIONAL,
        mapping=mapping,
        source="incidents_vendor.csv",
        kind="incidents",
    )
    assert cols == {f: mapping[f] for f in cols}
    assert set(cols) >= set(mapping) - set(INCIDENT_OPTIONAL) - {"description", "address"}


def test_mapping_overrides_aliases() -> None:
    headers = ["经度", "纬度", "GCJ经度", "GCJ纬度"]
    cols = resolve_columns(
        headers,
        required=("lon", "lat"),
        mapping={"lon": "GCJ经度", "lat": "GCJ纬度"},
        source="a.csv",
    )
    assert cols == {"lon": "GCJ经度", "lat": "GCJ纬度"}
    # a mapping value matches the header loosely when that is unique
    assert resolve_columns(
        [" 东经度 "], required=("lon",), mapping={"lon": "东经度"}, source="a.csv"
    ) == {"lon": " 东经度 "}


def test_mapping_to_a_header_the_file_lacks() -> None:
    mapping = load_mapping(CORPUS / "mapping_bad_header.json")
    with pytest.raises(MappingError, match=r"纬度（北）.*文件中没有这一列.*'纬度（北）'.*东经度"):
        resolve_columns(
            headers_of("incidents_vendor.csv"),
            required=("lon", "lat"),
            mapping=mapping,
            source="incidents_vendor.csv",
        )


def test_mapping_of_a_field_the_kind_does_not_take() -> None:
    with pytest.raises(MappingError, match=r"note 这类数据不使用.*not taken by this kind"):
        resolve_columns(["经度", "纬度", "备注"], required=("lon", "lat"), mapping={"note": "备注"})


def test_load_mapping_names_unknown_fields_and_suggests() -> None:
    with pytest.raises(MappingError, match=r"longitud 不是已知的字段名.*longitud → lon\b") as info:
        load_mapping(CORPUS / "mapping_unknown_field.json")
    assert info.value.file == "mapping_unknown_field.json"


def test_load_mapping_notices_a_reversed_mapping() -> None:
    with pytest.raises(MappingError, match=r"“经度” → lon\?.*字段名 = 表头"):
        load_mapping(CORPUS / "mapping_reversed.toml")


def test_load_mapping_malformed(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"mapping_malformed\.json 无法解析.*cannot parse"):
        load_mapping(CORPUS / "mapping_malformed.json")
    nested = tmp_path / "m.json"
    nested.write_text('{"lon": {"header": "x"}}', encoding="utf-8")
    with pytest.raises(MappingError, match=r"一层键值表.*one flat table"):
        load_mapping(nested)
    other = tmp_path / "m.cfg"  # unknown extension: JSON, then TOML
    other.write_text('lon = "东经度"\n', encoding="utf-8")
    assert load_mapping(other) == {"lon": "东经度"}


def test_two_headers_for_one_field() -> None:
    headers = headers_of("ambiguous_lon.csv")
    with pytest.raises(AmbiguousColumnError, match=r"多个列都可能是“经度”\(lon\)：“经度”, “lng”"):
        resolve_columns(headers, required=("lon", "lat"), source="ambiguous_lon.csv")
    # a mapping settles it
    assert resolve_columns(
        headers, required=("lon", "lat"), mapping={"lon": "lng"}, source="ambiguous_lon.csv"
    ) == {"lon": "lng", "lat": "lat"}


def test_two_headers_for_one_field_holding_the_same_values_are_one_column() -> None:
    """An export carrying 经度 and lng alike loads; when they differ, which one is meant
    cannot be guessed: both headers and the file are named."""
    path = CORPUS / "ambiguous_lon.csv"
    frame = read_table(sniff_format(path)).frame
    headers = list(frame.columns)
    same = frame.assign(lng=frame["经度"])
    cols = resolve_columns(headers, required=("lon", "lat"), source=path.name, values=same)
    assert cols == {"lon": "经度", "lat": "lat"}
    differ = frame.assign(lng=frame["经度"].where(frame.index > 0, "120.5"))
    with pytest.raises(
        AmbiguousColumnError,
        match=r"ambiguous_lon\.csv: several columns could "
        r"be lon \(longitude\): “经度”, “lng”",
    ) as info:
        resolve_columns(headers, required=("lon", "lat"), source=path.name, values=differ)
    assert info.value.file == path.name


def test_one_header_for_two_requested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    from loaders import columns

    monkeypatch.setitem(columns._NORMALISED, "title", frozenset({"名称"}))
    with pytest.raises(AmbiguousColumnError, match=r"列“名称”可以是 名称\(name\)、标题\(title\)"):
        resolve_columns(["名称"], required=("name",), optional=("title",), source="a.csv")
    # requested apart, each reads it
    assert resolve_columns(["名称"], required=("title",)) == {"title": "名称"}


def test_exact_match_beats_bracket_stripped() -> None:
    cols = resolve_columns(["经度", "经度（备用）", "纬度"], required=("lon", "lat"))
    assert cols == {"lon": "经度", "lat": "纬度"}


def test_optional_columns_are_left_out_when_absent() -> None:
    assert resolve_columns(["lng", "lat"], required=("lon", "lat"), optional=("note",)) == {
        "lon": "lng",
        "lat": "lat",
    }


def test_sql_and_emoji_headers_are_just_headers() -> None:
    headers = ["'; DROP TABLE incident; --", "经度🚧", "纬度", "备注😀"]
    cols = resolve_columns(headers, required=("lat", "lon"), optional=("note",), source="x.csv")
    assert cols == {"lat": "纬度", "lon": "经度🚧", "note": "备注😀"}  # symbols are ignored
    with pytest.raises(MissingColumnError, match="'; DROP TABLE incident; --"):
        resolve_columns(headers, required=("code",), source="x.csv")
