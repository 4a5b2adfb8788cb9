"""Incident trend (geo/trend.py, store/incident_trend_sql.py) on the demo street: each bin
equals a plain-SQL count written differently (local days from Python, bins cut in pandas),
the bins add up to geo.kpis' reported figure, and filters narrow the counts."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from geo import kpis as kp
from geo.trend import bin_start, bin_starts, incident_trend

TZ = ZoneInfo("Asia/Shanghai")
DEMO_STREET = "370214900000"


def _plain(engine: Engine, start: dt.date, end: dt.date, **where: str) -> pd.DataFrame:
    """Every incident of the demo street reported in [start, end): local day, category."""
    sql = "SELECT reported_at, category_code, grid_code FROM incident WHERE street_code = :s"
    with engine.connect() as conn:
        rows = conn.execute(text(sql), {"s": DEMO_STREET}).all()
    df = pd.DataFrame(rows, columns=["reported_at", "category_code", "grid_code"])
    df["day"] = [ts.astimezone(TZ).date() for ts in df["reported_at"]]
    df = df[(df["day"] >= start) & (df["day"] < end)]
    if "category" in where:
        df = df[df["category_code"].str.startswith(where["category"])]
    if "community" in where:
        df = df[df["grid_code"].str[:12] == where["community"]]
    return df


@pytest.mark.parametrize("bin", ["week", "month"])
def test_bins_equal_a_plain_count(demo_engine: Engine, bin: str) -> None:
    start, end = dt.date(2026, 6, 10), dt.date(2026, 11, 21)
    with demo_engine.connect() as conn:
        trend = incident_trend(conn, unit=DEMO_STREET, start=start, end=end, bin=bin)  # type: ignore[arg-type]
    plain = _plain(demo_engine, start, end)
    plain["bin_start"] = [bin_start(d, bin) for d in plain["day"]]  # type: ignore[arg-type]
    expected = plain.groupby("bin_start").size()
    got = trend.totals.set_index("bin_start")["reported"]
    assert list(got.index) == bin_starts(start, end, bin)  # type: ignore[arg-type]
    assert got[got > 0].to_dict() == expected.to_dict()
    assert got.sum() == len(plain) > 100
    by_cat = plain.assign(cat=plain["category_code"].str[:2]).groupby(["bin_start", "cat"]).size()
    got_cat = trend.counts.set_index(["bin_start", "category_code"])["reported"]
    assert got_cat.to_dict() == by_cat.to_dict()


def test_bins_add_up_to_the_kpi_reported_figure(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        trend = incident_trend(conn, unit=DEMO_STREET, start="2026-08-01", end="2026-11-01")
        report = kp.kpis(conn, unit=DEMO_STREET, start="2026-08-01", end="2026-11-01")
    assert int(trend.totals["reported"].sum()) == report.figures.reported > 0


def test_category_and_community_filters(demo_engine: Engine) -> None:
    start, end = dt.date(2026, 1, 1), dt.date(2026, 11, 21)
    community = DEMO_STREET[:9] + "003"
    with demo_engine.connect() as conn:
        cat = incident_trend(conn, unit=DEMO_STREET, start=start, end=end, category="03")
        sub = incident_trend(
            conn, unit=community, start=start, end=end, category="0301", bin="month"
        )
    n_cat = len(_plain(demo_engine, start, end, category="03"))
    n_sub = len(_plain(demo_engine, start, end, category="0301", community=community))
    assert int(cat.totals["reported"].sum()) == n_cat > 0
    assert set(cat.counts["category_code"]) == {"03"}
    assert int(sub.totals["reported"].sum()) == n_sub > 0
    assert n_sub < n_cat


def test_bad_arguments_are_refused(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        with pytest.raises(ValueError, match="bin must be"):
            incident_trend(conn, start="2026-01-01", end="2026-02-01", bin="day")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="category must be"):
            incident_trend(conn, start="2026-01-01", end="2026-02-01", category="3; drop")
        with pytest.raises(ValueError, match="must come after"):
            incident_trend(conn, start="2026-02-01", end="2026-01-01")


@given(
    st.dates(dt.date(2020, 1, 1), dt.date(2030, 12, 31)),
    st.integers(1, 400),
    st.sampled_from(["week", "month"]),
)
def test_bin_starts_cover_the_period(start: dt.date, days: int, bin: str) -> None:
    end = start + dt.timedelta(days=days)
    starts = bin_starts(start, end, bin)  # type: ignore[arg-type]
    assert starts[0] <= start < (starts[1] if len(starts) > 1 else end + dt.timedelta(days=31))
    assert starts[-1] < end
    every_day = {bin_start(start + dt.timedelta(days=k), bin) for k in range(days)}  # type: ignore[arg-type]
    assert every_day == set(starts)
    assert starts == sorted(set(starts))
