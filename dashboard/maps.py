"""Whole maps composed from the layer builders: pure functions, data in, folium map out."""

from __future__ import annotations

from dataclasses import dataclass

import folium
import geopandas as gpd

from dashboard import layers
from dashboard.i18n import t
from dashboard.offline import localize_map
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


@dataclass(frozen=True)
class OverviewData:
    """What the overview map shows; every frame in EPSG:4326."""

    streets: gpd.GeoDataFrame
    communities: gpd.GeoDataFrame
    grids: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    incidents: gpd.GeoDataFrame


def overview_map(
    data: OverviewData,
    *,
    lang: Lang = "zh",
    tile_url: str | None = None,
    attribution: str = "",
    max_zoom: int = 18,
) -> folium.Map:
    """The 一张图 map: boundaries, grids with their key facts, buildings, incidents.

    Raises
    ------
    ValueError
        When there are no grids to draw (the caller shows an empty-store message instead).
    """
    if data.grids.empty:
        raise ValueError("no grids to draw")
    m = layers.base_map(
        data.grids.total_bounds, tile_url=tile_url, attribution=attribution, max_zoom=max_zoom
    )
    localize_map(m, max_zoom=max_zoom)
    grid_fields = ["code", "name", "community_name", "households", "worker_name", "buildings"]
    grid_aliases = [
        t(k, lang)
        for k in ("grid_code", "grid_name", "community", "households", "worker", "buildings")
    ]
    layers.boundary_layer(
        data.grids,
        name=t("layer_grids", lang),
        color=GRID_COLOR,
        weight=1,
        fill_opacity=0.08,
        tooltip_fields=grid_fields,
        tooltip_aliases=grid_aliases,
    ).add_to(m)
    layers.boundary_layer(
        data.communities,
        name=t("layer_communities", lang),
        color=COMMUNITY_COLOR,
        weight=2,
        fill_opacity=0.0,
    ).add_to(m)
    layers.boundary_layer(
        data.streets,
        name=t("layer_streets", lang),
        color=STREET_COLOR,
        weight=3,
        fill_opacity=0.0,
    ).add_to(m)
    if not data.buildings.empty:
        layers.building_layer(
            data.buildings,
            name=t("layer_buildings", lang),
            tooltip_fields=["address", "floors"],
            tooltip_aliases=[t("address", lang), t("floors", lang)],
            show=False,  # thousands of footprints hide the grids at street zoom
        ).add_to(m)
    if not data.incidents.empty:
        incidents = data.incidents.copy()
        incidents["category"] = incidents["category_zh" if lang == "zh" else "category_en"]
        layers.point_layer(
            incidents,
            name=t("layer_incidents", lang),
            color_column="category_group",
            palette=CATEGORY_COLORS,
            cluster=True,
            popup_fields=["title", "category", "status"],
            popup_aliases=[t("title", lang), t("category", lang), t("status", lang)],
        ).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return m
