"""The 巡查 (patrol) map: grids coloured by the rule or a coverage share, a worker's track
replay and the buildings not passed. A pure function: data in, folium map out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import folium
import geopandas as gpd

from dashboard import layers
from dashboard.i18n import t
from dashboard.maps import LEGEND_ROOM_PX
from dashboard.offline import localize_map
from dashboard.patrol_view import SESSION_COLORS, Replay
from store.vocab import Lang

#: Outline of the grids (tests find the grid polygons by it).
GRID_LINE = "#ffffff"
#: Dashed line of a step with the signal lost, and the dropped fixes.
GAP_COLOR = "#555555"
DROPPED_COLOR = "#e31a1c"
#: Buildings not passed, by the longest window (7 / 14 / 30 days).
UNVISITED_COLORS: dict[int, str] = {7: "#fdae61", 14: "#f46d43", 30: "#a50026"}


def patrol_map(
    units: gpd.GeoDataFrame,
    colors: Mapping[int, str],
    entries: Sequence[tuple[str, str]],
    *,
    legend_title: str,
    lang: Lang = "zh",
    replay: Replay | None = None,
    unvisited: gpd.GeoDataFrame | None = None,
    tile_url: str | None = None,
    attribution: str = "",
    max_zoom: int = 18,
) -> folium.Map:
    """Grids filled by ``cls`` (``colors``, legend ``entries``), with tooltips ``grid_name``
    and ``__value``; then, when given, the buildings not passed (``not_passed_days``) and a
    replay: track stretches coloured by session, gaps dashed, dropped fixes as red rings,
    the position at the replay's moment as a filled dot.

    Raises
    ------
    ValueError
        When there are no grids to draw.
    """
    if units.empty:
        raise ValueError("no grids to draw")
    bounds = units.total_bounds
    points = [p for _s, stretch in replay.stretches for p in stretch] if replay else []
    if points:  # open on the track, not the whole street
        lats, lons = [p[0] for p in points], [p[1] for p in points]
        pad = 0.002  # degrees (~200 m): the grids around the track stay in view
        bounds = (min(lons) - pad, min(lats) - pad, max(lons) + pad, max(lats) + pad)
    m = layers.base_map(
        bounds,
        tile_url=tile_url,
        attribution=attribution,
        max_zoom=max_zoom,
        padding_bottom_right=(LEGEND_ROOM_PX, 0),
    )
    localize_map(m, max_zoom=max_zoom)
    layers.class_layer(
        units,
        name=t("pat_layer_grids", lang),
        column="cls",
        colors=colors,
        fill_opacity=0.55,
        line_color=GRID_LINE,
        weight=1,
        tooltip_fields=["grid_name", "grid_code", "__value"],
        tooltip_aliases=[t("pat_col_grid", lang), t("pat_col_code", lang), legend_title],
    ).add_to(m)
    legend_entries = list(entries)
    if unvisited is not None and not unvisited.empty:
        layers.point_layer(
            unvisited,
            name=t("pat_layer_unvisited", lang),
            color_column="not_passed_days",
            palette=UNVISITED_COLORS,
            radius=5,
            popup_fields=["building_code", "address", "__label"],
            popup_aliases=[
                t("pat_col_building", lang),
                t("pat_col_address", lang),
                t("pat_col_label", lang),
            ],
        ).add_to(m)
        for days in sorted(set(unvisited["not_passed_days"]), reverse=True):
            legend_entries.append(
                (
                    UNVISITED_COLORS.get(int(days), layers.OTHER_COLOR),
                    t("pat_window_option", lang, days=int(days)),
                )
            )
    if replay is not None:
        _add_replay(m, replay, lang)
        legend_entries.append((SESSION_COLORS[0], t("pat_layer_track", lang)))
        if replay.gaps:
            legend_entries.append((GAP_COLOR, t("pat_layer_gaps", lang)))
        if len(replay.dropped):
            legend_entries.append((DROPPED_COLOR, t("pat_layer_dropped", lang)))
    layers.legend(legend_title, legend_entries).add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


def _add_replay(m: folium.Map, replay: Replay, lang: Lang) -> None:
    track = folium.FeatureGroup(name=t("pat_layer_track", lang))
    for session, points in replay.stretches:
        color = SESSION_COLORS[session % len(SESSION_COLORS)]
        if len(points) > 1:
            folium.PolyLine(points, color=color, weight=3, opacity=0.9).add_to(track)
    for a, b in replay.gaps:
        folium.PolyLine([a, b], color=GAP_COLOR, weight=2, dash_array="6 6").add_to(track)
    if replay.position is not None:
        folium.CircleMarker(
            replay.position,
            radius=7,
            color="#000000",
            weight=2,
            fill=True,
            fill_color="#ffff33",
            fill_opacity=1.0,
        ).add_to(track)
    track.add_to(m)
    if len(replay.dropped):
        dropped = folium.FeatureGroup(name=t("pat_layer_dropped", lang))
        for row in replay.dropped.itertuples(index=False):
            folium.CircleMarker(
                (row.lat, row.lon),
                radius=5,
                color=DROPPED_COLOR,
                weight=2,
                fill=False,
                tooltip=f"{row.at} {row.why}",
            ).add_to(dropped)
        dropped.add_to(m)
