"""Metric work happens in the right Gauss-Krüger zone (property-based)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyproj import CRS, Transformer

from store.crs import STORAGE_EPSG, gk_zone_epsg, metric_epsg_for_bounds

LON = st.floats(min_value=73.5, max_value=135.0, allow_nan=False)
LAT = st.floats(min_value=18.0, max_value=53.5, allow_nan=False)


@given(lon=LON)
def test_zone_central_meridian_is_nearest(lon: float) -> None:
    crs = CRS.from_epsg(gk_zone_epsg(lon))
    assert "CGCS2000" in crs.name and "3-degree" in crs.name
    cm = next(p.value for p in crs.coordinate_operation.params if "longitude" in p.name.lower())
    assert abs(cm - lon) <= 1.5 + 1e-9


@given(lon=LON, lat=LAT)
def test_round_trip_through_the_zone_is_exact(lon: float, lat: float) -> None:
    epsg = gk_zone_epsg(lon)
    fwd = Transformer.from_crs(STORAGE_EPSG, epsg, always_xy=True)
    back = Transformer.from_crs(epsg, STORAGE_EPSG, always_xy=True)
    x, y = fwd.transform(lon, lat)
    lon2, lat2 = back.transform(x, y)
    assert abs(lon2 - lon) < 1e-8 and abs(lat2 - lat) < 1e-8
    assert 300_000 < x < 700_000  # no zone prefix in the false easting


@given(lon=LON, lat=LAT)
def test_metres_agree_with_the_ellipsoid(lon: float, lat: float) -> None:
    """A 100 m east-west step measured in the zone matches the geodesic within 0.2 %."""
    from pyproj import Geod

    epsg = gk_zone_epsg(lon)
    fwd = Transformer.from_crs(STORAGE_EPSG, epsg, always_xy=True)
    lon2, lat2, _ = Geod(ellps="GRS80").fwd(lon, lat, 90, 100.0)
    (x1, x2), (y1, y2) = fwd.transform([lon, lon2], [lat, lat2])
    assert abs(((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5 - 100.0) < 0.2


@pytest.mark.parametrize("lon", [12.0, 200.0, float("nan"), 36.3])
def test_outside_china_is_refused(lon: float) -> None:
    with pytest.raises(ValueError, match="outside China"):
        gk_zone_epsg(lon)


def test_examples() -> None:
    assert gk_zone_epsg(120.4) == 4549  # Qingdao: CM 120E
    assert gk_zone_epsg(116.4) == 4548  # Beijing: CM 117E
    assert metric_epsg_for_bounds((120.35, 36.25, 120.45, 36.35)) == 4549
