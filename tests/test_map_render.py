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
    map_render.show(ours, key="k", returned_objects=("last_clicked", "zoom"), state={})
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
    map_render.show(base, layers=one, key="k", state={})
    map_render.show(base, layers=two, key="k", state={})
    map_render.show(other, layers=one, key="k", state={})
    assert captured[0]["key"] == captured[1]["key"] != captured[2]["key"]
    assert (captured[0]["feature_group"], captured[1]["feature_group"]) == (one, two)
    assert base.digest == sf.generate_js_hash(base.script)


def test_show_sends_the_base_only_to_a_frame_that_may_lack_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The base goes with the first run that shows a map, after a run that did not show it
    and when the frame asks for it; otherwise a few bytes. The layers go every time."""
    captured: list[dict] = []
    reported: dict = {}

    def component(**kw: object) -> object:
        captured.append(kw)
        return reported.get("value", kw["default"])

    monkeypatch.setattr(sf, "_component_func", component)
    base = map_render.render(_map())
    other = map_render.render(layers.base_map((121.0, 37.0, 121.1, 37.1)))
    one, two = map_render.render_layers(_group()), map_render.render_layers(folium.FeatureGroup())
    state: dict = {}

    def run(rendered: map_render.RenderedMap, group: str) -> dict:
        map_render.new_run(state)
        out = map_render.show(rendered, layers=group, key="k", state=state)
        return {**captured[-1], "out": out}

    def full(args: dict, rendered: map_render.RenderedMap) -> bool:
        sent = (args["script"], args["header"], args["html"], tuple(args["js_links"]))
        if sent == (rendered.script, rendered.header, rendered.html, rendered.js_links):
            return True
        assert sent == (map_render.STUB, "", "", ())
        assert args["css_links"] == []
        return False

    first = run(base, one)
    assert full(first, base) and first["feature_group"] == one
    second = run(base, two)  # a filter change: the layers only
    assert not full(second, base) and second["feature_group"] == two
    assert second["key"] == first["key"] and second["id"] == first["id"]
    assert len(str(second)) < len(base.script) / 4
    shown = run(other, two)  # a new base (another street): a new map
    assert full(shown, other) and shown["key"] != first["key"]
    assert not full(run(other, one), other)
    map_render.new_run(state)  # a run that stopped before the map, or another page
    assert full(run(other, one), other)
    # a frame that got the stub without a map asks for the base (Streamlit keeps the
    # component's value under its key): the base is sent once per request
    state[shown["key"]] = reported["value"] = {map_render.BASE_MISSING: "17.3"}
    asked = run(other, one)
    assert full(asked, other)
    assert asked["out"] == asked["default"], "the request is no map report"
    assert not full(run(other, one), other)
    state[shown["key"]] = reported["value"] = {map_render.BASE_MISSING: "18.9"}
    assert full(run(other, one), other)
    state[shown["key"]] = reported["value"] = {"last_clicked": {"lat": 36.0, "lng": 120.0}}
    clicked = run(other, one)
    assert not full(clicked, other) and clicked["out"] == reported["value"]
    assert 'setComponentValue({"gridone_base_missing"' in map_render.STUB
    assert map_render.STUB.endswith("//")
