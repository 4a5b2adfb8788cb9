"""Whole maps composed from the layer builders: pure functions, data in, folium map out."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Literal

import folium
import folium.plugins
import geopandas as gpd
import numpy as np
import pandas as pd
from branca.element import MacroElement
from folium.template import Template
from numpy.typing import ArrayLike, NDArray

from dashboard import layers
from dashboard.i18n import t
from dashboard.offline import localize_map
from geo.emerging import PATTERNS
from geo.hotspots import LABELS as HOT_LABELS
from store.vocab import Lang

#: Outline colours of the boundary layers (tests find the grid polygons by theirs).
GRID_COLOR = "#3b6fb6"
COMMUNITY_COLOR = "#2b4c7e"
STREET_COLOR = "#c0392b"

#: Colours of the incident category groups (first two digits of the category code).
CATEGORY_COLORS = {
    "01": "#d62728",  # 矛盾纠纷
    "02": "#ff7f0e",  # 安全隐患
    "03": "#1f77b4",  # 城市管理
    "04": "#9467bd",  # 治安
    "05": "#e377c2",  # 消防
    "06": "#17becf",  # 疫情防控
    "07": "#2ca02c",  # 群众诉求
    "08": "#7f7f7f",  # 其他
}


# --- 热点 hotspots page ------------------------------------------------------------------

#: Gi* classes (``bin`` −3…3) coloured as ArcGIS's Hot Spot Analysis renderer: its reds for
#: hot spots at 99/95/90 %, its blues for cold ones (the 90 % cold spot a clearer blue than
#: ArcGIS's grey-green, so that it is not read as "not significant"), and grey for not
#: significant.
HOT_COLORS: dict[int, str] = {
    3: "#d62f27",
    2: "#ed7551",
    1: "#fab984",
    0: "#d4d4d4",
    -1: "#a9c3de",
    -2: "#849eba",
    -3: "#4575b5",
}
#: Emerging hot spot patterns (code −8…8): hot patterns in reds and oranges, strongest for
#: intensifying and persistent; cold mirrors in blues; "no pattern" grey.
PATTERN_COLORS: dict[int, str] = {
    1: "#fcbba1",  # new
    2: "#fc9272",  # consecutive
    3: "#a50f15",  # intensifying
    4: "#de2d26",  # persistent
    5: "#fb6a4a",  # diminishing
    6: "#fdae6b",  # sporadic
    7: "#e6550d",  # oscillating
    8: "#d9b8b0",  # historical
    -1: "#c6dbef",
    -2: "#9ecae1",
    -3: "#08519c",
    -4: "#3182bd",
    -5: "#6baed6",
    -6: "#a6bddb",
    -7: "#74a9cf",
    -8: "#c9ced6",
    0: "#d4d4d4",
}
#: Density classes, 0 (nothing within the search radius) then five equal-count classes
#: (ColorBrewer YlOrRd).
DENSITY_COLORS: tuple[str, ...] = ("#f0f0f0", "#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")
#: Pixels kept clear on the right of the data when the map opens: the legend (bottom right)
#: and the layer control (top right) sit there instead of over the units.
LEGEND_ROOM_PX = 190
#: Outline of the grid boundaries drawn over the analysis units.
GRID_OUTLINE_COLOR = "#555555"

HotspotKind = Literal["hotspots", "emerging", "density"]


def density_classes(values: ArrayLike, k: int = 5) -> tuple[NDArray[np.int64], list[float]]:
    """Classes of densities for the map: 0 for zero, then up to ``k`` equal-count classes of
    the positive values (1…k). Returns each value's class and the upper bounds of classes
    1…k (fewer when many values tie)."""
    x = np.asarray(values, dtype=float)
    positive = x[x > 0]
    if positive.size == 0:
        return np.zeros(x.size, dtype=np.int64), []
    uppers = np.unique(np.quantile(positive, np.arange(1, k + 1) / k))
    codes = np.where(x > 0, np.searchsorted(uppers, x, side="left") + 1, 0)
    return np.minimum(codes, len(uppers)).astype(np.int64), [float(u) for u in uppers]


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _display_units(units: gpd.GeoDataFrame, lang: Lang) -> gpd.GeoDataFrame:
    """Units with the text columns their tooltips show."""
    out = units.copy()
    names = out["name"] if "name" in out.columns else pd.Series(None, index=out.index)
    out["__name"] = names.where(names.notna(), out["unit"]).astype(str)
    if "label_zh" in out.columns:
        out["__label"] = out["label_zh" if lang == "zh" else "label_en"]
    return out


def hotspot_map(
    units: gpd.GeoDataFrame,
    *,
    kind: HotspotKind,
    lang: Lang = "zh",
    grids: gpd.GeoDataFrame | None = None,
    tile_url: str | None = None,
    attribution: str = "",
    max_zoom: int = 18,
) -> folium.Map:
    """The 热点 map: analysis units coloured by class, the grid boundaries over them, a legend.

    Parameters
    ----------
    units
        ``kind="hotspots"``: :class:`geo.hotspots.HotspotResult` ``units`` (``bin``);
        ``"emerging"``: :class:`geo.emerging.EmergingResult` ``units`` (``pattern``);
        ``"density"``: :class:`geo.kde.KdeResult` ``cells`` (``density_km2``).
    grids
        Current grid polygons (``name``) drawn as outlines for orientation; None for none.

    Raises
    ------
    ValueError
        When there are no units to draw.
    """
    if units.empty:
        raise ValueError("no analysis units to draw")
    data = _display_units(units, lang)
    bounds = data.total_bounds if grids is None or grids.empty else grids.total_bounds
    m = layers.base_map(
        bounds,
        tile_url=tile_url,
        attribution=attribution,
        max_zoom=max_zoom,
        padding_bottom_right=(LEGEND_ROOM_PX, 0),
    )
    localize_map(m, max_zoom=max_zoom)
    fields = ["__name", "count"]
    aliases = [t("col_unit", lang), t("col_count", lang)]
    if kind == "hotspots":
        data["__z"] = data["z"].round(2)
        column, colors = "bin", HOT_COLORS
        fields += ["__label", "__z"]
        aliases += [t("col_class", lang), t("col_z", lang)]
        name, title = t("layer_hotspots", lang), t("legend_hotspots", lang)
        entries = [(HOT_COLORS[b], HOT_LABELS[b][0 if lang == "zh" else 1]) for b in HOT_COLORS]
    elif kind == "emerging":
        column, colors = "pattern", PATTERN_COLORS
        fields += ["__label"]
        aliases += [t("col_pattern", lang)]
        name, title = t("layer_emerging", lang), t("legend_emerging", lang)
        present = set(data["pattern"].astype(int))
        order = [c for c in PATTERN_COLORS if c in present and c != 0] + [0]
        entries = [
            (PATTERN_COLORS[c], PATTERNS[c].zh if lang == "zh" else PATTERNS[c].en) for c in order
        ]
    elif kind == "density":
        codes, uppers = density_classes(data["density_km2"])
        data["__class"] = codes
        data["__density"] = data["density_km2"].round(1)
        column = "__class"
        colors = dict(enumerate(DENSITY_COLORS[: len(uppers) + 1]))
        fields += ["__density"]
        aliases += [t("col_density", lang)]
        name, title = t("layer_density", lang), t("legend_density", lang)
        lowers = [0.0, *uppers[:-1]]
        entries = [(DENSITY_COLORS[0], t("density_zero", lang))] + [
            (DENSITY_COLORS[i + 1], f"{_fmt(lo)} – {_fmt(hi)}")
            for i, (lo, hi) in enumerate(zip(lowers, uppers, strict=True))
        ]
    else:
        raise ValueError(f"kind must be 'hotspots', 'emerging' or 'density', got {kind!r}")
    layers.class_layer(
        data,
        name=name,
        column=column,
        colors=colors,
        fill_opacity=0.75,
        line_color="#ffffff",
        weight=0.6,
        tooltip_fields=fields,
        tooltip_aliases=aliases,
    ).add_to(m)
    if grids is not None and not grids.empty:
        layers.boundary_layer(
            grids,
            name=t("layer_grid_outlines", lang),
            color=GRID_OUTLINE_COLOR,
            weight=1,
            fill_opacity=0.0,
        ).add_to(m)
    layers.legend(title, entries).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


# --- 一张图 overview page ------------------------------------------------------------------

#: Colours of the incident statuses (open ones warm, closed grey-green).
STATUS_COLORS: dict[str, str] = {
    "reported": "#e31a1c",
    "registered": "#fb6a4a",
    "dispatched": "#fd8d3c",
    "handling": "#feb24c",
    "extended": "#b15928",
    "escalated": "#6a3d9a",
    "returned": "#999999",
    "feedback": "#1f78b4",
    "reworked": "#e7298a",
    "verified": "#33a02c",
    "closed": "#8fbc8f",
    "reopened": "#a50026",
}
TRACK_COLOR = "#00897b"
UNVISITED_COLOR = "#6d4c41"
PLACE_COLOR = "#7b1fa2"
CAMERA_COLOR = "#263238"
LINKED_COLOR = "#000000"
#: Zoom from which incidents are drawn one by one instead of in clusters.
UNCLUSTER_ZOOM = 16


@dataclass(frozen=True)
class OneMapLayers:
    """What the 一张图 map draws, each frame in EPSG:4326 (already shifted when the map
    sits on a GCJ-02 basemap); ``None`` for a layer that is off."""

    grids: gpd.GeoDataFrame
    streets: gpd.GeoDataFrame | None = None
    communities: gpd.GeoDataFrame | None = None
    #: grids with ``__class`` (−1 no value) and ``__value`` (formatted), plus the legend
    indicator: gpd.GeoDataFrame | None = None
    indicator_colors: dict[int, str] | None = None
    indicator_legend: tuple[str, list[tuple[str, str]]] | None = None
    #: incidents with ``__color_key`` and the popup columns ``title, category, status, code``
    incidents: gpd.GeoDataFrame | None = None
    incident_palette: dict[str, str] | None = None
    incident_legend: tuple[str, list[tuple[str, str]]] | None = None
    #: incidents counted per grid (``count``, ``__color_key``, ``name``, ``__top``), drawn
    #: instead of ``incidents`` when there are too many to send one by one
    incident_counts: gpd.GeoDataFrame | None = None
    heat: gpd.GeoDataFrame | None = None
    hotspots: gpd.GeoDataFrame | None = None
    tracks: gpd.GeoDataFrame | None = None
    unvisited: gpd.GeoDataFrame | None = None
    places: gpd.GeoDataFrame | None = None
    cameras: gpd.GeoDataFrame | None = None
    #: the incident a link points at (``title, category, status, code``), popup open
    linked: gpd.GeoDataFrame | None = None


class ViewInUrl(MacroElement):
    """Keeps the page's URL parameters ``lat``, ``lng`` and ``zoom`` on the map's centre
    and zoom as the user pans, in the browser (``history.replaceState`` of the page holding
    the map's iframe): a link reproduces the view without the page running again on every
    pan. Other parameters are left as they are; nothing happens when the map is not in a
    same-origin frame.

    The page still writes its URL after each run, from the parameters it last received:
    Streamlit's frontend sends those it last set itself, not the ones written here, so a
    filter change applied to the map in place (its view kept) would lose them. The URL is
    therefore checked a few times a second and the view put back when it is missing or
    stale (only while the page holding the map is the one shown)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function (map) {
            var path = null;
            function keep() {
                try {
                    var w = window.parent, c = map.getCenter();
                    if (path === null) { path = w.location.pathname; }
                    if (w.location.pathname !== path) { return; }
                    var q = new URLSearchParams(w.location.search);
                    var lat = c.lat.toFixed(6), lng = c.lng.toFixed(6);
                    var zoom = String(map.getZoom());
                    if (q.get("lat") === lat && q.get("lng") === lng && q.get("zoom") === zoom) {
                        return;
                    }
                    q.set("lat", lat);
                    q.set("lng", lng);
                    q.set("zoom", zoom);
                    w.history.replaceState(w.history.state, "", w.location.pathname + "?" + q);
                } catch (e) { /* not same-origin: nothing to keep */ }
            }
            map.on("moveend", keep);
            setInterval(keep, {{ this.every_ms }});
        })({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    #: How often the URL is checked, in milliseconds.
    every_ms = 250

    def __init__(self) -> None:
        super().__init__()
        self._name = "ViewInUrl"


#: Leaflet pane of the filled layers drawn under the grid outlines (indicator when covered,
#: density, hot spots): below the overlay pane (400), where the outlines are.
UNDER_PANE = "gridoneUnder"
#: Name the grid layer's fill is set by (:func:`dashboard.layers.fill_update`).
GRID_FILL = "grids"


def _grid_tip(lang: Lang) -> tuple[list[str], list[str]]:
    return (
        ["name", "community_name", "worker_name"],
        [t(k, lang) for k in ("grid_name", "community", "worker")],
    )


class OpenPopupOnAdd(MacroElement):
    """Opens its parent marker's popup once the marker is on the map (folium's
    ``Popup(show=True)`` opens it when the script runs, which does nothing for a marker in
    a group not yet added to the map)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function (marker) {
            if (marker._map) { marker.openPopup(); }
            else { marker.once("add", function () { marker.openPopup(); }); }
        })({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self) -> None:
        super().__init__()
        self._name = "OpenPopupOnAdd"


def onemap_base(
    grids: gpd.GeoDataFrame,
    *,
    streets: gpd.GeoDataFrame | None = None,
    communities: gpd.GeoDataFrame | None = None,
    lang: Lang = "zh",
    view: tuple[float, float, float] | None = None,
    tile_url: str | None = None,
    attribution: str = "",
    max_zoom: int = 18,
    view_in_url: bool = False,
) -> folium.Map:
    """The part of the 一张图 map that a filter does not change: the basemap, the grid
    outlines (filled later by :func:`onemap_layers`' :func:`~dashboard.layers.fill_update`),
    the community and street outlines, the pane under the outlines, and the files of the
    plugins the layers may use. The layers come after it (:func:`onemap_layers`), so that a
    filter change sends and draws only them, not the megabytes of outlines again.

    Parameters
    ----------
    grids
        Current grids (``code``, ``name``, ``community_name``, ``worker_name``).
    streets, communities
        Outlines drawn over the grids; None for none.
    view
        ``(lat, lng, zoom)`` to open at; None fits the grids.
    tile_url
        Basemap; None for none (the default: nothing leaves the machine).
    view_in_url
        Keep the page URL's ``lat``/``lng``/``zoom`` on the map's view as it moves
        (:class:`ViewInUrl`); only for layers in the URL's CRS (not shifted to GCJ-02).

    Raises
    ------
    ValueError
        When there are no grids (the caller says so instead).
    """
    if grids.empty:
        raise ValueError("no grids to draw")
    m = layers.base_map(
        grids.total_bounds,
        tile_url=tile_url,
        attribution=attribution,
        max_zoom=max_zoom,
        padding_bottom_right=(LEGEND_ROOM_PX, 0),
        view=view,
    )
    localize_map(m, max_zoom=max_zoom)
    folium.map.CustomPane(UNDER_PANE, z_index=350, pointer_events=True).add_to(m)
    layers.plugin_assets(folium.plugins.MarkerCluster).add_to(m)
    layers.legend_styles().add_to(m)
    fields, aliases = _grid_tip(lang)
    # grids first: the street and community outlines stay visible over their fill
    layers.fillable_layer(
        grids,
        name=t("layer_grids", lang),
        target=GRID_FILL,
        key_column="code",
        color=GRID_COLOR,
        weight=1,
        fill_opacity=0.02,  # a faint fill catches clicks (grid panel) and hovers
        tooltip_fields=fields,
        tooltip_aliases=aliases,
    ).add_to(m)
    if communities is not None and not communities.empty:
        layers.boundary_layer(
            communities,
            name=t("layer_communities", lang),
            color=COMMUNITY_COLOR,
            weight=2,
            fill_opacity=0.0,
        ).add_to(m)
    if streets is not None and not streets.empty:
        layers.boundary_layer(
            streets,
            name=t("layer_streets", lang),
            color=STREET_COLOR,
            weight=3,
            fill_opacity=0.0,
        ).add_to(m)
    if view_in_url:
        ViewInUrl().add_to(m)
    return m


def onemap_layers(data: OneMapLayers, *, lang: Lang = "zh") -> folium.FeatureGroup:
    """The layers of the 一张图 map that depend on the filters, as one feature group to add
    over :func:`onemap_base` (or to send to a map already drawn): the indicator (as the
    grids' fill when nothing filled covers it, else as polygons under the outlines), density,
    hot spots, tracks, buildings, places, cameras, incidents, the linked incident and the
    legends. ``data.grids``, ``streets`` and ``communities`` belong to the base map."""
    group = folium.FeatureGroup(name="一张图 layers", control=False)
    covered = any(x is not None and not x.empty for x in (data.heat, data.hotspots))
    has_indicator = data.indicator is not None and data.indicator_colors is not None
    if has_indicator and not covered:
        ind, colors = data.indicator, data.indicator_colors
        codes = ind["code"].astype(str).tolist()
        layers.fill_update(
            GRID_FILL,
            dict(
                zip(codes, [colors.get(c, layers.OTHER_COLOR) for c in ind["__class"]], strict=True)
            ),
            values=dict(zip(codes, ind["__value"], strict=True)),
            value_alias=t("ov_value", lang),
            fill_opacity=0.7,
        ).add_to(group)
    else:
        layers.fill_update(GRID_FILL, None).add_to(group)
    if has_indicator and covered:
        layers.class_layer(
            data.indicator,
            name=t("ov_layer_indicator", lang),
            column="__class",
            colors=data.indicator_colors,
            fill_opacity=0.7,
            line_color="#ffffff",
            weight=0.5,
            tooltip_fields=["name", "__value"],
            tooltip_aliases=[t("grid_name", lang), t("ov_value", lang)],
            pane=UNDER_PANE,
        ).add_to(group)
    if data.heat is not None and not data.heat.empty:
        codes_, _uppers = density_classes(data.heat["density_km2"])
        layers.class_layer(
            data.heat.assign(__class=codes_),
            name=t("ov_layer_heat", lang),
            column="__class",
            colors=dict(enumerate(DENSITY_COLORS)),
            fill_opacity=0.6,
            weight=0.1,
            pane=UNDER_PANE,
        ).add_to(group)
    if data.hotspots is not None and not data.hotspots.empty:
        hot = data.hotspots.assign(
            __label=data.hotspots["label_zh" if lang == "zh" else "label_en"]
        )
        layers.class_layer(
            hot,
            name=t("ov_layer_hotspots", lang),
            column="bin",
            colors=HOT_COLORS,
            fill_opacity=0.6,
            tooltip_fields=["name", "__label"],
            tooltip_aliases=[t("grid_name", lang), t("col_class", lang)],
            pane=UNDER_PANE,
        ).add_to(group)
    if data.tracks is not None and not data.tracks.empty:
        tracks = data.tracks.assign(
            __time=data.tracks["started_at"].astype(str).str[11:16]
            + "–"
            + data.tracks["ended_at"].astype(str).str[11:16]
        )
        layers.boundary_layer(
            tracks,
            name=t("ov_layer_tracks", lang),
            color=TRACK_COLOR,
            weight=2,
            fill_opacity=0.0,
            tooltip_fields=["worker_name", "__time", "length_m"],
            tooltip_aliases=[t("worker", lang), t("ov_time", lang), t("ov_length_m", lang)],
        ).add_to(group)
    if data.unvisited is not None and not data.unvisited.empty:
        layers.point_layer(
            data.unvisited,
            name=t("ov_layer_unvisited", lang),
            radius=4,
            popup_fields=["address", "__label"],
            popup_aliases=[t("address", lang), t("ov_last_passed", lang)],
        ).add_to(group)
    if data.places is not None and not data.places.empty:
        layers.point_layer(
            data.places,
            name=t("ov_layer_places", lang),
            color_column="__kind",
            palette={k: PLACE_COLOR for k in data.places["__kind"].unique()},
            radius=6,
            popup_fields=["name", "__kind", "address"],
            popup_aliases=[t("ov_place", lang), t("ov_kind", lang), t("address", lang)],
        ).add_to(group)
    if data.cameras is not None and not data.cameras.empty:
        layers.point_layer(
            data.cameras,
            name=t("ov_layer_cameras", lang),
            color_column="__kind",
            palette={k: CAMERA_COLOR for k in data.cameras["__kind"].unique()},
            radius=3,
            popup_fields=["code", "__kind"],
            popup_aliases=[t("ov_camera", lang), t("ov_kind", lang)],
        ).add_to(group)
    if data.incidents is not None and not data.incidents.empty:
        layers.point_layer(
            data.incidents,
            name=t("layer_incidents", lang),
            color_column="__color_key",
            palette=data.incident_palette,
            cluster=True,
            cluster_until_zoom=UNCLUSTER_ZOOM,
            radius=5,
            popup_fields=["title", "category", "status", "code"],
            popup_aliases=[
                t("title", lang),
                t("category", lang),
                t("status", lang),
                t("ov_code", lang),
            ],
        ).add_to(group)
    if data.incident_counts is not None and not data.incident_counts.empty:
        layers.count_layer(
            data.incident_counts,
            name=t("layer_incidents", lang),
            count_column="count",
            color_column="__color_key",
            palette=data.incident_palette or {},
            max_radius=7,  # a grid is ~20 px across on the district's opening view
            tooltip_fields=["name", "count", "__top"],
            tooltip_aliases=[t("grid_name", lang), t("ov_count", lang), t("ov_top", lang)],
        ).add_to(group)
    if data.linked is not None and not data.linked.empty:
        row = data.linked.iloc[0]
        marker = folium.Marker(
            [row.geometry.y, row.geometry.x],
            popup=folium.Popup(
                "<br>".join(
                    html.escape(str(v))
                    for v in (row["title"], row["category"], row["status"], row["code"])
                ),
                max_width=260,
            ),
            tooltip=str(row["code"]),
        )
        OpenPopupOnAdd().add_to(marker)
        marker.add_to(group)
    if data.indicator_legend is not None:
        layers.legend_layer(*data.indicator_legend, position="bottomright").add_to(group)
    if data.incident_legend is not None:
        layers.legend_layer(*data.incident_legend, position="bottomleft").add_to(group)
    return group


def onemap(
    data: OneMapLayers,
    *,
    lang: Lang = "zh",
    view: tuple[float, float, float] | None = None,
    tile_url: str | None = None,
    attribution: str = "",
    max_zoom: int = 18,
    view_in_url: bool = False,
) -> folium.Map:
    """The whole 一张图 map in one: :func:`onemap_base` with :func:`onemap_layers` on it
    (a saved page, a test). Parameters as :func:`onemap_base`'s."""
    m = onemap_base(
        data.grids,
        streets=data.streets,
        communities=data.communities,
        lang=lang,
        view=view,
        tile_url=tile_url,
        attribution=attribution,
        max_zoom=max_zoom,
        view_in_url=view_in_url,
    )
    onemap_layers(data, lang=lang).add_to(m)
    return m
