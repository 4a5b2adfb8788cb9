"""Repeat locations (geo/repeats.py): the 30 m / 90 day / 3 incident rule on hand-placed
incidents, and on the demo street against a brute-force computation in Python (pyproj
and scipy, no PostGIS)."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pytest
from pyproj import Transformer
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from sqlalchemy import Connection, Engine, text

from geo.repeats import (
    COLUMNS,
    DEFAULT_DAYS,
    DEFAULT_MIN_COUNT,
    DEFAULT_RADIUS_M,
    RepeatResult,
    repeat_locations,
)
from tests import factories

METRIC = 4549  # CGCS2000 / 3-degree Gauss-Krüger CM 120E, the zone of the test square
TO_METRIC = Transformer.from_crs(4490, METRIC, always_xy=True)
TO_LONLAT = Transformer.from_crs(METRIC, 4490, always_xy=True)
BASE = TO_METRIC.transform(120.401, 36.301)  # factories.INSIDE, the test grid's middle
AS_OF = "2026-06-01"  # window [2026-03-03, 2026-06-01) local
STREET = "370214900000"


def _place(conn: Connection, code: str, category: str, reported: str, dx: float, dy: float):
    """Insert an incident ``dx``/``dy`` metres east/north of the test grid's middle."""
    lon, lat = TO_LONLAT.transform(BASE[0] + dx, BASE[1] + dy)
    conn.execute(
        text(
            "INSERT INTO incident (code, category_code, source, severity, title, "
            "occurred_at, reported_at, due_at, grid_code, street_code, geom) VALUES "
            "(:code, :cat, 'patrol', 1, '测试', CAST(:rep AS timestamptz) - interval '1 hour', "
            ":rep, CAST(:rep AS timestamptz) + interval '10 days', :g, :s, "
            "ST_SetSRID(ST_MakePoint(:lon, :lat), 4490))"
        ),
        {
            "code": code,
            "cat": category,
            "rep": reported,
            "g": factories.GRID,
            "s": factories.STREET,
            "lon": lon,
            "lat": lat,
        },
    )


def _triangle(side: float) -> list[tuple[float, float]]:
    """Corners of an equilateral triangle with sides of ``side`` metres."""
    return [(0.0, 0.0), (side, 0.0), (side / 2, side * np.sqrt(3) / 2)]


@pytest.fixture
def hand(conn: Connection) -> Connection:
    """The test grid with hand-placed incidents (rolled back after the test):

    * 0301 — three incidents 25 m apart from each other (a triangle): one place.
    * 0305 — two incidents at that same triangle's corners: another subcategory, and only
      two, so neither it nor 0301 gains from the other.
    * 0303 — at x = 0, 35, 60 m on a line west of it: 35 m apart is too far, 25 m is near;
      {35, 60} is a pair, {0} alone: no place of three.
    * 0304 — at x = 0 and 35 m, plus one at 17.5 m linking both: one place of three by the
      chain (the two ends are 35 m apart).
    * 0101 — three at one spot, one of them 100 days before ``as_of`` (outside the
      90-day window) and one at ``as_of`` itself (the window's end is exclusive).
    """
    factories.area(conn)
    day = "2026-05-{:02d} 10:00+08"
    for i, (x, y) in enumerate(_triangle(25.0)):
        _place(conn, f"T{i}", "0301", day.format(1 + i), x, y)
    for i, (x, y) in enumerate(_triangle(25.0)[:2]):
        _place(conn, f"O{i}", "0305", day.format(10 + i), x, y)
    for i, x in enumerate((0.0, 35.0, 60.0)):
        _place(conn, f"L{i}", "0303", day.format(1 + i), x - 80.0, -60.0)
    for i, x in enumerate((0.0, 35.0, 17.5)):
        _place(conn, f"C{i}", "0304", day.format(5 + i), x - 80.0, 60.0)
    _place(conn, "W0", "0101", "2026-02-20 10:00+08", 60.0, -70.0)  # 100 days before
    _place(conn, "W1", "0101", "2026-04-01 10:00+08", 60.0, -70.0)
    _place(conn, "W2", "0101", "2026-05-31 23:59+08", 62.0, -70.0)
    _place(conn, "W3", "0101", "2026-06-01 00:00+08", 61.0, -70.0)  # = as_of: excluded
    return conn


def _places(res: RepeatResult) -> dict[str, list[str]]:
    return {row.subcategory: list(row.codes) for row in res.locations.itertuples()}


def test_defaults_are_the_documented_rule() -> None:
    assert (DEFAULT_RADIUS_M, DEFAULT_DAYS, DEFAULT_MIN_COUNT) == (30.0, 90, 3)


def test_hand_rule_30_m_90_days_3_incidents(hand: Connection) -> None:
    res = repeat_locations(hand, street=STREET, as_of=AS_OF)
    assert list(res.locations.columns) == COLUMNS
    # 25 m apart: together; another subcategory at the same spot does not join; 35 m apart
    # only through a link within 30 m of both; outside the window: not counted
    assert _places(res) == {"0301": ["T0", "T1", "T2"], "0304": ["C0", "C1", "C2"]}
    tri = res.locations.set_index("subcategory").loc["0301"]
    assert tri["n"] == 3 and tri["grid_code"] == factories.GRID
    assert tri["first_at"] == pd.Timestamp("2026-05-01 10:00+08:00")
    assert tri["last_at"] == pd.Timestamp("2026-05-03 10:00+08:00")
    assert str(tri["first_at"].tz) == "Asia/Shanghai"
    assert tri["category_zh"] == "违规停车" and tri["category_group"] == "03"
    # the centre is the triangle's centroid; every corner is 25/√3 = 14.4 m from it
    cx, cy = TO_METRIC.transform(tri.geometry.x, tri.geometry.y)
    assert np.hypot(cx - BASE[0] - 12.5, cy - BASE[1] - 25 * np.sqrt(3) / 6) < 0.05
    assert tri["radius_m_max"] == pytest.approx(25 / np.sqrt(3), abs=0.05)
    chain = res.locations.set_index("subcategory").loc["0304"]
    assert chain["radius_m_max"] == pytest.approx(17.5, abs=0.05)  # longer than 30 m end to end
    p = res.params
    assert p.since == pd.Timestamp("2026-03-03 00:00+08:00")
    assert p.as_of == pd.Timestamp("2026-06-01 00:00+08:00")
    assert p.metric_epsg == METRIC and p.n_locations == 2 and p.n_incidents == 6


def test_hand_thresholds_are_parameters(hand: Connection) -> None:
    # pairs: the 35 m pair of 0303 stays apart, the 25 m one is a place of two
    pairs = _places(repeat_locations(hand, as_of=AS_OF, min_count=2))
    assert pairs["0303"] == ["L1", "L2"]
    assert pairs["0305"] == ["O0", "O1"] and pairs["0101"] == ["W1", "W2"]
    # a 40 m radius joins the 35 m pair, so all three 0303 are one place
    wide = _places(repeat_locations(hand, as_of=AS_OF, radius_m=40))
    assert wide["0303"] == ["L0", "L1", "L2"]
    # 20 m breaks the 25 m triangle but not the chain (17.5 m links); 15 m breaks both
    assert _places(repeat_locations(hand, as_of=AS_OF, radius_m=20)) == {"0304": ["C0", "C1", "C2"]}
    assert _places(repeat_locations(hand, as_of=AS_OF, radius_m=15)) == {}
    # 120 days reach back to the incident 100 days before; as_of a day later takes W3 in
    assert _places(repeat_locations(hand, as_of=AS_OF, days=120))["0101"] == ["W0", "W1", "W2"]
    assert _places(repeat_locations(hand, as_of="2026-06-02"))["0101"] == ["W1", "W2", "W3"]
    # a category filter keeps its own subcategories only
    assert set(_places(repeat_locations(hand, as_of=AS_OF, category="03"))) == {"0301", "0304"}
    assert set(_places(repeat_locations(hand, as_of=AS_OF, category="0304"))) == {"0304"}
    assert _places(repeat_locations(hand, as_of=AS_OF, category="01")) == {}
    # a timestamp works as well as a date
    assert len(repeat_locations(hand, as_of=dt.datetime(2026, 6, 1, 0, 0)).locations) == 2


def test_refusals_and_an_empty_store(conn: Connection) -> None:
    with pytest.raises(ValueError, match=r"radius_m must be a distance in metres"):
        repeat_locations(conn, as_of=AS_OF, radius_m=0)
    with pytest.raises(ValueError, match=r"days must .*; min_count must be a whole number ≥ 2"):
        repeat_locations(conn, as_of=AS_OF, min_count=1, days=0)
    empty = repeat_locations(conn, as_of=AS_OF)
    assert len(empty.locations) == 0 and list(empty.locations.columns) == COLUMNS
    assert empty.params.metric_epsg is None and empty.params.notes


# --- the demo street against brute force ---------------------------------------------------------


def brute_force(
    frame: pd.DataFrame, since: pd.Timestamp, until: pd.Timestamp, radius: float, k: int
) -> set[tuple[str, tuple[str, ...]]]:
    """Places by the definition, computed without PostGIS: metric coordinates by pyproj,
    every pair within ``radius`` linked (KD-tree), connected components per subcategory."""
    sel = frame[(frame["reported_at"] >= since) & (frame["reported_at"] < until)]
    out = set()
    for cat, grp in sel.groupby("category_code"):
        xy = np.column_stack(TO_METRIC.transform(grp["lon"].to_numpy(), grp["lat"].to_numpy()))
        pairs = cKDTree(xy).query_pairs(radius, output_type="ndarray")
        n = len(grp)
        graph = np.zeros((n, n), dtype=bool)
        graph[pairs[:, 0], pairs[:, 1]] = True
        _, label = connected_components(graph, directed=False)
        codes = grp["code"].to_numpy()
        for lab in np.unique(label):
            members = codes[label == lab]
            if len(members) >= k:
                out.add((str(cat), tuple(sorted(members))))
    return out


@pytest.mark.parametrize(
    ("as_of", "days", "radius", "k"),
    [
        ("2026-11-21", 90, 30.0, 3),
        ("2026-06-01", 90, 30.0, 3),
        ("2026-11-21", 90, 30.0, 2),
        ("2026-09-15", 60, 50.0, 3),
        ("2026-11-21", 365, 30.0, 4),
    ],
)
def test_demo_equals_brute_force(
    demo_engine: Engine, as_of: str, days: int, radius: float, k: int
) -> None:
    with demo_engine.connect() as conn:
        res = repeat_locations(
            conn, street=STREET, as_of=as_of, days=days, radius_m=radius, min_count=k
        )
        frame = pd.DataFrame(
            conn.execute(
                text(
                    "SELECT code, category_code, ST_X(geom) AS lon, ST_Y(geom) AS lat, "
                    "reported_at FROM incident WHERE street_code = :s"
                ),
                {"s": STREET},
            ).all(),
            columns=["code", "category_code", "lon", "lat", "reported_at"],
        )
    frame["reported_at"] = pd.to_datetime(frame["reported_at"], utc=True)
    want = brute_force(frame, res.params.since, res.params.as_of, radius, k)
    got = {(row.subcategory, tuple(sorted(row.codes))) for row in res.locations.itertuples()}
    print(
        f"\ndemo, as of {as_of}, {days} days, {radius:g} m, ≥{k}: {len(got)} places "
        f"({res.params.n_incidents} incidents), brute force {len(want)}"
    )
    assert got == want
    assert len(got) > 0
    # each place's members really are of one subcategory and inside the window
    by_code = frame.set_index("code")
    for row in res.locations.itertuples():
        members = by_code.loc[list(row.codes)]
        assert (members["category_code"] == row.subcategory).all()
        assert members["reported_at"].min() == row.first_at
        assert members["reported_at"].max() == row.last_at
        assert row.n == len(row.codes) >= k


def test_demo_places_are_ranked_and_located(demo_engine: Engine, demo) -> None:
    with demo_engine.connect() as conn:
        res = repeat_locations(conn, street=STREET, as_of="2026-11-21")
        grids = set(
            conn.execute(text("SELECT code FROM grid WHERE street_code = :s"), {"s": STREET})
            .scalars()
            .all()
        )
    locs = res.locations
    assert locs.crs.to_epsg() == 4326
    ranked = list(zip(-locs["n"], [-t.timestamp() for t in locs["last_at"]], strict=True))
    assert ranked == sorted(ranked)
    assert set(locs["grid_code"]) <= grids
    # the planted rising area (damaged roads around a construction site) repeats there
    rising = demo.truth["incidents"]["rising"]
    x0, y0 = TO_METRIC.transform(rising["lon"], rising["lat"])
    near = [
        np.hypot(*(np.array(TO_METRIC.transform(p.x, p.y)) - (x0, y0))) < 150 for p in locs.geometry
    ]
    assert any(
        n and s in rising["categories"] for n, s in zip(near, locs["subcategory"], strict=True)
    )
    print(
        f"\ndemo repeat locations as of 2026-11-21: {len(locs)}, by subcategory "
        f"{ {k: int(v) for k, v in locs['subcategory'].value_counts().items()} }"
    )
    for a, b in itertools.combinations(range(len(locs)), 2):
        if locs["subcategory"].iloc[a] == locs["subcategory"].iloc[b]:
            assert not set(locs["codes"].iloc[a]) & set(locs["codes"].iloc[b])
