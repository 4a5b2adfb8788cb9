"""A saved folium map draws completely in Chromium with every outside request blocked.

The page is served the way Streamlit serves it: the map HTML at ``/`` and
``dashboard/static`` at ``/app/static`` (so the absolute default base URL is exercised).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import folium
import geopandas as gpd
import numpy as np
import pytest
from playwright.sync_api import expect
from shapely.geometry import Point, box

from dashboard import layers, offline

from .conftest import OfflinePage

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.fixture
def map_html(tmp_path: Path) -> Path:
    """Grids, buildings, clustered and canvas points, a heat map and a default marker."""
    offline.use_local_assets()
    grids = gpd.GeoDataFrame(
        {"grid_name": [f"{i + 1}号网格" for i in range(6)]},
        geometry=[
            box(
                120.40 + 0.01 * (i % 3),
                36.30 + 0.01 * (i // 3),
                120.41 + 0.01 * (i % 3),
                36.31 + 0.01 * (i // 3),
            )
            for i in range(6)
        ],
        crs=4326,
    )
    rng = np.random.default_rng(7)
    n = 400
    incidents = gpd.GeoDataFrame(
        {"category": rng.choice(["治安", "环境", "民生"], n)},
        geometry=gpd.points_from_xy(rng.uniform(120.40, 120.43, n), rng.uniform(36.30, 36.32, n)),
        crs=4326,
    )
    buildings = gpd.GeoDataFrame(
        {"building_no": ["1栋", "2栋"]},
        geometry=[box(120.4150, 36.3050, 120.4160, 36.3056), Point(120.4250, 36.3150)],
        crs=4326,
    )

    m = offline.localize_map(layers.base_map(grids.total_bounds))
    layers.boundary_layer(
        grids, name="网格", color="#3366cc", tooltip_fields=["grid_name"], tooltip_aliases=["网格"]
    ).add_to(m)
    layers.building_layer(buildings, name="楼栋", tooltip_fields=["building_no"]).add_to(m)
    layers.point_layer(
        incidents,
        name="事件（聚合）",
        color_column="category",
        cluster=True,
        popup_fields=["category"],
    ).add_to(m)
    layers.point_layer(incidents.iloc[:50], name="事件", color_column="category").add_to(m)
    layers.heat_layer(incidents, name="热力").add_to(m)
    folium.Marker([36.315, 120.405], tooltip="default icon").add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)

    path = tmp_path / "map.html"
    m.save(path)
    return path


def test_saved_map_renders_offline(
    map_html: Path,
    serve: Callable[[Mapping[str, Path]], str],
    offline_page: OfflinePage,
) -> None:
    base = serve({"/": map_html.parent, "/app/static": offline.STATIC_DIR})
    page = offline_page.page
    page.goto(f"{base}/{map_html.name}")

    # polygons (SVG), clusters, canvas layers, the default marker image, the layer control
    expect(page.locator("path.leaflet-interactive")).to_have_count(7)  # 6 grids + 1 footprint
    expect(page.locator(".marker-cluster").first).to_be_visible()
    expect(page.locator("canvas.leaflet-heatmap-layer")).to_have_count(1)
    canvases = page.locator(".leaflet-overlay-pane canvas:not(.leaflet-heatmap-layer)")
    expect(canvases).to_have_count(2)  # canvas points, building dot
    icon = page.locator("img.leaflet-marker-icon")
    expect(icon).to_have_attribute(
        "src", "/app/static/vendor/leaflet@1.9.3/dist/images/marker-icon.png"
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('img.leaflet-marker-icon')]"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )
    expect(page.locator(".leaflet-control-layers-overlays label")).to_have_count(5)
    page.wait_for_function("() => document.fonts.status === 'loaded'")

    assert page.evaluate("() => typeof L !== 'undefined' && L.version") == "1.9.3"
    clusters = page.locator(".marker-cluster").count()
    assert clusters >= 1

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "offline_map.png")
    offline_page.assert_clean()


def test_blocking_is_real(
    serve: Callable[[Mapping[str, Path]], str],
    offline_page: OfflinePage,
    tmp_path: Path,
) -> None:
    """The fixture itself: a CDN link is blocked and reported, not silently loaded."""
    (tmp_path / "cdn.html").write_text(
        '<!doctype html><script src="https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js">'
        "</script><p id=done>done</p>",
        encoding="utf-8",
    )
    base = serve({"/": tmp_path})
    offline_page.page.goto(f"{base}/cdn.html")
    expect(offline_page.page.locator("#done")).to_be_visible()
    assert offline_page.blocked == ["https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js"]
    with pytest.raises(AssertionError, match="blocked outside request"):
        offline_page.assert_clean()
