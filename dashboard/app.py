"""Entry point: ``streamlit run dashboard/app.py``. Builds the navigation and shares the
page frame; each page lives in ``dashboard/views``."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import data  # noqa: E402
from dashboard.i18n import t  # noqa: E402
from dashboard.offline import use_local_assets  # noqa: E402
from store.errors import DatabaseUnavailableError  # noqa: E402

VIEWS = Path(__file__).resolve().parent / "views"
#: Where Streamlit serves dashboard/static/vendor (server.enableStaticServing).
ASSET_BASE = "/app/static/vendor"


def run() -> None:
    """Render one run of the app: page config, database check, navigation, the page."""
    lang = data.settings().language
    st.set_page_config(page_title=t("app_title", lang), page_icon="🗺️", layout="wide")
    use_local_assets(ASSET_BASE)
    try:
        data.check()
    except DatabaseUnavailableError as exc:
        st.error(t("db_down", lang, error=exc))
        st.button(t("retry", lang))
        st.stop()
    page = st.navigation(
        [
            st.Page(
                VIEWS / "overview.py",
                title=t("page_overview", lang),
                icon=":material/map:",
                default=True,
            ),
            st.Page(
                VIEWS / "hotspots.py",
                title=t("page_hotspots", lang),
                icon=":material/local_fire_department:",
                url_path="hotspots",
            ),
            st.Page(
                VIEWS / "incidents.py",
                title=t("page_incidents", lang),
                icon=":material/assignment_late:",
                url_path="incidents",
            ),
        ]
    )
    page.run()


run()
