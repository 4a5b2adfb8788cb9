"""The loader on real public data: Microsoft GeoLife GPS fixes (Beijing, 2007–2008) loaded as
the patrol fixes of a street in Haidian. Their dirt is real: fixes far away (the sample
reaches Harbin), repeated timestamps, a gzipped file as published.

The data are not in this repository (licence: research, test use only): where
:mod:`tests.realdata` does not find them, this module is not collected (the session header
says so; see that folder's README for the origin).
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, text

from loaders.engine import AREA_MARGIN_M, Options, load_file
from loaders.sniff import FileFormatError
from tests.realdata import REALDATA

# collected only where the data are (tests/conftest.py, tests/realdata.py)
assert REALDATA is not None
REALDATA_DIR: Path = REALDATA


#: The street: a box over the middle of Haidian, where most GeoLife fixes are.
BOX = (116.25, 39.93, 116.40, 40.05)
STREET, COMMUNITY = "110108001000", "110108001001"


def _polygon(x0: float, y0: float, x1: float, y1: float) -> dict:
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def _collection(rows: list[tuple[str, str, dict]]) -> dict:
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": {"code": c, "name": n}, "geometry": g}
            for c, n, g in rows
        ],
    }


@pytest.fixture
def haidian(fresh_engine: Engine, tmp_path: Path) -> Engine:
    """A store with one street, one community, six grids and the eleven GeoLife users as
    grid workers (codes ``000`` … ``010``, as the file's ``user_id``)."""
    x0, y0 = BOX[:2]
    corners = [(x0 + i * 0.05, y0 + j * 0.06) for i in range(3) for j in range(2)]
    files = {
        "streets": _collection([(STREET, "测试街道", _polygon(*BOX))]),
        "communities": _collection([(COMMUNITY, "测试社区", _polygon(*BOX))]),
        "grids": _collection(
            [
                (f"{COMMUNITY}{k + 1:03d}", f"网格{k + 1}", _polygon(gx, gy, gx + 0.05, gy + 0.06))
                for k, (gx, gy) in enumerate(corners)
            ]
        ),
    }
    for kind, doc in files.items():
        path = tmp_path / f"{kind}.geojson"
        path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        load_file(fresh_engine, kind, path, Options())
    workers = tmp_path / "workers.csv"
    workers.write_text(
        "编码,姓名,角色,手机号,街道编码,网格编码\n"
        + "".join(
            f"{u:03d},测试员{u},grid_worker,1380000{u:04d},{STREET},{COMMUNITY}{u % 6 + 1:03d}\n"
            for u in range(11)
        ),
        encoding="utf-8",
    )
    load_file(fresh_engine, "workers", workers, Options())
    return fresh_engine


def test_geolife_fixes_load_as_patrols_with_far_ones_rejected(
    haidian: Engine, tmp_path: Path
) -> None:
    """As published (gzipped) the file is refused with "unpack it first". Unpacked and
    mapped (``ts_utc`` is the fix time), every row is accounted for: the fixes more than
    5 km beyond the street are rejected by row with their coordinates, the rest stored
    (those outside every grid flagged), a repeated (worker, time) counted once. Loading
    it again changes nothing."""
    packed = REALDATA_DIR / "beijing" / "geolife_sample_points.csv.gz"
    with pytest.raises(FileFormatError, match=r"gunzip geolife_sample_points\.csv\.gz"):
        load_file(haidian, "patrols", packed, Options())
    path = tmp_path / "geolife.csv"
    with gzip.open(packed, "rb") as src, path.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"fixed_at": "ts_utc"}), encoding="utf-8")
    opts = Options(mapping=mapping)

    report = load_file(haidian, "patrols", path, opts)

    raw = pd.read_csv(path, dtype={"user_id": str})
    assert report.rows_read == len(raw) == 164_531
    assert (
        report.inserted + len(report.rejected) + report.duplicates + report.unchanged
        == report.rows_read
    )
    assert report.rejected and {p.field for p in report.rejected} == {"geometry"}
    # beyond the margin (the box grown by it on each side), judged independently in
    # kilometres at Beijing's latitude; a 10 % band around it is left to the guard's rounding
    km_x, km_y = 111.32 * np.cos(np.radians(40.0)), 110.57
    dx = np.maximum(np.maximum(BOX[0] - raw.lon, raw.lon - BOX[2]), 0) * km_x
    dy = np.maximum(np.maximum(BOX[1] - raw.lat, raw.lat - BOX[3]), 0) * km_y
    off = np.maximum(dx, dy).to_numpy()
    lines = np.array([p.line for p in report.rejected]) - 2  # line 2 is the first row
    margin_km = AREA_MARGIN_M / 1000
    assert (off[lines] > 0.9 * margin_km).all()
    assert set(np.flatnonzero(off > 1.1 * margin_km)) <= set(lines.tolist())
    assert raw.lon.max() > 129  # the sample does reach Harbin
    kept = raw[~raw.index.isin(lines)]
    assert report.duplicates == kept.duplicated(["user_id", "ts_utc"]).sum() > 0
    with haidian.connect() as conn:
        stored = conn.execute(text("SELECT count(*), max(ST_X(geom)) FROM patrol_fix")).one()
    assert stored[0] == report.inserted
    assert stored[1] < BOX[2] + 1.1 * AREA_MARGIN_M / 1000 / km_x
    assert len(report.flagged) > 0  # stored, outside every grid: listed

    again = load_file(haidian, "patrols", path, opts)
    assert (again.inserted, again.updated) == (0, 0)
    assert again.unchanged == report.inserted
