"""Worker assessment (geo/assess.py): grade caps as properties over random scores, quota
counts against plain SQL on the demo street, and a hand-made month with public holidays
whose every figure is known."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, text

from geo import assess as asm
from geo.settings import AnalyticsSettings, Grades
from store import workcal
from store.db import make_engine
from tests import factories as f

DEMO_STREET = "370214900000"

# --- grades: properties over random score vectors -------------------------------------------

scores_st = st.lists(
    st.one_of(
        st.sampled_from([1.0, 2.5, 3.0, 3.75, 4.0, 4.5, 5.0]),  # many ties
        st.floats(min_value=1.0, max_value=5.0, allow_nan=False),
        st.just(float("nan")),
    ),
    min_size=0,
    max_size=60,
)


@st.composite
def graded_inputs(
    draw: st.DrawFn,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, Grades]:
    scores = np.array(draw(scores_st), dtype=float)
    n = scores.size
    tiebreak = np.array(
        draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, np.nan]), min_size=n, max_size=n)),
        dtype=float,
    )
    good_ok = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    fair_ok = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    good_cap = draw(st.sampled_from([0.0, 0.1, 0.2, 0.25, 1 / 3, 0.5]))
    fair_cap = draw(st.sampled_from([0.0, 0.2, 0.3, 0.5]))
    return scores, tiebreak, good_ok, fair_ok, Grades(good_cap=good_cap, fairly_good_cap=fair_cap)


@settings(max_examples=300, deadline=None)
@given(graded_inputs())
def test_grade_caps_hold(data: tuple) -> None:
    scores, tiebreak, good_ok, fair_ok, grades = data
    out = asm.assign_grades(
        scores, tiebreak=tiebreak, good_ok=good_ok, fairly_good_ok=fair_ok, grades=grades
    )
    n = scores.size
    assert (out == "good").sum() <= math.floor(grades.good_cap * n + 1e-9)
    assert (out == "fairly_good").sum() <= math.floor(grades.fairly_good_cap * n + 1e-9)
    assert not ((out == "good") & ~(good_ok & fair_ok)).any()
    assert not ((out == "fairly_good") & ~fair_ok).any()
    assert (out[np.isnan(scores)] == "average").all()


@settings(max_examples=300, deadline=None)
@given(graded_inputs())
def test_grades_are_fair_to_ties_and_order(data: tuple) -> None:
    scores, tiebreak, good_ok, fair_ok, grades = data
    out = asm.assign_grades(
        scores, tiebreak=tiebreak, good_ok=good_ok, fairly_good_ok=fair_ok, grades=grades
    )
    rank = {"good": 2, "fairly_good": 1, "average": 0}
    r = np.array([rank[g] for g in out])
    s = np.round(scores, grades.score_decimals)
    t = np.where(np.isnan(tiebreak), -np.inf, tiebreak)
    key = list(zip(good_ok & fair_ok, fair_ok, strict=True))
    for i in range(scores.size):
        for j in range(scores.size):
            if key[i] != key[j] or np.isnan(s[i]) or np.isnan(s[j]):
                continue
            if (s[i], t[i]) == (s[j], t[j]):
                assert r[i] == r[j]  # ties: same grade
            elif (s[i], t[i]) > (s[j], t[j]):
                assert r[i] >= r[j]  # a better rank never gets a worse grade
    # the same workers in another order get the same grades
    perm = np.random.default_rng(scores.size).permutation(scores.size)
    again = asm.assign_grades(
        scores[perm],
        tiebreak=tiebreak[perm],
        good_ok=good_ok[perm],
        fairly_good_ok=fair_ok[perm],
        grades=grades,
    )
    assert (again == out[perm]).all()


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=200))
def test_distinct_scores_fill_the_caps(n: int) -> None:
    out = asm.assign_grades(np.linspace(5.0, 1.0, n))
    assert (out == "good").sum() == math.floor(0.2 * n + 1e-9)
    assert (out == "fairly_good").sum() == math.floor(0.3 * n + 1e-9)
    assert list(out[: (out != "average").sum()]) == sorted(
        out[: (out != "average").sum()], key=lambda g: g != "good"
    )


def test_tied_group_at_the_cap_drops_as_a_whole() -> None:
    # 10 workers: the good cap is 2, but three are tied at the top -> none is good; they
    # fit the fairly-good cap of 3 together
    scores = [4.8, 4.8, 4.8, 4.5, 4.4, 4.0, 3.9, 3.0, 2.0, 1.0]
    out = asm.assign_grades(scores)
    assert list(out[:3]) == ["fairly_good"] * 3
    assert (out == "good").sum() == 0 and (out == "fairly_good").sum() == 3
    # rounding makes 4.801 and 4.799 the same shown score: tied
    assert len(set(asm.assign_grades([4.801, 4.799, 1, 1, 1, 1, 1, 1, 1, 1]))) == 2
    # a tiebreak (incidents reported) splits the tied group: the first two are good
    out = asm.assign_grades(scores, tiebreak=[3, 2, 1, 0, 0, 0, 0, 0, 0, 0])
    assert list(out[:5]) == ["good", "good", "fairly_good", "fairly_good", "fairly_good"]


def test_score_and_stars() -> None:
    comp = pd.DataFrame(
        {
            "incident_quota": [1.0, 0.0, 0.5],
            "log_quota": [1.0, 0.0, np.nan],
            "two_patrol": [np.nan, 0.0, np.nan],
            "on_time": [1.0, 0.0, np.nan],
            "no_rework": [1.0, 0.0, np.nan],
        }
    )
    score = asm.star_score(comp, AnalyticsSettings().stars)
    assert score.tolist() == pytest.approx([5.0, 1.0, 3.0])
    assert asm.stars_of(pd.Series([1.0, 2.49, 2.5, 4.5, 5.0])).tolist() == [1, 2, 3, 5, 5]


# --- weeks -------------------------------------------------------------------------------------


def test_month_weeks_follow_the_iso_thursday_rule() -> None:
    first, nxt = asm.month_bounds("2025-10")
    assert (first, nxt) == (dt.date(2025, 10, 1), dt.date(2025, 11, 1))
    mondays = asm.month_weeks(first, nxt)
    assert mondays == [dt.date(2025, 9, 29) + dt.timedelta(weeks=k) for k in range(5)]
    # every week of a year is in exactly one month
    weeks = [w for m in range(1, 13) for w in asm.month_weeks(*asm.month_bounds(f"2026-{m:02d}"))]
    assert len(weeks) == len(set(weeks)) == 53  # 2026 has 53 ISO weeks
    with pytest.raises(ValueError, match="like 2026-03"):
        asm.month_bounds("March")


def test_required_logs_in_holiday_weeks() -> None:
    # National Day 2025: Oct 1–8 off, Sep 28 (Sun) and Oct 11 (Sat) worked
    assert asm.required_logs(dt.date(2025, 9, 29), 5) == 2  # Mon, Tue
    assert asm.required_logs(dt.date(2025, 10, 6), 5) == 3  # Thu, Fri, Sat
    assert asm.required_logs(dt.date(2025, 10, 6), 2) == 2  # ceil(1.2)
    assert asm.required_logs(dt.date(2025, 9, 29), 2) == 1
    assert asm.required_logs(dt.date(2025, 10, 13), 5) == 5
    assert asm.required_logs(dt.date(2025, 9, 22), 5) == 5  # 6 working days: never above quota


# --- a hand-made month: October 2025 ------------------------------------------------------------

GRID2 = "370214900001002"
SQUARE2 = (
    "MULTIPOLYGON(((120.402 36.300,120.404 36.300,120.404 36.302,120.402 36.302,120.402 36.300)))"
)
#: logs per day of W1 (urban) and W2 (village)
W1_LOGS = {
    "2025-09-26": 1,  # week before: not assessed
    "2025-09-29": 1,
    "2025-09-30": 1,  # week of Sep 29: 2 of 2 required
    "2025-10-09": 1,
    "2025-10-10": 1,
    "2025-10-11": 1,  # 3 of 3
    "2025-10-13": 5,  # 5 of 5
    "2025-10-20": 4,  # 4 of 5: missed
    "2025-10-27": 3,
    "2025-11-01": 2,  # 5 of 5 (a Saturday in November counts for this week)
}
W2_LOGS = {"2025-09-30": 1, "2025-10-09": 2, "2025-10-14": 2, "2025-10-21": 2, "2025-10-28": 2}


def _reported(
    conn: Connection,
    code: str,
    category: str,
    reporter: int,
    grid: str,
    reported: str,
    closed: str | None,
    *,
    severity: int = 1,
    delay_h: float = 0.5,
    rework: bool = False,
) -> None:
    rep = dt.datetime.fromisoformat(reported + "+08:00")
    inc = conn.execute(
        text(
            "INSERT INTO incident (code, category_code, source, severity, title, occurred_at, "
            "reported_at, due_at, reporter_id, grid_code, street_code, geom) VALUES (:c, :cat, "
            "'patrol', :sev, '测试', :occ, :rep, :due, :who, :g, :s, "
            "ST_PointOnSurface((SELECT geom FROM grid WHERE code = :gg))) "
            "RETURNING id"
        ),
        {
            "c": code,
            "cat": category,
            "sev": severity,
            "occ": rep - dt.timedelta(hours=delay_h),
            "rep": rep,
            "due": rep + dt.timedelta(days=2),
            "who": reporter,
            "g": grid,
            "gg": grid,
            "s": f.STREET,
        },
    ).scalar_one()
    steps = [("reported", rep), ("handling", rep + dt.timedelta(hours=1))]
    if closed:
        end = dt.datetime.fromisoformat(closed + "+08:00")
        steps.append(("feedback", end - dt.timedelta(hours=3)))
        if rework:
            steps += [
                ("reworked", end - dt.timedelta(hours=2, minutes=30)),
                ("handling", end - dt.timedelta(hours=2)),
                ("feedback", end - dt.timedelta(hours=1, minutes=30)),
            ]
        steps += [("verified", end - dt.timedelta(hours=1)), ("closed", end)]
    for status, at in steps:
        conn.execute(
            text(
                "INSERT INTO incident_transition (incident_id, at, to_status, tier, actor, "
                "grid_code, street_code) VALUES (:i, :at, :st, 'grid', 'x', :g, :s)"
            ),
            {"i": inc, "at": at, "st": status, "g": grid, "s": f.STREET},
        )


def build_month(conn: Connection) -> tuple[int, int]:
    """One urban grid (worker W1) and one village grid (worker W2) in October 2025."""
    w1 = f.area(conn)
    w2 = conn.execute(
        text(
            "INSERT INTO staff (code, name, role, phone, street_code, active_from) "
            "VALUES ('W2', '李测试', 'grid_worker', '13900000002', :s, '2025-01-01') "
            "RETURNING id"
        ),
        {"s": f.STREET},
    ).scalar_one()
    conn.execute(
        text(
            "INSERT INTO grid (code, name, kind, community_code, households, worker_id, "
            "valid_from, geom) VALUES (:g, '测试村', 'village', :c, 120, :w, '2025-01-01', "
            "ST_GeomFromText(:geom, 4490))"
        ),
        {"g": GRID2, "c": f.COMMUNITY, "w": w2, "geom": SQUARE2},
    )
    for who, grid, days in ((w1, f.GRID, W1_LOGS), (w2, GRID2, W2_LOGS)):
        for day, n in days.items():
            for k in range(n):
                conn.execute(
                    text(
                        "INSERT INTO work_log (worker_id, log_date, grid_code, street_code, "
                        "body) VALUES (:w, :d, :g, :s, :b)"
                    ),
                    {"w": who, "d": day, "g": grid, "s": f.STREET, "b": f"走访第{k + 1}户"},
                )
    # W1: 2 disputes, 2 hazards; 3 closed on time, 1 late (due = reported + 2 days)
    _reported(conn, "A1", "0101", w1, f.GRID, "2025-10-09 09:00", "2025-10-10 09:00")
    _reported(conn, "A2", "0103", w1, f.GRID, "2025-10-13 09:00", "2025-10-14 09:00")
    _reported(conn, "A3", "0201", w1, f.GRID, "2025-10-14 09:00", "2025-10-15 09:00")
    _reported(conn, "A4", "0202", w1, f.GRID, "2025-10-20 09:00", "2025-10-23 09:00")
    # W2: 1 dispute, 3 hazards (one major reported 5 h late); all on time, one reworked
    _reported(conn, "B1", "0102", w2, GRID2, "2025-10-09 10:00", "2025-10-10 10:00")
    _reported(conn, "B2", "0203", w2, GRID2, "2025-10-15 10:00", "2025-10-16 10:00", rework=True)
    _reported(
        conn, "B3", "0204", w2, GRID2, "2025-10-16 10:00", "2025-10-17 10:00", severity=3, delay_h=5
    )
    _reported(conn, "B4", "0205", w2, GRID2, "2025-10-21 10:00", "2025-10-22 10:00")
    # reported in September and November: not this month's
    _reported(conn, "X1", "0101", w1, f.GRID, "2025-09-30 09:00", "2025-09-30 18:00")
    _reported(conn, "X2", "0101", w1, f.GRID, "2025-11-01 09:00", None)
    return w1, int(w2)


@pytest.fixture(scope="module")
def month_engine(server, template_db) -> Iterator[tuple[Engine, int, int]]:
    name = server.create(f"asm{uuid.uuid4().hex[:8]}", template=template_db)
    eng = make_engine(server.url(name))
    with eng.begin() as conn:
        w1, w2 = build_month(conn)
    yield eng, w1, w2
    eng.dispose()
    server.drop(name)


def test_hand_month(month_engine: tuple[Engine, int, int]) -> None:
    eng, _w1, _w2 = month_engine
    with eng.connect() as conn:
        out = asm.assess(conn, street=f.STREET, month="2025-10").set_index("worker_code")
    assert list(out.columns) == [c for c in asm.COLUMNS if c != "worker_code"]
    w1, w2 = out.loc["W1"], out.loc["W2"]
    assert (w1.grid_kind, w2.grid_kind) == ("urban", "village")
    assert (w1.disputes, w1.hazards, w1.incident_quota_met) == (2, 2, True)
    assert (w2.disputes, w2.hazards, w2.incident_quota_met) == (1, 3, False)
    assert (w1.logs, w1.log_weeks, w1.log_weeks_met, w1.log_quota_met) == (19, 5, 4, False)
    assert (w2.logs, w2.log_weeks, w2.log_weeks_met, w2.log_quota_met) == (9, 5, 5, True)
    # X1, reported in September, fell due on 2 October: due in this month
    assert (w1.due, w1.due_on_time, w1.reworked, w1.grid_reported) == (5, 4, 0, 4)
    assert (w2.due, w2.due_on_time, w2.reworked, w2.late_majors) == (4, 4, 1, 1)
    assert math.isnan(w1.two_patrol_share)
    # weights 0.25 quota, 0.15 logs, 0.25 on time, 0.10 no rework (no patrol data)
    s1 = 1 + 4 * (0.25 + 0.15 * 0.8 + 0.25 * 0.8 + 0.10) / 0.75
    s2 = 1 + 4 * (0.25 * 0.75 + 0.15 + 0.25 + 0.10 * 0.75) / 0.75
    assert (w1.score, w2.score) == (round(s1, 2), round(s2, 2))
    assert (w1.stars, w2.stars) == (5, 5)
    # two workers: floor(0.4) = 0 may be good, floor(0.6) = 0 fairly good
    assert set(out["grade"]) == {"average"} and set(out["grade_label"]) == {"一般"}


def test_hand_month_with_patrols_and_looser_caps(month_engine: tuple[Engine, int, int]) -> None:
    eng, _w1, w2 = month_engine
    loose = AnalyticsSettings(grades=Grades(good_cap=0.5, fairly_good_cap=0.5))
    with eng.connect() as conn:
        out = asm.assess(
            conn,
            street=f.STREET,
            month=dt.date(2025, 10, 17),
            patrol_share={"W1": 1.0, w2: 0.9},
            settings=loose,
            lang="en",
        ).set_index("worker_code")
    assert out.loc["W1", "two_patrol_share"] == 1.0 and out.loc["W2", "two_patrol_share"] == 0.9
    assert out.index.tolist() == ["W1", "W2"]  # best first
    assert out.loc["W1", "grade"] == "good"
    # W2 has five stars but reported a major incident late: not good, fairly good
    assert out.loc["W2", "stars"] == 5
    assert out.loc["W2", "grade"] == "fairly_good" and out.loc["W2", "grade_label"] == "Fairly good"
    with eng.connect() as conn, pytest.raises(ValueError, match=r"in \[0, 1\]"):
        asm.assess(conn, month="2025-10", patrol_share={"W1": 95})


def test_unknown_street_or_month_without_workers(month_engine: tuple[Engine, int, int]) -> None:
    eng, _, _ = month_engine
    with eng.connect() as conn:
        assert asm.assess(conn, street="370214901000", month="2025-10").empty
        with pytest.raises(ValueError, match="street code"):
            asm.assess(conn, street=f.GRID, month="2025-10")


# --- the demo street: quota counts against plain SQL ------------------------------------------


def test_demo_quota_counts_equal_plain_sql(demo_engine: Engine) -> None:
    month = "2026-03"
    with demo_engine.connect() as conn:
        out = asm.assess(conn, street=DEMO_STREET, month=month)
        counts = pd.read_sql_query(
            text(
                """
                SELECT s.code AS worker_code,
                       sum(CASE WHEN p.name_zh = '矛盾纠纷' THEN 1 ELSE 0 END) AS disputes,
                       sum(CASE WHEN p.name_zh = '安全隐患' THEN 1 ELSE 0 END) AS hazards
                  FROM staff s
                  JOIN incident i ON i.reporter_id = s.id
                  JOIN incident_category c ON c.code = i.category_code
                  JOIN incident_category p ON p.code = c.parent_code
                 WHERE (i.reported_at AT TIME ZONE 'Asia/Shanghai') >= '2026-03-01'
                   AND (i.reported_at AT TIME ZONE 'Asia/Shanghai') < '2026-04-01'
                 GROUP BY s.code
                """
            ),
            conn,
        ).set_index("worker_code")
        logs = pd.read_sql_query(
            text(
                "SELECT s.code AS worker_code, l.log_date, g.kind FROM work_log l "
                "JOIN staff s ON s.id = l.worker_id JOIN grid g ON g.worker_id = s.id"
            ),
            conn,
        )
        n_workers = conn.execute(
            text("SELECT count(*) FROM staff WHERE role = 'grid_worker' AND street_code = :s"),
            {"s": DEMO_STREET},
        ).scalar_one()
    out = out.set_index("worker_code")
    assert len(out) == n_workers == 41
    got = out[["disputes", "hazards"]]
    want = counts.reindex(got.index).fillna(0).astype("int64")
    assert (got.to_numpy() == want.to_numpy()).all()
    assert got.to_numpy().sum() > 0

    # logs by Monday-based week, weeks whose Thursday is in March 2026
    d = pd.to_datetime(logs["log_date"])
    logs["monday"] = (d - pd.to_timedelta(d.dt.day_of_week, unit="D")).dt.date
    mondays = sorted(
        m
        for m in logs["monday"].unique()
        if (m + dt.timedelta(days=3)).month == 3 and (m + dt.timedelta(days=3)).year == 2026
    )
    assert len(mondays) == 4  # Thursdays 5, 12, 19, 26 March
    in_month = logs[logs["monday"].isin(mondays)]
    per_week = in_month.groupby(["worker_code", "monday"]).size().unstack(fill_value=0)
    per_week = per_week.reindex(index=out.index, columns=mondays, fill_value=0)
    kind = logs.drop_duplicates("worker_code").set_index("worker_code")["kind"].reindex(out.index)
    quota = np.where(kind == "village", 2, 5)
    workdays = [
        sum(workcal.is_workday(m + dt.timedelta(days=k)) for k in range(7)) for m in mondays
    ]
    need = np.array([[min(q, math.ceil(q * w / 5)) for w in workdays] for q in quota])
    assert (out["logs"].to_numpy() == per_week.to_numpy().sum(axis=1)).all()
    assert (out["log_weeks_met"].to_numpy() == (per_week.to_numpy() >= need).sum(axis=1)).all()
    assert (out["grid_kind"] == "village").sum() == 2
    assert not out["log_quota_met"].all()  # the demo plants workers below quota

    # grades within the caps, on the real store too
    assert (out["grade"] == "good").sum() <= 8  # floor(0.2 × 41)
    assert (out["grade"] == "fairly_good").sum() <= 12  # floor(0.3 × 41)
    assert out["stars"].between(1, 5).all()


def test_demo_two_patrol_compliance_from_coverage(demo_engine: Engine, demo) -> None:
    from geo.coverage import patrol_compliance

    with demo_engine.connect() as conn:
        out = asm.assess(conn, street=DEMO_STREET, month="2026-11", patrol_share="compute")
        without = asm.assess(conn, street=DEMO_STREET, month="2026-11")
        ref = patrol_compliance(
            conn, dt.date(2026, 11, 1), dt.date(2026, 11, 30), street=DEMO_STREET
        )
        with pytest.raises(ValueError, match="worker_id and share"):
            asm.assess(conn, month="2026-11", patrol_share=ref.drop(columns="share"))
    got = out.set_index("worker_id")["two_patrol_share"]
    want = ref.set_index("worker_id")["share"]
    assert got.notna().all()
    assert got.sort_index().to_numpy() == pytest.approx(want.reindex(got.index).sort_index())
    # the planted patrol skippers (most skipped rounds this month) have the lowest shares
    skips = pd.Series(
        [x["worker"] for x in demo.truth["patrols"]["skipped"] if x["date"] >= "2026-11-01"]
    ).value_counts()
    planted = set(skips[skips >= 5].index)
    assert len(planted) == 3
    by_code = out.set_index("worker_code")["two_patrol_share"]
    assert planted <= set(by_code.nsmallest(5).index)
    # and the score uses it
    score = out.set_index("worker_code")["score"]
    assert not np.allclose(score, without.set_index("worker_code")["score"].reindex(score.index))
