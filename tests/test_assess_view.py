"""The 考核 page without a browser: its URL state, the formula written from the settings,
the ranking order, the grades against the caps and one worker's breakdown — on hand-made
frames whose every figure is known, and on the demo street against geo.assess."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from dashboard import assess_view as av
from geo.assess import COLUMNS, assess, star_score, stars_of
from geo.assess_detail import grade_caps, required_logs_in_month, score_components
from geo.kpis import kpis_by_unit
from geo.settings import AnalyticsSettings, Grades, Quotas, StarWeights, default_settings

STREETS = {"370214900000": "示范街道"}
MONTHS = av.month_range(dt.date(2025, 11, 21), dt.date(2026, 11, 20))
COMMUNITIES = {"370214900004": "晨光社区", "370215000001": "别的街道的社区"}
DEMO_STREET = "370214900000"
S = default_settings()


def parse(params: dict[str, str]) -> tuple[av.AssessQuery, list[av.BadParam]]:
    defaults = av.default_query(dt.date(2026, 11, 20), STREETS)
    return av.parse_query(
        params, defaults=defaults, streets=STREETS, months=MONTHS, communities=COMMUNITIES
    )


# --- months and the URL -----------------------------------------------------------------------


def test_default_month_is_the_latest_complete_one() -> None:
    assert av.default_month(dt.date(2026, 11, 20)) == "2026-10"
    assert av.default_month(dt.date(2026, 11, 30)) == "2026-11"  # the last day completes it
    assert av.default_month(dt.date(2026, 1, 5)) == "2025-12"
    q = av.default_query(dt.date(2026, 11, 20), STREETS)
    assert (q.street, q.month, q.community, q.patrols, q.worker) == (
        DEMO_STREET,
        "2026-10",
        None,
        "auto",
        None,
    )
    assert av.default_query(None, ["a", "b"], today=dt.date(2026, 3, 1)).street is None


def test_month_range_newest_first_across_a_year() -> None:
    assert MONTHS[0] == "2026-11" and MONTHS[-1] == "2025-11" and len(MONTHS) == 13
    assert av.month_range(dt.date(2026, 3, 9), dt.date(2026, 3, 10)) == ["2026-03"]


def test_month_label_says_when_data_stops_early() -> None:
    last = dt.date(2026, 11, 20)
    assert av.month_label("2026-10", "zh", last) == "2026年10月"
    assert av.month_label("2026-11", "zh", last) == "2026年11月（数据截至20日）"
    assert av.month_label("2026-11", "en", dt.date(2026, 11, 30)) == "2026-11"


def test_url_round_trip() -> None:
    q = av.AssessQuery(
        street=DEMO_STREET,
        month="2026-09",
        community="370214900004",
        patrols="off",
        worker="370214900WG0019",
    )
    assert parse(av.to_params(q)) == (q, [])
    default = parse({})[0]
    assert "community" not in av.to_params(default) and "worker" not in av.to_params(default)


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"month": "2026-13"}, "month"),
        ({"month": "2024-01"}, "month"),  # no data then
        ({"patrols": "maybe"}, "patrols"),
        ({"street": "999999999000"}, "street"),
        ({"community": "370299999999"}, "community"),
        ({"community": "370215000001"}, "community"),  # exists, but in another street
        ({"worker": "a b;drop"}, "worker"),
    ],
)
def test_bad_values_fall_back_and_are_reported(params: dict[str, str], key: str) -> None:
    q, bad = parse(params)
    assert [b.key for b in bad] == [key]
    assert q == parse({})[0]


@given(
    st.dictionaries(
        st.sampled_from(["street", "month", "community", "patrols", "worker"]), st.text()
    )
)
def test_any_url_gives_a_state_never_an_exception(params: dict[str, str]) -> None:
    q, bad = parse(params)
    assert q.month in MONTHS and q.patrols in av.PATROLS
    assert len(bad) <= len(params) + 1


def test_patrols_enter_the_score_only_with_every_day_tracked_unless_chosen() -> None:
    assert av.patrols_included("auto", 18, 18)
    assert not av.patrols_included("auto", 18, 7)
    assert not av.patrols_included("auto", 0, 0)
    assert av.patrols_included("on", 18, 0)
    assert not av.patrols_included("off", 18, 18)


def test_codes_in_street_and_community() -> None:
    assert av.in_street("370214900004", DEMO_STREET)
    assert not av.in_street("370215000001", DEMO_STREET)
    assert av.in_community("370214900003001,370214900004002", "370214900004")
    assert not av.in_community("370214900003001", "370214900004")
    assert av.overview_link(DEMO_STREET, "370214900004002") == (
        "./?street=370214900000&grid=370214900004002"
    )


# --- the formula follows the settings -------------------------------------------------------


def _all_text(f: av.Formula) -> str:
    return "\n".join([f.score, f.renorm, *f.parts, f.stars, *f.grades])


def test_formula_shows_the_default_settings() -> None:
    f = av.formula(S, "zh")
    assert f.score == (
        "综合得分 = 1 + 4 × (0.25×事件上报 + 0.15×民情日志 + 0.25×一日两巡 + 0.25×按期办结 "
        "+ 0.1×无返工) ÷ (0.25 + 0.15 + 0.25 + 0.25 + 0.1)"
    )
    text = _all_text(f)
    for piece in ("矛盾纠纷数 ÷ 2", "每周 5 篇", "村网格每周 2 篇", "至少 4 星", "20%", "30%"):
        assert piece in text, piece
    assert "4 小时" in text and "保留 2 位小数" in text


def test_formula_text_changes_with_the_settings() -> None:
    changed = AnalyticsSettings(
        stars=StarWeights(incident_quota=0.4, log_quota=0.1, two_patrol=0.0),
        quotas=Quotas(disputes_per_month=3, urban_logs_per_week=4),
        grades=Grades(good_cap=0.15, fairly_good_cap=0.35, late_major_bars_good=False),
    )
    f = av.formula(changed, "zh")
    assert "0.4×事件上报" in f.score and "0.1×民情日志" in f.score and "0×一日两巡" in f.score
    assert "(0.4 + 0.1 + 0 + 0.25 + 0.1)" in f.score
    text = _all_text(f)
    assert "矛盾纠纷数 ÷ 3" in text and "每周 4 篇" in text
    assert "15%" in text and "35%" in text and "20%" not in text
    assert "小时才上报" not in text  # the late-major rule is off
    en = _all_text(av.formula(changed, "en"))
    assert "0.4×incident quota" in en and "disputes ÷ 3" in en


# --- hand-made frames ---------------------------------------------------------------------------


def frame(rows: list[dict]) -> pd.DataFrame:
    """An assess-shaped frame: every column of geo.assess, defaults for those not given."""
    base = {
        "worker_id": 0,
        "worker_code": "",
        "worker_name": "",
        "street_code": DEMO_STREET,
        "grids": "370214900001001",
        "grid_kind": "urban",
        "reported": 0,
        "disputes": 0,
        "hazards": 0,
        "incident_quota_met": False,
        "logs": 0,
        "log_weeks": 4,
        "log_weeks_met": 4,
        "log_quota_met": True,
        "two_patrol_share": np.nan,
        "due": 0,
        "due_on_time": 0,
        "on_time_rate": np.nan,
        "grid_reported": 0,
        "reworked": 0,
        "rework_rate": np.nan,
        "late_majors": 0,
        "score": np.nan,
        "stars": pd.NA,
        "grade": "average",
        "grade_label": "一般",
    }
    out = pd.DataFrame([{**base, **r} for r in rows], columns=list(COLUMNS))
    out["stars"] = out["stars"].astype("Int64")
    return out


def test_ranks_share_ties_on_score_and_reported_and_skip() -> None:
    f = frame(
        [
            {"worker_code": "a", "score": 4.5, "reported": 3},
            {"worker_code": "b", "score": 4.0, "reported": 5},
            {"worker_code": "c", "score": 4.0, "reported": 5},
            {"worker_code": "d", "score": 4.0, "reported": 2},
            {"worker_code": "e", "score": np.nan, "reported": 9},
        ]
    )
    assert av.ranks(f, S).tolist() == [1, 2, 2, 4, 5]


def test_worker_table_rows_keep_geo_order_and_show_requirements() -> None:
    f = frame(
        [
            {
                "worker_code": "a",
                "worker_name": "甲",
                "score": 4.96,
                "stars": 5,
                "grade": "good",
                "grade_label": "好",
                "disputes": 4,
                "hazards": 1,
                "logs": 21,
                "log_weeks": 5,
                "log_weeks_met": 5,
                "due": 13,
                "due_on_time": 12,
                "on_time_rate": 12 / 13,
                "grid_reported": 10,
                "reworked": 1,
                "rework_rate": 0.1,
                "two_patrol_share": 0.5,
            },
            {
                "worker_code": "b",
                "worker_name": "乙",
                "grid_kind": "village",
                "grids": "370214900004001",
                "score": 2.4,
                "stars": 2,
            },
        ]
    )
    table = av.worker_table(f, S, "2026-10", "zh", grid_names={"370214900001001": "一网格"})
    first = table.iloc[0].tolist()
    assert first == [
        1,
        "甲",
        "一网格",
        "★★★★★",
        "4.96",
        "好",
        "4/2 · 1/2",
        f"21/{required_logs_in_month('2026-10', 'urban')} · 5/5",
        "50%",
        "12/13 (92%)",
        "1/10 (10%)",
    ]
    second = table.iloc[1].tolist()
    assert second[2] == "370214900004001"  # no name known: the code
    assert second[3] == "★★☆☆☆" and second[8:] == ["—", "—", "—"]
    assert second[7].startswith(f"0/{required_logs_in_month('2026-10', 'village')} ")
    only = av.worker_table(f, S, "2026-10", "zh", community="370214900004")
    assert only.iloc[:, 0].tolist() == [2]  # the street rank, not 1
    assert av.stars_text(pd.NA) == "—"


def test_grade_distribution_shows_counts_and_caps() -> None:
    grades = ["good"] * 2 + ["fairly_good"] * 3 + ["average"] * 6
    f = frame([{"worker_code": str(i), "grade": g} for i, g in enumerate(grades)])
    dist = av.grade_distribution(f, S, "zh")
    assert [(d.label, d.n, d.cap) for d in dist] == [
        ("好", 2, 2),
        ("较好", 3, 3),
        ("一般", 6, None),
    ]
    assert grade_caps(11) == {"good": 2, "fairly_good": 3}
    assert grade_caps(10) == {"good": 2, "fairly_good": 3}  # floor(20 % × 10) exactly 2
    assert grade_caps(4) == {"good": 0, "fairly_good": 1}
    looser = grade_caps(10, Grades(good_cap=0.3, fairly_good_cap=0.5))
    assert looser == {"good": 3, "fairly_good": 5}


def test_grade_reasons_name_what_kept_a_worker_back() -> None:
    f = frame(
        [
            {"worker_code": "a", "score": 4.6, "stars": 5, "grade": "good"},
            {
                "worker_code": "b",
                "score": 4.5,
                "stars": 5,
                "grade": "fairly_good",
                "late_majors": 1,
            },
            {"worker_code": "c", "score": 4.4, "stars": 4, "grade": "fairly_good"},
            {"worker_code": "d", "score": 3.2, "stars": 3, "grade": "average"},
            {"worker_code": "e", "score": 2.2, "stars": 2, "grade": "average"},
        ]
    )
    why = {c: av.grade_reasons(f.iloc[i], 5, S, "zh") for i, c in enumerate("abcde")}
    assert why["a"] == ["评为好：达到 4 星，排名在好等次名额（1 人）之内。"]
    assert "超过 4 小时才上报" in why["b"][0] and why["b"][1].startswith("评为较好")
    assert "名额（1 人）已由排名更前" in why["c"][0]
    assert why["d"][0] == "不能评好：不足 4 星。" and "较好等次名额（1 人）已满" in why["d"][1]
    assert why["e"] == ["不能评好：不足 4 星。", "不能评较好：不足 3 星。"]


def test_grid_table_orders_by_worker_score_then_on_time() -> None:
    f = frame(
        [
            {
                "worker_code": "a",
                "worker_name": "甲",
                "grids": "370214900001001",
                "score": 4.0,
                "stars": 4,
            },
            {
                "worker_code": "b",
                "worker_name": "乙",
                "grids": "370214900001002",
                "score": 4.0,
                "stars": 4,
            },
            {
                "worker_code": "c",
                "worker_name": "丙",
                "grids": "370214900004001",
                "score": 4.5,
                "stars": 5,
            },
        ]
    )
    codes = ["370214900001001", "370214900001002", "370214900004001", "370214900004002"]
    kpis = pd.DataFrame(
        {
            "name": ["一", "二", "三", "四"],
            "reported": [3, 4, 5, 0],
            "closure_rate": [1.0, 0.5, 1.0, np.nan],
            "on_time_rate": [0.5, 1.0, 1.0, np.nan],
            "rework_rate": [0.0, 0.25, 0.0, np.nan],
            "open_overdue": [0, 1, 0, 0],
        },
        index=pd.Index(codes, name="unit"),
    )
    table = av.grid_table(f, kpis, S, "zh")
    assert table["网格"].tolist() == ["三", "二", "一", "四"]
    assert table["排名"].tolist() == [1, 2, 3, 4]
    assert table.loc[3, "网格员"] == "—" and table.loc[3, "得分"] == "—"
    only = av.grid_table(f, kpis, S, "zh", community="370214900001")
    assert only["网格"].tolist() == ["二", "一"] and only["排名"].tolist() == [2, 3]


# --- the demo street against geo.assess ------------------------------------------------------


@pytest.fixture(scope="module")
def demo_october(demo_engine: Engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    with demo_engine.connect() as conn:
        f = assess(conn, street=DEMO_STREET, month="2026-10")
        kpis = kpis_by_unit(
            conn,
            "grid",
            dt.date(2026, 10, 1),
            dt.date(2026, 11, 1),
            within=DEMO_STREET,
            previous=False,
            repeats=False,
        ).current
    return f, kpis


def test_demo_tables_carry_geo_figures(demo_october: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    f, kpis = demo_october
    assert len(f) > 10
    table = av.worker_table(f, S, "2026-10", "zh")
    assert table["姓名"].tolist() == f["worker_name"].tolist()
    assert table["星级"].str.count("★").tolist() == f["stars"].astype(int).tolist()
    assert table["得分"].tolist() == [f"{x:.2f}" for x in f["score"]]
    assert table["等次"].tolist() == f["grade_label"].tolist()
    ranks = table["排名"].tolist()
    assert ranks == sorted(ranks) and ranks[0] == 1
    dist = {d.grade: d for d in av.grade_distribution(f, S)}
    caps = grade_caps(len(f))
    for g in ("good", "fairly_good"):
        assert dist[g].n == (f["grade"] == g).sum() <= caps[g] == dist[g].cap
    grids = av.grid_table(f, kpis, S, "zh")
    assert sorted(grids["网格编码"]) == sorted(c for c in kpis.index if isinstance(c, str))
    top = grids.iloc[0]
    assert top["网格编码"] in f.iloc[0]["grids"].split(",")


def test_demo_breakdown_adds_up_to_geo_score(
    demo_october: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    f, _ = demo_october
    comps = score_components(f, S)
    score = star_score(comps, S.stars)
    assert np.allclose(score.round(2), f["score"], equal_nan=True)
    assert (stars_of(score) == f["stars"]).all()
    for code in f["worker_code"].head(5):
        d = av.worker_detail(f, code, S, "2026-10", "zh")
        row = f[f["worker_code"] == code].iloc[0]
        points = [float(p) for p in d.parts["得分"] if p != "不计"]
        assert 1 + sum(points) == pytest.approx(row["score"], abs=0.03)
        assert f"{row['score']:.2f}" in d.total and row["grade_label"] in d.head
    with pytest.raises(KeyError):
        av.worker_detail(f, "nobody", S, "2026-10")


def test_demo_csv_has_every_geo_column(demo_october: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    f, _ = demo_october
    raw = av.worker_csv(f, S, "zh")
    assert raw.startswith("\ufeff".encode())
    import io

    back = pd.read_csv(io.BytesIO(raw), encoding="utf-8-sig", dtype={"人员编号": str})
    assert list(back.columns) == ["排名", *(v[0] for v in COLUMNS.values())]
    assert back["人员编号"].tolist() == f["worker_code"].tolist()
    assert back["星级"].tolist() == f["stars"].astype(int).tolist()
