"""Headless-Chromium fixtures for page tests, with every non-local request blocked.

* ``browser``: one Chromium per test session (Debian's ``/usr/bin/chromium`` or the binary in
  ``GRIDONE_CHROMIUM``; never a Playwright download).
* ``offline_page``: a fresh context and page per test whose requests to any host other than
  127.0.0.1 / localhost are aborted and recorded, together with console errors, uncaught page
  errors, failed requests and HTTP error responses. ``offline_page.assert_clean()`` fails the
  test with all of them listed. This is what makes a missing vendored asset visible: on a
  connected machine a CDN link would otherwise just work.
* ``serve``: starts a threaded ``http.server`` on 127.0.0.1 (free port) serving one or more
  folders under URL prefixes; returns the base URL.
* ``app_url``: a real ``streamlit run dashboard/app.py`` against the street demo database
  (``demo_engine``), one per test module, in Chinese, connected as ``gridone_app`` (the
  session's ``app_login``, which switches to it); returns its base URL.
* Every page asks for a login first: ``demo_users`` are a district user, the demo street's
  leader and an auditor made in the demo database (generated passwords); :func:`goto`
  opens a URL and logs in (the street leader unless told otherwise), :func:`login` fills the
  form of a page already open.
  ``stopped_db_app``: a factory starting the app against a database that is not there.
* :func:`map_frame`: waits for the streamlit-folium iframe and returns it with its frame;
  :func:`wait_map_settled`: waits until Leaflet has finished its opening zoom (a screenshot
  taken during it shows every line several times too thick).
* :data:`ARTIFACTS`: where screenshots go (``artifacts/``, git-ignored).

Every test here is marked ``browser``. A missing Chromium fails the session rather than
skipping it (skipped tests would pass CI silently).
"""

from __future__ import annotations

import functools
import os
import posixpath
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    ElementHandle,
    Frame,
    Page,
    Playwright,
    Request,
    Response,
    Route,
    sync_playwright,
)
from sqlalchemy import Engine, text

from store.local import free_port
from store.settings import PROJECT_ROOT

#: Hosts a test page may talk to; everything else is aborted.
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
#: URL schemes that never leave the machine.
LOCAL_SCHEMES = frozenset({"data", "blob", "about", "chrome", "chrome-extension"})

#: Screenshots of the tests, to look at (git-ignored).
ARTIFACTS = PROJECT_ROOT / "artifacts"
#: The iframe streamlit-folium draws a map in.
MAP_IFRAME = 'iframe[title="streamlit_folium.st_folium"]'

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test under tests/browser as ``browser`` (``-m "not browser"`` skips them)."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


def is_local_url(url: str) -> bool:
    """True for URLs served by this machine (loopback hosts, data:/blob:/about: URLs)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return (parts.hostname or "") in LOCAL_HOSTS or f"[{parts.hostname}]" in LOCAL_HOSTS


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    """The Playwright driver, started once per session."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    """Headless Debian Chromium, launched once per session."""
    executable = os.environ.get("GRIDONE_CHROMIUM", "/usr/bin/chromium")
    if not (Path(executable).is_file() or shutil.which(executable)):
        pytest.fail(
            f"Chromium not found at {executable!r}: install Debian's chromium "
            "(apt-get install chromium) or set GRIDONE_CHROMIUM to its path. "
            "Do not run `playwright install`."
        )
    browser = playwright_instance.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@dataclass
class OfflinePage:
    """A page whose outside requests are blocked, with everything that went wrong recorded.

    Attributes
    ----------
    page
        The Playwright page (route rules apply to all its frames, iframes included).
    blocked
        URLs of aborted requests to non-local hosts.
    console_errors
        Text of ``console.error`` messages (failed resource loads show up here too).
    page_errors
        Uncaught JavaScript exceptions.
    failed
        ``"<url> <reason>"`` of requests that failed for another reason than blocking.
    http_errors
        ``"<status> <url>"`` of responses with status >= 400.
    """

    page: Page
    blocked: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    http_errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Everything recorded so far, one line each."""
        return (
            [f"blocked outside request: {u}" for u in self.blocked]
            + [f"console error: {m}" for m in self.console_errors]
            + [f"page error: {m}" for m in self.page_errors]
            + [f"request failed: {m}" for m in self.failed]
            + [f"HTTP error: {m}" for m in self.http_errors]
        )

    def assert_clean(self, page_path: str | None = None) -> None:
        """Fail listing every blocked request, console/page error and failed load.

        ``page_path`` (e.g. ``"/hotspots"``): opened at a page's own URL, Streamlit's
        frontend first asks ``<page_path>/_stcore/health`` and ``…/host-config`` in case the
        app is served under that prefix, gets 404 and goes on at ``/``; those probes are
        allowed. Anything else still fails the test.
        """
        if page_path:
            probe = page_path.rstrip("/") + "/_stcore/"
            self.http_errors[:] = [e for e in self.http_errors if probe not in e]
            self.console_errors[:] = [
                e for e in self.console_errors if not (probe in e and "404" in e)
            ]
        problems = self.problems()
        assert not problems, "the page was not self-contained:\n  " + "\n  ".join(problems)


@pytest.fixture
def offline_page(browser: Browser) -> Iterator[OfflinePage]:
    """A fresh page in its own context that may only reach 127.0.0.1/localhost."""
    context = browser.new_context(viewport={"width": 1200, "height": 800}, service_workers="block")
    page = context.new_page()
    record = OfflinePage(page=page)

    def route(route: Route) -> None:
        url = route.request.url
        if is_local_url(url):
            route.continue_()
        else:
            record.blocked.append(url)
            route.abort("blockedbyclient")

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            location = message.location.get("url", "") if message.location else ""
            record.console_errors.append(f"{message.text} ({location})".strip())

    def on_failed(request: Request) -> None:
        # blocked ones are already in record.blocked; a local request the browser aborted
        # itself (a navigation or a rerun cancelling a pending download) is not a failure
        if is_local_url(request.url) and "ERR_ABORTED" not in str(request.failure):
            record.failed.append(f"{request.url} {request.failure}")

    def on_response(response: Response) -> None:
        if response.status >= 400:
            record.http_errors.append(f"{response.status} {response.url}")

    context.route("**/*", route)
    page.on("console", on_console)
    page.on("pageerror", lambda error: record.page_errors.append(str(error)))
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    yield record
    context.close()


def _handler_for(mounts: Mapping[str, Path]) -> type[SimpleHTTPRequestHandler]:
    prefixes = sorted(((p.rstrip("/") + "/", Path(d)) for p, d in mounts.items()), reverse=True)

    class Handler(SimpleHTTPRequestHandler):
        def translate_path(self, path: str) -> str:
            url_path = posixpath.normpath(urllib.parse.unquote(urllib.parse.urlsplit(path).path))
            url_path = url_path if url_path != "." else "/"
            for prefix, folder in prefixes:
                if (url_path + "/").startswith(prefix):
                    rest = url_path[len(prefix) :].lstrip("/")
                    target = (folder / rest).resolve()
                    if folder.resolve() in (target, *target.parents):
                        return str(target)
            return str(Path(os.devnull) / "not-found")  # outside every mount: 404

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output quiet

    return Handler


@pytest.fixture
def serve() -> Iterator[Callable[[Mapping[str, Path]], str]]:
    """Factory: ``serve({"/": folder, "/app/static": static_dir})`` -> ``http://127.0.0.1:<port>``.

    Longest URL prefix wins. Servers are shut down after the test.
    """
    servers: list[ThreadingHTTPServer] = []

    def start(mounts: Mapping[str, Path]) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(mounts))
        server.daemon_threads = True
        threading.Thread(target=functools.partial(server.serve_forever, 0.05), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# --- the dashboard, served by a real `streamlit run` ---------------------------------------


def start_streamlit(
    database_url: str,
    *,
    app_database_url: str | None = None,
    timeout: float = 60,
    script: str = "dashboard/app.py",
    cwd: Path = PROJECT_ROOT,
) -> tuple[subprocess.Popen, str]:
    """Start ``streamlit run <script>`` (the dashboard by default) on a free port against
    ``database_url`` (in Chinese) and wait for its health endpoint; returns the process and
    its base URL. ``app_database_url``: what the dashboard connects with (as gridone_app);
    unset, the same as ``database_url``."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "GRIDONE_APP_DATABASE_URL": app_database_url or database_url,
        "GRIDONE_LANGUAGE": "zh",
    }
    # a file, not a pipe: a chatty server never blocks; closed by stop_streamlit
    log = tempfile.TemporaryFile()  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            script,
            "--server.port",
            str(port),
            "--server.headless",
            "true",
        ],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    proc.log = log  # type: ignore[attr-defined]
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # wait for the health endpoint, not a fixed time
        if proc.poll() is not None:
            log.seek(0)
            output = log.read().decode(errors="replace")
            log.close()
            raise RuntimeError(f"streamlit exited: {output[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.1)
    stop_streamlit(proc)
    raise TimeoutError("streamlit did not become healthy")


def stop_streamlit(proc: subprocess.Popen) -> None:
    """Stop a server started by :func:`start_streamlit`."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    proc.log.close()  # type: ignore[attr-defined]


@dataclass(frozen=True)
class DemoUser:
    """A dashboard user of the demo database and its password."""

    login: str
    password: str
    role: str
    scope_code: str | None


#: The users made in the demo database, by role (the street leader is the default).
DEMO_USERS: dict[str, DemoUser] = {}


@pytest.fixture(scope="session")
def demo_users(demo_engine: Engine) -> dict[str, DemoUser]:
    """A district user, the demo street's leader, its first community's user, an auditor
    and a system administrator, with generated passwords (made once per session in the
    demo database)."""
    from store import access

    with demo_engine.begin() as conn:
        district, street, community = conn.execute(
            text(
                "SELECT (SELECT min(code) FROM admin_unit WHERE level = 'district'), "
                "(SELECT min(code) FROM admin_unit WHERE level = 'street'), "
                "(SELECT min(code) FROM admin_unit WHERE level = 'community')"
            )
        ).one()
        for role, scope in (
            ("district", district),
            ("street", street),
            ("community", community),
            ("auditor", None),
            ("sysadmin", None),
        ):
            login = f"test-{role}"
            password = "Pw" + secrets.token_urlsafe(12) + "7"
            if access.get_user(conn, login) is None:
                access.create_user(conn, login, f"测试{role}", role, scope, password, actor="t")
            else:
                access.set_password(conn, login, password, actor="t")
            DEMO_USERS[role] = DemoUser(login, password, role, scope)
    return DEMO_USERS


def app_database_url(engine: Engine, login: tuple[str, str], **where: object) -> str:
    """``engine``'s database reached as the test session's member of gridone_app
    (``where``: another host/port, e.g. a relay)."""
    url = engine.url.set(username=login[0], password=login[1], **where)  # type: ignore[arg-type]
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def app_url(demo_engine: Engine, app_login: tuple[str, str], demo_users) -> Iterator[str]:
    """Base URL of the dashboard serving the street demo (as gridone_app)."""
    url = demo_engine.url.render_as_string(hide_password=False)
    proc, base = start_streamlit(url, app_database_url=app_database_url(demo_engine, app_login))
    yield base
    stop_streamlit(proc)


#: The login form's submit button and the sidebar's logout button (Chinese).
LOGIN_BUTTON = "登录"
LOGOUT_BUTTON = "退出登录"


def login(page: Page, role: str = "street", *, timeout: float = 60_000) -> None:
    """Log in as the demo user of ``role`` on the login form of the page now open, and wait
    until the app has moved on (the sidebar's logout button)."""
    user = DEMO_USERS[role]
    form = page.locator('[data-testid="stForm"]')
    form.wait_for(timeout=timeout)
    form.get_by_label("登录名").fill(user.login)
    form.get_by_label("密码", exact=True).fill(user.password)
    form.get_by_role("button", name=LOGIN_BUTTON).click()
    page.get_by_role("button", name=LOGOUT_BUTTON).wait_for(timeout=timeout)


def goto(page: Page, url: str, role: str = "street", *, timeout: float = 60_000) -> None:
    """Open ``url`` and log in (every page asks first); its query parameters survive."""
    page.goto(url)
    login(page, role, timeout=timeout)


@pytest.fixture
def stopped_db_app() -> Iterator[Callable[[], str]]:
    """Factory: start the dashboard against a database that does not exist; its base URL."""
    procs: list[subprocess.Popen] = []

    def start() -> str:
        proc, base = start_streamlit(f"postgresql://nobody:x@127.0.0.1:{free_port()}/nothing")
        procs.append(proc)
        return base

    yield start
    for p in procs:
        stop_streamlit(p)


def map_frame(page: Page, *, timeout: float = 60_000) -> tuple[ElementHandle, Frame]:
    """The streamlit-folium iframe (once attached) and its content frame."""
    handle = page.wait_for_selector(MAP_IFRAME, state="attached", timeout=timeout)
    assert handle is not None
    frame = handle.content_frame()
    assert frame is not None
    return handle, frame


def wait_map_settled(frame: Frame, *, timeout: float = 30_000) -> None:
    """Wait until the Leaflet map in ``frame`` has no zoom animation running and its vector
    layer carries no scale transform (the end state of ``fitBounds``)."""
    frame.wait_for_function(
        """() => {
            if (document.querySelector('.leaflet-zoom-anim')) return false;
            const svg = document.querySelector('svg.leaflet-zoom-animated');
            return !svg || !/scale/.test(svg.style.transform);
        }""",
        timeout=timeout,
        polling=250,  # not requestAnimationFrame, which Chromium may throttle in an iframe
    )
