"""Analysis units for hot-spot statistics: grids from the store or H3 hexagons, their
incident counts, and the spatial weights between them.

Two kinds of unit:

* **grids** (网格): the management polygons leadership knows by name. Counts come from the
  database, on each incident's stored ``grid_code`` (assigned once at load time).
* **H3 hexagons**: near-equal-area cells (resolution 9 ≈ 0.105 km², ~200 m edge;
  resolution 10 ≈ 0.015 km², ~76 m) that do not depend on how grids were drawn, so a
  cluster split by a grid boundary is not diluted. The resolution is given, or chosen for
  the area and the number of incidents (:func:`choose_resolution`).
  The cells are every cell that overlaps the study area (the street boundaries), so empty
  cells count as zeros — leaving them out would hide every cold spot and inflate the mean.

Weights are binary and symmetric, returned as a ``scipy.sparse`` CSR adjacency matrix
*without* the diagonal, aligned with the units' row order; :mod:`geo.hotspots` adds the
self-weight Gi* needs. Distances are measured in the CGCS2000 Gauss-Krüger zone of the
area (:func:`store.crs.metric_epsg_for_bounds`), never in degrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any

import geopandas as gpd
import h3
import h3.api.basic_int as h3i
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from scipy import sparse
from scipy.spatial import cKDTree
from sqlalchemy import Connection

from store import cells as stored_cells
from store import queries
from store.crs import WEB_EPSG, metric_epsg_for_bounds

#: H3 resolution used when none is given: 0.105 km² cells, a few per urban grid.
DEFAULT_H3_RESOLUTION = 9
#: Resolutions the automatic choice considers, finest first (0.002 km² … 5.2 km² cells).
AUTO_RESOLUTIONS = (11, 10, 9, 8, 7)
#: The automatic choice keeps at most this many cells (map weight, Gi* time) …
AUTO_MAX_CELLS = 30_000
#: … and at least this many incidents per cell on average (few empty cells).
AUTO_MIN_MEAN = 2.0


@dataclass(frozen=True)
class UnitCounts:
    """Analysis units with their incident counts.

    Attributes
    ----------
    units
        One row per unit, in a fixed order: ``unit`` (grid code or H3 cell address),
        ``name`` (grid name; None for cells), ``count`` (incidents, 0 included) and the
        polygon, EPSG:4326.
    n_incidents
        Incidents matching the filters.
    n_outside
        Of those, incidents in no unit (outside every current grid, or outside the cells
        covering the study area). Reported, never silently dropped.
    cells
        For H3 units, the cells as integers (sorted, aligned with ``units``); else None.
    resolution
        For H3 units, their resolution; else None.
    """

    units: gpd.GeoDataFrame
    n_incidents: int
    n_outside: int
    cells: NDArray[np.int64] | None = None
    resolution: int | None = None


# --- H3 ----------------------------------------------------------------------------------


def _check_resolution(resolution: int) -> None:
    if not isinstance(resolution, int | np.integer) or not 0 <= resolution <= 15:
        raise ValueError(f"H3 resolution must be an integer 0–15, got {resolution!r}")


def choose_resolution(n_incidents: int, area_km2: float) -> int:
    """H3 resolution for an area: the finest of :data:`AUTO_RESOLUTIONS` whose cells
    (estimated from the average cell area) number at most :data:`AUTO_MAX_CELLS` and hold
    at least :data:`AUTO_MIN_MEAN` incidents each on average; the coarsest if none does.

    Why: Gi* finds clusters about the size of a cell and its ring of neighbours, so cells
    should be as small as the data allow — but not so small that most are empty (the
    normal approximation of the z-score then fails) nor so many that the map cannot be
    drawn. The demo street (2,000 incidents, 11 km²) gets 10; a district of 1,000,000
    incidents over 380 km² gets 10 (25,000 cells); 500 incidents over 11 km² get 9.
    """
    if area_km2 <= 0:
        raise ValueError(f"the study area must have a positive area, got {area_km2!r} km²")
    for res in AUTO_RESOLUTIONS:
        cells = area_km2 / h3.average_hexagon_area(res, unit="km^2")
        if cells <= AUTO_MAX_CELLS and n_incidents / max(cells, 1.0) >= AUTO_MIN_MEAN:
            return res
    return AUTO_RESOLUTIONS[-1]


def area_km2(area: Any) -> float:
    """Area of a (Multi)Polygon in EPSG:4326, in km², measured in its Gauss-Krüger zone."""
    series = gpd.GeoSeries([area], crs=WEB_EPSG)
    epsg = metric_epsg_for_bounds(tuple(series.total_bounds))
    return float(series.to_crs(epsg).area.iloc[0]) / 1e6


def cells_covering(area: Any, resolution: int = DEFAULT_H3_RESOLUTION) -> NDArray[np.int64]:
    """Sorted H3 cells (as integers) that overlap ``area`` (a shapely (Multi)Polygon in
    EPSG:4326), so every point inside the area lies in one of them.

    Uses H3's ``overlap`` containment (``h3shape_to_cells_experimental``, pinned h3 4.5);
    the default ``center`` mode would drop cells whose centre is just outside the boundary
    and, with them, the incidents near the edge.
    """
    _check_resolution(resolution)
    if area is None or shapely.is_empty(area):
        return np.empty(0, dtype=np.int64)
    shape = h3.geo_to_h3shape(area)
    cells = h3.h3shape_to_cells_experimental(shape, int(resolution), contain="overlap")
    out = np.fromiter((h3.str_to_int(c) for c in cells), dtype=np.int64, count=len(cells))
    return np.unique(out)


def points_to_cells(
    lon: NDArray[np.float64], lat: NDArray[np.float64], resolution: int = DEFAULT_H3_RESOLUTION
) -> NDArray[np.int64]:
    """H3 cell (integer) of each point (degrees, EPSG:4326 ≈ CGCS2000).

    One C call per point through h3's integer API (~0.6 µs each): a million points take
    well under a second, far less than building point geometries would. The same function
    computes the cells stored with each incident (:mod:`store.cells`).
    """
    _check_resolution(resolution)
    return stored_cells.points_to_cells(lon, lat, int(resolution))


def count_in_cells(
    point_cells: NDArray[np.int64], cells: NDArray[np.int64]
) -> tuple[NDArray[np.int64], int]:
    """Count points per cell: ``(counts aligned with the sorted cells, points in none)``."""
    found, n = np.unique(point_cells, return_counts=True)
    return place_counts(found, n, cells)


def place_counts(
    found: NDArray[np.int64], n: NDArray[np.int64], cells: NDArray[np.int64]
) -> tuple[NDArray[np.int64], int]:
    """Counts ``n`` of the distinct cells ``found`` aligned with the sorted ``cells``:
    ``(counts, incidents in cells that are not among them)``."""
    found = np.asarray(found, dtype=np.int64)
    n = np.asarray(n, dtype=np.int64)
    if len(cells) == 0:
        return np.zeros(0, dtype=np.int64), int(n.sum())
    pos = np.searchsorted(cells, found).clip(max=len(cells) - 1)
    hit = cells[pos] == found
    counts = np.zeros(len(cells), dtype=np.int64)
    counts[pos[hit]] = n[hit]
    return counts, int(n[~hit].sum())


def cell_addresses(cells: NDArray[np.int64]) -> NDArray[np.str_]:
    """H3 integer cells as their usual 15-character hexadecimal addresses."""
    return np.asarray([h3.int_to_str(int(c)) for c in cells], dtype=str)


def cell_polygons(cells: NDArray[np.int64]) -> gpd.GeoSeries:
    """Hexagon (pentagon) outlines of the cells, EPSG:4326.

    The vertices of all cells go to shapely as one coordinate array (half the time of a
    list of rings per cell on 38,000 cells)."""
    bounds = [h3i.cell_to_boundary(int(c)) for c in np.asarray(cells)]
    if not bounds:
        return gpd.GeoSeries([], crs=WEB_EPSG)
    sizes = np.fromiter(map(len, bounds), dtype=np.int64, count=len(bounds))
    latlng = np.fromiter(
        chain.from_iterable(chain.from_iterable(bounds)), dtype=np.float64, count=2 * sizes.sum()
    ).reshape(-1, 2)
    lnglat = latlng[:, ::-1]
    if (sizes == sizes[0]).all():  # hexagons only (pentagons are far from any city)
        ring = lnglat.reshape(len(bounds), int(sizes[0]), 2)
        polygons = shapely.polygons(np.concatenate([ring, ring[:, :1]], axis=1))
    else:
        idx = np.repeat(np.arange(len(bounds)), sizes)
        polygons = shapely.polygons(shapely.linearrings(lnglat, indices=idx))
    return gpd.GeoSeries(polygons, crs=WEB_EPSG)


def cell_adjacency(cells: NDArray[np.int64]) -> sparse.csr_matrix:
    """Queen contiguity of H3 cells: each cell's ring-1 neighbours (``grid_disk(c, 1)``)
    that are among ``cells`` (sorted). Hexagons share an edge with each of their 6
    neighbours and have no corner-only neighbours, so rook = queen here."""
    cells = np.asarray(cells, dtype=np.int64)
    n = len(cells)
    if n == 0:
        return sparse.csr_matrix((0, 0))
    disks = [h3i.grid_disk(int(c), 1) for c in cells]
    sizes = np.fromiter((len(d) for d in disks), dtype=np.int64, count=n)
    rows = np.repeat(np.arange(n), sizes)
    nb = np.fromiter((x for d in disks for x in d), dtype=np.int64, count=int(sizes.sum()))
    col = np.searchsorted(cells, nb)
    col_ok = np.minimum(col, n - 1)
    keep = (cells[col_ok] == nb) & (col_ok != rows)
    return _binary(rows[keep], col_ok[keep], n)


# --- polygons and distances ----------------------------------------------------------------


def _binary(rows: NDArray[Any], cols: NDArray[Any], n: int) -> sparse.csr_matrix:
    """Symmetric 0/1 CSR matrix with ones at (rows, cols) and (cols, rows), no diagonal."""
    keep = rows != cols
    r = np.concatenate([rows[keep], cols[keep]])
    c = np.concatenate([cols[keep], rows[keep]])
    m = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    m.data[:] = 1.0  # duplicates were summed
    return m


def polygon_adjacency(geoms: gpd.GeoSeries) -> sparse.csr_matrix:
    """Queen contiguity of polygons: neighbours share at least one boundary point.

    Found with a spatial index and the ``intersects`` predicate rather than by matching
    vertex coordinates (libpysal's ``Queen``), so a neighbour whose shared edge has a vertex
    the other polygon lacks (a T-junction) is still a neighbour; slightly overlapping grids
    count as neighbours too. Polygons separated by a gap are not.
    """
    arr = np.asarray(geoms.values)
    n = len(arr)
    if n == 0:
        return sparse.csr_matrix((0, 0))
    tree = shapely.STRtree(arr)
    left, right = tree.query(arr, predicate="intersects")
    return _binary(left, right, n)


def metric_points(geoms: gpd.GeoSeries) -> tuple[NDArray[np.float64], int]:
    """Unit centres in metres: centroids computed in the area's CGCS2000 Gauss-Krüger zone
    (``(xy, epsg)``), as ArcGIS uses polygon centroids for distance-based weights."""
    if geoms.crs is None:
        raise ValueError("unit geometries have no CRS; expected EPSG:4326")
    if len(geoms) == 0:
        return np.empty((0, 2)), metric_epsg_for_bounds((120.0, 0.0, 120.0, 0.0))
    epsg = metric_epsg_for_bounds(tuple(geoms.to_crs(WEB_EPSG).total_bounds))
    cent = geoms.to_crs(epsg).centroid
    return np.column_stack([cent.x.to_numpy(), cent.y.to_numpy()]), epsg


#: The default distance band gives a typical unit this many neighbours.
BAND_NEIGHBOURS = 6


def default_band_m(xy: NDArray[np.float64]) -> float:
    """Default distance band in metres: the larger of

    * the smallest distance at which every unit has a neighbour (the largest
      nearest-neighbour distance; ArcGIS Hot Spot Analysis's default), and
    * the median distance to the 6th nearest unit plus 5 %, so that a typical unit has
      six neighbours as a hexagon has by contiguity (the slack keeps a lattice's six
      ring neighbours, whose distances differ by a fraction of a percent, together).

    The first alone is not enough on a lattice: H3 cells are slightly elongated (at 36°N,
    resolution 10, neighbours lie 99–115 m apart), so the nearest-neighbour distance
    would keep two of the six ring neighbours. Rounded up to the next metre.
    """
    if len(xy) < 2:
        raise ValueError("a distance band needs at least two units")
    k = min(BAND_NEIGHBOURS, len(xy) - 1)
    d, _ = cKDTree(xy).query(xy, k=k + 1)
    band = max(float(d[:, 1].max()), 1.05 * float(np.median(d[:, k])))
    return float(np.ceil(band + 1e-6))


def distance_band_adjacency(xy: NDArray[np.float64], band_m: float) -> sparse.csr_matrix:
    """Binary distance-band weights: units whose centres are at most ``band_m`` metres
    apart are neighbours (``xy`` in a metric CRS)."""
    if not np.isfinite(band_m) or band_m <= 0:
        raise ValueError(f"band_m must be a positive number of metres, got {band_m!r}")
    n = len(xy)
    pairs = cKDTree(xy).query_pairs(band_m, output_type="ndarray")
    return _binary(pairs[:, 0], pairs[:, 1], n)


# --- units from the store -----------------------------------------------------------------


def grid_units(
    conn: Connection,
    *,
    street: str | None = None,
    start: Any = None,
    end: Any = None,
    category: str | None = None,
) -> UnitCounts:
    """Current grids of ``street`` (all streets when None) with incident counts for
    reports in ``[start, end)`` of ``category`` (all when None), counted in the database."""
    gdf = queries.grid_incident_counts(
        conn, street_code=street, since=start, until=end, category=category
    )
    total = queries.incident_count(
        conn, street_code=street, since=start, until=end, category=category
    )
    units = gpd.GeoDataFrame(
        {
            "unit": gdf["code"].astype(str).to_numpy(),
            "name": gdf["name"].to_numpy(),
            "count": gdf["incidents"].astype(np.int64).to_numpy(),
        },
        geometry=gdf.geometry.to_numpy(),
        crs=WEB_EPSG,
    )
    return UnitCounts(units, total, total - int(units["count"].sum()))


def study_area(conn: Connection, *, street: str | None = None) -> Any:
    """The area hexagons must cover, EPSG:4326: the street boundary (all streets when
    None); the union of current grids where the store has no street boundaries."""
    streets = queries.admin_units(conn, "street", street_code=street)
    if len(streets):
        return shapely.union_all(streets.geometry.to_numpy())
    grids = queries.grids(conn, street_code=street)
    if not len(grids):
        raise ValueError(
            f"no street boundary and no grids for street {street!r}; load streets and grids "
            "first (python -m loaders load streets|grids FILE)"
        )
    return shapely.union_all(grids.geometry.to_numpy())


def hex_units_from_points(
    lon: NDArray[np.float64],
    lat: NDArray[np.float64],
    area: Any,
    resolution: int | None = DEFAULT_H3_RESOLUTION,
) -> UnitCounts:
    """H3 cells covering ``area`` (EPSG:4326) with the number of points in each;
    ``resolution=None`` chooses it (:func:`choose_resolution`)."""
    if resolution is None:
        resolution = choose_resolution(len(lon), area_km2(area))
    cells = cells_covering(area, resolution)
    counts, outside = count_in_cells(points_to_cells(lon, lat, resolution), cells)
    return _hex_unit_counts(cells, counts, len(lon), outside, resolution)


def _hex_unit_counts(
    cells: NDArray[np.int64], counts: NDArray[np.int64], n: int, outside: int, resolution: int
) -> UnitCounts:
    units = gpd.GeoDataFrame(
        {"unit": cell_addresses(cells), "name": pd.Series([None] * len(cells), dtype=object)},
        geometry=cell_polygons(cells).to_numpy(),
        crs=WEB_EPSG,
    )
    units["count"] = counts
    return UnitCounts(units, n, outside, cells, int(resolution))


def hex_units(
    conn: Connection,
    *,
    street: str | None = None,
    start: Any = None,
    end: Any = None,
    category: str | None = None,
    resolution: int | None = DEFAULT_H3_RESOLUTION,
) -> UnitCounts:
    """H3 cells covering the street(s) with their incident counts;
    ``resolution=None`` chooses it for the area and the number of incidents.

    At the resolutions whose cell every incident carries (:data:`store.cells.CELL_RESOLUTIONS`,
    which include every automatic choice) the database counts per stored cell and only the
    incidents without cells are read as points; at the others every incident is read as a
    point (lon/lat) and binned here. Both give the same counts.
    """
    filters = {"street_code": street, "since": start, "until": end, "category": category}
    area = study_area(conn, street=street)
    if resolution is None:
        resolution = choose_resolution(queries.incident_count(conn, **filters), area_km2(area))
    _check_resolution(resolution)
    if int(resolution) not in stored_cells.CELL_RESOLUTIONS:
        lon, lat = queries.incident_lonlat(conn, **filters)
        return hex_units_from_points(lon, lat, area, resolution)
    return hex_units_from_stored_cells(conn, area, int(resolution), **filters)


def hex_units_from_stored_cells(
    conn: Connection, area: Any, resolution: int, **filters: Any
) -> UnitCounts:
    """:func:`hex_units` through the cells stored with the incidents (``resolution`` one of
    :data:`store.cells.CELL_RESOLUTIONS`; ``filters`` as
    :func:`store.cells.incident_cell_counts` takes them), the rows without cells binned
    from their points."""
    found, n, lon, lat = stored_cells.incident_cell_counts(conn, resolution, **filters)
    if len(lon):
        more, more_n = np.unique(points_to_cells(lon, lat, resolution), return_counts=True)
        found, inverse = np.unique(np.concatenate([found, more]), return_inverse=True)
        n = np.bincount(inverse, weights=np.concatenate([n, more_n])).astype(np.int64)
    cells = cells_covering(area, resolution)
    counts, outside = place_counts(found, n, cells)
    return _hex_unit_counts(cells, counts, int(n.sum()), outside, resolution)
