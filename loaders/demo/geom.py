"""Geometry helpers shared by the generator modules: reprojection to the storage CRS,
point-in-grid lookup and points just inside a block, off the road.

Everything is generated in metres in the Gauss-Krüger zone (EPSG:4549 by default) and
reprojected once, at the end, to CGCS2000 geographic (EPSG:4490). Shared vertices
reproject identically, so exact tilings stay exact.
"""

from __future__ import annotations

from functools import lru_cache

import geopandas as gpd
import numpy as np
import pyproj
import shapely

from loaders.demo.layout import Layout
from store.crs import STORAGE_EPSG


@lru_cache(maxsize=4)
def _transformer(src: int, dst: int) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(src, dst, always_xy=True)


def to_metric(lon: float, lat: float, epsg: int) -> tuple[float, float]:
    """Project one CGCS2000 longitude/latitude to the metric CRS ``epsg``."""
    x, y = _transformer(STORAGE_EPSG, epsg).transform(lon, lat)
    return float(x), float(y)


def to_storage(geoms: np.ndarray, metric_epsg: int) -> gpd.GeoSeries:
    """Reproject shapely geometries from ``metric_epsg`` to EPSG:4490 as a GeoSeries."""
    tr = _transformer(metric_epsg, STORAGE_EPSG)

    def project(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    out = shapely.transform(np.asarray(geoms, dtype=object), project)
    return gpd.GeoSeries(out, crs=STORAGE_EPSG)


def points_to_storage(x: np.ndarray, y: np.ndarray, metric_epsg: int) -> gpd.GeoSeries:
    """Point GeoSeries in EPSG:4490 from metric coordinate arrays."""
    lon, lat = _transformer(metric_epsg, STORAGE_EPSG).transform(x, y)
    return gpd.GeoSeries(shapely.points(lon, lat), crs=STORAGE_EPSG)


def locate(x: np.ndarray, y: np.ndarray, polys: np.ndarray) -> np.ndarray:
    """Index of the polygon containing each point, -1 where none does.

    Loops over the polygons (few) and tests only the points inside each bounding box, with
    :func:`shapely.contains_xy` on prepared polygons: no point objects are built, so
    millions of GPS fixes are located in seconds.
    """
    out = np.full(len(x), -1)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    shapely.prepare(polys)
    for k, (x0, y0, x1, y1) in enumerate(shapely.bounds(polys)):
        lo, hi = np.searchsorted(xs, [x0, x1])
        cand = order[lo:hi]
        cand = cand[(y[cand] >= y0) & (y[cand] <= y1)]
        hit = cand[shapely.contains_xy(polys[k], x[cand], y[cand])]
        out[hit] = k
    return out


def edge_points(
    layout: Layout,
    blocks: np.ndarray,
    offset_m: tuple[float, float],
    rng: np.random.Generator,
) -> np.ndarray:
    """One point per entry of ``blocks``: on a random edge of that block, moved inwards by
    ``offset_m`` (off the road centreline) and kept strictly inside the block (points that
    would leave it fall back to the block's representative point)."""
    blocks = np.asarray(blocks, dtype=int)
    out = np.empty((len(blocks), 2))
    for k, b in enumerate(blocks):
        coords = layout.halfedge_coords(layout.block_halfedges[b])
        seg = rng.integers(len(coords))
        half = rng.integers(2)
        p0, p1 = coords[seg, half], coords[seg, half + 1]
        t = (p1 - p0) / np.linalg.norm(p1 - p0)
        n = np.array([-t[1], t[0]])
        p = p0 + (p1 - p0) * rng.uniform(0.2, 0.8) + n * rng.uniform(*offset_m)
        inner = shapely.buffer(layout.block_poly[b], -1.0)
        if not shapely.contains_xy(inner, p[0], p[1]):
            p = shapely.get_coordinates(shapely.point_on_surface(inner))[0]
        out[k] = p
    return out
