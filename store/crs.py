"""Coordinate reference systems: storage, web output and metric work.

Storage is CGCS2000 geographic (EPSG:4490); web maps get EPSG:4326. Anything measured in
metres (areas, buffers, distances, lengths) is done in the CGCS2000 3-degree Gauss-Krüger
zone whose central meridian is nearest the data (EPSG:4534 for 75°E … EPSG:4554 for 135°E),
never in degrees.
"""

from __future__ import annotations

import math

#: Storage CRS (CGCS2000 geographic).
STORAGE_EPSG = 4490
#: CRS of everything sent to a web map.
WEB_EPSG = 4326

_GK_FIRST_EPSG = 4534  # CGCS2000 / 3-degree Gauss-Kruger CM 75E
_GK_FIRST_CM = 75
_GK_LAST_CM = 135


def gk_zone_epsg(longitude: float) -> int:
    """EPSG code of the CGCS2000 3-degree Gauss-Krüger zone (no zone prefix in the false
    easting) whose central meridian is nearest ``longitude``.

    Parameters
    ----------
    longitude
        Degrees east, within China's extent (73.5–135).

    Examples
    --------
    >>> gk_zone_epsg(120.4)
    4549
    """
    if not math.isfinite(longitude) or not 72.0 <= longitude <= 136.5:
        raise ValueError(
            f"longitude {longitude!r} is outside China's 3-degree Gauss-Krüger zones "
            "(72°E–136.5°E); check that longitude and latitude are not swapped"
        )
    cm = 3 * round(longitude / 3)
    cm = min(max(cm, _GK_FIRST_CM), _GK_LAST_CM)
    return _GK_FIRST_EPSG + (cm - _GK_FIRST_CM) // 3


def metric_epsg_for_bounds(bounds: tuple[float, float, float, float]) -> int:
    """The Gauss-Krüger zone EPSG for data with ``(minx, miny, maxx, maxy)`` in degrees,
    chosen from the centre longitude."""
    minx, _miny, maxx, _maxy = bounds
    return gk_zone_epsg((minx + maxx) / 2.0)
