"""Loading again, and the rules that decide what a reload keeps: values the file leaves
blank or does not carry stay as stored, the last valid row of a repeated key wins, a worker
moved to another grid gets a new assignment and the old one ends. Plus the things a load
lists for someone to look at (points outside every grid, gaps between grids) and what it
does when the database is busy. Against real PostGIS, on the demo street's files.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from sqlalchemy import Engine, text

from loaders.engine import LoadRejectedError, Options, load_file
from store.settings import PROJECT_ROOT
from tests import test_load

files = test_load.files  # the demo street as files
CORPUS = PROJECT_ROOT / "tests" / "data" / "corpus"


def _base(engine: Engine, files, upto: int = 5) -> None:
    for kind, f in test_load.ORDER[:upto]:
        load_file(engine, kind, files["streets"].parent / f, Options())


def _one(engine: Engine, sql: str, **params):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).one()


def test_a_reload_without_title_or_deadline_keeps_the_stored_ones(
    fresh_engine: Engine, files, tmp_path: Path
) -> None:
    _base(fresh_engine, files)
    frame = files["incidents_frame"].head(5).copy()
    frame["title"] = [f"自定义标题{i}" for i in range(5)]
    frame["due_at"] = "2030-01-01 12:00"
    first = tmp_path / "first.csv"
    frame.to_csv(first, index=False)
    assert load_file(fresh_engine, "incidents", first, Options()).inserted == 5
    again = tmp_path / "again.csv"
    frame.drop(columns=["title", "due_at"]).to_csv(again, index=False)
    report = load_file(fresh_engine, "incidents", again, Options())
    assert (report.inserted, report.updated, report.unchanged) == (0, 0, 5), report.summary()
    code = frame.code.iloc[3]
    title, due = _one(fresh_engine, "SELECT title, due_at FROM incident WHERE code = :c", c=code)
    assert title == "自定义标题3"
    assert due == dt.datetime(2030, 1, 1, 4, tzinfo=dt.UTC)


def test_blank_cells_keep_stored_values_and_defaults_are_for_new_rows(
    fresh_engine: Engine, files, tmp_path: Path, demo
) -> None:
    _base(fresh_engine, files, upto=3)
    grid = demo.grid.iloc[[0, 1]][["code", "name", "households", "geom"]].copy()
    code = grid.code.iloc[0]
    stored = _one(fresh_engine, "SELECT households FROM grid WHERE code = :c", c=code)[0]
    assert stored > 0
    grid["households"] = [None, 7]
    path = tmp_path / "grids.geojson"
    gpd.GeoDataFrame(grid, geometry="geom").to_file(path)
    report = load_file(fresh_engine, "grids", path, Options())
    assert report.updated == 1 and not report.rejected, report.summary()
    assert _one(fresh_engine, "SELECT households FROM grid WHERE code = :c", c=code)[0] == stored
    assert _one(
        fresh_engine, "SELECT households FROM grid WHERE code = :c", c=grid.code.iloc[1]
    ) == (7,)


def test_when_the_database_refuses_the_last_row_of_a_key_the_one_before_wins(
    fresh_engine: Engine, files, tmp_path: Path, demo
) -> None:
    _base(fresh_engine, files, upto=2)
    grid = demo.grid.iloc[[0, 0]][["code", "name", "geom"]].copy()
    grid["households"] = [10, 200_000]  # the second breaks the households range rule
    path = tmp_path / "twice.geojson"
    gpd.GeoDataFrame(grid, geometry="geom").to_file(path)
    report = load_file(fresh_engine, "grids", path, Options())
    assert [p.line for p in report.rejected] == [2], report.summary()
    assert "households" in report.rejected[0].reason
    assert (report.inserted, report.duplicates) == (1, 0)
    assert _one(
        fresh_engine, "SELECT households FROM grid WHERE code = :c", c=grid.code.iloc[0]
    ) == (10,)


def _assignments(engine: Engine, staff_code: str) -> list[tuple]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT a.grid_code, a.valid_from, a.valid_to FROM staff_assignment a "
                    "JOIN staff s ON s.id = a.staff_id WHERE s.code = :c "
                    "ORDER BY a.valid_from, a.grid_code"
                ),
                {"c": staff_code},
            )
        ]


def _grid_worker(engine: Engine, grid_code: str) -> str | None:
    return _one(
        engine,
        "SELECT s.code FROM grid g LEFT JOIN staff s ON s.id = g.worker_id WHERE g.code = :g",
        g=grid_code,
    )[0]


def test_a_worker_moved_to_another_grid(fresh_engine: Engine, files, tmp_path: Path) -> None:
    _base(fresh_engine, files, upto=4)
    workers = pd.read_csv(files["workers"], encoding="gb18030", dtype=str)
    w = workers[workers["角色"] == "grid_worker"].iloc[0]
    old = w["网格编码"]
    new = next(g for g in workers["网格编码"].dropna() if g != old and g[:9] == old[:9])
    assert _grid_worker(fresh_engine, old) == w["人员编码"]
    before = _assignments(fresh_engine, w["人员编码"])
    assert [(g, to) for g, _f, to in before] == [(old, None)]

    moved = pd.DataFrame([w]).assign(网格编码=new)
    path = tmp_path / "moved.csv"
    moved.to_csv(path, index=False)
    report = load_file(fresh_engine, "workers", path, Options())
    assert not report.rejected, report.summary()
    today = dt.date.today()
    assert _assignments(fresh_engine, w["人员编码"]) == [
        (old, before[0][1], today),
        (new, today, None),
    ]
    assert _grid_worker(fresh_engine, old) is None
    assert _grid_worker(fresh_engine, new) == w["人员编码"]

    load_file(fresh_engine, "workers", path, Options())  # the same file again
    assert len(_assignments(fresh_engine, w["人员编码"])) == 2

    left = moved.assign(离岗日期=str(today - dt.timedelta(days=1)))
    left_path = tmp_path / "left.csv"
    left.rename(columns={"离岗日期": "active_to"}).to_csv(left_path, index=False)
    report = load_file(fresh_engine, "workers", left_path, Options())
    assert not report.rejected, report.summary()
    assert all(to is not None for _g, _f, to in _assignments(fresh_engine, w["人员编码"]))
    assert _grid_worker(fresh_engine, new) is None


def test_a_worker_whose_street_is_not_the_grids_is_refused(
    fresh_engine: Engine, files, tmp_path: Path
) -> None:
    _base(fresh_engine, files, upto=4)
    workers = pd.read_csv(files["workers"], encoding="gb18030", dtype=str)
    w = workers[workers["网格编码"].notna()].iloc[[0]].assign(街道编码="370214999000")
    path = tmp_path / "wrong_street.csv"
    w.to_csv(path, index=False)
    report = load_file(fresh_engine, "workers", path, Options())
    assert [(p.line, p.field) for p in report.rejected] == [(2, "street_code")]
    assert "not the street of the grid" in report.rejected[0].reason


def test_3d_points_are_stored_without_their_height(
    fresh_engine: Engine, files, tmp_path: Path
) -> None:
    _base(fresh_engine, files)
    frame = files["incidents_frame"].head(3)
    gdf = gpd.GeoDataFrame(
        frame.drop(columns=["lon", "lat"]),
        geometry=shapely.points(frame.lon, frame.lat, [12.5, 13.0, 0.0]),
        crs=4490,
    )
    path = tmp_path / "z.geojson"
    gdf.to_file(path)
    report = load_file(fresh_engine, "incidents", path, Options())
    assert report.inserted == 3 and not report.rejected, report.summary()
    assert _one(fresh_engine, "SELECT bool_or(ST_NDims(geom) > 2) FROM incident") == (False,)


def test_kml_placemark_ids_do_not_compete_with_the_code_column(fresh_engine: Engine) -> None:
    # the corpus KML's grids are not in this store: its rows are refused for that alone
    report = load_file(fresh_engine, "incidents", CORPUS / "incidents.kml", Options())
    assert report.rows_read == 5
    assert len(report.rejected) == 5 and all(p.field == "grid_code" for p in report.rejected), [
        (p.field, p.reason) for p in report.rejected
    ]


def test_points_outside_every_grid_are_kept_and_listed(
    fresh_engine: Engine, files, tmp_path: Path, demo
) -> None:
    _base(fresh_engine, files)
    frame = files["incidents_frame"].head(6).copy()
    street = demo.admin_unit.query("level == 'street'").code.iloc[0]
    frame["street_code"] = street
    # inside the street's box but on no grid: west of the westmost grid, same latitude
    west = demo.grid.geom.total_bounds[0] - 0.0005
    frame.loc[frame.index[[1, 4]], "lon"] = west
    path = tmp_path / "outside.csv"
    frame.to_csv(path, index=False)
    report = load_file(fresh_engine, "incidents", path, Options())
    assert [p.line for p in report.flagged] == [3, 6], report.summary()
    assert report.inserted == 6
    assert "outside every grid" in report.summary()
    with fresh_engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM incident WHERE grid_code IS NULL"))
        assert n.scalar_one() == 2


def test_gaps_between_a_communitys_grids_are_reported_with_their_area(
    fresh_engine: Engine,
) -> None:
    box = "MULTIPOLYGON(((120.39 36.29,120.42 36.29,120.42 36.31,120.39 36.31,120.39 36.29)))"
    with fresh_engine.begin() as conn:
        for code, level, parent in (
            ("370214000000", "district", None),
            ("370214001000", "street", "370214000000"),
            ("370214001001", "community", "370214001000"),
        ):
            conn.execute(
                text(
                    "INSERT INTO admin_unit (code, level, name, parent_code, geom) "
                    "VALUES (:c, :l, :n, :p, ST_GeomFromText(:g, 4490))"
                ),
                {"c": code, "l": level, "n": f"测试{level}", "p": parent, "g": box},
            )
    report = load_file(fresh_engine, "grids", CORPUS / "overlapping_grids.geojson", Options())
    gaps = [w for w in report.warnings if "not covered by any grid" in w]
    assert len(gaps) == 1 and "370214001001" in gaps[0]
    area = float(gaps[0].split(": ")[-1].split(" m²")[0].replace(",", ""))
    with fresh_engine.connect() as conn:
        truth = conn.execute(
            text(
                "SELECT ST_Area(ST_Transform(ST_Difference(c.geom, (SELECT ST_Union(geom) "
                "FROM grid)), 4549)) FROM admin_unit c WHERE c.level = 'community'"
            )
        ).scalar_one()
    assert truth > 1000 and abs(area - truth) < 1


def test_a_big_batch_blocked_by_a_reader_gives_up_with_a_clear_error(
    fresh_engine: Engine, files, monkeypatch: pytest.MonkeyPatch
) -> None:
    import loaders.engine
    import store.write

    _base(fresh_engine, files)
    monkeypatch.setattr(loaders.engine, "BIG_BATCH_ROWS", 1)
    monkeypatch.setattr(store.write, "LOCK_WAIT", "200ms")
    with fresh_engine.connect() as reader:
        reader.execute(text("SELECT count(*) FROM incident"))  # holds its lock until rollback
        with pytest.raises(LoadRejectedError, match="in use by another session"):
            load_file(fresh_engine, "incidents", files["incidents"], Options())
        reader.rollback()
    with fresh_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM incident")).scalar_one() == 0
