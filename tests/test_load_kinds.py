"""Loading the rest of a street: housing, key places, facilities, incident transitions,
patrol fixes and work logs. Against real PostGIS, with the demo street written out as the
files a street office holds (GBK CSV with Chinese headers, XLSX, GeoJSON, GPX).

For each kind: the stored rows equal the generator's (ids mapped through codes), loading the
file again changes nothing, and bad rows are named by line, field and reason while the good
rows of the same file land.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from sqlalchemy import Engine, text

from loaders.engine import Options, load_file
from loaders.report import LoadReport
from store import vocab
from store.db import make_engine
from store.settings import PROJECT_ROOT
from tests import test_load

SH = "Asia/Shanghai"
CORPUS = PROJECT_ROOT / "tests" / "data" / "corpus"

files = test_load.files  # the demo street as files: streets … incidents


@pytest.fixture(scope="module")
def street(server, template_db, files) -> Iterator[Engine]:
    """A database holding the demo street's streets, communities, grids, workers, buildings
    and incidents, loaded through the loaders (the kinds below build on them)."""
    name = server.create(f"kinds_{uuid.uuid4().hex[:8]}", template=template_db)
    engine = make_engine(server.url(name))
    folder = files["streets"].parent
    for kind, f in test_load.ORDER:
        load_file(engine, kind, folder / f, Options())
    yield engine
    engine.dispose()
    server.drop(name)


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("more_street_files")


def _rows(engine: Engine, sql: str) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(text(sql))
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def _load(engine: Engine, kind: str, path: Path, **opts) -> LoadReport:
    return load_file(engine, kind, path, Options(**opts))


def _unchanged(report: LoadReport) -> None:
    assert (report.inserted, report.updated) == (0, 0), report.summary()


def _why(report: LoadReport) -> dict[int, tuple[str | None, str]]:
    return {p.line: (p.field, p.reason) for p in report.rejected}


def _same(got: pd.DataFrame, exp: pd.DataFrame, by: list[str]) -> None:
    """Equal frames, whatever the order and time zone (sorted here, not by the database's
    collation)."""

    def norm(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        for c in frame.columns:
            if isinstance(frame[c].dtype, pd.DatetimeTZDtype):
                frame[c] = frame[c].dt.tz_convert("UTC")
        return frame.sort_values(by).reset_index(drop=True)

    pd.testing.assert_frame_equal(norm(got), norm(exp[got.columns]), check_dtype=False)


def _write_xlsx(frame: pd.DataFrame, path: Path) -> Path:
    pyogrio.write_dataframe(frame.astype(str).replace({"None": "", "nan": ""}), path, "XLSX")
    return path


def _local(ts: pd.Series) -> pd.Series:
    """Times as an Excel export writes them: local time, no offset."""
    return ts.dt.tz_convert(SH).dt.strftime("%Y-%m-%d %H:%M:%S")


def _zh(vocabulary: str, codes: pd.Series) -> pd.Series:
    return codes.map(lambda c: vocab.label(vocabulary, c))


# --- housing ------------------------------------------------------------------------------

HOUSING_HEADERS = {
    "building_code": "楼栋编码",
    "unit_no": "房号",
    "use": "房屋用途",
    "occupancy": "居住状态",
    "n_registered": "户籍人口",
    "n_floating": "流动人口",
    "n_elderly_alone": "独居老人",
    "n_low_income": "低保",
    "n_disabled": "残疾人",
    "n_veterans": "退役军人",
    "n_party_members": "党员",
    "n_released_prisoners": "刑满释放人员",
    "n_community_correction": "社区矫正人员",
    "n_drug_users": "吸毒人员",
    "n_severe_mental_illness": "严重精神障碍患者",
    "n_key_youth": "重点青少年",
    "updated_on": "更新日期",
}
SPECIAL = [
    "n_released_prisoners",
    "n_community_correction",
    "n_drug_users",
    "n_severe_mental_illness",
    "n_key_youth",
]


def _housing_frame(demo) -> pd.DataFrame:
    """One row per housing unit, the special-group counts on the same row (as the
    community's register has them), Chinese labels for the vocabularies."""
    h = demo.housing_unit
    special = demo.housing_special_count.set_index("housing_unit_id")
    frame = h.assign(
        building_code=h.building_id.map(demo.building.set_index("id").code),
        use=_zh("housing_use", h.use),
        occupancy=_zh("occupancy", h.occupancy),
        **{c: h.id.map(special[c]).fillna(0).astype(int) for c in SPECIAL},
        updated_on=h.id.map(special.updated_on.astype(str)),
    )
    return frame[list(HOUSING_HEADERS)]


def test_housing_units_and_their_special_counts(street: Engine, demo, out: Path) -> None:
    frame = _housing_frame(demo)
    held = frame.tail(10)
    main = out / "housing_gbk.csv"
    frame.iloc[:-10].rename(columns=HOUSING_HEADERS).to_csv(main, index=False, encoding="gbk")
    first = _load(street, "housing", main)
    assert (first.inserted, first.rejected) == (len(frame) - 10, []), first.summary()

    bad = pd.concat([held, held.head(5)], ignore_index=True).astype(object)
    bad.loc[10, "building_code"] = "B-不存在"  # line 12
    bad.loc[11, "occupancy"] = "出借中"  # line 13
    bad.loc[12, "n_registered"] = "三"  # line 14
    bad.loc[13, ["n_drug_users", "unit_no"]] = [99, "x13"]  # line 15
    bad.loc[14, ["occupancy", "n_registered", "unit_no"]] = ["空置", 3, "x14"]  # line 16
    path = out / "housing_bad.csv"
    bad.rename(columns=HOUSING_HEADERS).to_csv(path, index=False, encoding="gbk")
    report = _load(street, "housing", path)
    why = _why(report)
    assert why[12][0] == "building_code" and "load the buildings first" in why[12][1]
    assert why[13][0] == "occupancy" and "unknown value" in why[13][1]
    assert why[14] == ("n_registered", "不是整数 / not a whole number")
    assert why[15][0] == "n_drug_users"
    assert why[16][0] == "occupancy" and "vacant unit cannot have residents" in why[16][1]
    assert report.inserted == 10 and len(report.rejected) == 5, report.summary()

    got = _rows(
        street,
        "SELECT b.code AS building_code, h.unit_no, h.use, h.occupancy, h.grid_code, "
        "h.street_code, h.n_registered, h.n_floating, h.n_elderly_alone, h.n_low_income, "
        "h.n_disabled, h.n_veterans, h.n_party_members FROM housing_unit h "
        "JOIN building b ON b.id = h.building_id ORDER BY 1, 2",
    )
    h = demo.housing_unit.assign(
        building_code=demo.housing_unit.building_id.map(demo.building.set_index("id").code)
    )
    _same(got, h, ["building_code", "unit_no"])

    special = _rows(
        street,
        "SELECT b.code AS building_code, h.unit_no, s.grid_code, s.street_code, "
        "s.n_released_prisoners, s.n_community_correction, s.n_drug_users, "
        "s.n_severe_mental_illness, s.n_key_youth, s.updated_on FROM housing_special_count s "
        "JOIN housing_unit h ON h.id = s.housing_unit_id JOIN building b ON b.id = h.building_id",
    )
    sc = demo.housing_special_count.merge(
        h[["id", "building_code", "unit_no"]], left_on="housing_unit_id", right_on="id"
    )
    _same(special, sc, ["building_code", "unit_no"])

    _unchanged(_load(street, "housing", main))
    # a unit whose special-group counts are now all zero loses its sensitive row
    unit = sc.iloc[0]
    cleared = frame[
        (frame.building_code == unit.building_code) & (frame.unit_no == unit.unit_no)
    ].assign(**dict.fromkeys(SPECIAL, 0), updated_on="")
    path = out / "housing_cleared.csv"
    cleared.to_csv(path, index=False)
    _unchanged(_load(street, "housing", path))
    n = _rows(street, "SELECT count(*) AS n FROM housing_special_count").n.iloc[0]
    assert n == len(sc) - 1


# --- key places and facilities ----------------------------------------------------------


def test_key_places_from_excel_with_chinese_labels(street: Engine, demo, out: Path) -> None:
    kp = demo.key_place
    frame = pd.DataFrame(
        {
            "场所编码": kp.code,
            "场所名称": kp.name,
            "场所类型": _zh("place_kind", kp.kind),
            "地址": kp.address,
            "经度": kp.geom.x.map(repr),
            "纬度": kp.geom.y.map(repr),
        }
    )
    main = _write_xlsx(frame.iloc[:-3], out / "places.xlsx")
    first = _load(street, "places", main)
    assert (first.inserted, first.rejected) == (len(kp) - 3, []), first.summary()

    bad = pd.concat([frame.tail(3), frame.head(2)], ignore_index=True)
    bad.loc[3, "场所类型"] = "网吧？"  # line 5
    bad.loc[4, ["场所编码", "经度"]] = ["K-new", None]  # line 6
    path = out / "places_bad.csv"
    bad.to_csv(path, index=False, encoding="gbk")
    report = _load(street, "places", path)
    why = _why(report)
    assert why[5][0] == "kind" and "unknown value" in why[5][1]
    assert why[6][0] == "lon" and "missing" in why[6][1]
    assert (report.inserted, len(report.rejected)) == (3, 2), report.summary()

    got = _rows(
        street,
        "SELECT code, name, kind, address, grid_code, street_code, ST_X(geom) AS x, "
        "ST_Y(geom) AS y FROM key_place ORDER BY code",
    )
    _same(got, kp.assign(x=kp.geom.x, y=kp.geom.y), ["code"])
    _unchanged(_load(street, "places", main))


def test_facilities_from_geojson(street: Engine, demo, out: Path) -> None:
    fac = demo.facility
    cols = ["code", "kind", "name", "view_radius_m", "geom"]
    main = out / "facilities.geojson"
    fac.iloc[:-4][cols].to_file(main)
    first = _load(street, "facilities", main)
    assert (first.inserted, first.rejected) == (len(fac) - 4, []), first.summary()

    bad = gpd.GeoDataFrame(
        pd.concat([fac.tail(4), fac.head(3)], ignore_index=True)[cols],
        geometry="geom",
        crs=fac.crs,
    )
    bad["code"] = bad["code"].astype(object)
    bad.loc[4, "kind"] = "路灯"  # feature 5
    bad.loc[5, ["code", "kind", "view_radius_m"]] = ["F-new1", "camera_tianwang", None]  # 6
    bad.loc[6, ["code", "kind", "view_radius_m"]] = ["F-new2", "hydrant", 30.0]  # 7
    path = out / "facilities_bad.geojson"
    bad.to_file(path)
    report = _load(street, "facilities", path)
    why = _why(report)
    assert why[5][0] == "kind"
    assert why[6][0] == "view_radius_m" and "view radius" in why[6][1]
    assert why[7][0] == "view_radius_m"
    assert (report.inserted, len(report.rejected)) == (4, 3), report.summary()

    got = _rows(
        street,
        "SELECT code, kind, name, view_radius_m, grid_code, street_code, ST_X(geom) AS x, "
        "ST_Y(geom) AS y FROM facility ORDER BY code",
    )
    _same(got, fac.assign(x=fac.geom.x, y=fac.geom.y), ["code"])
    _unchanged(_load(street, "facilities", main))


# --- incident transitions ---------------------------------------------------------------


def test_transitions_in_order_out_of_order_refused(street: Engine, demo, out: Path) -> None:
    tr = demo.incident_transition
    codes = demo.incident.set_index("id").code
    frame = pd.DataFrame(
        {
            "事件编号": tr.incident_id.map(codes),
            "时间": _local(tr["at"]),
            "状态": _zh("incident_status", tr.to_status),
            "处置层级": _zh("tier", tr.tier),
            "处理人": tr.actor,
            "处理意见": tr.note,
            "延期至": _local(tr.new_due_at.dropna()).reindex(tr.index),
        }
    )
    # the 3 incidents outside the street were refused: their steps are too
    outside = set(demo.incident.code) - set(_rows(street, "SELECT code FROM incident").code)
    n_outside = int(frame["事件编号"].isin(outside).sum())
    assert len(outside) == 3 and n_outside > 0
    # the last step of 20 closed incidents comes in a later file; the file is shuffled:
    # the loader writes each incident's steps in time order
    last = frame[~frame["事件编号"].isin(outside)].groupby("事件编号").tail(1)
    held_idx = last[tr.loc[last.index, "to_status"] == "closed"].index[:20]
    main = out / "transitions.csv"
    frame.drop(held_idx).sample(frac=1, random_state=4).to_csv(main, index=False)
    first = _load(street, "transitions", main)
    assert first.inserted == len(frame) - 20 - n_outside, first.summary()
    assert {p.field for p in first.rejected} == {"incident_code"}

    held = frame.loc[held_idx]
    loaded = tr[~tr.incident_id.map(codes).isin(outside)]
    victim = loaded[~loaded.incident_id.isin(tr.loc[held_idx, "incident_id"])]
    victim = victim[victim.incident_id == victim.incident_id.iloc[0]]
    early = (victim["at"].iloc[-1] - pd.Timedelta(hours=1)).tz_convert(SH)
    bad_rows = pd.DataFrame(
        [
            # an incident whose last stored step is later: out of order
            [codes[victim.incident_id.iloc[0]], early.strftime("%Y-%m-%d %H:%M:%S"), "处置中"],
            [held.iloc[0]["事件编号"], "2026-02-30 10:00", "已结案"],
            [held.iloc[1]["事件编号"], held.iloc[1]["时间"], "飞走了"],
        ],
        columns=["事件编号", "时间", "状态"],
    ).assign(处置层级="网格", 处理人="370214900WG0001")
    bad = pd.concat([held, bad_rows], ignore_index=True)
    path = out / "transitions_bad.csv"
    bad.to_csv(path, index=False, encoding="gbk")
    report = _load(street, "transitions", path)
    why = _why(report)
    assert "out of order" in why[22][1], why
    assert why[23][0] == "at" and "not a valid time" in why[23][1]
    assert why[24][0] == "to_status"
    assert (report.inserted, len(report.rejected)) == (20, 3), report.summary()

    got = _rows(
        street,
        "SELECT i.code, t.at, t.to_status, t.tier, t.actor, t.note, t.new_due_at, "
        "t.grid_code, t.street_code FROM incident_transition t "
        "JOIN incident i ON i.id = t.incident_id ORDER BY i.code, t.at",
    )
    exp = tr.assign(code=tr.incident_id.map(codes))
    _same(got, exp[~exp.code.isin(outside)], ["code", "at"])
    mismatch = _rows(street, "SELECT count(*) AS n FROM incident_status_mismatch").n.iloc[0]
    assert mismatch == 0
    _unchanged(_load(street, "transitions", main))
    _unchanged(_load(street, "transitions", path))


# --- patrol fixes -----------------------------------------------------------------------


def test_patrol_fixes_from_csv(street: Engine, demo, out: Path) -> None:
    fixes = demo.patrol_fix.sample(4000, random_state=7).sort_values(["worker_id", "fixed_at"])
    staff = demo.staff.set_index("id").code
    frame = pd.DataFrame(
        {
            "巡查人员编号": fixes.worker_id.map(staff),
            "定位时间": _local(fixes.fixed_at),
            "定位精度(米)": fixes.accuracy_m,
            "经度": fixes.geom.x.map(repr),
            "纬度": fixes.geom.y.map(repr),
        }
    ).reset_index(drop=True)
    main = out / "patrol_fixes.csv"
    frame.iloc[:-5].to_csv(main, index=False)
    first = _load(street, "patrols", main)
    assert (first.inserted, first.rejected) == (len(frame) - 5, []), first.summary()

    bad = frame.iloc[-8:].reset_index(drop=True).astype(object)
    bad.loc[0, "巡查人员编号"] = "370214900WG9999"  # line 2
    bad.loc[1, "定位时间"] = "昨天下午"  # line 3
    bad.loc[2, "定位精度(米)"] = -5  # line 4
    path = out / "patrol_bad.csv"
    bad.to_csv(path, index=False)
    report = _load(street, "patrols", path)
    why = _why(report)
    assert why[2][0] == "worker_code" and "load workers first" in why[2][1]
    assert why[3][0] == "fixed_at"
    assert why[4][0] == "accuracy_m"
    assert (report.inserted, len(report.rejected)) == (5, 3), report.summary()

    got = _rows(
        street,
        "SELECT s.code AS worker, p.fixed_at, p.accuracy_m, p.grid_code, p.street_code, "
        "ST_X(p.geom) AS x, ST_Y(p.geom) AS y FROM patrol_fix p JOIN staff s "
        "ON s.id = p.worker_id ORDER BY 1, 2",
    )
    exp = fixes.assign(worker=fixes.worker_id.map(staff), x=fixes.geom.x, y=fixes.geom.y)
    exp = exp[got.columns].sort_values(["worker", "fixed_at"]).reset_index(drop=True)
    got = got.sort_values(["worker", "fixed_at"]).reset_index(drop=True)
    for c in ("worker", "fixed_at", "accuracy_m", "street_code", "x", "y"):
        pd.testing.assert_series_equal(got[c], exp[c], check_dtype=False)
    # the grid is where the fix lies (the lowest code on a shared edge)
    same = (got.grid_code.fillna("-") == exp.grid_code.fillna("-")).mean()
    assert same > 0.99, same
    parts = _rows(
        street, "SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'patrol_fix'::regclass"
    ).n.iloc[0]
    assert parts == fixes.fixed_at.dt.strftime("%Y-%m").nunique()
    _unchanged(_load(street, "patrols", main))


def test_a_gpx_track_names_its_worker(street: Engine, out: Path) -> None:
    """The corpus track is named "巡查轨迹 W0001 2025-03-01": the worker's code among other
    words; its times are UTC."""
    workers = out / "worker_w0001.csv"
    pd.DataFrame(
        {"人员编码": ["W0001"], "姓名": ["测试巡查员"], "街道编码": ["370214900000"]}
    ).to_csv(workers, index=False)
    assert _load(street, "workers", workers).inserted == 1
    track = CORPUS / "patrol_track.gpx"
    report = _load(street, "patrols", track)
    assert (report.inserted, report.rejected) == (20, []), report.summary()
    got = _rows(
        street,
        "SELECT p.fixed_at, p.street_code, ST_X(p.geom) AS x, ST_Y(p.geom) AS y "
        "FROM patrol_fix p JOIN staff s ON s.id = p.worker_id WHERE s.code = 'W0001' "
        "ORDER BY p.fixed_at",
    )
    assert got.fixed_at.iloc[0] == pd.Timestamp("2025-03-01T01:00:00Z")
    assert (got.fixed_at.diff().dropna() == pd.Timedelta(minutes=1)).all()
    assert (got.street_code == "370214900000").all()
    assert (got.x.iloc[0], got.y.iloc[0]) == pytest.approx((120.4005, 36.3005))
    _unchanged(_load(street, "patrols", track))


# --- work logs --------------------------------------------------------------------------


def test_work_logs_from_excel_grid_from_the_worker(street: Engine, demo, out: Path) -> None:
    wl = demo.work_log
    staff = demo.staff.set_index("id").code
    frame = pd.DataFrame(
        {
            "人员编码": wl.worker_id.map(staff),
            "日期": wl.log_date.astype(str),
            "日志类型": _zh("log_kind", wl.kind),
            "日志内容": wl.body,
        }
    )
    main = _write_xlsx(frame.iloc[:-6], out / "worklogs.xlsx")  # no grid column: the worker's
    first = _load(street, "worklogs", main)
    assert (first.inserted, first.rejected) == (len(wl) - 6, []), first.summary()

    bad = pd.concat([frame.tail(6), frame.head(4)], ignore_index=True).assign(
        网格编码=np.r_[wl.grid_code.tail(6), wl.grid_code.head(4)]
    )
    bad.loc[6, "人员编码"] = "nobody"  # line 8
    bad.loc[7, "日期"] = "2026-11-31"  # line 9
    bad.loc[8, "日志内容"] = "很长" * 10_001  # line 10
    bad.loc[9, ["网格编码", "日志内容"]] = ["370214900999999", "走访"]  # line 11
    path = out / "worklogs_bad.csv"
    bad.to_csv(path, index=False, encoding="gb18030")
    report = _load(street, "worklogs", path)
    why = _why(report)
    assert why[8][0] == "worker_code"
    assert why[9][0] == "log_date"
    assert why[10][0] == "body" and "20,000" in why[10][1]
    assert why[11][0] == "grid_code" and "no such grid" in why[11][1]
    assert (report.inserted, len(report.rejected)) == (6, 4), report.summary()

    got = _rows(
        street,
        "SELECT s.code AS worker, w.log_date, w.kind, w.grid_code, w.street_code, w.body "
        "FROM work_log w JOIN staff s ON s.id = w.worker_id ORDER BY 1, 2, 6",
    )
    _same(got, wl.assign(worker=wl.worker_id.map(staff)), ["worker", "log_date", "body"])
    _unchanged(_load(street, "worklogs", main))
    _unchanged(_load(street, "worklogs", path))
