"""审计日志 · Audit log (auditor role only): search by period, user, action and text; the
table; a CSV download, itself written to the audit log. State in the URL
(``dashboard.audit_view``)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import streamlit as st

from dashboard import audit_view as av
from dashboard import auth, data
from dashboard.downloads import offer
from dashboard.i18n import t
from store import access, vocab

lang = data.language()
user = auth.current_user()
st.title(t("au_title", lang))
if user is None or user.role != "auditor":  # the navigation offers it to auditors only
    st.error(t("au_not_yours", lang, what=t("page_audit", lang)))
    st.stop()

tz = ZoneInfo(data.settings().timezone)
today = dt.datetime.now(tz).date()
q, bad = av.parse_query(st.query_params.to_dict(), today=today)
for b in bad:
    st.warning(
        t("bad_param", lang, name=b.key, value=b.value, used=b.used or t("default_value", lang))
    )

actions = ["", *vocab.AUDIT_ACTIONS]
c1, c2, c3, c4 = st.columns([2, 1, 1, 2])
period = c1.date_input(t("au_period", lang), value=(q.start, q.end), max_value=today)
login = c2.text_input(t("au_who", lang), value=q.login, max_chars=64)
action = c3.selectbox(
    t("au_action", lang),
    actions,
    index=actions.index(q.action),
    format_func=lambda a: vocab.label("audit_action", a, lang) if a else t("au_any", lang),
)
contains = c4.text_input(t("au_text", lang), value=q.text, max_chars=200)
start, end = period if isinstance(period, tuple) and len(period) == 2 else (q.start, q.end)
q = av.AuditQuery(start, end, login.strip(), action, contains.strip())
st.query_params.from_dict(q.params())


def _instant(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tz)


with data.scoped_conn() as conn:
    rows = access.search_audit(
        conn,
        login=q.login or None,
        action=q.action or None,
        since=_instant(q.start),
        until=_instant(q.end_exclusive),
        contains=q.text or None,
        limit=av.LIMIT,
    )
frame = av.table(rows, lang, data.settings().timezone)
if frame.empty:
    st.info(t("au_none", lang))
    st.stop()
st.caption(t("au_found", lang, n=len(frame), limit=av.LIMIT))
st.dataframe(frame.rename(columns=av.headers(lang)), hide_index=True, use_container_width=True)


offer(
    t("au_csv", lang),
    frame,
    page="audit",
    what="audit_csv",
    file_stem=f"audit_{q.start:%Y%m%d}_{q.end:%Y%m%d}",
    lang=lang,
    filters=q.params(),
    csv=av.csv_bytes(frame, lang),
    xlsx=False,
)
