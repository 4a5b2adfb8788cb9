"""Stored H3 cells of incidents (store/cells.py, migration 0009): the hexagon counts read
through them equal the counts of binning every point (the path before 0009), whatever the
filters, the resolution, the role, and whichever rows lack their cells; the cells stored
by every writer are the cells of the points; a moved point loses its cells."""

from __future__ import annotations

import os
from collections.abc import Iterator

import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from geo import units as gu
from geo.hotspots import hotspots, hotspots_for_units
from store import queries
from store.access import scoped
from store.cells import (
    CELL_COLUMNS,
    CELL_RESOLUTIONS,
    cells_missing,
    fill_incident_cells,
    incident_cells,
)
from store.db import make_engine
from tests import access_data, conftest

STREET = "370214900000"  # the demo street
SINCE = "2026-09-01T00:00:00+08:00"
UNTIL = "2026-11-01T00:00:00+08:00"
#: (street, start, end, category) filter combinations of the hotspot page
FILTERS = [
    (None, None, None, None),
    (STREET, SINCE, UNTIL, None),
    (None, SINCE, None, "04"),
    (STREET, None, UNTIL, "0302"),
    (STREET, "2030-01-01T00:00:00+08:00", None, None),  # no incident in the period
]


@pytest.fixture(scope="module")
def cells_db(
    server: conftest.TestServer, template_db: str, demo, tmp_path_factory
) -> Iterator[Engine]:
    """The street demo in a database of this module's own (tests here write to it)."""
    from loaders.demo.load import write_demo

    name = server.create(f"cells{os.getpid() % 1000}", template=template_db)
    engine = make_engine(server.url(name))
    write_demo(engine, demo, truth_path=tmp_path_factory.mktemp("truth") / "truth.json")
    yield engine
    engine.dispose()
    server.drop(name)


def _from_points(conn: Connection, street, start, end, category, resolution) -> gu.UnitCounts:
    """The hexagon counts as before 0009: every matching incident binned from its point."""
    lon, lat = queries.incident_lonlat(
        conn, street_code=street, since=start, until=end, category=category
    )
    return gu.hex_units_from_points(lon, lat, gu.study_area(conn, street=street), resolution)


def _assert_same_units(a: gu.UnitCounts, b: gu.UnitCounts) -> None:
    assert a.resolution == b.resolution
    assert np.array_equal(a.cells, b.cells)
    assert list(a.units["unit"]) == list(b.units["unit"])
    assert np.array_equal(a.units["count"].to_numpy(), b.units["count"].to_numpy())
    assert (a.n_incidents, a.n_outside) == (b.n_incidents, b.n_outside)
    assert a.units.geometry.geom_equals_exact(b.units.geometry, tolerance=0).all()


def test_every_automatic_resolution_is_stored() -> None:
    assert set(gu.AUTO_RESOLUTIONS) <= set(CELL_RESOLUTIONS)
    assert tuple(f"h3_r{r}" for r in CELL_RESOLUTIONS) == CELL_COLUMNS


def test_parent_cells_are_not_the_cells_of_the_points() -> None:
    """Why every resolution is stored: deriving a coarser cell with cell_to_parent would
    move some incidents to a neighbouring cell (H3 is not exactly hierarchical)."""
    rng = np.random.default_rng(5)
    lat, lon = rng.uniform(36.2, 36.4, 5000), rng.uniform(120.3, 120.5, 5000)
    fine = gu.points_to_cells(lon, lat, 10)
    coarse = gu.points_to_cells(lon, lat, 9)
    parents = np.array([h3i.cell_to_parent(int(c), 9) for c in fine])
    assert (parents != coarse).mean() > 0.02


def test_cell_polygons_are_the_cells_outlines() -> None:
    """One coordinate array for all hexagons; a pentagon among them takes the ragged way."""
    hexagons = gu.cells_covering(_demo_box(), 9)[:50]
    pentagon = next(iter(h3i.get_pentagons(9)))
    for cells in (hexagons, np.sort(np.append(hexagons, pentagon))):
        want = [
            shapely.Polygon([(lng, lat) for lat, lng in h3i.cell_to_boundary(int(c))])
            for c in cells
        ]
        got = gu.cell_polygons(cells)
        assert got.crs.to_epsg() == 4326
        assert (shapely.to_wkb(got.to_numpy()) == shapely.to_wkb(np.array(want))).all()
    assert len(gu.cell_polygons(np.array([], dtype=np.int64))) == 0


def _demo_box() -> shapely.Polygon:
    """A small box in the demo area."""
    return shapely.box(120.38, 36.30, 120.40, 36.32)


def test_demo_writer_stores_the_cells_of_the_points(cells_db: Engine) -> None:
    with cells_db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT ST_X(geom), ST_Y(geom), h3_r7, h3_r8, h3_r9, h3_r10, h3_r11 "
                "FROM incident ORDER BY id"
            )
        ).all()
        assert cells_missing(conn) == 0
    got = np.array([r[2:] for r in rows], dtype=np.int64)
    x = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    lon, lat = queries._to_web(x, y)
    for k, res in enumerate(CELL_RESOLUTIONS):
        assert np.array_equal(got[:, k], gu.points_to_cells(lon, lat, res)), res
    assert len(rows) > 1000


@pytest.mark.parametrize("resolution", [*CELL_RESOLUTIONS, None, 12])
@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: "-".join(str(v) for v in f))
def test_stored_cells_count_as_binning_the_points(cells_db, filters, resolution) -> None:
    street, start, end, category = filters
    with cells_db.connect() as conn:
        got = gu.hex_units(
            conn, street=street, start=start, end=end, category=category, resolution=resolution
        )
        n = queries.incident_count(
            conn, street_code=street, since=start, until=end, category=category
        )
        want_res = got.resolution if resolution is None else resolution
        want = _from_points(conn, street, start, end, category, want_res)
    _assert_same_units(got, want)
    if resolution is None:  # the automatic choice is made on the same numbers
        # a connection of its own, closed here: one left to the garbage collector can
        # still be open when a later test copies this database (CREATE DATABASE …
        # TEMPLATE refuses a template with other sessions: seen failing in a CI run)
        with cells_db.connect() as conn:
            area = gu.area_km2(gu.study_area(conn, street=street))
        assert got.resolution == gu.choose_resolution(n, area)


def test_hotspots_equal_the_points_path(cells_db: Engine) -> None:
    with cells_db.connect() as conn:
        got = hotspots(conn, street=STREET, unit="hex", resolution=None)
        uc = _from_points(conn, STREET, None, None, None, got.params.resolution)
    want = hotspots_for_units(uc, unit="hex")
    cols = ["unit", "count", "neighbours", "z", "p", "p_fdr", "bin"]
    pd.testing.assert_frame_equal(
        pd.DataFrame(got.units[cols]), pd.DataFrame(want.units[cols]), check_exact=True
    )
    assert (got.units["bin"] != 0).any()


def test_rows_without_cells_are_binned_from_their_points(cells_db: Engine) -> None:
    with cells_db.connect() as conn, conn.begin() as tx:
        before = gu.hex_units(conn, street=STREET, resolution=10)
        cleared = conn.execute(
            text(
                "UPDATE incident SET h3_r7 = NULL, h3_r8 = NULL, h3_r9 = NULL, "
                "h3_r10 = NULL, h3_r11 = NULL WHERE id % 3 = 0"
            )
        ).rowcount
        assert cells_missing(conn) == cleared > 0
        _assert_same_units(gu.hex_units(conn, street=STREET, resolution=10), before)
        assert fill_incident_cells(conn) == cleared
        assert cells_missing(conn) == 0
        assert fill_incident_cells(conn) == 0
        _assert_same_units(gu.hex_units(conn, street=STREET, resolution=10), before)
        tx.rollback()


def test_a_moved_point_loses_its_cells_unless_they_move_with_it(cells_db: Engine) -> None:
    cells_sql = text("SELECT h3_r7, h3_r8, h3_r9, h3_r10, h3_r11 FROM incident WHERE id = :i")
    with cells_db.connect() as conn, conn.begin() as tx:
        iid, x, y = conn.execute(
            text("SELECT id, ST_X(geom), ST_Y(geom) FROM incident ORDER BY id LIMIT 1")
        ).one()
        # another column changes: the cells stay
        conn.execute(text("UPDATE incident SET title = 'x' WHERE id = :i"), {"i": iid})
        assert None not in conn.execute(cells_sql, {"i": iid}).one()
        # the same point written again: the cells stay
        conn.execute(text("UPDATE incident SET geom = geom WHERE id = :i"), {"i": iid})
        assert None not in conn.execute(cells_sql, {"i": iid}).one()
        # the point moves 300 m: the cells are cleared, then filled for the new place
        move = text(
            "UPDATE incident SET geom = ST_SetSRID(ST_MakePoint(:x, :y), 4490) WHERE id = :i"
        )
        conn.execute(move, {"x": x + 0.003, "y": y, "i": iid})
        assert conn.execute(cells_sql, {"i": iid}).one() == (None,) * 5
        assert fill_incident_cells(conn) == 1
        new = incident_cells(np.array([x + 0.003]), np.array([y]))
        assert conn.execute(cells_sql, {"i": iid}).one() == tuple(
            int(new[c][0]) for c in CELL_COLUMNS
        )
        # moved together with its cells (as a writer computing them does): kept
        back = incident_cells(np.array([x]), np.array([y]))
        conn.execute(
            text(
                "UPDATE incident SET geom = ST_SetSRID(ST_MakePoint(:x, :y), 4490), "
                "h3_r7 = :c7, h3_r8 = :c8, h3_r9 = :c9, h3_r10 = :c10, h3_r11 = :c11 "
                "WHERE id = :i"
            ),
            {"x": x, "y": y, "i": iid, **{f"c{c[4:]}": int(back[c][0]) for c in CELL_COLUMNS}},
        )
        assert conn.execute(cells_sql, {"i": iid}).one() == tuple(
            int(back[c][0]) for c in CELL_COLUMNS
        )
        tx.rollback()


def test_cells_are_all_set_or_none(cells_db: Engine) -> None:
    with cells_db.connect() as conn, conn.begin(), pytest.raises(IntegrityError):
        conn.execute(text("UPDATE incident SET h3_r9 = NULL WHERE id = 1"))


@pytest.mark.parametrize(("role", "prefix"), [("district", "370214"), ("street", "370214900")])
def test_as_the_app_the_counts_equal_the_owners(cells_db: Engine, role, prefix) -> None:
    token = access_data.session_token(cells_db, role, prefix)
    with cells_db.connect() as conn:
        owner = gu.hex_units(conn, street=STREET, start=SINCE, resolution=None)
    with cells_db.connect() as conn, conn.begin() as tx:
        conn.execute(text("SET LOCAL ROLE gridone_app"))
        assert scoped(conn, token)
        app = gu.hex_units(conn, street=STREET, start=SINCE, resolution=None)
        in_scope = gu.hex_units(conn, start=SINCE, resolution=None)  # the scope's streets
        tx.rollback()
    _assert_same_units(app, owner)
    _assert_same_units(in_scope, owner)


def _loader_cells(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        assert cells_missing(conn) == 0
        return conn.execute(
            text(
                "SELECT code, ST_X(geom), ST_Y(geom), h3_r7, h3_r8, h3_r9, h3_r10, h3_r11 "
                "FROM incident WHERE code LIKE 'T-%' ORDER BY code"
            )
        ).all()


def test_loader_stores_the_cells_of_what_it_writes_and_moves(
    server: conftest.TestServer, cells_db: Engine, tmp_path, monkeypatch
) -> None:
    """The loader writes each row with its cells (no fill afterwards), and a row moved
    within all its cells, whose cells the trigger clears, gets them back from the fill."""
    from loaders import engine as loader
    from loaders.engine import Options, load_file

    filled: list[int] = []

    def spy(conn: Connection) -> int:
        filled.append(fill_incident_cells(conn))
        return filled[-1]

    monkeypatch.setattr(loader, "fill_incident_cells", spy)

    cells_db.dispose()  # a template may have no connections
    name = server.create(f"cellsload{os.getpid() % 1000}", template=cells_db.url.database)
    engine = make_engine(server.url(name))
    try:
        with engine.connect() as conn:
            x0, y0 = conn.execute(
                text("SELECT ST_X(geom), ST_Y(geom) FROM incident ORDER BY id LIMIT 1")
            ).one()
        csv = tmp_path / "incidents.csv"
        rows = []
        # 1e-9 degrees: T-1 moves (a new geom) but stays in each of its cells
        for dx in (0.0, 0.004, 0.004 + 1e-9):
            csv.write_text(
                "code,category_code,reported_at,lon,lat\n"
                f"T-1,0101,2026-10-01 09:00,{x0 + dx},{y0}\n"
                f"T-2,0101,2026-10-01 10:00,{x0},{y0 + 0.002}\n",
                encoding="utf-8",
            )
            report = load_file(engine, "incidents", csv, Options())
            assert not report.rejected
            rows.append(_loader_cells(engine))
        assert [len(r) for r in rows] == [2, 2, 2]
        assert rows[0][0][3:] != rows[1][0][3:]  # T-1 moved: new cells
        assert rows[1][0][1] != rows[2][0][1] and rows[1][0][3:] == rows[2][0][3:]
        assert rows[0][1] == rows[1][1] == rows[2][1]  # T-2 unchanged
        # written with their cells; only the row moved within its cells needed the fill
        assert filled == [0, 0, 1]
        for code, x, y, *stored in rows[0] + rows[1] + rows[2]:
            want = incident_cells(np.array([x]), np.array([y]))
            assert stored == [int(want[c][0]) for c in CELL_COLUMNS], code
    finally:
        engine.dispose()
        server.drop(name)


def test_migration_fills_the_stored_rows_and_goes_down_cleanly(
    server: conftest.TestServer, cells_db: Engine
) -> None:
    from alembic import command

    from store.migrate import alembic_config

    cells_db.dispose()  # a template may have no connections
    name = server.create(f"cellsmig{os.getpid() % 1000}", template=cells_db.url.database)
    engine = make_engine(server.url(name))
    columns = text(
        "SELECT count(*) FROM information_schema.columns "
        "WHERE table_name = 'incident' AND column_name LIKE 'h3_r%'"
    )
    try:
        with engine.connect() as conn:
            want = conn.execute(
                text("SELECT id, h3_r7, h3_r8, h3_r9, h3_r10, h3_r11 FROM incident ORDER BY id")
            ).all()
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0008")
        with engine.connect() as conn:
            assert conn.execute(columns).scalar_one() == 0
            dirty = conn.execute(text("SELECT count(*) FROM kpi_dirty_day")).scalar_one()
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
        with engine.connect() as conn:
            assert conn.execute(columns).scalar_one() == len(CELL_COLUMNS)
            got = conn.execute(
                text("SELECT id, h3_r7, h3_r8, h3_r9, h3_r10, h3_r11 FROM incident ORDER BY id")
            ).all()
            # the fill does not mark KPI days for a refresh: nothing they sum changed
            assert conn.execute(text("SELECT count(*) FROM kpi_dirty_day")).scalar_one() == dirty
            triggers = conn.execute(
                text(
                    "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'incident'::regclass "
                    "AND tgname IN ('kpi_dirty_update', 'incident_cells_stale')"
                )
            ).all()
        assert got == want and len(got) > 1000
        assert sorted(triggers) == [("incident_cells_stale", "O"), ("kpi_dirty_update", "O")]
    finally:
        engine.dispose()
        server.drop(name)


@pytest.mark.parametrize("app", [False, True], ids=["owner", "gridone_app"])
def test_counts_per_cell_read_only_the_covering_index(cells_db: Engine, app: bool) -> None:
    """Every column the counts read — filters, the policy's codes, the cells — is in
    ix_incident_cells: an index-only scan (when the planner is steered off the small
    table), also under row-level security."""
    from store.cells import _CELL_COUNTS

    with cells_db.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE incident"))
    token = access_data.session_token(cells_db, "district", "370214") if app else None
    params = {"street": STREET, "since": SINCE, "until": None, "category": "04"}
    with cells_db.connect() as conn, conn.begin() as tx:
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        conn.execute(text("SET LOCAL enable_bitmapscan = off"))
        if token is not None:
            conn.execute(text("SET LOCAL ROLE gridone_app"))
            assert scoped(conn, token)
        for res in CELL_RESOLUTIONS:
            plan = "\n".join(
                r[0] for r in conn.execute(text("EXPLAIN " + _CELL_COUNTS[res].text), params).all()
            )
            assert "Index Only Scan using ix_incident_cells" in plan, plan
        tx.rollback()
