"""The Chinese consumer-map offsets GCJ-02 and BD-09: pure, vectorised numpy functions.

Stored data is CGCS2000 (EPSG:4490, treated as WGS84 for mapping). AutoNavi/Gaode and
Tencent basemaps are drawn in GCJ-02, Baidu's in BD-09; neither is an EPSG system, so PROJ
cannot convert them. The loaders use these to bring such points into the store
(:mod:`loaders.coords` re-exports them); the dashboard uses :func:`wgs84_to_gcj02` to shift
its layers onto a GCJ-02 basemap while the store stays CGCS2000. They live here, below both,
because layers import one way only (loaders → store → geo → dashboard).

GCJ-02 is a closed-form forward offset (the widely published "eviltransform" polynomial on
the Krasovsky 1940 ellipsoid); it has no closed-form inverse. :func:`gcj02_to_wgs84` inverts
it by fixed-point iteration until the update is below 1e-9 degrees (about 0.1 mm). BD-09 is a
small rotation and scaling of GCJ-02 about the origin plus a fixed shift; its inverse is
iterated the same way. Points outside the rough :data:`CHINA_BOX` pass through unchanged
unless ``check=False``, as the consumer maps' own SDKs do.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

__all__ = [
    "CHINA_BOX",
    "INVERSE_TOLERANCE_DEG",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "in_china",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

FloatArray = npt.NDArray[np.float64]
Bounds = tuple[float, float, float, float]

#: The rough ``(min lon, min lat, max lon, max lat)`` box inside which GCJ-02/BD-09 apply.
#: This is the standard ``out_of_china`` test of the published implementations.
CHINA_BOX: Bounds = (72.004, 0.8293, 137.8347, 55.8271)

# Krasovsky 1940 ellipsoid, which the GCJ-02 formula uses for its metre-to-degree step.
_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323
# BD-09 constants: the fixed shift and the angular frequency (pi * 3000 / 180).
_BD_DLON = 0.0065
_BD_DLAT = 0.0060
_BD_XPI = math.pi * 3000.0 / 180.0

#: Inverse iterations stop when the largest update is below this (degrees; ~0.1 mm).
INVERSE_TOLERANCE_DEG = 1e-9
_MAX_ITERATIONS = 30


# ---------------------------------------------------------------------------
# GCJ-02 / BD-09 offsets
# ---------------------------------------------------------------------------


def _as_pair(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Broadcast ``lon`` and ``lat`` to float64 arrays of one shape (fresh copies)."""
    x, y = np.broadcast_arrays(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return np.array(x, dtype=np.float64), np.array(y, dtype=np.float64)


def in_china(lon: npt.ArrayLike, lat: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Whether each point lies in the rough box where the Chinese offsets apply.

    Parameters
    ----------
    lon, lat
        Degrees, arrays or scalars (broadcast together).

    Returns
    -------
    numpy.ndarray of bool
        ``True`` inside :data:`CHINA_BOX`; ``False`` outside and for NaN.
    """
    x, y = _as_pair(lon, lat)
    minx, miny, maxx, maxy = CHINA_BOX
    return (x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)


def _gcj_delta(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The GCJ-02 offset ``(dlon, dlat)`` in degrees at WGS84 position ``(lon, lat)``.

    The polynomial gives the offset in metres of arc; it is turned into degrees with the
    Krasovsky 1940 radii of curvature, exactly as the original (leaked) implementation does.
    """
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = (np.sin(6.0 * math.pi * x) + np.sin(2.0 * math.pi * x)) * 40.0 / 3.0
    dlat_m = (
        -100.0
        + 2.0 * x
        + 3.0 * y
        + 0.2 * y * y
        + 0.1 * x * y
        + 0.2 * sqrt_abs_x
        + common
        + (np.sin(math.pi * y) * 20.0 + np.sin(math.pi * y / 3.0) * 40.0) * 2.0 / 3.0
        + (np.sin(math.pi * y / 12.0) * 160.0 + np.sin(math.pi * y / 30.0) * 320.0) * 2.0 / 3.0
    )
    dlon_m = (
        300.0
        + x
        + 2.0 * y
        + 0.1 * x * x
        + 0.1 * x * y
        + 0.1 * sqrt_abs_x
        + common
        + (np.sin(math.pi * x) * 20.0 + np.sin(math.pi * x / 3.0) * 40.0) * 2.0 / 3.0
        + (np.sin(math.pi * x / 12.0) * 150.0 + np.sin(math.pi * x / 30.0) * 300.0) * 2.0 / 3.0
    )
    rad_lat = np.radians(lat)
    magic = 1.0 - _GCJ_EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = dlat_m * 180.0 / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * sqrt_magic) * math.pi)
    dlon = dlon_m * 180.0 / (_GCJ_A / sqrt_magic * np.cos(rad_lat) * math.pi)
    return dlon, dlat


def _gcj_forward(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    dlon, dlat = _gcj_delta(lon, lat)
    return lon + dlon, lat + dlat


def _bd_forward(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 → BD-09 (closed form)."""
    r = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _BD_XPI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _BD_XPI)
    return r * np.cos(theta) + _BD_DLON, r * np.sin(theta) + _BD_DLAT


def _bd_rough_inverse(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The usual one-step BD-09 → GCJ-02 (centimetre-level); the start of the iteration."""
    x = lon - _BD_DLON
    y = lat - _BD_DLAT
    r = np.hypot(x, y) - 0.00002 * np.sin(y * _BD_XPI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _BD_XPI)
    return r * np.cos(theta), r * np.sin(theta)


_Forward = Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]]


def _invert(
    forward: _Forward,
    lon: FloatArray,
    lat: FloatArray,
    start: tuple[FloatArray, FloatArray] | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Solve ``forward(p) = (lon, lat)`` for ``p`` by fixed-point iteration.

    Both offsets are the identity plus a slowly varying shift (its derivative is of order
    1e-3), so ``p <- p - (forward(p) - target)`` contracts fast: 3–4 rounds reach 1e-9°.
    Only points not yet converged are iterated. NaN stays NaN.
    """
    px, py = (lon.copy(), lat.copy()) if start is None else (start[0].copy(), start[1].copy())
    active = np.flatnonzero(np.isfinite(px) & np.isfinite(py))
    for _ in range(_MAX_ITERATIONS):
        if active.size == 0:
            break
        fx, fy = forward(px[active], py[active])
        ex = fx - lon[active]
        ey = fy - lat[active]
        px[active] -= ex
        py[active] -= ey
        # written so that a NaN error counts as "done" rather than looping forever
        done = ~((np.abs(ex) >= INVERSE_TOLERANCE_DEG) | (np.abs(ey) >= INVERSE_TOLERANCE_DEG))
        active = active[~done]
    return px, py


def _apply(
    func: _Forward, lon: npt.ArrayLike, lat: npt.ArrayLike, check: bool
) -> tuple[FloatArray, FloatArray]:
    """Apply ``func`` to the points inside China (all points if ``check`` is false)."""
    x, y = _as_pair(lon, lat)
    if not check:
        return func(x, y)
    mask = in_china(x, y)
    if mask.any():
        x[mask], y[mask] = func(x[mask], y[mask])
    return x, y


def wgs84_to_gcj02(
    lon: npt.ArrayLike, lat: npt.ArrayLike, *, check: bool = True
) -> tuple[FloatArray, FloatArray]:
    """WGS84 (or CGCS2000) → GCJ-02, the system of AutoNavi/Gaode and Tencent maps.

    Used to draw stored data over a GCJ-02 basemap and to export for those apps.

    Parameters
    ----------
    lon, lat
        Degrees, arrays or scalars (broadcast together).
    check
        If true (default), points outside :data:`CHINA_BOX` are returned unchanged, as
        the consumer maps do; if false the formula is applied everywhere.

    Returns
    -------
    tuple of numpy.ndarray
        ``(lon, lat)`` in GCJ-02, float64, in the broadcast shape of the inputs.

    Examples
    --------
    >>> lon, lat = wgs84_to_gcj02(116.3912757, 39.9066855)  # Tiananmen
    >>> round(float(lon), 4), round(float(lat), 4)
    (116.3975, 39.9081)
    """
    return _apply(_gcj_forward, lon, lat, check)


def gcj02_to_wgs84(
    lon: npt.ArrayLike, lat: npt.ArrayLike, *, check: bool = True
) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 → WGS84 (or CGCS2000), the exact inverse of :func:`wgs84_to_gcj02`.

    Iterated until the update is below 1e-9° (sub-millimetre), so a round trip returns the
    original point; the widespread one-step inverse is off by up to a few metres.

    Parameters
    ----------
    lon, lat
        GCJ-02 degrees, arrays or scalars (broadcast together).
    check
        If true (default), points outside :data:`CHINA_BOX` are returned unchanged.

    Returns
    -------
    tuple of numpy.ndarray
        ``(lon, lat)`` in WGS84, float64.
    """

    def inverse(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        return _invert(_gcj_forward, x, y)

    return _apply(inverse, lon, lat, check)


def gcj02_to_bd09(
    lon: npt.ArrayLike, lat: npt.ArrayLike, *, check: bool = True
) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 → BD-09, the system of Baidu maps (for export to Baidu-based tools).

    Parameters
    ----------
    lon, lat
        GCJ-02 degrees, arrays or scalars (broadcast together).
    check
        If true (default), points outside :data:`CHINA_BOX` are returned unchanged.

    Returns
    -------
    tuple of numpy.ndarray
        ``(lon, lat)`` in BD-09, float64.
    """
    return _apply(_bd_forward, lon, lat, check)


def bd09_to_gcj02(
    lon: npt.ArrayLike, lat: npt.ArrayLike, *, check: bool = True
) -> tuple[FloatArray, FloatArray]:
    """BD-09 → GCJ-02, the exact (iterated) inverse of :func:`gcj02_to_bd09`.

    Parameters
    ----------
    lon, lat
        BD-09 degrees, arrays or scalars (broadcast together).
    check
        If true (default), points outside :data:`CHINA_BOX` are returned unchanged.

    Returns
    -------
    tuple of numpy.ndarray
        ``(lon, lat)`` in GCJ-02, float64.
    """

    def inverse(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        return _invert(_bd_forward, x, y, start=_bd_rough_inverse(x, y))

    return _apply(inverse, lon, lat, check)


def wgs84_to_bd09(
    lon: npt.ArrayLike, lat: npt.ArrayLike, *, check: bool = True
) -> tuple[FloatArray, FloatArray]:
    """WGS84 (or CGCS2000) → BD-09 (GCJ-02, then Baidu's own offset).

    The China test is made once, on the input, so a point is either fully converted or
    returned unchanged.

    Parameters
    ----------
    lon, lat
        Degrees, arrays or scalars (broadcast together).
    check
        If true (default), points outside :data:`CHINA_BOX` are returned unchanged.

    Returns
    -------
    tuple of numpy.ndarray
        ``(lon, lat)`` in BD-09, float64.
    """

    def forward(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        return _bd_forward(*_gcj_forward(x, y))

    return _apply(forward, lon, lat, check)


def bd09_to_wgs84(
    lon: npt.ArrayLike, lat: npt.ArrayLike, *, check: bool = True
) -> tuple[FloatArray, FloatArray]:
    """BD-09 → WGS84 (or CGCS2000), both steps iterated to sub-millimetre.

    Parameters
    ----------
    lon, lat
        BD-09 degrees, arrays or scalars (broadcast together).
    check
        If true (default), points outside :data:`CHINA_BOX` are returned unchanged.

    Returns
    -------
    tuple of numpy.ndarray
        ``(lon, lat)`` in WGS84, float64.
    """

    def inverse(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        gx, gy = _invert(_bd_forward, x, y, start=_bd_rough_inverse(x, y))
        return _invert(_gcj_forward, gx, gy)

    return _apply(inverse, lon, lat, check)
