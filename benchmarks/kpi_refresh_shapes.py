"""Benchmark: the KPI refresh after a small load into a big store, in the two shapes that
pull its plans apart (``store.kpi_summary.refresh``):

* daily — 1,000 incidents reported on one day (a street office's daily file): a handful
  of (street, day) keys, read through the day indexes of migration 0010;
* spread — 1,000 incidents spread over the whole year the store holds (a back-fill):
  hundreds to thousands of keys, where probing the indexes key by key walks most of the
  table; from :data:`store.kpi_summary.KEY_PASS_SHARE` of the stored keys on, the sums
  are read by one pass over the incidents instead.

Each shape runs with the threshold as set and with it out of reach (per-key probes
always), in the same run, alternating, each in a transaction rolled back afterwards (the
store is left as it was). Prints the refresh's time split into repeat flags and sums,
the key count and the load average.

    .venv/bin/python benchmarks/kpi_refresh_shapes.py --db gridone_bench_profile [--repeat 2]

The database must hold the incidents already (``benchmarks/profile_load.py --rows 1000000
--keep`` fills ``gridone_bench_profile``; any migrated scratch store works). The new rows
are copies of stored incidents (fresh codes, same places), inserted by SQL so that the
statement triggers note their keys as a load's would.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text
from sqlalchemy.engine import make_url

from store import kpi_summary
from store.db import make_engine, resolve_url
from store.settings import get_settings

#: 1,000 stored incidents copied with fresh codes: reported on the store's last day
#: (daily) or on days spread evenly over its last year (spread); the other times keep
#: their offsets from the report.
_COPY = text(
    """
    INSERT INTO incident (code, category_code, source, severity, title, address, occurred_at,
                          reported_at, due_at, grid_code, street_code, geom,
                          h3_r7, h3_r8, h3_r9, h3_r10, h3_r11)
    SELECT 'KS' || n, category_code, source, severity, title, address,
           occurred_at + shift, reported_at + shift, due_at + shift, grid_code,
           street_code, geom, h3_r7, h3_r8, h3_r9, h3_r10, h3_r11
      FROM (SELECT i.*, row_number() OVER (ORDER BY i.id) AS n,
                   (SELECT max(reported_at) FROM incident) - i.reported_at
                   - CASE WHEN :spread
                          THEN make_interval(days => CAST(row_number() OVER (ORDER BY i.id)
                                                          % 365 AS int))
                          ELSE interval '0' END AS shift
              FROM incident i ORDER BY i.id LIMIT 1000) s
    """
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", required=True, help="a migrated scratch store holding incidents")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    url = make_url(resolve_url(get_settings())).set(database=args.db)
    engine = make_engine(url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM incident")).scalar_one()
    print(f"{args.db}: {n:,} incidents; one pass from {kpi_summary.KEY_PASS_SHARE:.0%} of the keys")
    threshold = kpi_summary.KEY_PASS_MIN
    for run in range(args.repeat):
        for spread in (False, True):
            for probes_only in (run % 2 == 0, run % 2 == 1):
                kpi_summary.KEY_PASS_MIN = 10**12 if probes_only else threshold
                with engine.connect() as conn, conn.begin() as tx:
                    conn.execute(text("SET LOCAL jit = off"))  # as the loader runs
                    if True:
                        conn.execute(_COPY, {"spread": spread})
                        t0 = time.perf_counter()
                        changed = kpi_summary._refresh_repeats(conn)
                        t1 = time.perf_counter()
                        done = kpi_summary.refresh(conn)  # the sums (the region is taken)
                        t2 = time.perf_counter()
                        tx.rollback()
                print(
                    f"  {'spread' if spread else 'daily '} "
                    f"{'per-key probes' if probes_only else 'as set        '}  "
                    f"{done['days']:>5,} keys  repeats {t1 - t0:6.2f} s ({changed} changed)  "
                    f"sums {t2 - t1:6.2f} s  load average {os.getloadavg()[0]:.1f}"
                )
    kpi_summary.KEY_PASS_MIN = threshold
    engine.dispose()


if __name__ == "__main__":
    main()
