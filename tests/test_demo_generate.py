"""Pure-Python tests of the demo-data generator (street profile, no database).

They check what the database will enforce (CHECK constraints, keys, the workflow and tier
rules) and what the generator promises (exact tiling, buildings inside their grid, planted
truth), so a violation is caught here rather than as a failed COPY.
"""

from __future__ import annotations

import datetime as dt
import importlib
import itertools
import json
import re

import geopandas as gpd
import numpy as np
import pandas as pd
import pymannkendall
import pytest
import shapely

from loaders.demo import TABLE_ORDER, DemoData, generate
from store import models, vocab, workcal
from store.cells import CELL_COLUMNS

#: The generator's module (``loaders.demo.generate`` is also the function's name there).
gen_module = importlib.import_module("loaders.demo.generate")
SEED = 20261120
METRIC = 4549
CHINA = (73, 3, 136, 54)
#: Columns the generator leaves out: derived by triggers, or (the H3 cells) added by the writer
DERIVED = {
    "incident": {"status", "tier", "status_at", "closed_at", "extended_due_at", *CELL_COLUMNS}
}
TIER_RANK = {t: i for i, t in enumerate(vocab.TIERS)}
SHANGHAI = "Asia/Shanghai"


@pytest.fixture(scope="module")
def data() -> DemoData:
    return generate(SEED, "street")


@pytest.fixture(scope="module")
def grids_m(data: DemoData) -> gpd.GeoDataFrame:
    return data.grid.to_crs(METRIC)


# --- API and determinism -------------------------------------------------------------------


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    for c in a.columns:
        x, y = a[c], b[c]
        if isinstance(x, gpd.GeoSeries) or isinstance(x.dtype, gpd.array.GeometryDtype):
            if not np.array_equal(shapely.to_wkb(x.values), shapely.to_wkb(y.values)):
                return False
        elif not x.equals(y):
            return False
    return True


def test_same_seed_same_data_other_seed_other_data(data: DemoData) -> None:
    again = generate(SEED, "street")
    for (name, a), (_, b) in zip(data.tables(), again.tables(), strict=True):
        assert _frames_equal(a, b), name
    assert json.dumps(data.truth, sort_keys=True) == json.dumps(again.truth, sort_keys=True)
    other = generate(SEED + 1, "street")
    assert not _frames_equal(data.incident, other.incident)
    assert not _frames_equal(data.grid, other.grid)


def test_incident_plants_never_move_patrols_or_work_logs(
    data: DemoData, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the patrols and work logs draw from streams of their own: planting other incidents
    # (a bigger new spot, a smaller rising area) changes the incidents and nothing after
    # them
    profile = gen_module.load_profile

    def other_plants(scale: str) -> dict:
        cfg = profile(scale)
        cfg["incidents"]["new_spot_count"] += 40
        cfg["incidents"]["rising_monthly"]["first"] -= 7
        return cfg

    monkeypatch.setattr(gen_module, "load_profile", other_plants)
    other = generate(SEED, "street")
    assert not _frames_equal(data.incident, other.incident)
    for name in ("grid", "building", "staff", "patrol_fix", "patrol", "work_log"):
        assert _frames_equal(getattr(data, name), getattr(other, name)), name
    for part in ("patrols", "work_logs"):
        assert json.dumps(data.truth[part], sort_keys=True) == json.dumps(
            other.truth[part], sort_keys=True
        ), part


def test_tables_order_and_columns_match_the_schema(data: DemoData) -> None:
    assert [n for n, _ in data.tables()] == list(TABLE_ORDER)
    for name, frame in data.tables():
        table = models.Base.metadata.tables[name]
        writable = [
            c.name
            for c in table.columns
            if c.computed is None and c.name not in DERIVED.get(name, set())
        ]
        assert sorted(frame.columns) == sorted(writable), name
        for c in frame.columns:
            if pd.api.types.is_datetime64_any_dtype(frame[c]):
                assert isinstance(frame[c].dtype, pd.DatetimeTZDtype), (name, c)
        if "id" in frame.columns:
            assert frame["id"].tolist() == list(range(1, len(frame) + 1)), name
    json.dumps(data.truth)


def test_geometries_typed_valid_and_in_china(data: DemoData) -> None:
    expected = {
        "admin_unit": {"geom": "MultiPolygon"},
        "grid": {"geom": "MultiPolygon"},
        "building": {"geom": "Point", "footprint": "MultiPolygon"},
        "key_place": {"geom": "Point"},
        "facility": {"geom": "Point"},
        "road": {"geom": "LineString"},
        "incident": {"geom": "Point"},
        "patrol_fix": {"geom": "Point"},
        "patrol": {"geom": "LineString"},
    }
    for table, cols in expected.items():
        frame = getattr(data, table)
        assert frame.crs.to_epsg() == 4490, table
        for col, kind in cols.items():
            g = gpd.GeoSeries(frame[col])
            assert (g.geom_type == kind).all(), (table, col)
            assert g.is_valid.all() and not g.is_empty.any(), (table, col)
            x0, y0, x1, y1 = g.total_bounds
            assert x0 >= CHINA[0] and y0 >= CHINA[1] and x1 <= CHINA[2] and y1 <= CHINA[3]


# --- tiling and buildings -------------------------------------------------------------------


def test_grids_tile_the_street_exactly(data: DemoData, grids_m: gpd.GeoDataFrame) -> None:
    admin = data.admin_unit.to_crs(METRIC)
    street = admin[admin.level == "street"]
    assert street.code.tolist() == ["370214900000"]
    areas = grids_m.area
    union = shapely.union_all(grids_m.geometry.values)
    assert abs(areas.sum() - union.area) / union.area < 1e-3  # no overlaps
    assert abs(union.area - street.area.iloc[0]) / union.area < 1e-3  # no gaps
    comm = admin[admin.level == "community"]
    assert len(comm) == 9 and len(grids_m) == 41
    assert abs(comm.area.sum() - union.area) / union.area < 1e-3
    assert set(grids_m.kind) <= {"urban", "village"} and (grids_m.kind == "village").sum() in (1, 2)
    # grids are contiguous: one polygon each
    assert (grids_m.geometry.map(lambda g: len(g.geoms)) == 1).all()


def test_buildings_inside_exactly_one_grid(data: DemoData, grids_m: gpd.GeoDataFrame) -> None:
    b = data.building.to_crs(METRIC)
    fp = gpd.GeoSeries(data.building["footprint"], crs=4490).to_crs(METRIC)
    tree = shapely.STRtree(grids_m.geometry.values)
    i, j = tree.query(b.geometry.values, predicate="intersects")
    assert np.array_equal(np.bincount(i, minlength=len(b)), np.ones(len(b)))
    assert (grids_m.code.to_numpy()[j[np.argsort(i)]] == b.grid_code.to_numpy()).all()
    own = grids_m.set_index("code").geometry.loc[b.grid_code].values
    assert shapely.contains_properly(own, fp.values).all()
    assert shapely.intersects(fp.values, b.geometry.values).all()
    ft = shapely.STRtree(fp.values)
    p, q = ft.query(fp.values, predicate="intersects")
    assert (p == q).all(), "footprints overlap"
    assert 2500 <= len(b) <= 3600


# --- schema CHECK constraints ------------------------------------------------------------


def _all_match(values: pd.Series, pattern: str) -> bool:
    rx = re.compile(pattern)
    return all(rx.fullmatch(str(v)) for v in values)


def test_codes_and_area_columns(data: DemoData) -> None:
    a = data.admin_unit
    assert _all_match(a.code, r"\d{12}")
    for _, r in a.iterrows():
        if r.level == "district":
            assert r.code.endswith("000000") and pd.isna(r.parent_code)
        elif r.level == "street":
            assert r.code.endswith("000") and not r.code.endswith("000000")
            assert r.parent_code == r.code[:6] + "000000"
        else:
            assert not r.code.endswith("000") and r.parent_code == r.code[:9] + "000"
    g = data.grid
    assert _all_match(g.code, r"\d{15}") and (g.code.str[:12] == g.community_code).all()
    assert g.households.between(0, 100000).all() and g.name.str.strip().ne("").all()
    assert set(g.worker_id) == set(data.staff.id[data.staff.role == "grid_worker"])
    for name, frame in data.tables():
        if "street_code" in frame.columns:
            s = frame.street_code
            assert _all_match(s, r"\d{9}000") and not s.str.endswith("000000").any(), name
        if "grid_code" in frame.columns and "street_code" in frame.columns:
            gc = frame.grid_code.dropna()
            assert _all_match(gc, r"\d{15}"), name
            assert (gc.str[:9] == frame.street_code[gc.index].str[:9]).all(), name
    codes = set(g.code)
    for name in (
        "staff_assignment",
        "building",
        "key_place",
        "facility",
        "incident",
        "patrol",
        "work_log",
    ):
        assert set(getattr(data, name).grid_code.dropna()) <= codes, name
    assert _all_match(data.building.code, r"B\d{15}-\d{4}")
    assert _all_match(data.incident.code, r"SJ20\d{2}\d{6}")
    for name, col in (
        ("staff", "code"),
        ("building", "code"),
        ("key_place", "code"),
        ("facility", "code"),
        ("incident", "code"),
    ):
        assert getattr(data, name)[col].is_unique, name


def test_staff_and_assignments(data: DemoData) -> None:
    s = data.staff
    assert set(s.role) <= set(vocab.STAFF_ROLES)
    assert _all_match(s.phone.dropna(), r"1[3-9]\d{9}") and s.name.str.strip().ne("").all()
    assert (s.role == "grid_worker").sum() == 41
    a = data.staff_assignment
    assert not a.duplicated(["staff_id", "grid_code", "role", "valid_from"]).any()
    assert set(a.staff_id) == set(s.id)
    assert (a.valid_to.isna()).all() and set(a.role) <= set(vocab.STAFF_ROLES)


def test_housing_constraints(data: DemoData) -> None:
    u = data.housing_unit
    assert 9_000 <= len(u) <= 13_000
    assert set(u.use) <= set(vocab.HOUSING_USES) and set(u.occupancy) <= set(vocab.OCCUPANCY)
    assert not u.duplicated(["building_id", "unit_no"]).any()
    total = u.n_registered + u.n_floating
    assert u.n_registered.between(0, 200).all() and u.n_floating.between(0, 200).all()
    cats = u[["n_elderly_alone", "n_low_income", "n_disabled", "n_veterans", "n_party_members"]]
    assert (cats.min(axis=1) >= 0).all() and (cats.max(axis=1) <= total).all()
    assert (total[u.occupancy == "vacant"] == 0).all()
    rented = u[u.occupancy == "rented"]
    owner = u[u.occupancy == "owner"]
    assert rented.n_floating.mean() > owner.n_floating.mean()
    occupied = u[(u.use == "residential") & (u.occupancy != "vacant")]
    hh = occupied.groupby("grid_code").size()
    assert (data.grid.set_index("code").households == hh.reindex(data.grid.code).fillna(0)).all()
    sc = data.housing_special_count
    assert 0 < len(sc) < 0.03 * len(u) and sc.housing_unit_id.is_unique
    counts = sc.filter(like="n_")
    assert (counts.min(axis=1) >= 0).all() and (counts.max(axis=1) <= 50).all()
    assert (counts.sum(axis=1) > 0).all()
    b = data.building
    assert b.floors.between(1, 200).all() and set(b.use) <= set(vocab.BUILDING_USES)
    assert (b.floors <= 3).mean() > 0.5 and (b.floors >= 18).any()


def test_places_and_facilities(data: DemoData) -> None:
    kp, f = data.key_place, data.facility
    assert set(kp.kind) <= set(vocab.PLACE_KINDS) and kp.grid_code.notna().all()
    assert 40 <= len(kp) <= 60
    assert set(f.kind) <= set(vocab.FACILITY_KINDS) and f.grid_code.notna().all()
    camera = f.kind.str.startswith("camera")
    assert (camera == f.view_radius_m.notna()).all()
    assert f.view_radius_m.dropna().between(30, 80).all()
    assert 120 <= camera.sum() <= 140 and 90 <= (f.kind == "hydrant").sum() <= 110
    assert (f.kind == "emergency_supply").sum() == 9
    assert set(data.road.kind) <= set(vocab.ROAD_KINDS) and data.road.name.notna().all()


# --- incidents -------------------------------------------------------------------------------


def test_incident_constraints(data: DemoData, grids_m: gpd.GeoDataFrame) -> None:
    i = data.incident
    assert 1900 <= len(i) <= 2100
    assert i.category_code.str.fullmatch(r"\d{4}").all()
    assert set(i.source) <= set(vocab.INCIDENT_SOURCES) and i.severity.between(1, 4).all()
    assert (i.occurred_at <= i.reported_at).all() and (i.due_at > i.reported_at).all()
    assert i.title.str.strip().ne("").all()
    end = pd.Timestamp("2026-11-21", tz=SHANGHAI)
    assert i.reported_at.max() < end and i.reported_at.min() >= end - pd.Timedelta(days=365)
    top = i.category_code.str[:2].value_counts(normalize=True)
    assert 0.30 < top["03"] < 0.45 and 0.12 < top["01"] < 0.25 and top["06"] < 0.03
    major = i[i.severity == vocab.MAJOR_SEVERITY]
    on_time = (major.reported_at - major.occurred_at) <= pd.Timedelta(hours=4)
    assert on_time.mean() > 0.7 and not on_time.all()
    hour = i.reported_at.dt.tz_convert(SHANGHAI).dt.hour
    assert hour.between(8, 18).mean() > 0.7
    # point in exactly one grid, the one named; the planted outsiders in none
    pts = i.to_crs(METRIC)
    tree = shapely.STRtree(grids_m.geometry.values)
    k, g = tree.query(pts.geometry.values, predicate="intersects")
    n_hit = np.bincount(k, minlength=len(i))
    outside = i.grid_code.isna().to_numpy()
    assert outside.sum() == 3 and (n_hit[outside] == 0).all() and (n_hit[~outside] == 1).all()
    named = pd.Series(grids_m.code.to_numpy()[g], index=k)
    assert (named == i.grid_code.iloc[named.index].to_numpy()).all()
    assert sorted(i.code[outside]) == sorted(data.truth["incidents"]["outside_street"])
    assert (i.street_code[outside] == "370214900000").all()
    # patrol-sourced incidents name their grid's worker as reporter
    worker = data.grid.set_index("code").worker_id
    pat = i[i.source == "patrol"]
    assert (pat.reporter_id.astype(int).to_numpy() == worker.loc[pat.grid_code].to_numpy()).all()


def test_transition_logs_obey_workflow_and_tiers(data: DemoData) -> None:
    t = data.incident_transition.sort_values(["incident_id", "at"], kind="stable")
    assert t.id.is_unique and set(t.incident_id) == set(data.incident.id)
    assert set(t.to_status) <= set(vocab.INCIDENT_STATUSES) and set(t.tier) <= set(vocab.TIERS)
    same = t.incident_id.eq(t.incident_id.shift())
    prev = t.to_status.shift().where(same)
    allowed = {(a, b) for a, bs in vocab.WORKFLOW.items() for b in bs}
    pairs = zip(prev.where(same, None), t.to_status, strict=True)
    assert all(
        ((None if not s else p), b) in allowed for (p, b), s in zip(pairs, same, strict=True)
    )
    assert (t.to_status[~same] == "reported").all()
    assert (t["at"][same] > t["at"].shift()[same]).all(), "times must increase strictly"
    rank = t.tier.map(TIER_RANK)
    step = rank - rank.shift()
    esc = same & (t.to_status == "escalated")
    ret = same & (t.to_status == "returned")
    other = same & ~esc & ~ret
    assert (step[esc] > 0).all() and (step[ret] <= 0).all() and (step[other] == 0).all()
    ext = t.to_status == "extended"
    assert (t.new_due_at[ext] > t["at"][ext]).all() and t.new_due_at[~ext].isna().all()
    assert t.actor.str.strip().ne("").all()
    inc = data.incident.set_index("id")
    assert (
        t.grid_code.fillna("-").to_numpy()
        == inc.grid_code.loc[t.incident_id].fillna("-").to_numpy()
    ).all()
    assert (t.street_code.to_numpy() == inc.street_code.loc[t.incident_id].to_numpy()).all()
    first = t[~same].set_index("incident_id")["at"]
    assert (first == inc.reported_at.loc[first.index]).all()
    assert t["at"].max() < pd.Timestamp("2026-11-21", tz=SHANGHAI)


def test_status_mix(data: DemoData) -> None:
    t = data.incident_transition.sort_values(["incident_id", "at"], kind="stable")
    last = t.groupby("incident_id").tail(1)
    n = len(data.incident)
    status = last.to_status.value_counts()
    assert status["closed"] / n >= 0.98
    pending = status.reindex(["registered", "dispatched", "handling"]).fillna(0).sum()
    assert 1 <= pending <= 20 and 1 <= status.get("feedback", 0) <= 6
    top = t.tier.map(TIER_RANK).groupby(t.incident_id).max()
    assert 0.12 < (top >= 1).mean() < 0.22
    assert 0.01 < (top >= 2).mean() < 0.045 and (top == 3).sum() >= 1
    ever = t.groupby("to_status").incident_id.nunique()
    for s in ("reopened", "reworked", "extended", "returned"):
        assert ever.get(s, 0) >= 1, s
    truth = data.truth["incidents"]
    assert truth["closed_late"] > 0 and truth["open_overdue"] > 0
    assert truth["status"] == {k: int(v) for k, v in status.sort_index().items()}


def _near_by_window(i: gpd.GeoDataFrame, spot: dict, radius_m: float) -> list[int]:
    c = gpd.GeoSeries(shapely.points([spot["lon"]], [spot["lat"]]), crs=4490).to_crs(METRIC)[0]
    near = i[(i.distance(c) < radius_m) & i.category_code.isin(spot["categories"])]
    return [
        int(((near.reported_at >= w["start"]) & (near.reported_at < w["end"])).sum())
        for w in spot["windows"]
    ]


def test_planted_hotspots_rising_area_and_new_spot(data: DemoData) -> None:
    i = data.incident.to_crs(METRIC)
    truth = data.truth["incidents"]
    for h in truth["hotspots"]:
        c = gpd.GeoSeries(shapely.points([h["lon"]], [h["lat"]]), crs=4490).to_crs(METRIC)[0]
        near = i[i.distance(c) < 100]
        assert len(near) >= 0.7 * h["count"]
        assert near.category_code.isin(h["categories"]).mean() > 0.6
    # the months: whole calendar months stepping back from the period's end, covering it
    months = truth["rising"]["windows"]
    assert len(months) == 12
    assert [w["start"] for w in truth["new_spot"]["windows"]] == [w["start"] for w in months]
    local = [pd.Timestamp(w["start"]).tz_convert(SHANGHAI) for w in months]
    assert [t.day for t in local] == [21] * 12 and local[0].date() == dt.date(2025, 11, 21)
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(months))
    assert data.incident.reported_at.min() >= pd.Timestamp(months[0]["start"])
    # the rising area: present every month, climbing all year (planted counts strictly
    # increasing; what is found within 2σ, background included, trending up)
    r = truth["rising"]
    planted = [w["count"] for w in r["windows"]]
    assert min(planted) > 0 and all(a < b for a, b in itertools.pairwise(planted))
    assert r["count"] == sum(planted)
    found = _near_by_window(i, r, 2 * r["sigma_m"])
    assert all(f >= 0.6 * p for f, p in zip(found, planted, strict=True))
    assert pymannkendall.original_test(found).trend == "increasing"
    # the new spot: the final month only
    n = truth["new_spot"]
    planted = [w["count"] for w in n["windows"]]
    assert planted[-1] == n["count"] > 0 and not any(planted[:-1])
    found = _near_by_window(i, n, 2 * n["sigma_m"])
    assert found[-1] >= 0.6 * planted[-1]
    assert max(found[:-1]) < found[-1] / 5  # absent before, apart from background


# --- patrols and logs ----------------------------------------------------------------------


def test_patrol_fixes_on_working_days_in_patrol_hours(data: DemoData) -> None:
    f = data.patrol_fix
    assert not f.duplicated(["worker_id", "fixed_at"]).any()
    local = f.fixed_at.dt.tz_convert(SHANGHAI)
    days = pd.Series(local.dt.date.unique())
    assert days.map(workcal.is_workday).all()
    assert days.min() >= dt.date(2026, 10, 22) and days.max() <= dt.date(2026, 11, 20)
    h = local.dt.hour + local.dt.minute / 60
    assert (h.between(8.5, 12) | h.between(14.5, 18)).all()
    assert set(f.worker_id) == set(data.grid.worker_id)
    assert f.accuracy_m.between(0, 100000).all() and (f.accuracy_m > 50).any()
    assert f.accuracy_m.quantile(0.9) <= 20
    p = data.patrol
    assert (p.ended_at > p.started_at).all() and (p.n_fixes >= 2).all() and (p.length_m >= 0).all()
    assert not p.duplicated(["worker_id", "started_at"]).any()
    assert p.n_fixes.sum() == len(f)
    dur = (p.ended_at - p.started_at).dt.total_seconds() / 60
    assert dur.median() > 25
    speed = p.length_m / (p.ended_at - p.started_at).dt.total_seconds()
    assert speed.between(0.9, 1.6).mean() > 0.9
    worker_grid = data.grid.set_index("worker_id").code
    assert (p.grid_code.to_numpy() == worker_grid.loc[p.worker_id].to_numpy()).all()


def test_skipped_patrols_have_no_fixes(data: DemoData) -> None:
    skipped = data.truth["patrols"]["skipped"]
    assert skipped
    staff = data.staff.set_index("code").id
    f = data.patrol_fix
    local = f.fixed_at.dt.tz_convert(SHANGHAI)
    key = set(
        zip(
            f.worker_id,
            local.dt.date.astype(str),
            np.where(local.dt.hour < 12, "am", "pm"),
            strict=True,
        )
    )
    for s in skipped:
        assert (staff[s["worker"]], s["date"], s["slot"]) not in key


def test_never_visited_blocks_and_fully_walked_grids(data: DemoData) -> None:
    truth = data.truth["patrols"]
    fixes = data.patrol_fix.to_crs(METRIC)
    tree = shapely.STRtree(fixes.geometry.values)
    b = data.building.set_index("code").to_crs(METRIC)
    assert truth["never_visited"]
    for nv in truth["never_visited"]:
        assert nv["building_codes"]
        pts = b.geometry.loc[nv["building_codes"]].values
        hit = tree.query(pts, predicate="dwithin", distance=20.0)
        assert hit.size == 0
        poly = gpd.GeoSeries.from_wkt([nv["wkt"]], crs=4490).to_crs(METRIC)[0]
        assert shapely.contains(poly, pts).all()
    roads = data.road.to_crs(METRIC)
    grids = data.grid.set_index("code").to_crs(METRIC)
    assert truth["fully_walked_grids"]
    for code in truth["fully_walked_grids"]:
        mids = roads.geometry.interpolate(0.5, normalized=True)
        mids = mids[mids.distance(grids.geometry[code]) < 0.5].values
        worker = grids.worker_id[code]
        sessions = data.patrol[data.patrol.worker_id == worker]
        mine = fixes[fixes.worker_id == worker]
        for _, s in sessions.iterrows():
            sel = mine[(mine.fixed_at >= s.started_at) & (mine.fixed_at <= s.ended_at)]
            d = shapely.STRtree(sel.geometry.values).query_nearest(mids, return_distance=True)[1]
            assert (d < 20).all()


def test_work_logs(data: DemoData) -> None:
    w = data.work_log
    assert w.body.str.strip().str.len().between(1, 20000).all()
    assert set(w.kind) <= set(vocab.LOG_KINDS)
    weeks = data.truth["periods_days"]["work_logs"] / 7
    per_worker = w.groupby("worker_id").size() / weeks
    kind = data.grid.set_index("worker_id").kind
    code = data.staff.set_index("id").code
    below = set(data.truth["work_logs"]["below_quota_workers"])
    for worker, rate in per_worker.items():
        quota = 2 if kind[worker] == "village" else 5
        if code[worker] in below:
            assert rate < quota - 0.5
        else:
            assert rate > quota * 0.8
