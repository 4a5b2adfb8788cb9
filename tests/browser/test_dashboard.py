"""The dashboard in headless Chromium, served by a real `streamlit run`, against the demo
street in PostGIS, with every non-local request blocked."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine

from dashboard.maps import GRID_COLOR
from store.local import free_port
from store.settings import PROJECT_ROOT

ARTIFACTS = PROJECT_ROOT / "artifacts"
MAP_IFRAME = 'iframe[title="streamlit_folium.st_folium"]'


def _start_streamlit(database_url: str, *, timeout: float = 60) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "GRIDONE_LANGUAGE": "zh"}
    # a file, not a pipe: a chatty server never blocks; closed by _stop
    log = tempfile.TemporaryFile()  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "dashboard/app.py",
            "--server.port",
            str(port),
            "--server.headless",
            "true",
        ],
        cwd=PROJECT_ROOT,
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
    _stop(proc)
    raise TimeoutError("streamlit did not become healthy")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    proc.log.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def app_url(demo_engine: Engine) -> Iterator[str]:
    url = demo_engine.url.render_as_string(hide_password=False)
    proc, base = _start_streamlit(url)
    yield base
    _stop(proc)


@pytest.fixture
def stopped_db_app() -> Iterator[Callable[[], str]]:
    procs: list[subprocess.Popen] = []

    def start() -> str:
        proc, base = _start_streamlit(f"postgresql://nobody:x@127.0.0.1:{free_port()}/nothing")
        procs.append(proc)
        return base

    yield start
    for p in procs:
        _stop(p)


def _map_frame(page):
    handle = page.wait_for_selector(MAP_IFRAME, state="attached", timeout=60_000)
    frame = handle.content_frame()
    assert frame is not None
    return handle, frame


@pytest.mark.browser
def test_overview_map_draws_grids_offline(app_url: str, offline_page) -> None:
    page = offline_page.page
    page.goto(app_url)
    handle, frame = _map_frame(page)
    # every one of the demo street's 41 grids is drawn as its own polygon
    frame.wait_for_function(
        "([color, n]) => document.querySelectorAll("
        "  `path.leaflet-interactive[stroke='${color}']`).length === n",
        arg=[GRID_COLOR, 41],
        timeout=60_000,
    )
    frame.wait_for_selector(".marker-cluster", timeout=30_000)
    box = handle.bounding_box()
    assert box is not None
    assert box["height"] > 400  # the iframe is really drawn (zero height when Leaflet fails)
    page.get_by_text("41 个网格", exact=False).wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard_overview.png"), full_page=True)
    offline_page.assert_clean()


@pytest.mark.browser
def test_database_down_shows_the_next_step(stopped_db_app, offline_page) -> None:
    page = offline_page.page
    page.goto(stopped_db_app())
    page.get_by_text("无法连接数据库", exact=False).wait_for(timeout=30_000)
    page.get_by_text("python -m store local start", exact=False).first.wait_for()
    assert page.locator("text=Traceback").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard_db_down.png"))
