"""dashboard.overview_view: URL state (centre, zoom, layers), indicator classes, masking,
the grid under a click and the GCJ-02 shift; and the layer-builder options it relies on."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard import layers
from dashboard import overview_view as ov
from geo import overview as geo_overview
from store.offsets import wgs84_to_gcj02

STREETS = {"370214900000": "示范街道"}
CATS = {"01": "矛盾纠纷", "0101": "邻里纠纷", "03": "城市管理"}
DEFAULTS = ov.default_query(dt.date(2026, 11, 20), STREETS)


def parse(params: dict[str, str]) -> tuple[ov.OverviewQuery, list]:
    return ov.parse_query(params, defaults=DEFAULTS, streets=STREETS, categories=CATS)


def test_default_period_ends_on_the_latest_day() -> None:
    assert DEFAULTS.end == dt.date(2026, 11, 20)
    assert (DEFAULTS.end - DEFAULTS.start).days == ov.DEFAULT_PERIOD_DAYS - 1
    assert DEFAULTS.layers == ov.DEFAULT_LAYERS
    assert DEFAULTS.street == "370214900000"


def test_full_url_contract_is_read() -> None:
    q, bad = parse(
        {
            "street": "370214900000",
            "community": "370214900003",
            "grid": "370214900003002",
            "incident": "SJ-2026-000123",
            "lat": "36.28",
            "lng": "120.41",
            "zoom": "16.5",
            "from": "2026-10-01",
            "to": "2026-10-31",
            "category": "0101",
            "status": "handling",
            "layers": "incidents,heat,boundaries",
            "gcj02": "1",
        }
    )
    assert bad == []
    assert (q.community, q.grid, q.incident) == (
        "370214900003",
        "370214900003002",
        "SJ-2026-000123",
    )
    assert (q.lat, q.lng, q.zoom) == (36.28, 120.41, 16.5)
    assert (q.start, q.end, q.category, q.status) == (
        dt.date(2026, 10, 1),
        dt.date(2026, 10, 31),
        "0101",
        "handling",
    )
    assert q.layers == ("heat", "boundaries", "incidents")  # drawing order
    assert q.gcj02 is True


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"zoom": "99"}, "zoom"),
        ({"lat": "north", "lng": "120"}, "lat"),
        ({"lat": "36.2"}, "lat"),  # without lng: unusable
        ({"layers": "indicator,satellite"}, "layers"),
        ({"category": "99"}, "category"),
        ({"status": "lost"}, "status"),
        ({"grid": "12345"}, "grid"),
        ({"grid": "110101001001001"}, "grid"),  # another street's grid
        ({"from": "2026-11-10", "to": "2026-11-01"}, "from"),
        ({"incident": "<script>"}, "incident"),
    ],
)
def test_bad_parameters_fall_back_and_are_reported(params: dict[str, str], key: str) -> None:
    q, bad = parse(params)
    assert key in [b.key for b in bad]
    assert q.layers in (DEFAULTS.layers,) or key != "layers"
    assert q.zoom is None or key != "zoom"
    assert q.end >= q.start


queries = st.builds(
    ov.OverviewQuery,
    street=st.sampled_from(list(STREETS)),
    community=st.sampled_from([None, "370214900001", "370214900009"]),
    grid=st.sampled_from([None, "370214900001001", "370214900009004"]),
    incident=st.sampled_from([None, "SJ-2026-000001", "e42"]),
    lat=st.one_of(st.none(), st.floats(-89, 89).map(lambda v: round(v, 6))),
    lng=st.none(),
    zoom=st.one_of(st.none(), st.sampled_from([3.0, 12.0, 15.5, 18.0])),
    start=st.dates(dt.date(2025, 1, 1), dt.date(2026, 6, 30)),
    end=st.dates(dt.date(2026, 7, 1), dt.date(2026, 12, 31)),
    category=st.sampled_from([None, *CATS]),
    status=st.sampled_from([None, "closed", "handling"]),
    layers=st.sets(st.sampled_from(ov.LAYERS)).map(lambda s: ov.layer_list(sorted(s))),
    indicator=st.sampled_from(list(geo_overview.INDICATORS)),
    color_by=st.sampled_from(ov.COLOR_BY),
    gcj02=st.booleans(),
    day=st.one_of(st.none(), st.dates(dt.date(2026, 1, 1), dt.date(2026, 12, 31))),
    days=st.sampled_from(ov.UNVISITED_DAYS),
)


@settings(max_examples=200, deadline=None)
@given(q=queries, lng=st.floats(-179, 179).map(lambda v: round(v, 6)))
def test_url_round_trip(q: ov.OverviewQuery, lng: float) -> None:
    if q.lat is not None:
        q = ov.OverviewQuery(**{**q.__dict__, "lng": lng})
    back, bad = parse(ov.to_params(q))
    if not q.layers:  # an empty list reads back as "no layers given"
        back = ov.OverviewQuery(**{**back.__dict__, "layers": ()})
        bad = [b for b in bad if b.key != "layers"]
    assert bad == []
    assert back == q


@settings(deadline=None)
@given(st.text(max_size=40))
def test_any_parameter_text_never_raises(text: str) -> None:
    for key in ("lat", "zoom", "layers", "grid", "incident", "from", "status"):
        q, _ = parse({key: text})
        assert q.end >= q.start


def test_indicator_classes_cover_every_value_and_mark_missing() -> None:
    values = np.array([0.1, 0.5, 0.9, 1.0, np.nan, 0.7, 0.3])
    c = ov.indicator_classes(values, "closure_rate", no_data="无数据")
    assert c.codes[4] == -1
    assert (c.codes[np.isfinite(values)] >= 0).all()
    assert c.entries[-1] == (ov.NO_DATA_COLOR, "无数据")
    # rates: higher is better, so the lowest class is the darkest
    assert c.colors[0] == ov.RAMP[-1]
    assert c.entries[0][1].endswith("%")
    # the classes are mapclassify's quantiles
    import mapclassify

    expected = mapclassify.Quantiles(values[np.isfinite(values)], k=5)
    assert list(c.codes[np.isfinite(values)]) == list(expected.yb)


def test_indicator_classes_with_few_values() -> None:
    c = ov.indicator_classes([3.0, 3.0, np.nan], "open_overdue")
    assert list(c.codes) == [0, 0, -1]
    assert c.entries[0][1] == "3"
    empty = ov.indicator_classes([np.nan], "per_1000", no_data="x")
    assert empty.entries == [(ov.NO_DATA_COLOR, "x")]


@pytest.mark.parametrize(
    ("phone", "shown"),
    [
        ("13812341234", "138****1234"),
        (" 19900001111 ", "199****1111"),
        ("0532-8888", "****"),
        (None, "—"),
        (float("nan"), "—"),
        ("", "—"),
    ],
)
def test_mask_phone(phone: object, shown: str) -> None:
    assert ov.mask_phone(phone) == shown


def grids_frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"code": ["370214900001002", "370214900001001"], "name": ["b", "a"]},
        geometry=[
            shapely.box(120.0, 36.0, 120.01, 36.01),
            shapely.box(120.01, 36.0, 120.02, 36.01),
        ],
        crs=4326,
    )


def test_grid_at() -> None:
    g = grids_frame()
    assert ov.grid_at(120.005, 36.005, g) == "370214900001002"
    assert ov.grid_at(120.015, 36.005, g) == "370214900001001"
    assert ov.grid_at(120.01, 36.005, g) == "370214900001001"  # shared edge: lowest code
    assert ov.grid_at(121.0, 36.005, g) is None


@settings(max_examples=100, deadline=None)  # a shared, loaded machine
@given(
    x=st.floats(73.7, 134.7),
    y=st.floats(18.2, 53.4),
    w=st.floats(1e-4, 0.05),
)
def test_gcj02_layer_is_the_transform_of_the_stored_one(x: float, y: float, w: float) -> None:
    stored = gpd.GeoDataFrame(
        {"code": ["a", "b"]},
        geometry=[shapely.box(x, y, x + w, y + w), shapely.Point(x + w / 2, y)],
        crs=4326,
    )
    shifted = ov.to_gcj02(stored)
    for before, after in zip(stored.geometry, shifted.geometry, strict=True):
        xy = shapely.get_coordinates(before)
        gx, gy = wgs84_to_gcj02(xy[:, 0], xy[:, 1])
        np.testing.assert_allclose(shapely.get_coordinates(after), np.column_stack([gx, gy]))
    assert list(shifted["code"]) == ["a", "b"]
    assert stored.geometry.iloc[0].bounds[0] == x  # the input is left alone
    back = ov.point_from_gcj02(*ov.point_to_gcj02(x, y))
    assert back == pytest.approx((x, y), abs=1e-8)


def test_kpi_rows_formats_by_kind() -> None:
    table = pd.DataFrame(
        [
            {"figure": "closure_rate", "grid": 0.5, "street": 0.987},
            {"figure": "reported", "grid": 7.0, "street": None},
        ]
    )
    from geo.kpis import FIGURES

    shown = ov.kpi_rows(table, FIGURES, "zh")
    assert shown.values.tolist() == [["办结率", "50%", "99%"], ["上报事件数", "7", "—"]]


def test_base_map_opens_at_a_view_instead_of_fitting() -> None:
    m = layers.base_map((120, 36, 120.1, 36.1), view=(36.05, 120.02, 16))
    html = m.get_root().render()
    assert "fitBounds" not in html
    assert m.location == [36.05, 120.02]
    with pytest.raises(ValueError, match="lat before lon"):
        layers.base_map((120, 36, 120.1, 36.1), view=(120.02, 36.05, 16))


def test_point_layer_unclusters_from_a_zoom() -> None:
    pts = gpd.GeoDataFrame(
        {"k": ["a", "b"]}, geometry=[shapely.Point(120, 36), shapely.Point(120.001, 36)], crs=4326
    )
    m = folium.Map()
    layers.point_layer(pts, name="x", cluster=True, cluster_until_zoom=16).add_to(m)
    assert '"disableClusteringAtZoom": 16' in m.get_root().render()
    with pytest.raises(ValueError, match="without cluster"):
        layers.point_layer(pts, name="x", cluster_until_zoom=16)


def test_indicator_per_1000_and_category() -> None:
    reported = pd.Series([5.0, 0.0, 2.0], index=["g1", "g2", "g3"])
    households = pd.Series({"g1": 500, "g2": 0, "g3": 1000})
    out = geo_overview.per_1000_households(reported, households)
    assert out["g1"] == 10.0 and np.isnan(out["g2"]) and out["g3"] == 2.0


def test_opening_view() -> None:
    q = dataclasses.replace(DEFAULTS, lat=36.1, lng=120.2, zoom=14.0)
    assert ov.opening_view(q, None) == (36.1, 120.2, 14.0)
    assert ov.opening_view(dataclasses.replace(q, zoom=None), (120.3, 36.3)) == (
        36.3,
        120.3,
        ov.INCIDENT_ZOOM,
    )
    assert ov.opening_view(DEFAULTS, None) is None


def test_grid_panel_masks_phones_and_shows_local_times() -> None:
    utc = dt.UTC
    contacts = pd.DataFrame(
        {
            "role": ["grid_worker", "police"],
            "name": ["黄兰", "李军"],
            "phone": ["17012349256", None],
        }
    )
    open_now = pd.DataFrame(
        {
            "code": ["SJ1"],
            "title": ["积水"],
            "category_zh": ["城市管理"],
            "category_en": ["City"],
            "status": ["handling"],
            "reported_at": [dt.datetime(2026, 11, 18, 1, 30, tzinfo=utc)],
            "deadline": [dt.datetime(2026, 11, 20, 16, 0, tzinfo=utc)],
        }
    )
    patrols = pd.DataFrame(
        {
            "worker_name": ["黄兰"],
            "started_at": [dt.datetime(2026, 11, 18, 0, 0, tzinfo=utc)],
            "ended_at": [dt.datetime(2026, 11, 18, 1, 0, tzinfo=utc)],
            "length_m": [3149.0],
        }
    )
    panel = ov.grid_panel(
        contacts,
        {"households": 252, "floating": 232},
        open_now,
        patrols,
        text=lambda k: k,
        lang="zh",
        tz="Asia/Shanghai",
    )
    assert panel.contacts["ov_phone"].tolist() == ["170****9256", "—"]
    assert panel.contacts["ov_role"].tolist() == ["网格员", "网格警员"]
    assert panel.population.values.tolist() == [["pop_households", 252], ["pop_floating", 232]]
    assert panel.open_incidents["ov_reported"].tolist() == ["11-18 09:30"]
    assert panel.open_incidents["ov_deadline"].tolist() == ["11-21 00:00"]
    assert panel.patrols.values.tolist() == [["黄兰", "11-18 08:00", "11-18 09:00", 3149]]


def test_indicator_layer_carries_class_and_value() -> None:
    g = grids_frame()
    values = pd.Series({"370214900001002": 0.5})  # the other grid has no value
    drawn, classes = ov.indicator_layer(g, values, "closure_rate", no_data="无数据")
    assert drawn["__class"].tolist() == [0, -1]
    assert drawn["__value"].tolist() == ["50%", "—"]
    assert classes.entries[-1] == (ov.NO_DATA_COLOR, "无数据")


def test_incident_layer_colours_and_legend() -> None:
    inc = gpd.GeoDataFrame(
        {
            "code": ["a", "b"],
            "category_code": ["0101", "0302"],
            "category_zh": ["邻里纠纷", "占道"],
            "category_en": ["Neighbours", "Street"],
            "status": ["closed", "handling"],
        },
        geometry=[shapely.Point(120, 36), shapely.Point(120.1, 36)],
        crs=4326,
    )
    palette = {"01": "#d62728", "02": "#ff7f0e", "03": "#1f77b4"}
    out, entries = ov.incident_layer(inc, "category", palette, CATS, "zh")
    assert out["__color_key"].tolist() == ["01", "03"]
    assert entries == [("#d62728", "矛盾纠纷"), ("#1f77b4", "城市管理")]
    assert out["status"].tolist() == ["已结案", "处置中"]
    out, entries = ov.incident_layer(
        inc, "status", {"handling": "#000", "closed": "#111"}, CATS, "en"
    )
    assert out["__color_key"].tolist() == ["closed", "handling"]
    assert [e[0] for e in entries] == ["#000", "#111"]
    assert out["category"].tolist() == ["Neighbours", "Street"]


def test_street_all_is_the_whole_district_and_round_trips() -> None:
    two = {"370214900000": "示范街道", "370214901000": "第二街道"}
    defaults = ov.default_query(dt.date(2026, 11, 20), two)
    q, bad = ov.parse_query({"street": "all"}, defaults=defaults, streets=two, categories=CATS)
    assert bad == [] and q.street is None
    assert ov.to_params(q)["street"] == ov.ALL_STREETS
    back, _ = ov.parse_query(ov.to_params(q), defaults=defaults, streets=two, categories=CATS)
    assert back == q
    # with one street, "all" is that street (the selectbox offers nothing else)
    one, bad = parse({"street": "all"})
    assert bad == [] and one.street == "370214900000"


def test_map_base_changes_with_outlines_not_with_filters() -> None:
    """A filter change keeps the map's base (the browser swaps the layers in place); what
    changes the outlines, the basemap or the view it opens at does not."""
    base = ov.map_base(DEFAULTS)
    for change in (
        {"category": "01"},
        {"status": "closed"},
        {"start": dt.date(2026, 10, 1)},
        {"indicator": "closure_rate"},
        {"color_by": "status"},
        {"layers": (*DEFAULTS.layers, "heat")},
        {"lat": 36.3, "lng": 120.4, "zoom": 15.0, "grid": "370214900003002"},
    ):
        assert ov.map_base(dataclasses.replace(DEFAULTS, **change)) == base, change
    for change in (
        {"street": None},
        {"community": "370214900003"},
        {"gcj02": True},
        {"layers": ("indicator", "incidents")},
        {"layers": (*DEFAULTS.layers, "basemap")},
        {"incident": "SJ-2026-000123"},
    ):
        assert ov.map_base(dataclasses.replace(DEFAULTS, **change)) != base, change


def _onemap_data(covered: bool):
    from dashboard.maps import OneMapLayers
    from dashboard.offline import use_local_assets

    use_local_assets("/app/static/vendor")

    grids = gpd.GeoDataFrame(
        {
            "code": [f"37021490000300{i}" for i in range(1, 5)],
            "name": [f"第{i}网格" for i in range(1, 5)],
            "community_name": ["一社区"] * 4,
            "worker_name": ["张三", "李四", "王五", "赵六"],
        },
        geometry=[shapely.box(120.40 + 0.01 * i, 36.3, 120.41 + 0.01 * i, 36.31) for i in range(4)],
        crs=4326,
    )
    values = pd.Series([1.0, 5.0, np.nan, 9.0], index=grids["code"])
    drawn, classes = ov.indicator_layer(grids, values, "per_1000", no_data="无数据")
    heat = None
    if covered:
        heat = gpd.GeoDataFrame(
            {"density_km2": [1.0, 2.0]},
            geometry=[shapely.box(120.40, 36.3, 120.405, 36.305)] * 2,
            crs=4326,
        )
    data = OneMapLayers(
        grids=grids,
        indicator=drawn,
        indicator_colors=classes.colors,
        indicator_legend=("每千户事件数", classes.entries),
        heat=heat,
    )
    return data, drawn, classes


def test_onemap_layers_colour_the_base_outlines_without_resending_them() -> None:
    from dashboard import map_render, maps

    data, drawn, classes = _onemap_data(covered=False)
    base = map_render.render(maps.onemap_base(data.grids, view_in_url=True))
    assert all(code in base.script for code in data.grids["code"])
    assert "gridoneFill" in base.script and "ViewInUrl" not in base.script
    script = map_render.render_layers(maps.onemap_layers(data))
    assert "Polygon" not in script  # the outlines stay in the base
    fill = re.search(r"\|\| function \(\) \{\}\)\((\{.*?\})\);", script, re.S)
    assert fill is not None
    sent = json.loads(fill.group(1))
    for code, cls, value in zip(drawn["code"], drawn["__class"], drawn["__value"], strict=True):
        index, shown = sent["by"][code]
        assert sent["colors"][index] == classes.colors[cls]
        assert shown == value
    assert json.dumps("每千户事件数") in script and "onRemove" in script  # the legend


def test_onemap_layers_draw_a_covered_indicator_under_the_outlines() -> None:
    from dashboard import map_render, maps

    data, _, _ = _onemap_data(covered=True)
    script = map_render.render_layers(maps.onemap_layers(data))
    assert f'"pane": "{maps.UNDER_PANE}"' in script
    assert "Polygon" in script  # the indicator as polygons, under density
    assert re.search(r"\|\| function \(\) \{\}\)\(null\)", script)
    whole = maps.onemap(data).get_root().render()
    assert whole.index("window.gridoneFill[") < whole.index("(null)")
