"""A folium map rendered once into the strings streamlit-folium sends to the browser, and
shown from those strings: so that a page can cache the rendering by its filters.

``st_folium`` renders the whole map (twice) on every script run, even when nothing on the
map changed: at district scale that is seconds of every rerun (a click, a pan reported back).
:func:`render` does the same work once and returns a plain, picklable value that
``st.cache_data`` keeps; :func:`show` hands it to the same streamlit-folium component.

A map in two parts: the part a filter does not change (:func:`render`: basemap, outlines)
and a feature group of the layers that it does (:func:`render_layers`). While the first
stays the same, the component keeps its map and, when the layers change, swaps only them
(streamlit-folium's ``feature_group_to_add``): no new iframe, no Leaflet loaded and no
outlines parsed and drawn again.

Once the component has drawn a map, it ignores the map's script, header, html and files in
every later message (streamlit-folium's frontend only reads them while it has no map): yet
Streamlit sends every argument on every run, megabytes of outlines at district scale for
a filter change that swaps a few kilobytes of layers. :func:`show` therefore sends the base
only when the browser may need it — the first run that shows this map, or one after a run
that did not show it (another page, a run stopped early: the frame then starts anew) — and
a few bytes (:data:`STUB`) otherwise. Should a fresh frame still receive the stub (a frame
that was mounted but not ready when the next run came, a frame remounted by the browser),
the stub asks for the base (:data:`BASE_MISSING`, a new value of the component, so a
rerun) and the next run sends it; the map a user sees is never left empty. This needs
:func:`new_run` at the start of every script run (``dashboard.app.run``).

It uses streamlit-folium's module-level helpers (``_get_html``, ``_get_header``,
``_get_map_string``, ``_get_feature_group_string``, ``generate_js_hash``,
``_component_func``), pinned in requirements.txt; ``tests/test_map_render.py`` checks that
the strings equal what ``st_folium`` sends.
"""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import branca
import folium
import streamlit as st
import streamlit_folium as sf

#: Session-state keys: the components (their keys) drawn with their base in this run and in
#: the previous one, and the last request for the base answered, per component key.
_DRAWN = "_map_render_drawn"
_DRAWN_BEFORE = "_map_render_drawn_before"
_ANSWERED = "_map_render_answered"
#: What a frame that has no map yet reports when it receives :data:`STUB`: a fresh value
#: (so Streamlit reruns the page) under this name.
BASE_MISSING = "gridone_base_missing"
#: The script sent instead of the base to a frame that already has its map. streamlit-folium
#: runs it only in a frame without a map (``script + "window.map = map_div; …"``): there it
#: asks for the base; its trailing ``//`` comments out what the component appends (which
#: would fail without a map).
STUB = (
    "if (!window.map && window.Streamlit) { window.Streamlit.setComponentValue("
    f'{{"{BASE_MISSING}": String(Date.now()) + Math.random()}}); }} //'
)


@dataclass(frozen=True)
class RenderedMap:
    """What the streamlit-folium component needs to draw a map (its arguments)."""

    script: str
    header: str
    html: str
    map_id: str
    css_links: tuple[str, ...]
    js_links: tuple[str, ...]
    zoom: Any
    #: :func:`streamlit_folium.generate_js_hash` of ``script`` (the component's identity),
    #: computed once: over megabytes of script it costs a tenth of a second per run
    digest: str = ""

    @property
    def size(self) -> int:
        """Characters sent to the browser for this map (script, header and html)."""
        return len(self.script) + len(self.header) + len(self.html)


def _assets(m: folium.Map) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """CSS and JS links of the map and its plugins, deduplicated (as ``st_folium`` does)."""
    css: list[str] = []
    js: list[str] = []

    def walk(el: Any) -> Any:
        if isinstance(el, folium.elements.JSCSSMixin | branca.colormap.ColorMap):
            yield el
        for child in getattr(el, "_children", {}).values():
            yield from walk(child)

    for el in walk(m):
        css.extend(href for _, href in getattr(el, "default_css", []))
        js.extend(src for _, src in getattr(el, "default_js", []))
    return tuple(dict.fromkeys(css)), tuple(dict.fromkeys(js))


def render(m: folium.Map) -> RenderedMap:
    """Render ``m`` once into the component's arguments (``m`` is consumed: streamlit-folium
    rewrites its element ids)."""
    m.get_root().render()
    html = sf._get_html(m)
    header = sf._get_header(m)
    script = sf._get_map_string(m)
    css, js = _assets(m)
    return RenderedMap(
        script,
        header,
        html,
        sf.get_full_id(m),
        css,
        js,
        m.options.get("zoom"),
        sf.generate_js_hash(script),
    )


def render_layers(group: folium.FeatureGroup) -> str:
    """The script that adds ``group`` to a map drawn by :func:`show` (as ``st_folium``'s
    ``feature_group_to_add`` does): pass it to :func:`show` as ``layers``. ``group`` is
    consumed. Its plugins' files must already be in the map's (see
    :func:`dashboard.layers.plugin_assets`): a map loads them only when first drawn."""
    host = folium.Map(tiles=None)  # the script names the map ``map_div`` whatever it is
    return sf._get_feature_group_string(group, map=host, idx=0)


def new_run(state: MutableMapping[str, Any] | None = None) -> None:
    """Start a script run (``state``: the session state, ``st.session_state`` by default):
    the maps drawn in the run before are those :func:`show` may send without their base."""
    state = st.session_state if state is None else state
    state[_DRAWN_BEFORE] = state.pop(_DRAWN, frozenset())


def _needs_base(hash_key: str, state: MutableMapping[str, Any]) -> bool:
    """Whether the frame of component ``hash_key`` may lack its map: not drawn in the run
    before, or it asked for the base (:data:`STUB`) and has not been answered yet."""
    asked = state.get(hash_key)
    request = asked.get(BASE_MISSING) if isinstance(asked, dict) else None
    answered = state.setdefault(_ANSWERED, {})
    if request is not None and answered.get(hash_key) != request:
        answered[hash_key] = request
        return True
    return hash_key not in state.get(_DRAWN_BEFORE, frozenset())


def show(
    rendered: RenderedMap,
    *,
    layers: str | None = None,
    key: str,
    height: int = 640,
    returned_objects: Sequence[str] = ("last_clicked",),
    defaults: dict[str, Any] | None = None,
    state: MutableMapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Draw ``rendered`` with the streamlit-folium component (full container width), with
    ``layers`` (:func:`render_layers`) on it, and return what the map reports
    (``returned_objects``; ``defaults`` until it reports).

    The component is the same (the map in the browser kept) as long as ``rendered`` is:
    new ``layers`` then replace the previous ones in place, and the base is not sent again
    (:data:`STUB` instead; see the module's docstring). ``state``: the session state
    (``st.session_state`` by default)."""
    state = st.session_state if state is None else state
    digest = rendered.digest or sf.generate_js_hash(rendered.script)
    hash_key = hashlib.sha256(f"{digest}|{key}|{sorted(returned_objects)}".encode()).hexdigest()
    base = {"last_clicked": None, "zoom": rendered.zoom, "center": None}
    default = {k: (defaults or {}).get(k, base.get(k)) for k in returned_objects}
    full = _needs_base(hash_key, state)
    state[_DRAWN] = state.get(_DRAWN, frozenset()) | {hash_key}
    out = sf._component_func(
        script=rendered.script if full else STUB,
        header=rendered.header if full else "",
        html=rendered.html if full else "",
        id=rendered.map_id,
        key=hash_key,
        height=height,
        width=None,
        returned_objects=list(returned_objects),
        default=default,
        zoom=None,
        center=None,
        feature_group=layers,
        return_on_hover=False,
        layer_control=None,
        pixelated=False,
        css_links=list(rendered.css_links) if full else [],
        js_links=list(rendered.js_links) if full else [],
        on_change=None,
        wrap_longitude=False,
    )
    if isinstance(out, dict) and BASE_MISSING in out:  # a request, not what the map reports
        return default
    return out
