"""Benchmark: the briefing (``dashboard.briefing.build``) of the whole district and of one
street, month to date of the demo's last day, split by step (key figures, per-grid rates,
hot spots, patrol coverage, freshness, maps, PDF, DOCX), against the aim of 15 s for the
district. Each run builds it twice, interleaved so that the machine's load hits both alike:
"before", the straightforward baseline (sections one after the other on one connection,
coverage computed live from the fixes, KPIs from the incidents, incidents per grid through
``kpis_by_unit``) and "after" (sections side by side on their own connections, coverage
read from the stored days when they are all there — fill them with ``python -m geo
coverage-store`` —, KPIs from the per street and day sums, incidents per grid counted
alone). Every step is printed with both times, their ratio (before ÷ after) and the
machine's load average (1 min) before and after each build: on a shared machine absolute
times mean little without it. With the sections side by side, their times overlap:
``gather`` is the wall time of all of them, and each section's own time is its share of it.

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
import os
import statistics
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
from store.watermark import Watermark

AIM_S = 15.0
STREETS = "SELECT code FROM admin_unit WHERE level = 'street' ORDER BY code"
#: Steps printed, in order (keys of ``Briefing.seconds``): the four sections of the data
#: step (wall time of each, overlapping when side by side; the hot spots are a section of
#: their own since the coverage no longer waits for them: "hotspots_wait" is how long it
#: still did; the coverage's reading of the buildings last passed and its shares per grid
#: and hexagon), the data step's wall time, then the maps and files.
STEPS = (
    "kpis",
    "by_unit",
    "grid_rates",
    "spatial",
    "hotspots",
    "coverage",
    "coverage_read",
    "coverage_units",
    "hotspots_wait",
    "maps_early",
    "maps_indicator",
    "freshness",
    "gather",
    "maps",
    "pdf",
    "docx",
    "total",
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


def load_average() -> float:
    """The machine's load average over the last minute."""
    return os.getloadavg()[0]


def timed_build(engine: Engine, street: str | None, start: dt.date, end: dt.date, new: bool):
    """One briefing built the new way (``new``) or the baseline way, with the load average
    before and after it."""
    load0 = load_average()
    with engine.connect() as conn:
        made = build(
            conn,
            street=street,
            start=start,
            end=end,
            watermark=Watermark.now("benchmark"),
            parallel=new,
            stored=new,
        )
    return made, (load0, load_average())


def table(label: str, runs: dict[str, list[tuple[dict[str, float], tuple[float, float]]]]) -> str:
    """Step times of the ways measured (median over the runs), their ratio, and the load
    averages seen."""
    ways = [w for w in ("before", "after") if runs.get(w)]
    med = {
        w: {k: statistics.median(s.get(k, 0.0) for s, _ in runs[w]) for k in STEPS} for w in ways
    }
    lines = [f"{label}: median of {len(runs[ways[0]])} run(s), seconds"]
    lines.append(
        f"  {'step':<15}"
        + "".join(f"{w:>9}" for w in ways)
        + ("    ratio" if len(ways) == 2 else "")
    )
    for k in STEPS:
        row = f"  {k:<15}" + "".join(f"{med[w][k]:9.2f}" for w in ways)
        if len(ways) == 2:
            b, a = med["before"][k], med["after"][k]
            row += f"  {b / a:6.1f}×" if a > 0.005 and b > 0.005 else "       —"
        lines.append(row)
    for w in ways:
        loads = ", ".join(f"{x:.1f}→{y:.1f}" for _, (x, y) in runs[w])
        lines.append(f"  load average (1 min) around each {w} build: {loads}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=["street", "district"], default="district")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20261120)
    ap.add_argument("--database", help="read this existing scratch database instead")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--drop", action="store_true")
    ap.add_argument("--district-only", action="store_true", help="skip the street briefing")
    ap.add_argument("--before-only", action="store_true", help="only the baseline build")
    ap.add_argument("--after-only", action="store_true", help="only the new build")
    args = ap.parse_args()
    if args.database:
        engine, name = existing(args.database), args.database
    else:
        engine, name = prepare(args.scale, args.seed, regenerate=args.regenerate)
    tz = ZoneInfo(get_settings().timezone)
    try:
        with engine.connect() as conn:
            last = conn.execute(text("SELECT max(reported_at) FROM incident")).scalar_one()
            streets = [r[0] for r in conn.execute(text(STREETS))]
            n_inc = conn.execute(text("SELECT count(*) FROM incident")).scalar_one()
            n_bld = conn.execute(text("SELECT count(*) FROM building")).scalar_one()
        day = last.astimezone(tz).date()
        start, end = day.replace(day=1), day + dt.timedelta(days=1)
        print(
            f"{name}: {n_inc:,} incidents, {n_bld:,} buildings, {len(streets)} streets; "
            f"period {start} … {day}; {os.cpu_count()} cores"
        )
        with engine.connect() as conn:
            as_of = end - dt.timedelta(days=1)
            stored = coverage_store.last_passed(conn, as_of, COVERAGE_DAYS) is not None
        print(
            f"stored coverage for the {COVERAGE_DAYS} days ending {as_of}: "
            + ("yes" if stored else "no (python -m geo coverage-store fills it)")
        )
        scopes = [("district", None)]
        if not args.district_only:
            scopes.append((f"street {streets[0]}", streets[0]))
        ways = [("before", False), ("after", True)]
        if args.before_only:
            ways = [("before", False)]
        if args.after_only:
            ways = [("after", True)]
        for label, street in scopes:
            runs: dict[str, list[tuple[dict[str, float], tuple[float, float]]]] = {}
            for run in range(args.runs):
                for way, new in ways:  # interleaved: the machine's load hits both alike
                    made, loads = timed_build(engine, street, start, end, new)
                    s = made.seconds
                    runs.setdefault(way, []).append((s, loads))
                    pages = len(PdfReader(io.BytesIO(made.pdf or b"")).pages)
                    split = "  ".join(f"{k} {s.get(k, 0):.2f}" for k in STEPS[:-1])
                    print(
                        f"{label:>22} {way:>6} run {run + 1}: total {s['total']:6.2f} s "
                        f"(aim {AIM_S:.0f} s for the district; load {loads[0]:.1f}→"
                        f"{loads[1]:.1f}) | {split} | PDF "
                        f"{len(made.pdf or b'') / 1024:,.0f} KB, {pages} pages",
                        flush=True,
                    )
            print(table(label, runs), flush=True)
    finally:
        engine.dispose()
        if args.drop and not args.database:
            drop_database(name)


if __name__ == "__main__":
    main()
