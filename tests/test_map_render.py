"""dashboard.map_render: a map rendered once gives the component the same map as
``st_folium`` does, and a cached rendering survives pickling (st.cache_data)."""

from __future__ import annotations

import pickle

import folium
import geopandas as gpd
import pytest
import shapely
import streamlit_folium as sf

from dashboard import layers, map_render
from dashboard.offline import localize_map, use_local_assets


def _map() -> folium.Map:
    use_local_assets("/app/static/vendor")
    grids = gpd.GeoDataFrame(
        {"name": ["甲", "乙"]},
        geometry=[
            shapely.box(120.0, 36.0, 120.01, 36.01),
            shapely.box(120.01, 36.0, 120.02, 36.01),
        ],
        crs=4326,
    )
    m = layers.base_map(grids.total_bounds)
    localize_map(m)
    layers.boundary_layer(grids, name="网格", color="#3b6fb6", tooltip_fields=["name"]).add_to(m)
    points = gpd.GeoDataFrame(
        {"n": [3, 12], "k": ["01", "03"], "name": ["甲", "乙"]},
        geometry=[shapely.Point(120.005, 36.005), shapely.Point(120.015, 36.005)],
        crs=4326,
    )
    layers.count_layer(
        points,
        name="事件",
        count_column="n",
        color_column="k",
        palette={"01": "#d62728", "03": "#1f77b4"},
        tooltip_fields=["name", "n"],
    ).add_to(m)
    return m


def test_rendered_map_is_what_st_folium_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: dict = {}
    monkeypatch.setattr(sf, "_component_func", lambda **kw: sent.update(kw))
    sf.st_folium(_map(), returned_objects=["last_clicked"], key="k")
    ours = pickle.loads(pickle.dumps(map_render.render(_map())))
    # element ids are random per build: compare as streamlit-folium's own hash does
    assert sf.generate_js_hash(ours.script) == sf.generate_js_hash(sent["script"])
    assert ours.css_links == tuple(sent["css_links"]) and ours.js_links == tuple(sent["js_links"])
    assert "/app/static/vendor" in " ".join(ours.js_links)
    assert ours.size > len(ours.script) > 0
    captured: dict = {}
    monkeypatch.setattr(sf, "_component_func", lambda **kw: captured.update(kw))
    map_render.show(ours, key="k", returned_objects=("last_clicked", "zoom"))
    assert captured["script"] == ours.script
    assert captured["default"] == {"last_clicked": None, "zoom": ours.zoom}
    assert captured["returned_objects"] == ["last_clicked", "zoom"]


def test_count_layer_sizes_circles_by_count_and_checks_input() -> None:
    html = _map().get_root().render()
    assert '"__radius": 16.0' in html and '"__color": "#1f77b4"' in html
    bad = gpd.GeoDataFrame({"n": [-1], "k": ["01"]}, geometry=[shapely.Point(120, 36)], crs=4326)
    with pytest.raises(ValueError, match="non-negative"):
        layers.count_layer(bad, name="x", count_column="n", color_column="k", palette={})


def _group() -> folium.FeatureGroup:
    group = folium.FeatureGroup(name="层", control=False)
    points = gpd.GeoDataFrame(
        {"k": ["01", "03"]},
        geometry=[shapely.Point(120.005, 36.005), shapely.Point(120.015, 36.005)],
        crs=4326,
    )
    layers.point_layer(points, name="点", color_column="k").add_to(group)
    layers.legend_layer("图例", [("#d62728", "甲")]).add_to(group)
    return group


def test_rendered_layers_are_what_st_folium_sends_as_feature_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: dict = {}
    monkeypatch.setattr(sf, "_component_func", lambda **kw: sent.update(kw))
    sf.st_folium(_map(), feature_group_to_add=_group(), returned_objects=[], key="k")
    ours = map_render.render_layers(_group())
    assert sf.generate_js_hash(ours) == sf.generate_js_hash(sent["feature_group"])
    assert "map_div.addLayer(feature_group_feature_group_0)" in ours
    assert "window.feature_group.push" in ours


def test_show_keeps_the_map_while_the_base_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the base decides the component's identity: new layers go to the same map."""
    captured: list[dict] = []
    monkeypatch.setattr(sf, "_component_func", lambda **kw: captured.append(kw))
    base = map_render.render(_map())
    other = map_render.render(layers.base_map((121.0, 37.0, 121.1, 37.1)))
    one, two = map_render.render_layers(_group()), map_render.render_layers(folium.FeatureGroup())
    map_render.show(base, layers=one, key="k")
    map_render.show(base, layers=two, key="k")
    map_render.show(other, layers=one, key="k")
    assert captured[0]["key"] == captured[1]["key"] != captured[2]["key"]
    assert (captured[0]["feature_group"], captured[1]["feature_group"]) == (one, two)
    assert base.digest == sf.generate_js_hash(base.script)
