"""Write the loader test corpus: small real files in every input format, good and broken.

Run once from the repository root (``.venv/bin/python tests/data/corpus/make_corpus.py``);
the files it writes are committed, this script is kept so that they can be re-made and
reviewed. ``README.md`` beside it lists each file with the decision or error it must get.
Three grids of one community of the demo district (370214) near 36.30 N 120.40 E, and a
handful of incidents in them.
"""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

import geopandas as gpd
import pyogrio
from shapely.geometry import Point, Polygon, box

HERE = Path(__file__).resolve().parent
STREET = "370214001000"
COMMUNITY = "370214001001"
LON0, LAT0 = 120.40, 36.30
DX, DY = 0.0035, 0.0027  # about 310 m x 300 m

GRIDS = [
    {"code": f"{COMMUNITY}00{i + 1}", "name": name, "kind": "urban", "households": hh}
    for i, (name, hh) in enumerate([("海园一网格", 412), ("海园二网格", 388), ("海园三网格", 275)])
]
GRID_GEOMS = [box(LON0 + i * DX, LAT0, LON0 + (i + 1) * DX, LAT0 + DY) for i in range(3)]

INCIDENTS = [
    # code, category, source, severity, title, description, address, occurred, reported,
    # lon, lat, grid index
    (
        "SJ20250301001",
        "0101",
        "patrol",
        1,
        "邻里噪音纠纷",
        "楼上装修噪音扰民，双方争执",
        "海园路12号3单元",
        "2025-03-01 08:40:00",
        "2025-03-01 09:05:00",
        120.4011,
        36.3012,
        0,
    ),
    (
        "SJ20250301002",
        "0302",
        "app",
        1,
        "占道经营",
        "早市摊位占用人行道",
        "海园路与香江路交叉口",
        "2025-03-01 06:30:00",
        "2025-03-01 07:10:00",
        120.4049,
        36.3009,
        1,
    ),
    (
        "SJ20250302003",
        "0701",
        "hotline",
        2,
        "消防通道堵塞",
        "小区消防通道停放多辆私家车",
        "海园小区北门",
        "2025-03-02 19:20:00",
        "2025-03-02 19:45:00",
        120.4081,
        36.3021,
        2,
    ),
    (
        "SJ20250303004",
        "0203",
        "video",
        1,
        "井盖缺失",
        "人行道井盖缺失，存在安全隐患",
        "香江路88号门前",
        "2025-03-03 10:00:00",
        "2025-03-03 10:02:00",
        120.4022,
        36.3019,
        0,
    ),
    (
        "SJ20250304005",
        "0402",
        "assigned",
        3,
        "燃气泄漏报警",
        "居民报告楼道内有燃气味",
        "海园路20号1单元",
        "2025-03-04 22:15:00",
        "2025-03-04 22:18:00",
        120.4055,
        36.3004,
        1,
    ),
]

EN_HEADERS = [
    "code",
    "category",
    "source",
    "severity",
    "title",
    "description",
    "address",
    "occurred_at",
    "reported_at",
    "lng",
    "lat",
    "grid_code",
]
ZH_HEADERS = [
    "事件编号",
    "事件类型",
    "来源",
    "等级",
    "标题",
    "事件描述",
    "地址",
    "发生时间",
    "上报时间",
    "经度",
    "纬度",
    "网格编码",
]
BOM_HEADERS = [
    "事件编号",
    "事件类别",
    "事件来源",
    "严重程度",
    "事件标题",
    "描述",
    "事发地址",
    "事发时间",
    "报告时间",
    "经度(°)",
    "纬度(°)",
    "网格代码",
]
VENDOR_HEADERS = [
    "工单流水",
    "问题分类",
    "渠道",
    "级别码",
    "问题概述",
    "诉求内容",
    "事发位置",
    "发现时刻",
    "登记时刻",
    "东经度",
    "北纬度",
    "所在网格",
]


def rows() -> list[list[object]]:
    return [[*r[:11], GRIDS[r[11]]["code"]] for r in INCIDENTS]


def write_csv(
    name: str, headers: list[str], body: list[list[object]], encoding: str = "utf-8", **kw: object
) -> None:
    with (HERE / name).open("w", encoding=encoding, newline="") as f:
        w = csv.writer(f, **kw)  # type: ignore[arg-type]
        w.writerow(headers)
        w.writerows(body)


def grids_gdf(
    geoms: list[Polygon] | None = None, records: list[dict] | None = None
) -> gpd.GeoDataFrame:
    records = records or GRIDS
    geoms = geoms or GRID_GEOMS
    return gpd.GeoDataFrame(
        [{**g, "community_code": COMMUNITY, "valid_from": "2021-01-01"} for g in records],
        geometry=geoms,
        crs="EPSG:4490",
    )


def incidents_gdf() -> gpd.GeoDataFrame:
    df = gpd.GeoDataFrame(
        [dict(zip(EN_HEADERS[:9], r[:9], strict=True)) | {"grid_code": r[11]} for r in rows()],
        geometry=[Point(r[9], r[10]) for r in rows()],
        crs="EPSG:4326",
    )
    df = df.rename(columns={"category": "category_code"})
    return df


def zip_dir(zip_path: Path, files: list[Path], inside: str = "") -> None:
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in files:
            zf.write(p, f"{inside}{p.name}")


def write_gpx(path: Path) -> None:
    ns = "http://www.topografix.com/GPX/1/1"
    ET.register_namespace("", ns)
    gpx = ET.Element(f"{{{ns}}}gpx", version="1.1", creator="Grid One-Map corpus")
    trk = ET.SubElement(gpx, f"{{{ns}}}trk")
    ET.SubElement(trk, f"{{{ns}}}name").text = "巡查轨迹 W0001 2025-03-01"
    seg = ET.SubElement(trk, f"{{{ns}}}trkseg")
    for i in range(20):
        pt = ET.SubElement(
            seg,
            f"{{{ns}}}trkpt",
            lat=f"{LAT0 + 0.0005 + i * 0.0001:.6f}",
            lon=f"{LON0 + 0.0005 + i * 0.00015:.6f}",
        )
        ET.SubElement(pt, f"{{{ns}}}ele").text = "12.0"
        ET.SubElement(pt, f"{{{ns}}}time").text = f"2025-03-01T01:{i:02d}:00Z"
    ET.ElementTree(gpx).write(path, encoding="utf-8", xml_declaration=True)


def open311() -> list[dict]:
    out = []
    for r in rows():
        out.append(
            {
                "service_request_id": r[0],
                "status": "open",
                "status_notes": None,
                "service_name": r[4],
                "service_code": r[1],
                "description": r[5],
                "agency_responsible": "海园街道办事处",
                "service_notice": None,
                "requested_datetime": str(r[8]).replace(" ", "T") + "+08:00",
                "updated_datetime": str(r[8]).replace(" ", "T") + "+08:00",
                "expected_datetime": None,
                "address": r[6],
                "address_id": None,
                "zipcode": "266000",
                "lat": r[10],
                "long": r[9],
                "media_url": None,
            }
        )
    return out


def main() -> None:
    for p in HERE.iterdir():
        if p.name not in {"make_corpus.py", "README.md"}:
            shutil.rmtree(p) if p.is_dir() else p.unlink()

    # --- good files -----------------------------------------------------------------------
    grids = grids_gdf()
    grids.to_file(HERE / "grids.geojson", driver="GeoJSON")
    grids.to_file(HERE / "grids.gpkg", driver="GPKG", layer="grid", SPATIAL_INDEX="NO")
    with sqlite3.connect(HERE / "grids.gpkg") as con:
        con.execute("VACUUM")  # smaller file, same content
    con.close()
    shp_dir = HERE / "grids_shp"
    shp_dir.mkdir()
    # DBF field names hold at most 10 bytes: short English names here, Chinese in GBK below
    short = grids.rename(columns={"community_code": "comm_code", "households": "households"})
    short.to_file(shp_dir / "grids.shp", encoding="UTF-8")  # writes .prj and .cpg
    zip_dir(HERE / "grids_shp.zip", sorted(shp_dir.iterdir()), inside="grids/")
    gbk_dir = HERE / "grids_gbk_shp"
    gbk_dir.mkdir()
    zh = {
        "code": "网格编码",
        "name": "网格名称",
        "kind": "网格类型",
        "households": "户数",
        "community_code": "社区编码",
        "valid_from": "启用日期",
    }
    grids.rename(columns=zh).to_file(gbk_dir / "grids_gbk.shp", encoding="GBK")
    nocpg = HERE / "grids_gbk_nocpg_shp"
    nocpg.mkdir()
    for p in gbk_dir.iterdir():
        if p.suffix != ".cpg":
            shutil.copy(p, nocpg / p.name.replace("grids_gbk", "grids_nocpg"))
    # a DBF without language-driver byte: the encoding must come from the records
    dbf = nocpg / "grids_nocpg.dbf"
    data = bytearray(dbf.read_bytes())
    data[29] = 0
    dbf.write_bytes(bytes(data))

    incidents = incidents_gdf()
    pyogrio.write_dataframe(incidents, HERE / "incidents.kml", driver="KML", layer="incidents")
    with zipfile.ZipFile(HERE / "incidents.kmz", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(HERE / "incidents.kml", "doc.kml")
    pyogrio.write_dataframe(
        incidents.drop(columns="geometry").assign(
            lng=[r[9] for r in rows()], lat=[r[10] for r in rows()]
        ),
        HERE / "incidents.xlsx",
        driver="XLSX",
        layer="incidents",
    )
    write_csv("incidents_en.csv", EN_HEADERS, rows())
    write_csv("incidents_bom.csv", BOM_HEADERS, rows(), encoding="utf-8-sig")
    write_csv("incidents_gbk.csv", ZH_HEADERS, rows(), encoding="gbk")
    write_csv("incidents_tab.txt", ZH_HEADERS, rows(), delimiter="\t")
    write_csv("incidents_vendor.csv", VENDOR_HEADERS, rows())
    write_gpx(HERE / "patrol_track.gpx")
    (HERE / "incidents_open311.json").write_text(
        json.dumps(open311(), ensure_ascii=False, indent=1), encoding="utf-8"
    )

    (HERE / "mapping.json").write_text(
        json.dumps(
            {
                "code": "工单流水",
                "category_code": "问题分类",
                "source": "渠道",
                "severity": "级别码",
                "title": "问题概述",
                "description": "诉求内容",
                "address": "事发位置",
                "occurred_at": "发现时刻",
                "reported_at": "登记时刻",
                "lon": "东经度",
                "lat": "北纬度",
                "grid_code": "所在网格",
            },
            ensure_ascii=False,
            indent=1,
        ),
        encoding="utf-8",
    )
    (HERE / "mapping.toml").write_text(
        "# 厂商平台导出的表头 / headers of the vendor platform's export\n[columns]\n"
        'lon = "东经度"\nlat = "北纬度"\ncode = "工单流水"\ncategory_code = "问题分类"\n'
        'reported_at = "登记时刻"\n',
        encoding="utf-8",
    )
    (HERE / "mapping_unknown_field.json").write_text(
        json.dumps({"longitud": "东经度", "lat": "北纬度"}, ensure_ascii=False), encoding="utf-8"
    )
    (HERE / "mapping_reversed.toml").write_text(
        '"东经度" = "lon"\n"经度" = "lon"\n', encoding="utf-8"
    )
    (HERE / "mapping_bad_header.json").write_text(
        json.dumps({"lon": "东经度", "lat": "纬度（北）"}, ensure_ascii=False), encoding="utf-8"
    )
    (HERE / "mapping_malformed.json").write_text('{"lon": "东经度",', encoding="utf-8")

    # --- broken content (sniffs fine; later checks must catch it) ------------------------
    swapped = [[*r[:9], r[10], r[9], r[11]] for r in rows()]
    write_csv("swapped_coords.csv", EN_HEADERS, swapped)
    bowtie = Polygon([(LON0, LAT0), (LON0 + DX, LAT0 + DY), (LON0 + DX, LAT0), (LON0, LAT0 + DY)])
    grids_gdf([bowtie], GRIDS[:1]).to_file(HERE / "bowtie_grid.geojson", driver="GeoJSON")
    overlap = [GRID_GEOMS[0], box(LON0 + DX * 0.6, LAT0, LON0 + DX * 1.6, LAT0 + DY)]
    grids_gdf(overlap, GRIDS[:2]).to_file(HERE / "overlapping_grids.geojson", driver="GeoJSON")
    wrong = [list(r) for r in rows()]
    wrong[0][3] = "高"  # severity
    wrong[1][7] = "2025-13-45 25:61:00"  # occurred_at
    wrong[2][8] = "昨天下午"  # reported_at
    wrong[3][9] = "东经120度"  # lng
    wrong[4][3] = ""  # severity blank
    write_csv("wrong_types.csv", EN_HEADERS, wrong)
    sql = [list(r) for r in rows()]
    sql[0][4] = "'; DROP TABLE incident; --"
    sql[1][5] = 'Robert"); DELETE FROM grid WHERE ("1"="1'
    sql[2][6] = "1' OR '1'='1"
    sql[3][0] = "SJ'||(SELECT pg_sleep(5))||'"
    sql[4][4] = "$$; TRUNCATE staff; $$ \\copy"
    write_csv("sql_strings.csv", EN_HEADERS, sql)
    emoji = [list(r) for r in rows()]
    for i, r in enumerate(emoji):
        r[4] = f"🚧{r[4]}🔥 第{i + 1}件 👨‍👩‍👧"
        r[5] = f"{r[5]} 😀 𠀀𪚥 「引号」，“全角” \u200b零宽"
        r[6] = f"{r[6]} 🏠"
        r[2] = r[2]  # vocabulary code stays valid
    write_csv("chinese_emoji.csv", EN_HEADERS, emoji)
    eg = grids_gdf(records=[{**g, "name": f"🌊{g['name']}🏘️"} for g in GRIDS])
    eg.to_file(HERE / "chinese_emoji.geojson", driver="GeoJSON")
    write_csv(
        "missing_lonlat.csv", [*EN_HEADERS[:9], "grid_code"], [[*r[:9], r[11]] for r in rows()]
    )
    write_csv("ambiguous_lon.csv", ["code", "经度", "lng", "lat"], [["a", 120.4, 120.4, 36.3]])

    # --- broken files (sniff must refuse them) -------------------------------------------
    (HERE / "empty.csv").write_bytes(b"")
    (HERE / "whitespace_only.csv").write_bytes(b"\r\n  \r\n\t\n")
    (HERE / "header_only.csv").write_text(",".join(ZH_HEADERS) + "\r\n", encoding="gbk")
    (HERE / "utf16_no_bom.csv").write_bytes(
        ("\r\n".join(",".join(map(str, r)) for r in [ZH_HEADERS, *rows()])).encode("utf-16-le")
    )
    (HERE / "binary.csv").write_bytes(bytes(range(256)) * 4)
    (HERE / "empty_collection.geojson").write_text(
        '{"type": "FeatureCollection", "features": []}\n', encoding="utf-8"
    )
    (HERE / "open311_empty.json").write_text("[]\n", encoding="utf-8")
    (HERE / "malformed.geojson").write_text(
        (HERE / "grids.geojson").read_text(encoding="utf-8")[:300], encoding="utf-8"
    )
    feats = json.loads((HERE / "grids.geojson").read_text(encoding="utf-8"))["features"]
    (HERE / "features_array.json").write_text(
        json.dumps(feats, ensure_ascii=False), encoding="utf-8"
    )
    shutil.copy(HERE / "grids_shp.zip", HERE / "shapefile_zip_named.csv")
    shutil.copy(HERE / "grids.geojson", HERE / "grids_geojson_named.kml")
    shutil.copy(HERE / "grids.gpkg", HERE / "grids_gpkg_named.geojson")
    shutil.copy(HERE / "incidents_gbk.csv", HERE / "incidents_csv_named.xlsx")
    shutil.copy(HERE / "incidents.kml", HERE / "incidents_kml_named.gpx")
    miss = HERE / "shp_missing_dbf"
    miss.mkdir()
    for ext in (".shp", ".shx", ".prj"):
        shutil.copy(shp_dir / f"grids{ext}", miss / f"grids{ext}")
    with zipfile.ZipFile(HERE / "shp_missing_shx.zip", "w") as zf:
        for ext in (".shp", ".dbf", ".prj", ".cpg"):
            zf.write(shp_dir / f"grids{ext}", f"grids{ext}")
    with zipfile.ZipFile(HERE / "no_data.zip", "w") as zf:
        zf.writestr("说明.txt", "这里没有数据 / no data here\n")
    con = sqlite3.connect(HERE / "not_a_geopackage.gpkg")
    con.execute("CREATE TABLE t (a INTEGER)")
    con.commit()
    con.close()


if __name__ == "__main__":
    main()
    for p in sorted(HERE.rglob("*")):
        if p.is_file():
            print(f"{p.stat().st_size:>8}  {p.relative_to(HERE)}")
