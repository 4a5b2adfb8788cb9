"""Benchmark: where the server's time goes when the 一张图 page builds its map, step by step
(cold: no Streamlit cache), and how many megabytes each layer adds to the page, against an
existing benchmark database (read only).

    .venv/bin/python benchmarks/overview_server.py [--database gridone_bench_dash_district]
                                                   [--street CODE] [--category 01] [--days 90]

Complements benchmarks/dashboard_map.py (the browser's view): the page caches each step by
its arguments, so these are the costs of the first view of a filter.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import folium  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from dashboard import layers, map_render  # noqa: E402
from dashboard import overview_view as ov  # noqa: E402
from dashboard.maps import CATEGORY_COLORS, OneMapLayers, onemap  # noqa: E402
from dashboard.offline import use_local_assets  # noqa: E402
from geo import overview as geo_overview  # noqa: E402
from geo.period import as_instant  # noqa: E402
from store import overview_sql as sql  # noqa: E402
from store.db import make_engine, resolve_url  # noqa: E402
from store.settings import get_settings  # noqa: E402


def timed(label: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn``, print its wall time, return its result."""
    t0 = time.perf_counter()
    out = fn()
    print(f"  {label:<28} {time.perf_counter() - t0:6.2f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--database", default="gridone_bench_dash_district")
    ap.add_argument("--street", help="a street code; default the whole district")
    ap.add_argument("--category", help="a category group, e.g. 01")
    ap.add_argument("--days", type=int, default=90)
    args = ap.parse_args()
    url = make_url(resolve_url(get_settings())).set(database=args.database)
    engine = make_engine(url.render_as_string(hide_password=False))
    use_local_assets("/app/static/vendor")
    street, category = args.street, args.category
    tol = sql.GRID_SIMPLIFY_DEG if street else sql.DISTRICT_SIMPLIFY_DEG
    with engine.connect() as conn:
        end = conn.execute(
            text("SELECT (max(reported_at) AT TIME ZONE 'Asia/Shanghai')::date FROM incident")
        ).scalar_one()
        start, end_x = end - dt.timedelta(days=args.days - 1), end + dt.timedelta(days=1)
        since, until = as_instant(start), as_instant(end_x)
        print(f"{args.database}, street={street or 'all'}, {start} … {end}:")
        grids = timed("grids", lambda: sql.map_grids(conn, street=street, simplify_deg=tol))
        unit = timed(
            "grid KPIs (geo.kpis)",
            lambda: geo_overview.grid_kpis(conn, start, end_x, street=street),
        )
        n = timed(
            "incident total",
            lambda: sql.incident_total(
                conn, since=since, until=until, street=street, category=category
            ),
        )
        if n <= ov.POINT_LIMIT:
            points = timed(
                f"incidents ({n:,} points)",
                lambda: sql.map_incidents(
                    conn, since=since, until=until, street=street, category=category
                ),
            )
            inc, entries = ov.incident_layer(points, "category", CATEGORY_COLORS, {}, "zh")
            counts = None
        else:
            per_grid = timed(
                f"counts per grid ({n:,})",
                lambda: sql.incident_counts(
                    conn, since=since, until=until, street=street, category=category
                ),
            )
            counts, entries = ov.count_layer(per_grid, "category", CATEGORY_COLORS, {}, "zh")
            inc = None
        outlines = timed(
            "street/community outlines",
            lambda: (
                sql.map_admin_units(conn, "street", street=street, simplify_deg=tol),
                sql.map_admin_units(conn, "community", street=street, simplify_deg=tol),
            ),
        )
    values = geo_overview.grid_indicator(
        unit, "per_1000", households=grids.set_index("code")["households"], category=category
    )
    drawn, classes = ov.indicator_layer(grids, values, "per_1000", no_data="无数据")
    data = OneMapLayers(
        grids=grids,
        streets=outlines[0],
        communities=outlines[1],
        indicator=drawn,
        indicator_colors=classes.colors,
        indicator_legend=("每千户事件数", classes.entries),
        incidents=inc,
        incident_counts=counts,
        incident_palette=dict(CATEGORY_COLORS),
        incident_legend=("事件", entries),
    )
    m = timed("onemap (folium objects)", lambda: onemap(data, view_in_url=True))
    rendered = timed("render (once, cached)", lambda: map_render.render(m))
    print(f"  map sent to the browser      {rendered.size / 1e6:6.2f} MB")
    packed = len(zlib.compress((rendered.script + rendered.header + rendered.html).encode(), 6))
    print(f"    deflated (WebSocket compression on) {packed / 1e6:6.2f} MB")

    def size(layer: folium.map.Layer | folium.MacroElement) -> float:
        one = layers.base_map(grids.total_bounds)
        layer.add_to(one)
        return map_render.render(one).size / 1e6

    empty = size(folium.FeatureGroup(name="x"))
    parts = {
        "grid outlines": layers.boundary_layer(
            grids, name="g", color="#3b6fb6", tooltip_fields=["name", "worker_name"]
        ),
        "indicator": layers.class_layer(
            drawn,
            name="i",
            column="__class",
            colors=classes.colors,
            tooltip_fields=["name", "__value"],
        ),
        "community outlines": layers.boundary_layer(outlines[1], name="c", color="#000"),
    }
    for label, layer in parts.items():
        print(f"    {label:<26} {size(layer) - empty:6.2f} MB")


if __name__ == "__main__":
    main()
