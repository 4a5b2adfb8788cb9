"""Incident KPIs (geo/kpis.py, store/kpi_sql.py).

Two kinds of check:

* a small hand-made store whose every figure is known by construction (an incident closed
  1 h before its deadline, one closed 1 h after, one extended and closed within the
  extension, a major incident reported 5 h late, a reworked one, escalations to the street
  and to a department, a rejected report, repeats at 10 m and 29 m but not 31 m or 50 m, a
  closure reopened after the as-of instant, an extension granted after it);
* the demo street, where each figure equals an independent plain-SQL count written here
  differently: the as-of state from the transition log alone (``DISTINCT ON``, never the
  incident's derived columns), repeats by a plain self-join on ``ST_Distance`` instead of
  clusters, medians in pandas.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from pyproj import Geod
from sqlalchemy import Connection, Engine, text

from geo import kpis as kp
from geo.settings import AnalyticsSettings, RepeatRule, default_settings
from store.db import make_engine
from tests import factories as f

TZ = ZoneInfo("Asia/Shanghai")
DEMO_STREET = "370214900000"
GEOD = Geod(ellps="GRS80")  # CGCS2000's ellipsoid differs from GRS80 by 0.1 mm in b


def _ts(text_: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text_).replace(tzinfo=TZ)


# --- the hand-made store ---------------------------------------------------------------------

LON, LAT = 120.401, 36.301  # factories.INSIDE


def _offset(metres: float, azimuth: float) -> str:
    lon, lat, _ = GEOD.fwd(LON, LAT, azimuth, metres)
    return f"POINT({lon:.10f} {lat:.10f})"


def _incident(
    conn: Connection,
    code: str,
    category: str,
    reported: str,
    *,
    due: str | None = None,
    occurred: str | None = None,
    severity: int = 1,
    point: str = f.INSIDE,
    reporter: int | None = None,
) -> int:
    rep = _ts(reported)
    return int(
        conn.execute(
            text(
                "INSERT INTO incident (code, category_code, source, severity, title, "
                "occurred_at, reported_at, due_at, reporter_id, grid_code, street_code, geom) "
                "VALUES (:code, :cat, 'patrol', :sev, '测试事件', :occ, :rep, :due, :who, :g, :s, "
                "ST_GeomFromText(:p, 4490)) RETURNING id"
            ),
            {
                "code": code,
                "cat": category,
                "sev": severity,
                "occ": _ts(occurred) if occurred else rep - dt.timedelta(minutes=30),
                "rep": rep,
                "due": _ts(due) if due else rep + dt.timedelta(days=2),
                "who": reporter,
                "g": f.GRID,
                "s": f.STREET,
                "p": point,
            },
        ).scalar_one()
    )


def _path(conn: Connection, inc: int, steps: list[tuple]) -> None:
    """Append steps given as (status, local time[, tier[, new due]])."""
    for st in steps:
        status, at = st[0], _ts(st[1]).isoformat()
        tier = st[2] if len(st) > 2 else "grid"
        due = _ts(st[3]).isoformat() if len(st) > 3 else None
        f.step(conn, inc, status, at, tier=tier, new_due_at=due)


def _closed(conn: Connection, inc: int, reported: str, closed: str, tier: str = "grid") -> None:
    r, c = _ts(reported), _ts(closed)
    mid = r + (c - r) / 2
    _path(
        conn,
        inc,
        [
            ("reported", reported),
            ("handling", (r + dt.timedelta(minutes=10)).isoformat()[:19], tier),
            ("feedback", mid.isoformat()[:19], tier),
            ("verified", (c - dt.timedelta(minutes=10)).isoformat()[:19], tier),
            ("closed", closed, tier),
        ],
    )


#: reported, closed (None: open at T) of the March incidents that close in March.
HAND_CLOSED = {
    "A": ("2026-03-02 09:00", "2026-03-04 08:00"),  # 1 h before its deadline
    "B": ("2026-03-02 10:00", "2026-03-04 11:00"),  # 1 h after
    "C": ("2026-03-03 09:00", "2026-03-08 09:00"),  # extended to 03-10, closed within
    "E": ("2026-03-10 09:00", "2026-03-12 09:00"),  # reworked once
    "F": ("2026-03-11 09:00", "2026-03-12 09:00"),  # closed at the street tier
    "G": ("2026-03-11 10:00", "2026-03-12 10:00"),  # closed by a department
    "H": ("2026-03-12 09:00", "2026-03-12 12:00"),  # rejected: returned, closed
    "I": ("2026-03-22 09:00", "2026-03-23 09:00"),  # repeat of A (10 m)
    "J": ("2026-03-23 09:00", "2026-03-24 09:00"),  # 50 m from A: no repeat
    "K": ("2026-03-24 09:00", "2026-03-25 09:00"),  # at A, other subcategory; major, 2 h
    "M": ("2026-03-15 09:00", "2026-03-16 15:00"),  # reopened after T
    "P": ("2026-03-26 09:00", "2026-03-26 18:00"),
    "Q": ("2026-03-27 09:00", "2026-03-27 18:00"),  # 29 m from P: repeat
    "R": ("2026-03-26 10:00", "2026-03-26 18:00"),
    "S": ("2026-03-27 10:00", "2026-03-27 18:00"),  # 31 m from R: no repeat
}


def build_hand_store(conn: Connection) -> None:
    """The hand-made store: one street, one grid, March 2026 and one February incident."""
    f.area(conn)
    ids = {}
    ids["L"] = _incident(conn, "L", "0303", "2026-02-15 09:00")
    _closed(conn, ids["L"], "2026-02-15 09:00", "2026-02-16 09:00")
    ids["A"] = _incident(conn, "A", "0301", "2026-03-02 09:00", due="2026-03-04 09:00")
    _closed(conn, ids["A"], *HAND_CLOSED["A"])
    ids["B"] = _incident(conn, "B", "0303", "2026-03-02 10:00", due="2026-03-04 10:00")
    _closed(conn, ids["B"], *HAND_CLOSED["B"])
    ids["C"] = _incident(conn, "C", "0304", "2026-03-03 09:00", due="2026-03-05 09:00")
    _path(
        conn,
        ids["C"],
        [
            ("reported", "2026-03-03 09:00"),
            ("handling", "2026-03-03 10:00"),
            ("extended", "2026-03-04 09:00", "grid", "2026-03-10 09:00"),
            ("handling", "2026-03-04 09:10"),
            ("feedback", "2026-03-07 09:00"),
            ("verified", "2026-03-08 08:00"),
            ("closed", "2026-03-08 09:00"),
        ],
    )
    ids["D"] = _incident(
        conn,
        "D",
        "0101",
        "2026-03-05 13:00",
        occurred="2026-03-05 08:00",
        severity=3,
        due="2026-03-06 13:00",
    )
    _path(conn, ids["D"], [("reported", "2026-03-05 13:00"), ("registered", "2026-03-05 14:00")])
    ids["E"] = _incident(conn, "E", "0305", "2026-03-10 09:00", due="2026-03-20 09:00")
    _path(
        conn,
        ids["E"],
        [
            ("reported", "2026-03-10 09:00"),
            ("handling", "2026-03-10 10:00"),
            ("feedback", "2026-03-11 09:00"),
            ("reworked", "2026-03-11 10:00"),
            ("handling", "2026-03-11 11:00"),
            ("feedback", "2026-03-12 07:00"),
            ("verified", "2026-03-12 08:00"),
            ("closed", "2026-03-12 09:00"),
        ],
    )
    ids["F"] = _incident(conn, "F", "0306", "2026-03-11 09:00")
    _path(
        conn,
        ids["F"],
        [
            ("reported", "2026-03-11 09:00"),
            ("registered", "2026-03-11 09:10"),
            ("escalated", "2026-03-11 09:20", "community"),
            ("dispatched", "2026-03-11 09:30", "community"),
            ("escalated", "2026-03-11 09:40", "street"),
            ("dispatched", "2026-03-11 09:50", "street"),
            ("handling", "2026-03-11 10:00", "street"),
            ("feedback", "2026-03-12 07:00", "street"),
            ("verified", "2026-03-12 08:00", "street"),
            ("closed", "2026-03-12 09:00", "street"),
        ],
    )
    ids["G"] = _incident(conn, "G", "0401", "2026-03-11 10:00")
    _path(
        conn,
        ids["G"],
        [
            ("reported", "2026-03-11 10:00"),
            ("registered", "2026-03-11 10:10"),
            ("escalated", "2026-03-11 10:20", "street"),
            ("dispatched", "2026-03-11 10:30", "street"),
            ("escalated", "2026-03-11 10:40", "department"),
            ("handling", "2026-03-11 11:00", "department"),
            ("feedback", "2026-03-12 08:00", "department"),
            ("verified", "2026-03-12 09:00", "department"),
            ("closed", "2026-03-12 10:00", "department"),
        ],
    )
    ids["H"] = _incident(conn, "H", "0403", "2026-03-12 09:00")
    _path(
        conn,
        ids["H"],
        [
            ("reported", "2026-03-12 09:00"),
            ("returned", "2026-03-12 11:00"),
            ("closed", "2026-03-12 12:00"),
        ],
    )
    ids["I"] = _incident(conn, "I", "0301", "2026-03-22 09:00", point=_offset(10, 90))
    _closed(conn, ids["I"], *HAND_CLOSED["I"])
    ids["J"] = _incident(conn, "J", "0301", "2026-03-23 09:00", point=_offset(50, 270))
    _closed(conn, ids["J"], *HAND_CLOSED["J"])
    ids["K"] = _incident(
        conn, "K", "0302", "2026-03-24 09:00", occurred="2026-03-24 07:00", severity=3
    )
    _closed(conn, ids["K"], *HAND_CLOSED["K"])
    ids["M"] = _incident(conn, "M", "0501", "2026-03-15 09:00", due="2026-03-17 09:00")
    _closed(conn, ids["M"], *HAND_CLOSED["M"])
    _path(
        conn,
        ids["M"],
        [("reopened", "2026-04-05 09:00"), ("handling", "2026-04-05 10:00")],
    )
    ids["N"] = _incident(conn, "N", "0601", "2026-03-25 09:00", due="2026-03-27 09:00")
    _path(
        conn,
        ids["N"],
        [
            ("reported", "2026-03-25 09:00"),
            ("handling", "2026-03-25 10:00"),
            ("extended", "2026-04-02 09:00", "grid", "2026-04-10 09:00"),
        ],
    )
    ids["P"] = _incident(conn, "P", "0502", "2026-03-26 09:00", point=_offset(100, 180))
    _closed(conn, ids["P"], *HAND_CLOSED["P"])
    p_lon, p_lat, _ = GEOD.fwd(LON, LAT, 180, 100)
    q_lon, q_lat, _ = GEOD.fwd(p_lon, p_lat, 0, 29)
    ids["Q"] = _incident(conn, "Q", "0502", "2026-03-27 09:00", point=f"POINT({q_lon} {q_lat})")
    _closed(conn, ids["Q"], *HAND_CLOSED["Q"])
    ids["R"] = _incident(conn, "R", "0503", "2026-03-26 10:00", point=_offset(100, 200))
    _closed(conn, ids["R"], *HAND_CLOSED["R"])
    r_lon, r_lat, _ = GEOD.fwd(LON, LAT, 200, 100)
    s_lon, s_lat, _ = GEOD.fwd(r_lon, r_lat, 0, 31)
    ids["S"] = _incident(conn, "S", "0503", "2026-03-27 10:00", point=f"POINT({s_lon} {s_lat})")
    _closed(conn, ids["S"], *HAND_CLOSED["S"])


@pytest.fixture(scope="module")
def hand_engine(server, template_db) -> Iterator[Engine]:
    """A database holding the hand-made store (read-only by convention)."""
    name = server.create(f"kpi{uuid.uuid4().hex[:8]}", template=template_db)
    eng = make_engine(server.url(name))
    with eng.begin() as conn:
        build_hand_store(conn)
    yield eng
    eng.dispose()
    server.drop(name)


@pytest.fixture(scope="module")
def march(hand_engine: Engine) -> kp.KpiReport:
    with hand_engine.connect() as conn:
        return kp.kpis(conn, unit=f.STREET, start="2026-03-01", end="2026-04-01")


def test_hand_counts_and_closure(march: kp.KpiReport) -> None:
    fig = march.figures
    assert fig.reported == 17  # A–S without L (February) and O, T (unused letters)
    assert fig.reported_closed == 15  # all but D (registered) and N (handling at T)
    assert fig.closure_rate == pytest.approx(15 / 17)
    assert fig.awaiting_review == 0


def test_hand_on_time_uses_deadline_in_force(march: kp.KpiReport) -> None:
    fig = march.figures
    # every March incident falls due in March (C: its extension to 03-10; N: 03-27, its
    # extension was granted after T)
    assert fig.due == 17
    # not on time: B (1 h late), D and N (open at T)
    assert fig.due_on_time == 14
    assert fig.on_time_rate == pytest.approx(14 / 17)


def test_hand_open_overdue_list(march: kp.KpiReport) -> None:
    assert march.figures.open_overdue == 2
    od = march.overdue
    assert od["code"].tolist() == ["D", "N"]  # most overdue first
    # D: due 03-06 13:00; N: due 03-27 09:00 (extended only on 04-02); T = 04-01 00:00
    assert od["days_overdue"].tolist() == pytest.approx([25 + 11 / 24, 4 + 15 / 24])
    assert od["status"].tolist() == ["registered", "handling"]
    assert od["deadline"].iloc[1] == _ts("2026-03-27 09:00")


def test_hand_handling_hours(march: kp.KpiReport) -> None:
    hours = [
        (_ts(c) - _ts(r)).total_seconds() / 3600 for r, c in HAND_CLOSED.values() if c is not None
    ]
    assert march.figures.closed == len(HAND_CLOSED) == 15
    assert march.figures.mean_hours == pytest.approx(sum(hours) / len(hours))
    assert march.figures.median_hours == pytest.approx(sorted(hours)[len(hours) // 2])


def test_hand_tiers(march: kp.KpiReport) -> None:
    fig = march.figures
    assert (fig.closed_grid, fig.closed_community, fig.closed_street) == (13, 0, 1)
    assert fig.closed_department == 1
    assert fig.grid_share == pytest.approx(13 / 15)
    assert fig.street_share == pytest.approx(14 / 15)


def test_hand_rework_extension_return(march: kp.KpiReport) -> None:
    fig = march.figures
    assert (fig.reworked, fig.extended, fig.returned) == (1, 1, 1)  # E; C (not N); H
    assert fig.rework_rate == pytest.approx(1 / 17)


def test_hand_four_hour_rule(march: kp.KpiReport) -> None:
    fig = march.figures
    assert (fig.major, fig.major_in_time) == (2, 1)  # K in 2 h, D in 5 h
    assert fig.major_in_time_rate == pytest.approx(0.5)
    late = march.late_majors
    assert late["code"].tolist() == ["D"]
    assert late["delay_hours"].iloc[0] == pytest.approx(5.0)


def test_hand_repeats(march: kp.KpiReport) -> None:
    # B (L, February, same place), I (A, 10 m), Q (P, 29 m); not J (50 m), K (other
    # subcategory), S (31 m)
    assert march.figures.repeats == 3


def test_hand_repeat_radius_is_a_setting(hand_engine: Engine) -> None:
    wide = AnalyticsSettings(repeat=RepeatRule(radius_m=55))
    with hand_engine.connect() as conn:
        rep = kp.kpis(conn, unit=f.GRID, start="2026-03-01", end="2026-04-01", settings=wide)
    assert rep.figures.repeats == 5  # + J (50 m from A) and S (31 m from R)


def test_hand_categories(march: kp.KpiReport) -> None:
    cats = march.categories.set_index("code")
    assert cats.loc["03", "reported"] == 8  # A B C E F I J K
    assert cats.loc["0301", "reported"] == 3
    assert cats.loc["03", "previous"] == 1  # L
    assert cats.loc["03", "name_zh"] == "城市管理"
    assert cats.loc["0303", "change"] == 0
    assert set(cats["level"]) == {"category", "subcategory"}


def test_hand_previous_period(march: kp.KpiReport) -> None:
    assert (march.previous_period.start, march.previous_period.end) == (
        dt.date(2026, 2, 1),
        dt.date(2026, 3, 1),
    )
    prev = march.previous
    assert (prev.reported, prev.reported_closed, prev.due, prev.due_on_time) == (1, 1, 1, 1)
    table = march.comparison().set_index("figure")
    assert table.loc["reported", "change"] == 16
    assert table.loc["closure_rate", "label"] == "办结率"
    assert table.loc["closure_rate", "change"] == pytest.approx(15 / 17 - 1)


def test_hand_as_of_later_sees_reopening_and_extension(hand_engine: Engine) -> None:
    with hand_engine.connect() as conn:
        rep = kp.kpis(conn, unit=f.STREET, start="2026-03-01", end="2026-04-01", as_of="2026-04-06")
    fig = rep.figures
    assert fig.reported_closed == 14  # M reopened on 04-05; D, N open
    # N's deadline is now 04-10 (extension of 04-02), outside March: no longer due
    assert fig.due == 16 and fig.extended == 2
    assert rep.overdue["code"].tolist() == ["D", "M"]


def test_hand_as_of_inside_the_period_cuts_it(hand_engine: Engine) -> None:
    with hand_engine.connect() as conn:
        rep = kp.kpis(conn, unit=f.STREET, start="2026-03-01", end="2026-04-01", as_of="2026-03-11")
    fig = rep.figures
    assert fig.reported == 5  # A B C D E
    assert fig.reported_closed == 3  # A B C; E is being handled
    assert rep.previous_period.as_of == _ts("2026-02-11 00:00")


def test_hand_units_group_like_single_units(hand_engine: Engine) -> None:
    with hand_engine.connect() as conn:
        by = kp.kpis_by_unit(conn, "grid", "2026-03-01", "2026-04-01", within=f.STREET)
        one = kp.kpis(conn, unit=f.GRID, start="2026-03-01", end="2026-04-01")
    row = by.current.loc[f.GRID]
    for name, value in one.figures.as_dict().items():
        assert row[name] == pytest.approx(value, nan_ok=True), name
    assert by.current.loc[f.GRID, "name"] == "测试网格"
    assert by.categories["reported"].sum() == 17


def test_empty_period_has_no_rates(hand_engine: Engine) -> None:
    with hand_engine.connect() as conn:
        rep = kp.kpis(conn, unit=f.STREET, start="2025-01-01", end="2025-02-01")
    assert rep.figures.reported == 0
    assert rep.figures.closure_rate is None and rep.figures.mean_hours is None
    assert rep.categories.empty and rep.overdue.empty


# --- periods and units ------------------------------------------------------------------------


def test_previous_period_of_months_and_days() -> None:
    p = kp.make_period("2026-03-01", "2026-06-01", tz="Asia/Shanghai").previous()
    assert (p.start, p.end) == (dt.date(2025, 12, 1), dt.date(2026, 3, 1))
    q = kp.make_period("2026-03-10", "2026-03-17", tz="Asia/Shanghai").previous()
    assert (q.start, q.end) == (dt.date(2026, 3, 3), dt.date(2026, 3, 10))
    y = kp.make_period("2025-01-01", "2026-01-01", as_of="2026-01-15", tz="Asia/Shanghai")
    assert y.previous().start == dt.date(2024, 1, 1)
    assert y.previous().as_of == _ts("2025-01-15 00:00")


def test_period_checks() -> None:
    with pytest.raises(ValueError, match="must come after its start"):
        kp.make_period("2026-03-01", "2026-03-01")
    with pytest.raises(ValueError, match="date like 2026-03-01"):
        kp.make_period("March", "2026-04-01")
    with pytest.raises(ValueError, match=r"as_of .* must come after"):
        kp.make_period("2026-03-01", "2026-04-01", as_of="2026-02-01")


@pytest.mark.parametrize(
    ("code", "level"),
    [
        (None, "all"),
        ("370214000000", "district"),
        ("370214900000", "street"),
        ("370214900001", "community"),
        ("370214900001001", "grid"),
    ],
)
def test_unit_level(code: str | None, level: str) -> None:
    assert kp.unit_level(code) == level


def test_unit_level_refuses_other_codes() -> None:
    with pytest.raises(ValueError, match="12 digits for a district"):
        kp.unit_level("3702149")
    with pytest.raises(ValueError, match="do not lie within"):
        kp.kpis_by_unit(None, "street", "2026-01-01", "2026-02-01", within="370214900000")  # type: ignore[arg-type]


def test_settings_are_documented() -> None:
    def walk(model: type) -> Iterator[tuple[str, object]]:
        for name, fld in model.model_fields.items():
            yield name, fld
            ann = fld.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                yield from walk(ann)

    fields = list(walk(AnalyticsSettings))
    assert len(fields) > 20
    for name, fld in fields:
        assert fld.description and len(fld.description) > 15, name  # type: ignore[attr-defined]
    assert default_settings() is default_settings()
    with pytest.raises(ValueError, match="must not exceed 1"):
        AnalyticsSettings.model_validate({"grades": {"good_cap": 0.6, "fairly_good_cap": 0.5}})


# --- the demo street against independent SQL ----------------------------------------------------

# State as of T from the log alone: the last step before T of every incident.
_REF_STATE = """
WITH last AS (
    SELECT DISTINCT ON (t.incident_id) t.incident_id, t.to_status, t.tier, t.at
      FROM incident_transition t
     WHERE t.at < :t
     ORDER BY t.incident_id, t.at DESC, t.id DESC
), ext AS (
    SELECT DISTINCT ON (t.incident_id) t.incident_id, t.new_due_at
      FROM incident_transition t
     WHERE t.at < :t AND t.new_due_at IS NOT NULL
     ORDER BY t.incident_id, t.at DESC, t.id DESC
), steps AS (
    SELECT t.incident_id,
           max(CASE WHEN t.to_status = 'reworked' THEN 1 ELSE 0 END) AS reworked,
           max(CASE WHEN t.to_status = 'extended' THEN 1 ELSE 0 END) AS extended,
           max(CASE WHEN t.to_status = 'returned' THEN 1 ELSE 0 END) AS returned
      FROM incident_transition t
     WHERE t.at < :t
     GROUP BY t.incident_id
)
SELECT i.code, i.category_code, i.severity, i.street_code, i.grid_code,
       i.occurred_at, i.reported_at, i.due_at,
       last.to_status AS status, last.tier, last.at AS status_at,
       CASE WHEN ext.new_due_at IS NULL THEN i.due_at ELSE ext.new_due_at END AS deadline,
       steps.reworked, steps.extended, steps.returned
  FROM incident i
  JOIN last ON last.incident_id = i.id
  LEFT JOIN ext ON ext.incident_id = i.id
  LEFT JOIN steps ON steps.incident_id = i.id
 WHERE i.street_code = :street AND i.reported_at < :t
"""

# Repeats by a plain self-join on the geodesic distance (ST_Distance, not the clustering of
# geo.kpis). Gauss-Krüger distances would be the obvious independent measure, but they run
# ~0.5 mm long away from the zone's central meridian, which flips pairs at 30 m ± 1 mm.
_REF_REPEATS = """
SELECT count(*) FROM incident a
 WHERE a.street_code = :street AND a.reported_at >= :t0 AND a.reported_at < :t1
   AND EXISTS (
       SELECT 1 FROM incident b
        WHERE b.category_code = a.category_code
          AND b.reported_at < a.reported_at
          AND a.reported_at - b.reported_at <= interval '90 days'
          AND ST_Distance(CAST(a.geom AS geography), CAST(b.geom AS geography)) <= 30)
"""


def _reference(conn: Connection, t0: dt.datetime, t1: dt.datetime, t: dt.datetime) -> dict:
    frame = pd.read_sql_query(text(_REF_STATE), conn, params={"t": t, "street": DEMO_STREET})
    for c in ("occurred_at", "reported_at", "due_at", "status_at", "deadline"):
        frame[c] = pd.to_datetime(frame[c], utc=True)
    t0_, t1_, t_ = (pd.Timestamp(x) for x in (t0, t1, t))
    rep = frame[(frame.reported_at >= t0_) & (frame.reported_at < t1_)]
    closed = frame.status == "closed"
    closed_at = frame.status_at.where(closed)
    due = frame[(frame.deadline >= t0_) & (frame.deadline < t1_)]
    in_period = frame[closed & (closed_at >= t0_) & (closed_at < t1_)]
    hours = (closed_at[in_period.index] - in_period.reported_at).dt.total_seconds() / 3600
    major = rep[rep.severity >= 3]
    delay = (major.reported_at - major.occurred_at).dt.total_seconds()
    repeats = conn.execute(
        text(_REF_REPEATS), {"street": DEMO_STREET, "t0": t0, "t1": t1}
    ).scalar_one()
    return {
        "reported": len(rep),
        "reported_closed": int((rep.status == "closed").sum()),
        "awaiting_review": int((rep.status == "feedback").sum()),
        "due": len(due),
        "due_on_time": int(
            ((due.status == "closed") & (closed_at[due.index] <= due.deadline)).sum()
        ),
        "open_overdue": int(((frame.status != "closed") & (frame.deadline < t_)).sum()),
        "closed": len(in_period),
        "mean_hours": float(hours.mean()),
        "median_hours": float(hours.median()),
        **{f"closed_{t}": int((in_period.tier == t).sum()) for t in kp.TIERS},
        "reworked": int(rep.reworked.sum()),
        "extended": int(rep.extended.sum()),
        "returned": int(rep.returned.sum()),
        "major": len(major),
        "major_in_time": int((delay <= 4 * 3600).sum()),
        "repeats": int(repeats),
        "by_category": rep.category_code.value_counts().to_dict(),
    }


@pytest.mark.parametrize(
    ("start", "end", "as_of"),
    [
        ("2026-03-01", "2026-06-01", None),  # a quarter, T at its end
        ("2025-12-01", "2026-01-01", "2026-02-10 12:00"),  # a month, T weeks later
        ("2026-11-01", "2026-12-01", "2026-11-18 12:30"),  # month to date
    ],
)
def test_demo_figures_equal_independent_sql(
    demo_engine: Engine, start: str, end: str, as_of: str | None
) -> None:
    with demo_engine.connect() as conn:
        rep = kp.kpis(conn, unit=DEMO_STREET, start=start, end=end, as_of=as_of)
        p = rep.period
        ref = _reference(conn, p.start_ts, p.upto, p.as_of)
    fig = rep.figures.as_dict()
    assert ref["reported"] > 40
    for name, value in ref.items():
        if name == "by_category":
            continue
        if isinstance(value, float):
            assert fig[name] == pytest.approx(value, rel=1e-9), name
        else:
            assert fig[name] == value, name
    subs = rep.categories[rep.categories.level == "subcategory"].set_index("code")["reported"]
    assert subs[subs > 0].to_dict() == ref["by_category"]
    assert len(rep.overdue) == ref["open_overdue"]
    assert len(rep.late_majors) == ref["major"] - ref["major_in_time"]


def test_demo_units_add_up(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        by = kp.kpis_by_unit(conn, "community", "2026-01-01", "2026-07-01")
        whole = kp.kpis(conn, unit=DEMO_STREET, start="2026-01-01", end="2026-07-01")
        grid = kp.kpis_by_unit(conn, "grid", "2026-01-01", "2026-07-01", within=DEMO_STREET)
        street = kp.kpis_by_unit(conn, "street", "2026-01-01", "2026-07-01")
        community = kp.kpis(conn, unit="370214900004", start="2026-01-01", end="2026-07-01")
    counts = [k for k, v in kp.FIGURES.items() if v[2] == "count"]
    total = whole.figures.as_dict()
    for name in counts:
        assert by.current[name].sum() == total[name], name
        assert grid.current[name].sum() == total[name], name
        assert by.previous[name].sum() == whole.previous.as_dict()[name], name
    assert len(by.current) == 9 + by.current.index.isna().sum()
    assert len(grid.current) >= 41
    row = street.current.loc[DEMO_STREET]
    for name, value in total.items():
        assert row[name] == pytest.approx(value, nan_ok=True), name
    c_row = by.current.loc["370214900004"]
    for name, value in community.figures.as_dict().items():
        assert c_row[name] == pytest.approx(value, nan_ok=True), name
    assert not math.isnan(by.change().loc["370214900004", "closure_rate"])
