"""The loader's fast paths store exactly what the plain paths stored: grids given in Python
to the points clearly inside one (:mod:`loaders.assign`), a plain INSERT for new keys, the
cheap test for repeated keys. The same files are loaded into two stores, one with the fast
paths switched off (the loader as it was), and every stored incident is compared, ids
included; then a reload mixing changed, unchanged and new rows. Against real PostGIS, on
the demo street's files plus points on grid vertices and edges, outside every grid,
repeated codes and bad rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import Engine, text

import loaders.engine
from loaders.engine import Options, load_file
from loaders.kinds import Kind
from store.db import make_engine
from tests import test_load

files = test_load.files  # the demo street as files

_STORED = text(
    "SELECT id, code, category_code, source, severity, title, description, address, "
    "occurred_at, reported_at, due_at, reporter_id, grid_code, street_code, status, tier, "
    "ST_AsEWKB(geom) FROM incident ORDER BY id"
)


@pytest.fixture
def other_engine(server, template_db) -> Iterator[Engine]:
    """A second new migrated database for this test."""
    name = server.create(f"f{uuid.uuid4().hex[:8]}", template=template_db)
    eng = make_engine(server.url(name))
    yield eng
    eng.dispose()
    server.drop(name)


def _plain_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader without its fast paths: the SQL alone gives grids, one upsert writes
    every row, the window finds repeated keys."""
    monkeypatch.setattr(Kind, "grids_by_point", property(lambda self: False))
    monkeypatch.setattr(Kind, "new_rows_sql", lambda self: None)
    monkeypatch.setattr(Kind, "repeats_sql", lambda self: None)


def _edge_points(engine: Engine) -> np.ndarray:
    """Points exactly on the stored grids' vertices and on their edges (the cases where
    Python and PostGIS could round differently), and a hair inside and outside them."""
    with engine.connect() as conn:
        wkb = conn.execute(text("SELECT ST_AsBinary(geom) FROM grid ORDER BY code")).scalars()
        grids = shapely.from_wkb([bytes(w) for w in wkb])
    rings = shapely.boundary(grids)
    vertices = shapely.get_coordinates(rings)[::7]
    along = shapely.get_coordinates(
        shapely.line_interpolate_point(
            np.repeat(rings, 4), np.tile([0.1, 0.33, 0.5, 0.9], len(rings)), normalized=True
        )
    )
    return np.vstack([vertices, along, along + 1e-12, along - 5e-8])


def _first_file(engine: Engine, files, path: Path) -> pd.DataFrame:
    frame = files["incidents_frame"].astype(object).copy()
    xy = _edge_points(engine)
    extra = frame.sample(len(xy), replace=True, random_state=3).reset_index(drop=True)
    extra["code"] = [f"EDGE{i:05d}" for i in range(len(xy))]
    extra["lon"], extra["lat"] = xy[:, 0], xy[:, 1]
    frame = pd.concat([frame, extra], ignore_index=True)
    frame.loc[10, "code"] = frame.loc[500, "code"]  # repeated: the later row wins
    frame.loc[10, "title"] = "先出现的行"
    frame.loc[20, "category_code"] = "没有这种类型"  # refused: line 22
    frame.loc[30, "reported_at"] = "不是时间"  # refused: line 32
    frame.to_csv(path, index=False, float_format="%.17g")
    return frame


def _second_file(first: pd.DataFrame, path: Path) -> None:
    """A reload: some rows changed, some as they were, some new."""
    frame = first.iloc[::3].copy()
    frame.loc[frame.index[::2], "title"] = "改过的标题"
    new = first.iloc[1::3].head(200).copy()
    new["code"] = [f"NEW{i:05d}" for i in range(len(new))]
    pd.concat([frame, new]).to_csv(path, index=False, float_format="%.17g")


def _load(engine: Engine, path: Path) -> tuple:
    report = load_file(engine, "incidents", path, Options())
    return (
        report.inserted,
        report.updated,
        report.unchanged,
        report.duplicates,
        [(p.line, p.field) for p in report.rejected],
        [p.line for p in report.flagged],
    )


def _stored(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return [
            tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
            for r in conn.execute(_STORED)
        ]


def test_fast_paths_store_what_the_plain_paths_stored(
    fresh_engine: Engine,
    other_engine: Engine,
    files,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assigned: list[int] = []
    assign = loaders.engine._assign_grids

    def counting(staged, grids, kind) -> None:
        assign(staged, grids, kind)
        assigned.append(int(staged["grid_code"].notna().sum()))

    monkeypatch.setattr(loaders.engine, "_assign_grids", counting)
    runs = {}
    for name, engine, plain in (("plain", other_engine, True), ("fast", fresh_engine, False)):
        with monkeypatch.context() as m:
            if plain:
                _plain_paths(m)
            for kind, f in test_load.ORDER[:5]:
                load_file(engine, kind, files["streets"].parent / f, Options())
            first = _first_file(engine, files, tmp_path / f"{name}-first.csv")
            one = _load(engine, tmp_path / f"{name}-first.csv")
            after_one = _stored(engine)
            _second_file(first, tmp_path / f"{name}-second.csv")
            two = _load(engine, tmp_path / f"{name}-second.csv")
            runs[name] = (one, after_one, two, _stored(engine))
        if plain:
            assert not assigned  # the plain run never took the Python path
    plain, fast = runs["plain"], runs["fast"]
    assert sum(assigned) > 0.9 * len(plain[1])  # the fast run did
    # the first load: the same reports and the same rows, ids included
    assert fast[0] == plain[0]
    assert plain[0][3] == 1 and [f for _, f in plain[0][4]][:2] == ["category_code", "reported_at"]
    assert fast[1] == plain[1]
    # points on edges and vertices got grids (the lowest code of the grids sharing them)
    edge = [r for r in fast[1] if r[1].startswith("EDGE")]
    assert sum(r[12] is not None for r in edge) > 0.9 * len(edge)
    # the reload: the same reports; the same rows (the new rows' ids may differ: the
    # upsert drew an id for every row it read, the plain INSERT only for new ones), and
    # new rows numbered in file order as before
    assert fast[2] == plain[2]
    assert plain[2][0] == 200 and plain[2][1] > 0
    assert [r[1:] for r in fast[3]] == [r[1:] for r in plain[3]]
