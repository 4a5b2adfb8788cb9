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
from folium.elements import JSCSSMixin
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
    "fill_update",
    "fillable_layer",
    "heat_layer",
    "legend",
    "legend_layer",
    "legend_styles",
    "plugin_assets",
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
    # one C call writes every geometry and one parse reads them back: ~10x faster than
    # GeoDataFrame.to_json, which builds each feature in Python (a tenth of a second per
    # thousand features, paid again at each filter change)
    shapes = json.loads("[" + ",".join(shapely.to_geojson(geometry).tolist()) + "]")
    cols = list(dict.fromkeys(columns))
    values = [[_json_value(v) for v in gdf[c].astype(object).tolist()] for c in cols]
    rows = zip(*values, strict=True) if cols else ((),) * len(shapes)
    return {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "properties": dict(zip(cols, row, strict=True)), "geometry": g}
            for row, g in zip(rows, shapes, strict=True)
        ],
    }


def _json_value(value: object) -> object:
    """A property value as ``GeoDataFrame.to_json(default=str)`` writes it: missing values
    ``None``, numbers and text as they are, anything else (timestamps, dates) as text."""
    if value is None or _isna(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


class _CanvasRenderer(MacroElement):
    """One shared ``L.canvas()`` renderer for the circle markers of a layer.

    Leaflet draws vector layers as SVG unless told otherwise; thousands of SVG circles are
    slow. ``preferCanvas`` on the map would also turn the polygons into canvas drawings, so
    points get their own renderer instead. ``pane``: the Leaflet pane it draws in (None: the
    overlay pane, where SVG polygons drawn later may cover it; ``"markerPane"`` keeps it on
    top of every polygon).

    The renderer is a layer of the group holding it (every builder here puts it in one): a
    group removed from the map takes its canvas with it, instead of leaving an empty
    map-sized canvas behind each time the group is replaced.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = L.canvas({padding: 0.5
                {%- if this.pane %}, pane: {{ this.pane|tojson }}{% endif %}});
            {{ this.get_name() }}.addTo({{ this._parent.get_name() }});
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
    pane: str | None = None,
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
    pane
        Leaflet pane to draw in (e.g. one made with ``folium.map.CustomPane`` below the
        overlay pane); None: the overlay pane.

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

    if pane is not None:
        _check_name(pane)

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
        **({} if pane is None else {"pane": pane}),
    )


class PluginAssets(JSCSSMixin, MacroElement):
    """Links the JavaScript and CSS of plugin classes into the map (nothing drawn): for
    layers of those plugins sent after the map is drawn (streamlit-folium loads a map's files
    only when it first draws it). The links are the classes' as they are when it is made,
    i.e. local after :func:`dashboard.offline.use_local_assets`."""

    _template = Template("")

    def __init__(self, *classes: type[JSCSSMixin]) -> None:
        super().__init__()
        self._name = "PluginAssets"
        # instance attributes: the class declares none, so offline.use_local_assets (which
        # rewrites class attributes) leaves it alone and the links are read from ``classes``
        self.default_js = [link for cls in classes for link in cls.default_js]
        self.default_css = [link for cls in classes for link in cls.default_css]


def plugin_assets(*classes: type[JSCSSMixin]) -> PluginAssets:
    """:class:`PluginAssets` of ``classes`` (e.g. ``folium.plugins.MarkerCluster``): add
    it to the map."""
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, JSCSSMixin)):
            raise ValueError(f"plugin_assets takes folium plugin classes, got {cls!r}")
    return PluginAssets(*classes)


class _Fillable(MacroElement):
    """Makes its parent ``GeoJson`` fillable later (:class:`FillUpdate`): styles, hover
    highlight and a text-only tooltip that read the current fill, and the function that sets
    it, registered as ``window.gridoneFill[target]``."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function (layer) {
            var base = {{ this.base|tojson }};
            var key = {{ this.key|tojson }};
            var fields = {{ this.fields|tojson }}, aliases = {{ this.aliases|tojson }};
            var fill = null;
            function style(feature) {
                if (!fill) return base;
                var hit = fill.by[feature.properties[key]];
                return {color: base.color, weight: base.weight, fill: true,
                    fillColor: (hit && fill.colors[hit[0]]) || fill.other,
                    fillOpacity: fill.opacity};
            }
            layer.options.style = style;
            layer.eachLayer(function (part) {
                part.on("mouseover", function () {
                    var s = style(part.feature);
                    part.setStyle({weight: s.weight + 2,
                        fillOpacity: Math.min(1, s.fillOpacity + 0.25)});
                });
                part.on("mouseout", function () { layer.resetStyle(part); });
            });
            function row(table, name, value) {
                var tr = table.insertRow();
                var th = document.createElement("th");
                th.textContent = name;
                tr.appendChild(th);
                tr.insertCell().textContent = value === null || value === undefined
                    ? "" : String(value);
            }
            if (fields.length) {
                layer.bindTooltip(function (part) {
                    var table = document.createElement("table");
                    var props = part.feature.properties;
                    fields.forEach(function (f, i) { row(table, aliases[i], props[f]); });
                    if (fill && fill.alias) {
                        var hit = fill.by[props[key]];
                        row(table, fill.alias, hit ? hit[1] : "");
                    }
                    return table;
                }, {sticky: true, className: "foliumtooltip"});
            }
            window.gridoneFill = window.gridoneFill || {};
            window.gridoneFill[{{ this.target|tojson }}] = function (next) {
                fill = next;
                layer.setStyle(style);
            };
            layer.setStyle(style);
        })({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(
        self,
        target: str,
        key: str,
        base: dict[str, Any],
        fields: list[str],
        aliases: list[str],
    ) -> None:
        super().__init__()
        self._name = "Fillable"
        self.target = target
        self.key = key
        self.base = base
        self.fields = fields
        self.aliases = aliases


def fillable_layer(
    gdf: gpd.GeoDataFrame,
    *,
    name: str,
    target: str,
    key_column: str,
    color: str,
    weight: float = 1,
    fill_opacity: float = 0.02,
    tooltip_fields: Sequence[str] | None = None,
    tooltip_aliases: Sequence[str] | None = None,
) -> folium.GeoJson:
    """Outlines (grids) whose fill a later script sets without sending the polygons again:
    :func:`fill_update` with the same ``target`` colours each polygon by its
    ``key_column`` value, and adds a line with the value to its tooltip. Until then (and
    after ``fill_update(target, None)``) they are drawn like :func:`boundary_layer`'s.

    What a map showing the same outlines under changing colours needs: the outlines are
    sent once (megabytes at district scale), each colouring as a small key → class table.

    Parameters
    ----------
    target
        Name the fill is set by (one per map).
    key_column
        Column identifying each polygon (e.g. the grid code); written into the page.
    color, weight, fill_opacity
        Outline colour and width; the unfilled polygons' fill is ``color`` at
        ``fill_opacity`` (above 0, so that they catch clicks and hovers).
    tooltip_fields, tooltip_aliases
        Columns shown on hover and their labels (as text, never parsed as HTML).

    Raises
    ------
    ValueError
        As :func:`boundary_layer`, and when ``key_column`` is missing or not unique.
    """
    what = f"fillable_layer({name!r})"
    name = _check_name(name)
    target = _check_name(target)
    gdf = _check_frame(gdf, what=what, geom_types=_POLYGONAL)
    (key_column,) = _check_fields(gdf, [key_column], what=f"{what} key_column")
    if gdf[key_column].isna().any() or gdf[key_column].duplicated().any():
        raise ValueError(f"{what}: key_column {key_column!r} must hold unique, non-missing values")
    color = _check_color(color)
    weight = _check_positive(weight, "weight")
    if not 0 < fill_opacity <= 1:
        raise ValueError(f"fill_opacity must be above 0 and at most 1, got {fill_opacity!r}")
    fields = _check_fields(gdf, tooltip_fields, what=f"{what} tooltip_fields")
    aliases = _check_aliases(tooltip_aliases, fields, what=f"{what} tooltip_aliases")
    base = {
        "color": color,
        "weight": weight,
        "fill": True,
        "fillColor": color,
        "fillOpacity": fill_opacity,
    }
    layer = folium.GeoJson(
        _feature_collection(
            gdf.assign(**{key_column: gdf[key_column].astype(str)}), [key_column, *fields]
        ),
        name=name,
        zoom_on_click=False,
    )
    _Fillable(target, key_column, base, fields, aliases).add_to(layer)
    return layer


class FillUpdate(MacroElement):
    """Sets the fill of a :func:`fillable_layer` when its script runs (see
    :func:`fill_update`)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            (window.gridoneFill && window.gridoneFill[{{ this.target|tojson }}]
                || function () {})({{ this.fill|tojson }});
        {% endmacro %}
        """
    )

    def __init__(self, target: str, fill: dict[str, Any] | None) -> None:
        super().__init__()
        self._name = "FillUpdate"
        self.target = target
        self.fill = fill


def fill_update(
    target: str,
    fills: Mapping[Any, str] | None,
    *,
    values: Mapping[Any, str] | None = None,
    value_alias: str = "",
    other_color: str = OTHER_COLOR,
    fill_opacity: float = 0.7,
) -> FillUpdate:
    """The fill of the :func:`fillable_layer` named ``target``: each polygon's colour by
    its key (``fills``; keys not in it ``other_color``), and the value its tooltip shows
    under ``value_alias`` (``values``). ``fills=None``: back to the unfilled outlines.

    Add it to the map, or to a feature group sent after the map (its script runs where it
    is added); a map without that layer ignores it.
    """
    target = _check_name(target)
    if fills is None:
        return FillUpdate(target, None)
    if not isinstance(fills, Mapping):
        raise ValueError("fills must be a mapping {key: colour}")
    other_color = _check_color(other_color, "other_color")
    if not 0 <= fill_opacity <= 1:
        raise ValueError(f"fill_opacity must be between 0 and 1, got {fill_opacity!r}")
    table: list[str] = []
    index: dict[str, int] = {}
    by: dict[str, list[Any]] = {}
    for key, colour in fills.items():
        if _isna(colour):
            continue
        colour = _check_color(colour, f"colour of {key!r}")
        if colour not in index:
            index[colour] = len(table)
            table.append(colour)
        by[str(key)] = [index[colour], None]
    for key, value in (values or {}).items():
        by.setdefault(str(key), [-1, None])[1] = None if _isna(value) else str(value)
    return FillUpdate(
        target,
        {
            "colors": table,
            "other": other_color,
            "opacity": fill_opacity,
            "alias": str(value_alias),
            "by": by,
        },
    )


#: Style of :class:`Legend` and :class:`LegendLayer` boxes (the page header's, once per map).
_LEGEND_CSS = """
    .gridone-legend { background: rgba(255, 255, 255, 0.92); padding: 6px 8px;
        border-radius: 4px; box-shadow: 0 1px 4px rgba(0, 0, 0, 0.3);
        font: 12px/1.45 sans-serif; color: #222; max-height: 60vh; overflow-y: auto; }
    .gridone-legend-title { font-weight: 600; margin-bottom: 3px; }
    .gridone-legend-row { display: flex; align-items: center; white-space: nowrap; }
    .gridone-legend-swatch { display: inline-block; width: 14px; height: 14px;
        margin-right: 6px; border: 1px solid rgba(0, 0, 0, 0.25); flex: none; }
"""
#: ``onAdd`` of a legend control: the box built with DOM calls from ``this.data`` (JSON).
_LEGEND_ON_ADD = """function () {
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
            }"""


class Legend(MacroElement):
    """A Leaflet control listing colour swatches and their labels.

    Built with DOM calls from JSON data: titles and labels are shown as text, never parsed as
    HTML. Add it to the map itself (``legend.add_to(m)``), not to a feature group.
    """

    _template = Template(
        """
        {% macro header(this, kwargs) %}
            <style>"""
        + _LEGEND_CSS
        + """</style>
        {% endmacro %}
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }} = L.control({position: {{ this.position|tojson }}});
            {{ this.get_name() }}.onAdd = """
        + _LEGEND_ON_ADD
        + """;
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


def _check_legend(
    title: object, entries: object, position: object
) -> tuple[str, list[tuple[str, str]], str]:
    """The checked arguments of :func:`legend` and :func:`legend_layer`."""
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
    return title, checked, str(position)


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
    return Legend(*_check_legend(title, entries, position))


class LegendStyles(MacroElement):
    """The legend boxes' CSS in the page header, for maps whose legends come later as
    :class:`LegendLayer` (a layer's script carries no header)."""

    _template = Template(
        """
        {% macro header(this, kwargs) %}
            <style>"""
        + _LEGEND_CSS
        + """</style>
        {% endmacro %}
        """
    )

    def __init__(self) -> None:
        super().__init__()
        self._name = "LegendStyles"


def legend_styles() -> LegendStyles:
    """The CSS of :func:`legend_layer` boxes: add it to the map that will show them."""
    return LegendStyles()


class LegendLayer(MacroElement):
    """A legend that is a layer: shown while it (or the group holding it) is on the map,
    gone when it is removed, so that a group of layers replaced as a whole (streamlit-folium's
    ``feature_group``) takes its legends with it. Text only, as :class:`Legend`; the map
    needs :func:`legend_styles`."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            var {{ this.get_name() }}_control = L.control({position: {{ this.position|tojson }}});
            {{ this.get_name() }}_control.onAdd = """
        + _LEGEND_ON_ADD
        + """;
            var {{ this.get_name() }} = new (L.Layer.extend({
                onAdd: function (map) { {{ this.get_name() }}_control.addTo(map); },
                onRemove: function () { {{ this.get_name() }}_control.remove(); }
            }))();
            {{ this.get_name() }}.addTo({{ this._parent.get_name() }});
        {% endmacro %}
        """
    )

    def __init__(self, title: str, entries: list[tuple[str, str]], position: str) -> None:
        super().__init__()
        self._name = "LegendLayer"
        self.data = {"title": title, "entries": [list(e) for e in entries]}
        self.position = position


def legend_layer(
    title: str,
    entries: Sequence[tuple[str, str]],
    *,
    position: str = "bottomright",
) -> LegendLayer:
    """:func:`legend` as a layer (:class:`LegendLayer`): add it to a feature group, and
    :func:`legend_styles` to the map."""
    return LegendLayer(*_check_legend(title, entries, position))


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
