"""The dashboard when its database goes away and comes back: a clear message with the next
step, never a stack trace, and the page back by itself once the database answers again.

"Down" is real: the app reaches PostgreSQL through a TCP relay on its own port, and the relay
is switched off (listener closed, live connections cut: connection refused) and on again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from tests.browser.conftest import (
    ARTIFACTS,
    app_database_url,
    login,
    map_frame,
    start_streamlit,
    stop_streamlit,
)
from tests.browser.relay import Relay

#: Longer than the app's 5 s reconnect interval plus a rerun at street scale.
RECOVERY_MS = 60_000


@pytest.fixture
def relayed_app(demo_engine: Engine, app_login, demo_users) -> Iterator[tuple[str, Relay]]:
    """The dashboard on the street demo, reaching its database through a :class:`Relay`."""
    url = demo_engine.url
    relay = Relay((url.host or "127.0.0.1", url.port or 5432))
    relay.on()
    via = make_url(url.render_as_string(hide_password=False)).set(host="127.0.0.1", port=relay.port)
    proc, base = start_streamlit(
        via.render_as_string(hide_password=False),
        app_database_url=app_database_url(
            demo_engine, app_login, host="127.0.0.1", port=relay.port
        ),
    )
    try:
        yield base, relay
    finally:
        stop_streamlit(proc)
        relay.off()


def test_page_recovers_by_itself_when_the_database_returns(relayed_app, offline_page) -> None:
    base, relay = relayed_app
    page = offline_page.page
    page.goto(base)
    login(page)
    map_frame(page)  # the overview map is up: the database is reachable

    relay.off()
    page.reload()
    page.get_by_text("无法连接数据库", exact=False).wait_for(timeout=RECOVERY_MS)
    page.get_by_text("自动重新连接", exact=False).wait_for()
    assert page.locator("text=Traceback").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard_db_down_retrying.png"))

    relay.on()  # nobody clicks anything: the page must come back by itself
    page.get_by_text("无法连接数据库", exact=False).wait_for(state="detached", timeout=RECOVERY_MS)
    login(page)  # the reload started a new session: the token lives in the old one only
    map_frame(page, timeout=RECOVERY_MS)
    assert page.locator("text=Traceback").count() == 0
