"""View model of the 一张图 (overview) page: its URL state, the indicator classes and legend,
the grid under a click, the GCJ-02 shift of the layers and the masking of phone numbers.

Pure (no Streamlit, no database), so that every rule here is unit-tested. The URL contract
(other pages link here with it): ``street``, ``community``, ``grid`` (opens that grid's
panel), ``incident`` (centres and zooms on it), ``lat``, ``lng``, ``zoom``, ``from``, ``to``,
``category``, ``status``, ``layers`` (comma list of :data:`LAYERS`); and the page's own
``indicator``, ``color``, ``gcj02``, ``day`` (patrol tracks), ``days`` (buildings not passed).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import geopandas as gpd
import mapclassify
import numpy as np
import pandas as pd
import shapely
from numpy.typing import ArrayLike, NDArray

from dashboard import url_state as us
from geo.overview import INDICATORS, WORSE_HIGH
from store.access import mask_phone as mask_staff_phone
from store.offsets import gcj02_to_wgs84, wgs84_to_gcj02
from store.vocab import INCIDENT_STATUSES, Lang, label

#: Map layers a user switches, in drawing order (bottom first).
LAYERS: tuple[str, ...] = (
    "basemap",
    "indicator",
    "heat",
    "hotspots",
    "boundaries",
    "tracks",
    "unvisited",
    "places",
    "cameras",
    "incidents",
)
DEFAULT_LAYERS: tuple[str, ...] = ("indicator", "boundaries", "incidents")
COLOR_BY: tuple[str, ...] = ("category", "status")
UNVISITED_DAYS: tuple[int, ...] = (7, 14, 30)
DEFAULT_PERIOD_DAYS = 90
MIN_ZOOM, MAX_ZOOM = 3, 22
#: Zoom a link to one incident opens at (a few buildings across).
INCIDENT_ZOOM = 17
#: Most incidents drawn one by one; above it, the map shows counts per grid
#: (:func:`count_layer`): ~10k points are ~2.5 MB of page and seconds of drawing.
POINT_LIMIT = 10_000
#: Classes of the indicator layer.
CLASSES = 5
#: Fill of grids with no value (no households, no cases due, no working day).
NO_DATA_COLOR = "#d9d9d9"
#: ColorBrewer YlOrRd (higher is worse) and its reverse for "higher is better" indicators.
RAMP: tuple[str, ...] = ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")

#: ``street`` value of the whole district (every street), so that the view is linkable.
ALL_STREETS = "all"


@dataclass(frozen=True)
class OverviewQuery:
    """Everything the page shows depends on; ``end`` is inclusive (the last day shown)."""

    street: str | None
    community: str | None
    grid: str | None
    incident: str | None
    lat: float | None
    lng: float | None
    zoom: float | None
    start: dt.date
    end: dt.date
    category: str | None
    status: str | None
    layers: tuple[str, ...]
    indicator: str = "per_1000"
    color_by: str = "category"
    gcj02: bool = False
    day: dt.date | None = None
    days: int = 14

    @property
    def end_exclusive(self) -> dt.date:
        """The day after the last day (periods are ``[start, end)`` in geo/)."""
        return self.end + dt.timedelta(days=1)

    @property
    def track_day(self) -> dt.date:
        """The day whose patrol tracks are drawn (default: the period's last day)."""
        return self.day or self.end


def default_query(
    latest: dt.date | None, streets: Mapping[str, str], *, gcj02: bool = False
) -> OverviewQuery:
    """The view without URL parameters: the first street (``?street=all``: the whole
    district), the :data:`DEFAULT_PERIOD_DAYS`
    days up to the latest incident (today when there is none), default layers; layers
    shifted to GCJ-02 when ``gcj02`` (for a deployment whose basemap is GCJ-02)."""
    end = latest or dt.date.today()
    return OverviewQuery(
        street=next(iter(streets), None),
        community=None,
        grid=None,
        incident=None,
        lat=None,
        lng=None,
        zoom=None,
        start=end - dt.timedelta(days=DEFAULT_PERIOD_DAYS - 1),
        end=end,
        category=None,
        status=None,
        layers=DEFAULT_LAYERS,
        gcj02=gcj02,
    )


def _layers(raw: str) -> tuple[str, ...]:
    names = [p.strip() for p in raw.split(",") if p.strip()]
    unknown = [n for n in names if n not in LAYERS]
    if unknown:
        raise ValueError(raw)
    return tuple(n for n in LAYERS if n in names)


def _number(lo: float, hi: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not math.isfinite(value) or not lo <= value <= hi:
            raise ValueError(raw)
        return value

    return parse


def _code(digits: tuple[int, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if not value.isdigit() or len(value) not in digits:
            raise ValueError(raw)
        return value

    return parse


def _street(streets: Mapping[str, str]) -> Callable[[str], str | None]:
    """A street code, or :data:`ALL_STREETS` (None: every street)."""
    one = us.choice(streets)

    def parse(raw: str) -> str | None:
        return None if raw.strip() == ALL_STREETS else one(raw)

    return parse


def _incident_code(raw: str) -> str:
    value = raw.strip()
    if not value or len(value) > 64 or not re.fullmatch(r"[\w\-.]+", value):
        raise ValueError(raw)
    return value


def parse_query(
    params: Mapping[str, str],
    *,
    defaults: OverviewQuery,
    streets: Mapping[str, str],
    categories: Mapping[str, str],
) -> tuple[OverviewQuery, list[us.BadParam]]:
    """The view a URL asks for, and the parameters that could not be used (each replaced
    by its default). Codes of communities and grids are checked for form here and for
    existence by the page (it knows them only after reading the street)."""
    readers: list[us.Reader] = [
        ("street", "street", _street(streets), defaults.street or ALL_STREETS),
        ("community", "community", _code((12,)), ""),
        ("grid", "grid", _code((15,)), ""),
        ("incident", "incident", _incident_code, ""),
        ("lat", "lat", _number(-90, 90), ""),
        ("lng", "lng", _number(-180, 180), ""),
        ("zoom", "zoom", _number(MIN_ZOOM, MAX_ZOOM), ""),
        ("from", "start", us.date, defaults.start.isoformat()),
        ("to", "end", us.date, defaults.end.isoformat()),
        ("category", "category", us.choice(categories), ""),
        ("status", "status", us.choice(INCIDENT_STATUSES), ""),
        ("layers", "layers", _layers, ",".join(defaults.layers)),
        ("indicator", "indicator", us.choice(INDICATORS), defaults.indicator),
        ("color", "color_by", us.choice(COLOR_BY), defaults.color_by),
        ("gcj02", "gcj02", us.flag, "1" if defaults.gcj02 else "0"),
        ("day", "day", us.date, ""),
        ("days", "days", us.int_choice(UNVISITED_DAYS), str(defaults.days)),
    ]
    fields, bad = us.read_params(params, readers)
    q = replace(defaults, **fields)
    if q.street is None and len(streets) == 1:  # one street: it is the whole district
        q = replace(q, street=next(iter(streets)))
    if q.end < q.start:
        bad.append(us.BadParam("from", params.get("from", ""), defaults.start.isoformat()))
        bad.append(us.BadParam("to", params.get("to", ""), defaults.end.isoformat()))
        q = replace(q, start=defaults.start, end=defaults.end)
    if (q.lat is None) != (q.lng is None):
        key = "lat" if q.lng is None else "lng"
        bad.append(us.BadParam(key, params.get(key, ""), ""))
        q = replace(q, lat=None, lng=None)
    if q.community and q.street and q.community[:9] != q.street[:9]:
        bad.append(us.BadParam("community", q.community, ""))
        q = replace(q, community=None)
    if q.grid and q.street and q.grid[:9] != q.street[:9]:
        bad.append(us.BadParam("grid", q.grid, ""))
        q = replace(q, grid=None)
    return q, bad


def to_params(q: OverviewQuery) -> dict[str, str]:
    """The URL parameters reproducing ``q`` (unset fields left out)."""
    out = {
        "street": q.street or ALL_STREETS,
        "community": q.community,
        "grid": q.grid,
        "incident": q.incident,
        "lat": None if q.lat is None else f"{q.lat:.6f}",
        "lng": None if q.lng is None else f"{q.lng:.6f}",
        "zoom": None if q.zoom is None else f"{q.zoom:g}",
        "from": q.start.isoformat(),
        "to": q.end.isoformat(),
        "category": q.category,
        "status": q.status,
        "layers": ",".join(q.layers),
        "indicator": q.indicator,
        "color": q.color_by,
        "gcj02": "1" if q.gcj02 else "0",
        "day": None if q.day is None else q.day.isoformat(),
        "days": str(q.days),
    }
    return {k: v for k, v in out.items() if v is not None}


def opening_view(
    q: OverviewQuery, incident_at: tuple[float, float] | None
) -> tuple[float, float, float] | None:
    """``(lat, lng, zoom)`` the map opens at: on the linked incident (``(lng, lat)``, at
    :data:`INCIDENT_ZOOM` unless the URL gives a zoom), else the URL's centre and zoom, else
    None (fit the grids)."""
    if incident_at is not None:
        return (incident_at[1], incident_at[0], float(q.zoom or INCIDENT_ZOOM))
    if q.lat is not None and q.lng is not None:
        return (q.lat, q.lng, float(q.zoom or 15))
    return None


@dataclass(frozen=True)
class MapBase:
    """What the part of the map no filter changes depends on (outlines, basemap, the view
    it opens at): while it stays the same, a filter change swaps the layers in the map the
    user has in front of them, where they have moved it."""

    street: str | None
    community: str | None
    gcj02: bool
    boundaries: bool
    basemap: bool
    incident: str | None


def map_base(q: OverviewQuery) -> MapBase:
    """The :class:`MapBase` of a view."""
    return MapBase(
        q.street,
        q.community,
        q.gcj02,
        "boundaries" in q.layers,
        "basemap" in q.layers,
        q.incident,
    )


# --- indicator classes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Classes:
    """Each grid's class (−1: no value) and the legend's ``(colour, label)`` entries."""

    codes: NDArray[np.int64]
    colors: dict[int, str]
    entries: list[tuple[str, str]]


def format_value(value: float | None, kind: str) -> str:
    """An indicator value as shown: rates as percentages, counts whole, ratios 1 decimal."""
    if value is None or not math.isfinite(value):
        return "—"
    if kind == "rate":
        return f"{value * 100:.0f}%"
    if kind == "count":
        return f"{value:.0f}"
    return f"{value:.1f}"


def indicator_classes(
    values: ArrayLike, indicator: str, *, no_data: str = "no data", k: int = CLASSES
) -> Classes:
    """Classes of an indicator for the map, by :mod:`mapclassify`'s quantiles (``k``
    classes of about equal numbers of grids, fewer when values tie; deterministic, and
    Fisher-Jenks would need numba, which this project leaves out); NaN is class −1.

    Darker is worse: for the indicators where higher is better (rates), the ramp is
    reversed, so a low closure rate is dark red."""
    x = np.asarray(values, dtype=float)
    kind = INDICATORS[indicator][2]
    finite = x[np.isfinite(x)]
    codes = np.full(x.size, -1, dtype=np.int64)
    colors: dict[int, str] = {-1: NO_DATA_COLOR}
    entries: list[tuple[str, str]] = []
    distinct = np.unique(finite)
    if distinct.size:
        n = int(min(k, distinct.size))
        if n == 1:
            bins = distinct.astype(float)
            codes[np.isfinite(x)] = 0
        else:
            classifier = mapclassify.Quantiles(finite, k=n)
            bins = np.asarray(classifier.bins, dtype=float)
            n = len(bins)
            codes[np.isfinite(x)] = np.asarray(classifier.find_bin(x[np.isfinite(x)]))
        ramp = _ramp(n, worse_high=indicator in WORSE_HIGH)
        lower = float(distinct.min())
        for i, upper in enumerate(bins):
            colors[i] = ramp[i]
            lo, hi = format_value(lower, kind), format_value(float(upper), kind)
            entries.append((ramp[i], hi if lo == hi else f"{lo} – {hi}"))
            above = finite[finite > upper]
            lower = float(above.min()) if above.size else float(upper)
    if (codes == -1).any():
        entries.append((NO_DATA_COLOR, no_data))
    return Classes(codes, colors, entries)


def _ramp(n: int, *, worse_high: bool) -> list[str]:
    """``n`` colours spread over :data:`RAMP`, light to dark (dark to light when a high
    value is good)."""
    idx = np.round(np.linspace(0, len(RAMP) - 1, n)).astype(int) if n > 1 else np.array([2])
    ramp = [RAMP[i] for i in idx]
    return ramp if worse_high else ramp[::-1]


def indicator_layer(
    grids: gpd.GeoDataFrame, values: pd.Series, indicator: str, *, no_data: str
) -> tuple[gpd.GeoDataFrame, Classes]:
    """The grids with each one's class (``__class``) and formatted value (``__value``) of
    ``values`` (indexed by grid code), and the classes with their legend."""
    kind = INDICATORS[indicator][2]
    v = grids["code"].map(values).astype(float)
    classes = indicator_classes(v.to_numpy(), indicator, no_data=no_data)
    drawn = grids.assign(__class=classes.codes, __value=[format_value(x, kind) for x in v])
    return drawn, classes


def incident_layer(
    incidents: gpd.GeoDataFrame,
    color_by: str,
    palette: Mapping[str, str],
    category_names: Mapping[str, str],
    lang: Lang,
) -> tuple[gpd.GeoDataFrame, list[tuple[str, str]]]:
    """Incidents with their popup texts (``category``, ``status`` in ``lang``) and colour key
    (``__color_key``: the 2-digit category group or the status), and the legend entries of
    the keys present, in ``palette`` order."""
    key = incidents["category_code"].str[:2] if color_by == "category" else incidents["status"]
    out = incidents.assign(
        category=incidents["category_zh" if lang == "zh" else "category_en"],
        status=[label("incident_status", v, lang) for v in incidents["status"]],
        __color_key=key,
    )
    present = set(key)
    entries = [
        (
            colour,
            category_names.get(k, k)
            if color_by == "category"
            else label("incident_status", k, lang),
        )
        for k, colour in palette.items()
        if k in present
    ]
    return out, entries


def count_layer(
    counts: gpd.GeoDataFrame,
    color_by: str,
    palette: Mapping[str, str],
    category_names: Mapping[str, str],
    lang: Lang,
) -> tuple[gpd.GeoDataFrame, list[tuple[str, str]]]:
    """Incident counts per grid (:func:`store.overview_sql.incident_counts`) with their
    colour key (``__color_key``: the most frequent category group or status) and the text
    of their tooltip (``__top``), and the legend entries of the keys present."""
    keys = counts["top_key"].astype(str)

    def name(k: str) -> str:
        return (
            category_names.get(k, k)
            if color_by == "category"
            else label("incident_status", k, lang)
        )

    out = counts.assign(__color_key=keys, __top=[name(k) for k in keys])
    present = set(keys)
    entries = [(colour, name(k)) for k, colour in palette.items() if k in present]
    return out, entries


# --- clicks, phones, offsets ---------------------------------------------------------------


def grid_at(lng: float, lat: float, grids: gpd.GeoDataFrame) -> str | None:
    """The code of the grid containing ``(lng, lat)`` (the lowest code on a shared edge),
    None outside every grid. ``grids`` in the CRS the point is in."""
    point = shapely.Point(lng, lat)
    hit = grids[grids.geometry.covers(point)]
    return None if hit.empty else str(sorted(hit["code"])[0])


def mask_phone(phone: object) -> str:
    """A mobile number with its middle four digits hidden (``138****1234``,
    :func:`store.access.mask_phone`, which the exports use too); anything else that is not
    a 11-digit number is hidden whole (``****``); missing: ``—``."""
    if phone is None or (isinstance(phone, float) and math.isnan(phone)):
        return "—"
    text = str(phone).strip()
    return mask_staff_phone(text) if text else "—"


def to_gcj02(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``gdf`` (EPSG:4326/CGCS2000 degrees) shifted to GCJ-02, so that it sits on an
    AutoNavi-style basemap; the store and every figure stay CGCS2000. Still labelled
    EPSG:4326 (GCJ-02 has no EPSG code; Leaflet takes the numbers as they are)."""
    if gdf.empty:
        return gdf

    def shift(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        lon, lat = wgs84_to_gcj02(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])

    return gdf.set_geometry(shapely.transform(gdf.geometry.array, shift))


def point_to_gcj02(lng: float, lat: float) -> tuple[float, float]:
    """One point to GCJ-02 (for centring a shifted map)."""
    x, y = wgs84_to_gcj02(lng, lat)
    return float(x), float(y)


def point_from_gcj02(lng: float, lat: float) -> tuple[float, float]:
    """One point of a shifted map back to CGCS2000 (a click, the map centre)."""
    x, y = gcj02_to_wgs84(lng, lat)
    return float(x), float(y)


def kpi_rows(
    table: pd.DataFrame, labels: Mapping[str, tuple[str, str, str]], lang: str
) -> pd.DataFrame:
    """The grid-vs-street table as shown: label, the grid's and the street's values
    formatted by kind (:func:`geo.overview.compare_with_street` output)."""
    rows = []
    for _, r in table.iterrows():
        zh, en, kind = labels[r["figure"]]
        rows.append(
            (
                zh if lang == "zh" else en,
                format_value(r["grid"], kind),
                format_value(r["street"], kind),
            )
        )
    return pd.DataFrame(rows, columns=["figure", "grid", "street"])


def layer_list(raw: Sequence[str]) -> tuple[str, ...]:
    """Layer names in drawing order, unknown ones dropped."""
    return tuple(n for n in LAYERS if n in set(raw))


# --- the grid panel --------------------------------------------------------------------------

#: KPIs the grid panel compares with the street's.
PANEL_KPIS: tuple[str, ...] = (
    "reported",
    "closure_rate",
    "on_time_rate",
    "open_overdue",
    "mean_hours",
    "grid_share",
)


@dataclass(frozen=True)
class GridPanel:
    """The tables of one grid's panel, ready to show: phones masked, times local, headers in
    the page's language. Population figures are totals only."""

    contacts: pd.DataFrame
    population: pd.DataFrame
    open_incidents: pd.DataFrame
    patrols: pd.DataFrame


def _local(times: pd.Series, tz: str) -> pd.Series:
    return pd.to_datetime(times, utc=True).dt.tz_convert(tz).dt.strftime("%m-%d %H:%M")


def grid_panel(
    contacts: pd.DataFrame,
    population: Mapping[str, int],
    open_now: pd.DataFrame,
    patrols: pd.DataFrame,
    *,
    text: Callable[[str], str],
    lang: Lang,
    tz: str,
) -> GridPanel:
    """The panel's tables from :mod:`store.overview_sql`'s grid reads; ``text(key)`` gives
    the page's words (``ov_*``, ``pop_*``)."""
    people = pd.DataFrame(
        {
            text("ov_role"): [label("staff_role", r, lang) for r in contacts["role"]],
            text("ov_name"): contacts["name"].tolist(),
            text("ov_phone"): [mask_phone(p) for p in contacts["phone"]],
        }
    )
    pop = pd.DataFrame(
        {
            text("ov_col_figure"): [text(f"pop_{k}") for k in population],
            text("ov_value"): [int(v) for v in population.values()],
        }
    )
    cat = "category_zh" if lang == "zh" else "category_en"
    incidents = pd.DataFrame(
        {
            text("ov_code"): open_now["code"].tolist(),
            text("ov_title"): open_now["title"].tolist(),
            text("ov_category"): open_now[cat].tolist(),
            text("ov_status"): [label("incident_status", v, lang) for v in open_now["status"]],
            text("ov_reported"): _local(open_now["reported_at"], tz).tolist(),
            text("ov_deadline"): _local(open_now["deadline"], tz).tolist(),
        }
    )
    walks = pd.DataFrame(
        {
            text("ov_worker"): patrols["worker_name"].tolist(),
            text("ov_started"): _local(patrols["started_at"], tz).tolist(),
            text("ov_ended"): _local(patrols["ended_at"], tz).tolist(),
            text("ov_length_m"): [int(v) for v in patrols["length_m"]],
        }
    )
    return GridPanel(people, pop, incidents, walks)
