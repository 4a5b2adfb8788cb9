"""Benchmark: the briefing (``dashboard.briefing.build``) of the whole district and of one
street, month to date of the demo's last day, split by step (key figures, per-grid rates,
hot spots, patrol coverage, freshness, maps, PDF, DOCX), against the aim of 15 s for the
district.

    .venv/bin/python benchmarks/briefing.py [--scale district|street] [--runs N]
                                            [--database NAME] [--regenerate] [--drop]

The demo is generated into a scratch database ``gridone_bench_briefing_<scale>`` (kept for
the next run; the district takes minutes to generate). ``--database`` reads an existing
scratch database holding a demo instead (read-only: the briefing writes nothing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pypdf import PdfReader
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from benchmarks.bench_db import drop_database, open_database
from dashboard.briefing import build
from store.db import make_engine, resolve_url
from store.settings import get_settings

AIM_S = 15.0
STREETS = "SELECT code FROM admin_unit WHERE level = 'street' ORDER BY code"
STEPS = ("kpis", "grid_rates", "hotspots", "coverage", "freshness", "maps", "pdf", "docx")


def prepare(scale: str, seed: int, *, regenerate: bool) -> tuple[Engine, str]:
    """An engine on the benchmark database holding the demo at ``scale``, and its name."""
    from loaders.demo import generate
    from loaders.demo.load import write_demo

    name = f"gridone_bench_briefing_{scale}"
    engine = open_database(name, regenerate=regenerate)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM incident")).scalar_one()
    if n == 0:
        t0 = time.perf_counter()
        data = generate(seed, scale)
        write_demo(engine, data, replace=True, truth_path=Path(f"/tmp/{name}-truth.json"))
        print(f"generated and wrote the {scale} demo in {time.perf_counter() - t0:.0f} s")
    return engine, name


def existing(name: str) -> Engine:
    """An engine on an existing database of the configured server."""
    url = make_url(resolve_url(get_settings())).set(database=name)
    return make_engine(url.render_as_string(hide_password=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=["street", "district"], default="district")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20261120)
    ap.add_argument("--database", help="read this existing scratch database instead")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--drop", action="store_true")
    args = ap.parse_args()
    if args.database:
        engine, name = existing(args.database), args.database
    else:
        engine, name = prepare(args.scale, args.seed, regenerate=args.regenerate)
    tz = ZoneInfo(get_settings().timezone)
    try:
        with engine.connect() as conn:
            last = conn.execute(text("SELECT max(reported_at) FROM incident")).scalar_one()
            streets = [
                r[0]
                for r in conn.execute(
                    text("SELECT code FROM admin_unit WHERE level = 'street' ORDER BY code")
                )
            ]
            n_inc = conn.execute(text("SELECT count(*) FROM incident")).scalar_one()
        day = last.astimezone(tz).date()
        start, end = day.replace(day=1), day + dt.timedelta(days=1)
        print(f"{name}: {n_inc:,} incidents, {len(streets)} streets; period {start} … {day}")
        scopes = [("district", None), (f"street {streets[0]}", streets[0])]
        for label, street in scopes:
            for run in range(args.runs):
                with engine.connect() as conn:
                    made = build(conn, street=street, start=start, end=end)
                s = made.seconds
                split = "  ".join(f"{k} {s.get(k, 0):.2f}" for k in STEPS)
                pages = len(PdfReader(io.BytesIO(made.pdf or b"")).pages)
                print(
                    f"{label:>22} run {run + 1}: total {s['total']:6.2f} s "
                    f"(aim {AIM_S:.0f} s for the district) | {split} | PDF "
                    f"{len(made.pdf or b'') / 1024:,.0f} KB" + (f", {pages} pages" if pages else "")
                )
    finally:
        engine.dispose()
        if args.drop and not args.database:
            drop_database(name)


if __name__ == "__main__":
    main()
