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

from dashboard import auth, data, map_render, warm  # noqa: E402
from dashboard.i18n import t  # noqa: E402
from dashboard.offline import use_local_assets  # noqa: E402
from store import access  # noqa: E402
from store.errors import AccessError, DatabaseUnavailableError  # noqa: E402
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


def _data_pages(lang: Lang) -> list[st.Page]:
    """The pages that show data (district, street, community and grid roles)."""
    return [
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


def _audit_page(lang: Lang, *, default: bool) -> st.Page:
    return st.Page(
        VIEWS / "audit.py",
        title=t("page_audit", lang),
        icon=":material/policy:",
        url_path="audit",
        default=default,
    )


def _sysadmin_page() -> None:
    """What the system administrator sees: no data, where users are managed."""
    lang = data.language()
    st.title(t("page_sysadmin", lang))
    st.info(t("au_sysadmin", lang))


def _pages(user: access.User | None, lang: Lang) -> list[st.Page]:
    """The pages ``user``'s role may open (before login: all, hidden, so that the URL's
    page survives the login form)."""
    if user is None:
        return [*_data_pages(lang), _audit_page(lang, default=False)]
    if user.role == "auditor":
        return [_audit_page(lang, default=True)]
    if user.role == "sysadmin":
        return [
            st.Page(
                _sysadmin_page,
                title=t("page_sysadmin", lang),
                icon=":material/manage_accounts:",
                url_path="users",
                default=True,
            )
        ]
    return _data_pages(lang)


def run() -> None:
    """Render one run of the app: page config, database check, login, navigation (the
    pages of the user's role), the page."""
    lang = data.language()
    st.set_page_config(page_title=t("app_title", lang), page_icon="🗺️", layout="wide")
    map_render.new_run()  # which maps the browser already holds (their base not sent again)
    use_local_assets(ASSET_BASE)
    try:
        data.check()
    except DatabaseUnavailableError as exc:
        _database_down(exc, lang)
    except AccessError as exc:  # connected as the owner or a superuser: refuse to run
        st.error(str(exc))
        st.stop()
    user = auth.require_login(lang)
    page = st.navigation(_pages(user, lang), position="hidden" if user is None else "sidebar")
    st.sidebar.radio(
        "语言 / Language",
        ["zh", "en"],
        index=0 if lang == "zh" else 1,
        key=data.LANG_KEY,
        format_func=LANGUAGE_NAMES.__getitem__,
        horizontal=True,
    )
    if user is None:
        warm.start()  # the pages' imports load while the password is typed
        return  # the login form is drawn; nothing else until a session exists
    auth.sidebar(user, lang)
    warm.wait()  # no page imports while the import thread still runs
    auth.record_page_view(page.url_path or "overview", st.query_params.to_dict())
    try:
        page.run()
    except OperationalError as exc:  # the database went away while the page was running
        _database_down(DatabaseUnavailableError(str(exc.orig).strip().splitlines()[0]), lang)


run()
