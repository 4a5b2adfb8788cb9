"""Login for every page: without a live session only the login form shows.

Where the session token lives: in ``st.session_state`` only, i.e. in the memory of the
Streamlit server, tied to the browser tab's websocket session. It never reaches the
browser, so no script running in the page (an XSS through a crafted value, a compromised
vendored asset) can read and replay it. The price is that a reload or a new tab starts a
new Streamlit session and asks for the password again. The alternative, a cookie, would
have to be set from JavaScript (Streamlit gives a script no way to send a Set-Cookie
header), and a cookie JavaScript can set, JavaScript can read: it could not be HttpOnly,
and one XSS would carry a 12-hour token away. For a system holding sensitive personal
information (PIPL art. 28) re-typing the password after a reload is the better trade.

Logging in is the database's (``gridone_login``, migration 0008): the page sends the
login name and password, and only for an account with a second factor whose password was
right does it then ask for the one-time code (the password waits in ``st.session_state``
for that step, never in the browser). The token comes from the database.

On every run :func:`require_login` revalidates the token with
:func:`store.access.resume_session` (idle and absolute timeouts, logout, lock, deactivation)
and remembers the user for :func:`current_user`; the database checks the same token again
in every transaction (:func:`dashboard.data.scoped_conn`). The URL's query parameters are
left alone while the login form shows, so a shared link opens its view after logging in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import streamlit as st
from streamlit.errors import StreamlitAPIException

from dashboard import data
from dashboard.i18n import t
from store import access, vocab
from store.errors import AccessError, CodeRequiredError, SessionInvalidError, WrongCodeError
from store.vocab import Lang

#: Session-state key of a message to show on the login form (expiry, logout).
NOTICE_KEY = "_gridone_auth_notice"


def current_user() -> access.User | None:
    """The user this run was validated for (None before logging in)."""
    return st.session_state.get(data.USER_KEY)


def _client() -> str | None:
    """The browser's address as Streamlit sees it (for the audit log)."""
    try:
        return st.context.ip_address
    except Exception:  # outside a browser session (tests of the app script)
        return None


def _forget() -> None:
    """Drop the login and everything the browser session kept for it (made briefings, the
    last page view, widget values): the next user of this tab, on a shared office
    computer, must not be offered the previous user's files. The language stays."""
    for key in list(st.session_state.keys()):
        if key not in (data.LANG_KEY, NOTICE_KEY):
            # a widget of this run may refuse it: its value goes with the next run anyway
            with contextlib.suppress(StreamlitAPIException):
                del st.session_state[key]


def require_login(lang: Lang) -> access.User | None:
    """The logged-in user, revalidated now; None after drawing the login form (the caller
    then shows nothing else)."""
    token = st.session_state.get(data.TOKEN_KEY)
    if token:
        try:
            user = access.resume_session(data.engine(), token, client=_client())
        except SessionInvalidError as exc:
            _forget()
            st.session_state[NOTICE_KEY] = str(exc)
        else:
            st.session_state[data.USER_KEY] = user
            return user
    _login_form(lang)
    return None


#: Session-state key of a login waiting for its one-time code: (login, password), kept in
#: the Streamlit server's memory (never sent to the browser) from the moment the database
#: said the password is right until the code step ends.
PENDING_KEY = "_gridone_auth_pending"


def _login_form(lang: Lang) -> None:
    """The login form: login name and password; for an account with a second factor, once
    the database has accepted the password, a second form for the one-time code. On
    success the session the database started is kept and the app reruns with the same
    URL."""
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title(t("au_login_title", lang))
        st.caption(t("au_login_intro", lang))
        notice = st.session_state.pop(NOTICE_KEY, None)
        if notice:
            st.info(notice)
        pending = st.session_state.get(PENDING_KEY)
        if pending:
            _code_step(lang, *pending)
            return
        with st.form("login", enter_to_submit=True):
            login = st.text_input(t("au_login", lang), key="au_login_name")
            password = st.text_input(t("au_password", lang), type="password")
            submitted = st.form_submit_button(t("au_submit", lang), type="primary")
        st.caption(t("au_no_account", lang))
        if not submitted:
            return
        if not login.strip() or not password:
            st.error(t("au_missing", lang))
            return
        _try_login(login.strip().lower(), password, None)


def _code_step(lang: Lang, login: str, password: str) -> None:
    """The second step: the one-time code of ``login``, whose password was right."""
    st.info(t("au_code_step", lang, login=login))
    with st.form("login_code", enter_to_submit=True):
        code = st.text_input(t("au_totp", lang), max_chars=6, key="au_totp_code")
        submitted = st.form_submit_button(t("au_code_submit", lang), type="primary")
    if st.button(t("au_code_back", lang), key="au_code_back"):
        st.session_state.pop(PENDING_KEY, None)
        st.rerun()
    if submitted and not code.strip():
        st.error(t("au_code_missing", lang))
    elif submitted:
        _try_login(login, password, code.strip())


def _try_login(login: str, password: str, code: str | None) -> None:
    """Ask the database to log in; keep the session, ask for the code, or say why not."""
    try:
        user, token = access.log_in(data.engine(), login, password, totp=code, client=_client())
    except CodeRequiredError:
        st.session_state[PENDING_KEY] = (login, password)
        st.rerun()
    except WrongCodeError as exc:  # still the code step: the password was right
        st.error(str(exc))
        return
    except AccessError as exc:  # wrong password / locked / reset: the message says which
        if st.session_state.pop(PENDING_KEY, None) is not None:  # back to the first form
            st.session_state[NOTICE_KEY] = str(exc)
            st.rerun()
        st.error(str(exc))
        return
    _forget()  # nothing of an earlier user of this tab survives the new login
    st.session_state[data.TOKEN_KEY] = token
    st.session_state[data.USER_KEY] = user
    st.rerun()


@data.scoped_cache
def _scope_name() -> str | None:
    """The name of the logged-in user's jurisdiction."""
    user = current_user()
    with data.scoped_conn() as conn:
        return access.scope_name(conn, user) if user else None


def sidebar(user: access.User, lang: Lang) -> None:
    """Who is logged in (name, role, jurisdiction) and the logout button."""
    box = st.sidebar.container(border=True)
    role = vocab.label("user_role", user.role, lang)
    box.markdown(f"**{user.display_name}** · {role}")
    name = _scope_name() if user.scope_prefix else None
    box.caption(f"{t('au_scope', lang)}：{name or user.scope_code or t('au_scope_none', lang)}")
    if box.button(t("au_logout", lang), key="au_logout", icon=":material/logout:"):
        logout(lang)


def logout(lang: Lang) -> None:
    """End the session (revoked in the database, audited) and go back to the login form."""
    token = st.session_state.get(data.TOKEN_KEY)
    if token:
        with data.engine().begin() as conn:
            access.end_session(conn, token, client=_client())
    _forget()
    st.session_state[NOTICE_KEY] = t("au_logged_out", lang)
    st.rerun()


def record(action: str, detail: dict[str, object]) -> None:
    """Append ``action`` by the logged-in user to the audit log, in its own transaction
    scoped by the user's session: the database (``gridone_audit``) writes the row in that
    session's user's name, the only way ``gridone_app`` may write one."""
    user = current_user()
    if user is None:
        return
    with data.scoped_conn() as conn:
        access.audit_session(conn, action, detail=detail, client=_client())


def recorder(action: str) -> Callable[[dict[str, object]], None]:
    """A writer of ``action`` rows bound to this run's session, callable from any thread.

    A deferred download's bytes are made on the server's own thread when the browser asks
    for them, outside the page's run, where ``st.session_state`` and ``st.context`` are
    out of reach; the session token and the browser's address are taken now. When called,
    the writer checks the session again (:func:`store.access.resume_session`: a tab whose
    user logged out, timed out or was locked since the button was drawn gets
    :class:`~store.errors.SessionInvalidError` and no row), then writes the row through
    ``gridone_audit`` in a transaction scoped by that session, as :func:`record` does."""
    token = st.session_state.get(data.TOKEN_KEY) or ""
    client = _client()

    def write(detail: dict[str, object]) -> None:
        access.resume_session(data.engine(), token, client=client)
        with data.scoped_conn(token) as conn:
            access.audit_session(conn, action, detail=detail, client=client)

    return write


#: Session-state key of the last page view written to the audit log.
_VIEWED_KEY = "_gridone_viewed"


def record_page_view(page: str, params: dict[str, str]) -> None:
    """One ``page_view`` row when the page or its URL parameters (its filters) change; a
    rerun that changes neither (a click on the map, a widget that is not a filter) adds
    none."""
    seen = (page, tuple(sorted(params.items())))
    if st.session_state.get(_VIEWED_KEY) == seen:
        return
    st.session_state[_VIEWED_KEY] = seen
    record("page_view", {"page": page, "filters": params})
