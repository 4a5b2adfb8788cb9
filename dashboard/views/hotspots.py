"""热点 · Hotspots: kernel density, Gi* hot spots on grids or hexagons, or emerging trends,
with parameters a non-statistician can leave alone, the map, the ranked list and the caveats.

The filter state lives in the URL (``dashboard.hotspot_view``), so a link reproduces the view.
"""

from __future__ import annotations

import streamlit as st
from streamlit_folium import st_folium

from dashboard import data
from dashboard import hotspot_view as hv
from dashboard.downloads import offer
from dashboard.i18n import t
from dashboard.maps import hotspot_map

s = data.settings()
lang = data.language()
st.title(t("page_hotspots", lang))
if data.summary().grids == 0:
    st.info(t("empty_store", lang))
    st.stop()

streets = data.street_names()
cats = data.categories()
cat_names = dict(zip(cats["code"], cats["name_zh" if lang == "zh" else "name_en"], strict=True))
defaults = hv.default_query(data.latest_incident_day(), streets)
url, bad = hv.parse_query(
    st.query_params.to_dict(), defaults=defaults, streets=streets, categories=cat_names
)
for b in bad:
    st.warning(
        t("bad_param", lang, name=b.key, value=b.value, used=b.used or t("default_value", lang))
    )

# Widgets start from the URL's state; afterwards the widgets are the state.
for key, value in {
    "hs_method": url.method,
    "hs_street": url.street or "",
    "hs_period": (url.start, url.end),
    "hs_category": url.category or "",
    "hs_unit": url.unit,
    "hs_resolution": url.resolution or 0,
    "hs_fdr": url.fdr,
    "hs_bin": url.bin,
    "hs_patrol_days": url.patrol_days,
    "hs_patrol_min": url.patrol_min,
}.items():
    if key not in st.session_state:
        st.session_state[key] = value

bar = st.sidebar
method = bar.radio(
    t("hs_method", lang), hv.METHODS, key="hs_method", format_func=lambda m: t(f"method_{m}", lang)
)
bar.caption(t(f"help_method_{method}", lang))
# "" is "all": a None option would read as "nothing chosen" to a selectbox (placeholder shown)
street = bar.selectbox(
    t("street", lang),
    ["", *streets] if len(streets) > 1 else list(streets),
    key="hs_street",
    format_func=lambda c: streets[c] if c else t("all_streets", lang),
)
bar.caption(t("street_help", lang))
period = bar.date_input(t("hs_period", lang), key="hs_period", format="YYYY-MM-DD")
bar.caption(t("help_period", lang))
category = bar.selectbox(
    t("hs_category", lang),
    ["", *cat_names],
    key="hs_category",
    format_func=lambda c: (
        ("　" * (len(c) // 2 - 1)) + cat_names[c] if c else t("all_categories", lang)
    ),
)
bar.caption(t("help_category", lang))
unit, bin_, resolution, fdr = url.unit, url.bin, url.resolution, url.fdr
if method == "emerging":
    unit = bar.radio(
        t("hs_unit", lang), hv.UNITS, key="hs_unit", format_func=lambda u: t(f"unit_{u}", lang)
    )
    bar.caption(t("help_unit", lang))
    bin_ = bar.radio(
        t("hs_bin", lang), hv.BINS, key="hs_bin", format_func=lambda b: t(f"bin_{b}", lang)
    )
    bar.caption(t("help_bin", lang))
if hv.uses_hexagons(method, unit):
    resolution = (
        bar.selectbox(
            t("hs_resolution", lang),
            [0, *hv.RESOLUTIONS],  # 0 is "auto" (None would read as "nothing chosen")
            key="hs_resolution",
            format_func=lambda r: (
                t("res_option", lang, res=r, area=f"{hv.cell_area_km2(r):.3g}")
                if r
                else t("res_auto", lang)
            ),
        )
        or None
    )
    bar.caption(t("help_resolution", lang))
if method != "density":
    fdr = bar.toggle(t("hs_fdr", lang), key="hs_fdr")
    bar.caption(t("help_fdr", lang))
patrol_days, patrol_min = url.patrol_days, url.patrol_min
if method in ("grid", "hex"):
    bar.subheader(t("under_title", lang))
    patrol_days = bar.selectbox(
        t("hs_patrol_days", lang),
        hv.PATROL_DAYS,
        key="hs_patrol_days",
        format_func=lambda d: t("patrol_days_option", lang, days=d),
    )
    bar.caption(t("help_patrol_days", lang))
    patrol_min = bar.select_slider(
        t("hs_patrol_min", lang), hv.PATROL_MINS, key="hs_patrol_min", format_func="{}%".format
    )
    bar.caption(t("help_patrol_min", lang))
if not isinstance(period, tuple) or len(period) != 2:
    st.info(t("pick_end", lang))
    st.stop()
q = hv.HotspotQuery(
    method,
    street or None,
    period[0],
    period[1],
    category or None,
    unit,
    resolution,
    fdr,
    bin_,
    patrol_days,
    patrol_min,
)
st.query_params.from_dict(hv.to_params(q))

if data.incident_count(q.street, q.start, q.end_exclusive, q.category) == 0:
    st.info(t("no_incidents", lang))
    st.stop()
if method == "emerging":
    n_bins = data.emerging_bins(q.start, q.end_exclusive, q.bin)
    if n_bins < data.EMERGING_MIN_BINS:
        word = t(f"bin_word_{q.bin}", lang)
        st.warning(t("emerging_too_short", lang, min=data.EMERGING_MIN_BINS, bin=word, n=n_bins))
        st.stop()

grids = data.grid_outlines(q.street)
try:
    result = hv.view(data.analysis(q), lang, grids=grids)
except ValueError as exc:  # too few units or incidents for the method: say so, no traceback
    st.error(t("analysis_failed", lang, error=exc))
    st.stop()

st.caption(result.summary)
m = hotspot_map(
    result.units,
    kind=result.kind,
    lang=lang,
    grids=grids,
    tile_url=s.tile_url,
    attribution=s.tile_attribution,
    max_zoom=s.map_max_zoom,
)
st_folium(m, height=620, use_container_width=True, returned_objects=[], key="hotspots_map")
for note in result.notes:
    st.info(note)

st.subheader(result.title)
if result.ranked.empty:
    st.info(result.empty)
else:
    shown = min(len(result.ranked), hv.TOP_ROWS)
    st.caption(t("ranked_caption", lang, n=len(result.ranked), shown=shown))
    st.table(result.ranked.head(hv.TOP_ROWS).style.format(precision=2).hide(axis="index"))
    offer(
        t("download_csv", lang),
        result.ranked,
        page="hotspots",
        what=f"hotspots_{q.method}",
        file_stem=f"hotspots_{q.method}_{q.start}_{q.end}",
        lang=lang,
        filters=hv.to_params(q),
    )

if result.kind == "hotspots":
    st.subheader(t("under_title", lang))
    end, days, least = q.end.isoformat(), q.patrol_days, q.patrol_min
    has_hot = bool((result.units["bin"] > 0).any())
    under = (
        data.under_patrolled(result.units, q.street, q.end, days, least / 100) if has_hot else None
    )
    if not has_hot:
        st.info(t("under_no_hot", lang))
    elif under is None:
        st.info(t("under_no_tracks", lang, days=days, end=end))
    elif under.empty:
        st.success(t("under_none", lang, days=days, min=least))
    else:
        st.caption(t("under_caption", lang, days=days, end=end, min=least))
        table = hv.under_patrolled_units(under, lang, grids=grids)
        st.table(table.style.format(precision=0, na_rep="—").hide(axis="index"))
