"""事件 · Incidents: the KPI cards against the previous period, the trend, categories, where
cases were closed (小事不出网格), figures by unit and the overdue list, each row linking to
the map. Every figure comes from geo.kpis / geo.trend; the filter state lives in the URL
(``dashboard.incidents_view``)."""

from __future__ import annotations

import streamlit as st

from dashboard import data
from dashboard import data_incidents as di
from dashboard import incidents_view as iv
from dashboard.downloads import offer
from dashboard.i18n import t

lang = data.language()
st.title(t("page_incidents", lang))
latest = data.latest_incident_day()
if data.summary().grids == 0 or latest is None:
    st.info(t("empty_store", lang))
    st.stop()

streets = data.street_names()
cats = data.categories()
cat_names = dict(zip(cats["code"], cats["name_zh" if lang == "zh" else "name_en"], strict=True))
defaults = iv.default_query(latest, streets)
url, bad = iv.parse_query(
    st.query_params.to_dict(),
    defaults=defaults,
    latest=latest,
    streets=streets,
    communities=di.communities(None),
    categories=cat_names,
)
for b in bad:
    used = b.used or t("inc_default", lang)
    st.warning(t("inc_bad_param", lang, name=b.key, value=b.value, used=used))

for key, value in {
    "inc_street": url.street or "",
    "inc_community": url.community or "",
    "inc_preset": url.preset,
    "inc_range": (url.start, url.end),
    "inc_category": url.category or "",
    "inc_by": url.by,
    "inc_bin": url.bin,
}.items():
    if key not in st.session_state:
        st.session_state[key] = value


def _preset_changed() -> None:
    preset = st.session_state["inc_preset"]
    if preset != "custom":
        st.session_state["inc_range"] = iv.preset_range(preset, latest)


bar = st.sidebar
street = bar.selectbox(
    t("inc_street", lang),
    ["", *streets] if len(streets) > 1 else list(streets),
    key="inc_street",
    format_func=lambda c: streets[c] if c else t("all_streets", lang),
)
comms = di.communities(street or None) if street else {}
if st.session_state["inc_community"] not in ("", *comms):
    st.session_state["inc_community"] = ""
community = bar.selectbox(
    t("inc_community", lang),
    ["", *comms],
    key="inc_community",
    format_func=lambda c: comms[c] if c else t("inc_all_communities", lang),
    disabled=not street,
)
preset = bar.radio(
    t("inc_period", lang),
    iv.PRESETS,
    key="inc_preset",
    horizontal=True,
    format_func=lambda p: t(f"inc_preset_{p}", lang),
    on_change=_preset_changed,
)
period = bar.date_input(
    t("inc_range", lang), key="inc_range", format="YYYY-MM-DD", disabled=preset != "custom"
)
bar.caption(t("inc_period_help", lang, latest=latest.isoformat()))
category = bar.selectbox(
    t("inc_category", lang),
    ["", *cat_names],
    key="inc_category",
    format_func=lambda c: (
        ("　" * (len(c) // 2 - 1)) + cat_names[c] if c else t("inc_all_categories", lang)
    ),
)
if category:
    bar.caption(t("inc_category_note", lang))
if not isinstance(period, tuple) or len(period) != 2:
    st.info(t("inc_pick_end", lang))
    st.stop()
q = iv.IncidentQuery(
    street or None,
    community or None,
    preset,
    period[0],
    period[1],
    category or None,
    st.session_state["inc_by"],
    st.session_state["inc_bin"],
)
st.query_params.from_dict(iv.to_params(q))

unit_name = comms.get(q.community or "") or streets.get(q.street or "") or t("all_streets", lang)
if not di.has_incidents(q.street):
    st.info(t("inc_no_data_unit", lang, unit=unit_name))
    st.stop()
try:
    report = di.kpi_report(q.unit, q.start, q.end_exclusive)
except ValueError as exc:
    st.error(t("inc_query_failed", lang, error=exc))
    st.stop()
f = report.figures
prev = report.previous_period
st.caption(
    t(
        "inc_scope",
        lang,
        unit=unit_name,
        start=q.start,
        end=q.end,
        pstart=prev.start,
        pend=prev.end - iv.dt.timedelta(days=1),
    )
)
if f.reported == 0 and f.due == 0 and f.closed == 0 and f.open_overdue == 0:
    st.info(t("inc_no_data_period", lang, unit=unit_name, start=q.start, end=q.end))
    st.stop()

figs = di.category_kpis(q.unit, q.start, q.end_exclusive, q.category) if q.category else report
if q.category:
    st.caption(t("inc_cards_of_category", lang, category=cat_names[q.category]))
for col, c in zip(st.columns(len(iv.CARDS)), iv.cards(figs, lang), strict=True):
    col.metric(c.label, c.value, c.delta, delta_color=c.color, border=True)
    col.caption(c.definition)
with st.expander(t("inc_all_figures", lang)):
    st.table(iv.comparison_table(figs, lang).set_index(t("inc_col_figure", lang)))

left, right = st.columns(2)
with left:
    st.subheader(t("inc_trend", lang))
    bin_ = st.radio(
        t("inc_bin", lang),
        iv.TREND_BINS,
        key="inc_bin",
        horizontal=True,
        format_func=lambda b: t(f"inc_bin_{b}", lang),
    )
    tr = di.trend(q.unit, q.start, q.end_exclusive, q.category, bin_)
    frame = iv.trend_frame(tr.counts, cat_names)
    st.caption(
        t(
            "inc_trend_caption",
            lang,
            bin=t(f"inc_binword_{bin_}", lang),
            n=int(frame["reported"].sum()),
        )
    )
    st.altair_chart(iv.trend_chart(frame, lang), use_container_width=True)
with right:
    st.subheader(t("inc_categories", lang))
    table, _level = iv.category_table(report, q.category, lang)
    if table.empty:
        st.info(t("inc_no_category_rows", lang))
    else:
        st.altair_chart(iv.category_chart(table, lang), use_container_width=True)

st.subheader(t("inc_tiers", lang))
tiers = iv.tier_table(figs, lang)
c1, c2, c3 = st.columns([1, 1, 2])
for col, c in zip((c1, c2), iv.tier_cards(figs, lang), strict=True):
    col.metric(c.label, c.value, c.delta, delta_color=c.color, border=True)
    col.caption(c.definition)
with c3:
    if figs.figures.closed == 0:
        st.info(t("inc_no_closed", lang))
    else:
        st.altair_chart(iv.tier_chart(tiers, lang), use_container_width=True)

st.subheader(t("inc_units", lang))
if q.street and not q.community:
    st.radio(
        t("inc_by", lang),
        iv.BYS,
        key="inc_by",
        horizontal=True,
        format_func=lambda b: t(f"inc_by_{b}", lang),
    )
    q = iv.IncidentQuery(**{**q.__dict__, "by": st.session_state["inc_by"]})
    st.query_params.from_dict(iv.to_params(q))
units = di.unit_kpis(q.unit_level, q.start, q.end_exclusive, q.street)
utable = iv.unit_table(units, lang)
if q.community:
    utable = utable[utable[t("inc_col_code", lang)].str.startswith(q.community)]
st.dataframe(
    utable,
    hide_index=True,
    use_container_width=True,
    column_config={
        iv.FIGURES["mean_hours"][0 if lang == "zh" else 1]: st.column_config.NumberColumn(
            format="%.1f"
        ),
    }
    | {
        c: st.column_config.NumberColumn(format="percent")
        for c in utable.columns
        if c
        in (
            iv.FIGURES["closure_rate"][0 if lang == "zh" else 1],
            iv.FIGURES["on_time_rate"][0 if lang == "zh" else 1],
            t("inc_col_on_time_change", lang),
        )
    },
)
offer(
    t("inc_download", lang),
    utable,
    page="incidents",
    what="incident_units",
    file_stem=f"incident_units_{q.start}_{q.end}",
    lang=lang,
    filters=iv.to_params(q),
)

st.subheader(t("inc_overdue", lang))
overdue = iv.overdue_rows(report, q.category)
if overdue.empty:
    st.success(t("inc_no_overdue", lang))
else:
    otable = iv.overdue_table(overdue, di.grid_names(q.street), lang)
    shown = min(len(otable), iv.OVERDUE_ROWS)
    as_of = report.period.as_of.strftime("%Y-%m-%d %H:%M")
    st.caption(t("inc_overdue_caption", lang, n=len(otable), shown=shown, as_of=as_of))
    st.markdown(iv.overdue_markdown(otable))
    offer(
        t("inc_download", lang),
        otable,
        page="incidents",
        what="incidents_overdue",
        file_stem=f"incidents_overdue_{q.end}",
        lang=lang,
        filters=iv.to_params(q),
    )
