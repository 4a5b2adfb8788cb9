"""folium maps reference only files vendored under dashboard/static (no CDN, no missing file)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import folium
import folium.plugins
import geopandas as gpd
import numpy as np
import pytest
from folium.elements import JSCSSMixin
from shapely.geometry import box

from dashboard import layers, offline

STATIC_URL = "/app/static/"
REMOTE = re.compile(r"(?:https?:)?//", re.IGNORECASE)


@pytest.fixture(autouse=True)
def local_assets() -> Iterator[None]:
    """Every test starts and ends with the default local configuration."""
    offline.use_local_assets()
    yield
    offline.use_local_assets()


def all_subclasses(cls: type) -> set[type]:
    """Every subclass of ``cls``, found independently of dashboard.offline."""
    found: set[type] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *all_subclasses(sub)}
    return found


def local_file(url: str) -> Path:
    """The file under dashboard/static that ``url`` (``/app/static/…``) is served from."""
    assert url.startswith(STATIC_URL), f"{url} is not under {STATIC_URL}"
    return offline.STATIC_DIR / url.removeprefix(STATIC_URL)


def sample_map() -> folium.Map:
    """Grids as GeoJSON with tooltips, clustered points and a heat map."""
    grids = gpd.GeoDataFrame(
        {"grid_name": ["一网格", "二网格", "三网格"]},
        geometry=[box(120.40 + 0.01 * i, 36.30, 120.41 + 0.01 * i, 36.31) for i in range(3)],
        crs=4326,
    )
    rng = np.random.default_rng(0)
    points = gpd.GeoDataFrame(
        {"category": rng.choice(["治安", "环境"], 100)},
        geometry=gpd.points_from_xy(
            rng.uniform(120.40, 120.43, 100), rng.uniform(36.30, 36.31, 100)
        ),
        crs=4326,
    )
    m = offline.localize_map(layers.base_map(grids.total_bounds))
    layers.boundary_layer(grids, name="网格", color="#3366cc", tooltip_fields=["grid_name"]).add_to(
        m
    )
    layers.point_layer(points, name="事件", color_column="category", cluster=True).add_to(m)
    layers.heat_layer(points, name="热力").add_to(m)
    folium.GeoJson(grids, popup=folium.GeoJsonPopup(fields=["grid_name"])).add_to(m)
    folium.LayerControl().add_to(m)
    return m


def test_every_folium_class_is_local_or_refuses_to_render() -> None:
    classes = all_subclasses(JSCSSMixin)
    assert folium.plugins.Draw in classes and len(classes) > 30  # really all of them
    for cls in classes:
        for links in (cls.default_js, cls.default_css):
            if isinstance(links, list):
                for name, url in links:
                    assert not REMOTE.match(url), f"{cls.__qualname__}.{name} still links {url}"
                    assert local_file(url).is_file(), f"{cls.__qualname__}.{name}: {url} missing"
            else:  # not vendored: a stand-in that raises when rendered
                with pytest.raises(offline.OfflineAssetError, match="not vendored for offline"):
                    list(links)


@pytest.mark.parametrize(
    "cls",
    [folium.Map, folium.plugins.MarkerCluster, folium.plugins.FastMarkerCluster],
)
def test_needed_classes_are_vendored(cls: type[JSCSSMixin]) -> None:
    assert isinstance(cls.default_js, list) and cls.default_js
    assert isinstance(cls.default_css, list) and cls.default_css


def test_heatmap_is_vendored() -> None:
    assert folium.plugins.HeatMap.default_js == [
        ("leaflet-heat.js", "/app/static/vendor/folium@0.20.0/templates/leaflet_heat.min.js")
    ]


def test_rendered_map_references_only_existing_local_files() -> None:
    html = sample_map().get_root().render()
    for needle in ("http://", "https://", "//cdn"):
        assert needle not in html, f"{needle} in the rendered map"
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(urls) >= 13  # leaflet, jquery, bootstrap, fonts, markercluster, heat, ...
    for url in urls:
        assert local_file(url).is_file(), url


def test_vendored_css_only_references_vendored_files() -> None:
    css_files = sorted(offline.VENDOR_DIR.rglob("*.css"))
    assert len(css_files) >= 7
    for css in css_files:
        for ref in re.findall(r"url\(\s*['\"]?([^'\")]+)", css.read_text(encoding="utf-8")):
            if ref.startswith(("data:", "#")):
                continue
            assert not REMOTE.match(ref), f"{css.name} loads {ref}"
            assert (css.parent / ref.split("?")[0].split("#")[0]).is_file(), f"{css}: {ref}"


def test_use_local_assets_is_idempotent_and_takes_a_base() -> None:
    before = (list(folium.Map.default_js), list(folium.Map.default_css))
    offline.use_local_assets()
    assert (folium.Map.default_js, folium.Map.default_css) == before

    offline.use_local_assets("/gm/app/static/vendor/")
    assert folium.Map.default_js[0] == (
        "leaflet",
        "/gm/app/static/vendor/leaflet@1.9.3/dist/leaflet.js",
    )
    assert all(url.startswith("/gm/app/static/vendor/") for _, url in folium.Map.default_css)


def test_glyphicons_are_dropped_on_purpose() -> None:
    assert "glyphicons_css" not in dict(folium.Map.default_css)


@pytest.mark.parametrize("base", ["", "  ", "https://cdn.example.com/vendor", "//cdn.example/x"])
def test_base_url_must_be_a_local_path(base: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        offline.use_local_assets(base)


def test_missing_vendor_folder_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(offline, "VENDOR_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"run scripts/vendor_assets\.sh"):
        offline.use_local_assets()


def test_unvendored_plugin_fails_loudly_when_rendered() -> None:
    m = folium.Map(tiles=None)
    folium.plugins.Fullscreen().add_to(m)
    with pytest.raises(offline.OfflineAssetError, match=r"Fullscreen needs files that are not"):
        m.get_root().render()


def test_localize_map_sets_max_zoom_and_icon_path() -> None:
    m = folium.Map(tiles=None, max_zoom=18)  # folium drops max_zoom here: the trap
    assert "max_zoom" not in m.options
    folium.Marker([36.3, 120.4]).add_to(m)
    offline.localize_map(m, max_zoom=17)
    offline.localize_map(m, max_zoom=17)
    html = m.get_root().render()
    assert '"maxZoom": 17' in html
    assert html.count("L.Icon.Default.imagePath") == 1
    image_path = "/app/static/vendor/leaflet@1.9.3/dist/images/"
    assert f'L.Icon.Default.imagePath = "{image_path}";' in html
    assert html.index("L.Icon.Default.imagePath") < html.index("L.marker(")
    for image in ("marker-icon.png", "marker-icon-2x.png", "marker-shadow.png"):
        assert local_file(image_path + image).is_file()


def test_localize_map_keeps_an_explicit_max_zoom() -> None:
    m = folium.Map(tiles=None, maxZoom=16)
    offline.localize_map(m)
    assert m.options["maxZoom"] == 16 and "max_zoom" not in m.options


def test_localize_map_needs_use_local_assets_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        folium.Map, "default_css", [("leaflet_css", "https://cdn.example/leaflet.css")]
    )
    with pytest.raises(offline.OfflineAssetError, match="use_local_assets"):
        offline.localize_map(folium.Map(tiles=None))


def test_vendor_folder_is_documented_and_small() -> None:
    vendor_md = (offline.VENDOR_DIR / "VENDOR.md").read_text(encoding="utf-8")
    packages = [p for p in offline.VENDOR_DIR.iterdir() if p.is_dir()]
    names = [
        f"{p.name}/{q.name}" if p.name.startswith("@") else p.name
        for p in packages
        for q in (p.iterdir() if p.name.startswith("@") else [p])
    ]
    assert len(names) == 7
    for name in names:
        assert f"`{name}`" in vendor_md, f"{name} is not listed in VENDOR.md"
    total = sum(f.stat().st_size for f in offline.VENDOR_DIR.rglob("*") if f.is_file())
    assert total < 2.5 * 2**20, f"vendor folder grew to {total / 2**20:.1f} MB"
