"""loaders.coords: GCJ-02/BD-09 offsets, CRS parsing, storage conversion and the guards.

Accuracy is measured on the ellipsoid in metres (pyproj Geod), never in degrees, and checked
against prcoords, an independent implementation of the same formulas.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import prcoords
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod, Transformer

from loaders.coords import (
    CrsSpec,
    bd09_to_gcj02,
    bd09_to_wgs84,
    check_bounds,
    detect_offset,
    detect_swapped,
    from_storage,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    parse_crs,
    to_storage,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

GEOD = Geod(ellps="WGS84")
# Mainland China, kept a little inside the rough out-of-China box so that a shifted point
# cannot leave the box (where the inverse would, correctly, pass it through).
MAINLAND = (73.5, 18.0, 135.0, 53.5)
TIANANMEN_WGS = (116.3912757, 39.9066855)
Transform = Callable[..., tuple[np.ndarray, np.ndarray]]
QINGDAO = (120.4, 36.3)


def metres(
    lon1: npt.ArrayLike, lat1: npt.ArrayLike, lon2: npt.ArrayLike, lat2: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Geodesic distance in metres, element-wise."""
    a, b, c, d = np.broadcast_arrays(
        *(np.asarray(v, dtype=float) for v in (lon1, lat1, lon2, lat2))
    )
    return np.asarray(GEOD.inv(a, b, c, d)[2])


def random_mainland(n: int, seed: int = 20240401) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = MAINLAND
    return rng.uniform(minx, maxx, n), rng.uniform(miny, maxy, n)


mainland_lon = st.floats(MAINLAND[0], MAINLAND[2], allow_nan=False)
mainland_lat = st.floats(MAINLAND[1], MAINLAND[3], allow_nan=False)


# --- offsets -----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(lon=mainland_lon, lat=mainland_lat)
def test_gcj02_round_trip_under_a_metre(lon: float, lat: float) -> None:
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert metres(lon, lat, *back) < 1.0


@settings(max_examples=300, deadline=None)
@given(lon=mainland_lon, lat=mainland_lat)
def test_bd09_round_trip_under_a_metre(lon: float, lat: float) -> None:
    back = bd09_to_wgs84(*wgs84_to_bd09(lon, lat))
    assert metres(lon, lat, *back) < 1.0
    back_gcj = bd09_to_gcj02(*gcj02_to_bd09(lon, lat))
    assert metres(lon, lat, *back_gcj) < 1.0


def test_round_trips_vectorised_are_sub_millimetre() -> None:
    """10,000 points at once; the iterated inverse is far better than the 1 m requirement
    (the one-step inverse would be off by up to ~2 m)."""
    lon, lat = random_mainland(10_000)
    gcj = metres(lon, lat, *gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat)))
    bd = metres(lon, lat, *bd09_to_wgs84(*wgs84_to_bd09(lon, lat)))
    assert gcj.max() < 1e-3
    assert bd.max() < 1e-3


def test_agrees_with_prcoords_reference() -> None:
    lon, lat = random_mainland(2_000, seed=7)
    ref = {
        "gcj": np.array([prcoords.wgs_gcj((b, a)) for a, b in zip(lon, lat, strict=True)]),
        "bd": np.array([prcoords.wgs_bd((b, a)) for a, b in zip(lon, lat, strict=True)]),
    }
    glon, glat = wgs84_to_gcj02(lon, lat)
    blon, blat = wgs84_to_bd09(lon, lat)
    # forward: same formula, so agreement to floating-point noise (columns are lat, lon)
    assert np.abs(glon - ref["gcj"][:, 1]).max() < 1e-6
    assert np.abs(glat - ref["gcj"][:, 0]).max() < 1e-6
    assert np.abs(blon - ref["bd"][:, 1]).max() < 1e-6
    assert np.abs(blat - ref["bd"][:, 0]).max() < 1e-6
    assert np.abs(np.column_stack([*gcj02_to_bd09(glon, glat)])[:, ::-1] - ref["bd"]).max() < 1e-6

    # inverses: prcoords' iterated ("bored") inverses stop at 1e-5 degrees of residual
    inv_gcj = np.array([prcoords.gcj_wgs_bored((b, a)) for a, b in zip(glon, glat, strict=True)])
    inv_bd = np.array([prcoords.bd_wgs_bored((b, a)) for a, b in zip(blon, blat, strict=True)])
    inv_bd_gcj = np.array(
        [prcoords.bd_gcj_bored((b, a)) for a, b in zip(*gcj02_to_bd09(glon, glat), strict=True)]
    )
    assert metres(*gcj02_to_wgs84(glon, glat), inv_gcj[:, 1], inv_gcj[:, 0]).max() < 0.5
    assert metres(*bd09_to_wgs84(blon, blat), inv_bd[:, 1], inv_bd[:, 0]).max() < 0.5
    got = bd09_to_gcj02(*gcj02_to_bd09(glon, glat))
    assert metres(*got, inv_bd_gcj[:, 1], inv_bd_gcj[:, 0]).max() < 0.5


def test_tiananmen_fixed_point() -> None:
    lon, lat = wgs84_to_gcj02(*TIANANMEN_WGS)
    ref = prcoords.wgs_gcj(TIANANMEN_WGS[::-1])
    assert float(lon) == pytest.approx(ref.lon, abs=1e-9)
    assert float(lat) == pytest.approx(ref.lat, abs=1e-9)
    # the value quoted everywhere for Tiananmen on AutoNavi
    assert float(lon) == pytest.approx(116.3975, abs=1e-4)
    assert float(lat) == pytest.approx(39.9081, abs=1e-4)
    blon, blat = wgs84_to_bd09(*TIANANMEN_WGS)
    bref = prcoords.wgs_bd(TIANANMEN_WGS[::-1])
    assert (float(blon), float(blat)) == pytest.approx((bref.lon, bref.lat), abs=1e-9)
    assert (float(blon), float(blat)) == pytest.approx((116.4039, 39.9144), abs=1e-4)


FUNCS = [wgs84_to_gcj02, gcj02_to_wgs84, gcj02_to_bd09, bd09_to_gcj02, wgs84_to_bd09, bd09_to_wgs84]


@pytest.mark.parametrize("func", FUNCS, ids=lambda f: f.__name__)
def test_outside_china_passes_through(func: Transform) -> None:
    lon = np.array([2.3522, -74.006, 151.2093, 139.6917, 116.39, np.nan])
    lat = np.array([48.8566, 40.7128, -33.8688, 60.0, 39.9, 39.9])
    out_lon, out_lat = func(lon, lat)
    np.testing.assert_array_equal(out_lon[:4], lon[:4])
    np.testing.assert_array_equal(out_lat[:4], lat[:4])
    assert metres(lon[4], lat[4], out_lon[4], out_lat[4]) > 100  # Beijing is converted
    assert np.isnan(out_lon[5])  # NaN stays NaN, no error
    # check=False applies the formula everywhere
    forced = func(lon[:1], lat[:1], check=False)
    assert metres(lon[0], lat[0], *forced)[0] > 1


def test_offset_magnitudes_over_china() -> None:
    mesh = np.meshgrid(np.linspace(73.5, 135.0, 124), np.linspace(18.0, 53.5, 72))
    lon, lat = mesh[0].ravel(), mesh[1].ravel()
    gcj = metres(lon, lat, *wgs84_to_gcj02(lon, lat))
    bd = metres(lon, lat, *wgs84_to_bd09(lon, lat))
    east = lon >= 100.0
    # 100-700 m where nearly everyone lives; the formula dips to ~30 m around 93-99 E
    assert gcj[east].min() >= 100 and gcj[east].max() <= 700
    assert gcj.min() >= 25 and gcj.max() <= 700
    assert bd.min() >= 600 and bd.max() <= 1600


def test_shapes_scalars_and_broadcasting() -> None:
    lon, _ = wgs84_to_gcj02(120.4, 36.3)
    assert isinstance(lon, np.ndarray) and lon.shape == () and lon.dtype == np.float64
    grid = np.full((3, 4), 120.4)
    lon2, lat2 = gcj02_to_wgs84(grid, 36.3)
    assert lon2.shape == lat2.shape == (3, 4)
    lon3, _ = wgs84_to_bd09([120.4, 120.5], [36.3, 36.3])
    assert lon3.shape == (2,)
    inputs = np.array([120.4]), np.array([36.3])
    wgs84_to_gcj02(*inputs)
    assert inputs[0][0] == 120.4  # inputs are not modified in place


# --- parse_crs -----------------------------------------------------------------------------

ESRI_CGCS2000 = (
    'GEOGCS["GCS_China_Geodetic_Coordinate_System_2000",DATUM["D_China_2000",'
    'SPHEROID["CGCS2000",6378137.0,298.257222101]],PRIMEM["Greenwich",0.0],'
    'UNIT["Degree",0.0174532925199433]]'
)
ESRI_GK_120 = (
    'PROJCS["CGCS2000_3_Degree_GK_CM_120E",' + ESRI_CGCS2000 + ',PROJECTION["Gauss_Kruger"],'
    'PARAMETER["False_Easting",500000.0],PARAMETER["False_Northing",0.0],'
    'PARAMETER["Central_Meridian",120.0],PARAMETER["Scale_Factor",1.0],'
    'PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]'
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4326", CrsSpec("epsg", 4326)),
        ("EPSG:4490", CrsSpec("epsg", 4490)),
        ("epsg:4549", CrsSpec("epsg", 4549)),
        (" EPSG：4527 ", CrsSpec("epsg", 4527)),
        ("3857", CrsSpec("epsg", 3857)),
        ("gcj02", CrsSpec("gcj02")),
        ("GCJ-02", CrsSpec("gcj02")),
        ("gcj", CrsSpec("gcj02")),
        ("火星坐标", CrsSpec("gcj02")),
        ("高德", CrsSpec("gcj02")),
        ("bd09", CrsSpec("bd09")),
        ("BD-09", CrsSpec("bd09")),
        ("百度", CrsSpec("bd09")),
        ("wgs84", CrsSpec("epsg", 4326)),
        ("WGS 84", CrsSpec("epsg", 4326)),
        ("CGCS2000", CrsSpec("epsg", 4490)),
        (ESRI_CGCS2000, CrsSpec("epsg", 4490)),
        (ESRI_GK_120, CrsSpec("epsg", 4549)),
        ("urn:ogc:def:crs:EPSG::4326", CrsSpec("epsg", 4326)),
    ],
)
def test_parse_crs_accepts(text: str, expected: CrsSpec) -> None:
    assert parse_crs(text) == expected


@pytest.mark.parametrize(
    "text", ["", "   ", "mars", "EPSG:999999", "5773", "bd09mc", "gcj03", "GEOGCS[broken"]
)
def test_parse_crs_refuses_with_a_clear_message(text: str) -> None:
    with pytest.raises(ValueError, match="坐标系") as info:
        parse_crs(text)
    msg = str(info.value)
    assert repr(text.strip()) in msg or repr(text) in msg  # names the input
    assert "gcj02" in msg and "EPSG:4490" in msg and "百度" in msg  # lists accepted forms
    assert msg.index("无法识别") < msg.index("Cannot")  # Chinese first


def test_crs_spec_is_validated() -> None:
    with pytest.raises(ValueError, match="EPSG code"):
        CrsSpec("epsg")
    with pytest.raises(ValueError, match="no EPSG"):
        CrsSpec("gcj02", 4326)
    with pytest.raises(ValueError, match="kind"):
        CrsSpec("utm", 32650)  # type: ignore[arg-type]
    assert str(CrsSpec("epsg", 4490)) == "EPSG:4490" and str(CrsSpec("bd09")) == "bd09"


# --- to_storage / from_storage -------------------------------------------------------------


@pytest.mark.parametrize("epsg", [4326, 4490, 4549, 3857])
def test_to_storage_matches_pyproj(epsg: int) -> None:
    lon, lat = random_mainland(500, seed=epsg)
    lon = 118.6 + (lon - lon.min()) / np.ptp(lon) * 3.0  # keep inside the 120E GK zone
    lat = 30.0 + (lat - lat.min()) / np.ptp(lat) * 8.0
    to_src = Transformer.from_crs(4490, epsg, always_xy=True)
    x, y = to_src.transform(lon, lat)
    got_lon, got_lat = to_storage(x, y, CrsSpec("epsg", epsg))
    want_lon, want_lat = Transformer.from_crs(epsg, 4490, always_xy=True).transform(x, y)
    np.testing.assert_allclose(got_lon, want_lon, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got_lat, want_lat, rtol=0, atol=1e-12)
    assert metres(lon, lat, got_lon, got_lat).max() < 1e-3
    back_x, back_y = from_storage(got_lon, got_lat, CrsSpec("epsg", epsg))
    scale = 1.0 if to_src.target_crs is not None and to_src.target_crs.is_projected else 1e-6
    np.testing.assert_allclose(back_x, x, rtol=0, atol=1e-3 * scale)
    np.testing.assert_allclose(back_y, y, rtol=0, atol=1e-3 * scale)


def test_to_storage_gcj02_and_bd09() -> None:
    lon, lat = random_mainland(1000, seed=3)
    for spec, fwd in ((CrsSpec("gcj02"), wgs84_to_gcj02), (CrsSpec("bd09"), wgs84_to_bd09)):
        x, y = fwd(lon, lat)
        assert metres(lon, lat, *to_storage(x, y, spec)).max() < 1e-3
        fx, fy = from_storage(lon, lat, spec)
        np.testing.assert_array_equal(fx, x)
        np.testing.assert_array_equal(fy, y)


# --- guards --------------------------------------------------------------------------------

AREA = (120.30, 36.20, 120.50, 36.40)


def test_check_bounds() -> None:
    lon = np.array([120.4, 120.2999, 120.6, np.nan, 36.3])
    lat = np.array([36.3, 36.3, 36.3, 36.3, 120.4])
    result = check_bounds(lon, lat, AREA)
    assert result.n_points == 5
    assert result.outside.tolist() == [2, 3, 4]  # 120.2999 is within the 1 km margin
    assert not result.ok
    assert "之外" in result.message and "outside" in result.message
    assert result.message.index("之外") < result.message.index("outside")
    assert "--crs" in result.message
    with pytest.raises(ValueError, match="read-only"):
        result.outside[0] = 0
    ok = check_bounds([120.4], [36.3], AREA)
    assert ok.ok and ok.message == ""
    assert check_bounds([120.2999], [36.3], AREA, margin_m=0).outside.tolist() == [0]


def sample_in_polygons(
    polys: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random points inside the given (rectangular) polygons."""
    out_x: list[float] = []
    out_y: list[float] = []
    while len(out_x) < n:
        poly = polys[rng.integers(len(polys))]
        minx, miny, maxx, maxy = poly.bounds
        out_x.append(rng.uniform(minx, maxx))
        out_y.append(rng.uniform(miny, maxy))
    return np.array(out_x), np.array(out_y)


@pytest.fixture
def grids() -> np.ndarray:
    """Twelve ~350 m grid cells near Qingdao (36.3N 120.4E), in three separate blocks."""
    cells = []
    for bx, by in ((120.38, 36.28), (120.41, 36.31), (120.36, 36.32)):
        for i in range(2):
            for j in range(2):
                x0, y0 = bx + i * 0.004, by + j * 0.003
                cells.append(shapely.box(x0, y0, x0 + 0.004, y0 + 0.003))
    return np.array(cells, dtype=object)


def test_detect_swapped(grids: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    lon, lat = sample_in_polygons(grids, 200, rng)
    swapped = detect_swapped(lat, lon, AREA)
    assert swapped.swapped
    assert swapped.share_inside == 0.0 and swapped.share_inside_swapped == 1.0
    assert swapped.message.startswith("经纬度可能颠倒")
    assert "swapped" in swapped.message
    fine = detect_swapped(lon, lat, AREA)
    assert not fine.swapped and fine.rows_swapped.size == 0
    # a few rows entered the wrong way round
    mixed_x, mixed_y = lon.copy(), lat.copy()
    mixed_x[:5], mixed_y[:5] = lat[:5], lon[:5]
    partial = detect_swapped(mixed_x, mixed_y, AREA)
    assert not partial.swapped and partial.rows_swapped.tolist() == [0, 1, 2, 3, 4]


def test_detect_swapped_surveyor_xy_in_gauss_kruger() -> None:
    """Surveyors write X = northing, Y = easting; the check converts both orders."""
    rng = np.random.default_rng(2)
    lon, lat = rng.uniform(120.32, 120.48, 100), rng.uniform(36.22, 36.38, 100)
    easting, northing = Transformer.from_crs(4490, 4549, always_xy=True).transform(lon, lat)
    gk = CrsSpec("epsg", 4549)
    assert detect_swapped(northing, easting, AREA, crs=gk).swapped
    assert not detect_swapped(easting, northing, AREA, crs=gk).swapped


@pytest.mark.parametrize(
    ("shift", "verdict"), [(None, None), (wgs84_to_gcj02, "gcj02"), (wgs84_to_bd09, "bd09")]
)
def test_detect_offset_against_grid_polygons(
    grids: np.ndarray, shift: Transform | None, verdict: str | None
) -> None:
    rng = np.random.default_rng(3)
    lon, lat = sample_in_polygons(grids, 300, rng)
    if shift is not None:
        lon, lat = shift(lon, lat)
    result = detect_offset(lon, lat, grids)
    assert result.method == "inside"
    assert result.verdict == verdict, result
    assert 100 <= result.shift_gcj02_m <= 700
    if verdict is None:
        assert result.fit_as_given == 1.0
        assert result.message.startswith("未发现系统偏移")
    else:
        assert getattr(result, f"fit_{verdict}") == pytest.approx(1.0)
        assert result.fit_as_given < 0.5
        assert f"--crs {verdict}" in result.message
        assert result.message.index("米") < result.message.index(" m ")


@pytest.mark.parametrize(
    ("shift", "verdict"), [(None, None), (wgs84_to_gcj02, "gcj02"), (wgs84_to_bd09, "bd09")]
)
def test_detect_offset_against_building_points(
    shift: Transform | None, verdict: str | None
) -> None:
    """Buildings every ~60 m; the new points are some of them, a few metres off."""
    rng = np.random.default_rng(4)
    bx, by = np.meshgrid(np.arange(120.39, 120.41, 0.0007), np.arange(36.29, 36.31, 0.00055))
    buildings = shapely.points(bx.ravel(), by.ravel())
    pick = rng.choice(bx.size, 150, replace=False)
    lon = bx.ravel()[pick] + rng.normal(0, 3e-5, 150)
    lat = by.ravel()[pick] + rng.normal(0, 3e-5, 150)
    if shift is not None:
        lon, lat = shift(lon, lat)
    result = detect_offset(lon, lat, buildings)
    assert result.method == "distance"
    assert result.verdict == verdict, result
    if verdict is None:
        assert result.fit_as_given < 10
    else:
        assert getattr(result, f"fit_{verdict}") < 10
        assert f"--crs {verdict}" in result.message


def test_detect_offset_abstains_without_evidence(grids: np.ndarray) -> None:
    few = detect_offset([120.39], [36.29], grids)
    assert few.verdict is None and few.method == "none"
    empty = detect_offset(*sample_in_polygons(grids, 50, np.random.default_rng(5)), [])
    assert empty.verdict is None and empty.method == "none"
    # points scattered at random over a wide area fit no better after any correction
    rng = np.random.default_rng(6)
    noise = detect_offset(rng.uniform(120.2, 120.6, 400), rng.uniform(36.1, 36.5, 400), grids)
    assert noise.verdict is None
