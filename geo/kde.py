"""Kernel density of incidents on H3 hexagons: a smooth "where are incidents dense" surface
to draw under (or instead of) the Gi* classes.

Method as ArcGIS's Kernel Density tool documents it ("How Kernel Density works",
https://pro.arcgis.com/en/pro-app/latest/tool-reference/spatial-analyst/how-kernel-density-works.htm):

* **Kernel**: quartic (biweight), Silverman (1986) eq. 4.5:
  ``K(d) = 3 / (π h²) · (1 − (d/h)²)²`` for ``d < h``, 0 beyond; each incident adds a
  surface whose volume is 1, so the density is in incidents per m² (reported per km²).
* **Default bandwidth** ``h`` ("search radius"), ArcGIS's spatial variant of Silverman's
  rule of thumb: ``h = 0.9 · min(SD, sqrt(1/ln 2) · Dm) · n^(−1/5)``, with ``SD`` the
  standard distance of the points, ``Dm`` the median distance to their mean centre and
  ``n`` their number — it avoids the "ring around the points" of sparse data.
* Distances in metres in the CGCS2000 Gauss-Krüger zone of the area, never degrees.

The surface is evaluated at the centre of every H3 cell covering the study area (empty
cells included), not on a raster: the map then shows the same hexagons as the hot spots.
The sum is exact (every incident within ``h`` of a centre, found with a k-d tree), in
chunks so memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import geopandas as gpd
import h3.api.basic_int as h3i
import numpy as np
from numpy.typing import NDArray
from pyproj import Transformer
from scipy.spatial import cKDTree
from sqlalchemy import Connection

from geo import units as gu
from geo.period import as_instant
from store import queries
from store.crs import WEB_EPSG, metric_epsg_for_bounds

#: Largest number of (cell, incident) pairs held in memory at once.
_CHUNK_PAIRS = 5_000_000


@dataclass(frozen=True)
class KdeParams:
    """How the surface was computed, for the page to explain it.

    ``bandwidth_rule`` is ``"given"`` or ``"silverman-spatial"`` (the ArcGIS default rule);
    ``n_incidents`` counts the incidents used (all matching the filters, inside the area
    or not — an incident just outside still adds density inside, as it does in reality).
    """

    bandwidth_m: float
    bandwidth_rule: str
    kernel: str
    resolution: int
    metric_epsg: int
    n_incidents: int
    n_cells: int
    street: str | None = None
    start: Any = None
    end: Any = None
    category: str | None = None


@dataclass(frozen=True)
class KdeResult:
    """``cells``: ``unit`` (H3 address), ``count`` (incidents in the cell), ``density_km2``
    (incidents per km² at the cell centre) and the hexagon, EPSG:4326; and the parameters."""

    cells: gpd.GeoDataFrame
    params: KdeParams


def silverman_bandwidth(xy: NDArray[np.float64]) -> float:
    """ArcGIS's default search radius for points in metres:
    ``0.9 · min(SD, sqrt(1/ln 2) · Dm) · n^(−1/5)``.

    Raises
    ------
    ValueError
        With fewer than two distinct points (no spread to measure).
    """
    xy = np.asarray(xy, dtype=np.float64)
    n = len(xy)
    if n < 2 or np.ptp(xy, axis=0).max() == 0:
        raise ValueError(
            "the default bandwidth needs at least two distinct incidents; give band_m or "
            "widen the filters"
        )
    centre = xy.mean(axis=0)
    dist = np.hypot(*(xy - centre).T)
    sd = float(np.sqrt((dist**2).mean()))  # standard distance
    dm = float(np.median(dist))
    return 0.9 * min(sd, np.sqrt(1.0 / np.log(2.0)) * dm) * n ** (-0.2)


def quartic_density(
    points_xy: NDArray[np.float64], at_xy: NDArray[np.float64], bandwidth_m: float
) -> NDArray[np.float64]:
    """Quartic-kernel density (points per m²) at ``at_xy`` from ``points_xy`` (metres)."""
    if not np.isfinite(bandwidth_m) or bandwidth_m <= 0:
        raise ValueError(f"bandwidth must be a positive number of metres, got {bandwidth_m!r}")
    out = np.zeros(len(at_xy))
    if len(points_xy) == 0 or len(at_xy) == 0:
        return out
    tree = cKDTree(points_xy)
    # pairs per location ≈ density · π h²; size chunks from the overall point density
    x0, y0 = points_xy.min(axis=0)
    x1, y1 = points_xy.max(axis=0)
    area = max((x1 - x0) * (y1 - y0), np.pi * bandwidth_m**2)
    per_loc = max(1.0, len(points_xy) * np.pi * bandwidth_m**2 / area)
    chunk = int(max(1, _CHUNK_PAIRS // per_loc))
    h2 = bandwidth_m**2
    for lo in range(0, len(at_xy), chunk):
        sub = cKDTree(at_xy[lo : lo + chunk])
        pairs = sub.sparse_distance_matrix(tree, bandwidth_m, output_type="ndarray")
        if len(pairs) == 0:
            continue
        u = 1.0 - pairs["v"] ** 2 / h2
        out[lo : lo + chunk] += np.bincount(
            pairs["i"], weights=u * u, minlength=min(chunk, len(at_xy) - lo)
        )
    return out * 3.0 / (np.pi * h2)


def kde_from_points(
    lon: NDArray[np.float64],
    lat: NDArray[np.float64],
    area: Any,
    *,
    resolution: int | None = None,
    bandwidth_m: float | None = None,
) -> KdeResult:
    """Kernel density of points (EPSG:4326) at the centres of the H3 cells covering
    ``area``; ``resolution=None`` chooses it as for hot spots
    (:func:`geo.units.choose_resolution`), ``bandwidth_m=None`` uses the ArcGIS rule."""
    uc = gu.hex_units_from_points(lon, lat, area, resolution)
    if uc.cells is None or uc.resolution is None:  # pragma: no cover - always set for cells
        raise RuntimeError("hexagon units came without their cells")
    epsg = metric_epsg_for_bounds(tuple(uc.units.total_bounds))
    to_metric = Transformer.from_crs(WEB_EPSG, epsg, always_xy=True)
    px, py = to_metric.transform(np.asarray(lon), np.asarray(lat))
    points_xy = np.column_stack([px, py])
    centres = np.array([h3i.cell_to_latlng(int(c)) for c in uc.cells]).reshape(-1, 2)
    cx, cy = to_metric.transform(centres[:, 1], centres[:, 0])
    if bandwidth_m is None:
        band, rule = silverman_bandwidth(points_xy), "silverman-spatial"
    else:
        band, rule = float(bandwidth_m), "given"
    density = quartic_density(points_xy, np.column_stack([cx, cy]), band) * 1e6
    cells = uc.units[["unit", "count"]].copy()
    cells["density_km2"] = density
    out = gpd.GeoDataFrame(cells, geometry=uc.units.geometry.to_numpy(), crs=WEB_EPSG)
    params = KdeParams(
        bandwidth_m=band,
        bandwidth_rule=rule,
        kernel="quartic",
        resolution=uc.resolution,
        metric_epsg=epsg,
        n_incidents=len(lon),
        n_cells=len(out),
    )
    return KdeResult(out, params)


def kde(
    conn: Connection,
    *,
    street: str | None = None,
    start: Any = None,
    end: Any = None,
    category: str | None = None,
    resolution: int | None = None,
    bandwidth_m: float | None = None,
) -> KdeResult:
    """Kernel density of the incidents matching the filters (as :func:`geo.hotspots.hotspots`)
    on the H3 cells covering the street(s).

    Parameters
    ----------
    resolution
        H3 resolution of the output cells; None chooses it for the area and the data.
    bandwidth_m
        Kernel radius in metres; None applies ArcGIS's spatial Silverman rule.
    """
    start, end = as_instant(start), as_instant(end)
    lon, lat = queries.incident_lonlat(
        conn, street_code=street, since=start, until=end, category=category
    )
    area = gu.study_area(conn, street=street)
    result = kde_from_points(lon, lat, area, resolution=resolution, bandwidth_m=bandwidth_m)
    params = replace(result.params, street=street, start=start, end=end, category=category)
    return KdeResult(result.cells, params)
