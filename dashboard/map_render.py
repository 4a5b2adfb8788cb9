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

It uses streamlit-folium's module-level helpers (``_get_html``, ``_get_header``,
``_get_map_string``, ``_get_feature_group_string``, ``generate_js_hash``,
``_component_func``), pinned in requirements.txt; ``tests/test_map_render.py`` checks that
the strings equal what ``st_folium`` sends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import branca
import folium
import streamlit_folium as sf


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


def show(
    rendered: RenderedMap,
    *,
    layers: str | None = None,
    key: str,
    height: int = 640,
    returned_objects: Sequence[str] = ("last_clicked",),
    defaults: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Draw ``rendered`` with the streamlit-folium component (full container width), with
    ``layers`` (:func:`render_layers`) on it, and return what the map reports
    (``returned_objects``; ``defaults`` until it reports).

    The component is the same (the map in the browser kept) as long as ``rendered`` is:
    new ``layers`` then replace the previous ones in place."""
    digest = rendered.digest or sf.generate_js_hash(rendered.script)
    hash_key = hashlib.sha256(f"{digest}|{key}|{sorted(returned_objects)}".encode()).hexdigest()
    base = {"last_clicked": None, "zoom": rendered.zoom, "center": None}
    default = {k: (defaults or {}).get(k, base.get(k)) for k in returned_objects}
    return sf._component_func(
        script=rendered.script,
        header=rendered.header,
        html=rendered.html,
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
        css_links=list(rendered.css_links),
        js_links=list(rendered.js_links),
        on_change=None,
        wrap_longitude=False,
    )
