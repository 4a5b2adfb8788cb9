"""What the 热点 (hotspots) page shows, without Streamlit: its filter state and how that state
reads from and writes to the URL, and the ranked lists beside the map.

Pure functions of plain values and GeoDataFrames, so that a test, a CSV download or the
briefing can reuse them. The figures themselves (counts, z-scores, classes, patterns,
densities) come from :mod:`geo`; this module only picks, sorts and labels them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

import geopandas as gpd
import h3
import numpy as np
import pandas as pd

from dashboard.i18n import t
from dashboard.maps import HotspotKind
from dashboard.url_state import BadParam, choice, date, flag, int_choice, read_params
from geo.coverage import DEFAULT_WINDOWS
from geo.emerging import EmergingResult
from geo.hotspots import LABELS, HotspotResult
from geo.kde import KdeResult
from geo.units import AUTO_RESOLUTIONS
from store.vocab import Lang

Method = Literal["density", "grid", "hex", "emerging"]
Unit = Literal["grid", "hex"]
Bin = Literal["week", "month"]

METHODS: tuple[Method, ...] = get_args(Method)
UNITS: tuple[Unit, ...] = get_args(Unit)
BINS: tuple[Bin, ...] = get_args(Bin)
#: H3 resolutions offered, coarsest first; None is "automatic".
RESOLUTIONS: tuple[int, ...] = tuple(sorted(AUTO_RESOLUTIONS))
#: Days in the default period, ending on the latest incident's day.
DEFAULT_DAYS = 90
#: Look-back windows (days) offered for patrol coverage of hot spots, as geo.coverage's.
PATROL_DAYS: tuple[int, ...] = tuple(DEFAULT_WINDOWS)
#: Coverage (percent of a unit's buildings passed) below which a hot unit is listed as
#: under-patrolled, by default; the choices offered.
DEFAULT_PATROL_MIN = 80
PATROL_MINS: tuple[int, ...] = tuple(range(10, 101, 10))
#: Rows of a ranked list shown on the page (the CSV download has them all).
TOP_ROWS = 15


@dataclass(frozen=True)
class HotspotQuery:
    """The page's filter state; every field is in the URL.

    ``start`` and ``end`` are both included (the page shows days); the analyses get
    ``[start, end + 1 day)``. ``unit`` applies to the emerging method (the density is always
    on hexagons, Gi* takes its unit from the method); ``resolution`` None means automatic.
    """

    method: Method
    street: str | None
    start: dt.date
    end: dt.date
    category: str | None = None
    unit: Unit = "grid"
    resolution: int | None = None
    fdr: bool = True
    bin: Bin = "week"
    patrol_days: int = 7
    patrol_min: int = DEFAULT_PATROL_MIN

    @property
    def end_exclusive(self) -> dt.date:
        """The day after ``end``: the open end the analyses take."""
        return self.end + dt.timedelta(days=1)

    @property
    def uses_hexagons(self) -> bool:
        """Whether the analysis runs on H3 hexagons (so the resolution matters)."""
        return uses_hexagons(self.method, self.unit)


def uses_hexagons(method: Method, unit: Unit) -> bool:
    """Whether ``method`` (with ``unit`` for the emerging method) runs on H3 hexagons."""
    return method in ("density", "hex") or (method == "emerging" and unit == "hex")


def default_query(
    latest: dt.date | None, streets: Collection[str], *, today: dt.date | None = None
) -> HotspotQuery:
    """The view a non-statistician gets without touching anything: Gi* on grids over the
    :data:`DEFAULT_DAYS` days up to the latest incident (today when there is none), the only
    street when there is one (all otherwise), every category, FDR on."""
    end = latest or today or dt.date.today()
    street = next(iter(streets)) if len(streets) == 1 else None
    return HotspotQuery(
        method="grid",
        street=street,
        start=end - dt.timedelta(days=DEFAULT_DAYS - 1),
        end=end,
    )


def _resolution(raw: str) -> int | None:
    if raw.strip().lower() == "auto":
        return None
    value = int(raw)
    if value not in RESOLUTIONS:
        raise ValueError(raw)
    return value


def parse_query(
    params: Mapping[str, str],
    *,
    defaults: HotspotQuery,
    streets: Collection[str],
    categories: Collection[str],
) -> tuple[HotspotQuery, list[BadParam]]:
    """The filter state in URL parameters ``params``; each value that is not valid falls back
    to its default and is reported (never an exception). Unknown keys are ignored.

    Parameters
    ----------
    params
        ``st.query_params.to_dict()``: key → last value, as strings.
    defaults
        :func:`default_query`'s state.
    streets, categories
        Street codes and category codes that exist.

    Returns
    -------
    query, bad
        The state, and the parameters that were not used (with the value used instead).
    """
    d = defaults
    readers: tuple[tuple[str, str, Callable[[str], Any], str], ...] = (
        ("method", "method", choice(METHODS), d.method),
        ("street", "street", choice(streets), d.street or ""),
        ("from", "start", date, d.start.isoformat()),
        ("to", "end", date, d.end.isoformat()),
        ("category", "category", choice(categories), d.category or ""),
        ("unit", "unit", choice(UNITS), d.unit),
        ("resolution", "resolution", _resolution, "auto"),
        ("fdr", "fdr", flag, "1" if d.fdr else "0"),
        ("bin", "bin", choice(BINS), d.bin),
        ("patrol_days", "patrol_days", int_choice(PATROL_DAYS), str(d.patrol_days)),
        ("patrol_min", "patrol_min", int_choice(PATROL_MINS), str(d.patrol_min)),
    )
    fields, bad = read_params(params, readers)
    q = replace(d, **fields)
    if q.start > q.end:
        bad.append(
            BadParam(
                "from/to",
                f"{q.start.isoformat()}/{q.end.isoformat()}",
                f"{d.start.isoformat()}/{d.end.isoformat()}",
            )
        )
        q = replace(q, start=d.start, end=d.end)
    return q, bad


def to_params(q: HotspotQuery) -> dict[str, str]:
    """The URL parameters of ``q`` (inverse of :func:`parse_query`); "all streets" and "all
    categories" are left out, everything else is written so that a link pins the view."""
    out: dict[str, str] = {"method": q.method}
    if q.street is not None:
        out["street"] = q.street
    out["from"] = q.start.isoformat()
    out["to"] = q.end.isoformat()
    if q.category is not None:
        out["category"] = q.category
    out["unit"] = q.unit
    out["resolution"] = "auto" if q.resolution is None else str(q.resolution)
    out["fdr"] = "1" if q.fdr else "0"
    out["bin"] = q.bin
    out["patrol_days"] = str(q.patrol_days)
    out["patrol_min"] = str(q.patrol_min)
    return out


def cell_area_km2(resolution: int) -> float:
    """Average area of an H3 cell of ``resolution`` in km² (for labels)."""
    return float(h3.average_hexagon_area(resolution, unit="km^2"))


# --- ranked lists ---------------------------------------------------------------------------


def containing_grid(units: gpd.GeoDataFrame, grids: gpd.GeoDataFrame | None) -> pd.Series:
    """Name of the grid holding each unit's representative point (None outside every grid),
    so that a hexagon in a list can be found on the ground; aligned with ``units``."""
    if grids is None or grids.empty or units.empty:
        return pd.Series([None] * len(units), index=units.index, dtype=object)
    points = gpd.GeoDataFrame(geometry=units.representative_point(), crs=units.crs)
    joined = gpd.sjoin(points, grids[["name", grids.geometry.name]], predicate="within")
    joined = joined[~joined.index.duplicated(keep="first")]
    names = joined["name"].reindex(units.index).astype(object)
    return names.where(names.notna(), None)


def _unit_columns(
    units: gpd.GeoDataFrame, lang: Lang, grids: gpd.GeoDataFrame | None
) -> dict[str, object]:
    """Name and code of named units (grids); code and containing grid of unnamed ones
    (hexagons), so that each row can be found on the ground."""
    named = "name" in units.columns and units["name"].notna().any()
    cols: dict[str, object] = {}
    if named:
        cols[t("col_unit", lang)] = units["name"].to_numpy()
    cols[t("col_code", lang)] = units["unit"].astype(str).to_numpy()
    if not named and grids is not None:
        grid = containing_grid(units, grids)
        cols[t("col_grid", lang)] = grid.where(grid.notna(), t("outside_grids", lang)).to_numpy()
    return cols


def _ranked(columns: dict[str, object], lang: Lang) -> pd.DataFrame:
    n = len(next(iter(columns.values()))) if columns else 0  # type: ignore[arg-type]
    return pd.DataFrame({t("col_rank", lang): np.arange(1, n + 1), **columns})


def hot_units(
    units: gpd.GeoDataFrame,
    lang: Lang = "zh",
    *,
    grids: gpd.GeoDataFrame | None = None,
) -> pd.DataFrame:
    """Hot spots of a :class:`geo.hotspots.HotspotResult`, hottest first (by z, then count):
    unit, its grid (hexagons only, when ``grids`` is given), incidents, z and class label.

    The first column is the rank from 1; columns are labelled in ``lang``.
    """
    hot = units[units["bin"] > 0].sort_values(["z", "count"], ascending=False, kind="stable")
    cols = _unit_columns(hot, lang, grids)
    cols[t("col_count", lang)] = hot["count"].astype(int).to_numpy()
    cols[t("col_z", lang)] = np.round(hot["z"].to_numpy(dtype=float), 2)
    cols[t("col_class", lang)] = hot["label_zh" if lang == "zh" else "label_en"].to_numpy()
    return _ranked(cols, lang)


def emerging_units(
    units: gpd.GeoDataFrame,
    lang: Lang = "zh",
    *,
    grids: gpd.GeoDataFrame | None = None,
) -> pd.DataFrame:
    """Units of a :class:`geo.emerging.EmergingResult` with a hot pattern, hottest final bin
    first (by the final bin's z, then incidents): unit, grid, incidents, pattern, final z."""
    hot = units[units["pattern"] > 0].sort_values(
        ["last_z", "count"], ascending=False, kind="stable"
    )
    cols = _unit_columns(hot, lang, grids)
    cols[t("col_count", lang)] = hot["count"].astype(int).to_numpy()
    cols[t("col_pattern", lang)] = hot["label_zh" if lang == "zh" else "label_en"].to_numpy()
    cols[t("col_last_z", lang)] = np.round(hot["last_z"].to_numpy(dtype=float), 2)
    return _ranked(cols, lang)


def dense_cells(
    cells: gpd.GeoDataFrame,
    lang: Lang = "zh",
    *,
    grids: gpd.GeoDataFrame | None = None,
) -> pd.DataFrame:
    """Cells of a :class:`geo.kde.KdeResult` with any density, densest first: cell, grid,
    incidents in the cell, density (incidents per km²)."""
    dense = cells[cells["density_km2"] > 0].sort_values(
        ["density_km2", "count"], ascending=False, kind="stable"
    )
    cols = _unit_columns(dense, lang, grids)
    cols[t("col_count", lang)] = dense["count"].astype(int).to_numpy()
    cols[t("col_density", lang)] = np.round(dense["density_km2"].to_numpy(dtype=float), 1)
    return _ranked(cols, lang)


# --- the result as the page shows it ---------------------------------------------------------

Result = HotspotResult | EmergingResult | KdeResult


@dataclass(frozen=True)
class HotspotView:
    """One analysis as the page (or a briefing) shows it.

    Attributes
    ----------
    kind
        ``"hotspots"``, ``"emerging"`` or ``"density"`` (:func:`dashboard.maps.hotspot_map`).
    units
        The analysis units with their figures, EPSG:4326.
    summary
        One line: units, incidents, method settings.
    notes
        The caveats of the result's parameters, in the page's language.
    ranked
        The ranked list (:func:`hot_units`, :func:`emerging_units`, :func:`dense_cells`).
    title, empty
        Heading of the list, and the text shown when it is empty.
    """

    kind: HotspotKind
    units: gpd.GeoDataFrame
    summary: str
    notes: tuple[str, ...]
    ranked: pd.DataFrame
    title: str
    empty: str


def unit_text(resolution: int | None, lang: Lang) -> str:
    """What an analysis unit is, for captions: a grid, or an H3 cell of its area."""
    if resolution is None:
        return t("unit_desc_grid", lang)
    return t("unit_desc_hex", lang, res=resolution, area=f"{cell_area_km2(resolution):.3g}")


def view(
    result: Result, lang: Lang = "zh", *, grids: gpd.GeoDataFrame | None = None
) -> HotspotView:
    """What the page shows of ``result``: every figure is the result's own."""
    if isinstance(result, KdeResult):
        kp = result.params
        summary = t(
            "result_density",
            lang,
            unit=unit_text(kp.resolution, lang),
            n_cells=kp.n_cells,
            n_incidents=kp.n_incidents,
            band=f"{kp.bandwidth_m:.0f}",
            rule=t(f"rule_{kp.bandwidth_rule}", lang),
        )
        ranked = dense_cells(result.cells, lang, grids=grids)
        return HotspotView(
            "density",
            result.cells,
            summary,
            (),
            ranked,
            t("ranked_density", lang),
            t("no_hot", lang),
        )
    p = result.params
    fdr = t("fdr_on" if p.fdr else "fdr_off", lang)
    notes = tuple(n.zh if lang == "zh" else n.en for n in p.notes)
    common = {
        "unit": unit_text(p.resolution, lang),
        "fdr": fdr,
        "n_units": p.n_units,
        "n_incidents": p.n_incidents,
    }
    if isinstance(result, EmergingResult):
        ep = result.params
        summary = t(
            "result_emerging", lang, n_bins=ep.n_bins, bin=t(f"bin_{ep.bin}", lang), **common
        )
        return HotspotView(
            "emerging",
            result.units,
            summary,
            notes,
            emerging_units(result.units, lang, grids=grids),
            t("ranked_emerging", lang),
            t("no_emerging_hot", lang),
        )
    return HotspotView(
        "hotspots",
        result.units,
        t("result_gi", lang, **common),
        notes,
        hot_units(result.units, lang, grids=grids),
        t("ranked_hot", lang),
        t("no_hot", lang),
    )


def under_patrolled_units(
    units: gpd.GeoDataFrame,
    lang: Lang = "zh",
    *,
    grids: gpd.GeoDataFrame | None = None,
) -> pd.DataFrame:
    """The list of :func:`geo.coverage.under_patrolled` (its order: hottest, then least
    covered): unit, grid, incidents, hot-spot class, coverage in percent and its label."""
    cols = _unit_columns(units, lang, grids)
    cols[t("col_count", lang)] = units["count"].astype(int).to_numpy()
    cols[t("col_class", lang)] = [LABELS[int(b)][0 if lang == "zh" else 1] for b in units["bin"]]
    cols[t("col_coverage", lang)] = np.round(units["coverage"].to_numpy(dtype=float) * 100)
    cols[t("col_patrol", lang)] = units["label_zh" if lang == "zh" else "label_en"].to_numpy()
    return _ranked(cols, lang)
