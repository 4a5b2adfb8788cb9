"""Emerging hot spots (geo/emerging.py): the Mann-Kendall test against pymannkendall and
hand-worked series, the space-time Gi* against geo.hotspots.gi_star on the block
adjacency, every one of ArcGIS's 17 patterns planted in a synthetic cube and recognised,
and the demo street's planted rising area (intensifying), new spot (new) and hotspots in
the real store."""

from __future__ import annotations

import datetime as dt
import itertools

import geopandas as gpd
import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
import pymannkendall
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse
from sqlalchemy import Engine, text

from geo import units as gu
from geo.emerging import (
    PATTERNS,
    EmergingResult,
    UnitCube,
    bin_edges,
    classify_patterns,
    emerging,
    emerging_for_cube,
    gi_star_cube,
    hex_cube,
    local_instant,
    mann_kendall,
    min_trend_p,
    space_time_adjacency,
)
from geo.hotspots import gi_star

STREET = "370214900000"  # the demo street
METRIC_EPSG = 4549  # the demo's metric CRS (CGCS2000 3-degree GK, CM 120E)
TZ = "Asia/Shanghai"
#: The demo's incident period: 365 days ending 2026-11-20 (local, inclusive).
DEMO_START, DEMO_END = "2025-11-21", "2026-11-21"
KEY = {p.key: code for code, p in PATTERNS.items()}


# --- Mann-Kendall -----------------------------------------------------------------------------


def test_mann_kendall_matches_pymannkendall() -> None:
    rng = np.random.default_rng(5)
    counts = rng.poisson(2.0, (60, 12)).astype(float)  # many ties
    counts[:10] += np.arange(12) * 0.7  # some with a trend
    continuous = rng.normal(0, 1, (40, 30)) + np.linspace(0, 1.5, 30) * rng.integers(-1, 2, (40, 1))
    worst = 0.0
    for series in (counts, continuous):
        ours = mann_kendall(series)
        for i, row in enumerate(series):
            ref = pymannkendall.original_test(row)
            assert ours.s[i] == ref.s
            assert ours.var_s[i] == pytest.approx(ref.var_s, rel=1e-12)
            assert ours.tau[i] == pytest.approx(ref.Tau, rel=1e-12, abs=1e-15)
            worst = max(worst, abs(ours.z[i] - ref.z), abs(ours.p[i] - ref.p))
    print(f"\nMann-Kendall vs pymannkendall on 100 series: max |z or p diff| {worst:.1e}")
    assert worst < 1e-12


def test_mann_kendall_hand_examples() -> None:
    # 1..5: every pair rises, S = 10; Var = 5·4·15/18 = 16.667; z = (10−1)/√16.667
    r = mann_kendall([1, 2, 3, 4, 5])
    assert r.s[0] == 10 and r.var_s[0] == pytest.approx(50 / 3)
    assert r.z[0] == pytest.approx(9 / np.sqrt(50 / 3))
    assert r.p[0] == pytest.approx(0.027486, abs=1e-6)
    assert r.tau[0] == 1.0
    # 1, 2, 2, 3: pairs + + + 0 + + → S = 5; one tie of two: Var = (4·3·13 − 2·1·9)/18
    r = mann_kendall([1, 2, 2, 3])
    assert r.s[0] == 5 and r.var_s[0] == pytest.approx((156 - 18) / 18)
    assert r.z[0] == pytest.approx(4 / np.sqrt(138 / 18))
    # falling, and all tied (no information: z = 0, p = 1)
    assert mann_kendall([3, 2, 1]).z[0] < 0
    flat = mann_kendall([[4, 4, 4, 4]])
    assert flat.z[0] == 0 and flat.p[0] == 1
    # the smallest attainable p of n values, quoted in the module docstring
    assert min_trend_p(4) == pytest.approx(0.0894, abs=1e-4)
    assert min_trend_p(5) == pytest.approx(0.0275, abs=1e-4)
    with pytest.raises(ValueError, match="at least 2 values"):
        mann_kendall([1.0])
    with pytest.raises(ValueError, match="finite"):
        mann_kendall([1.0, np.nan, 2.0])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=6), min_size=2, max_size=40))
def test_mann_kendall_properties(values: list[int]) -> None:
    x = np.array(values, dtype=float)
    r = mann_kendall(x)
    ref = pymannkendall.original_test(x)
    assert r.s[0] == ref.s and abs(r.p[0] - ref.p) < 1e-12
    assert 0.0 <= r.p[0] <= 1.0
    # reversing time or negating the values flips the trend; a monotone transform keeps it
    assert mann_kendall(x[::-1]).s[0] == -r.s[0]
    assert mann_kendall(-x).z[0] == pytest.approx(-r.z[0])
    assert mann_kendall(np.exp(x)).z[0] == pytest.approx(r.z[0])


# --- space-time Gi* ---------------------------------------------------------------------------


def small_lattice() -> np.ndarray:
    """Sorted H3 res-9 cells covering a small box near the demo area (~300 cells)."""
    return gu.cells_covering(shapely.box(120.35, 36.25, 120.40, 36.29), 9)


def brute_space_time(spatial: np.ndarray, n_bins: int, k: int) -> np.ndarray:
    """The space-time neighbourhood written out with loops: bin (t, i) sees i's spatial
    neighbours at t and i with its spatial neighbours at t−1 … t−k."""
    n = spatial.shape[0]
    out = np.zeros((n * n_bins, n * n_bins))
    for t in range(n_bins):
        for i in range(n):
            for j in range(n):
                if spatial[i, j]:
                    out[t * n + i, t * n + j] = 1
                for lag in range(1, k + 1):
                    if t - lag >= 0 and (spatial[i, j] or i == j):
                        out[t * n + i, (t - lag) * n + j] = 1
    return out


@pytest.mark.parametrize(("n_bins", "k"), [(4, 1), (4, 0), (5, 2), (3, 5)])
def test_space_time_adjacency_is_the_written_out_neighbourhood(n_bins: int, k: int) -> None:
    cells = gu.cells_covering(shapely.box(120.35, 36.25, 120.356, 36.255), 9)[:12]
    spatial = gu.cell_adjacency(cells)
    ours = space_time_adjacency(spatial, n_bins, k)
    assert ours.diagonal().sum() == 0
    assert np.array_equal(ours.toarray(), brute_space_time(spatial.toarray(), n_bins, k))


@pytest.mark.parametrize(("n_bins", "k"), [(12, 1), (12, 0), (12, 3), (5, 9), (1, 1)])
def test_gi_star_cube_equals_gi_star_on_the_block_adjacency(n_bins: int, k: int) -> None:
    cells = small_lattice()
    spatial = gu.cell_adjacency(cells)
    x = np.random.default_rng(n_bins + k).poisson(2.0, (len(cells), n_bins)).astype(float)
    x[:5, -3:] += 15
    block = gi_star(x.T.ravel(), space_time_adjacency(spatial, n_bins, k))
    cube = gi_star_cube(x, spatial, k)
    diff = float(np.max(np.abs(block.reshape(n_bins, -1).T - cube)))
    print(f"\nGi* cube ({len(cells)} cells × {n_bins} bins, k={k}) vs block: {diff:.1e}")
    assert diff < 1e-10


def test_neighbourhood_looks_back_only() -> None:
    # one spike at bin 5: with k previous bins in the neighbourhood, bins 5 … 5+k are hot,
    # bin 4 is not (the neighbourhood never looks forward)
    cells = small_lattice()
    counts = np.random.default_rng(1).poisson(20, (len(cells), 10))
    centre = _centre(cells)
    disk = np.isin(cells, h3i.grid_disk(centre, 1))
    counts[disk, 5] = 80
    for k in (0, 1, 2):
        res = emerging_for_cube(_cube(cells, counts), unit="hex", neighbourhood_bins=k)
        s = res.series[res.series["unit"] == h3i.int_to_str(centre)]
        hot = set(s.loc[s["gi_bin"] > 0, "bin"])
        assert hot == set(range(5, 6 + k)), (k, hot)
        assert res.params.neighbourhood_bins == k


# --- time bins --------------------------------------------------------------------------------


def test_bin_edges_step_back_from_the_end() -> None:
    start, end = local_instant(DEMO_START, TZ), local_instant(DEMO_END, TZ)
    months = bin_edges(start, end, "month")
    assert len(months) == 13 and months[0] == start and months[-1] == end
    assert months[-2] == local_instant("2026-10-21", TZ)
    weeks = bin_edges(start, end, "week")
    assert len(weeks) == 53 and weeks[-1] == end
    assert weeks[0] - start == pd.Timedelta(days=1)  # 365 days = 52 weeks + 1 day left over
    # a month back from the 31st is the last day of the shorter month; no drift
    ends = bin_edges(local_instant("2025-12-01", TZ), local_instant("2026-03-31", TZ), "month")
    assert [e.strftime("%m-%d") for e in ends] == ["12-31", "01-31", "02-28", "03-31"]
    assert local_instant(dt.date(2026, 1, 2), TZ).utcoffset() == dt.timedelta(hours=8)
    with pytest.raises(ValueError, match="'week' or 'month'"):
        bin_edges(start, end, "day")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="end after it starts"):
        bin_edges(end, start, "month")


# --- the patterns, on hand-made significance series ---------------------------------------------


def _series(text_: str) -> tuple[np.ndarray, np.ndarray]:
    """'H' hot, 'C' cold, '.' not significant."""
    arr = np.array(list(text_))
    return arr == "H", arr == "C"


@pytest.mark.parametrize(
    ("bins", "trend_z", "expected"),
    [
        ("...........H", 0.0, "new_hot"),
        (".........HHH", 3.0, "consecutive_hot"),
        ("HHHHHHHHHHHH", 3.0, "intensifying_hot"),
        ("HHHHHHHHHHHH", 0.5, "persistent_hot"),
        ("HHHHHHHHHHHH", -3.0, "diminishing_hot"),
        (".HH...H....H", 0.0, "sporadic_hot"),
        ("CC.........H", 3.0, "oscillating_hot"),
        ("HHHHHHHHHHH.", -3.0, "historical_hot"),
        ("...........C", 0.0, "new_cold"),
        ("........CCCC", -3.0, "consecutive_cold"),
        ("CCCCCCCCCCCC", -3.0, "intensifying_cold"),
        ("CCCCCCCCCCCC", 0.2, "persistent_cold"),
        ("CCCCCCCCCCCC", 3.0, "diminishing_cold"),
        ("C...CC.....C", 0.0, "sporadic_cold"),
        ("HHH........C", -3.0, "oscillating_cold"),
        ("CCCCCCCCCCC.", 3.0, "historical_cold"),
        ("HHHH........", 0.0, "no_pattern"),  # hot once, not now, not 90 %: nothing
        ("............", 0.0, "no_pattern"),
        # 90 % is "at least nine in ten", interruptions included
        ("HHH.HHHHHH", 0.5, "persistent_hot"),
        ("HH.HH.HHHH", 0.5, "sporadic_hot"),  # 8 of 10
        # the readings of overlapping definitions (module docstring)
        ("C..........H", 0.0, "oscillating_hot"),  # first hot after cold: not "new"
        ("CCCCCCCCCH", 0.0, "oscillating_hot"),  # final sign first: not "historical cold"
        ("HHHHHHHHHC", 0.0, "oscillating_cold"),
        ("..........HH", 0.0, "consecutive_hot"),  # a run of two is consecutive, of one new
    ],
)
def test_classify_patterns_by_definition(bins: str, trend_z: float, expected: str) -> None:
    hot, cold = _series(bins)
    p = 0.001 if abs(trend_z) >= 3 else 0.6
    code = classify_patterns(hot[None, :], cold[None, :], [trend_z], [p])[0]
    assert PATTERNS[int(code)].key == expected


def test_classify_patterns_trend_needs_significance() -> None:
    hot, cold = _series("HHHHHHHHHHHH")
    codes = classify_patterns(
        np.stack([hot, hot, hot]), np.stack([cold] * 3), [2.0, 2.0, 2.0], [0.09, 0.11, 0.05]
    )
    assert [PATTERNS[int(c)].key for c in codes] == [
        "intensifying_hot",
        "persistent_hot",
        "intensifying_hot",
    ]
    strict = classify_patterns(np.stack([hot]), np.stack([cold]), [2.0], [0.09], alpha=0.05)
    assert PATTERNS[int(strict[0])].key == "persistent_hot"
    with pytest.raises(ValueError, match="both hot and cold"):
        classify_patterns([[True]], [[True]], [0.0], [1.0])


def test_patterns_table_is_complete() -> None:
    assert len(PATTERNS) == 17
    assert PATTERNS[1].en == "New hot spot" and PATTERNS[-8].en == "Historical cold spot"
    assert PATTERNS[3].zh == "加剧热点" and PATTERNS[0].zh == "无明显模式"
    assert len({p.key for p in PATTERNS.values()}) == 17


# --- every pattern planted in a synthetic space-time cube -----------------------------------


def _centre(cells: np.ndarray) -> int:
    return int(h3i.latlng_to_cell(36.27, 120.375, 9))


def _cube(cells: np.ndarray, counts: np.ndarray) -> UnitCube:
    units = gpd.GeoDataFrame(
        {"unit": gu.cell_addresses(cells), "name": [None] * len(cells)},
        geometry=gu.cell_polygons(cells).to_numpy(),
        crs=4326,
    )
    units["count"] = counts.sum(axis=1)
    start = local_instant("2026-01-01", TZ)
    edges = tuple(start + pd.DateOffset(months=k) for k in range(counts.shape[1] + 1))
    return UnitCube(units, counts, edges, int(counts.sum()), 0, cells, 9)


#: Background λ per cell and bin; planted values: 'H' high, 'C' zero, '.' background.
BACKGROUND, HIGH = 20, 60
T = np.arange(12)
PLANTS: dict[str, str | np.ndarray] = {
    "new_hot": "...........H",
    "consecutive_hot": ".........HHH",
    "intensifying_hot": 40 + 5 * T,  # hot throughout and rising
    "persistent_hot": np.array([60, 64, 57, 61, 58, 63, 60, 57, 62, 59, 64, 58]),
    "diminishing_hot": 100 - 5 * T,  # hot throughout, falling, still hot at the end
    "sporadic_hot": "..H....H...H",
    "oscillating_hot": "CCC........H",
    "historical_hot": "HHHHHHHHHH..",
    "new_cold": "...........C",
    "consecutive_cold": "........CCCC",
    "intensifying_cold": np.maximum(0, 10 - T),  # cold throughout and colder
    "persistent_cold": np.array([3, 1, 2, 4, 1, 3, 2, 4, 1, 2, 3, 2]),
    "diminishing_cold": np.minimum(11, T),  # cold throughout, warming, still cold
    "sporadic_cold": "..C....C...C",
    "oscillating_cold": "HHH........C",
    "historical_cold": "CCCCCCCCCC..",
    "no_pattern": "............",
}


def _planted_counts(plant: str | np.ndarray, cells: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(BACKGROUND, (len(cells), 12))
    disk = np.isin(cells, h3i.grid_disk(_centre(cells), 1))
    if isinstance(plant, str):
        arr = np.array(list(plant))
        counts[np.ix_(disk, arr == "H")] = HIGH
        counts[np.ix_(disk, arr == "C")] = 0
    else:
        counts[disk] = plant
    return counts


@pytest.mark.parametrize("expected", list(PLANTS))
def test_each_planted_pattern_is_recognised(expected: str) -> None:
    cells = small_lattice()
    counts = _planted_counts(PLANTS[expected], cells, seed=len(expected))
    res = emerging_for_cube(_cube(cells, counts), unit="hex", bin="month")
    assert isinstance(res, EmergingResult)
    centre = h3i.int_to_str(_centre(cells))
    row = res.units.set_index("unit").loc[centre]
    bins = res.series.loc[res.series["unit"] == centre, "gi_bin"].tolist()
    print(
        f"\n{expected}: got {row['pattern_key']}, Gi_Bin {bins}, trend z "
        f"{row['trend_z']:.2f} p {row['trend_p']:.3f}"
    )
    assert row["pattern_key"] == expected
    assert row["label_en"] == PATTERNS[KEY[expected]].en
    # away from the plant (beyond its ring of influence) hardly anything has a pattern
    far = ~np.isin(cells, h3i.grid_disk(_centre(cells), 2))
    assert (res.units.loc[far, "pattern"] != 0).mean() < 0.02


def test_uniform_poisson_cubes_rarely_show_patterns() -> None:
    cells = small_lattice()
    shares = []
    for trial in range(20):
        counts = np.random.default_rng(500 + trial).poisson(3.0, (len(cells), 12))
        res = emerging_for_cube(_cube(cells, counts), unit="hex")
        shares.append(float((res.units["pattern"] != 0).mean()))
    print(
        f"\nuniform Poisson, {len(cells)} cells × 12 bins × 20 trials: units with a pattern "
        f"mean {np.mean(shares):.3%}, max {np.max(shares):.3%}"
    )
    assert np.mean(shares) <= 0.01 and max(shares) <= 0.05


def test_result_columns_series_and_params() -> None:
    cells = small_lattice()
    counts = _planted_counts(PLANTS["consecutive_hot"], cells, seed=3)
    res = emerging_for_cube(_cube(cells, counts), unit="hex", bin="month", fdr=False)
    assert list(res.units.columns) == [
        "unit",
        "name",
        "count",
        "pattern",
        "pattern_key",
        "label_zh",
        "label_en",
        "trend_z",
        "trend_p",
        "count_trend_z",
        "count_trend_p",
        "hot_bins",
        "cold_bins",
        "hot_share",
        "cold_share",
        "last_bin",
        "last_z",
        "geometry",
    ]
    assert len(res.series) == len(cells) * 12
    per_unit = res.series.groupby("unit")["count"].sum()
    assert per_unit.loc[res.units["unit"]].tolist() == res.units["count"].tolist()
    last = res.series[res.series["bin"] == 11].set_index("unit")
    assert (last.loc[res.units["unit"], "gi_bin"].to_numpy() == res.units["last_bin"]).all()
    p = res.params
    assert p.n_bins == 12 and len(p.edges) == 13 and p.global_window == "entire cube"
    assert not p.fdr and p.critical_p == 0.10 and p.alpha == 0.10
    assert p.neighbourhood_bins == 1 and p.weights == "contiguity"


def test_bad_options_are_refused() -> None:
    cells = small_lattice()
    counts = np.random.default_rng(0).poisson(3.0, (len(cells), 12))
    cube = _cube(cells, counts)
    with pytest.raises(ValueError, match=r"alpha must be one of 0\.10, 0\.05, 0\.01"):
        emerging_for_cube(cube, alpha=0.2)
    with pytest.raises(ValueError, match="at least 3 time bins"):
        emerging_for_cube(_cube(cells, counts[:, :2]))
    with pytest.raises(ValueError, match="neighbourhood_bins must be 0 or more"):
        emerging_for_cube(cube, neighbourhood_bins=-1)
    with pytest.raises(ValueError, match="at least 3 units"):
        emerging_for_cube(_cube(cells[:2], counts[:2]))
    with pytest.raises(ValueError, match="self-weights"):
        gi_star_cube(counts, sparse.identity(len(cells)))


def test_few_bins_say_no_trend_can_be_significant() -> None:
    cells = small_lattice()
    counts = np.random.default_rng(0).poisson(3.0, (len(cells), 3))
    res = emerging_for_cube(_cube(cells, counts), unit="hex")
    assert any("no trend can be significant" in n.en for n in res.params.notes)
    assert not res.units["pattern"].abs().isin([3, 5]).any()


# --- against the store --------------------------------------------------------------------------


def test_demo_grid_cube_equals_plain_sql(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        res = emerging(conn, street=STREET, start=DEMO_START, end=DEMO_END, unit="grid")
        edges = res.params.edges
        plain = pd.DataFrame(
            conn.execute(
                text(
                    "SELECT grid_code, reported_at FROM incident "
                    "WHERE grid_code IS NOT NULL AND reported_at >= :a AND reported_at < :b"
                ),
                {"a": edges[0].to_pydatetime(), "b": edges[-1].to_pydatetime()},
            ).all(),
            columns=["grid_code", "reported_at"],
        )
    plain["bin"] = (
        np.searchsorted(
            np.array([e.timestamp() for e in edges]),
            np.array([t.timestamp() for t in plain["reported_at"]]),
            side="right",
        )
        - 1
    )
    want = plain.groupby(["grid_code", "bin"]).size()
    got = res.series.set_index(["unit", "bin"])["count"]
    assert (got[got > 0].sort_index() == want.sort_index()).all()
    assert got.sum() == len(plain) == res.params.n_incidents - res.params.n_outside
    assert res.params.n_bins == 12 and res.params.unbinned == dt.timedelta(0)
    assert res.units.crs.to_epsg() == 4326 and len(res.units) == 41


def test_demo_hex_cube_adds_up_to_the_hotspot_units(demo_engine: Engine) -> None:
    start, end = local_instant(DEMO_START, TZ), local_instant(DEMO_END, TZ)
    edges = bin_edges(start, end, "month")
    with demo_engine.connect() as conn:
        cube = hex_cube(conn, edges, street=STREET, resolution=10, category="03")
        flat = gu.hex_units(conn, street=STREET, start=start, end=end, category="03", resolution=10)
    assert np.array_equal(cube.counts.sum(axis=1), flat.units["count"].to_numpy())
    assert cube.n_incidents == flat.n_incidents and cube.n_outside == flat.n_outside
    assert list(cube.units["unit"]) == list(flat.units["unit"])


def _holder(units: gpd.GeoDataFrame, lon: float, lat: float) -> pd.Series:
    rows = units[units.geometry.intersects(shapely.Point(lon, lat))]
    assert len(rows) >= 1
    return rows.sort_values("hot_bins", ascending=False).iloc[0]


def _pattern_rows(res: EmergingResult, spot: dict) -> tuple[pd.Series, pd.DataFrame]:
    row = _holder(res.units, spot["lon"], spot["lat"])
    return row, res.series[res.series["unit"] == row["unit"]]


@pytest.mark.parametrize("unit", ["grid", "hex"])
def test_demo_rising_area_intensifies_and_new_spot_is_new(
    demo_engine: Engine, demo, unit: str
) -> None:
    # The planted rising area (loaders/demo/incidents.py): incidents in every month of the
    # year, climbing linearly, around a junction next to a construction site. By ArcGIS's
    # definitions it is an intensifying hot spot: significantly hot in at least 90 % of
    # the months including the last, its Gi* z series rising (Mann-Kendall). The new spot
    # (a night market) has incidents in the final month only: hot then, never before.
    truth = demo.truth["incidents"]
    with demo_engine.connect() as conn:
        res = emerging(conn, street=STREET, start=DEMO_START, end=DEMO_END, unit=unit)
    edges = [pd.Timestamp(e).tz_convert("UTC") for e in res.params.edges]
    for name in ("rising", "new_spot"):
        # the planted months are the analysis's monthly bins
        windows = truth[name]["windows"]
        assert [pd.Timestamp(w["start"]) for w in windows] == edges[:-1]
        assert [pd.Timestamp(w["end"]) for w in windows] == edges[1:]

    row, s = _pattern_rows(res, truth["rising"])
    planted = [w["count"] for w in truth["rising"]["windows"]]
    print(
        f"\nrising area, {unit} {row['unit']}: {row['pattern_key']} ({row['label_zh']}); "
        f"planted {planted}, counts {s['count'].tolist()}, Gi_Bin {s['gi_bin'].tolist()}, "
        f"trend z {row['trend_z']:.2f} p {row['trend_p']:.4f}"
    )
    assert all(a < b for a, b in itertools.pairwise(planted)) and min(planted) > 0
    assert row["hot_share"] >= 0.9 and row["last_bin"] > 0
    assert row["trend_z"] > 0 and row["trend_p"] <= res.params.alpha
    assert row["pattern_key"] == "intensifying_hot"

    row, s = _pattern_rows(res, truth["new_spot"])
    planted = [w["count"] for w in truth["new_spot"]["windows"]]
    print(
        f"new spot, {unit} {row['unit']}: {row['pattern_key']} ({row['label_zh']}); "
        f"planted {planted}, counts {s['count'].tolist()}, Gi_Bin {s['gi_bin'].tolist()}"
    )
    assert planted[-1] > 0 and not any(planted[:-1])
    assert set(s.loc[s["gi_bin"] > 0, "bin"]) == {res.params.n_bins - 1}
    assert row["pattern_key"] == "new_hot"
    if unit == "hex":
        assert res.params.resolution == 10


def test_demo_planted_hotspots_are_hot_all_year_on_hexagons(demo_engine: Engine, demo) -> None:
    with demo_engine.connect() as conn:
        res = emerging(conn, street=STREET, start=DEMO_START, end=DEMO_END, unit="hex")
    for spot in demo.truth["incidents"]["hotspots"]:
        row = _holder(res.units, spot["lon"], spot["lat"])
        print(
            f"\n{spot['theme']}: {row['pattern_key']}, hot in {row['hot_bins']} of 12 months, "
            f"trend p {row['trend_p']:.3f}"
        )
        # hot in ≥ 90 % of the months including the last: persistent, or intensifying /
        # diminishing when its (stationary) z series happens to trend at α = 0.10
        assert row["hot_share"] >= 0.9 and row["last_bin"] > 0
        assert row["pattern_key"] in ("persistent_hot", "intensifying_hot", "diminishing_hot")
    # the street's background is mostly patternless: away from the planted emerging
    # patterns (rising area, new spot), which cover a few hundred metres each
    metric = res.units.geometry.to_crs(METRIC_EPSG).centroid
    away = np.ones(len(res.units), dtype=bool)
    for name in ("rising", "new_spot"):
        spot = demo.truth["incidents"][name]
        centre = gpd.GeoSeries([shapely.Point(spot["lon"], spot["lat"])], crs=4490)
        away &= (metric.distance(centre.to_crs(METRIC_EPSG)[0]) > 2 * spot["sigma_m"]).to_numpy()
    share = float((res.units.loc[away, "pattern"] == 0).mean())
    print(f"units without a pattern away from the emerging plants: {share:.1%} of {away.sum()}")
    assert share > 0.9


def test_demo_weekly_bins_and_refusals(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        res = emerging(conn, street=STREET, start=DEMO_START, end=DEMO_END, bin="week", unit="grid")
        assert res.params.n_bins == 52 and res.params.unbinned == dt.timedelta(days=1)
        assert any("not analysed" in n.en for n in res.params.notes)
        with pytest.raises(ValueError, match="at least 3 whole months"):
            emerging(conn, street=STREET, start="2026-10-01", end=DEMO_END)
        with pytest.raises(ValueError, match="'grid' or 'hex'"):
            emerging(conn, start=DEMO_START, end=DEMO_END, unit="tract")  # type: ignore[arg-type]
