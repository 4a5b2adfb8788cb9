"""Map layer builders: rendered HTML fragments, bounds, and rejected inputs."""

from __future__ import annotations

import json
import re

import folium
import folium.plugins
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, Point, Polygon, box

from dashboard import layers

LON0, LAT0 = 120.40, 36.30


@pytest.fixture
def grids() -> gpd.GeoDataFrame:
    """Three adjacent 0.01° grid cells near Qingdao, with a column that must not leak."""
    return gpd.GeoDataFrame(
        {
            "grid_code": ["370214001001001", "370214001001002", "370214001001003"],
            "grid_name": ["一网格", "二网格", "三网格"],
            "manager_phone": ["13800000001", "13800000002", "13800000003"],
        },
        geometry=[box(LON0 + 0.01 * i, LAT0, LON0 + 0.01 * (i + 1), LAT0 + 0.01) for i in range(3)],
        crs=4326,
    )


@pytest.fixture
def incidents() -> gpd.GeoDataFrame:
    rng = np.random.default_rng(42)
    n = 60
    return gpd.GeoDataFrame(
        {
            "category": rng.choice(["治安", "环境", "民生"], n),
            "reported_at": pd.date_range("2026-03-01 08:00", periods=n, freq="37min"),
            "id_card": [f"37021419900101{i:04d}" for i in range(n)],
            "weight": rng.integers(1, 5, n),
        },
        geometry=gpd.points_from_xy(
            rng.uniform(LON0, LON0 + 0.03, n), rng.uniform(LAT0, LAT0 + 0.01, n)
        ),
        crs=4326,
    )


def js(text: str) -> str:
    """``text`` as folium writes it into the page (JSON, non-ASCII escaped)."""
    return json.dumps(text)


def flat(bounds: object) -> list[float]:
    return [float(v) for v in np.ravel(bounds)]


def render(*items: folium.MacroElement, bounds: tuple[float, ...] | None = None) -> str:
    m = layers.base_map(bounds or (LON0, LAT0, LON0 + 0.03, LAT0 + 0.01))
    for item in items:
        item.add_to(m)
    folium.LayerControl().add_to(m)
    return m.get_root().render()


# ------------------------------------------------------------------------------ base_map


def test_base_map_without_tiles_fits_bounds_and_sets_max_zoom() -> None:
    m = layers.base_map((120.40, 36.30, 120.43, 36.31), max_zoom=17)
    assert not any(isinstance(c, folium.TileLayer) for c in m._children.values())
    html = m.get_root().render()
    assert '"maxZoom": 17' in html
    assert "fitBounds" in html and "[[36.3, 120.4], [36.31, 120.43]]" in html
    assert "L.control.scale()" in html
    assert f"background: {layers.BACKGROUND_COLOR}" in html
    assert "tile.openstreetmap" not in html


def test_base_map_with_tiles_uses_host_as_default_attribution() -> None:
    url = "http://tiles.intranet.local/{z}/{x}/{y}.png"
    m = layers.base_map((120.40, 36.30, 120.43, 36.31), tile_url=url)
    (tiles,) = [c for c in m._children.values() if isinstance(c, folium.TileLayer)]
    assert tiles.tiles == url
    assert tiles.options["attribution"] == "tiles.intranet.local"
    assert m.options["max_zoom"] == 18


@pytest.mark.parametrize(
    ("bounds", "message"),
    [
        ((36.30, 120.40, 36.31, 120.43), "lon before lat"),  # lat/lon swapped
        ((120.43, 36.30, 120.40, 36.31), "min before max"),
        ((np.nan, np.nan, np.nan, np.nan), "finite"),
        ((120.4, 36.3), "four numbers"),
        ("abc", "four numbers"),
    ],
)
def test_base_map_rejects_bad_bounds(bounds: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        layers.base_map(bounds)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [{"max_zoom": 0}, {"max_zoom": 30}, {"tile_url": "http://x/a.png"}])
def test_base_map_rejects_bad_options(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"max_zoom|tile_url"):
        layers.base_map((120.40, 36.30, 120.43, 36.31), **bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------- boundary_layer


def test_boundary_layer_html_and_bounds(grids: gpd.GeoDataFrame) -> None:
    layer = layers.boundary_layer(
        grids,
        name="网格",
        color="#3366cc",
        weight=1.5,
        tooltip_fields=["grid_name", "grid_code"],
        tooltip_aliases=["网格", "编码"],
    )
    assert isinstance(layer, folium.GeoJson) and layer.layer_name == "网格"
    minx, miny, maxx, maxy = grids.total_bounds
    assert flat(layer.get_bounds()) == pytest.approx([miny, minx, maxy, maxx])

    html = render(layer)
    assert '"color": "#3366cc"' in html and '"weight": 1.5' in html
    assert js("三网格") in html and "370214001001003" in html
    assert js("网格") in html and js("编码") in html  # tooltip aliases
    assert "13800000001" not in html  # columns not asked for stay out of the page
    assert re.search(re.escape(js("网格")) + r"\s*:\s*geo_json_", html)  # in the layer control


def test_outline_only_layer_has_no_fill(grids: gpd.GeoDataFrame) -> None:
    html = render(layers.boundary_layer(grids, name="街道", color="#c0392b", fill_opacity=0))
    assert '"fill": false' in html
    assert '"fill": true' in render(layers.boundary_layer(grids, name="网格", color="#3b6fb6"))


def test_boundary_layer_without_tooltip_embeds_no_properties(grids: gpd.GeoDataFrame) -> None:
    layer = layers.boundary_layer(grids, name="社区", color="red")
    assert all(f["properties"] == {} for f in layer.data["features"])


@pytest.mark.parametrize(
    ("crs", "named"),
    [(4490, "EPSG:4490"), (3857, "EPSG:3857"), (4549, "EPSG:4549")],
)
def test_boundary_layer_rejects_other_crs(grids: gpd.GeoDataFrame, crs: int, named: str) -> None:
    with pytest.raises(ValueError, match=rf"{named}.*call gdf\.to_crs\(4326\)"):
        layers.boundary_layer(grids.to_crs(crs), name="网格", color="#3366cc")


def test_boundary_layer_rejects_missing_crs(grids: gpd.GeoDataFrame) -> None:
    with pytest.raises(ValueError, match="has no CRS"):
        layers.boundary_layer(grids.set_crs(None, allow_override=True), name="g", color="red")


def test_boundary_layer_rejects_bad_input(grids: gpd.GeoDataFrame) -> None:
    with pytest.raises(ValueError, match=r"no column\(s\) \['street'\]"):
        layers.boundary_layer(grids, name="g", color="red", tooltip_fields=["street"])
    with pytest.raises(ValueError, match="1 alias"):
        layers.boundary_layer(
            grids,
            name="g",
            color="red",
            tooltip_fields=["grid_name", "grid_code"],
            tooltip_aliases=["网格"],
        )
    with pytest.raises(ValueError, match="CSS colour"):
        layers.boundary_layer(grids, name="g", color="#33'><script>")
    with pytest.raises(ValueError, match="name must be"):
        layers.boundary_layer(grids, name="", color="red")
    points = grids.set_geometry(grids.representative_point())
    with pytest.raises(ValueError, match=r"expected Polygon .* found Point"):
        layers.boundary_layer(points, name="g", color="red")
    empty_geom = grids.copy()
    empty_geom.loc[1, "geometry"] = Polygon()
    with pytest.raises(ValueError, match=r"missing or empty geometry \(index 1\)"):
        layers.boundary_layer(empty_geom, name="g", color="red")
    with pytest.raises(TypeError, match="GeoDataFrame"):
        layers.boundary_layer(pd.DataFrame(grids), name="g", color="red")  # type: ignore[arg-type]


def test_boundary_layer_simplify_in_metres() -> None:
    # a circle of ~500 m radius with 400 vertices
    circle = gpd.GeoSeries([Point(LON0, LAT0)], crs=4326).to_crs(4549).buffer(500, 100)
    gdf = gpd.GeoDataFrame(geometry=circle.to_crs(4326))
    exact = layers.boundary_layer(gdf, name="c", color="red")
    simple = layers.boundary_layer(gdf, name="c", color="red", simplify_m=20)

    def vertices(layer: folium.GeoJson) -> int:
        return len(layer.data["features"][0]["geometry"]["coordinates"][0])

    assert vertices(simple) < vertices(exact) / 4
    assert flat(simple.get_bounds()) == pytest.approx(flat(exact.get_bounds()), abs=1e-4)


def test_boundary_layer_accepts_lines() -> None:
    gdf = gpd.GeoDataFrame(
        geometry=[LineString([(LON0, LAT0), (LON0 + 0.01, LAT0 + 0.01)])], crs=4326
    )
    assert "LineString" in render(layers.boundary_layer(gdf, name="路", color="gray"))


# ---------------------------------------------------------------------------- point_layer


def test_point_layer_canvas_colours_by_category(incidents: gpd.GeoDataFrame) -> None:
    group = layers.point_layer(
        incidents,
        name="事件",
        color_column="category",
        palette={"治安": "#d62728", "环境": "#2ca02c"},
        popup_fields=["category", "reported_at"],
        popup_aliases=["类别", "时间"],
    )
    assert isinstance(group, folium.FeatureGroup) and group.layer_name == "事件"
    html = render(group)
    renderer = re.search(r"var (canvas_renderer_\w+) = L\.canvas", html)
    assert renderer and f'"renderer": {renderer.group(1)}' in html  # one shared canvas
    assert "new L.CircleMarker(latlng, opts)" in html
    assert '"fillColor": "#d62728"' in html and '"fillColor": "#2ca02c"' in html
    assert f'"fillColor": "{layers.OTHER_COLOR}"' in html  # 民生 is not in the palette
    assert "2026-03-01 08:00:00" in html  # timestamps become text
    assert js("类别") in html and js("时间") in html
    assert "370214199001010000" not in html  # ID numbers never reach the page


def test_point_layer_default_palette_is_sorted_and_stable(incidents: gpd.GeoDataFrame) -> None:
    group = layers.point_layer(incidents, name="事件", color_column="category")
    (geojson,) = [c for c in group._children.values() if isinstance(c, folium.GeoJson)]
    colours = {f["properties"]["__color"] for f in geojson.data["features"]}
    assert colours == set(layers.CATEGORY_COLORS[:3])
    first = {
        f["properties"]["__color"]
        for f, cat in zip(geojson.data["features"], incidents["category"], strict=True)
        if cat == sorted(incidents["category"].unique())[0]
    }
    assert first == {layers.CATEGORY_COLORS[0]}


def test_point_layer_cluster(incidents: gpd.GeoDataFrame) -> None:
    group = layers.point_layer(
        incidents,
        name="事件",
        color_column="category",
        cluster=True,
        radius=5,
        popup_fields=["category"],
    )
    (cluster,) = group._children.values()
    assert isinstance(cluster, folium.plugins.FastMarkerCluster)
    assert len(cluster.data) == len(incidents)
    row = cluster.data[0]
    assert row[:2] == pytest.approx([incidents.geometry.y.iloc[0], incidents.geometry.x.iloc[0]])
    assert row[2] in (1, 2, 3) and row[3] == incidents["category"].iloc[0]
    html = render(group)
    assert "L.markerClusterGroup" in html and "iconSize: [10, 10]" in html
    assert json_list(layers.CATEGORY_COLORS[:3]) in html
    assert "textContent" in html and "innerHTML" not in html.split("L.markerClusterGroup")[1]


def json_list(colours: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{c}"' for c in (layers.OTHER_COLOR, *colours)) + "]"


def test_point_layer_rejects_bad_input(
    incidents: gpd.GeoDataFrame, grids: gpd.GeoDataFrame
) -> None:
    with pytest.raises(ValueError, match="expected Point geometries, found Polygon"):
        layers.point_layer(grids, name="p")
    with pytest.raises(ValueError, match="palette given without color_column"):
        layers.point_layer(incidents, name="p", palette={"治安": "red"})
    with pytest.raises(ValueError, match="palette colour for '治安'"):
        layers.point_layer(incidents, name="p", color_column="category", palette={"治安": "x y"})
    many = incidents.assign(code=[str(i) for i in range(len(incidents))])
    with pytest.raises(ValueError, match=r"60 distinct values.*pass palette"):
        layers.point_layer(many, name="p", color_column="code")
    with pytest.raises(ValueError, match="radius must be a positive number"):
        layers.point_layer(incidents, name="p", radius=0)
    with pytest.raises(ValueError, match="EPSG:4490"):
        layers.point_layer(incidents.to_crs(4490), name="p")


# ------------------------------------------------------------------- building_layer, heat


def test_building_layer_footprints_and_points() -> None:
    gdf = gpd.GeoDataFrame(
        {"building_no": ["1栋", "2栋", "3栋"]},
        geometry=[
            box(LON0, LAT0, LON0 + 0.0005, LAT0 + 0.0003),
            shapely.MultiPolygon([box(LON0 + 0.001, LAT0, LON0 + 0.0015, LAT0 + 0.0003)]),
            Point(LON0 + 0.002, LAT0 + 0.0002),
        ],
        crs=4326,
    )
    group = layers.building_layer(gdf, name="楼栋", tooltip_fields=["building_no"])
    footprints, _renderer, points = group._children.values()
    assert isinstance(footprints, folium.GeoJson) and isinstance(points, folium.GeoJson)
    assert len(footprints.data["features"]) == 2 and len(points.data["features"]) == 1
    assert flat(group.get_bounds()) == pytest.approx([LAT0, LON0, LAT0 + 0.0003, LON0 + 0.002])
    html = render(group)
    assert js("3栋") in html and "new L.CircleMarker" in html

    only_footprints = layers.building_layer(gdf.iloc[:2], name="楼栋")
    assert len(only_footprints._children) == 1


def test_heat_layer_weights(incidents: gpd.GeoDataFrame) -> None:
    heat = layers.heat_layer(incidents, name="热力", weight_column="weight")
    assert isinstance(heat, folium.plugins.HeatMap)
    assert len(heat.data) == len(incidents) and len(heat.data[0]) == 3
    assert "L.heatLayer" in render(heat)
    with pytest.raises(ValueError, match="non-negative numbers"):
        layers.heat_layer(incidents.assign(weight=-1), name="热力", weight_column="weight")


def test_all_builders_show_up_in_layer_control(
    grids: gpd.GeoDataFrame, incidents: gpd.GeoDataFrame
) -> None:
    html = render(
        layers.boundary_layer(grids, name="网格", color="#3366cc"),
        layers.point_layer(incidents, name="事件点", cluster=True),
        layers.point_layer(incidents, name="事件圆点"),
        layers.building_layer(grids, name="楼栋"),
        layers.heat_layer(incidents, name="热力"),
    )
    overlays = html.split("overlays")[1]
    for name in ("网格", "事件点", "事件圆点", "楼栋", "热力"):
        assert js(name) in overlays, name


# ------------------------------------------------------------------- class_layer, legend


def test_class_layer_fills_by_class_and_keeps_every_polygon(grids: gpd.GeoDataFrame) -> None:
    gdf = grids.assign(bin=[3, 0, 7], label=["热点（99%置信度）", "不显著", "?"])
    layer = layers.class_layer(
        gdf,
        name="热点分析",
        column="bin",
        colors={3: "#d62f27", 0: "#d4d4d4"},
        other_color="#000000",
        tooltip_fields=["grid_name", "label"],
        tooltip_aliases=["网格", "等级"],
    )
    assert isinstance(layer, folium.GeoJson) and layer.layer_name == "热点分析"
    fills = [f["properties"]["__color"] for f in layer.data["features"]]
    assert fills == ["#d62f27", "#d4d4d4", "#000000"]  # class 7 has no colour: other_color
    minx, miny, maxx, maxy = grids.total_bounds
    assert flat(layer.get_bounds()) == pytest.approx([miny, minx, maxy, maxx])
    html = render(layer)
    assert '"fillColor": "#d62f27"' in html and '"fillOpacity": 0.7' in html
    assert '"color": "#ffffff"' in html  # thin white outlines between classes
    assert js("热点（99%置信度）") in html and js("等级") in html
    assert "13800000001" not in html  # columns not asked for stay out of the page


def test_class_layer_missing_class_is_drawn_in_other_color(grids: gpd.GeoDataFrame) -> None:
    gdf = grids.assign(pattern=[1.0, np.nan, -1.0])
    layer = layers.class_layer(
        gdf, name="模式", column="pattern", colors={1.0: "red", -1.0: "blue"}
    )
    fills = [f["properties"]["__color"] for f in layer.data["features"]]
    assert fills == ["red", layers.OTHER_COLOR, "blue"]


def test_class_layer_rejects_bad_input(grids: gpd.GeoDataFrame) -> None:
    gdf = grids.assign(bin=[1, 0, -1])
    with pytest.raises(ValueError, match=r"class_layer\('c'\) column: no column\(s\) \['z'\]"):
        layers.class_layer(gdf, name="c", column="z", colors={1: "red"})
    with pytest.raises(ValueError, match="non-empty mapping"):
        layers.class_layer(gdf, name="c", column="bin", colors={})
    with pytest.raises(ValueError, match="colour of class 1"):
        layers.class_layer(gdf, name="c", column="bin", colors={1: "red;x"})
    with pytest.raises(ValueError, match="fill_opacity"):
        layers.class_layer(gdf, name="c", column="bin", colors={1: "red"}, fill_opacity=2)
    points = gdf.set_geometry(gdf.representative_point())
    with pytest.raises(ValueError, match=r"expected Polygon or MultiPolygon .* found Point"):
        layers.class_layer(points, name="c", column="bin", colors={1: "red"})
    with pytest.raises(ValueError, match="EPSG:4490"):
        layers.class_layer(gdf.to_crs(4490), name="c", column="bin", colors={1: "red"})


def test_legend_renders_text_not_html(grids: gpd.GeoDataFrame) -> None:
    legend = layers.legend(
        "热点与冷点（Gi*）",
        [("#d62f27", "热点（99%置信度）"), ("#4575b5", "<b>冷点</b>")],
        position="bottomleft",
    )
    html = render(layers.boundary_layer(grids, name="网格", color="red"), legend)
    script = html.split("L.control({position:")[1]
    assert script.lstrip().startswith('"bottomleft"')
    assert "textContent" in script and "innerHTML" not in script
    assert "<b>" not in script  # label text is escaped JSON, set as text
    assert "\\u003cb\\u003e" in script
    assert "#d62f27" in script and "gridone-legend" in html


def test_legend_must_sit_on_the_map(grids: gpd.GeoDataFrame) -> None:
    group = folium.FeatureGroup(name="g")
    layers.legend("t", [("red", "a")]).add_to(group)
    with pytest.raises(ValueError, match=r"add the legend to the folium\.Map itself"):
        render(group)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("t", []), {}, "non-empty list"),
        (("t", "red"), {}, "non-empty list"),
        (("t", [("red",)]), {}, r"\(colour, label\) pair"),
        (("t", [("not a colour", "a")]), {}, "CSS colour"),
        (("t", [("red", "a")]), {"position": "middle"}, "position must be one of"),
        ((None, [("red", "a")]), {}, "title must be a string"),
    ],
)
def test_legend_rejects_bad_input(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        layers.legend(*args, **kwargs)


def test_base_map_keeps_room_for_a_legend() -> None:
    m = layers.base_map((120.40, 36.30, 120.43, 36.31), padding_bottom_right=(190, 0))
    html = m.get_root().render()
    assert re.search(r'"paddingBottomRight":\s*\[190,\s*0\]', html)
    with pytest.raises(ValueError, match="padding_bottom_right"):
        layers.base_map((120.40, 36.30, 120.43, 36.31), padding_bottom_right=(-5, 0))
    with pytest.raises(ValueError, match="padding_bottom_right"):
        layers.base_map((120.40, 36.30, 120.43, 36.31), padding_bottom_right="wide")  # type: ignore[arg-type]


# ---------------------------------------------------- layers swapped into a drawn map


def test_feature_collection_is_what_geopandas_writes() -> None:
    """The fast GeoJSON writer gives the same features as ``GeoDataFrame.to_json`` (missing
    values null, timestamps and dates as text, numpy numbers as numbers)."""
    frame = gpd.GeoDataFrame(
        {
            "s": pd.Series(["甲", None, "c"], dtype="string[pyarrow]"),
            "i": [1, 2, 3],
            "f": [1.5, np.nan, 16.0],
            "b": [True, False, True],
            "t": pd.to_datetime(["2026-11-18 08:00", None, "2026-11-19 00:00"]).tz_localize(
                "Asia/Shanghai"
            ),
            "o": ["x", 3, None],
            "n": pd.array([1, None, 3], dtype="Int64"),
        },
        geometry=[
            box(120.1234567, 36.1, 120.2, 36.2),
            shapely.MultiPolygon([box(0, 0, 1, 1), box(2, 2, 3, 3)]),
            Point(120.00000049, 36.123456789),
        ],
        crs=4326,
    )
    cols = ["s", "i", "f", "b", "t", "o", "n"]
    ours = layers._feature_collection(frame, cols)
    rounded = frame.set_geometry(
        shapely.transform(frame.geometry.array, lambda xy: np.round(xy, 6))
    )
    assert ours == json.loads(rounded[[*cols, "geometry"]].to_json(drop_id=True, default=str))
    assert ours["features"][1]["properties"]["t"] is None
    assert ours["features"][0]["geometry"]["coordinates"][0][2] == [120.123457, 36.2]
    assert layers._feature_collection(frame, [])["features"][2]["properties"] == {}


def test_fillable_layer_is_filled_later_by_key(grids: gpd.GeoDataFrame) -> None:
    layer = layers.fillable_layer(
        grids,
        name="网格",
        target="grids",
        key_column="grid_code",
        color="#3b6fb6",
        tooltip_fields=["grid_name"],
        tooltip_aliases=["网格"],
    )
    html = render(layer)
    assert "gridoneFill" in html and js("grids") in html
    assert '"grid_code": "370214001001002"' in html
    assert "manager_phone" not in html and "13800000001" not in html
    assert "textContent" in html and "innerHTML" not in html.split("gridoneFill")[0][-3000:]
    with pytest.raises(ValueError, match="unique"):
        layers.fillable_layer(
            pd.concat([grids, grids]), name="g", target="t", key_column="grid_code", color="red"
        )
    with pytest.raises(ValueError, match="above 0"):
        layers.fillable_layer(
            grids, name="g", target="t", key_column="grid_code", color="red", fill_opacity=0
        )
    with pytest.raises(ValueError, match="no column"):
        layers.fillable_layer(grids, name="g", target="t", key_column="code", color="red")


def test_fill_update_sends_a_colour_table_not_polygons() -> None:
    update = layers.fill_update(
        "grids",
        {"370214001001001": "#ff0000", "370214001001002": "#00ff00", "x": "#ff0000"},
        values={"370214001001001": "12.5", "370214001001003": None},
        value_alias="每千户",
    )
    assert update.fill["colors"] == ["#ff0000", "#00ff00"]
    assert update.fill["by"] == {
        "370214001001001": [0, "12.5"],
        "370214001001002": [1, None],
        "x": [0, None],
        "370214001001003": [-1, None],
    }
    group = folium.FeatureGroup(name="g")
    update.add_to(group)
    html = render(group)
    script = html.split("window.gridoneFill[")[-1]
    assert js("每千户") in script and "coordinates" not in script
    assert layers.fill_update("grids", None).fill is None
    with pytest.raises(ValueError, match="CSS colour"):
        layers.fill_update("grids", {"a": "not a colour"})


def test_legend_layer_comes_and_goes_with_its_group() -> None:
    group = folium.FeatureGroup(name="g")
    layers.legend_layer("类别", [("#d62728", "<b>矛盾纠纷</b>")], position="bottomleft").add_to(
        group
    )
    html = render(group, layers.legend_styles())
    assert "onAdd: function (map)" in html and "onRemove" in html
    assert "textContent" in html and "<b>" not in html
    assert ".gridone-legend" in html  # the CSS, from legend_styles
    with pytest.raises(ValueError, match="position must be one of"):
        layers.legend_layer("t", [("red", "a")], position="middle")


def test_class_layer_in_a_pane_and_plugin_assets(grids: gpd.GeoDataFrame) -> None:
    layer = layers.class_layer(
        grids.assign(bin=[1, 2, 3]), name="c", column="bin", colors={1: "red"}, pane="under"
    )
    assert '"pane": "under"' in render(layer)
    m = layers.base_map((LON0, LAT0, LON0 + 0.03, LAT0 + 0.01))
    layers.plugin_assets(folium.plugins.MarkerCluster).add_to(m)
    html = m.get_root().render()
    for _, src in folium.plugins.MarkerCluster.default_js:
        assert src in html
    with pytest.raises(ValueError, match="plugin classes"):
        layers.plugin_assets(str)  # type: ignore[arg-type]


def test_canvas_renderer_is_a_layer_of_its_group(incidents: gpd.GeoDataFrame) -> None:
    """A group removed from the map takes its canvas with it."""
    group = layers.point_layer(incidents, name="事件", color_column="category")
    html = render(group)
    renderer = re.search(r"var (canvas_renderer_\w+) = L\.canvas", html)
    assert renderer is not None
    assert re.search(rf"{renderer.group(1)}\.addTo\(feature_group_\w+\)", html)
