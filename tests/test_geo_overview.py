"""geo.overview on the street demo in PostGIS: the per-grid indicators agree with
independent reads of the store (the hotspot counts, the worker compliance) and the
overview queries filter as documented."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from geo import coverage, kpis
from geo import overview as go
from geo.period import as_instant
from store import overview_sql, queries
from store.settings import get_settings

START, END = dt.date(2026, 9, 1), dt.date(2026, 11, 21)


@pytest.fixture(scope="module")
def street(demo_engine: Engine) -> str:
    with demo_engine.connect() as conn:
        (code,) = queries.street_names(conn)
    return code


def test_per_1000_matches_counts_read_independently(demo_engine: Engine, street: str) -> None:
    with demo_engine.connect() as conn:
        unit = go.grid_kpis(conn, START, END, street=street)
        grids = overview_sql.map_grids(conn, street=street)
        counts = queries.grid_incident_counts(
            conn, street_code=street, since=as_instant(START), until=as_instant(END), category="01"
        ).set_index("code")["incidents"]
    households = grids.set_index("code")["households"]
    per = go.grid_indicator(unit, "per_1000", households=households, category="01")
    assert set(per.index) == set(grids["code"])
    expected = counts.reindex(per.index) * 1000 / households.reindex(per.index)
    np.testing.assert_allclose(per.to_numpy(), expected.to_numpy())
    assert go.grid_indicator(unit, "per_1000", households=households).sum() > per.sum()


def test_rates_are_kpis_by_unit(demo_engine: Engine, street: str) -> None:
    with demo_engine.connect() as conn:
        unit = go.grid_kpis(conn, START, END, street=street)
        one = kpis.kpis(conn, unit=unit.current.index[0], start=START, end=END, repeats=False)
    closure = go.grid_indicator(unit, "closure_rate")
    assert closure.iloc[0] == pytest.approx(one.figures.closure_rate)
    with pytest.raises(ValueError, match="indicator must be one of"):
        go.grid_indicator(unit, "happiness")


def test_two_patrol_is_the_grid_workers_compliance(demo_engine: Engine, street: str) -> None:
    with demo_engine.connect() as conn:
        window = go.patrol_window(conn, START, END, street=street)
        assert window is not None and window[0] > START  # tracks start later than the period
        a, b = window[0], min(window[1], window[0] + dt.timedelta(days=6))
        grids = overview_sql.map_grids(conn, street=street)
        two = go.grid_two_patrol(conn, a, b, street=street)
        shares = coverage.patrol_compliance(conn, a, b, street=street)
    by_name = shares.set_index("worker_name")["share"]
    worker = grids.set_index("code")["worker_name"]
    for code, value in two.items():
        assert value == pytest.approx(by_name[worker[code]])
    with demo_engine.connect() as conn:
        assert go.patrol_window(conn, dt.date(2020, 1, 1), dt.date(2020, 2, 1)) is None


def test_overview_incident_filters(demo_engine: Engine, street: str) -> None:
    with demo_engine.connect() as conn:
        since, until = as_instant(START), as_instant(END)
        every = overview_sql.map_incidents(conn, since=since, until=until, street=street)
        open_ = overview_sql.map_incidents(
            conn, since=since, until=until, street=street, status="closed"
        )
        cat = overview_sql.map_incidents(conn, since=since, until=until, category="03")
        grid = every["grid_code"].dropna().iloc[0]
        in_grid = overview_sql.map_incidents(conn, since=since, until=until, grid=grid)
        one = overview_sql.incident_by_code(conn, every["code"].iloc[0])
        contacts = overview_sql.grid_contacts(conn, grid)
        population = overview_sql.grid_population(conn, grid)
    assert (open_["status"] == "closed").all() and 0 < len(open_) <= len(every)
    assert cat["category_code"].str.startswith("03").all() and len(cat) > 0
    assert (in_grid["grid_code"] == grid).all()
    assert len(one) == 1 and one.crs.to_epsg() == 4326
    assert not contacts.duplicated(["role", "name", "phone"]).any()
    assert population["households"] >= 0 and set(population) == set(overview_sql.POPULATION_FIGURES)
    tz = ZoneInfo(get_settings().timezone)
    assert pd.Timestamp(every["reported_at"].min()).tz_convert(tz).date() >= START


@pytest.mark.parametrize(("category", "status"), [(None, None), ("03", None), (None, "closed")])
def test_incident_counts_per_grid_are_the_incidents_read_one_by_one(
    demo_engine: Engine, street: str, category: str | None, status: str | None
) -> None:
    """The counts drawn when there are too many points are the points, grouped per grid;
    the total is the number of points (outside-grid incidents included)."""
    with demo_engine.connect() as conn:
        since, until = as_instant(START), as_instant(END)
        kw = {"street": street, "category": category, "status": status}
        points = overview_sql.map_incidents(conn, since=since, until=until, **kw)
        by_cat = overview_sql.incident_counts(conn, since=since, until=until, **kw)
        by_status = overview_sql.incident_counts(
            conn, since=since, until=until, by_status=True, **kw
        )
        total = overview_sql.incident_total(conn, since=since, until=until, **kw)
    assert total == len(points) > 0
    expected = points.dropna(subset=["grid_code"]).groupby("grid_code").size()
    got = by_cat.set_index("grid_code")["count"]
    assert got.sort_index().to_dict() == expected.sort_index().to_dict()
    assert by_cat.crs.to_epsg() == 4326
    # the colour key is the most frequent group (ties: the lowest code) / status
    in_grid = points.dropna(subset=["grid_code"])
    for key_col, frame, keys in (
        ("category_group", by_cat, in_grid["category_group"]),
        ("status", by_status, in_grid["status"]),
    ):
        per = in_grid.assign(k=keys).groupby(["grid_code", "k"]).size().reset_index(name="n")
        top = per.sort_values(["grid_code", "n", "k"], ascending=[True, False, True])
        top = top.drop_duplicates("grid_code").set_index("grid_code")["k"]
        assert frame.set_index("grid_code")["top_key"].to_dict() == top.to_dict(), key_col
