"""Stored building coverage (geo/coverage_store.py, migration 0007) against the live
computation (geo.coverage.last_passed) on the street demo: equal for the district and the
street, before and after one day's tracks are reloaded; a reload drops exactly that day;
a window with a day missing, other thresholds or another time zone is not answered from
the store."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import geopandas as gpd
import pandas as pd
import pytest
from geopandas.testing import assert_geodataframe_equal
from sqlalchemy import Engine, text

from geo import coverage_store
from geo.coverage import last_passed, unvisited_buildings
from geo.settings import CoverageParams
from tests import conftest

TZ = "Asia/Shanghai"
DAYS = 7


@pytest.fixture(scope="module")
def demo_rw(
    server: conftest.TestServer, template_db: str, demo, tmp_path_factory
) -> Iterator[Engine]:
    """A database of its own holding the street demo (these tests write to it)."""
    from loaders.demo.load import write_demo
    from store.db import make_engine

    name = server.create("covstore", template=template_db)
    eng = make_engine(server.url(name))
    write_demo(eng, demo, truth_path=tmp_path_factory.mktemp("truth") / "truth.json")
    yield eng
    eng.dispose()
    server.drop(name)


def _last_day(demo) -> dt.date:
    return dt.date.fromisoformat(demo.truth["patrols"]["workdays"][-1])


def _window(as_of: dt.date, days: int = DAYS) -> list[dt.date]:
    return [as_of - dt.timedelta(days=k) for k in range(days)]


def _street(engine: Engine) -> str:
    with engine.connect() as c:
        return c.execute(text("SELECT code FROM admin_unit WHERE level = 'street'")).scalar_one()


def _assert_same(stored: gpd.GeoDataFrame | None, live: gpd.GeoDataFrame) -> None:
    assert stored is not None
    assert stored.crs == live.crs
    assert stored.geometry.equals(live.geometry)
    assert_geodataframe_equal(stored, live)
    # bit for bit, times included (stored as the live float8 epoch seconds)
    pd.testing.assert_frame_equal(
        pd.DataFrame(stored.drop(columns="geometry")),
        pd.DataFrame(live.drop(columns="geometry")),
        check_exact=True,
    )


def test_stored_equals_live_and_follows_a_reload(demo_rw: Engine, demo) -> None:
    as_of = _last_day(demo)
    street = _street(demo_rw)
    with demo_rw.connect() as c:
        assert coverage_store.last_passed(c, as_of, DAYS, timezone=TZ) is None  # nothing stored
        written = coverage_store.fill(c, _window(as_of), timezone=TZ)
        assert written == sorted(_window(as_of))
        assert coverage_store.fill(c, _window(as_of), timezone=TZ) == []  # nothing to redo
        before = {}
        for scope in (None, street):
            live = last_passed(c, as_of, DAYS, street=scope, timezone=TZ)
            assert live["last_passed_at"].notna().any() and live["last_passed_at"].isna().any()
            _assert_same(
                coverage_store.last_passed(c, as_of, DAYS, street=scope, timezone=TZ), live
            )
            before[scope] = live
        # the not-passed lists too
        got, from_store = coverage_store.unvisited_buildings(c, as_of, (3, DAYS), street)
        assert from_store
        pd.testing.assert_frame_equal(
            pd.DataFrame(got),
            pd.DataFrame(unvisited_buildings(c, as_of, (3, DAYS), street, timezone=TZ)),
            check_exact=True,
        )
        # a shorter window inside the stored days is answered too
        _assert_same(
            coverage_store.last_passed(c, as_of, 3, timezone=TZ),
            last_passed(c, as_of, 3, timezone=TZ),
        )
        # a longer one reaches days not stored: not answered
        assert coverage_store.last_passed(c, as_of, DAYS + 1, timezone=TZ) is None
        # other thresholds or another time zone: not answered
        other = CoverageParams(building_radius_m=30.0)
        assert coverage_store.last_passed(c, as_of, DAYS, params=other, timezone=TZ) is None
        assert coverage_store.last_passed(c, as_of, DAYS, timezone="UTC") is None
        c.commit()

    # reload the last day's tracks: its fixes deleted, and written again without the
    # afternoon (what a corrected export of that day would do)
    t0 = dt.datetime.combine(as_of, dt.time(0), tzinfo=dt.timezone(dt.timedelta(hours=8)))
    noon, t1 = t0 + dt.timedelta(hours=12), t0 + dt.timedelta(days=1)
    with demo_rw.begin() as c:
        c.execute(
            text(
                "CREATE TEMPORARY TABLE reload ON COMMIT DROP AS SELECT * FROM patrol_fix "
                "WHERE fixed_at >= :t0 AND fixed_at < :noon"
            ),
            {"t0": t0, "noon": noon},
        )
        c.execute(
            text("DELETE FROM patrol_fix WHERE fixed_at >= :t0 AND fixed_at < :t1"),
            {"t0": t0, "t1": t1},
        )
        c.execute(text("INSERT INTO patrol_fix SELECT * FROM reload"))
    with demo_rw.connect() as c:
        days = set(c.execute(text("SELECT day FROM coverage_day")).scalars())
        assert days == set(_window(as_of)) - {as_of}  # that day only is dropped
        n = c.execute(
            text("SELECT count(*) FROM coverage_building_day WHERE day = :d"), {"d": as_of}
        ).scalar_one()
        assert n == 0  # its buildings' rows went with it
        assert coverage_store.last_passed(c, as_of, DAYS, timezone=TZ) is None
        assert (
            coverage_store.last_passed(c, as_of - dt.timedelta(days=1), 3, timezone=TZ) is not None
        )
        assert coverage_store.fill(c, _window(as_of), timezone=TZ) == [as_of]
        for scope in (None, street):
            live = last_passed(c, as_of, DAYS, street=scope, timezone=TZ)
            # the reload changed the answer (else this test could not fail)
            assert not live["last_passed_at"].equals(before[scope]["last_passed_at"])
            _assert_same(
                coverage_store.last_passed(c, as_of, DAYS, street=scope, timezone=TZ), live
            )
        c.commit()


def test_changed_buildings_drop_every_stored_day(demo_rw: Engine, demo) -> None:
    as_of = _last_day(demo)
    with demo_rw.connect() as c:
        coverage_store.fill(c, _window(as_of, 2), timezone=TZ)
        assert c.execute(text("SELECT count(*) FROM coverage_day")).scalar_one() >= 2
        c.execute(
            text("UPDATE building SET address = address WHERE id = (SELECT min(id) FROM building)")
        )
        assert c.execute(text("SELECT count(*) FROM coverage_day")).scalar_one() == 0
        c.rollback()


def test_fill_and_read_on_an_empty_store(engine: Engine) -> None:
    """No grids: the live call refuses (no metric CRS), and so does the store."""
    with engine.connect() as c, pytest.raises(ValueError, match="没有网格"):
        coverage_store.last_passed(c, dt.date(2026, 11, 20), DAYS, timezone=TZ)
