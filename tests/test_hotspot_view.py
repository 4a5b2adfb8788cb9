"""The 热点 page's state in the URL, its ranked lists and its map, without a browser."""

from __future__ import annotations

import datetime as dt
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import box

from dashboard import hotspot_view as hv
from dashboard import maps
from dashboard.offline import use_local_assets
from geo.coverage import under_patrolled
from geo.hotspots import LABELS

STREETS = {"370214900000": "示范街道"}
CATEGORIES = ["01", "0101", "03"]
LAST = dt.date(2026, 11, 20)


def defaults() -> hv.HotspotQuery:
    return hv.default_query(LAST, STREETS)


def parse(params: dict[str, str]) -> tuple[hv.HotspotQuery, list[hv.BadParam]]:
    return hv.parse_query(params, defaults=defaults(), streets=STREETS, categories=CATEGORIES)


def test_default_is_gi_on_grids_over_the_90_days_up_to_the_latest_incident() -> None:
    q = defaults()
    assert (q.method, q.street, q.category, q.resolution, q.fdr) == (
        "grid",
        "370214900000",
        None,
        None,
        True,
    )
    assert (q.start, q.end, q.end_exclusive) == (
        dt.date(2026, 8, 23),
        LAST,
        dt.date(2026, 11, 21),
    )
    assert (q.end - q.start).days + 1 == hv.DEFAULT_DAYS
    two = hv.default_query(None, ["a", "b"], today=dt.date(2026, 1, 1))
    assert two.street is None and two.end == dt.date(2026, 1, 1)  # all streets, no data


def test_url_round_trip() -> None:
    q = hv.HotspotQuery(
        method="emerging",
        street="370214900000",
        start=dt.date(2026, 1, 1),
        end=dt.date(2026, 6, 30),
        category="0101",
        unit="hex",
        resolution=10,
        fdr=False,
        bin="month",
    )
    params = hv.to_params(q)
    assert params["resolution"] == "10" and params["fdr"] == "0" and params["from"] == "2026-01-01"
    assert parse(params) == (q, [])
    auto = hv.to_params(defaults())
    assert auto["resolution"] == "auto" and "category" not in auto
    assert parse(auto) == (defaults(), [])


def test_url_example_reproduces_hexagons() -> None:
    q, bad = parse({"method": "hex", "resolution": "10"})
    assert bad == [] and q.method == "hex" and q.resolution == 10 and q.uses_hexagons
    assert q.start == defaults().start  # what the link does not say stays default


@pytest.mark.parametrize(
    ("params", "key"),
    [
        ({"method": "magic"}, "method"),
        ({"resolution": "99"}, "resolution"),
        ({"resolution": "ten"}, "resolution"),
        ({"from": "2026-02-30"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2026-11-01", "to": "2026-10-01"}, "from/to"),
        ({"category": "99"}, "category"),
        ({"street": "x'; DROP TABLE grid;--"}, "street"),
        ({"unit": "county"}, "unit"),
        ({"fdr": "maybe"}, "fdr"),
        ({"bin": "day"}, "bin"),
    ],
)
def test_bad_url_values_fall_back_and_are_reported(params: dict[str, str], key: str) -> None:
    q, bad = parse({**params, "method": params.get("method", "hex")})
    assert [b.key for b in bad] == [key]
    if key == "from/to":
        assert bad[0].value == "2026-11-01/2026-10-01"
    expected = defaults()
    field = {"from": "start", "to": "end", "from/to": "start"}.get(key, key)
    assert getattr(q, field) == getattr(expected, field)


def test_unknown_keys_are_ignored() -> None:
    assert parse({"zoom": "15", "embed": "true"}) == (defaults(), [])


# --- ranked lists ---------------------------------------------------------------------------


def units_frame(named: bool = True) -> gpd.GeoDataFrame:
    bins = [1, 3, 0, -2, 3]
    z = [1.8, 4.2, 0.1, -2.2, 4.2]
    return gpd.GeoDataFrame(
        {
            "unit": ["g1", "g2", "g3", "g4", "g5"],
            "name": ["一网格", "二网格", "三网格", "四网格", "五网格"] if named else [None] * 5,
            "count": [9, 20, 3, 0, 25],
            "z": z,
            "bin": bins,
            "label_zh": [LABELS[b][0] for b in bins],
            "label_en": [LABELS[b][1] for b in bins],
        },
        geometry=[box(120.40 + 0.01 * i, 36.30, 120.41 + 0.01 * i, 36.31) for i in range(5)],
        crs=4326,
    )


def test_hot_units_hottest_first_ties_by_count() -> None:
    table = hv.hot_units(units_frame())
    assert list(table.columns) == ["排名", "单元", "编码", "事件数", "z值", "等级"]
    assert table["编码"].tolist() == ["g5", "g2", "g1"]  # equal z: more incidents first
    assert table["排名"].tolist() == [1, 2, 3]
    assert table.iloc[0]["等级"] == "热点（99%置信度）"
    en = hv.hot_units(units_frame(), "en")
    assert list(en.columns)[:2] == ["Rank", "Unit"] and en.iloc[2]["Class"].startswith("Hot")


def test_hexagons_are_listed_with_the_grid_they_lie_in() -> None:
    grids = gpd.GeoDataFrame(
        {"code": ["G"], "name": ["示范网格"]},
        geometry=[box(120.40, 36.30, 120.43, 36.31)],
        crs=4326,
    )
    table = hv.hot_units(units_frame(named=False), grids=grids)
    assert list(table.columns) == ["排名", "编码", "所在网格", "事件数", "z值", "等级"]
    assert table["所在网格"].tolist() == ["（不在网格内）", "示范网格", "示范网格"]  # g5 is out


def test_containing_grid_is_none_outside() -> None:
    grids = gpd.GeoDataFrame(
        {"name": ["甲"]}, geometry=[box(120.40, 36.30, 120.41, 36.31)], crs=4326
    )
    assert hv.containing_grid(units_frame(), grids).tolist() == ["甲", None, None, None, None]
    assert hv.containing_grid(units_frame(), None).tolist() == [None] * 5


def test_under_patrolled_list_keeps_geo_order_and_labels() -> None:
    units = units_frame()
    coverage = pd.Series({"g1": 0.5, "g2": 0.95, "g5": np.nan}, name="coverage")
    under = under_patrolled(units, coverage, 0.8)  # geo: hottest, then least covered
    table = hv.under_patrolled_units(under)
    assert table["编码"].tolist() == ["g5", "g1"]  # g2 is covered enough; g5 has no figure
    assert table["等级"].tolist() == ["热点（99%置信度）", "热点（90%置信度）"]
    assert table["巡查覆盖率（%）"].iloc[1] == 50
    assert table["情况"].tolist() == ["热点，无覆盖数据", "热点但巡查不足（覆盖50%）"]


def test_density_classes() -> None:
    codes, uppers = maps.density_classes([0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    assert codes[:2].tolist() == [0, 0]
    assert codes[2:].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert uppers[-1] == 10
    zero, none = maps.density_classes(np.zeros(3))
    assert zero.tolist() == [0, 0, 0] and none == []


@pytest.mark.parametrize("kind", ["hotspots", "density"])
def test_hotspot_map_draws_every_unit_with_a_legend(kind: str) -> None:
    use_local_assets()
    units = units_frame().assign(density_km2=[0.0, 5.0, 1.0, 0.0, 9.0])
    m = maps.hotspot_map(units, kind=kind)  # type: ignore[arg-type]
    html = m.get_root().render()
    assert "gridone-legend" in html and "paddingBottomRight" in html
    if kind == "hotspots":
        assert html.count(f'"__color": "{maps.HOT_COLORS[3]}"') == 2
        assert json.dumps("热点（99%置信度）") in html  # the legend, as folium writes JSON
    with pytest.raises(ValueError, match="no analysis units"):
        maps.hotspot_map(units.iloc[:0], kind=kind)  # type: ignore[arg-type]
