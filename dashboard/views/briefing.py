"""简报 · Briefing: pick a jurisdiction and a period, one click makes the PDF (A4, ready to
print) and the Word file (``dashboard.briefing``), offered for download.

The filter state lives in the URL (``dashboard.briefing_view``), so a link reproduces it. A
database lost while the briefing is made gets app.py's database message.

Each click makes the files anew for the viewer: they carry the viewer's watermark and the
time (``store.watermark``), and an audit row is committed before they are offered. They are
kept in this browser session only (never in a cache shared between viewers), so a rerun
offers the same files again without a second audit row.
"""

from __future__ import annotations

import streamlit as st

from dashboard import auth, data, data_briefing
from dashboard import briefing_view as bv
from dashboard.briefing import EmptyPeriodError, build_audited
from dashboard.downloads import viewer_watermark
from dashboard.i18n import t

lang = data.language()
st.title(t("page_briefing", lang))
st.caption(t("br_intro", lang))
if data.summary().grids == 0:
    st.info(t("empty_store", lang))
    st.stop()

streets = data.street_names()
defaults = bv.default_query(data.latest_incident_day(), streets)
url, bad = bv.parse_query(st.query_params.to_dict(), defaults=defaults, streets=streets)
for b in bad:
    st.warning(t("bad_param", lang, name=b.key, value=b.value, used=b.used))

for key, value in {"br_scope": url.street or "", "br_period": (url.start, url.end)}.items():
    if key not in st.session_state:
        st.session_state[key] = value

left, right = st.columns(2)
district = data_briefing.district_name()
street = left.selectbox(
    t("br_scope", lang),
    [*streets, ""],  # "" is the whole district (None would read as "nothing chosen")
    key="br_scope",
    format_func=lambda c: streets[c] if c else t("br_whole_district", lang, name=district),
    help=t("br_scope_help", lang),
)
period = right.date_input(
    t("br_period", lang), key="br_period", format="YYYY-MM-DD", help=t("br_period_help", lang)
)
if not isinstance(period, tuple) or len(period) != 2:
    st.info(t("br_pick_end", lang))
    st.stop()
q = bv.BriefingQuery(street or None, period[0], period[1])
st.query_params.from_dict(bv.to_params(q))
label = f"{q.start} – {q.end}"

wanted = (q.street, q.start, q.end_exclusive, lang)
if st.button(t("br_build", lang), type="primary"):
    watermark = viewer_watermark()
    try:
        with st.spinner(t("br_building", lang)):
            files = build_audited(
                data.engine(),
                street=q.street,
                start=q.start,
                end=q.end_exclusive,
                watermark=watermark,
                via="dashboard",
                lang=lang,
                user=auth.current_user(),
                token=data.session_scope()[1],
            )
    except EmptyPeriodError:
        st.info(t("br_empty_period", lang, period=label))
        st.stop()
    except ValueError as exc:
        st.error(t("br_failed", lang, error=exc))
        st.stop()
    st.session_state["br_made"] = {
        "wanted": wanted,
        "pdf": files.pdf,
        "docx": files.docx,
        "name": files.data.name,
        "seconds": files.seconds["total"],
        "line": watermark.line(lang),
    }
made = st.session_state.get("br_made")
if made is None or made["wanted"] != wanted:
    st.stop()

st.success(t("br_ready", lang, seconds=made["seconds"], name=made["name"], period=label))
st.caption(t("br_watermark", lang, line=made["line"]))
stem = f"briefing_{q.street or 'district'}_{q.start}_{q.end}"
a, b = st.columns(2)
# the files were made and audited by the build; handed over on the click (deferred), so a
# rerun never registers the megabytes again nor drops them while the browser fetches them
a.download_button(
    t("br_download_pdf", lang),
    lambda pdf=made["pdf"]: pdf,
    file_name=f"{stem}.pdf",
    mime="application/pdf",
    on_click="ignore",
    icon=":material/picture_as_pdf:",
)
b.download_button(
    t("br_download_docx", lang),
    lambda docx=made["docx"]: docx,
    file_name=f"{stem}.docx",
    mime="application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    on_click="ignore",
    icon=":material/description:",
)
