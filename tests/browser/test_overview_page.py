"""The 一张图 (overview) page in headless Chromium against the street demo, every non-local
request blocked: the grids are drawn and coloured by what geo/ computes, a filter changes
them to geo/'s new values, a click (or ``?grid=``) opens the grid's panel with geo/'s KPIs,
``?incident=`` centres on the incident, the URL reproduces centre and zoom, and the GCJ-02
switch moves the layers by the GCJ-02 offset; a filter change does not send the base map
again, a fresh map frame asks for it, and a community user's outlines are drawn once each
at their widths."""

from __future__ import annotations

import datetime as dt
import re
import time
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Frame, Page, WebSocket
from sqlalchemy import Engine

from dashboard import overview_view as ov
from dashboard.maps import GRID_COLOR
from geo import kpis
from geo import overview as geo_overview
from store import overview_sql, queries
from store.offsets import wgs84_to_gcj02
from store.settings import get_settings
from tests.browser.conftest import (
    ARTIFACTS,
    MAP_IFRAME,
    OfflinePage,
    goto,
    map_frame,
    wait_map_settled,
)

VIEWPORT = {"width": 1280, "height": 1900}


@pytest.fixture(scope="module")
def view(demo_engine: Engine) -> dict:
    """The demo street, the default period, its grids and geo's grid KPIs."""
    with demo_engine.connect() as conn:
        (street,) = queries.street_names(conn)
        last = queries.summary(conn).last_reported
        end = last.astimezone(ZoneInfo(get_settings().timezone)).date()
        start = end - dt.timedelta(days=89)
        grids = overview_sql.map_grids(conn, street=street)
        unit = geo_overview.grid_kpis(conn, start, end + dt.timedelta(days=1), street=street)
    return {"street": street, "start": start, "end": end, "grids": grids, "kpis": unit}


def open_page(offline: OfflinePage, url: str) -> Page:
    page = offline.page
    page.set_viewport_size(VIEWPORT)
    goto(page, url)
    return page


def wait_grids(page: Page, n: int) -> Frame:
    """Wait for ``n`` grid outlines in the (current) map iframe; return its frame."""
    page.wait_for_function(
        "([iframe, color, n]) => {"
        "  const doc = document.querySelector(iframe)?.contentDocument;"
        "  return !!doc && doc.querySelectorAll("
        "    `path.leaflet-interactive[stroke='${color}']`).length === n; }",
        arg=[MAP_IFRAME, GRID_COLOR, n],
        timeout=90_000,
        polling=250,
    )
    return map_frame(page)[1]


def legend_text(frame: Frame) -> str:
    """Every legend's text (indicator and incidents)."""
    return "\n".join(frame.locator(".gridone-legend").all_inner_texts())


#: JavaScript finding the folium map object in the iframe.
FIND_MAP = "Object.values(window).find(v => v && typeof v === 'object' && v instanceof L.Map)"


def map_view(frame: Frame) -> tuple[float, float, float]:
    """The Leaflet map's centre and zoom: (lat, lng, zoom)."""
    return tuple(
        frame.evaluate(
            f"() => {{ const m = {FIND_MAP}; const c = m.getCenter();"
            " return [c.lat, c.lng, m.getZoom()]; }"
        )
    )


def grid_bounds(frame: Frame, name: str) -> list[float]:
    """[south, west, north, east] of the grid outline named ``name`` as drawn."""
    return frame.evaluate(
        f"""(name) => {{ const m = {FIND_MAP}; let out = null;
            m.eachLayer(l => {{ if (l.feature && l.feature.properties
                && l.feature.properties.name === name && l.options.color === '{GRID_COLOR}') {{
                const b = l.getBounds();
                out = [b.getSouth(), b.getWest(), b.getNorth(), b.getEast()]; }} }});
            return out; }}""",
        name,
    )


def shot(page: Page, frame: Frame, name: str) -> None:
    """Screenshot once the script run is over (no stale, greyed elements) and the map has
    stopped zooming."""
    page.wait_for_function(
        "() => !document.querySelector('[data-stale=\"true\"]')"
        " && !document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=60_000,
        polling=250,
    )
    wait_map_settled(frame)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def no_traceback(page: Page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator("text=Traceback").count() == 0


def expected_legend(view: dict, values) -> list[str]:
    classes = ov.indicator_classes(values.to_numpy(), "per_1000", no_data="无数据")
    return [label for _, label in classes.entries]


def test_default_view_draws_grids_with_geo_indicator(
    app_url: str, offline_page: OfflinePage, view: dict
) -> None:
    t0 = time.monotonic()
    sent: list[int] = []
    offline_page.page.on(
        "response", lambda r: sent.append(int(r.headers.get("content-length", "0") or 0))
    )
    page = open_page(offline_page, app_url)
    frame = wait_grids(page, len(view["grids"]))
    first_map_s = time.monotonic() - t0
    households = view["grids"].set_index("code")["households"]
    values = geo_overview.grid_indicator(view["kpis"], "per_1000", households=households)
    legend = legend_text(frame)
    for label in expected_legend(view, view["grids"]["code"].map(values)):
        assert label in legend
    frame.wait_for_selector(".marker-cluster", timeout=30_000)
    no_traceback(page)
    shot(page, frame, "overview_default.png")
    print(
        f"\nfirst map drawn after {first_map_s:.1f} s; {sum(sent) / 1e6:.2f} MB by content-length"
    )
    offline_page.assert_clean()


def test_category_filter_changes_the_indicator_to_geo_values(
    app_url: str, offline_page: OfflinePage, view: dict
) -> None:
    page = open_page(offline_page, app_url)
    frame = wait_grids(page, len(view["grids"]))
    before = legend_text(frame)
    goto(page, f"{app_url}/?category=01")
    page.wait_for_function(
        "([iframe, before]) => { const d = document.querySelector(iframe)?.contentDocument;"
        " const t = d ? [...d.querySelectorAll('.gridone-legend')].map(e => e.innerText)"
        "   .join('\\n') : ''; return t && t !== before; }",
        arg=[MAP_IFRAME, before],
        timeout=90_000,
        polling=250,
    )
    frame = wait_grids(page, len(view["grids"]))
    households = view["grids"].set_index("code")["households"]
    values = geo_overview.grid_indicator(
        view["kpis"], "per_1000", households=households, category="01"
    )
    legend = legend_text(frame)
    for label in expected_legend(view, view["grids"]["code"].map(values)):
        assert label in legend
    assert "category=01" in page.url
    no_traceback(page)
    shot(page, frame, "overview_category.png")


def test_grid_link_opens_its_panel_with_geo_kpis(
    app_url: str, offline_page: OfflinePage, view: dict, demo_engine: Engine
) -> None:
    code = view["grids"]["code"].iloc[3]
    name = view["grids"]["name"].iloc[3]
    page = open_page(offline_page, f"{app_url}/?grid={code}")
    wait_grids(page, len(view["grids"]))
    page.get_by_text(f"网格：{name}（{code}）").wait_for(timeout=60_000)
    end_x = view["end"] + dt.timedelta(days=1)
    with demo_engine.connect() as conn:
        street = kpis.kpis(
            conn, unit=view["street"], start=view["start"], end=end_x, repeats=False
        ).figures
    grid_row = view["kpis"].current.loc[code]
    # the KPI table (the special-group counts come before it for a street leader)
    table = page.locator('[data-testid="stTable"]').filter(has_text="办结率")
    rows = {
        r[0]: r[1:]
        for r in (
            [c.strip() for c in tr.locator("th, td").all_inner_texts()]
            for tr in table.locator("tbody tr").all()
        )
    }
    assert rows["办结率"] == [
        ov.format_value(grid_row["closure_rate"], "rate"),
        ov.format_value(street.closure_rate, "rate"),
    ]
    assert rows["上报事件数"] == [f"{grid_row['reported']:.0f}", f"{street.reported:.0f}"]
    text = page.locator('[data-testid="stMain"]').inner_text()
    assert not re.search(r"(?<!\d)1[3-9]\d{9}(?!\d)", text), "a phone number is shown unmasked"
    assert "****" in text
    no_traceback(page)
    shot(page, map_frame(page)[1], "overview_grid_panel.png")


def test_clicking_a_grid_opens_its_panel(
    app_url: str, offline_page: OfflinePage, view: dict
) -> None:
    page = open_page(offline_page, f"{app_url}/?layers=indicator,boundaries")
    frame = wait_grids(page, len(view["grids"]))
    wait_map_settled(frame)
    row = view["grids"].iloc[10]
    p = row.geometry.representative_point()
    x, y = frame.evaluate(
        f"([lat, lng]) => {{ const m = {FIND_MAP};"
        " const pt = m.latLngToContainerPoint([lat, lng]); return [pt.x, pt.y]; }",
        [p.y, p.x],
    )
    box = map_frame(page)[0].bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.get_by_text(f"网格：{row['name']}（{row['code']}）").wait_for(timeout=60_000)
    page.wait_for_function("(code) => location.search.includes('grid=' + code)", arg=row["code"])
    no_traceback(page)


def test_incident_link_centres_on_it(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, view: dict
) -> None:
    with demo_engine.connect() as conn:
        incs = overview_sql.map_incidents(
            conn,
            since=dt.datetime(2000, 1, 1, tzinfo=ZoneInfo("UTC")),
            until=dt.datetime(2100, 1, 1, tzinfo=ZoneInfo("UTC")),
            street=view["street"],
        )
    one = incs.iloc[len(incs) // 2]
    page = open_page(offline_page, f"{app_url}/?incident={one['code']}")
    wait_grids(page, len(view["grids"]))
    frame = map_frame(page)[1]
    frame.wait_for_selector(".leaflet-popup-content", timeout=30_000)
    assert one["code"] in frame.locator(".leaflet-popup-content").inner_text()
    lat, lng, zoom = map_view(frame)
    # Leaflet keeps the centre on whole pixels: a few metres at zoom 17
    assert lat == pytest.approx(one.geometry.y, abs=1e-4)
    assert lng == pytest.approx(one.geometry.x, abs=1e-4)
    assert zoom == ov.INCIDENT_ZOOM
    page.get_by_text(f"事件 {one['code']}", exact=False).first.wait_for()
    no_traceback(page)
    shot(page, frame, "overview_incident.png")


def test_url_reproduces_centre_and_zoom(
    app_url: str, offline_page: OfflinePage, view: dict
) -> None:
    c = view["grids"].geometry.iloc[20].representative_point()
    page = open_page(offline_page, f"{app_url}/?lat={c.y:.6f}&lng={c.x:.6f}&zoom=16")
    frame = wait_grids(page, len(view["grids"]))
    lat, lng, zoom = map_view(frame)
    assert (lat, lng, zoom) == (pytest.approx(c.y, abs=1e-4), pytest.approx(c.x, abs=1e-4), 16)
    page.wait_for_function("() => location.search.includes('zoom=16')", timeout=30_000)
    no_traceback(page)


def test_gcj02_switch_moves_layers_by_the_offset(
    app_url: str, offline_page: OfflinePage, view: dict
) -> None:
    row = view["grids"].iloc[5]
    page = open_page(offline_page, app_url)
    plain = grid_bounds(wait_grids(page, len(view["grids"])), row["name"])
    goto(page, f"{app_url}/?gcj02=1")
    page.wait_for_function("() => location.search.includes('gcj02=1')", timeout=60_000)
    deadline = time.monotonic() + 90
    while True:
        frame = wait_grids(page, len(view["grids"]))
        shifted = grid_bounds(frame, row["name"])
        if shifted and shifted != plain:
            break
        assert time.monotonic() < deadline, "the layers never moved"
        page.wait_for_timeout(500)
    minx, miny, _, _ = row.geometry.bounds
    gx, gy = wgs84_to_gcj02(minx, miny)
    assert plain[0] == pytest.approx(miny, abs=1e-6) and plain[1] == pytest.approx(minx, abs=1e-6)
    assert shifted[0] == pytest.approx(float(gy), abs=2e-6)
    assert shifted[1] == pytest.approx(float(gx), abs=2e-6)
    shot(page, frame, "overview_gcj02.png")


def test_every_layer_draws(
    app_url: str, offline_page: OfflinePage, view: dict, demo_engine: Engine
) -> None:
    """All layers on at once (tracks of the last patrol day, buildings not passed in 7 days,
    density, hot spots, key places, cameras): the page draws them without an error, and
    the track lines are the patrols of that day."""
    day = dt.date(2026, 11, 18)
    layers = ",".join(ov.LAYERS[1:])  # all but the basemap (none configured)
    page = open_page(offline_page, f"{app_url}/?layers={layers}&day={day}&days=7")
    frame = wait_grids(page, len(view["grids"]))
    with demo_engine.connect() as conn:
        tz = ZoneInfo(get_settings().timezone)
        since = dt.datetime.combine(day, dt.time(), tz)
        tracks = overview_sql.patrol_tracks(
            conn, since=since, until=since + dt.timedelta(days=1), street=view["street"]
        )
    assert len(tracks) > 0
    from dashboard.maps import TRACK_COLOR

    frame.wait_for_function(
        "([c, n]) => document.querySelectorAll(`path[stroke='${c}']`).length === n",
        arg=[TRACK_COLOR, len(tracks)],
        timeout=90_000,
        polling=250,
    )
    no_traceback(page)
    assert page.locator('[data-testid="stAlert"]').filter(has_text="无法绘制").count() == 0
    shot(page, map_frame(page)[1], "overview_all_layers.png")
    offline_page.assert_clean()


def test_pan_updates_the_url_without_a_rerun(
    app_url: str, offline_page: OfflinePage, view: dict
) -> None:
    """Panning writes lat/lng/zoom into the URL in the browser (no message to the server,
    so no page run); after a filter change the URL again holds the new map's view."""
    page = open_page(offline_page, f"{app_url}/?layers=indicator,boundaries")
    sent: list[str] = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append("x")))
    frame = wait_grids(page, len(view["grids"]))
    shot(page, frame, "overview_before_pan.png")  # waits for the run to end
    c = view["grids"].geometry.iloc[30].representative_point()
    before = len(sent)
    frame.evaluate(f"([lat, lng]) => {FIND_MAP}.setView([lat, lng], 17)", [c.y, c.x])
    page.wait_for_function(
        "(lat) => new URLSearchParams(location.search).get('lat') === lat",
        arg=f"{c.y:.6f}",
        timeout=30_000,
    )
    assert "zoom=17" in page.url
    page.wait_for_timeout(1500)  # streamlit-folium reports moves after a debounce
    assert len(sent) == before, "the pan made the page run again"
    page.get_by_role("combobox", name="事件类别").click()
    page.get_by_role("option", name="矛盾纠纷", exact=True).click()
    page.wait_for_function("() => location.search.includes('category=01')", timeout=60_000)
    frame = wait_grids(page, len(view["grids"]))
    wait_map_settled(frame)
    lat, lng, zoom = map_view(frame)
    page.wait_for_function(
        "([lat, lng, zoom]) => { const q = new URLSearchParams(location.search);"
        " return q.get('lat') === lat && q.get('lng') === lng && q.get('zoom') === zoom; }",
        arg=[f"{lat:.6f}", f"{lng:.6f}", f"{zoom:g}"],
        timeout=30_000,
    )
    no_traceback(page)


#: JavaScript: each grid outline's fill colour as drawn, by grid code.
GRID_FILLS = f"""() => {{ const m = {FIND_MAP}; const out = {{}};
    m.eachLayer(l => {{ if (l.feature && l.feature.properties
        && l.options.color === '{GRID_COLOR}') {{
        out[l.feature.properties.code] = l.options.fillColor; }} }});
    return out; }}"""


def test_filter_change_recolours_the_map_in_place(
    app_url: str, offline_page: OfflinePage, view: dict
) -> None:
    """A category chosen in the sidebar recolours the grids of the map already drawn (its
    Leaflet container is kept: no new map, no outlines sent again) with the classes geo/
    gives for that category, and swaps the legend."""
    page = open_page(offline_page, app_url)
    frame = wait_grids(page, len(view["grids"]))
    wait_map_settled(frame)
    shot(page, frame, "overview_before_filter.png")
    frame.evaluate("() => { document.querySelector('.leaflet-container').dataset.kept = '1'; }")
    households = view["grids"].set_index("code")["households"]
    values = view["grids"]["code"].map(
        geo_overview.grid_indicator(view["kpis"], "per_1000", households=households, category="01")
    )
    classes = ov.indicator_classes(values.to_numpy(), "per_1000", no_data="无数据")
    expected = {
        code: classes.colors[c]
        for code, c in zip(view["grids"]["code"], classes.codes, strict=True)
    }
    assert frame.evaluate(GRID_FILLS) != expected
    page.get_by_role("combobox", name="事件类别").click()
    page.get_by_role("option", name="矛盾纠纷", exact=True).click()
    frame.wait_for_function(
        f"(expected) => JSON.stringify(({GRID_FILLS})()) === JSON.stringify(expected)",
        arg=dict(sorted(expected.items())),
        timeout=90_000,
        polling=250,
    )
    assert frame.locator(".leaflet-container[data-kept='1']").count() == 1, "a new map was drawn"
    labels = [label for _, label in classes.entries]
    frame.wait_for_function(
        "(labels) => { const t = [...document.querySelectorAll('.gridone-legend')]"
        "  .map(e => e.innerText).join('\\n'); return labels.every(l => t.includes(l)); }",
        arg=labels,
        timeout=30_000,
    )
    page.wait_for_function("() => location.search.includes('category=01')", timeout=60_000)
    no_traceback(page)
    shot(page, frame, "overview_filter_in_place.png")
    offline_page.assert_clean()


def _ws_received(page: Page) -> list[bytes]:
    """Every WebSocket frame the page receives from now on (Streamlit's messages)."""
    frames: list[bytes] = []

    def on_ws(ws: WebSocket) -> None:
        ws.on(
            "framereceived",
            lambda p: frames.append(p if isinstance(p, bytes) else p.encode()),
        )

    page.on("websocket", on_ws)
    return frames


#: A piece of the base map's script only (the map made), never of the layers swapped in.
BASE_MARK = b"L.map("


def test_filter_change_does_not_send_the_base_map_again(
    app_url: str, offline_page: OfflinePage, view: dict
) -> None:
    """The base (outlines, files) goes to the browser with the first map only: a filter
    change sends the new layers and a few bytes in its place, and the map drawn stays."""
    frames = _ws_received(offline_page.page)
    page = open_page(offline_page, f"{app_url}/?layers=indicator,boundaries,incidents")
    frame = wait_grids(page, len(view["grids"]))
    shot(page, frame, "overview_base_once_before.png")  # waits for the run to end
    first = b"".join(frames)
    assert BASE_MARK in first
    frame.evaluate("() => { document.querySelector('.leaflet-container').dataset.kept = '1'; }")
    before = len(frames)
    legend = legend_text(frame)
    page.get_by_role("combobox", name="事件类别").click()
    page.get_by_role("option", name="矛盾纠纷", exact=True).click()
    frame.wait_for_function(
        "(before) => [...document.querySelectorAll('.gridone-legend')]"
        "  .map(e => e.innerText).join('\\n') !== before",
        arg=legend,
        timeout=90_000,
        polling=250,
    )
    shot(page, frame, "overview_base_once_after.png")
    change = b"".join(frames[before:])
    assert BASE_MARK not in change, "the filter change sent the base map again"
    assert frame.locator(".leaflet-container[data-kept='1']").count() == 1, "a new map was drawn"
    assert len(change) < len(first) / 2
    print(f"\nfirst map {len(first) / 1e3:.0f} kB, filter change {len(change) / 1e3:.0f} kB")
    no_traceback(page)
    offline_page.assert_clean()


def test_map_comes_back_after_another_page_and_a_fresh_frame(
    app_url: str, offline_page: OfflinePage, view: dict
) -> None:
    """Another page and back in the same session draws the map anew (its base sent again);
    a component frame that starts anew while the page keeps it (reloaded here) gets the
    few bytes, asks for the base and draws the map."""
    frames = _ws_received(offline_page.page)
    page = open_page(offline_page, app_url)
    frame = wait_grids(page, len(view["grids"]))
    shot(page, frame, "overview_fresh_before.png")
    page.locator('[data-testid="stSidebarNav"] a[href$="/incidents"]').click()
    page.wait_for_function("() => location.pathname.endsWith('/incidents')", timeout=60_000)
    page.wait_for_selector(MAP_IFRAME, state="detached", timeout=60_000)
    page.locator('[data-testid="stSidebarNav"] a').first.click()
    frame = wait_grids(page, len(view["grids"]))
    shot(page, frame, "overview_fresh_back.png")
    legend = legend_text(frame)
    page.get_by_role("combobox", name="事件类别").click()  # a run sending the few bytes
    page.get_by_role("option", name="矛盾纠纷", exact=True).click()
    frame.wait_for_function(
        "(before) => [...document.querySelectorAll('.gridone-legend')]"
        "  .map(e => e.innerText).join('\\n') !== before",
        arg=legend,
        timeout=90_000,
        polling=250,
    )
    shot(page, frame, "overview_fresh_filtered.png")
    before = len(frames)
    assert BASE_MARK not in b"".join(frames[-3:])
    page.evaluate(
        "(sel) => { const w = document.querySelector(sel).contentWindow;"
        " w.document.body.dataset.old = '1'; w.location.reload(); }",
        MAP_IFRAME,
    )
    page.wait_for_function(
        "([sel, color, n]) => { const d = document.querySelector(sel)?.contentDocument;"
        "  return !!d && !!d.body && !d.body.dataset.old && d.querySelectorAll("
        "    `path.leaflet-interactive[stroke='${color}']`).length === n; }",
        arg=[MAP_IFRAME, GRID_COLOR, len(view["grids"])],
        timeout=90_000,
        polling=250,
    )
    frame = map_frame(page)[1]
    assert BASE_MARK in b"".join(frames[before:]), "the fresh frame was not sent the base"
    assert legend_text(frame) != legend, "the fresh frame lost the filter's layers"
    shot(page, frame, "overview_fresh_reloaded.png")
    no_traceback(page)
    offline_page.assert_clean()


#: JavaScript: the outlines drawn in the map (SVG paths with a stroke), as "colour width".
DRAWN_STROKES = """() => [...document.querySelectorAll('path.leaflet-interactive')]
    .filter(p => p.getAttribute('stroke')).map(p =>
        p.getAttribute('stroke') + ' ' + p.getAttribute('stroke-width'))"""


def test_community_user_map_draws_each_outline_once_at_its_width(
    app_url: str, offline_page: OfflinePage, demo_engine: Engine, demo_users
) -> None:
    """A community user's map (zoomed in on one community): each grid, the community and
    the street outlined once, at the widths of dashboard.maps, no zoom scale left on the
    drawing, before and after filter changes (layers swapped in place) and a community
    chosen (a new map)."""
    from collections import Counter

    from dashboard.maps import COMMUNITY_COLOR, STREET_COLOR

    community = demo_users["community"].scope_code
    with demo_engine.connect() as conn:
        n = len(overview_sql.map_grids(conn, community=community))
    want = Counter({f"{GRID_COLOR} 1": n, f"{COMMUNITY_COLOR} 2": 1, f"{STREET_COLOR} 3": 1})
    page = offline_page.page
    page.set_viewport_size(VIEWPORT)
    goto(page, app_url, "community")
    for step in ("open", "矛盾纠纷", "安全隐患", "community"):
        if step == "community":
            page.get_by_role("combobox", name="社区").click()
            page.get_by_role("option", name=re.compile("社区$")).last.click()
            page.wait_for_function(
                "(c) => location.search.includes('community=' + c)", arg=community, timeout=60_000
            )
        elif step != "open":
            page.get_by_role("combobox", name="事件类别").click()
            page.get_by_role("option", name=step, exact=True).click()
        frame = wait_grids(page, n)
        page.mouse.move(5, 5)  # no outline under the pointer (hover draws it wider)
        shot(page, frame, f"overview_community_{step}.png")
        assert Counter(frame.evaluate(DRAWN_STROKES)) == want, step
        assert frame.evaluate(
            "() => [...document.querySelectorAll('.leaflet-pane svg')]"
            "  .every(s => !/scale/.test(s.style.transform))"
        ), step
    no_traceback(page)
    offline_page.assert_clean()
