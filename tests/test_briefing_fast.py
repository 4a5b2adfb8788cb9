"""What makes the briefing fast, against the ways it replaces, on the street demo:
incidents reported per grid (geo.grid_reported) equal ``reported`` of
geo.kpis.kpis_by_unit at grid level; the buildings read by one CSV COPY
(store.coverage_sql.buildings) equal the row fetch, whatever the addresses hold; the
maps' polygons filled without a patch each are the pixels geopandas draws."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import geopandas as gpd
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, text

from dashboard.briefing import maps
from geo.grid_reported import reported_by_grid
from geo.kpis import kpis_by_unit
from store import coverage_sql, queries
from store.settings import get_settings


@pytest.fixture(scope="module")
def codes(demo_engine: Engine) -> tuple[str, str, dt.date]:
    """The demo's district and street codes and its last day of incidents."""
    with demo_engine.connect() as conn:
        district = conn.execute(
            text("SELECT code FROM admin_unit WHERE level = 'district'")
        ).scalar_one()
        (street,) = queries.street_names(conn)
        last = queries.summary(conn).last_reported
    return district, street, last.astimezone(ZoneInfo(get_settings().timezone)).date()


def _nonzero(kpi_reported: pd.Series) -> pd.Series:
    """The units kpis_by_unit counts an incident in (it lists the others with 0)."""
    return kpi_reported[kpi_reported > 0].astype("int64")


@pytest.mark.parametrize("scope", ["all", "district", "street"])
def test_reported_by_grid_equals_kpis_by_unit(demo_engine: Engine, codes, scope: str) -> None:
    district, street, last = codes
    within = {"all": None, "district": district, "street": street}[scope]
    month = last.replace(day=1)
    periods = [
        (month, last + dt.timedelta(days=1), None),  # the briefing's month to date
        (month - dt.timedelta(days=61), month, None),  # two whole months before
        (month, last + dt.timedelta(days=1), last),  # as of the last day's midnight
        (month, last + dt.timedelta(days=1), f"{last}T13:30:00"),  # cut inside a day
    ]
    with demo_engine.connect() as conn:
        for start, end, as_of in periods:
            want = kpis_by_unit(
                conn, "grid", start, end, within=within, as_of=as_of, previous=False
            ).current["reported"]
            got = reported_by_grid(conn, start, end, within=within, as_of=as_of)
            assert want.sum() > 0, (start, end, as_of)
            assert got.to_dict() == _nonzero(want).to_dict(), (start, end, as_of)
            assert got.dtype == "int64" and got.index.is_unique
            assert got.name == "reported" and got.index.name == "unit"


def test_reported_by_grid_counts_incidents_outside_every_grid(demo_engine, codes) -> None:
    """The incidents with no grid are counted under a missing code, as kpis_by_unit
    does: those of the period planted outside the street, and three more moved out of
    their grid here."""
    district, _, last = codes
    start, end = last.replace(day=1), last + dt.timedelta(days=1)
    t0 = dt.datetime.combine(start, dt.time(), ZoneInfo("Asia/Shanghai"))
    t1 = dt.datetime.combine(end, dt.time(), ZoneInfo("Asia/Shanghai"))
    with demo_engine.connect() as conn:
        tx = conn.begin()
        try:
            planted = conn.execute(
                text(
                    "SELECT count(*) FROM incident WHERE grid_code IS NULL "
                    "AND reported_at >= :t0 AND reported_at < :t1"
                ),
                {"t0": t0, "t1": t1},
            ).scalar_one()
            moved = conn.execute(
                text(
                    "UPDATE incident SET grid_code = NULL WHERE id IN (SELECT id FROM incident "
                    "WHERE reported_at >= :t0 AND reported_at < :t1 AND grid_code IS NOT NULL "
                    "ORDER BY id LIMIT 3) RETURNING id"
                ),
                {"t0": t0, "t1": t1},
            ).all()
            assert len(moved) == 3
            got = reported_by_grid(conn, start, end, within=district)
            want = kpis_by_unit(conn, "grid", start, end, within=district, previous=False)
        finally:
            tx.rollback()
    missing = want.current.index.isna()
    n = planted + 3
    assert got[got.index.isna()].tolist() == [n] == want.current.loc[missing, "reported"].tolist()


def test_reported_by_grid_refuses_a_community(demo_engine, codes) -> None:
    _, street, last = codes
    with demo_engine.connect() as conn, pytest.raises(ValueError, match="district or street"):
        reported_by_grid(conn, last, last + dt.timedelta(days=1), within=street[:9] + "001")


def _row_fetch(conn: Connection, street: str | None) -> pd.DataFrame:
    """The buildings as the row fetch read them before the COPY."""
    return coverage_sql._frame(conn, coverage_sql._BUILDINGS, {"street": street})


def test_buildings_by_copy_equal_the_row_fetch(demo_engine: Engine, codes) -> None:
    _, street, _ = codes
    with demo_engine.connect() as conn:
        for scope in (None, street, "370000999000"):
            got = coverage_sql.buildings(conn, street=scope)
            want = _row_fetch(conn, scope)
            pd.testing.assert_frame_equal(got, want, check_exact=True)
        assert len(coverage_sql.buildings(conn)) > 100


#: Text PostgreSQL stores (no NUL), biased to what CSV must quote or could misread.
_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(',"\n\r\\ \t;NULL\\N号楼栋')),
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(addresses=st.lists(_TEXT, min_size=3, max_size=3), no_grid=st.booleans())
def test_buildings_by_copy_keep_any_address(demo_engine: Engine, addresses, no_grid) -> None:
    """Empty strings stay empty, NULL stays missing, quotes, commas, line breaks and
    backslashes come back as stored."""
    with demo_engine.connect() as conn:
        tx = conn.begin()
        try:
            ids = conn.execute(text("SELECT id FROM building ORDER BY id LIMIT 3")).scalars().all()
            for bid, address in zip(ids, addresses, strict=True):
                conn.execute(
                    text("UPDATE building SET address = :a WHERE id = :id"),
                    {"a": address, "id": bid},
                )
            if no_grid:
                conn.execute(
                    text("UPDATE building SET grid_code = NULL WHERE id = :id"), {"id": ids[0]}
                )
            got = coverage_sql.buildings(conn)
            want = _row_fetch(conn, None)
        finally:
            tx.rollback()
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got.set_index("building_id").loc[ids, "address"].tolist() == addresses
    assert pd.isna(got.set_index("building_id").loc[ids[0], "grid_code"]) == no_grid


def _by_geopandas(ax, shapes, color, *, edgecolor, linewidth) -> None:
    shapes.plot(ax=ax, color=color, edgecolor=edgecolor, linewidth=linewidth)


def _png(fill, shapes, color, edge: str, width: float) -> bytes:
    fig, ax = maps._axes()
    fill(ax, shapes, color, edgecolor=edge, linewidth=width)
    return maps._png(fig)


def test_fill_draws_what_geopandas_draws() -> None:
    """Holes, multipolygons, an empty and a missing geometry, one colour or one each, with
    and without edges: the same PNG bytes as ``GeoDataFrame.plot``."""
    from shapely import box
    from shapely.geometry import MultiPolygon, Polygon

    ring = Polygon([(0, 0), (4, 0), (4, 4), (0, 4)], holes=[[(1, 1), (1, 2), (2, 2), (2, 1)]])
    shapes = gpd.GeoDataFrame(
        geometry=[
            ring,
            MultiPolygon([box(5, 0, 6, 1), box(7, 0, 8, 2)]),
            Polygon(),
            None,
            box(0, 5, 3, 6).buffer(0.5),
        ],
        crs=3857,
    )
    colours = ["#d7191c", "#fdae61", "#a6d96a", "#1a9641", "#2b83ba"]
    for color in (colours, "#eeeeee"):
        for edge, width in (("#666666", 0.4), ("white", 0.0)):
            want = _png(_by_geopandas, shapes, color, edge, width)
            assert _png(maps._fill, shapes, color, edge, width) == want, (color, edge, width)


@pytest.mark.parametrize("parallel", [True, False])
def test_a_section_waiting_for_a_failed_one_gets_its_error(demo_engine: Engine, parallel) -> None:
    """The coverage waits for the hot spots (gather's ``settle``): when the hot spots
    fail, the wait ends with their error instead of hanging."""
    from concurrent.futures import Future

    from dashboard.briefing.data import _concurrently, _Failed

    waited: Future = Future()

    def waits(c: Connection) -> int:
        return waited.result(timeout=60)

    def fails(c: Connection) -> int:
        raise RuntimeError("hot spots failed")

    jobs = {"waits": waits, "fails": fails} if parallel else {"fails": fails, "waits": waits}
    with demo_engine.connect() as conn:
        out = _concurrently(conn, jobs, {}, parallel, settle={"fails": waited})
    for name in ("waits", "fails"):
        assert isinstance(out[name], _Failed)
        assert str(out[name].error) == "hot spots failed"
