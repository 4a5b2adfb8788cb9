"""The KPI sums per street and day (store/kpi_summary.py, migration 0004) give exactly the
figures computed from the incidents (``geo.kpis.from_incidents``, the statement the tests
in test_kpis.py check against independent SQL): on the hand-made store, on Beijing
midnights and period edges, and after loads, reloads (moved incidents, new steps, a
reopening, an extension) with the real loader — where the kept sums must also equal a
rebuild from scratch. Writes not followed by a refresh must make geo.kpis fall back to the
incidents, never read stale sums.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Connection, Engine, text

import loaders.engine as le
from geo import kpis as kp
from geo.settings import AnalyticsSettings, RepeatRule, default_settings
from store import kpi_summary
from store.db import make_engine
from tests import factories as f
from tests.test_kpis import build_hand_store

TZ = ZoneInfo("Asia/Shanghai")
RULE = dict(kpi_summary.DEFAULT_RULE)

_SNAPSHOT = {
    "kpi_street_day": "SELECT * FROM kpi_street_day ORDER BY street_code, day",
    "kpi_street_day_category": (
        "SELECT * FROM kpi_street_day_category ORDER BY street_code, day, category_code"
    ),
    "kpi_street_month_category": (
        "SELECT * FROM kpi_street_month_category ORDER BY street_code, month, category_code"
    ),
    "incident_repeat": "SELECT incident_id FROM incident_repeat ORDER BY 1",
}


# --- helpers -----------------------------------------------------------------------------------


class _Spy:
    """Counts the queries answered from the sums (geo.kpis._with_medians runs once for
    each)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = kp._with_medians

        def wrapped(*args: Any, **kw: Any) -> pd.DataFrame:
            self.calls += 1
            return real(*args, **kw)

        monkeypatch.setattr(kp, "_with_medians", wrapped)


def _close(a: Any, b: Any, name: str) -> bool:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
        return (a is None or math.isnan(a)) and (b is None or math.isnan(b))
    if name == "mean_hours" or name.endswith(("_rate", "_share")):
        return a == pytest.approx(b, rel=1e-12, abs=1e-12)
    return a == b


def _same_report(a: kp.KpiReport, b: kp.KpiReport) -> None:
    for x, y in ((a.figures, b.figures), (a.previous, b.previous)):
        dx, dy = x.as_dict(), y.as_dict()
        for name in kp.FIGURES:
            assert _close(dx[name], dy[name], name), (name, dx[name], dy[name])
    pd.testing.assert_frame_equal(a.categories, b.categories)
    pd.testing.assert_frame_equal(a.overdue, b.overdue)
    pd.testing.assert_frame_equal(a.late_majors, b.late_majors)


def _same_units(a: kp.UnitKpis, b: kp.UnitKpis) -> None:
    for x, y in ((a.current, b.current), (a.previous, b.previous)):
        assert x is not None and y is not None
        assert list(x.index) == list(y.index)
        for name in kp.FIGURES:
            for u, v in zip(x[name].tolist(), y[name].tolist(), strict=True):
                assert _close(u, v, name), (name, u, v)
    key = ["unit", "category_code"]
    pd.testing.assert_frame_equal(
        a.categories.sort_values(key).reset_index(drop=True),
        b.categories.sort_values(key).reset_index(drop=True),
    )


def _both(conn: Connection, fn: Any, spy: _Spy, *, fast: bool = True) -> tuple[Any, Any]:
    """``fn(conn)`` from the sums (asserted to have used them when ``fast``) and from the
    incidents."""
    before = spy.calls
    got = fn(conn)
    assert (spy.calls > before) == fast
    with kp.from_incidents():
        ref = fn(conn)
    assert spy.calls == before + (1 if fast else 0)
    return got, ref


def _check(conn: Connection, spy: _Spy, cases: list[tuple], units: list[str | None]) -> None:
    for start, end, as_of in cases:
        for unit in units:
            got, ref = _both(
                conn,
                lambda c, u=unit, a=start, b=end, t=as_of: kp.kpis(
                    c, unit=u, start=a, end=b, as_of=t
                ),
                spy,
            )
            _same_report(got, ref)
        for level in ("street", "district"):
            got, ref = _both(
                conn,
                lambda c, lv=level, a=start, b=end, t=as_of: kp.kpis_by_unit(c, lv, a, b, as_of=t),
                spy,
            )
            _same_units(got, ref)


def _same_as_rebuild(conn: Connection) -> None:
    kept = {k: conn.execute(text(q)).all() for k, q in _SNAPSHOT.items()}
    kpi_summary.rebuild(conn)
    fresh = {k: conn.execute(text(q)).all() for k, q in _SNAPSHOT.items()}
    for k in _SNAPSHOT:
        assert kept[k] == fresh[k], k


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> _Spy:
    return _Spy(monkeypatch)


# --- rules -------------------------------------------------------------------------------------


def test_default_rule_is_the_settings_default() -> None:
    s = default_settings()
    assert {
        "tz": "Asia/Shanghai",
        "major_severity": s.reporting.major_severity,
        "max_delay_s": s.reporting.max_delay_h * 3600.0,
        "repeat_m": s.repeat.radius_m,
        "repeat_days": s.repeat.window_days,
    } == RULE


def test_percentile_cont_median_matches_postgres(conn: Connection) -> None:
    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 10, 11, 1000, 1001):
        values = rng.gamma(2.0, 30.0, size=n) / 3.7
        want = conn.execute(
            text(
                "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v) "
                "FROM unnest(CAST(:v AS double precision[])) AS v"
            ),
            {"v": values.tolist()},
        ).scalar_one()
        assert kp._percentile_cont_median(values) == want  # bit for bit
    assert kp._percentile_cont_median(np.empty(0)) is None


# --- the hand-made store -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hand_engine(server, template_db) -> Iterator[Engine]:
    """The hand-made store of test_kpis.py with its sums refreshed."""
    name = server.create(f"kps{uuid.uuid4().hex[:8]}", template=template_db)
    eng = make_engine(server.url(name))
    with eng.begin() as conn:
        build_hand_store(conn)
        kpi_summary.refresh(conn)
    yield eng
    eng.dispose()
    server.drop(name)


HAND_CASES = [
    ("2026-03-01", "2026-04-01", None),  # March, T at its end; February before
    ("2026-03-01", "2026-04-01", "2026-04-20"),  # T after the reopening and extension
    ("2026-03-01", "2026-04-01", "2026-03-16"),  # T at a midnight inside: cut there
    ("2026-03-12", "2026-03-13", None),  # one day
    ("2026-02-15", "2026-03-27", "2026-03-27"),  # days, not months
    ("2026-03-16", "2026-03-17", "2026-03-17"),  # M's closing day
]


def test_hand_store_sums_equal_incidents(hand_engine: Engine, spy: _Spy) -> None:
    with hand_engine.connect() as conn:
        assert kpi_summary.usable(conn, RULE)
        _check(conn, spy, HAND_CASES, [f.STREET, None, f.DISTRICT])
        report = kp.kpis(conn, unit=f.STREET, start="2026-03-01", end="2026-04-01")
    assert report.figures.reported > 10  # the sums really hold the store
    assert report.figures.repeats == 3  # B, I, Q (test_kpis.test_hand_repeats)
    assert report.figures.median_hours is not None


def test_hand_store_sums_equal_a_rebuild(hand_engine: Engine) -> None:
    with hand_engine.begin() as conn:
        _same_as_rebuild(conn)
        conn.rollback()


def test_not_served_by_the_sums(hand_engine: Engine, spy: _Spy) -> None:
    """A T off midnight, a community or grid, another time zone or other rules: from the
    incidents."""
    with hand_engine.connect() as conn:
        for fn in (
            lambda c: kp.kpis(
                c, unit=f.STREET, start="2026-03-01", end="2026-04-01", as_of="2026-03-20 12:00"
            ),
            lambda c: kp.kpis(c, unit=f.COMMUNITY, start="2026-03-01", end="2026-04-01"),
            lambda c: kp.kpis(c, unit=f.GRID, start="2026-03-01", end="2026-04-01"),
            lambda c: kp.kpis_by_unit(c, "grid", "2026-03-01", "2026-04-01"),
            lambda c: kp.kpis(c, unit=f.STREET, start="2026-03-01", end="2026-04-01", tz="UTC"),
        ):
            before = spy.calls
            fn(conn)
            assert spy.calls == before
        other = AnalyticsSettings(repeat=RepeatRule(radius_m=50))
        kp.kpis(conn, unit=f.STREET, start="2026-03-01", end="2026-04-01", settings=other)
        assert spy.calls == before


# --- Beijing midnight ----------------------------------------------------------------------------


def test_beijing_midnight_edges(server, template_db, spy: _Spy) -> None:
    """Reported a microsecond before and at midnight, closed and due exactly at midnight:
    each on its own local day, and the sums agree with the incidents on every edge."""
    name = server.create(f"kpm{uuid.uuid4().hex[:8]}", template=template_db)
    eng = make_engine(server.url(name))
    try:
        with eng.begin() as conn:
            f.area(conn)
            late = _incident(conn, "N1", "2026-05-01 23:59:59.999999", due="2026-05-03 00:00")
            f.step(conn, late, "reported", "2026-05-01 23:59:59.999999+08")
            f.step(conn, late, "handling", "2026-05-02 00:00+08")
            f.step(conn, late, "feedback", "2026-05-02 12:00+08")
            f.step(conn, late, "verified", "2026-05-02 20:00+08")
            f.step(conn, late, "closed", "2026-05-03 00:00+08")  # at its deadline, on time
            early = _incident(conn, "N2", "2026-05-02 00:00", due="2026-05-04 00:00")
            f.step(conn, early, "reported", "2026-05-02 00:00+08")
            f.step(conn, early, "handling", "2026-05-02 08:00+08")
            # irregular: no step logged at all (status_at NULL), so its stored state
            # cannot stand for any T; the schema refuses the other kinds (an extension
            # into the past, a step before the report), but the sums do not rely on that
            _incident(conn, "N3", "2026-05-02 10:00", due="2026-05-03 10:00")
            kpi_summary.refresh(conn)
            irregular = conn.execute(
                text("SELECT count(*) FROM incident WHERE status_at IS NULL")
            ).scalar_one()
            assert irregular == 1
        cases = [
            ("2026-05-01", "2026-05-02", None),
            ("2026-05-02", "2026-05-03", None),
            ("2026-05-03", "2026-05-04", None),
            ("2026-05-02", "2026-05-03", "2026-05-03"),
            ("2026-05-01", "2026-05-05", "2026-05-04"),
            ("2026-05-01", "2026-05-05", "2026-05-05"),
        ]
        with eng.connect() as conn:
            assert kpi_summary.usable(conn, RULE)
            _check(conn, spy, cases, [f.STREET, None])
            day1 = kp.kpis(conn, unit=f.STREET, start="2026-05-01", end="2026-05-02")
            day2 = kp.kpis(conn, unit=f.STREET, start="2026-05-02", end="2026-05-03")
            day3 = kp.kpis(conn, unit=f.STREET, start="2026-05-03", end="2026-05-04")
            overdue = kp.kpis(conn, unit=f.STREET, start="2026-05-01", end="2026-05-05")
        assert (day1.figures.reported, day2.figures.reported) == (1, 2)
        assert day1.figures.reported_closed == 0  # closed after that period's T
        assert (day2.figures.closed, day3.figures.closed) == (0, 1)
        assert (day3.figures.due, day3.figures.due_on_time) == (2, 1)  # N1 on time, N3 not
        # N2 (due at the 05-04 midnight) and N3 (never moved, due 05-03 10:00)
        assert overdue.figures.open_overdue == 2
    finally:
        eng.dispose()
        server.drop(name)


def _incident(conn: Connection, code: str, reported: str, *, due: str) -> int:
    rep = dt.datetime.fromisoformat(reported).replace(tzinfo=TZ)
    return int(
        conn.execute(
            text(
                "INSERT INTO incident (code, category_code, source, severity, title, "
                "occurred_at, reported_at, due_at, grid_code, street_code, geom) "
                "VALUES (:code, '0301', 'patrol', 1, '测试', :occ, :rep, :due, :g, :s, "
                "ST_GeomFromText(:p, 4490)) RETURNING id"
            ),
            {
                "code": code,
                "occ": rep - dt.timedelta(minutes=5),
                "rep": rep,
                "due": dt.datetime.fromisoformat(due).replace(tzinfo=TZ),
                "g": f.GRID,
                "s": f.STREET,
                "p": f.INSIDE,
            },
        ).scalar_one()
    )


# --- writes, loads and reloads --------------------------------------------------------------------


def test_writes_without_refresh_fall_back(hand_engine: Engine, spy: _Spy) -> None:
    with hand_engine.begin() as conn:
        assert kpi_summary.usable(conn, RULE)
        inc = _incident(conn, "W1", "2026-03-20 10:00", due="2026-03-22 10:00")
        assert not kpi_summary.usable(conn, RULE)
        got, ref = _both(
            conn,
            lambda c: kp.kpis(c, unit=f.STREET, start="2026-03-01", end="2026-04-01"),
            spy,
            fast=False,
        )
        _same_report(got, ref)
        f.step(conn, inc, "reported", "2026-03-20 10:00+08")
        kpi_summary.refresh(conn)
        assert kpi_summary.usable(conn, RULE)
        _check(conn, spy, HAND_CASES[:2], [f.STREET])
        conn.rollback()


def _dump(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _demo_cases(conn: Connection) -> list[tuple]:
    last = conn.execute(
        text("SELECT max(reported_at AT TIME ZONE 'Asia/Shanghai') FROM incident")
    ).scalar_one()
    end = last.date() + dt.timedelta(days=1)
    month = end.replace(day=1)
    return [
        (end - dt.timedelta(days=365), end, None),  # the benchmark's year
        (month - dt.timedelta(days=1), end, None),
        ((month - dt.timedelta(days=40)).replace(day=1), month, None),  # whole months
        ((month - dt.timedelta(days=40)).replace(day=1), month, end),  # T later
    ]


def test_loads_and_reloads_keep_the_sums_exact(
    demo_copy: Engine, spy: _Spy, tmp_path: Path
) -> None:
    eng = demo_copy
    with eng.connect() as conn:
        assert kpi_summary.usable(conn, RULE)
        near = conn.execute(
            text(
                "SELECT i.code, i.category_code, ST_X(i.geom), ST_Y(i.geom), "
                "i.reported_at AT TIME ZONE 'Asia/Shanghai', "
                "i.closed_at AT TIME ZONE 'Asia/Shanghai', i.tier FROM incident i "
                "WHERE i.status = 'closed' ORDER BY i.reported_at DESC LIMIT 3"
            )
        ).all()
        street = conn.execute(text("SELECT min(street_code) FROM incident")).scalar_one()
    # new incidents: two 10 m from recent closed ones (repeats), one across a Beijing
    # midnight, one 45 m away in another subcategory
    rows = []
    for k, (_code, cat, x, y, rep, _closed, _tier) in enumerate(near[:2]):
        t = rep + dt.timedelta(days=3)
        rows.append(_new(f"KS{k}", cat, x + 0.0001, y, t))
    t_mid = near[2][4].replace(hour=23, minute=59, second=59, microsecond=0)
    rows.append(_new("KS8", near[2][1], near[2][2], near[2][3] + 0.001, t_mid))
    rows.append(
        _new("KS9", "0101", near[2][2], near[2][3] + 0.0004, t_mid + dt.timedelta(seconds=1))
    )
    inc_csv = _dump(tmp_path / "incidents.csv", rows)
    report = le.load_file(eng, "incidents", inc_csv, le.Options())
    assert report.inserted == 4, report
    with eng.connect() as conn:
        assert kpi_summary.usable(conn, RULE)
        repeats = conn.execute(
            text(
                "SELECT count(*) FROM incident_repeat r JOIN incident i ON i.id = r.incident_id "
                "WHERE i.code IN ('KS0', 'KS1')"
            )
        ).scalar_one()
        assert repeats == 2
        _check(conn, spy, _demo_cases(conn), [street])

    # steps: the new ones move on; a closed demo incident is reopened; one is extended
    reopen = near[0][0]
    steps = []
    for r in rows:
        t = dt.datetime.fromisoformat(r["reported_at"])
        steps += [
            _step(r["code"], t, "reported"),
            _step(r["code"], t + dt.timedelta(hours=1), "handling"),
        ]
    steps += [
        _step(
            rows[0]["code"],
            dt.datetime.fromisoformat(rows[0]["reported_at"]) + dt.timedelta(hours=2),
            "extended",
            new_due=dt.datetime.fromisoformat(rows[0]["reported_at"]) + dt.timedelta(days=9),
        ),
        _step(
            rows[1]["code"],
            dt.datetime.fromisoformat(rows[1]["reported_at"]) + dt.timedelta(hours=5),
            "feedback",
        ),
        _step(
            rows[1]["code"],
            dt.datetime.fromisoformat(rows[1]["reported_at"]) + dt.timedelta(hours=6),
            "verified",
        ),
        _step(
            rows[1]["code"],
            dt.datetime.fromisoformat(rows[1]["reported_at"]) + dt.timedelta(days=1),
            "closed",
        ),
        _step(reopen, near[0][5] + dt.timedelta(hours=1), "reopened", tier=near[0][6]),
        _step(reopen, near[0][5] + dt.timedelta(hours=2), "handling", tier=near[0][6]),
    ]
    report = le.load_file(eng, "transitions", _dump(tmp_path / "steps.csv", steps), le.Options())
    assert report.inserted == len(steps), report.rejected
    with eng.begin() as conn:
        assert kpi_summary.usable(conn, RULE)
        _check(conn, spy, _demo_cases(conn), [street])
        _same_as_rebuild(conn)
        conn.rollback()

    # reload: KS0 moved 200 m away (no longer a repeat), east or west, whichever stays in
    # its street (the load rejects an incident outside every street), and reported 3 hours later
    moved = dict(rows[0])
    with eng.connect() as conn:
        lon = next(
            lon
            for lon in (float(moved["lon"]) + d for d in (0.0025, -0.0025))
            if conn.execute(
                text(
                    "SELECT ST_Covers(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4490)) "
                    "FROM admin_unit WHERE code = :street"
                ),
                {"lon": lon, "lat": float(moved["lat"]), "street": street},
            ).scalar_one()
        )
    moved["lon"] = f"{lon:.7f}"
    t0 = dt.datetime.fromisoformat(moved["reported_at"])
    moved["reported_at"] = (t0 + dt.timedelta(hours=3)).isoformat(sep=" ")
    report = le.load_file(eng, "incidents", _dump(tmp_path / "re.csv", [moved]), le.Options())
    assert report.updated == 1, report
    with eng.begin() as conn:
        assert kpi_summary.usable(conn, RULE)
        flag = conn.execute(
            text(
                "SELECT count(*) FROM incident_repeat r JOIN incident i ON i.id = r.incident_id "
                "WHERE i.code = 'KS0'"
            )
        ).scalar_one()
        assert flag == 0
        _check(conn, spy, _demo_cases(conn), [street])
        _same_as_rebuild(conn)
        conn.rollback()


def _new(code: str, cat: str, x: float, y: float, t: dt.datetime) -> dict[str, Any]:
    return {
        "code": code,
        "category_code": cat,
        "source": "patrol",
        "severity": 2,
        "title": "汇总测试",
        "address": "",
        "occurred_at": (t - dt.timedelta(minutes=20)).isoformat(sep=" "),
        "reported_at": t.isoformat(sep=" "),
        "lon": f"{x:.7f}",
        "lat": f"{y:.7f}",
    }


def _step(
    code: str,
    at: dt.datetime,
    status: str,
    *,
    new_due: dt.datetime | None = None,
    tier: str = "grid",
) -> dict[str, Any]:
    return {
        "incident_code": code,
        "at": at.isoformat(sep=" "),
        "to_status": status,
        "tier": tier,
        "actor": "W1",
        "new_due_at": new_due.isoformat(sep=" ") if new_due else "",
    }
