"""Static maps of the briefing, drawn with matplotlib and geopandas (no basemap tiles: the
briefing is made offline) in Noto Sans CJK SC, as PNG bytes.

Three maps, each a pure function of the briefing's data: grids coloured by incidents per
1,000 households (natural-breaks classes by mapclassify), hot and cold spots in the
hotspots page's colours, and the share of each grid's buildings passed by patrols.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

import geopandas as gpd
import matplotlib

matplotlib.use("Agg")  # no display: before pyplot is imported

import mapclassify
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import shapely
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.path import Path
from threadpoolctl import threadpool_limits

from dashboard.briefing.data import BriefingData
from dashboard.i18n import t
from dashboard.maps import HOT_COLORS
from geo.hotspots import LABELS
from store.vocab import Lang

#: The font of maps and documents (Debian fonts-noto-cjk).
FONT = "Noto Sans CJK SC"
#: Web Mercator for drawing: a street is small enough that its distortion does not show.
DRAW_EPSG = 3857
#: Map size in inches (fits the A4 text width of the PDF) and resolution.
SIZE = (6.6, 4.0)
DPI = 180
#: Sequential colours (ColorBrewer YlOrRd, 5 classes) for the indicator.
RATE_COLORS = ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")
#: Coverage classes (upper bounds, shares) and colours: red little, green much.
COVERAGE_BOUNDS = (0.5, 0.8, 0.95, 1.0)
COVERAGE_COLORS = ("#d7191c", "#fdae61", "#a6d96a", "#1a9641")
NO_DATA = "#eeeeee"


@dataclass(frozen=True)
class MapImages:
    """The three maps as PNG bytes."""

    indicator: bytes
    hotspots: bytes
    coverage: bytes


#: NaturalBreaks' k-means draws its starts from numpy's global generator (mapclassify
#: 2.10 has no seed argument): the same data must give the same classes in every briefing.
_BREAKS_SEED = 20261130
_breaks_lock = threading.Lock()


def _natural_breaks(values: np.ndarray, k: int) -> mapclassify.NaturalBreaks:
    """mapclassify's natural breaks, reproducible: the global generator is seeded for the
    call and put back after it (under a lock: the briefing draws maps in threads).

    scikit-learn's k-means underneath runs on one OpenMP thread here: on a loaded
    machine its threads spin waiting for each other (a district's 1,500 grids: 8–10 s
    with two threads at load 10, 0.3 s with one, the same classes), and one thread also
    sums the clusters in a fixed order."""
    with _breaks_lock, threadpool_limits(limits=1):
        state = np.random.get_state()
        np.random.seed(_BREAKS_SEED)
        try:
            return mapclassify.NaturalBreaks(values, k=k)
        finally:
            np.random.set_state(state)


def font_available() -> bool:
    """Whether matplotlib finds the CJK font (else Chinese would print as boxes)."""
    return any(f.name == FONT for f in font_manager.fontManager.ttflist)


def _axes() -> tuple[Figure, Axes]:
    """A figure of its own, outside pyplot's global list of figures: the briefing draws
    maps on two threads at once (see :func:`dashboard.briefing.build`)."""
    plt.rcParams["font.family"] = [FONT, "DejaVu Sans"]
    fig = Figure(figsize=SIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_aspect("equal")
    return fig, ax


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.05)
    return buf.getvalue()


def _legend(ax: Axes, entries: list[tuple[str, str]], title: str) -> None:
    handles = [
        Patch(facecolor=c, edgecolor="#666666", linewidth=0.5, label=lab) for c, lab in entries
    ]
    ax.legend(
        handles=handles,
        title=title,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=7,
        title_fontsize=8,
        frameon=False,
    )


#: Above this many units, polygons are drawn without edges (they would hide the colours).
MANY_UNITS = 300


def _edge(n: int) -> float:
    return 0.4 if n <= MANY_UNITS else 0.0


def _outline(ax: Axes, outlines: gpd.GeoDataFrame | None) -> None:
    if outlines is not None and len(outlines):
        outlines.to_crs(DRAW_EPSG).boundary.plot(ax=ax, color="#333333", linewidth=0.5)


def _fill(
    ax: Axes,
    shapes: gpd.GeoDataFrame,
    color: str | list[str],
    *,
    edgecolor: str,
    linewidth: float,
) -> None:
    """Polygons filled as ``shapes.plot(ax=ax, color=color, edgecolor=edgecolor,
    linewidth=linewidth)`` fills them — the same paths (rings normalized, as geopandas
    does so that holes stay holes; one compound path per polygon or multipolygon), the
    same colours, one collection — without a matplotlib ``PathPatch`` per polygon, whose
    construction was most of a district map's time (1,500 grids: 0.3–0.5 s of CPU a map).
    """
    geoms = shapely.normalize(shapes.geometry.to_numpy())
    keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    colors = np.asarray(color, dtype=object)
    if colors.ndim:
        colors = colors[keep]
    geoms = geoms[keep]
    if not len(geoms):
        return
    parts, of_geom = shapely.get_parts(geoms, return_index=True)
    rings, of_part = shapely.get_rings(parts, return_index=True)
    coords, of_ring = shapely.get_coordinates(rings, return_index=True)
    codes = np.full(len(coords), Path.LINETO, dtype=Path.code_type)
    starts = np.flatnonzero(np.r_[True, of_ring[1:] != of_ring[:-1]])
    ends = np.r_[starts[1:], len(coords)] - 1
    codes[starts] = Path.MOVETO
    codes[ends] = Path.CLOSEPOLY
    owner = of_geom[of_part[of_ring]]  # the geometry of each vertex (in order)
    cuts = np.flatnonzero(owner[1:] != owner[:-1]) + 1
    paths = [Path(v, c) for v, c in zip(np.split(coords, cuts), np.split(codes, cuts), strict=True)]
    collection = PathCollection(
        paths,
        facecolor=colors.tolist() if colors.ndim else str(colors),
        edgecolor=edgecolor,
        linewidth=linewidth,
    )
    ax.add_collection(collection, autolim=True)
    ax.autoscale_view()


def indicator_map(
    grids: gpd.GeoDataFrame, lang: Lang = "zh", *, outlines: gpd.GeoDataFrame | None = None
) -> bytes:
    """Grids coloured by ``per_1000`` in natural-breaks classes (fewer when there are fewer
    distinct values); grids without households grey; ``outlines`` drawn on top."""
    g = grids.to_crs(DRAW_EPSG)
    lw = _edge(len(g))
    fig, ax = _axes()
    values = g["per_1000"].to_numpy(dtype=float)
    known = ~np.isnan(values)
    entries: list[tuple[str, str]] = []
    if (~known).any():
        _fill(ax, g[~known], NO_DATA, edgecolor="#999999", linewidth=lw)
    if known.any():
        k = int(min(len(RATE_COLORS), len(np.unique(values[known]))))
        if k >= 2:
            classes = _natural_breaks(values[known], k)
            yb, bins = classes.yb, list(classes.bins)
        else:
            yb, bins = np.zeros(int(known.sum()), dtype=int), [float(values[known].max())]
        colors = [RATE_COLORS[int(i * (len(RATE_COLORS) - 1) / max(len(bins) - 1, 1))] for i in yb]
        _fill(ax, g[known], colors, edgecolor="#666666", linewidth=lw)
        lower = float(values[known].min())
        for i, upper in enumerate(bins):
            color = RATE_COLORS[int(i * (len(RATE_COLORS) - 1) / max(len(bins) - 1, 1))]
            label = f"{upper:,.1f}" if upper == lower else f"{lower:,.1f} – {upper:,.1f}"
            entries.append((color, label))
            lower = upper
    if len(g) > MANY_UNITS:
        _outline(ax, outlines)
    if (~known).any():
        entries.append((NO_DATA, t("br_no_households", lang)))
    _legend(ax, entries, t("br_legend_rate", lang))
    return _png(fig)


def hotspot_map(units: gpd.GeoDataFrame, outlines: gpd.GeoDataFrame, lang: Lang = "zh") -> bytes:
    """Hexagons (or grids) coloured by Gi* class, ``outlines`` (grids or streets) on top."""
    u = units.to_crs(DRAW_EPSG)
    fig, ax = _axes()
    colors = [HOT_COLORS[int(b)] for b in u["bin"]]
    _fill(ax, u, colors, edgecolor="white", linewidth=0.2 if len(u) <= MANY_UNITS else 0)
    _outline(ax, outlines)
    present = set(int(b) for b in u["bin"])
    entries = [
        (HOT_COLORS[b], LABELS[b][0 if lang == "zh" else 1]) for b in HOT_COLORS if b in present
    ]
    _legend(ax, entries, t("legend_hotspots", lang))
    return _png(fig)


def coverage_map(
    grids: gpd.GeoDataFrame,
    coverage: dict[str, float] | None,
    lang: Lang = "zh",
    *,
    outlines: gpd.GeoDataFrame | None = None,
) -> bytes:
    """Grids coloured by the share of their buildings passed (``coverage``: grid code →
    share, NaN without buildings; None: no tracks at all)."""
    g = grids.to_crs(DRAW_EPSG)
    lw = _edge(len(g))
    fig, ax = _axes()
    shares = (
        np.full(len(g), np.nan)
        if coverage is None
        else g["code"].map(coverage).to_numpy(dtype=float)
    )
    known = ~np.isnan(shares)
    cls = np.searchsorted(COVERAGE_BOUNDS, shares[known], side="right").clip(0, 3)
    # a share of exactly 1.0 is the top class; below 0.5 the first
    colors = [COVERAGE_COLORS[int(c)] for c in cls]
    if (~known).any():
        _fill(ax, g[~known], NO_DATA, edgecolor="#999999", linewidth=lw)
    if known.any():
        _fill(ax, g[known], colors, edgecolor="#666666", linewidth=lw)
    if len(g) > MANY_UNITS:
        _outline(ax, outlines)
    entries = []
    lower = 0.0
    for color, upper in zip(COVERAGE_COLORS, COVERAGE_BOUNDS, strict=True):
        label = f"{lower:.0%} – {upper:.0%}" if upper < 1 else f"≥ {lower:.0%}"
        entries.append((color, label))
        lower = upper
    if (~known).any():
        missing = "br_no_tracks_map" if coverage is None else "br_no_buildings"
        entries.append((NO_DATA, t(missing, lang)))
    _legend(ax, entries, t("br_legend_coverage", lang))
    return _png(fig)


def coverage_shares(grid_coverage: pd.DataFrame | None) -> dict[str, float] | None:
    """Grid code → share of buildings passed, from the briefing's ``grid_coverage``."""
    if grid_coverage is None:
        return None
    return dict(zip(grid_coverage["unit"], grid_coverage["coverage"].astype(float), strict=True))


def spatial_maps(
    hot_units: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
    grid_coverage: pd.DataFrame | None,
    outlines: gpd.GeoDataFrame,
    lang: Lang = "zh",
) -> tuple[bytes, bytes]:
    """The hot-spot and coverage maps, which need no key figure: the briefing draws them
    while the key figures are still being computed (see :func:`dashboard.briefing.build`)."""
    return (
        hotspot_map(hot_units, outlines, lang),
        coverage_map(grids, coverage_shares(grid_coverage), lang, outlines=outlines),
    )


def render_maps(data: BriefingData, lang: Lang = "zh") -> MapImages:
    """The briefing's three maps, taken from ``data.early_maps`` where the data step drew
    them already (``"spatial"``: :func:`spatial_maps`; ``"indicator"``:
    :func:`indicator_map`)."""
    early = data.early_maps or {}
    spatial = early.get("spatial")
    if spatial is None:
        spatial = spatial_maps(
            data.hot.units, data.grid_rates, data.grid_coverage, data.outlines, lang
        )
    indicator = early.get("indicator")
    if indicator is None:
        indicator = indicator_map(data.grid_rates, lang, outlines=data.outlines)
    return MapImages(indicator=indicator, hotspots=spatial[0], coverage=spatial[1])
