"""The 巡查 page's view model (dashboard.patrol_view), the replay fixes (geo.replay) and the
map builder (dashboard.patrol_maps): URL round trips, every figure equal to geo.coverage's
on the street demo, the replay cut at a moment, and the map's HTML."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from dashboard import patrol_view as pv
from dashboard.offline import use_local_assets
from dashboard.patrol_maps import patrol_map
from geo.coverage import BAD_ACCURACY, IMPOSSIBLE_JUMP, KEPT, coverage_day, unvisited_buildings
from geo.replay import worker_day_fixes
from geo.settings import CoverageParams
from store import patrol_sql, queries

STREETS = {"370214900000": "示范街道"}
DEFAULT = pv.default_query(dt.date(2026, 11, 20), STREETS)


@pytest.fixture(scope="module")
def street_days(demo_engine: Engine) -> dict:
    """The demo street, its latest patrol day, that day's and the day before's coverage."""
    with demo_engine.connect() as conn:
        (street,) = queries.street_names(conn)
        last = patrol_sql.latest_fix(conn, street=street)
        day = last.astimezone(dt.timezone(dt.timedelta(hours=8))).date()
        days = [day - dt.timedelta(days=1), day]
        results = [coverage_day(conn, d, street=street) for d in days]
        grids = queries.grids(conn, street_code=street)[["code", "name", "geometry"]]
        unvisited = unvisited_buildings(conn, day, street=street)
    return {"street": street, "day": day, "results": results, "grids": grids, "unv": unvisited}


def test_default_is_the_latest_patrol_day_of_the_first_street() -> None:
    assert DEFAULT.street == "370214900000"
    assert DEFAULT.day == dt.date(2026, 11, 20)
    assert (DEFAULT.span, DEFAULT.worker, DEFAULT.window, DEFAULT.color) == (
        "day",
        None,
        7,
        "rule",
    )
    assert DEFAULT.days == [dt.date(2026, 11, 20)]


def test_week_is_the_seven_days_ending_on_the_day() -> None:
    q = pv.PatrolQuery("370214900000", None, dt.date(2026, 11, 20), "week", None, 7, "rule")
    assert q.days[0] == dt.date(2026, 11, 14) and q.days[-1] == q.day and len(q.days) == 7


@given(
    day=st.dates(dt.date(2020, 1, 1), dt.date(2030, 12, 31)),
    span=st.sampled_from(pv.SPANS),
    worker=st.none() | st.integers(1, 10**6),
    window=st.sampled_from((7, 14, 30)),
    color=st.sampled_from(pv.COLOR_BYS),
    community=st.none() | st.from_regex(r"[0-9]{12}", fullmatch=True),
)
def test_url_round_trip(
    day: dt.date, span: str, worker: int | None, window: int, color: str, community: str | None
) -> None:
    q = pv.PatrolQuery("370214900000", community, day, span, worker, window, color)  # type: ignore[arg-type]
    back, bad = pv.parse_query(pv.to_params(q), defaults=DEFAULT, streets=STREETS)
    assert bad == [] and back == q


@given(st.dictionaries(st.sampled_from(["day", "span", "worker", "window", "color"]), st.text()))
def test_any_url_opens_and_reports_what_it_could_not_use(params: dict[str, str]) -> None:
    q, bad = pv.parse_query(params, defaults=DEFAULT, streets=STREETS)
    used = {b.key for b in bad}
    for key in params:
        assert (key in used) or pv.to_params(q).get(key) == params[key].strip()


@pytest.mark.parametrize(
    ("key", "value"),
    [("day", "2026-02-30"), ("span", "month"), ("worker", "-3"), ("window", "10"), ("street", "1")],
)
def test_bad_values_fall_back_to_the_default(key: str, value: str) -> None:
    q, bad = pv.parse_query({key: value}, defaults=DEFAULT, streets=STREETS)
    assert q == DEFAULT and [(b.key, b.value) for b in bad] == [(key, value)]


def test_rule_line_states_the_parameters() -> None:
    text = pv.rule_text(CoverageParams(), "zh")
    for part in ("2次巡查", "≥3小时", "≥15分钟", "≤50米", "15公里/小时"):
        assert part in text
    assert "2 patrols a day" in pv.rule_text(CoverageParams(), "en")


@pytest.mark.parametrize(
    ("value", "cls"), [(0.0, 0), (0.49, 0), (0.5, 1), (0.8, 2), (0.95, 3), (1.0, 3), (None, -1)]
)
def test_share_classes(value: float | None, cls: int) -> None:
    assert pv.share_class(float("nan") if value is None else value) == cls


# --- figures equal geo's, on the street demo -------------------------------------------------


def test_day_summary_is_geos_grid_day(street_days: dict) -> None:
    r = street_days["results"][-1]
    s = pv.grid_summary([r], None)
    g = r.grid_day.set_index("grid_code")
    f = s.frame.set_index("grid_code")
    assert s.grid_days == len(g) and s.grid_days_met == int(g["rule_met"].sum())
    assert (f["days_met"] == g["rule_met"].astype(int).reindex(f.index)).all()
    assert (f["counted_patrols"] == g["counted_patrols"].reindex(f.index)).all()
    pd.testing.assert_series_equal(
        f["building_share"], g["building_share"].reindex(f.index), check_names=False
    )
    # minutes inside: geo's session_grid for the grid's patrols, summed
    sg = r.session_grid.merge(r.sessions[["session", "patrol"]], on="session")
    minutes = sg[sg["patrol"]].groupby("grid_code")["minutes_inside"].sum()
    assert f["minutes_inside"].sum() == pytest.approx(minutes.sum())
    table = pv.grid_table(s, "day", "zh")
    assert list(table.columns)[:3] == ["网格", "网格编码", "一日两巡"]
    worst = table.iloc[0]
    assert worst["一日两巡"] == ("达标" if s.grid_days_met == s.grid_days else "未达标")


def test_week_counts_days_met_and_sums_patrols(street_days: dict) -> None:
    results = street_days["results"]
    s = pv.grid_summary(results, None)
    work = [r.grid_day[r.grid_day["workday"].ne(False)] for r in results]
    met = sum(int(g["rule_met"].sum()) for g in work)
    patrols = sum(int(g["counted_patrols"].sum()) for g in work)
    assert (s.grid_days, s.grid_days_met) == (sum(len(g) for g in work), met)
    assert int(s.frame["counted_patrols"].sum()) == patrols
    matrix = pv.compliance_matrix(results, None)
    assert list(matrix.columns) == [r.day.strftime("%m-%d") for r in results]
    assert int((matrix == "✓").sum().sum()) == met
    shown = pv.grid_table(s, "week", "zh")["达标天数"]
    assert sum(int(v.split(" / ")[0]) for v in shown) == met


def test_community_filter_keeps_its_grids(street_days: dict) -> None:
    r = street_days["results"][-1]
    community = r.grid_day["community_code"].iloc[0]
    s = pv.grid_summary([r], community)
    assert set(s.frame["grid_code"]) == set(
        r.grid_day.loc[r.grid_day["community_code"] == community, "grid_code"]
    )
    units, _colors, _entries = pv.grid_map_units(street_days["grids"], s, "roads", "day", "zh")
    assert set(units["grid_code"]) == set(s.frame["grid_code"])  # the map shows only its grids
    workers = pv.worker_table(pv.worker_summary([r]), set(s.frame["grid_code"]), "zh")
    assert 0 < len(workers) < len(r.worker_day)


def test_worker_summary_is_geos_worker_day(street_days: dict) -> None:
    r = street_days["results"][-1]
    w = pv.worker_summary([r]).set_index("worker_id")
    g = r.worker_day.set_index("worker_id").reindex(w.index)
    assert (w["patrols"] == g["patrols"]).all()
    assert w["distance_m"].to_numpy() == pytest.approx(g["distance_m"].to_numpy())
    two = pv.worker_summary(street_days["results"]).set_index("worker_id")
    both = pd.concat([x.worker_day for x in street_days["results"]]).groupby("worker_id")["patrols"]
    assert (two["patrols"] == both.sum().reindex(two.index)).all()


def test_map_colours_grids_by_the_rule(street_days: dict) -> None:
    r = street_days["results"][-1]
    s = pv.grid_summary([r], None)
    units, colors, entries = pv.grid_map_units(street_days["grids"], s, "rule", "day", "zh")
    assert len(units) == len(r.grid_day)
    assert int((units["cls"] == 1).sum()) == s.grid_days_met
    assert [e[1] for e in entries] == ["达标", "未达标"]
    use_local_assets()
    html = patrol_map(units, colors, entries, legend_title="一日两巡").get_root().render()
    assert pv.MET_COLOR in html
    assert "一日两巡" in html or json.dumps("一日两巡")[1:-1] in html  # the legend
    assert "cdn" not in html.lower()  # assets are local (dashboard.offline)


def test_unvisited_subset_is_geos_window(street_days: dict) -> None:
    unv = street_days["unv"]
    for window in (7, 14, 30):
        sub = pv.unvisited_subset(unv, window, None, "zh")
        assert len(sub) == int(unv[f"not_passed_{window}d"].sum())
        table = pv.unvisited_table(sub, "zh")
        assert list(table["楼栋编码"]) == list(sub["building_code"])


# --- replay ---------------------------------------------------------------------------------


def test_replay_fixes_are_geos_cleaning(demo_engine: Engine, street_days: dict) -> None:
    r = street_days["results"][-1]
    w = r.worker_day[r.worker_day["patrols"] > 0].iloc[0]
    with demo_engine.connect() as conn:
        fixes = worker_day_fixes(
            conn, street_days["day"], int(w["worker_id"]), street=street_days["street"]
        )
    assert len(fixes) == w["fixes"]
    assert int((fixes["reason"] == BAD_ACCURACY).sum()) == w["dropped_accuracy"]
    assert int((fixes["reason"] == IMPOSSIBLE_JUMP).sum()) == w["dropped_speed"]
    sessions = r.sessions[r.sessions["worker_id"] == w["worker_id"]]
    kept = fixes[fixes["reason"] == KEPT]
    assert kept["session"].nunique() == len(sessions)
    assert kept.groupby("session").size().tolist() == sessions["fixes"].tolist()
    full = pv.replay(fixes, None, CoverageParams(), "zh")
    assert len(full.sessions) == len(sessions)
    assert len(full.dropped) == w["dropped_accuracy"] + w["dropped_speed"]
    middle = fixes["at"].iloc[len(fixes) // 2]
    part = pv.replay(fixes, middle, CoverageParams(), "zh")
    n_full = sum(len(p) for _s, p in full.stretches)
    n_part = sum(len(p) for _s, p in part.stretches)
    assert 0 < n_part < n_full == len(kept)
    use_local_assets()
    html = (
        patrol_map(
            pv.grid_map_units(
                street_days["grids"], pv.grid_summary([r], None), "rule", "day", "zh"
            )[0],
            {0: "#000000", 1: "#ffffff"},
            [("#000000", "x")],
            legend_title="t",
            replay=full,
        )
        .get_root()
        .render()
    )
    assert pv.SESSION_COLORS[0] in html


def test_replay_cuts_steps_and_explains_drops() -> None:
    at = pd.Series(pd.date_range("2026-11-20 09:00", periods=6, freq="10s", tz="Asia/Shanghai"))
    at.iloc[3:] += pd.Timedelta(minutes=5)  # a 5-minute hole: signal lost
    fixes = pd.DataFrame(
        {
            "at": at,
            "lon": [120.0, 120.0001, 120.0002, 120.001, 120.0011, 121.0],
            "lat": [36.0] * 6,
            "accuracy_m": [5.0, 5.0, 5.0, 5.0, 5.0, 80.0],
            "reason": [KEPT, KEPT, KEPT, KEPT, KEPT, BAD_ACCURACY],
            "session": [0, 0, 0, 0, 0, -1],
            "drawn": [False, True, True, False, True, False],
        }
    )
    r = pv.replay(fixes, None, CoverageParams(), "zh")
    assert [len(p) for _s, p in r.stretches] == [3, 2]
    assert len(r.gaps) == 1
    assert r.dropped["why"].tolist() == ["定位精度差（误差超过50米）"]
    assert r.position == (36.0, 120.0011)
    assert r.sessions["信号中断次数"].tolist() == [1]
    early = pv.replay(fixes, at.iloc[1], CoverageParams(), "en")
    assert [len(p) for _s, p in early.stretches] == [2] and early.dropped.empty
