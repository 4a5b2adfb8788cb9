"""考核 · Assessment: the month's grid workers ranked with their stars, grades against the
caps, each quota and quality measure, the formula as the settings define it, why one
worker got their stars, and the grids ranked.

Figures come from :func:`geo.assess.assess`; the filter state lives in the URL
(``dashboard.assess_view``), so a link reproduces the view.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import altair as alt
import streamlit as st
from sqlalchemy.exc import OperationalError

from dashboard import assess_view as av
from dashboard import data, data_assess
from dashboard.downloads import offer
from dashboard.i18n import t
from geo.settings import default_settings
from store.workcal import CalendarNotCoveredError

s = data.settings()
lang = data.language()
rules = default_settings()
st.title(t("page_assess", lang))
summary = data.summary()
if summary.grids == 0:
    st.info(t("empty_store", lang))
    st.stop()
latest = data.latest_incident_day()
if latest is None or summary.first_reported is None:
    st.info(t("as_no_months", lang))
    st.stop()
first = summary.first_reported.astimezone(ZoneInfo(s.timezone)).date()

streets = data.street_names()
months = av.month_range(first, latest)
all_communities = data_assess.community_names(None)
defaults = av.default_query(latest, streets)
url, bad = av.parse_query(
    st.query_params.to_dict(),
    defaults=defaults,
    streets=streets,
    months=months,
    communities=all_communities,
)
for b in bad:
    st.warning(
        t("bad_param", lang, name=b.key, value=b.value, used=b.used or t("default_value", lang))
    )

for key, value in {
    "as_street": url.street or "",
    "as_month": url.month,
    "as_community": url.community or "",
    "as_patrols": url.patrols,
}.items():
    if key not in st.session_state:
        st.session_state[key] = value

bar = st.sidebar
street = bar.selectbox(
    t("street", lang),
    ["", *streets] if len(streets) > 1 else list(streets),
    key="as_street",
    format_func=lambda c: streets[c] if c else t("all_streets", lang),
)
month = bar.selectbox(
    t("as_month", lang),
    months,
    key="as_month",
    format_func=lambda m: av.month_label(m, lang, latest),
)
bar.caption(t("as_month_help", lang))
communities = {c: n for c, n in all_communities.items() if not street or av.in_street(c, street)}
if st.session_state["as_community"] not in ("", *communities):
    st.session_state["as_community"] = ""  # the street changed under it
community = bar.selectbox(
    t("as_community", lang),
    ["", *communities],
    key="as_community",
    format_func=lambda c: communities[c] if c else t("as_all_communities", lang),
)
bar.caption(t("as_community_help", lang))
patrols = bar.radio(
    t("as_patrols", lang),
    av.PATROLS,
    key="as_patrols",
    format_func=lambda p: t(f"as_patrols_{p}", lang),
)
bar.caption(t("as_patrols_help", lang))

street_code = street or None
try:
    workdays, with_tracks = data_assess.track_days(street_code, month)
    included = av.patrols_included(patrols, workdays, with_tracks)
    frame = data_assess.assessment(street_code, month, included, lang)
    grid_kpis = data_assess.grid_kpis(street_code, month)
except (ValueError, CalendarNotCoveredError) as exc:  # geo's checks: say so, no traceback
    st.error(t("as_failed", lang, error=exc))
    st.stop()
except OperationalError as exc:  # the database went away after the app's check
    st.error(t("db_down", lang, error=str(exc.orig).strip().splitlines()[0]))
    st.button(t("retry", lang))
    st.stop()

month_text = av.month_label(month, lang, latest)
if frame.empty:
    st.info(t("as_no_workers", lang, month=month_text))
    st.stop()
shown = av.filter_community(frame, community or None)
worker = url.worker if url.worker in shown["worker_code"].tolist() else None
if url.worker is not None and worker is None and "as_worker" not in st.session_state:
    st.warning(t("as_bad_worker", lang, value=url.worker))

street_name = streets.get(street_code, "") if street_code else t("all_streets", lang)
st.caption(t("as_summary", lang, street=street_name, month=month_text, n=len(frame)))
if not included:
    note = "as_patrols_left_out" if patrols == "off" else "as_patrols_partial"
    if patrols != "off" and with_tracks == 0:
        note = "as_patrols_none"
    st.info(t(note, lang, workdays=workdays, days=with_tracks))
elif with_tracks < workdays:
    st.warning(t("as_patrols_forced", lang, workdays=workdays, days=with_tracks))
else:
    st.caption(t("as_patrols_in", lang, days=workdays))

# --- grades against the caps, stars ---------------------------------------------------------
st.subheader(t("as_dist_title", lang))
cols = st.columns([1, 1, 1, 2])
for col, g in zip(cols, av.grade_distribution(frame, rules, lang), strict=False):
    cap = (
        t(
            "as_dist_cap",
            lang,
            cap_pct=f"{(g.cap_share or 0) * 100:g}%",
            total=len(frame),
            cap=g.cap,
        )
        if g.cap is not None
        else t("as_dist_rest", lang)
    )
    col.metric(g.label, t("as_dist_count", lang, n=g.n))
    col.caption(cap)
with cols[3]:
    stars = av.stars_counts(frame, lang)
    x, y = stars.columns
    chart = (
        alt.Chart(stars, title=t("as_stars_title", lang), height=170)
        .mark_bar()
        .encode(
            x=alt.X(f"{x}:N", sort=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y(f"{y}:Q", axis=alt.Axis(tickMinStep=1)),
            tooltip=[x, y],
        )
    )
    st.altair_chart(chart, width="stretch")
st.caption(t("as_dist_note", lang, total=len(frame)))

f = av.formula(rules, lang)
st.markdown(f"**{f.score}**")
with st.expander(t("as_formula_title", lang)):
    st.markdown("\n".join(f"- {p}" for p in (*f.parts, f.renorm, f.stars, *f.grades)))

# --- the workers, ranked ----------------------------------------------------------------------
#: What the downloads were filtered by (the URL's parameters but the worker picked below).
filters = av.to_params(
    av.AssessQuery(
        street=street_code, month=month, community=community or None, patrols=patrols, worker=None
    )
)
st.subheader(t("as_rank_title", lang))
if shown.empty:
    st.info(t("as_no_community_workers", lang, month=month_text))
    st.stop()
names = grid_kpis["name"].dropna().to_dict()
table = av.worker_table(frame, rules, month, lang, grid_names=names, community=community or None)
st.caption(t("as_rank_caption", lang, n=len(table)))
st.table(table.set_index(table.columns[0]))
offer(
    t("as_download_workers", lang),
    av.worker_export(av.filter_community(frame, community or None), rules, lang),
    page="assess",
    what="assess_workers",
    file_stem=f"assess_{street_code or 'all'}_{month}",
    lang=lang,
    filters=filters,
)

# --- one worker -----------------------------------------------------------------------------
st.subheader(t("as_detail_title", lang))
options = shown["worker_code"].tolist()
label = dict(zip(frame["worker_code"], frame["worker_name"], strict=True))
if st.session_state.get("as_worker") not in options:
    st.session_state["as_worker"] = worker or options[0]
picked = st.selectbox(
    t("as_detail_pick", lang),
    options,
    key="as_worker",
    format_func=lambda c: f"{label[c]}（{c}）",
)
detail = av.worker_detail(frame, picked, rules, month, lang)
st.markdown(f"**{detail.head}**")
st.table(detail.parts.set_index(detail.parts.columns[0]))
st.markdown(detail.total)
for reason in detail.reasons:
    st.markdown(f"- {reason}")
for g in detail.grids:
    link = av.overview_link(street_code, g)
    st.markdown(f"[{t('as_on_map', lang, grid=names.get(g, g))}]({link})")

# --- the grids, ranked ----------------------------------------------------------------------
st.subheader(t("as_grid_title", lang))
grids = av.grid_table(frame, grid_kpis, rules, lang, community=community or None)
st.caption(t("as_grid_caption", lang))
st.table(grids.set_index(grids.columns[0]))
offer(
    t("as_download_grids", lang),
    grids,
    page="assess",
    what="assess_grids",
    file_stem=f"assess_grids_{street_code or 'all'}_{month}",
    lang=lang,
    filters=filters,
)

st.query_params.from_dict(
    av.to_params(
        av.AssessQuery(
            street=street_code,
            month=month,
            community=community or None,
            patrols=patrols,
            worker=picked,
        )
    )
)
