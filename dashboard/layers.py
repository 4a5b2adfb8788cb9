"""Map layer builders: a GeoDataFrame and style options in, a folium layer out.

Pure functions: no database, no Streamlit, no global state. Each checks its input (a
GeoDataFrame in EPSG:4326 with non-empty geometries of the right kind and the named columns)
and raises ``ValueError`` saying what to fix; options left as ``None`` are dropped. Every
builder returns one object (``folium.GeoJson`` or ``folium.FeatureGroup``) carrying ``name``, so
that it can be toggled in a ``folium.LayerControl``.

Only the columns a layer shows (tooltip and popup fields, colour column) are written into the
page, with coordinates rounded to 6 decimals (~0.1 m), to keep the HTML small.

For offline use, call :func:`dashboard.offline.use_local_assets` once at start-up and pass
each map through :func:`dashboard.offline.localize_map`.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import folium
import folium.plugins
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import MacroElement
from folium.template import Template
from folium.utilities import JsCode

from store.crs import WEB_EPSG, metric_epsg_for_bounds

__all__ = [
    "BACKGROUND_COLOR",
    "CATEGORY_COLORS",
    "OTHER_COLOR",
    "base_map",
    "boundary_layer",
    "building_layer",
    "class_layer",
    "count_layer",
    "heat_layer",
    "legend",
    "point_layer",
]

#: Plain light background shown where there is no basemap (``tile_url=None``).
BACKGROUND_COLOR = "#f2efe9"
#: Colours given to the values of ``color_column`` in sorted order when no palette is passed
#: (Tableau 10: distinguishable, readable on the light background).
CATEGORY_COLORS: tuple[str, ...] = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
#: Colour of points whose value is missing or not in the palette, and of uncoloured points.
OTHER_COLOR = "#7f7f7f"

_COLOR = re.compile(
    r"^(#[0-9a-fA-F]{3}|#[0-9a-fA-F]{4}|#[0-9a-fA-F]{6}|#[0-9a-fA-F]{8}|[a-zA-Z]+)$"
)
_POLYGONAL = ("Polygon", "MultiPolygon")
_LEGEND_POSITIONS = ("topleft", "topright", "bottomleft", "bottomright")
_LINEAR = ("LineString", "MultiLineString")


# --------------------------------------------------------------------------------------------
# input checks


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            f"name must be a non-empty string (shown in the layer control), got {name!r}"
        )
    return name


def _check_color(color: object, what: str = "color") -> str:
    if not isinstance(color, str) or not _COLOR.match(color):
        raise ValueError(f"{what} must be a CSS colour such as '#3366cc' or 'red', got {color!r}")
    return color


def _check_positive(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{what} must be a positive number, got {value!r}")
    number = float(value)
    if not number > 0:
        raise ValueError(f"{what} must be a positive number, got {value!r}")
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return number


def _check_frame(gdf: object, *, what: str, geom_types: Sequence[str]) -> gpd.GeoDataFrame:
    """Check that ``gdf`` is a GeoDataFrame in EPSG:4326 with valid, non-empty geometries
    of ``geom_types``."""
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise TypeError(f"{what}: expected a GeoDataFrame, got {type(gdf).__name__}")
    if gdf.crs is None:
        raise ValueError(
            f"{what}: the GeoDataFrame has no CRS. Map layers need EPSG:{WEB_EPSG} "
            "(WGS 84 lon/lat); if the data is CGCS2000 lon/lat, call "
            f"gdf.set_crs(4490).to_crs({WEB_EPSG})"
        )
    if gdf.crs.to_epsg() != WEB_EPSG:
        raise ValueError(
            f"{what}: the GeoDataFrame is in {gdf.crs.to_string()} ({gdf.crs.name}); map layers "
            f"need EPSG:{WEB_EPSG} (WGS 84 lon/lat): call gdf.to_crs({WEB_EPSG}) first"
        )
    geoms = gdf.geometry
    bad = geoms.index[geoms.isna() | geoms.is_empty]
    if len(bad):
        raise ValueError(
            f"{what}: {len(bad)} row(s) have a missing or empty geometry (index "
            f"{_first(bad)}); drop them or fix the source data"
        )
    wrong = geoms.index[~geoms.geom_type.isin(geom_types)]
    if len(wrong):
        found = sorted(set(geoms.loc[wrong].geom_type))
        raise ValueError(
            f"{what}: expected {' or '.join(geom_types)} geometries, found {', '.join(found)} "
            f"(index {_first(wrong)})"
        )
    return gdf


def _check_fields(gdf: gpd.GeoDataFrame, fields: Sequence[str] | None, *, what: str) -> list[str]:
    if fields is None:
        return []
    if isinstance(fields, str):
        raise ValueError(f"{what} must be a list of column names, not the string {fields!r}")
    fields = list(fields)
    missing = [f for f in fields if f not in gdf.columns or f == gdf.geometry.name]
    if missing:
        raise ValueError(
            f"{what}: no column(s) {missing} in the GeoDataFrame; available: "
            f"{[c for c in gdf.columns if c != gdf.geometry.name]}"
        )
    return fields


def _check_aliases(aliases: Sequence[str] | None, fields: list[str], *, what: str) -> list[str]:
    if aliases is None:
        return fields
    aliases = list(aliases)
    if len(aliases) != len(fields):
        raise ValueError(
            f"{what}: {len(aliases)} alias(es) for {len(fields)} field(s); give one per field"
        )
    return [str(a) for a in aliases]


def _first(index: pd.Index, n: int = 5) -> str:
    shown = ", ".join(repr(i) for i in index[:n])
    return shown + (", …" if len(index) > n else "")


# --------------------------------------------------------------------------------------------
# helpers


def _feature_collection(gdf: gpd.GeoDataFrame, columns: Sequence[str]) -> dict[str, Any]:
    """GeoJSON of ``gdf`` with only ``columns`` as properties, coordinates rounded to 1e-6°.

    Timestamps and other non-JSON values become strings; missing values become ``null``.
    """
    geometry = shapely.transform(gdf.geometry.array, lambda xy: np.round(xy, 6))
    cols = list(dict.fromkeys(columns))
    frame = gpd.GeoDataFrame(gdf[cols].copy(), geometry=geometry, crs=gdf.crs)
    return json.loads(frame.to_json(drop_id=True, default=str))


class _CanvasRenderer(MacroElement):
    """One shared ``L.canvas()`` renderer for the circle markers of a layer.

    Leaflet draws vector layers as SVG unless told otherwise; thousands of SVG circles are
    slow. ``preferCanvas`` on the map would also turn the polygons into canvas drawings, so
    points get their own renderer instead. ``pane``: the Leaflet pane it draws in (None: the
    overlay pane, where SVG polygons drawn later may cover it; ``"markerPane"`` keeps it on
    top of every polygon).
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = L.canvas({padding: 0.5
                {%- if this.pane %}, pane: {{ this.pane|tojson }}{% endif %}});
        {% endmacro %}
        """
    )

    def __init__(self, pane: str | None = None) -> None:
        super().__init__()
        self._name = "CanvasRenderer"
        self.pane = pane


class _MapBackground(MacroElement):
    """CSS giving the map a plain background colour where no tiles are drawn."""

    _template = Template(
        """
        {% macro header(this, kwargs) %}
            <style>#{{ this._parent.get_name() }} { background: {{ this.color }}; }</style>
        {% endmacro %}
        """
    )

    def __init__(self, color: str) -> None:
        super().__init__()
        self._name = "MapBackground"
        self.color = color


def _canvas_circle(renderer: _CanvasRenderer, radius: float) -> folium.CircleMarker:
    """Template circle for ``GeoJson(marker=…)`` drawn by ``renderer``.

    ``folium.CircleMarker`` drops options it does not know, so ``renderer`` is set afterwards.
    """
    circle = folium.CircleMarker(radius=radius, fill=True)
    # folium's option type leaves out JsCode, which its `tojavascript` filter writes verbatim
    circle.options["renderer"] = JsCode(renderer.get_name())  # type: ignore[assignment]
    return circle


def _category_colors(
    values: pd.Series, palette: Mapping[Any, str] | None, *, column: str
) -> tuple[list[str], list[int]]:
    """Colour table and, per row, the index into it (0 is :data:`OTHER_COLOR`)."""
    if palette is None:
        categories = sorted(values.dropna().unique().tolist(), key=str)
        if len(categories) > len(CATEGORY_COLORS):
            raise ValueError(
                f"color_column {column!r} has {len(categories)} distinct values, more than the "
                f"{len(CATEGORY_COLORS)} default colours; pass palette={{value: colour}} "
                "(values left out are drawn grey)"
            )
        palette = dict(zip(categories, CATEGORY_COLORS, strict=False))
    elif not isinstance(palette, Mapping):
        raise ValueError("palette must be a mapping {value: colour}")
    for value, colour in palette.items():
        _check_color(colour, f"palette colour for {value!r}")
    table = [OTHER_COLOR, *palette.values()]
    position = {value: i + 1 for i, value in enumerate(palette)}
    codes = [position.get(v, 0) if not _isna(v) else 0 for v in values.tolist()]
    return table, codes


def _isna(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------------------------
# builders


def base_map(
    bounds: Sequence[float],
    *,
    tile_url: str | None = None,
    attribution: str = "",
    max_zoom: int = 18,
    padding_bottom_right: tuple[int, int] | None = None,
    view: tuple[float, float, float] | None = None,
) -> folium.Map:
    """An empty map fitted to ``bounds``, with or without a basemap.

    Parameters
    ----------
    bounds
        ``(min_lon, min_lat, max_lon, max_lat)`` in EPSG:4326, e.g. ``gdf.total_bounds``.
    tile_url
        Tile URL template with ``{z}/{x}/{y}`` (an intranet server, Tianditu with its key).
        ``None``: no basemap, a plain :data:`BACKGROUND_COLOR` background (works offline).
    attribution
        Attribution shown for the tiles; when empty, the tile server's host name is shown.
    max_zoom
        Highest zoom level. Always set on the map itself: with no tile layer Leaflet otherwise
        has no maximum zoom, and marker clusters fail silently.
    padding_bottom_right
        ``(x, y)`` pixels kept clear at the right and bottom when fitting ``bounds``, e.g.
        room for a legend in the bottom-right corner so that it does not cover the data.
    view
        ``(lat, lon, zoom)`` to open at instead of fitting ``bounds`` (a shared link's view).

    Returns
    -------
    folium.Map
        With a scale bar; layers are added with ``layer.add_to(m)``.
    """
    try:
        min_lon, min_lat, max_lon, max_lat = (float(v) for v in bounds)
    except (TypeError, ValueError):
        raise ValueError(
            f"bounds must be four numbers (min_lon, min_lat, max_lon, max_lat), got {bounds!r}"
        ) from None
    if not all(math.isfinite(v) for v in (min_lon, min_lat, max_lon, max_lat)):
        raise ValueError(f"bounds must be finite numbers, got {bounds!r} (is the layer empty?)")
    if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
        raise ValueError(
            f"bounds {bounds!r} are not (min_lon, min_lat, max_lon, max_lat) in degrees: check "
            "the order (lon before lat, min before max) and that the data is in EPSG:4326"
        )
    if isinstance(max_zoom, bool) or not isinstance(max_zoom, int) or not 1 <= max_zoom <= 22:
        raise ValueError(f"max_zoom must be an integer from 1 to 22, got {max_zoom!r}")

    m = folium.Map(
        location=[(min_lat + max_lat) / 2, (min_lon + max_lon) / 2],
        tiles=None,
        zoom_start=12,
        control_scale=True,
        max_zoom=max_zoom,  # only reaches a tile layer folium builds itself, hence:
    )
    m.options["max_zoom"] = max_zoom
    m.options["zoom_snap"] = 0.25  # fit a street snugly rather than at the next whole zoom
    m.add_child(_MapBackground(BACKGROUND_COLOR))
    if tile_url is not None:
        if not isinstance(tile_url, str) or not all(k in tile_url for k in ("{z}", "{x}", "{y}")):
            raise ValueError(
                "tile_url must be a URL template containing {z}, {x} and {y}, "
                f"got {tile_url!r}"
            )
        folium.TileLayer(
            tiles=tile_url,
            attr=attribution or urlsplit(tile_url).netloc or "basemap",
            name="底图 basemap",
            max_zoom=max_zoom,
            control=False,
        ).add_to(m)
    if padding_bottom_right is not None:
        try:
            px, py = (int(v) for v in padding_bottom_right)
        except (TypeError, ValueError):
            raise ValueError(
                f"padding_bottom_right must be two whole pixel counts (x, y), got "
                f"{padding_bottom_right!r}"
            ) from None
        if px < 0 or py < 0:
            raise ValueError(f"padding_bottom_right must not be negative, got {(px, py)!r}")
        padding_bottom_right = (px, py)
    if view is not None:
        try:
            lat, lon, zoom = (float(v) for v in view)
        except (TypeError, ValueError):
            raise ValueError(f"view must be three numbers (lat, lon, zoom), got {view!r}") from None
        if not (-90 <= lat <= 90 and -180 <= lon <= 180 and 0 <= zoom <= max_zoom):
            raise ValueError(
                f"view {view!r} is not (lat, lon, zoom) in degrees with a zoom from 0 to "
                f"{max_zoom}: check the order (lat before lon)"
            )
        m.location = [lat, lon]
        m.options["zoom"] = zoom
        return m
    m.fit_bounds(
        [[min_lat, min_lon], [max_lat, max_lon]], padding_bottom_right=padding_bottom_right
    )
    return m


def boundary_layer(
    gdf: gpd.GeoDataFrame,
    *,
    name: str,
    color: str,
    weight: float = 2,
    fill_opacity: float = 0.05,
    tooltip_fields: Sequence[str] | None = None,
    tooltip_aliases: Sequence[str] | None = None,
    simplify_m: float | None = None,
    show: bool = True,
) -> folium.GeoJson:
    """Outlines of streets, communities or grids, with an optional hover tooltip.

    Parameters
    ----------
    gdf
        Polygons or multipolygons (lines are accepted too) in EPSG:4326.
    name
        Layer name in the layer control.
    color
        Outline colour (CSS); the fill is the same colour at ``fill_opacity``.
    weight
        Outline width in pixels.
    fill_opacity
        0 to 1. At 0 the shapes are outlines only: hovering their interior reaches the
        layers underneath (e.g. grid tooltips below street outlines).
    tooltip_fields, tooltip_aliases
        Columns shown on hover and their labels (e.g. ``["grid_name"]``, ``["网格"]``).
    simplify_m
        Simplify each geometry to this tolerance in metres (in the local Gauss-Krüger zone)
        to shrink the page. Each shape is simplified on its own, so neighbours may show
        hairline gaps at a few metres; leave ``None`` for exact outlines.
    show
        Whether the layer is on when the map opens.

    Returns
    -------
    folium.GeoJson

    Raises
    ------
    ValueError
        Wrong CRS (the message names it), missing/empty or non-polygonal geometries, unknown
        columns, bad style values.
    """
    what = f"boundary_layer({name!r})"
    name = _check_name(name)
    gdf = _check_frame(gdf, what=what, geom_types=_POLYGONAL + _LINEAR)
    color = _check_color(color)
    weight = _check_positive(weight, "weight")
    if not 0 <= fill_opacity <= 1:
        raise ValueError(f"fill_opacity must be between 0 and 1, got {fill_opacity!r}")
    fields = _check_fields(gdf, tooltip_fields, what=f"{what} tooltip_fields")
    aliases = _check_aliases(tooltip_aliases, fields, what=f"{what} tooltip_aliases")

    if simplify_m is not None and len(gdf):
        tolerance = _check_positive(simplify_m, "simplify_m")
        metric = gdf.to_crs(metric_epsg_for_bounds(tuple(gdf.total_bounds)))
        gdf = metric.set_geometry(metric.simplify(tolerance, preserve_topology=True)).to_crs(
            WEB_EPSG
        )

    # fill_opacity 0 means outline only: no fill at all, so that the (transparent) interior of a
    # street does not catch the mouse and hide the tooltips of the grids underneath.
    filled = fill_opacity > 0
    style = {
        "color": color,
        "weight": weight,
        "fill": filled,
        "fillColor": color,
        "fillOpacity": fill_opacity,
    }
    highlight = {**style, "weight": weight + 2}
    if filled:
        highlight["fillOpacity"] = min(1.0, fill_opacity + 0.25)
    tooltip = folium.GeoJsonTooltip(fields=fields, aliases=aliases, sticky=True) if fields else None
    return folium.GeoJson(
        _feature_collection(gdf, fields),
        name=name,
        style_function=lambda _feature: style,
        highlight_function=lambda _feature: highlight,
        tooltip=tooltip,
        zoom_on_click=False,
        show=show,
    )


def point_layer(
    gdf: gpd.GeoDataFrame,
    *,
    name: str,
    color_column: str | None = None,
    palette: Mapping[Any, str] | None = None,
    cluster: bool = False,
    cluster_until_zoom: int | None = None,
    radius: float = 4,
    popup_fields: Sequence[str] | None = None,
    popup_aliases: Sequence[str] | None = None,
    show: bool = True,
) -> folium.FeatureGroup:
    """Points (incidents, residents, facilities) coloured by a category, drawn on a canvas or
    clustered.

    Parameters
    ----------
    gdf
        Point geometries in EPSG:4326.
    name
        Layer name in the layer control.
    color_column
        Column whose values pick the colour. ``None``: all points :data:`OTHER_COLOR`.
    palette
        ``{value: colour}``; values not in it (and missing values) are drawn in
        :data:`OTHER_COLOR`. ``None``: the sorted distinct values get :data:`CATEGORY_COLORS`
        (at most 10 values).
    cluster
        ``False``: one canvas circle per point (fine up to ~10k points).
        ``True``: a ``FastMarkerCluster``, built in the browser from a compact array (for
        10k–100k points); each point is a small coloured dot once zoomed in.
    cluster_until_zoom
        With ``cluster``: from this zoom on, every point is drawn on its own (no clusters);
        ``None``: clusters at every zoom (spiderfied at the highest).
    radius
        Radius of a point in pixels.
    popup_fields, popup_aliases
        Columns shown when a point is clicked, and their labels.
    show
        Whether the layer is on when the map opens.

    Returns
    -------
    folium.FeatureGroup
        Toggle it in a ``LayerControl`` as one layer.
    """
    what = f"point_layer({name!r})"
    name = _check_name(name)
    gdf = _check_frame(gdf, what=what, geom_types=("Point",))
    radius = _check_positive(radius, "radius")
    fields = _check_fields(gdf, popup_fields, what=f"{what} popup_fields")
    aliases = _check_aliases(popup_aliases, fields, what=f"{what} popup_aliases")
    if color_column is not None:
        _check_fields(gdf, [color_column], what=f"{what} color_column")
        colors, codes = _category_colors(gdf[color_column], palette, column=color_column)
    else:
        if palette is not None:
            raise ValueError(f"{what}: palette given without color_column")
        colors, codes = [OTHER_COLOR], [0] * len(gdf)

    group = folium.FeatureGroup(name=name, show=show)
    if cluster:
        layer = _cluster_points(gdf, colors, codes, radius, fields, aliases)
        if cluster_until_zoom is not None:
            if isinstance(cluster_until_zoom, bool) or not isinstance(cluster_until_zoom, int):
                raise ValueError(
                    f"cluster_until_zoom must be a whole zoom level, got {cluster_until_zoom!r}"
                )
            layer.options["disable_clustering_at_zoom"] = cluster_until_zoom
        layer.add_to(group)
        return group
    if cluster_until_zoom is not None:
        raise ValueError(f"{what}: cluster_until_zoom given without cluster=True")

    renderer = _CanvasRenderer()
    renderer.add_to(group)
    data = gdf.assign(__color=[colors[c] for c in codes])
    styled = folium.GeoJson(
        _feature_collection(data, ["__color", *fields]),
        marker=_canvas_circle(renderer, radius),
        style_function=lambda f: {
            "color": "#ffffff",
            "weight": 1,
            "fillColor": f["properties"]["__color"],
            "fillOpacity": 0.9,
        },
        popup=folium.GeoJsonPopup(fields=fields, aliases=aliases) if fields else None,
        control=False,
        zoom_on_click=False,
    )
    styled.add_to(group)
    return group


_CLUSTER_CALLBACK = """
function (row) {
    var colors = %s;
    var dot = document.createElement("span");
    dot.style.cssText = "display:block;width:100%%;height:100%%;border-radius:50%%;"
        + "border:1px solid #fff;box-sizing:border-box;";
    dot.style.background = colors[row[2]];
    var icon = L.divIcon({html: dot, className: "gridone-dot", iconSize: [%d, %d]});
    var marker = L.marker(new L.LatLng(row[0], row[1]), {icon: icon});
    if (row.length > 3) {
        var labels = %s;
        var table = document.createElement("table");
        for (var i = 3; i < row.length; i++) {
            var tr = table.insertRow();
            var th = document.createElement("th");
            th.textContent = labels[i - 3];
            tr.appendChild(th);
            tr.insertCell().textContent = row[i] === null ? "" : String(row[i]);
        }
        marker.bindPopup(table);
    }
    return marker;
}
"""


def _cluster_points(
    gdf: gpd.GeoDataFrame,
    colors: list[str],
    codes: list[int],
    radius: float,
    fields: list[str],
    aliases: list[str],
) -> folium.plugins.FastMarkerCluster:
    """FastMarkerCluster whose rows are ``[lat, lon, colour index, popup values…]``; the
    callback builds the dot and popup with DOM calls (values never parsed as HTML)."""
    lat = np.round(gdf.geometry.y.to_numpy(), 6).tolist()
    lon = np.round(gdf.geometry.x.to_numpy(), 6).tolist()
    extra = (
        json.loads(gdf[fields].to_json(orient="values", date_format="iso", default_handler=str))
        if fields
        else []
    )
    rows = [
        [y, x, c, *(extra[i] if fields else [])]
        for i, (y, x, c) in enumerate(zip(lat, lon, codes, strict=True))
    ]
    size = round(2 * radius)
    callback = _CLUSTER_CALLBACK % (json.dumps(colors), size, size, json.dumps(aliases))
    return folium.plugins.FastMarkerCluster(rows, callback=callback, control=False)


def building_layer(
    gdf: gpd.GeoDataFrame,
    *,
    name: str,
    color: str = "#8c6d46",
    tooltip_fields: Sequence[str] | None = None,
    tooltip_aliases: Sequence[str] | None = None,
    point_radius: float = 3,
    show: bool = True,
) -> folium.FeatureGroup:
    """Buildings: footprint polygons where known, a small dot where only a point is known.

    Parameters
    ----------
    gdf
        Polygon/MultiPolygon footprints and/or Point locations, in EPSG:4326.
    name
        Layer name in the layer control.
    color
        Outline and fill colour of footprints and dots.
    tooltip_fields, tooltip_aliases
        Columns shown on hover (building number, address) and their labels.
    point_radius
        Radius in pixels of buildings that have only a point.
    show
        Whether the layer is on when the map opens.

    Returns
    -------
    folium.FeatureGroup
        Holding up to two ``GeoJson`` children (footprints, then points).
    """
    what = f"building_layer({name!r})"
    name = _check_name(name)
    gdf = _check_frame(gdf, what=what, geom_types=(*_POLYGONAL, "Point"))
    color = _check_color(color)
    point_radius = _check_positive(point_radius, "point_radius")
    fields = _check_fields(gdf, tooltip_fields, what=f"{what} tooltip_fields")
    aliases = _check_aliases(tooltip_aliases, fields, what=f"{what} tooltip_aliases")

    group = folium.FeatureGroup(name=name, show=show)
    is_point = (gdf.geom_type == "Point").to_numpy()
    style = {"color": color, "weight": 1, "fillColor": color, "fillOpacity": 0.45}

    def tooltip() -> folium.GeoJsonTooltip | None:
        return folium.GeoJsonTooltip(fields=fields, aliases=aliases) if fields else None

    if (~is_point).any():
        folium.GeoJson(
            _feature_collection(gdf[~is_point], fields),
            style_function=lambda _f: style,
            tooltip=tooltip(),
            control=False,
            zoom_on_click=False,
        ).add_to(group)
    if is_point.any():
        renderer = _CanvasRenderer()
        renderer.add_to(group)
        folium.GeoJson(
            _feature_collection(gdf[is_point], fields),
            marker=_canvas_circle(renderer, point_radius),
            style_function=lambda _f: {**style, "fillOpacity": 0.8},
            tooltip=tooltip(),
            control=False,
            zoom_on_click=False,
        ).add_to(group)
    return group


def heat_layer(
    gdf: gpd.GeoDataFrame,
    *,
    name: str,
    weight_column: str | None = None,
    radius: float = 15,
    blur: float = 12,
    max_zoom: int = 18,
    show: bool = True,
) -> folium.plugins.HeatMap:
    """Heat map of point density (optionally weighted), e.g. incidents.

    Parameters
    ----------
    gdf
        Point geometries in EPSG:4326.
    name
        Layer name in the layer control.
    weight_column
        Non-negative numeric column weighting each point; ``None``: every point counts 1.
    radius, blur
        Radius and blur of each point in pixels.
    max_zoom
        Zoom at which points reach full intensity; use the map's ``max_zoom``.
    show
        Whether the layer is on when the map opens.

    Returns
    -------
    folium.plugins.HeatMap
    """
    what = f"heat_layer({name!r})"
    name = _check_name(name)
    gdf = _check_frame(gdf, what=what, geom_types=("Point",))
    radius = _check_positive(radius, "radius")
    blur = _check_positive(blur, "blur")
    lat = np.round(gdf.geometry.y.to_numpy(), 6)
    lon = np.round(gdf.geometry.x.to_numpy(), 6)
    if weight_column is None:
        data = np.column_stack([lat, lon]).tolist()
    else:
        _check_fields(gdf, [weight_column], what=f"{what} weight_column")
        weights = pd.to_numeric(gdf[weight_column], errors="coerce").to_numpy(dtype=float)
        if np.isnan(weights).any() or (weights < 0).any():
            raise ValueError(
                f"{what}: weight_column {weight_column!r} must hold non-negative numbers "
                "without gaps"
            )
        data = np.column_stack([lat, lon, weights]).tolist()
    return folium.plugins.HeatMap(
        data, name=name, radius=radius, blur=blur, max_zoom=max_zoom, show=show
    )


def class_layer(
    gdf: gpd.GeoDataFrame,
    *,
    name: str,
    column: str,
    colors: Mapping[Any, str],
    other_color: str = OTHER_COLOR,
    fill_opacity: float = 0.7,
    line_color: str = "#ffffff",
    weight: float = 0.5,
    tooltip_fields: Sequence[str] | None = None,
    tooltip_aliases: Sequence[str] | None = None,
    show: bool = True,
) -> folium.GeoJson:
    """Polygons (grids, hexagons) filled by the class in ``column``: hot-spot bins, emerging
    patterns, density classes.

    Parameters
    ----------
    gdf
        Polygons or multipolygons in EPSG:4326.
    name
        Layer name in the layer control.
    column
        Column holding each polygon's class (e.g. ``bin`` −3…3 or ``pattern``).
    colors
        ``{class: colour}``. Classes not in it, and missing values, get ``other_color``:
        every polygon is drawn, none silently left out.
    other_color
        Fill of polygons whose class has no colour.
    fill_opacity
        0 to 1, the same for every class (a lighter "not significant" class is a lighter
        colour, not a more transparent one, so that the legend's swatches match the map).
    line_color, weight
        Outline colour and width in pixels (thin white by default: neighbours of one class
        read as one area, and hexagons stay distinct).
    tooltip_fields, tooltip_aliases
        Columns shown on hover and their labels (e.g. name, count, class label).
    show
        Whether the layer is on when the map opens.

    Returns
    -------
    folium.GeoJson
        Each feature carries only ``__color`` and the tooltip fields.

    Raises
    ------
    ValueError
        Wrong CRS, missing/empty or non-polygonal geometries, unknown columns, a palette that
        is not a mapping of CSS colours, bad style values.
    """
    what = f"class_layer({name!r})"
    name = _check_name(name)
    gdf = _check_frame(gdf, what=what, geom_types=_POLYGONAL)
    _check_fields(gdf, [column], what=f"{what} column")
    if not isinstance(colors, Mapping) or not colors:
        raise ValueError(f"{what}: colors must be a non-empty mapping {{class: colour}}")
    for value, colour in colors.items():
        _check_color(colour, f"colour of class {value!r}")
    other_color = _check_color(other_color, "other_color")
    line_color = _check_color(line_color, "line_color")
    weight = _check_positive(weight, "weight")
    if not 0 <= fill_opacity <= 1:
        raise ValueError(f"fill_opacity must be between 0 and 1, got {fill_opacity!r}")
    fields = _check_fields(gdf, tooltip_fields, what=f"{what} tooltip_fields")
    aliases = _check_aliases(tooltip_aliases, fields, what=f"{what} tooltip_aliases")

    fills = [other_color if _isna(v) else colors.get(v, other_color) for v in gdf[column].tolist()]
    data = gdf.assign(__color=fills)
    style = {"color": line_color, "weight": weight, "fillOpacity": fill_opacity}
    tooltip = folium.GeoJsonTooltip(fields=fields, aliases=aliases, sticky=True) if fields else None
    return folium.GeoJson(
        _feature_collection(data, ["__color", *fields]),
        name=name,
        style_function=lambda f: {**style, "fillColor": f["properties"]["__color"]},
        highlight_function=lambda _f: {
            "weight": weight + 2,
            "fillOpacity": min(1.0, fill_opacity + 0.2),
        },
        tooltip=tooltip,
        zoom_on_click=False,
        show=show,
    )


class Legend(MacroElement):
    """A Leaflet control listing colour swatches and their labels.

    Built with DOM calls from JSON data: titles and labels are shown as text, never parsed as
    HTML. Add it to the map itself (``legend.add_to(m)``), not to a feature group.
    """

    _template = Template(
        """
        {% macro header(this, kwargs) %}
            <style>
            .gridone-legend { background: rgba(255, 255, 255, 0.92); padding: 6px 8px;
                border-radius: 4px; box-shadow: 0 1px 4px rgba(0, 0, 0, 0.3);
                font: 12px/1.45 sans-serif; color: #222; max-height: 60vh; overflow-y: auto; }
            .gridone-legend-title { font-weight: 600; margin-bottom: 3px; }
            .gridone-legend-row { display: flex; align-items: center; white-space: nowrap; }
            .gridone-legend-swatch { display: inline-block; width: 14px; height: 14px;
                margin-right: 6px; border: 1px solid rgba(0, 0, 0, 0.25); flex: none; }
            </style>
        {% endmacro %}
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = L.control({position: {{ this.position|tojson }}});
            {{ this.get_name() }}.onAdd = function () {
                var data = {{ this.data|tojson }};
                var div = L.DomUtil.create("div", "gridone-legend");
                if (data.title) {
                    var title = L.DomUtil.create("div", "gridone-legend-title", div);
                    title.textContent = data.title;
                }
                data.entries.forEach(function (entry) {
                    var row = L.DomUtil.create("div", "gridone-legend-row", div);
                    var swatch = L.DomUtil.create("span", "gridone-legend-swatch", row);
                    swatch.style.background = entry[0];
                    row.appendChild(document.createTextNode(entry[1]));
                });
                L.DomEvent.disableClickPropagation(div);
                L.DomEvent.disableScrollPropagation(div);
                return div;
            };
            {{ this.get_name() }}.addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, title: str, entries: list[tuple[str, str]], position: str) -> None:
        super().__init__()
        self._name = "Legend"
        self.data = {"title": title, "entries": [list(e) for e in entries]}
        self.position = position

    def render(self, **kwargs: Any) -> Any:
        """Render; refuses a parent other than a map (a control cannot sit in a layer)."""
        if not isinstance(self._parent, folium.Map):
            raise ValueError("add the legend to the folium.Map itself, not to a layer or group")
        return super().render(**kwargs)


def legend(
    title: str,
    entries: Sequence[tuple[str, str]],
    *,
    position: str = "bottomright",
) -> Legend:
    """A map legend: one swatch per ``(colour, label)`` entry, under ``title``.

    Parameters
    ----------
    title
        Heading of the legend (may be empty).
    entries
        ``(CSS colour, label)`` pairs, in the order shown; at least one.
    position
        Corner of the map: ``"topleft"``, ``"topright"``, ``"bottomleft"`` or
        ``"bottomright"`` (the default: clear of the layer control and the scale bar).

    Returns
    -------
    Legend
        Add it to the map with ``legend(...).add_to(m)``.
    """
    if not isinstance(title, str):
        raise ValueError(f"title must be a string, got {title!r}")
    if position not in _LEGEND_POSITIONS:
        raise ValueError(f"position must be one of {_LEGEND_POSITIONS}, got {position!r}")
    if isinstance(entries, str | bytes) or not isinstance(entries, Sequence) or not entries:
        raise ValueError("entries must be a non-empty list of (colour, label) pairs")
    checked = []
    for entry in entries:
        if not isinstance(entry, Sequence) or isinstance(entry, str) or len(entry) != 2:
            raise ValueError(f"each legend entry must be a (colour, label) pair, got {entry!r}")
        colour, label = entry
        checked.append((_check_color(colour, "legend colour"), str(label)))
    return Legend(title, checked, position)


def count_layer(
    gdf: gpd.GeoDataFrame,
    *,
    name: str,
    count_column: str,
    color_column: str,
    palette: Mapping[Any, str],
    max_radius: float = 16,
    tooltip_fields: Sequence[str] | None = None,
    tooltip_aliases: Sequence[str] | None = None,
    show: bool = True,
) -> folium.FeatureGroup:
    """Counts at points (incidents per grid) as canvas circles whose area grows with the
    count (the largest ``max_radius`` pixels), coloured by ``color_column`` through
    ``palette``: what a map shows instead of points too many to send one by one.

    Raises
    ------
    ValueError
        Wrong CRS, non-point geometries, unknown columns, counts that are not non-negative
        numbers.
    """
    what = f"count_layer({name!r})"
    name = _check_name(name)
    gdf = _check_frame(gdf, what=what, geom_types=("Point",))
    max_radius = _check_positive(max_radius, "max_radius")
    _check_fields(gdf, [count_column, color_column], what=what)
    fields = _check_fields(gdf, tooltip_fields, what=f"{what} tooltip_fields")
    aliases = _check_aliases(tooltip_aliases, fields, what=f"{what} tooltip_aliases")
    counts = pd.to_numeric(gdf[count_column], errors="coerce").to_numpy(dtype=float)
    if len(counts) and (~np.isfinite(counts) | (counts < 0)).any():
        raise ValueError(f"{what}: {count_column!r} must hold non-negative numbers")
    colors, codes = _category_colors(gdf[color_column], palette, column=color_column)
    top = counts.max() if len(counts) and counts.max() > 0 else 1.0
    # whole pixels: few distinct styles, so the page holds few style objects
    radius = np.round(3 + (max_radius - 3) * np.sqrt(counts / top))
    data = gdf.assign(__color=[colors[c] for c in codes], __radius=radius)
    group = folium.FeatureGroup(name=name, show=show)
    renderer = _CanvasRenderer(pane="markerPane")  # over the polygons, like markers
    renderer.add_to(group)
    folium.GeoJson(
        _feature_collection(data, ["__color", "__radius", *fields]),
        marker=_canvas_circle(renderer, 3),
        style_function=lambda f: {
            "color": "#ffffff",
            "weight": 1,
            "fillColor": f["properties"]["__color"],
            "fillOpacity": 0.75,
            "radius": f["properties"]["__radius"],
        },
        tooltip=folium.GeoJsonTooltip(fields=fields, aliases=aliases) if fields else None,
        control=False,
        zoom_on_click=False,
    ).add_to(group)
    return group
