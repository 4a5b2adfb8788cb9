"""Hot spots of incidents: Getis-Ord Gi* on grids or H3 hexagons, classed as ArcGIS does.

What a street leader sees is a map of units (grids or hexagons) classed from "hot spot,
99 % confidence" to "cold spot, 99 % confidence". The pipeline:

1. **Units and counts** (:mod:`geo.units`): incidents per grid (counted in the database)
   or per H3 cell covering the street, empty units included.
2. **Weights**: binary, symmetric — queen contiguity (grids sharing a boundary point;
   hexagons sharing an edge) or a fixed distance band in metres between unit centres.
3. **Gi*** (Getis & Ord 1992; Ord & Getis 1995): for unit *i* with binary weights
   ``w_ij`` that include *i* itself (``w_ii = 1``, the "star"),

   ``z_i = (Σ_j w_ij x_j − x̄ W_i) / (S · sqrt((n S1_i − W_i²) / (n − 1)))``

   with ``W_i = Σ_j w_ij``, ``S1_i = Σ_j w_ij²``, ``x̄`` the mean and ``S`` the population
   standard deviation of all ``n`` counts. This is ArcGIS's formula (Hot Spot Analysis,
   "How it works") and equals PySAL ``esda.G_Local(y, w, star=True, transform="B")``'s
   ``Zs``; the tests check both to 1e-6. Computed with one sparse product, so 20,000
   hexagons take milliseconds.
4. **p-values**, two-sided: analytic from the normal distribution (default; what ArcGIS
   reports), or by conditional randomisation (Anselin 1995): unit *i*'s own count stays,
   its neighbours' counts are drawn at random without replacement from the other units,
   ``permutations`` times, seeded so a map can be reproduced. The pseudo p-value is
   ``(min(#sims ≥ obs, #sims ≤ obs) + 1) / (permutations + 1)`` doubled for two sides and
   capped at 1 — PySAL's folded pseudo p-value, except that ties count on both sides
   (:func:`permutation_p` says why).
5. **False discovery rate** (``fdr=True``, the default as in ArcGIS's Optimized Hot Spot
   Analysis): Benjamini-Hochberg, applied per confidence level as ArcGIS does — "the
   critical p-value thresholds … are reduced to account for multiple testing and spatial
   dependence" (ArcGIS Pro, *What is a z-score? What is a p-value?*,
   https://pro.arcgis.com/en/pro-app/latest/tool-reference/spatial-statistics/what-is-a-z-score-what-is-a-p-value.htm;
   Caldas de Castro & Singer 2006, *Geographical Analysis* 38(2):180-208). A unit is
   significant at level α when its BH-adjusted p-value ``p_fdr <= α``, which is the same as
   ``p <=`` the BH critical p-value at α (:func:`geo.stats.bh_critical_p`, reported in
   :attr:`HotspotParams.critical_p`).
6. **Classes** (``Gi_Bin`` of ArcGIS's Hot Spot Analysis,
   https://pro.arcgis.com/en/pro-app/latest/tool-reference/spatial-statistics/hot-spot-analysis.htm):
   ±3 at 99 % confidence (p ≤ 0.01), ±2 at 95 % (p ≤ 0.05), ±1 at 90 % (p ≤ 0.10), 0 not
   significant; the sign is the z-score's (+ hot, − cold); with FDR, ``p_fdr`` replaces p.

No numba: PySAL's permutation inference compiles for ~30 s on first use in each process,
which the dashboard's first click cannot afford; the vectorised numpy version here needs
no compilation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import geopandas as gpd
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import sparse
from sqlalchemy import Connection

from geo import units as gu
from geo.period import as_instant
from geo.stats import bh_critical_p, fdr_bh, two_sided_p

#: (bin, significance level α) from the most to the least confident.
LEVELS: tuple[tuple[int, float], ...] = ((3, 0.01), (2, 0.05), (1, 0.10))
#: Confidence (percent) of each bin level.
CONFIDENCE = {3: 99, 2: 95, 1: 90}
#: Labels of the classes, Chinese and English.
LABELS: dict[int, tuple[str, str]] = {
    3: ("热点（99%置信度）", "Hot spot – 99% confidence"),
    2: ("热点（95%置信度）", "Hot spot – 95% confidence"),
    1: ("热点（90%置信度）", "Hot spot – 90% confidence"),
    0: ("不显著", "Not significant"),
    -1: ("冷点（90%置信度）", "Cold spot – 90% confidence"),
    -2: ("冷点（95%置信度）", "Cold spot – 95% confidence"),
    -3: ("冷点（99%置信度）", "Cold spot – 99% confidence"),
}
#: Permutations when a permutation test is asked for without a number.
DEFAULT_PERMUTATIONS = 999
#: Seed of the permutation test: the same inputs always give the same map.
DEFAULT_SEED = 20261120
#: Fewer units than this and ArcGIS warns that results are unreliable.
MIN_RELIABLE_UNITS = 30
#: Largest number of simulated neighbour values held in memory at once.
_CHUNK_VALUES = 4_000_000

UnitKind = Literal["grid", "hex"]
WeightsKind = Literal["contiguity", "distance"]


@dataclass(frozen=True)
class Note:
    """A caveat about a result, in Chinese and English, for the page to show."""

    zh: str
    en: str


@dataclass(frozen=True)
class HotspotParams:
    """What was computed and how, so the page (and a briefing) can explain the map.

    Attributes
    ----------
    unit, resolution
        ``"grid"`` or ``"hex"``; the H3 resolution for hexagons (None for grids).
    weights, band_m, metric_epsg
        ``"contiguity"`` or ``"distance"``; the distance band in metres and the metric CRS
        it was measured in (None for contiguity).
    p_values, permutations, seed
        ``"analytic"`` or ``"permutation"``; the permutations and their seed (0 / None for
        analytic p-values).
    fdr, critical_p
        Whether the false-discovery-rate correction was applied; the p-value threshold of
        each confidence level actually used (``{99: …, 95: …, 90: …}``): 0.01/0.05/0.10
        without FDR, the Benjamini-Hochberg critical values with it (None = none significant).
    n_units, n_incidents, n_outside, n_islands, mean_neighbours
        Units analysed; incidents matching the filters; of those, incidents in no unit;
        units without neighbours; mean neighbours per unit (self not counted).
    street, start, end, category
        The filters (``[start, end)``), as given.
    notes
        Caveats (few units, islands, incidents outside the units, no variation).
    """

    unit: str
    resolution: int | None
    weights: str
    band_m: float | None
    metric_epsg: int | None
    p_values: str
    permutations: int
    seed: int | None
    fdr: bool
    critical_p: dict[int, float | None]
    n_units: int
    n_incidents: int
    n_outside: int
    n_islands: int
    mean_neighbours: float
    street: str | None = None
    start: Any = None
    end: Any = None
    category: str | None = None
    notes: tuple[Note, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class HotspotResult:
    """The classed units and the parameters behind them.

    ``units`` columns: ``unit`` (grid code or H3 address), ``name``, ``count``,
    ``neighbours``, ``z``, ``p`` (two-sided, analytic or permutation), ``p_fdr``
    (Benjamini-Hochberg adjusted), ``bin`` (−3…3), ``label_zh``, ``label_en``, and the
    polygon in EPSG:4326.
    """

    units: gpd.GeoDataFrame
    params: HotspotParams


# --- the statistic -----------------------------------------------------------------------


def _check_inputs(y: ArrayLike, adjacency: sparse.spmatrix) -> tuple[NDArray, sparse.csr_matrix]:
    values = np.asarray(y, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("values must be finite numbers (no NaN or infinity)")
    a = sparse.csr_matrix(adjacency, dtype=np.float64)
    if a.shape != (values.size, values.size):
        raise ValueError(f"weights are {a.shape} but there are {values.size} values")
    a.eliminate_zeros()
    if a.diagonal().any():
        raise ValueError("adjacency must not include self-weights; Gi* adds them")
    return values, a


def gi_star(y: ArrayLike, adjacency: sparse.spmatrix) -> NDArray[np.float64]:
    """Gi* z-scores of ``y`` with weights ``adjacency`` (no diagonal) plus self-weight 1.

    Parameters
    ----------
    y
        Value per unit (incident counts), 1-D.
    adjacency
        Symmetric weights without self-weights, ``(n, n)``; binary in this module, but the
        formula (with ``S1_i``) holds for any non-negative weights.

    Returns
    -------
    numpy.ndarray
        z-scores; 0 where the statistic is undefined (all values equal, or a unit whose
        neighbourhood is the whole study area).
    """
    values, a = _check_inputs(y, adjacency)
    n = values.size
    if n < 2:
        return np.zeros(n)
    local = a @ values + values  # self-weight 1
    w_i = np.asarray(a.sum(axis=1)).ravel() + 1.0
    s1_i = np.asarray(a.multiply(a).sum(axis=1)).ravel() + 1.0
    mean = values.mean()
    s = np.sqrt(max(float((values**2).mean() - mean**2), 0.0))
    den = s * np.sqrt(np.maximum(n * s1_i - w_i**2, 0.0) / (n - 1))
    z = np.zeros(n)
    ok = den > 1e-12 * max(1.0, abs(mean))
    z[ok] = (local[ok] - mean * w_i[ok]) / den[ok]
    return z


def permutation_p(
    y: ArrayLike,
    adjacency: sparse.spmatrix,
    *,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int | None = DEFAULT_SEED,
) -> NDArray[np.float64]:
    """Two-sided pseudo p-values of Gi* by conditional randomisation (binary weights).

    For each unit, its own value stays and its ``k_i`` neighbours' values are replaced by
    ``k_i`` values drawn without replacement from the other ``n − 1`` units. As in PySAL
    (``esda.crand``), one set of ``permutations`` random draws is shared by all units,
    shifted past each unit's own index; everything else is vectorised numpy in chunks.

    Ties count on both sides: ``p = min(1, 2 · (min(#sims ≥ obs, #sims ≤ obs) + 1) /
    (permutations + 1))``. PySAL folds ``#sims ≥ obs`` against ``permutations`` minus it,
    so ties count only upwards: an empty unit among empty neighbours, in an area where most
    units are empty, comes out there as a 99 % cold spot. Without ties (continuous values)
    the two are identical.
    """
    if permutations < 1:
        raise ValueError(f"permutations must be at least 1, got {permutations!r}")
    values, a = _check_inputs(y, adjacency)
    if a.nnz and not np.all(a.data == 1.0):
        raise ValueError("the permutation test supports binary weights only")
    n = values.size
    k = np.diff(a.indptr)
    kmax = int(k.max()) if n else 0
    if n < 2 or kmax == 0:
        return np.ones(n)
    kmax = min(kmax, n - 1)
    rng = np.random.default_rng(seed)
    draws = np.stack([rng.choice(n - 1, size=kmax, replace=False) for _ in range(permutations)])
    observed = a @ values  # the self term is the same in every simulation
    at_least = np.empty(n)
    at_most = np.empty(n)
    chunk = max(1, _CHUNK_VALUES // (permutations * kmax))
    take = np.arange(kmax)
    for lo in range(0, n, chunk):
        i = np.arange(lo, min(lo + chunk, n))
        idx = draws[None, :, :] + (draws[None, :, :] >= i[:, None, None])
        vals = values[idx] * (take[None, None, :] < k[i][:, None, None])
        sims = vals.sum(axis=2)
        at_least[i] = (sims >= observed[i][:, None]).sum(axis=1)
        at_most[i] = (sims <= observed[i][:, None]).sum(axis=1)
    tail = np.minimum(at_least, at_most)
    return np.minimum(1.0, 2.0 * (tail + 1.0) / (permutations + 1.0))


def classify(
    z: ArrayLike, p: ArrayLike, *, fdr: bool = True
) -> tuple[NDArray[np.int64], NDArray[np.float64], dict[int, float | None]]:
    """ArcGIS ``Gi_Bin`` classes from z-scores and two-sided p-values.

    Returns
    -------
    bins, p_fdr, critical_p
        Classes −3…3; Benjamini-Hochberg adjusted p-values (computed whether or not
        ``fdr`` is used for the classes); the p threshold used per confidence percent.
    """
    zz = np.asarray(z, dtype=np.float64)
    pp = np.asarray(p, dtype=np.float64)
    if zz.shape != pp.shape:
        raise ValueError(f"z and p differ in shape: {zz.shape} vs {pp.shape}")
    p_fdr = fdr_bh(pp)
    test = p_fdr if fdr else pp
    level = np.zeros(zz.size, dtype=np.int64)
    for lv, alpha in reversed(LEVELS):  # least confident first, overwritten by stronger
        level[test <= alpha] = lv
    bins = (np.sign(zz).astype(np.int64) * level).astype(np.int64)
    critical = {
        CONFIDENCE[lv]: (bh_critical_p(pp, alpha) if fdr else alpha) for lv, alpha in LEVELS
    }
    return bins, p_fdr, critical


# --- the pipeline ------------------------------------------------------------------------


def weights_for(
    uc: gu.UnitCounts, weights: WeightsKind = "contiguity", band_m: float | None = None
) -> tuple[sparse.csr_matrix, float | None, int | None]:
    """Adjacency of the units: ``(matrix, band in metres, metric EPSG)``.

    ``contiguity``: H3 ring-1 neighbours for cells, queen contiguity for polygons.
    ``distance``: centres within ``band_m`` metres (default :func:`geo.units.default_band_m`).
    """
    if weights == "contiguity":
        if uc.cells is not None:
            return gu.cell_adjacency(uc.cells), None, None
        return gu.polygon_adjacency(uc.units.geometry), None, None
    if weights == "distance":
        xy, epsg = gu.metric_points(uc.units.geometry)
        band = gu.default_band_m(xy) if band_m is None else float(band_m)
        return gu.distance_band_adjacency(xy, band), band, epsg
    raise ValueError(f"weights must be 'contiguity' or 'distance', got {weights!r}")


def hotspots_for_units(
    uc: gu.UnitCounts,
    *,
    unit: UnitKind = "grid",
    weights: WeightsKind = "contiguity",
    band_m: float | None = None,
    permutations: int = 0,
    seed: int | None = DEFAULT_SEED,
    fdr: bool = True,
    filters: dict[str, Any] | None = None,
) -> HotspotResult:
    """Gi* hot spots of units that already carry their counts (no database access).

    ``permutations=0`` gives analytic p-values; otherwise a seeded permutation test.
    ``filters`` (street, start, end, category) are only recorded in the parameters.
    """
    n = len(uc.units)
    if n < 3:
        raise ValueError(
            f"hot-spot analysis needs at least 3 units, this selection has {n}; choose a "
            "larger area or hexagons of a finer resolution"
        )
    if permutations < 0:
        raise ValueError(f"permutations must be 0 (analytic) or more, got {permutations!r}")
    adjacency, band, epsg = weights_for(uc, weights, band_m)
    y = uc.units["count"].to_numpy(dtype=np.float64)
    z = gi_star(y, adjacency)
    if permutations:
        p = permutation_p(y, adjacency, permutations=permutations, seed=seed)
    else:
        p = two_sided_p(z)
    if np.ptp(y) == 0:
        p = np.ones(n)  # nothing varies: the statistic is undefined, nothing to report
    bins, p_fdr, critical = classify(z, p, fdr=fdr)
    neighbours = np.diff(adjacency.indptr)

    out = uc.units[["unit", "name", "count"]].copy()
    out["neighbours"] = neighbours
    out["z"] = z
    out["p"] = p
    out["p_fdr"] = p_fdr
    out["bin"] = bins
    out["label_zh"] = [LABELS[b][0] for b in bins]
    out["label_en"] = [LABELS[b][1] for b in bins]
    result = gpd.GeoDataFrame(out, geometry=uc.units.geometry.to_numpy(), crs=uc.units.crs)

    islands = int((neighbours == 0).sum())
    filt = filters or {}
    params = HotspotParams(
        unit=unit,
        resolution=uc.resolution,
        weights=weights,
        band_m=band,
        metric_epsg=epsg,
        p_values="permutation" if permutations else "analytic",
        permutations=int(permutations),
        seed=seed if permutations else None,
        fdr=fdr,
        critical_p=critical,
        n_units=n,
        n_incidents=uc.n_incidents,
        n_outside=uc.n_outside,
        n_islands=islands,
        mean_neighbours=float(neighbours.mean()),
        street=filt.get("street"),
        start=filt.get("start"),
        end=filt.get("end"),
        category=filt.get("category"),
        notes=_notes(n, islands, uc, y, permutations if fdr else 0, unit, bins),
    )
    return HotspotResult(result, params)


def _notes(
    n: int,
    islands: int,
    uc: gu.UnitCounts,
    y: NDArray,
    fdr_permutations: int,
    unit: str,
    bins: NDArray,
) -> tuple[Note, ...]:
    notes = []
    if unit == "grid" and not bins.any() and np.ptp(y) > 0:
        notes.append(
            Note(
                "未发现显著的网格冷热点：Gi*识别成片的高值区域，单个网格内的小范围聚集"
                "会被相邻网格平均掉。可改用六边形单元（较细分辨率）查看",
                "no grid is a significant hot or cold spot: Gi* finds areas of high values, "
                "and a small cluster inside one grid is averaged out with its neighbours. "
                "Try hexagons (a finer resolution)",
            )
        )
    if fdr_permutations:
        # the smallest attainable permutation p is 2/(P+1); BH accepts c units at that p
        # only when 2/(P+1) <= c·α/n, so small clusters can never be significant
        p_min = 2.0 / (fdr_permutations + 1)
        need = int(np.ceil(p_min * n / 0.05))
        if need > 1:
            notes.append(
                Note(
                    f"置换检验{fdr_permutations}次时最小p值为{p_min:.4f}；经FDR校正（{n}个单元）"
                    f"后，至少{need}个单元同时达到该p值才可能在95%置信度显著。"
                    "如需识别较小的聚集区，请改用解析p值或增加置换次数",
                    f"with {fdr_permutations} permutations the smallest p-value is "
                    f"{p_min:.4f}; after the FDR correction over {n} units, at least {need} "
                    "units must reach it to be significant at 95%. Use analytic p-values or "
                    "more permutations to find smaller clusters",
                )
            )
    if n < MIN_RELIABLE_UNITS:
        notes.append(
            Note(
                f"分析单元仅{n}个（少于{MIN_RELIABLE_UNITS}个），结果仅供参考",
                f"only {n} units (fewer than {MIN_RELIABLE_UNITS}): treat the result as indicative",
            )
        )
    if islands:
        notes.append(
            Note(
                f"{islands}个单元没有相邻单元，只与自身比较",
                f"{islands} unit(s) have no neighbours and are compared with themselves only",
            )
        )
    if uc.n_outside:
        notes.append(
            Note(
                f"{uc.n_outside}起事件不在任何分析单元内，未计入",
                f"{uc.n_outside} incident(s) lie in no unit and are not counted",
            )
        )
    if np.ptp(y) == 0:
        notes.append(
            Note(
                "各单元事件数相同，无冷热点可言",
                "every unit has the same count: there are no hot or cold spots",
            )
        )
    return tuple(notes)


def hotspots(
    conn: Connection,
    *,
    street: str | None = None,
    start: Any = None,
    end: Any = None,
    category: str | None = None,
    unit: UnitKind = "grid",
    resolution: int | None = gu.DEFAULT_H3_RESOLUTION,
    weights: WeightsKind = "contiguity",
    band_m: float | None = None,
    permutations: int = 0,
    seed: int | None = DEFAULT_SEED,
    fdr: bool = True,
) -> HotspotResult:
    """Getis-Ord Gi* hot and cold spots of incidents, classed as ArcGIS does.

    Parameters
    ----------
    conn
        Connection to the store.
    street
        Street code (12 digits); None for every street.
    start, end
        Reports in ``[start, end)`` (timestamps, or dates meaning local midnight); None
        leaves that side open.
    category
        Incident category, top-level ("03") or subcategory ("0302"); None for all.
    unit
        ``"grid"`` (current grids) or ``"hex"`` (H3 cells covering the street).
    resolution
        H3 resolution for hexagons (default 9, ≈ 0.105 km²); None chooses it for the area
        and the number of incidents (:func:`geo.units.choose_resolution`; the demo street
        gets 10), recorded in the parameters.
    weights
        ``"contiguity"`` (queen) or ``"distance"`` (fixed band between unit centres).
    band_m
        Distance band in metres; None = the smallest band giving every unit a neighbour.
    permutations
        0 for analytic p-values (fast, what ArcGIS reports), else that many conditional
        permutations (e.g. 999), seeded with ``seed``.
    fdr
        Apply the Benjamini-Hochberg false-discovery-rate correction to the classes.

    Returns
    -------
    HotspotResult
        Units with counts, z, p, p_fdr, bin and labels (EPSG:4326), and the parameters.
    """
    start, end = as_instant(start), as_instant(end)
    if unit == "grid":
        uc = gu.grid_units(conn, street=street, start=start, end=end, category=category)
    elif unit == "hex":
        uc = gu.hex_units(
            conn, street=street, start=start, end=end, category=category, resolution=resolution
        )
    else:
        raise ValueError(f"unit must be 'grid' or 'hex', got {unit!r}")
    return hotspots_for_units(
        uc,
        unit=unit,
        weights=weights,
        band_m=band_m,
        permutations=permutations,
        seed=seed,
        fdr=fdr,
        filters={"street": street, "start": start, "end": end, "category": category},
    )
