"""The grid of each point, in Python, for the points whose grid no rounding can change; the
loader's SQL (:data:`loaders.kinds._GRID_BY_POINT`) then only sees the others.

The rule (the SQL's): the grids in force today whose polygon *covers* the point (edges and
vertices inside), and of several the one with the lowest code. PostGIS and GEOS decide a
point lying within rounding error of an edge each in their own arithmetic, so Python
decides only what both must agree on: a point inside exactly one grid shrunk by
:data:`MARGIN_DEG` and outside every other grid grown by it. That grid covers the point
and no other grid does, whoever computes it. Points within the margin of any grid's edge
(shared edges and vertices among them) and points outside every grid are left to the SQL,
so the stored grids are exactly the SQL rule's (``tests/test_assign.py``).

About a million points a second: an STRtree gives candidate grids by bounding box, then
each grid tests its candidates at once with a prepared polygon.
"""

from __future__ import annotations

import numpy as np
import shapely
from sqlalchemy import Connection

from store.assign_sql import current_grids

#: Points closer than this to a grid's edge (degrees, ~1 cm) are left to the SQL.
MARGIN_DEG = 1e-7


class GridIndex:
    """The grids in force, grown and shrunk by :data:`MARGIN_DEG`, sorted by code."""

    def __init__(self, codes: list[str], polygons: np.ndarray) -> None:
        order = np.argsort(np.asarray(codes, dtype=object), kind="stable")
        self.codes = np.asarray(codes, dtype=object)[order]
        polygons = np.asarray(polygons, dtype=object)[order]
        self.outer = shapely.buffer(polygons, MARGIN_DEG)
        self.inner = shapely.buffer(polygons, -MARGIN_DEG)
        shapely.prepare(self.outer)
        shapely.prepare(self.inner)
        self.tree = shapely.STRtree(self.outer)

    @classmethod
    def from_store(cls, conn: Connection) -> GridIndex:
        """The grids in force today, as the load's transaction sees them."""
        codes, wkb = current_grids(conn)
        return cls(codes, shapely.from_wkb(np.asarray(wkb, dtype=object)))

    def __len__(self) -> int:
        return len(self.codes)

    def grid_of(self, points: np.ndarray) -> np.ndarray:
        """The grid code of each point that is clearly inside one grid; None for the rest
        (near an edge, outside every grid, missing, or not a point), which the SQL rule
        decides."""
        points = np.asarray(points, dtype=object)
        out = np.full(len(points), None, dtype=object)
        if not len(self) or not len(points):
            return out
        ok = ~shapely.is_missing(points)
        ok[ok] = (shapely.get_type_id(points[ok]) == 0) & ~shapely.is_empty(points[ok])
        idx = np.flatnonzero(ok)
        if not len(idx):
            return out
        pts = points[idx]
        x, y = shapely.get_x(pts), shapely.get_y(pts)
        which, grid = self.tree.query(pts)  # bounding boxes only
        near = self._test(self.outer, which, grid, x, y)
        which, grid = which[near], grid[near]
        alone = np.bincount(which, minlength=len(idx))[which] == 1
        which, grid = which[alone], grid[alone]
        inside = self._test(self.inner, which, grid, x, y)
        out[idx[which[inside]]] = self.codes[grid[inside]]
        return out

    @staticmethod
    def _test(
        polygons: np.ndarray, which: np.ndarray, grid: np.ndarray, x: np.ndarray, y: np.ndarray
    ) -> np.ndarray:
        """For each (point, grid) pair: whether the grid's polygon in ``polygons``
        intersects the point (covers it: a point meets a polygon only inside or on it)."""
        hit = np.zeros(len(which), dtype=bool)
        order = np.argsort(grid, kind="stable")
        starts = np.searchsorted(grid[order], np.arange(len(polygons) + 1))
        for g in np.flatnonzero(np.diff(starts)).tolist():
            pairs = order[starts[g] : starts[g + 1]]
            pts = which[pairs]
            hit[pairs] = shapely.intersects_xy(polygons[g], x[pts], y[pts])
        return hit
