"""Benchmark: the briefing (``dashboard.briefing.build``) of the whole district and of one
street, month to date of the demo's last day, split by step (key figures, per-grid rates,
hot spots, patrol coverage, freshness, maps, PDF, DOCX), against the aim of 15 s for the
district. Each run builds it twice, interleaved: "before" (sections one after the other,
coverage computed live from the fixes) and "after" (sections side by side on their own
connections, coverage read from the stored days when they are all there: fill them with
``python -m geo coverage-store``). With the sections side by side, their times overlap:
``gather`` is the wall time of all of them.

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
from dashboard.briefing.data import COVERAGE_DAYS
from geo import coverage_store
from store.db import make_engine, resolve_url
from store.settings import get_settings

AIM_S = 15.0
STREETS = "SELECT code FROM admin_unit WHERE level = 'street' ORDER BY code"
STEPS = (
    "kpis",
    "by_unit",
    "grid_rates",
    "hotspots",
    "coverage",
    "maps_early",
    "maps_indicator",
    "freshness",
    "maps",
    "pdf",
    "docx",
)


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
    ap.add_argument(
        "--before-only", action="store_true", help="only the sequential, live-coverage build"
    )
    ap.add_argument(
        "--after-only", action="store_true", help="only the parallel, stored-coverage build"
    )
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
        with engine.connect() as conn:
            as_of = end - dt.timedelta(days=1)
            stored = coverage_store.last_passed(conn, as_of, COVERAGE_DAYS) is not None
        print(
            f"stored coverage for the {COVERAGE_DAYS} days ending {as_of}: "
            + ("yes" if stored else "no (python -m geo coverage-store fills it)")
        )
        scopes = [("district", None), (f"street {streets[0]}", streets[0])]
        ways = [("before", False)] if args.before_only else [("before", False), ("after", True)]
        if args.after_only:
            ways = [("after", True)]
        for label, street in scopes:
            for run in range(args.runs):
                for way, new in ways:  # interleaved: the machine's load hits both alike
                    with engine.connect() as conn:
                        made = build(
                            conn, street=street, start=start, end=end, parallel=new, stored=new
                        )
                    s = made.seconds
                    split = "  ".join(f"{k} {s.get(k, 0):.2f}" for k in STEPS)
                    pages = len(PdfReader(io.BytesIO(made.pdf or b"")).pages)
                    print(
                        f"{label:>22} {way:>6} run {run + 1}: total {s['total']:6.2f} s "
                        f"(aim {AIM_S:.0f} s for the district) | gather {s['gather']:.2f} "
                        f"| {split} | PDF {len(made.pdf or b'') / 1024:,.0f} KB"
                        + (f", {pages} pages" if pages else ""),
                        flush=True,
                    )
    finally:
        engine.dispose()
        if args.drop and not args.database:
            drop_database(name)


if __name__ == "__main__":
    main()
