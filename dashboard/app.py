"""Entry point: ``streamlit run dashboard/app.py``. Builds the navigation and shares the
page frame; each page lives in ``dashboard/views``."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from dashboard import data  # noqa: E402
from dashboard.i18n import t  # noqa: E402
from dashboard.offline import use_local_assets  # noqa: E402
from store.errors import DatabaseUnavailableError  # noqa: E402
from store.vocab import Lang  # noqa: E402

VIEWS = Path(__file__).resolve().parent / "views"
#: Where Streamlit serves dashboard/static/vendor (server.enableStaticServing).
ASSET_BASE = "/app/static/vendor"
#: The language picker's labels, each in its own language.
LANGUAGE_NAMES = {"zh": "中文", "en": "English"}
#: Seconds between reconnection attempts while the database is down.
RETRY_SECONDS = 5


@st.fragment(run_every=RETRY_SECONDS)
def _wait_for_database() -> None:
    """Poll the database while it is down and rerun the whole app as soon as it answers, so
    the page comes back by itself (nobody has to find the retry button)."""
    try:
        data.check()
    except DatabaseUnavailableError:
        return
    st.rerun(scope="app")


def _database_down(error: Exception, lang: Lang) -> None:
    """The one screen shown while the store is unreachable: what happened, the next step,
    a retry button, and a poll that brings the page back when the database returns."""
    st.error(t("db_down", lang, error=error))
    st.caption(t("db_retrying", lang, seconds=RETRY_SECONDS))
    st.button(t("retry", lang))
    _wait_for_database()
    st.stop()


def run() -> None:
    """Render one run of the app: page config, database check, navigation, the page."""
    lang = data.language()
    st.set_page_config(page_title=t("app_title", lang), page_icon="🗺️", layout="wide")
    use_local_assets(ASSET_BASE)
    try:
        data.check()
    except DatabaseUnavailableError as exc:
        _database_down(exc, lang)
    page = st.navigation(
        [
            st.Page(
                VIEWS / "overview.py",
                title=t("page_overview", lang),
                icon=":material/map:",
                default=True,
            ),
            st.Page(
                VIEWS / "incidents.py",
                title=t("page_incidents", lang),
                icon=":material/report:",
                url_path="incidents",
            ),
            st.Page(
                VIEWS / "patrol.py",
                title=t("page_patrol", lang),
                icon=":material/directions_walk:",
                url_path="patrol",
            ),
            st.Page(
                VIEWS / "hotspots.py",
                title=t("page_hotspots", lang),
                icon=":material/local_fire_department:",
                url_path="hotspots",
            ),
            st.Page(
                VIEWS / "assess.py",
                title=t("page_assess", lang),
                icon=":material/military_tech:",
                url_path="assess",
            ),
            st.Page(
                VIEWS / "briefing.py",
                title=t("page_briefing", lang),
                icon=":material/picture_as_pdf:",
                url_path="briefing",
            ),
        ]
    )
    st.sidebar.radio(
        "语言 / Language",
        ["zh", "en"],
        index=0 if lang == "zh" else 1,
        key=data.LANG_KEY,
        format_func=LANGUAGE_NAMES.__getitem__,
        horizontal=True,
    )
    try:
        page.run()
    except OperationalError as exc:  # the database went away while the page was running
        _database_down(DatabaseUnavailableError(str(exc.orig).strip().splitlines()[0]), lang)


run()
