"""巡查 · Patrols: the two-patrol rule and coverage by grid and worker for a day or a week,
a worker-day track replay and the buildings nobody passed for 7/14/30 days.

Every figure comes from :mod:`geo.coverage` (cached by street and day in
``dashboard.data_patrol``); the filter state lives in the URL (``dashboard.patrol_view``).
"""

from __future__ import annotations

import datetime as dt

import streamlit as st
from streamlit_folium import st_folium

from dashboard import data, url_state
from dashboard import data_patrol as dp
from dashboard import patrol_view as pv
from dashboard.downloads import offer
from dashboard.i18n import t
from dashboard.patrol_maps import patrol_map

s = data.settings()
lang = data.language()
st.title(t("page_patrol", lang))
streets = data.street_names()
if data.summary().grids == 0 or not streets:
    st.info(t("empty_store", lang))
    st.stop()

first_run = "pat_day" not in st.session_state
street0 = st.query_params.get("street", next(iter(streets)))
defaults = pv.default_query(dp.latest_fix_day(street0 if street0 in streets else None), streets)
url, bad = pv.parse_query(st.query_params.to_dict(), defaults=defaults, streets=streets)
for key, value in {
    "pat_street": url.street or "",
    "pat_community": url.community or "",
    "pat_day": url.day,
    "pat_span": url.span,
    "pat_worker": url.worker or 0,
    "pat_window": url.window,
    "pat_color": url.color,
}.items():
    if key not in st.session_state:
        st.session_state[key] = value


def _shift_day(days: int) -> None:
    st.session_state["pat_day"] = st.session_state["pat_day"] + dt.timedelta(days=days)


bar = st.sidebar
street = bar.selectbox(
    t("street", lang), list(streets), key="pat_street", format_func=lambda c: streets[c]
)
comms = dp.communities(street)
if st.session_state["pat_community"] not in ("", *comms):
    if first_run:
        bad.append(url_state.BadParam("community", st.session_state["pat_community"], ""))
    st.session_state["pat_community"] = ""
community = bar.selectbox(
    t("pat_community", lang),
    ["", *comms],
    key="pat_community",
    format_func=lambda c: comms[c] if c else t("pat_all_communities", lang),
)
day = bar.date_input(t("pat_day", lang), key="pat_day", format="YYYY-MM-DD")
left, right = bar.columns(2)
left.button(t("pat_prev_day", lang), on_click=_shift_day, args=(-1,), key="pat_prev")
right.button(t("pat_next_day", lang), on_click=_shift_day, args=(1,), key="pat_next")
bar.caption(t("pat_day_help", lang))
span = bar.radio(
    t("pat_span", lang), pv.SPANS, key="pat_span", format_func=lambda v: t(f"pat_span_{v}", lang)
)
color = bar.radio(
    t("pat_color", lang),
    pv.COLOR_BYS,
    key="pat_color",
    format_func=lambda v: t(f"pat_color_{v}", lang),
)
window = bar.selectbox(
    t("pat_window", lang),
    pv.DEFAULT_WINDOWS,
    key="pat_window",
    format_func=lambda d: t("pat_window_option", lang, days=d),
)
for b in bad:
    st.warning(
        t("bad_param", lang, name=b.key, value=b.value, used=b.used or t("default_value", lang))
    )

params = dp.params()
st.caption(pv.rule_text(params, lang))
q = pv.PatrolQuery(street, community or None, day, span, None, window, color)
latest = dp.latest_fix_day(street)
if latest is None:
    st.info(t("pat_no_fixes_at_all", lang))
    st.stop()
missing = [d for d in q.days if not dp.has_fixes(street, d)]
if len(missing) == len(q.days):
    st.query_params.from_dict(pv.to_params(q))
    scope = comms.get(community, streets[street]) if community else streets[street]
    st.info(t("pat_no_tracks", lang, day=day.isoformat(), scope=scope, latest=latest))
    st.button(
        t("pat_go_latest", lang, day=latest),
        on_click=lambda: st.session_state.update(pat_day=latest),
        key="pat_go_latest",
    )
    st.stop()
try:
    with st.spinner(t("pat_loading", lang)):
        results = [dp.coverage_day(street, d) for d in q.days]
except ValueError as exc:  # e.g. a street without grids
    st.error(t("pat_failed", lang, error=exc))
    st.stop()
if missing:
    st.warning(t("pat_week_partial", lang, n=len(missing), days=", ".join(map(str, missing))))

workers = pv.worker_summary(results)
grid_sum = pv.grid_summary(results, q.community)
grids_in = set(grid_sum.frame["grid_code"]) if q.community else None
names = dict(zip(workers["worker_id"], workers["worker_name"], strict=True))
if st.session_state["pat_worker"] not in (0, *names):
    if first_run:
        bad_w = url_state.BadParam("worker", str(st.session_state["pat_worker"]), "")
        st.warning(t("bad_param", lang, name=bad_w.key, value=bad_w.value, used="—"))
    st.session_state["pat_worker"] = 0
worker = bar.selectbox(
    t("pat_worker", lang),
    [0, *names],
    key="pat_worker",
    format_func=lambda w: names[w] if w else t("pat_all_workers", lang),
)
q = pv.PatrolQuery(street, community or None, day, span, worker or None, window, color)
st.query_params.from_dict(pv.to_params(q))

# --- headline figures ---------------------------------------------------------------------
km = workers["distance_m"].sum() / 1000
if grids_in is not None:
    km = (
        workers[workers["own_grids"].map(lambda g: bool(set(g.split(",")) & grids_in))][
            "distance_m"
        ].sum()
        / 1000
    )
c1, c2, c3, c4 = st.columns(4)
c1.metric(
    t("pat_metric_met" if span == "day" else "pat_metric_met_week", lang),
    f"{grid_sum.grid_days_met} / {grid_sum.grid_days}",
)
c2.metric(t("pat_metric_patrols", lang), int(grid_sum.frame["counted_patrols"].sum()))
last = results[-1].grid_day
last = last if q.community is None else last[last["community_code"] == q.community]
share = last["buildings_passed"].sum() / max(1, last["buildings"].sum())
c3.metric(t("pat_metric_buildings", lang) + f"（{day:%m-%d}）", f"{share * 100:.0f}%")
c4.metric(t("pat_metric_km", lang), f"{km:.1f}")

# --- map: grids, replay, buildings not passed -------------------------------------------------
fixes = dp.worker_fixes(street, day, worker) if worker else None
replay = None
if fixes is not None and len(fixes):
    kept_times = fixes.loc[fixes["reason"] == 0, "at"]
    if len(kept_times):
        lo, hi = kept_times.min().to_pydatetime(), kept_times.max().to_pydatetime()
        until = st.slider(
            t("pat_replay_until", lang),
            min_value=lo,
            max_value=hi,
            value=hi,
            step=dt.timedelta(minutes=1),
            format="HH:mm",
            key=f"pat_until_{worker}_{day}",
        )
        replay = pv.replay(fixes, until, params, lang)
with st.spinner(t("pat_loading", lang)):
    unvisited = pv.unvisited_subset(dp.unvisited(street, day), window, grids_in, lang)
units, colors, entries = pv.grid_map_units(data.grid_outlines(street), grid_sum, color, span, lang)
title_key = "rule_week" if color == "rule" and span == "week" else color
m = patrol_map(
    units,
    colors,
    entries,
    legend_title=t(f"pat_legend_{title_key}", lang),
    lang=lang,
    replay=replay,
    unvisited=unvisited,
    tile_url=s.tile_url,
    attribution=s.tile_attribution,
    max_zoom=s.map_max_zoom,
)
st_folium(m, height=560, use_container_width=True, returned_objects=[], key="patrol_map")

if not worker:
    st.caption(t("pat_replay_pick", lang))
elif replay is None:
    st.info(t("pat_replay_none", lang, name=names[worker], day=day))
else:
    assert fixes is not None
    st.subheader(t("pat_replay_title", lang))
    if span == "week":
        st.caption(t("pat_replay_week", lang, day=day))
    kept = int((fixes["reason"] == 0).sum())
    st.caption(
        t(
            "pat_replay_caption",
            lang,
            name=names[worker],
            fixes=len(fixes),
            kept=kept,
            sessions=len(replay.sessions),
            step=f"{params.max_step_s:g}",
        )
    )
    left, right = st.columns(2)
    left.dataframe(replay.sessions, hide_index=True)
    right.markdown(f"**{t('pat_dropped_title', lang)}**")
    all_dropped = pv.replay(fixes, None, params, lang).dropped
    if all_dropped.empty:
        right.caption(t("pat_dropped_none", lang))
    else:
        right.dataframe(
            all_dropped.rename(
                columns={
                    "at": t("pat_col_time", lang),
                    "accuracy_m": t("pat_col_accuracy", lang),
                    "why": t("pat_col_why", lang),
                }
            ).drop(columns=["lat", "lon"]),
            hide_index=True,
        )


# --- tables, one tab each ------------------------------------------------------------------
names_tabs = [t("pat_grids_title", lang), t("pat_workers_title", lang)]
names_tabs += [f"{t('pat_unvisited_title', lang)}（{len(unvisited)}）"]
if span == "week":
    names_tabs.insert(1, t("pat_matrix_tab", lang))
tabs = iter(st.tabs(names_tabs))
with next(tabs):
    st.caption(
        t("pat_grids_caption", lang, inside=f"{params.rule.min_inside_min:g}")
        + ("" if span == "day" else " " + t("pat_grids_caption_week", lang))
    )
    table = pv.grid_table(grid_sum, span, lang)
    st.table(table.style.hide(axis="index"))
    offer(
        t("pat_download_grids", lang),
        table,
        page="patrol",
        what="patrol_grids",
        file_stem=f"patrol_grids_{q.days[0]}_{day}",
        lang=lang,
        filters=pv.to_params(q),
    )
if span == "week":
    with next(tabs):
        st.caption(t("pat_matrix_title", lang))
        st.table(pv.compliance_matrix(results, q.community))
with next(tabs):
    st.caption(t("pat_workers_caption", lang))
    wtable = pv.worker_table(workers, grids_in, lang)
    st.dataframe(wtable, hide_index=True, use_container_width=True)
    offer(
        t("pat_download_workers", lang),
        wtable,
        page="patrol",
        what="patrol_workers",
        file_stem=f"patrol_workers_{q.days[0]}_{day}",
        lang=lang,
        filters=pv.to_params(q),
    )

with next(tabs):
    bld = f"{params.building_radius_m:g}"
    if unvisited.empty:
        st.success(t("pat_unvisited_none", lang, day=day, days=window))
    else:
        st.caption(
            t("pat_unvisited_caption", lang, day=day, n=len(unvisited), days=window, bld=bld)
        )
        utable = pv.unvisited_table(unvisited, lang)
        st.dataframe(utable, hide_index=True, use_container_width=True)
        offer(
            t("pat_download_unvisited", lang),
            utable,
            page="patrol",
            what="patrol_unvisited",
            file_stem=f"unvisited_{window}d_{day}",
            lang=lang,
            filters=pv.to_params(q),
        )
