"""Serve folium's JavaScript, CSS, fonts and images from the project instead of public CDNs.

folium 0.20 links Leaflet, jQuery, Bootstrap, Font Awesome and every plugin from CDNs (the
class attributes ``default_js`` / ``default_css``), and streamlit-folium 0.27 injects those same
URLs into its iframe. Without internet such a map is blank (``L is not defined``) or, inside
Streamlit, an iframe of zero height with no error anywhere. This module points those URLs at
the copies committed under ``dashboard/static/vendor/`` (made by ``scripts/vendor_assets.sh``,
listed in ``dashboard/static/vendor/VENDOR.md``), which Streamlit serves under
``/app/static/`` when ``server.enableStaticServing`` is on.

Two steps, both needed:

* :func:`use_local_assets` once per process, before any map is rendered. It rewrites the
  class attributes of ``folium.Map`` and of every plugin class (process-wide, like folium's
  own defaults; calling it again is harmless). Plugins whose files are not vendored cannot be
  rendered afterwards: they raise :class:`OfflineAssetError` instead of drawing a blank map.
* :func:`localize_map` on each map: sets ``L.Icon.Default.imagePath`` to the local Leaflet
  images and gives a map without a tile layer the ``maxZoom`` that marker clusters need.

The base URL
------------
streamlit-folium runs the map in an iframe served from
``/component/streamlit_folium.st_folium/index.html``, so a *relative* URL such as
``app/static/vendor/...`` resolves to ``/component/streamlit_folium.st_folium/app/static/...``
and 404s. URLs must be absolute paths: the default :data:`DEFAULT_BASE_URL` is
``/app/static/vendor``. Behind a proxy with Streamlit's ``server.baseUrlPath`` set to ``gm``,
pass ``/gm/app/static/vendor``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NoReturn

import folium
import folium.plugins  # also imports every plugin class, so that all are rewritten
from branca.element import MacroElement
from folium.elements import JSCSSMixin
from folium.template import Template

__all__ = [
    "ASSETS",
    "DEFAULT_BASE_URL",
    "REQUIRED_CLASSES",
    "STATIC_DIR",
    "VENDOR_DIR",
    "LocalIconPath",
    "OfflineAssetError",
    "asset_classes",
    "localize_map",
    "use_local_assets",
]

#: Folder served by Streamlit at ``/app/static/`` (it sits next to ``dashboard/app.py``).
STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Folder of the vendored packages, one ``<package>@<version>/`` sub-folder each.
VENDOR_DIR = STATIC_DIR / "vendor"
#: URL of :data:`VENDOR_DIR` as seen by a page served by Streamlit (absolute: see module doc).
DEFAULT_BASE_URL = "/app/static/vendor"

#: Every CDN URL that folium 0.20 uses for the supported classes, mapped to its file under
#: :data:`VENDOR_DIR`. ``None`` drops the link on purpose: Bootstrap 3's glyphicons CSS has no
#: npm package and nothing here uses ``folium.Icon(prefix="glyphicon")`` (use ``prefix="fa"``).
ASSETS: Mapping[str, str | None] = {
    # folium.Map
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js": "leaflet@1.9.3/dist/leaflet.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery@3.7.1/dist/jquery.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/js/bootstrap.bundle.min.js": (
        "bootstrap@5.2.2/dist/js/bootstrap.bundle.min.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/Leaflet.awesome-markers/2.0.2/"
    "leaflet.awesome-markers.js": (
        "drmonty-leaflet-awesome-markers@2.0.2/js/leaflet.awesome-markers.min.js"
    ),
    "https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css": "leaflet@1.9.3/dist/leaflet.css",
    "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/css/bootstrap.min.css": (
        "bootstrap@5.2.2/dist/css/bootstrap.min.css"
    ),
    "https://netdna.bootstrapcdn.com/bootstrap/3.0.0/css/bootstrap-glyphicons.css": None,
    "https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@6.2.0/css/all.min.css": (
        "@fortawesome/fontawesome-free@6.2.0/css/all.min.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/Leaflet.awesome-markers/2.0.2/"
    "leaflet.awesome-markers.css": (
        "drmonty-leaflet-awesome-markers@2.0.2/css/leaflet.awesome-markers.css"
    ),
    "https://cdn.jsdelivr.net/gh/python-visualization/folium/folium/templates/"
    "leaflet.awesome.rotate.min.css": "folium@0.20.0/templates/leaflet.awesome.rotate.min.css",
    # folium.plugins.MarkerCluster and FastMarkerCluster
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/leaflet.markercluster.js": (
        "leaflet.markercluster@1.1.0/dist/leaflet.markercluster.js"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/MarkerCluster.css": (
        "leaflet.markercluster@1.1.0/dist/MarkerCluster.css"
    ),
    "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/"
    "MarkerCluster.Default.css": "leaflet.markercluster@1.1.0/dist/MarkerCluster.Default.css",
    # folium.plugins.HeatMap
    "https://cdn.jsdelivr.net/gh/python-visualization/folium@main/folium/templates/"
    "leaflet_heat.min.js": "folium@0.20.0/templates/leaflet_heat.min.js",
}

#: Classes the dashboard needs; :func:`use_local_assets` fails if any of their URLs is not in
#: :data:`ASSETS` (i.e. after a folium upgrade, until the vendor folder is refreshed).
#: ``FastMarkerCluster`` inherits ``MarkerCluster``'s lists; ``GeoJson``, ``GeoJsonTooltip`` and
#: ``GeoJsonPopup`` need nothing beyond ``folium.Map``'s.
REQUIRED_CLASSES: tuple[type[JSCSSMixin], ...] = (
    folium.Map,
    folium.plugins.MarkerCluster,
    folium.plugins.HeatMap,
)

_ORIGINAL_LINKS: dict[type, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {}
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)


class OfflineAssetError(RuntimeError):
    """A folium class needs JavaScript or CSS that is not vendored for offline use."""


class _NotVendored:
    """Stands in for the ``default_js`` / ``default_css`` list of a class whose files are not
    vendored, so that rendering it raises instead of linking a CDN or a missing file.

    folium (``JSCSSMixin.render``) and streamlit-folium both iterate over these lists, which
    is where the error surfaces, naming the class and the fix.
    """

    def __init__(self, cls: type, urls: list[str]) -> None:
        self.cls = cls
        self.urls = urls

    def __iter__(self) -> NoReturn:
        missing = ", ".join(u for u in self.urls if u not in ASSETS)
        raise OfflineAssetError(
            f"{self.cls.__module__}.{self.cls.__qualname__} needs files that are not vendored "
            f"for offline use ({missing}). Add them to scripts/vendor_assets.sh and "
            "dashboard.offline.ASSETS, run the script, and list them in "
            "dashboard/static/vendor/VENDOR.md; or do without this plugin."
        )

    def __len__(self) -> int:
        return len(self.urls)

    def __repr__(self) -> str:
        return f"<not vendored: {self.cls.__qualname__}>"


def asset_classes() -> Iterator[type[JSCSSMixin]]:
    """Yield every class (folium, its plugins, anything imported so far) that declares its own
    ``default_js`` or ``default_css``.

    Subclasses that merely inherit the lists (``FastMarkerCluster``) are skipped: rewriting the
    parent covers them.
    """
    seen: set[type] = set()
    stack: list[type] = [JSCSSMixin]
    while stack:
        cls = stack.pop()
        subclasses: list[type] = cls.__subclasses__()
        for sub in subclasses:
            if sub in seen:
                continue
            seen.add(sub)
            stack.append(sub)
            if "default_js" in vars(sub) or "default_css" in vars(sub):
                yield sub


def _is_remote(url: str) -> bool:
    return bool(_REMOTE.match(url))


def _join(base_url: str, relpath: str) -> str:
    return posixpath.join(base_url.rstrip("/"), relpath)


def _check_base_url(base_url: str) -> str:
    if not isinstance(base_url, str) or not base_url.strip():
        raise ValueError("base_url must be a non-empty URL path such as '/app/static/vendor'")
    if _is_remote(base_url):
        raise ValueError(
            f"base_url {base_url!r} points at another host; give the path under which "
            "dashboard/static/vendor is served by this app, e.g. '/app/static/vendor'"
        )
    return base_url.rstrip("/") or "/"


def _missing_vendored_files() -> list[str]:
    return sorted(rel for rel in ASSETS.values() if rel and not (VENDOR_DIR / rel).is_file())


def use_local_assets(base_url: str = DEFAULT_BASE_URL) -> None:
    """Point folium's and every plugin's ``default_js`` / ``default_css`` at local copies.

    Call it once at start-up, before any map is built or rendered. It is idempotent: the CDN
    lists are remembered the first time, so calling again (with the same or another base)
    rewrites from the originals.

    Parameters
    ----------
    base_url
        URL path under which ``dashboard/static/vendor`` is served. Absolute (``/…``) for
        Streamlit, whose map iframe lives under ``/component/…``; a relative value only suits
        a saved HTML page next to a ``vendor`` folder.

    Raises
    ------
    OfflineAssetError
        A class in :data:`REQUIRED_CLASSES` asks for a URL that is not in :data:`ASSETS` (folium
        was upgraded: re-run ``scripts/vendor_assets.sh`` and update :data:`ASSETS`).
    FileNotFoundError
        A vendored file is missing from ``dashboard/static/vendor``.
    ValueError
        ``base_url`` is empty or names another host.

    Notes
    -----
    Classes with remote links that are not vendored (``Draw``, ``MiniMap``, ``Fullscreen``, …)
    get a stand-in list: building them still works, rendering them raises
    :class:`OfflineAssetError` naming the missing files. Links that are already local (set by
    a caller with ``add_js_link``) are kept.
    """
    base = _check_base_url(base_url)
    missing = _missing_vendored_files()
    if missing:
        raise FileNotFoundError(
            f"vendored assets missing under {VENDOR_DIR}: {', '.join(missing)}; "
            "run scripts/vendor_assets.sh (needs npm) or restore the folder from git"
        )

    for cls in asset_classes():
        if cls not in _ORIGINAL_LINKS:
            js, css = cls.__dict__.get("default_js"), cls.__dict__.get("default_css")
            _ORIGINAL_LINKS[cls] = (
                list(js) if isinstance(js, list) else [],
                list(css) if isinstance(css, list) else [],
            )
        original_js, original_css = _ORIGINAL_LINKS[cls]
        remote = [url for _, url in original_js + original_css if _is_remote(url)]
        unknown = [url for url in remote if url not in ASSETS]
        if unknown:
            if cls in REQUIRED_CLASSES:
                raise OfflineAssetError(
                    f"{cls.__qualname__} asks for {', '.join(unknown)}, which is not vendored. "
                    "folium was probably upgraded: update scripts/vendor_assets.sh and "
                    "dashboard.offline.ASSETS to its versions and run the script."
                )
            stand_in = _NotVendored(cls, remote)
            cls.default_js = stand_in  # type: ignore[assignment]
            cls.default_css = stand_in  # type: ignore[assignment]
            continue
        cls.default_js = _localize(original_js, base)
        cls.default_css = _localize(original_css, base)


def _localize(links: list[tuple[str, str]], base: str) -> list[tuple[str, str]]:
    out = []
    for name, url in links:
        if not _is_remote(url):
            out.append((name, url))
            continue
        relpath = ASSETS[url]
        if relpath is not None:
            out.append((name, _join(base, relpath)))
    return out


class LocalIconPath(MacroElement):
    """Sets ``L.Icon.Default.imagePath`` so default Leaflet markers load the local images.

    Added to a map (not the figure header): streamlit-folium inserts the header with
    ``innerHTML``, where scripts never run, but it evaluates every map child's script.

    Parameters
    ----------
    image_path
        URL of Leaflet's ``dist/images/`` folder, ending in ``/``.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            L.Icon.Default.imagePath = {{ this.image_path|tojson }};
        {% endmacro %}
        """
    )

    def __init__(self, image_path: str) -> None:
        super().__init__()
        self._name = "LocalIconPath"
        self.image_path = image_path if image_path.endswith("/") else image_path + "/"


def _leaflet_css_url() -> str:
    links = folium.Map.default_css
    if isinstance(links, list):
        for name, url in links:
            if name == "leaflet_css" and not _is_remote(url):
                return url
    raise OfflineAssetError(
        "folium.Map still links Leaflet from a CDN: call dashboard.offline.use_local_assets() "
        "once at start-up, before building maps"
    )


def localize_map(m: folium.Map, *, max_zoom: int = 18) -> folium.Map:
    """Make one map work offline: local default-marker images and a ``maxZoom``.

    Parameters
    ----------
    m
        The map; changed in place and returned. Calling twice changes nothing more.
    max_zoom
        Used only when the map has no tile layer and no ``maxZoom`` of its own: without one
        Leaflet has no maximum zoom and marker clusters fail silently ("Map has no maxZoom
        specified"). ``folium.Map(tiles=None, max_zoom=…)`` does *not* set it (folium only
        passes ``max_zoom`` to the tile layer it would create).

    Returns
    -------
    folium.Map
        ``m`` itself.

    Raises
    ------
    OfflineAssetError
        :func:`use_local_assets` has not been called.
    """
    if not isinstance(m, folium.Map):
        raise TypeError(f"localize_map needs a folium.Map, got {type(m).__name__}")
    if isinstance(max_zoom, bool) or not isinstance(max_zoom, int) or not 0 < max_zoom <= 24:
        raise ValueError(f"max_zoom must be an integer from 1 to 24, got {max_zoom!r}")
    image_path = posixpath.dirname(_leaflet_css_url()) + "/images/"

    has_tiles = any(isinstance(c, folium.TileLayer) for c in m._children.values())
    if not has_tiles and "max_zoom" not in m.options and "maxZoom" not in m.options:
        m.options["max_zoom"] = max_zoom

    if not any(isinstance(c, LocalIconPath) for c in m._children.values()):
        m.add_child(LocalIconPath(image_path))
        # Run before any marker is created: move the element to the front of the children.
        name = next(n for n, c in m._children.items() if isinstance(c, LocalIconPath))
        m._children.move_to_end(name, last=False)
    return m
