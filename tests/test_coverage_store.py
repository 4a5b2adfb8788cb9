"""Stored building coverage (geo/coverage_store.py, migration 0006) against the live
computation (geo.coverage.last_passed) on the street demo: equal for the district and the
street, before and after one day's tracks are reloaded; a reload drops exactly that day;
a window with a day missing, other thresholds or another time zone is not answered from
the store."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator

import geopandas as gpd
import pandas as pd
import pytest
from geopandas.testing import assert_geodataframe_equal
from sqlalchemy import Engine, text

from geo import coverage_store
from geo.coverage import last_passed, unvisited_buildings
from geo.settings import CoverageParams
from store.settings import PROJECT_ROOT
from tests import conftest
from tests.test_kpi_summary import _same_report, _same_units

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


def test_briefing_side_by_side_from_the_store_equals_one_after_the_other_live(
    demo_rw: Engine, demo
) -> None:
    """The briefing built the new way (sections on their own connections, coverage from
    the stored days, KPIs from the per street and day sums, incidents per grid counted
    alone, two maps drawn early) holds the same figures and maps as the old way (one
    connection, one section after the other, coverage live from the fixes, KPIs from the
    incidents)."""
    from dashboard.briefing import build
    from store.watermark import Watermark

    wm = Watermark("测试", "test", dt.datetime(2026, 11, 30, 21, 45, tzinfo=dt.UTC))

    as_of = _last_day(demo)
    start, end = as_of.replace(day=1), as_of + dt.timedelta(days=1)
    with demo_rw.connect() as c:
        coverage_store.fill(c, _window(as_of), timezone=TZ)
        assert coverage_store.last_passed(c, as_of, DAYS, timezone=TZ) is not None
    for street in (None, _street(demo_rw)):
        made = {}
        for new in (True, False):
            with demo_rw.connect() as c:
                made[new] = build(
                    c,
                    street=street,
                    start=start,
                    end=end,
                    watermark=wm,
                    parallel=new,
                    stored=new,
                    docx=False,
                )
        a, b = made[True].data, made[False].data
        assert a.early_maps is not None and b.early_maps is None
        for attr in ("unit", "level", "name", "period", "previous_period"):
            assert getattr(a.report, attr) == getattr(b.report, attr), attr
        # the old way reads the KPIs from the incidents, the new one from the sums: a mean
        # or a rate may differ in its last bit (tests/test_kpi_summary.py's tolerance)
        _same_report(a.report, b.report)
        _same_units(a.by_unit, b.by_unit)
        for got, want in (
            (a.grid_rates, b.grid_rates),
            (a.outlines, b.outlines),
            (a.hot.units, b.hot.units),
            (a.buildings, b.buildings),
            (a.grid_coverage, b.grid_coverage),
            (a.under, b.under),
        ):
            pd.testing.assert_frame_equal(pd.DataFrame(got), pd.DataFrame(want), check_exact=True)
        for sa, sb in zip(made[True].document.sections, made[False].document.sections, strict=True):
            assert sa == sb, (sa, sb)


@pytest.fixture(scope="module")
def demo_app(server: conftest.TestServer, demo_rw: Engine, app_login) -> Iterator[Engine]:
    """``demo_rw``'s database as exactly gridone_app (what the dashboard connects as)."""
    from tests import access_data

    engine = access_data.app_engine(server, demo_rw.url.database or "", app_login)
    yield engine
    engine.dispose()


def _leader_token(demo_rw: Engine) -> str:
    from tests import access_data

    return access_data.session_token(demo_rw, "street", _street(demo_rw)[:9])


def test_helper_connections_read_the_leaders_snapshot_and_scope(
    demo_rw: Engine, demo_app: Engine
) -> None:
    """A helper joins the leader's snapshot and binds itself to the same session: it reads
    what the leader reads. Copying the leader's signed settings instead reads nothing (the
    signature covers the backend and the transaction)."""
    from store import briefing_sql
    from store.access import scoped

    token = _leader_token(demo_rw)
    count = text("SELECT (SELECT count(*) FROM data_source), (SELECT count(*) FROM incident)")
    with demo_app.connect() as lead:
        assert scoped(lead, token)
        assert briefing_sql.scope_set(lead)
        before = tuple(lead.execute(count).one())
        assert before[1] > 0
        view = briefing_sql.share_view(lead, token)
        with demo_rw.begin() as other:  # committed after the export
            other.execute(
                text(
                    "INSERT INTO data_source (kind, source, loaded_at, rows) "
                    "VALUES ('patrols', 'x', now(), 1)"
                )
            )
        with demo_app.connect() as helper:
            helper = helper.execution_options(isolation_level="REPEATABLE READ")
            briefing_sql.join_view(helper, view)
            assert tuple(helper.execute(count).one()) == before
            helper.rollback()
        names = ("role", "scope", "street_lo", "street_hi", "gcode_lo", "gcode_hi", "sig")
        settings = {
            n: lead.execute(
                text("SELECT current_setting(:n, true)"), {"n": f"gridone.{n}"}
            ).scalar_one()
            for n in names
        }
        with demo_app.connect() as copied:
            copied = copied.execution_options(isolation_level="REPEATABLE READ")
            briefing_sql.join_view(copied, briefing_sql.SharedView(view.snapshot))
            for n, v in settings.items():
                copied.execute(
                    text("SELECT set_config(:n, :v, true)"), {"n": f"gridone.{n}", "v": v}
                )
            assert tuple(copied.execute(count).one()) == (0, 0)
            copied.rollback()
        lead.rollback()
    with pytest.raises(ValueError, match="snapshot"):
        briefing_sql.join_view(lead, briefing_sql.SharedView("1'; DROP TABLE x; --"))


def test_scoped_briefing_side_by_side_equals_one_after_the_other(
    demo_rw: Engine, demo_app: Engine, demo
) -> None:
    """Built as a street leader through gridone_app: the sections side by side on helper
    connections bound to the same session give the figures of the sequential run, and of
    the owner's briefing of that street; without the token the scoped briefing runs one
    after the other (same figures), never on helpers that would read nothing."""
    from dashboard.briefing.data import gather
    from store.access import scoped

    token = _leader_token(demo_rw)
    street = _street(demo_rw)
    as_of = _last_day(demo)
    period = {"street": street, "start": as_of.replace(day=1), "end": as_of}
    with demo_rw.connect() as c:
        owner = gather(c, parallel=False, **period)
    made = {}
    for name, parallel, tok in (("side", True, token), ("seq", False, None), ("no", True, None)):
        with demo_app.connect() as c:
            assert scoped(c, token)
            made[name] = gather(c, parallel=parallel, token=tok, **period)
            c.rollback()
    assert set(made["side"].seconds) >= set(made["seq"].seconds)
    for data in made.values():
        for attr in ("unit", "level", "name", "period", "figures", "previous"):
            assert getattr(data.report, attr) == getattr(owner.report, attr), attr
        for got, want in (
            (data.report.categories, owner.report.categories),
            (data.report.overdue, owner.report.overdue),
            (data.by_unit.current, owner.by_unit.current),
            (data.grid_rates, owner.grid_rates),
            (data.hot.units, owner.hot.units),
            (data.buildings, owner.buildings),
            (data.under, owner.under),
        ):
            pd.testing.assert_frame_equal(pd.DataFrame(got), pd.DataFrame(want), check_exact=True)
    assert owner.report.figures.reported > 0


def test_reloading_a_days_tracks_with_the_loader_recomputes_that_day(
    demo_rw: Engine, demo, tmp_path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The whole path a street office takes: stored coverage filled by ``python -m geo
    coverage-store``; one day's tracks exported, corrected (the afternoon's fixes moved)
    and loaded again with ``python -m loaders load patrols``: the trigger drops that day,
    the loader's post-load step recomputes it, and the store answers the live figures."""
    from geo.__main__ import main as geo_cli
    from loaders.__main__ import main as loaders_cli
    from store.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", demo_rw.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        as_of = _last_day(demo)
        day = as_of - dt.timedelta(days=1)
        start = as_of - dt.timedelta(days=DAYS - 1)
        out = tmp_path / "filled.csv"
        args = ["coverage-store", "--from", str(start), "--to", str(as_of + dt.timedelta(1))]
        assert geo_cli([*args, "--out", str(out)]) == 0
        assert "已存储覆盖率" in capsys.readouterr().out
        with demo_rw.connect() as c:
            assert coverage_store.stored_days(c) >= set(_window(as_of))
            before = last_passed(c, as_of, DAYS, timezone=TZ)

        csv = tmp_path / "day.csv"
        where = [f"--where=fixed_at>={day}", f"--where=fixed_at<{as_of}"]
        assert loaders_cli(["export", "patrols", str(csv), *where]) == 0
        frame = pd.read_csv(csv, encoding="utf-8-sig")
        afternoon = pd.to_datetime(frame["fixed_at"]).map(lambda t: t.hour >= 12)
        assert afternoon.any()
        frame.loc[afternoon, "lon"] += 0.002  # about 180 m east
        frame.to_csv(csv, index=False, encoding="utf-8-sig")
        # as a street office runs it (its own process: the command leaves its engine to the
        # end of the process)
        run = subprocess.run(
            [sys.executable, "-m", "loaders", "load", "patrols", str(csv)],
            capture_output=True,
            text=True,
            env={**os.environ},
            cwd=PROJECT_ROOT,
            timeout=600,
        )
        assert run.returncode in (0, 1), run.stderr
        assert f"stored coverage recomputed for 1 day(s): {day}" in run.stdout

        with demo_rw.connect() as c:
            live = last_passed(c, as_of, DAYS, timezone=TZ)
            assert not live["last_passed_at"].equals(before["last_passed_at"])
            _assert_same(coverage_store.last_passed(c, as_of, DAYS, timezone=TZ), live)
    finally:
        get_settings.cache_clear()


def _community(engine: Engine) -> str:
    """The first community of the demo."""
    with engine.connect() as c:
        return c.execute(
            text("SELECT min(code) FROM admin_unit WHERE level = 'community'")
        ).scalar_one()


def test_unvisited_lists_from_the_store_equal_the_live_ones_in_every_scope(
    demo_rw: Engine, demo_app: Engine, demo
) -> None:
    """The 一张图 layer and the 巡查 lists (buildings not passed in 7 / 14 / 30 days) read
    from the stored days equal the day-by-day replay, as the dashboard reads them (through
    gridone_app, bound to a district, street or community user's session) and as the
    owner; a window with a day not stored falls back to the replay (same frame)."""
    from store.access import scoped

    as_of = _last_day(demo)
    windows = (7, 14, 30)
    street = _street(demo_rw)
    with demo_rw.connect() as c:
        coverage_store.fill(c, _window(as_of, 30), timezone=TZ)
    tokens = {
        "district": access_data_token(demo_rw, "district", street[:6]),
        "street": access_data_token(demo_rw, "street", street[:9]),
        "community": access_data_token(demo_rw, "community", _community(demo_rw)),
    }
    cases = [(None, None), (None, street)] + [(r, s) for r in tokens for s in (None, street)]
    for role, where in cases:
        engine = demo_rw if role is None else demo_app
        with engine.connect() as c:
            if role is not None:
                assert scoped(c, tokens[role])
            got, from_store = coverage_store.unvisited_buildings(
                c, as_of, windows, where, timezone=TZ
            )
            live = unvisited_buildings(c, as_of, windows, where, timezone=TZ)
            c.rollback()
        assert from_store, (role, where)
        assert len(live) > 0 or role == "community", (role, where)
        _assert_same(got, live)
    # the day after the last stored one is missing: replayed, as before
    with demo_app.connect() as c:
        assert scoped(c, tokens["street"])
        later = as_of + dt.timedelta(days=1)
        got, from_store = coverage_store.unvisited_buildings(c, later, windows, street, timezone=TZ)
        live = unvisited_buildings(c, later, windows, street, timezone=TZ)
        c.rollback()
    assert not from_store
    _assert_same(got, live)


def access_data_token(owner: Engine, role: str, prefix: str) -> str:
    """A live session token of a ``role`` user over ``prefix`` (tests.access_data)."""
    from tests import access_data

    return access_data.session_token(owner, role, prefix)
