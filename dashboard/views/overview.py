"""一张图 · Overview map: grids coloured by an indicator, boundaries, incidents and the other
layers, each switchable; clicking a grid opens its panel. The whole view (filters, layers,
map centre and zoom) lives in the URL (``dashboard.overview_view``)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from dashboard import access_view, auth, data, data_access, map_render
from dashboard import data_overview as dov
from dashboard import overview_view as ov
from dashboard.i18n import t
from dashboard.maps import CATEGORY_COLORS, STATUS_COLORS, OneMapLayers
from geo import overview as geo_overview
from geo.kpis import FIGURES
from store.vocab import INCIDENT_STATUSES, label

s = data.settings()
lang = data.language()
st.title(t("page_overview", lang))
if data.summary().grids == 0:
    st.info(t("empty_store", lang))
    st.stop()

streets = data.street_names()
cats = data.categories()
cat_names = dict(zip(cats["code"], cats["name_zh" if lang == "zh" else "name_en"], strict=True))
defaults = ov.default_query(data.latest_incident_day(), streets)
url, bad = ov.parse_query(
    st.query_params.to_dict(), defaults=defaults, streets=streets, categories=cat_names
)
for b in bad:
    st.warning(
        t("bad_param", lang, name=b.key, value=b.value, used=b.used or t("default_value", lang))
    )
for key, value in {
    "ov_street": url.street or "",
    "ov_community": url.community or "",
    "ov_period": (url.start, url.end),
    "ov_category": url.category or "",
    "ov_status": url.status or "",
    "ov_layers": list(url.layers),
    "ov_indicator": url.indicator,
    "ov_color_by": url.color_by,
    "ov_gcj02": url.gcj02,
    "ov_day": url.track_day,
    "ov_days": url.days,
    "ov_grid": url.grid,
}.items():
    st.session_state.setdefault(key, value)

bar = st.sidebar
street = (
    bar.selectbox(
        t("street", lang),
        ["", *streets] if len(streets) > 1 else list(streets),
        key="ov_street",
        format_func=lambda c: streets[c] if c else t("all_streets", lang),
    )
    or None
)
comms = dov.communities(street)
if st.session_state["ov_community"] not in ("", *comms):
    st.warning(t("ov_unknown_code", lang, what=t("ov_community", lang), code=url.community))
    st.session_state["ov_community"] = ""
community = (
    bar.selectbox(
        t("ov_community", lang),
        ["", *comms],
        key="ov_community",
        format_func=lambda c: comms[c] if c else t("ov_all_communities", lang),
    )
    or None
)
period = bar.date_input(t("ov_period", lang), key="ov_period", format="YYYY-MM-DD")
category = (
    bar.selectbox(
        t("ov_category", lang),
        ["", *cat_names],
        key="ov_category",
        format_func=lambda c: (
            ("　" * (len(c) // 2 - 1)) + cat_names[c] if c else t("ov_all_categories", lang)
        ),
    )
    or None
)
status = (
    bar.selectbox(
        t("ov_status", lang),
        ["", *INCIDENT_STATUSES],
        key="ov_status",
        format_func=lambda c: (
            label("incident_status", c, lang) if c else t("ov_all_statuses", lang)
        ),
    )
    or None
)
layer_names = bar.multiselect(
    t("ov_layers", lang),
    list(ov.LAYERS),
    key="ov_layers",
    format_func=lambda n: t(f"ov_layer_{n}", lang),
)
chosen = ov.layer_list(layer_names)
indicator = bar.selectbox(
    t("ov_indicator", lang),
    list(geo_overview.INDICATORS),
    key="ov_indicator",
    format_func=lambda k: geo_overview.INDICATORS[k][0 if lang == "zh" else 1],
)
color_by = bar.radio(
    t("ov_color_by", lang),
    ov.COLOR_BY,
    key="ov_color_by",
    horizontal=True,
    format_func=lambda c: t(f"ov_color_{c}", lang),
)
day = (
    bar.date_input(t("ov_track_day", lang), key="ov_day", format="YYYY-MM-DD")
    if "tracks" in chosen
    else url.track_day
)
days = (
    bar.selectbox(
        t("ov_unvisited_days", lang),
        ov.UNVISITED_DAYS,
        key="ov_days",
        format_func=lambda d: t("ov_days_option", lang, days=d),
    )
    if "unvisited" in chosen
    else url.days
)
gcj02 = bar.toggle(t("ov_gcj02", lang), key="ov_gcj02", help=t("ov_gcj02_help", lang))
if s.tile_url is None:
    bar.caption(t("ov_basemap_unset", lang))
if not isinstance(period, tuple) or len(period) != 2:
    st.info(t("ov_pick_end", lang))
    st.stop()

grids = dov.grids(street, community)
if grids.empty:
    st.info(t("empty_store", lang))
    st.stop()
grid = st.session_state["ov_grid"]
if grid is not None and grid not in set(grids["code"]):
    st.warning(t("ov_unknown_code", lang, what=t("ov_grid", lang), code=grid))
    grid = st.session_state["ov_grid"] = None
start, end = period
q = ov.OverviewQuery(
    street,
    community,
    grid,
    url.incident,
    url.lat,
    url.lng,
    url.zoom,
    start,
    end,
    category,
    status,
    chosen,
    indicator,
    color_by,
    gcj02,
    day if day != end else None,
    days,
)
end_x = q.end_exclusive

# --- layers ---------------------------------------------------------------------------------
shift = ov.to_gcj02 if gcj02 else (lambda g: g)
unit_kpis = dov.grid_kpis(street, start, end_x)
households = grids.set_index("code")["households"]
two, window = dov.two_patrol(street, start, end) if indicator == "two_patrol" else (None, None)
values = geo_overview.grid_indicator(
    unit_kpis, indicator, households=households, category=category, two_patrol=two
)
ind_name = geo_overview.INDICATORS[indicator][0 if lang == "zh" else 1]
drawn, classes = ov.indicator_layer(grids, values, indicator, no_data=t("ov_no_data", lang))
palette = CATEGORY_COLORS if color_by == "category" else STATUS_COLORS
n_incidents = dov.incident_total(street, community, start, end_x, category, status)
inc = counts = None
inc_entries: list[tuple[str, str]] = []
if "incidents" in chosen and n_incidents <= ov.POINT_LIMIT:
    incidents = dov.incidents(street, community, None, start, end_x, category, status)
    inc, inc_entries = ov.incident_layer(incidents, color_by, palette, cat_names, lang)
elif "incidents" in chosen:  # too many to send one by one: counts per grid from PostGIS
    per_grid = dov.incident_counts(
        street, community, start, end_x, category, status, color_by == "status"
    )
    counts, inc_entries = ov.count_layer(per_grid, color_by, palette, cat_names, lang)
streets_gdf, comms_gdf = dov.admin_outlines(street)
if community:
    comms_gdf = comms_gdf[comms_gdf["code"] == community]
linked = None
if q.incident:
    one = dov.incident(q.incident)
    if one.empty:
        st.warning(t("ov_incident_unknown", lang, code=q.incident))
    else:
        linked = ov.incident_layer(one, color_by, palette, cat_names, lang)[0]
extra: dict[str, object] = {}
if "heat" in chosen:
    extra["heat"] = dov.heat(street, start, end_x, category)
if "hotspots" in chosen:
    extra["hotspots"] = dov.hotspot_units(street, start, end_x, category)
if "tracks" in chosen:
    extra["tracks"] = dov.tracks(street, community, q.track_day)
    if extra["tracks"].empty:
        st.info(t("ov_no_tracks", lang, day=q.track_day))
if "unvisited" in chosen:
    unv = dov.unvisited(street, end, days)
    extra["unvisited"] = unv.assign(__label=t("ov_days_option", lang, days=days) + "+")
if "places" in chosen:
    pl = dov.places(street, community)
    extra["places"] = pl.assign(__kind=[label("place_kind", k, lang) for k in pl["kind"]])
if "cameras" in chosen:
    cam = dov.cameras(street, community)
    extra["cameras"] = cam.assign(__kind=[label("facility_kind", k, lang) for k in cam["kind"]])

# --- the view: a link's centre/zoom or incident, else fit the grids --------------------------
# The map is drawn anew only when its base changes (outlines, basemap, the linked incident:
# `base_of`); a filter change swaps its layers in place, where the user has moved it. The view
# it opens at changes with the base only, never with a pan or a click, or the map would be
# drawn again and a click made meanwhile lost. A new base opens where the user had moved to
# (the URL's centre and zoom, which the map keeps up to date).
shown = dataclasses.replace(q, lat=None, lng=None, zoom=None, grid=None)
base_of = ov.map_base(q)
at = None if linked is None else (linked.geometry.x.iloc[0], linked.geometry.y.iloc[0])
if st.session_state.get("ov_view_for") != base_of:
    st.session_state["ov_view"] = ov.opening_view(q, at)
    st.session_state["ov_view_for"] = base_of
view = st.session_state["ov_view"]
if view is not None and gcj02:
    lng, lat = ov.point_to_gcj02(view[1], view[0])
    view = (lat, lng, view[2])
boundaries = "boundaries" in chosen
layers_data = OneMapLayers(
    grids=shift(grids),
    streets=shift(streets_gdf) if boundaries else None,
    communities=shift(comms_gdf) if boundaries else None,
    indicator=shift(drawn) if "indicator" in chosen else None,
    indicator_colors=classes.colors,
    indicator_legend=(ind_name, classes.entries) if "indicator" in chosen else None,
    incidents=shift(inc) if inc is not None else None,
    incident_counts=shift(counts) if counts is not None else None,
    incident_palette=dict(palette),
    incident_legend=(t("layer_incidents", lang), inc_entries)
    if "incidents" in chosen and inc_entries
    else None,
    linked=shift(linked) if linked is not None else None,
    **{k: shift(v) for k, v in extra.items()},  # type: ignore[arg-type]
)
st.caption(t("ov_caption", lang, start=start, end=end, grids=len(grids), incidents=n_incidents))
if counts is not None:
    st.caption(
        t(
            "ov_counts_note",
            lang,
            n=n_incidents,
            limit=ov.POINT_LIMIT,
            what=t(f"ov_counts_key_{color_by}", lang),
        )
    )
if category:
    st.caption(t("ov_rates_note", lang))
if indicator == "two_patrol":
    st.caption(
        t("ov_two_patrol_days", lang, start=window[0], end=window[1])
        if window
        else t("ov_two_patrol_none", lang)
    )
base = dov.rendered_base(
    base_of,
    layers_data.grids,
    layers_data.streets,
    layers_data.communities,
    lang=lang,
    view=view,
    tile_url=s.tile_url if "basemap" in chosen else None,
    attribution=s.tile_attribution,
    max_zoom=s.map_max_zoom,
)
# The map keeps lat/lng/zoom of the URL itself as it moves (dashboard.maps.ViewInUrl): a pan
# runs nothing here. Shifted to GCJ-02, its centre is no URL coordinate: reported back instead.
out = map_render.show(
    base,
    layers=dov.rendered_layers(shown, layers_data, lang=lang),
    key="ov_map",
    height=640,
    returned_objects=("last_clicked", "center", "zoom") if gcj02 else ("last_clicked",),
)
clicked = (out or {}).get("last_clicked")
if clicked and clicked != st.session_state.get("ov_last_click"):
    st.session_state["ov_last_click"] = clicked
    hit = ov.grid_at(clicked["lng"], clicked["lat"], layers_data.grids)
    if hit and hit != grid:
        grid = st.session_state["ov_grid"] = hit
center, zoom = (out or {}).get("center"), (out or {}).get("zoom")
if center and zoom is not None:
    lng, lat = center["lng"], center["lat"]
    if gcj02:
        lng, lat = ov.point_from_gcj02(lng, lat)
    q = dataclasses.replace(q, lat=lat, lng=lng, zoom=float(zoom))
q = dataclasses.replace(q, grid=grid)
st.query_params.from_dict(ov.to_params(q))

# --- the linked incident, the grid panel -----------------------------------------------------
if linked is not None:
    r = linked.iloc[0]
    st.subheader(t("ov_incident", lang, code=r["code"], title=r["title"]))
    when = pd.Timestamp(r["reported_at"]).tz_convert(s.timezone)
    st.write(f"{r['category']} · {r['status']} · {when:%Y-%m-%d %H:%M} · {r['address'] or ''}")
if grid is None:
    st.caption(t("ov_click_hint", lang))
    st.stop()
row = grids.set_index("code").loc[grid]
st.subheader(t("ov_panel", lang, name=row["name"], code=grid))
if st.button(t("ov_panel_close", lang)):
    st.session_state["ov_grid"] = None
    st.query_params.from_dict(ov.to_params(dataclasses.replace(q, grid=None)))
    st.rerun()
contacts, population, patrols, open_now = dov.grid_details(grid)
panel = ov.grid_panel(
    contacts, population, open_now, patrols, text=lambda k: t(k, lang), lang=lang, tz=s.timezone
)
grid_row = unit_kpis.current.loc[grid] if grid in unit_kpis.current.index else pd.Series()
street_figures = dov.unit_figures(grid[:9] + "000", start, end_x)
kpi_table = ov.kpi_rows(
    geo_overview.compare_with_street(grid_row, street_figures, ov.PANEL_KPIS), FIGURES, lang
).set_axis([t("ov_col_figure", lang), t("ov_col_grid", lang), t("ov_col_street", lang)], axis=1)
left, right = st.columns(2)
left.markdown(f"**{t('ov_contacts', lang)}**")
left.table(panel.contacts.style.hide(axis="index"))
left.markdown(f"**{t('ov_population', lang)}**")
left.table(panel.population.style.hide(axis="index"))
viewer = auth.current_user()
if viewer is not None and viewer.sees_special_groups:  # district and street leaders only
    groups = data_access.special_groups(grid)
    if groups is not None:
        left.markdown(f"**{t('au_special_groups', lang)}**")
        sg = access_view.special_group_table(
            groups,
            text=lambda k: t(k, lang),
            figure=t("ov_col_figure", lang),
            value=t("ov_value", lang),
        )
        left.table(sg.style.hide(axis="index"))
        left.caption(t("au_sg_note", lang))
right.markdown(f"**{t('ov_kpis', lang)}**")
right.table(kpi_table.style.hide(axis="index"))
st.markdown(f"**{t('ov_open', lang, n=len(open_now))}**")
if open_now.empty:
    st.caption(t("ov_none_open", lang))
else:
    st.caption(t("ov_overdue_n", lang, n=int(grid_row.get("open_overdue", 0) or 0)))
    st.table(panel.open_incidents.style.hide(axis="index"))
st.markdown(f"**{t('ov_patrols', lang)}**")
if patrols.empty:
    st.caption(t("ov_no_patrols", lang))
else:
    st.table(panel.patrols.style.hide(axis="index"))
