"""一张图 · Overview map: boundaries, grids, buildings and incidents of a street."""

from __future__ import annotations

import streamlit as st
from streamlit_folium import st_folium

from dashboard import data
from dashboard.i18n import t
from dashboard.maps import overview_map

s = data.settings()
lang = s.language
st.title(t("page_overview", lang))

streets = data.street_names()
options = [None, *streets] if len(streets) > 1 else list(streets)
street = st.sidebar.selectbox(
    t("street", lang),
    options,
    format_func=lambda c: t("all_streets", lang) if c is None else streets[c],
)
summary = data.summary()
if summary.grids == 0:
    st.info(t("empty_store", lang))
    st.stop()
st.caption(
    t(
        "summary",
        lang,
        streets=summary.streets,
        grids=summary.grids,
        buildings=summary.buildings,
        incidents=summary.incidents,
    )
)
m = overview_map(
    data.overview(street),
    lang=lang,
    tile_url=s.tile_url,
    attribution=s.tile_attribution,
    max_zoom=s.map_max_zoom,
)
st_folium(m, height=680, use_container_width=True, returned_objects=[], key="overview")
