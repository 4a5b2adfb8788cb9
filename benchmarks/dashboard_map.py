"""Benchmark: the 一张图 page in headless Chromium at district scale — time from navigation
to the first map drawn, time to redraw after a filter change, and bytes the page sent to the
browser — beside the straightforward version measured in the same run: a Streamlit page
that draws every incident of the period as a folium marker (what a first version of such a
dashboard does).

    .venv/bin/python benchmarks/dashboard_map.py [--scale district|street] [--runs N]
        [--database NAME] [--street all|first] [--baseline-runs N] [--skip-baseline]
        [--regenerate] [--drop] [--fresh-filter] [--typing-seconds S]

The demo is read from the database ``--database`` (default ``gridone_bench_dash_<scale>``)
on the configured server, used as it is (read only) when it holds incidents; it is generated
there only when missing or empty, or with ``--regenerate``. Bytes are counted by Chromium
itself (DevTools protocol): encoded HTTP bodies plus Streamlit's WebSocket frames, which
carry the map. The first run of each page warms the server's caches and is reported
separately (with ``--fresh-filter`` each run's filter change is to a category group the
server has not drawn yet, as a user's first choice of it); targets (issue 6): first map
≤ 3 s, filter redraw ≤ 1 s, ≤ 5 MB. A redraw is the new drawing in the map's iframe: a
new map, or new layers swapped into the map already drawn.

The dashboard asks for a login and connects as ``gridone_app``: the benchmark makes a login
role that is a member of ``gridone_app`` (dropped at the end) and a district user
``bench-district`` in the benchmark database (its password generated anew each run), and
logs in on each page load; the first map is timed from the login form's submit (the
password check included). The baseline page reads as the owner, as before.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import Page, sync_playwright  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from psycopg import sql  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402

from benchmarks.bench_db import drop_database, open_database  # noqa: E402
from tests.browser.conftest import (  # noqa: E402
    CHROMIUM_ARGS,
    LOGIN_BUTTON,
    LOGOUT_BUTTON,
    MAP_IFRAME,
    is_local_url,
    start_streamlit,
    stop_streamlit,
)
from tests.browser.relay import Relay  # noqa: E402

#: Milliseconds a page may take before the run is called failed (the baseline at district
#: scale may take minutes; a timeout is reported, not raised).
TIMEOUT_MS = 300_000
#: Leaflet's drawing (vector paths, markers, cluster bubbles, canvases, legends) in a map of
#: the streamlit-folium iframe that was not there before the filter change, in a map that
#: has something interactive on it: a new map (an iframe drawn anew) or new layers swapped
#: into the map already there (streamlit-folium's feature group). Evaluated in the top page
#: (the component iframe is same-origin), so an iframe replaced meanwhile is no error.
_DRAWING = ".leaflet-interactive, .leaflet-marker-icon, .leaflet-pane canvas, .gridone-legend"
DRAWN = (
    "(sel) => { const d = document.querySelector(sel)?.contentDocument; if (!d) return false;"
    " const c = d.querySelector('.leaflet-container:not([data-bench-old])')"
    "   || d.querySelector('.leaflet-container'); if (!c) return false;"
    f" const drawn = c.querySelectorAll('{_DRAWING}');"
    " return c.querySelectorAll('.leaflet-interactive, .leaflet-marker-icon').length > 0"
    "   && [...drawn].some(e => !e.hasAttribute('data-bench-old')); }"
)
#: Marks the maps drawn so far, and everything drawn in them, as old.
MARK_OLD = (
    "(sel) => document.querySelectorAll(sel).forEach(f => f.contentDocument?"
    ".querySelectorAll('.leaflet-container').forEach(c => { c.setAttribute('data-bench-old', '1');"
    f" c.querySelectorAll('{_DRAWING}').forEach(e => e.setAttribute('data-bench-old', '1')); }}))"
)

#: The straightforward page: every incident of the period as a folium marker.
NAIVE_APP = """
import os, datetime as dt
import folium, pandas as pd, streamlit as st
from sqlalchemy import create_engine, text
from streamlit_folium import st_folium
from dashboard.offline import localize_map, use_local_assets

use_local_assets("/app/static/vendor")
st.set_page_config(layout="wide")
engine = create_engine(os.environ["DATABASE_URL"])
end = dt.date.fromisoformat(os.environ["BENCH_END"])
start = end - dt.timedelta(days=int(os.environ["BENCH_DAYS"]) - 1)
category = st.sidebar.selectbox("category", ["(all)", *os.environ["BENCH_CATEGORIES"].split(",")])
sql = ("SELECT id, title, category_code, ST_Y(geom) AS lat, ST_X(geom) AS lon FROM incident "
       "WHERE reported_at >= :a AND reported_at < :b"
       + ("" if category == "(all)" else " AND category_code LIKE :c"))
rows = pd.read_sql_query(text(sql), engine.connect(),
                         params={"a": start, "b": end + dt.timedelta(days=1), "c": category + "%"})
m = folium.Map(location=[rows.lat.mean(), rows.lon.mean()], zoom_start=13, tiles=None)
localize_map(m)
for r in rows.itertuples():
    folium.Marker([r.lat, r.lon], popup=f"{r.title} ({r.category_code})").add_to(m)
st.write(len(rows), "incidents")
st_folium(m, height=680, use_container_width=True)
"""


@dataclass
class Figures:
    """One page load: seconds to the first map, seconds to redraw after the filter change
    (None when not measured), megabytes sent to the browser up to the first map."""

    first_s: float | None
    filter_s: float | None
    megabytes: float
    #: megabytes once the page has gone quiet after the first map (reruns it triggers
    #: itself included), and the messages the browser sent the server meanwhile (the first
    #: run's request, then one per rerun the map asked for)
    settled_mb: float | None = None
    messages: int | None = None
    #: of ``settled_mb``: megabytes that came over the WebSocket (the page's runs: the map),
    #: the rest being HTTP (Streamlit's frontend, Leaflet and the other assets)
    websocket_mb: float | None = None
    #: megabytes that really crossed the wire to the browser up to the settled page
    #: (HTTP headers included, WebSocket frames as compressed), counted by a TCP relay
    wire_mb: float | None = None
    #: megabytes the browser received for the filter change (decompressed), up to the redraw
    filter_mb: float | None = None


class ByteCounter:
    """Bytes Chromium received for a page: encoded HTTP bodies and WebSocket frames."""

    def __init__(self, page: Page) -> None:
        self.total = 0
        self.websocket = 0
        self.sent_frames = 0
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("Network.enable")
        self.cdp.on("Network.loadingFinished", self._http)
        self.cdp.on("Network.webSocketFrameReceived", self._ws)
        self.cdp.on("Network.webSocketFrameSent", self._sent)

    def _sent(self, event: dict) -> None:
        self.sent_frames += 1

    def settle(self, page: Page, quiet_s: float = 1.5, limit_s: float = 60) -> None:
        """Wait until nothing has arrived for ``quiet_s`` seconds (at most ``limit_s``)."""
        last, since = self.total, time.perf_counter()
        deadline = since + limit_s
        while time.perf_counter() < deadline:
            page.wait_for_timeout(100)  # lets the CDP events in; the condition is the quiet
            if self.total != last:
                last, since = self.total, time.perf_counter()
            elif time.perf_counter() - since >= quiet_s:
                return

    def _http(self, event: dict) -> None:
        self.total += int(event.get("encodedDataLength", 0))

    def _ws(self, event: dict) -> None:
        r = event["response"]
        data = r.get("payloadData", "")
        n = len(base64.b64decode(data)) if r.get("opcode") == 2 else len(data.encode())
        self.total += n
        self.websocket += n


@dataclass(frozen=True)
class Change:
    """A filter change as a user makes it: ``open`` the sidebar selectbox, then ``choose``
    the option. The redraw is timed from the choice (opening a list is no wait for the page)."""

    open: Callable[[Page], None]
    choose: Callable[[Page], None]


def _pick(label: str, option: str) -> Change:
    """Choosing ``option`` in the sidebar selectbox labelled ``label``."""
    return Change(
        lambda page: (
            page.locator('[data-testid="stSidebar"]')
            .get_by_role("combobox", name=label)
            .click(timeout=TIMEOUT_MS)
        ),
        lambda page: page.get_by_role("option", name=option, exact=True).click(timeout=TIMEOUT_MS),
    )


def measure(
    browser,
    url: str,
    change: Change | None,
    *,
    block_outside: bool = True,
    relay: Relay | None = None,
    login: tuple[str, str] | None = None,
    typing_s: float = 0.0,
) -> Figures:
    """Load ``url`` in a fresh context, time the first map, then apply ``change`` and time
    the redraw. With ``relay`` (which ``url`` goes through), also the bytes on the wire.
    ``login`` (name, password): the dashboard's login form is filled first and the first
    map is timed from its submit, ``typing_s`` seconds after the form appeared (a person
    typing; the server imports the pages' stack meanwhile, ``dashboard/warm.py``)."""
    if relay is not None:
        relay.received = 0
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    if block_outside:
        context.route("**/*", lambda r: r.continue_() if is_local_url(r.request.url) else r.abort())
    page = context.new_page()
    counter = ByteCounter(page)
    t0 = time.perf_counter()
    try:
        page.goto(url)
        if login is not None:
            form = page.locator('[data-testid="stForm"]')
            form.get_by_label("登录名").fill(login[0], timeout=TIMEOUT_MS)
            if typing_s:
                time.sleep(typing_s)  # a person typing, not a wait for a condition
            form.get_by_label("密码", exact=True).fill(login[1])
            t0 = time.perf_counter()
            form.get_by_role("button", name=LOGIN_BUTTON).click()
            page.get_by_role("button", name=LOGOUT_BUTTON).wait_for(timeout=TIMEOUT_MS)
        page.wait_for_function(DRAWN, arg=MAP_IFRAME, timeout=TIMEOUT_MS, polling=50)
    except PlaywrightTimeout as exc:  # a timeout is a figure, not a crash
        print(f"  {url}: no map within {TIMEOUT_MS / 1000:.0f} s ({type(exc).__name__})")
        context.close()
        return Figures(None, None, counter.total / 1e6)
    first = time.perf_counter() - t0
    sent = counter.total / 1e6
    counter.settle(page)
    settled, messages = counter.total / 1e6, counter.sent_frames
    websocket = counter.websocket / 1e6
    wire = relay.received / 1e6 if relay is not None else None
    redraw = filter_mb = None
    if change is not None:
        page.evaluate(MARK_OLD, MAP_IFRAME)
        try:
            change.open(page)  # a page frozen by its markers may not even take the click
            before = counter.total
            t1 = time.perf_counter()
            change.choose(page)
            page.wait_for_function(DRAWN, arg=MAP_IFRAME, timeout=TIMEOUT_MS, polling=50)
            redraw = time.perf_counter() - t1
            filter_mb = (counter.total - before) / 1e6
        except PlaywrightTimeout as exc:
            print(f"  {url}: no redraw within {TIMEOUT_MS / 1000:.0f} s ({type(exc).__name__})")
    context.close()
    return Figures(first, redraw, sent, settled, messages, websocket, wire, filter_mb)


def product_url(base: str, *, start: str, end: str, street: str) -> str:
    """The 一张图 page for the period: ``street`` ``all`` (the whole district) or ``first``
    (the page's default, the first street)."""
    where = "&street=all" if street == "all" else ""
    return f"{base}/?from={start}&to={end}{where}"


def product_change(category_name: str) -> Change:
    """The filter change timed on our page: the category selectbox set to
    ``category_name`` (a category group), as a user does in the sidebar."""
    from dashboard.i18n import t

    return _pick(t("ov_category", "zh"), category_name)


def prepare(name: str, scale: str, seed: int, *, regenerate: bool) -> tuple[Engine, str]:
    """Engine on the benchmark database ``name``, and its name. An existing database holding
    incidents is used as it is, only migrated to head (the dashboard's logins need the
    session scope of migration 0007; nothing is done when it is there already); a missing
    or empty one (or any, with ``regenerate``) gets the demo at ``scale`` generated into
    it."""
    from sqlalchemy.engine import make_url

    from benchmarks.bench_db import admin
    from store.db import make_engine, resolve_url
    from store.settings import get_settings

    base_url = resolve_url(get_settings())
    with admin(base_url) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
    if exists and not regenerate:
        engine = make_engine(
            make_url(base_url).set(database=name).render_as_string(hide_password=False)
        )
        with engine.connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM incident")).scalar_one()
        if n:
            from store.migrate import upgrade

            upgrade(engine)
            return engine, name
    from loaders.demo import generate
    from loaders.demo.load import write_demo

    engine = open_database(name, regenerate=regenerate)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM incident")).scalar_one()
    if n == 0:
        t0 = time.perf_counter()
        write_demo(engine, generate(seed, scale), replace=True)
        print(f"generated and wrote the {scale} demo in {time.perf_counter() - t0:.0f} s")
    return engine, name


@contextmanager
def dashboard_access(engine: Engine) -> Iterator[tuple[str, tuple[str, str]]]:
    """What the dashboard needs to run on ``engine``'s database: the URL of a login role
    that is a member of ``gridone_app`` (NOINHERIT, as the tests' own; dropped on exit) and
    a district user's (login, password), both with generated passwords."""
    from benchmarks.bench_db import admin
    from store import access

    role, role_password = f"gridone_bench_app_{os.getpid()}", secrets.token_urlsafe(18)
    owner_url = engine.url.render_as_string(hide_password=False)
    with admin(owner_url) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL(
                "CREATE ROLE {} LOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS PASSWORD {} "
                "IN ROLE gridone_app"
            ).format(sql.Identifier(role), sql.Literal(role_password))
        )
    login, password = "bench-district", "Pw" + secrets.token_urlsafe(12) + "7"
    with engine.begin() as conn:
        district = conn.execute(
            text("SELECT min(code) FROM admin_unit WHERE level = 'district'")
        ).scalar_one()
        if access.get_user(conn, login) is None:
            access.create_user(
                conn, login, "基准测试", "district", district, password, actor="benchmark"
            )
        else:
            access.set_password(conn, login, password, actor="benchmark")
    app_url = engine.url.set(username=role, password=role_password)
    try:
        yield app_url.render_as_string(hide_password=False), (login, password)
    finally:
        with admin(owner_url) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _fmt(x: float | None, unit: str) -> str:
    return "timeout" if x is None else f"{x:.2f} {unit}"


def _report(label: str, f: Figures) -> str:
    """One run's figures on one line."""
    return (
        f"  {label}: first map {_fmt(f.first_s, 's')}, filter {_fmt(f.filter_s, 's')}, "
        f"{f.megabytes:.2f} MB to the map, {_fmt(f.settled_mb, 'MB')} settled "
        f"({_fmt(f.websocket_mb, 'MB')} over the WebSocket), {f.messages} messages sent"
        + ("" if f.wire_mb is None else f", {f.wire_mb:.2f} MB on the wire")
        + ("" if f.filter_mb is None else f", {f.filter_mb:.2f} MB for the filter change")
    )


def _median(xs: list[float | None]) -> float | None:
    ok = [x for x in xs if x is not None]
    return statistics.median(ok) if len(ok) == len(xs) and ok else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=["district", "street"], default="district")
    ap.add_argument("--seed", type=int, default=20261101)
    ap.add_argument("--runs", type=int, default=3, help="warm runs of our page")
    ap.add_argument(
        "--typing-seconds",
        type=float,
        default=0.0,
        help="seconds between the login form appearing and its submit (a person typing)",
    )
    ap.add_argument(
        "--baseline-runs",
        type=int,
        default=1,
        help="runs of the baseline (each may take minutes at district scale)",
    )
    ap.add_argument("--database", help="default: gridone_bench_dash_<scale>")
    ap.add_argument(
        "--street",
        choices=["all", "first"],
        default="all",
        help="our page over the whole district (all) or its default first street",
    )
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--drop", action="store_true")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument(
        "--fresh-filter",
        action="store_true",
        help="change each run to another category group (not yet cached by the server) "
        "instead of the first group every run (cached after the warm-up)",
    )
    ap.add_argument("--days", type=int, default=90, help="period length, ending on the last day")
    args = ap.parse_args()

    name = args.database or f"gridone_bench_dash_{args.scale}"
    engine, name = prepare(name, args.scale, args.seed, regenerate=args.regenerate)
    with engine.connect() as conn:
        end = conn.execute(
            text("SELECT (max(reported_at) AT TIME ZONE 'Asia/Shanghai')::date FROM incident")
        ).scalar_one()
        group_names = dict(
            conn.execute(
                text(
                    "SELECT code, name_zh FROM incident_category"
                    " WHERE parent_code IS NULL ORDER BY code"
                )
            ).all()
        )
        groups = list(group_names)
        n = conn.execute(
            text("SELECT count(*) FROM incident WHERE reported_at >= :a AND reported_at < :b"),
            {"a": end - dt.timedelta(days=args.days - 1), "b": end + dt.timedelta(days=1)},
        ).scalar_one()
    db_url = engine.url.render_as_string(hide_password=False)
    start = (end - dt.timedelta(days=args.days - 1)).isoformat()
    print(f"{args.scale}: {n:,} incidents in the {args.days} days up to {end}")

    naive_dir = Path(tempfile.mkdtemp(prefix="gridone_naive_"))
    (naive_dir / "naive_app.py").write_text(NAIVE_APP)
    os.symlink(ROOT / "dashboard" / "static", naive_dir / "static")
    # the same server settings (static serving of the vendored Leaflet): Streamlit reads
    # .streamlit/config.toml of its working directory
    (naive_dir / ".streamlit").mkdir()
    shutil.copy(ROOT / ".streamlit" / "config.toml", naive_dir / ".streamlit" / "config.toml")

    results: dict[str, list[Figures]] = {"ours": [], "baseline": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("GRIDONE_CHROMIUM", "/usr/bin/chromium"),
            args=CHROMIUM_ARGS,
        )
        with dashboard_access(engine) as (app_db_url, login):
            proc, base = start_streamlit(db_url, app_database_url=app_db_url)
            relay = Relay(("127.0.0.1", int(base.rsplit(":", 1)[1])))
            relay.on()
            try:
                relayed = f"http://127.0.0.1:{relay.port}"
                url = product_url(relayed, start=start, end=end.isoformat(), street=args.street)
                for i in range(args.runs + 1):
                    # --fresh-filter: each run a category group the server has not drawn yet
                    group = groups[i % len(groups)] if args.fresh_filter else groups[0]
                    f = measure(
                        browser,
                        url,
                        product_change(group_names[group]),
                        relay=relay,
                        login=login,
                        typing_s=args.typing_seconds,
                    )
                    print(_report("ours (warm-up)" if i == 0 else "ours", f))
                    if i:
                        results["ours"].append(f)
            finally:
                relay.off()
                stop_streamlit(proc)
        if not args.skip_baseline:
            env_extra = {
                "BENCH_END": end.isoformat(),
                "BENCH_DAYS": str(args.days),
                "BENCH_CATEGORIES": ",".join(groups),
                "PYTHONPATH": str(ROOT),
            }
            old = {k: os.environ.get(k) for k in env_extra}
            os.environ.update(env_extra)
            try:
                proc, base = start_streamlit(
                    db_url, script=str(naive_dir / "naive_app.py"), cwd=naive_dir
                )
            finally:
                for k, v in old.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            relay = Relay(("127.0.0.1", int(base.rsplit(":", 1)[1])))
            relay.on()
            try:
                # no warm-up: the baseline has no cache to warm, and a run takes minutes
                for _ in range(args.baseline_runs):
                    f = measure(
                        browser,
                        f"http://127.0.0.1:{relay.port}",
                        _pick("category", groups[0]),
                        relay=relay,
                    )
                    print(_report("baseline", f))
                    results["baseline"].append(f)
            finally:
                relay.off()
                stop_streamlit(proc)
        browser.close()
    shutil.rmtree(naive_dir, ignore_errors=True)

    def line(label: str, get: Callable[[Figures], float | None], unit: str, target: str) -> None:
        ours = _median([get(f) for f in results["ours"]])
        base_ = _median([get(f) for f in results["baseline"]]) if results["baseline"] else None
        ratio = f"{base_ / ours:.1f}×" if ours and base_ else "–"
        if unit == "s" and ours and base_ is None and results["baseline"]:
            # the baseline timed out: it took at least the timeout
            base_str = f"> {TIMEOUT_MS / 1000:.0f} s"
            ratio = f"≥ {TIMEOUT_MS / 1000 / ours:.0f}×"
            print(
                f"{label:<22} ours {_fmt(ours, unit):>10}   baseline {base_str:>10}   "
                f"baseline/ours {ratio:>7}   target {target}"
            )
            return
        shown = _fmt(base_, unit) if results["baseline"] else "not run"
        print(
            f"{label:<22} ours {_fmt(ours, unit):>10}   baseline {shown:>10}   "
            f"baseline/ours {ratio:>7}   target {target}"
        )

    print(
        f"\nmedian of {args.runs} warm runs of ours, "
        f"{0 if args.skip_baseline else args.baseline_runs} of the baseline "
        f"({name}, street={args.street}, {n:,} incidents in the period"
        f"{', a new category group each run' if args.fresh_filter else ''}):"
    )
    line("first map drawn", lambda f: f.first_s, "s", "≤ 3 s")
    line("filter change redrawn", lambda f: f.filter_s, "s", "≤ 1 s")
    line("  sent for the change", lambda f: f.filter_mb, "MB", "")
    line("sent to the first map", lambda f: f.megabytes, "MB", "≤ 5 MB")
    line("sent, page settled", lambda f: f.settled_mb, "MB", "≤ 5 MB")
    line("  of it over WebSocket", lambda f: f.websocket_mb, "MB", "")
    line("on the wire, settled", lambda f: f.wire_mb, "MB", "≤ 5 MB")
    line("messages to the server", lambda f: f.messages, "", "1 = no extra rerun")
    if args.drop:
        drop_database(name)


if __name__ == "__main__":
    main()
