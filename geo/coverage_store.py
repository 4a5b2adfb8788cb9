"""Building coverage stored per day: :func:`geo.coverage.last_passed` without re-reading
a week or a month of GPS fixes on every call.

Why: a district day is a million fixes; :func:`~geo.coverage.last_passed` reads, cleans and
indexes every day of its look-back on each call (the briefing's 7 days: 8-40 s of its time
at district scale, the patrol page's 30-day list more). A past day's answer only changes
when its fixes or the buildings change, so :func:`fill` computes each day once, with
:mod:`geo.coverage`'s own cleaning and :class:`~geo.coverage.TrackIndex`, and stores, for
every building passed that day, the latest time it was passed (``coverage_building_day``,
migration 0006):

``last_any``
    by any worker — the figure of a district-wide call (``street=None``);
``last_street``
    by the workers a call scoped to the building's own street reads that day (the
    street's workers and anyone with a fix in one of its grids, as
    :func:`store.coverage_sql.fixes`), so a street's figure is also the live one.

:func:`last_passed` then answers ``max`` over the window's days per building (the days'
windows are disjoint, so the latest day with a pass gives the latest time: what the live
computation finds walking days newest first) and builds the very frame of
:func:`geo.coverage.last_passed` from it.

When stored figures are used, and when not: only when every day of the window is stored
with the metric CRS the live call would use and the same thresholds and time zone
(``coverage_day.params``). Otherwise :func:`last_passed` returns None and the caller
computes live (:func:`last_passed_or_live`). Triggers (migration 0006) delete a stored day
as soon as a fix of its window is inserted, changed or deleted — a reload of one past
day's tracks drops that day — and every day when buildings change; :func:`fill` and those
triggers take the same advisory lock, so a fill running beside a load can never store a
day from fixes the load has since replaced.

Figures (district demo: 198,251 buildings, about a million fixes a day; 2 cores shared
with other heavy jobs, load average 12-13, so every figure is inflated several times):
filling one day took 2-49 s (17-49 s for the days with fixes); the briefing's 7-day
``last_passed`` then took 6-10 s stored against 40-65 s live, most of it reading the
buildings (3.5 s) and the per-building maximum over the days (1.7-2.2 s).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from zoneinfo import ZoneInfo

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import Connection

from geo.coverage import (
    DEFAULT_WINDOWS,
    TrackIndex,
    _day_window,
    _last_passed_frame,
    _unvisited_frame,
    _with_metric,
    day_tracks,
    scope_epsg,
)
from geo.coverage import (
    last_passed as live_last_passed,
)
from geo.settings import CoverageParams
from store import coverage_sql as sql
from store import coverage_store_sql as store_sql
from store.settings import get_settings

#: Buildings handled per batch of pair enumeration (bounds memory, as TrackIndex.BATCH).
BATCH = 50_000


def params_fingerprint(params: CoverageParams, timezone: str) -> str:
    """A short fingerprint of the thresholds and time zone a day was computed with."""
    body = params.model_dump_json() + "|" + timezone
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def _piece_workers(
    tracks_worker: np.ndarray, t: np.ndarray, session: np.ndarray, max_step_s: float
) -> np.ndarray:
    """The worker of each track piece, in the order :func:`geo.coverage._pieces` makes
    them (steps first, then lone fixes)."""
    step = (session[1:] == session[:-1]) & (np.diff(t) <= max_step_s)
    a = np.flatnonzero(step)
    touched = np.zeros(len(t), dtype=bool)
    touched[a] = touched[a + 1] = True
    lone = np.flatnonzero(~touched)
    return np.concatenate([tracks_worker[a + 1], tracks_worker[lone]])


def compute_day(
    conn: Connection,
    day: dt.date,
    *,
    params: CoverageParams | None = None,
    timezone: str | None = None,
) -> tuple[int, int, pd.DataFrame]:
    """One day's stored figures: ``(epsg, fixes read, frame)``, the frame holding
    ``building_id, street_code, grid_code, last_any, last_street`` for every building
    passed that day (epoch seconds; ``last_street`` NaN when only other streets' workers
    passed it)."""
    p = params or CoverageParams()
    tzname = timezone or get_settings().timezone
    epsg = scope_epsg(conn)
    tracks = day_tracks(conn, day, epsg, params=p, timezone=tzname)
    n_fixes = int(tracks.counts["fixes"].sum()) if len(tracks.counts) else 0
    bld = _with_metric(sql.buildings(conn), epsg)
    columns = ["building_id", "street_code", "grid_code", "last_any", "last_street"]
    if len(tracks.pieces) == 0 or bld.empty:
        return epsg, n_fixes, pd.DataFrame({c: [] for c in columns})
    piece_w = _piece_workers(tracks.worker, tracks.t, tracks.session, p.max_step_s)
    if len(piece_w) != len(tracks.pieces):  # pragma: no cover - guards the copy of _pieces
        raise RuntimeError("piece workers out of step with geo.coverage._pieces")
    # who a street-scoped call reads that day: (worker, street) pairs allowed
    seen = store_sql.worker_streets(conn, *_day_window(day, ZoneInfo(tzname)))
    streets = np.sort(bld["street_code"].astype(str).unique())
    s_idx = np.searchsorted(streets, bld["street_code"].astype(str).to_numpy())
    allowed: set[tuple[int, int]] = set()
    prefix_of = pd.Series(np.arange(len(streets)), index=[s[:9] for s in streets])
    for w, sc, g9 in seen.itertuples(index=False):
        k = np.searchsorted(streets, sc)
        if k < len(streets) and streets[k] == sc:
            allowed.add((int(w), int(k)))
        if isinstance(g9, str) and g9 in prefix_of.index:
            for kk in np.atleast_1d(prefix_of.loc[g9]):
                allowed.add((int(w), int(kk)))
    keys = np.array(sorted(w * len(streets) + k for w, k in allowed), dtype=np.int64)

    index = TrackIndex(tracks.pieces, tracks.piece_t)
    r = p.building_radius_m
    xy = bld[["x", "y"]].to_numpy(float)
    last_any = np.full(len(bld), np.nan)
    last_street = np.full(len(bld), np.nan)
    if index.tree is not None:
        d, _ = index.tree.query(xy, k=1, distance_upper_bound=index._reach(r))
        near = np.flatnonzero(np.isfinite(d))
        for lo in range(0, len(near), BATCH):
            part = near[lo : lo + BATCH]
            qi, piece = index._pairs(xy[part], r)
            if not len(qi):
                continue
            t = tracks.piece_t[piece]
            best = np.full(len(part), -np.inf)
            np.maximum.at(best, qi, t)
            hit = np.isfinite(best)
            last_any[part[hit]] = best[hit]
            key = piece_w[piece] * len(streets) + s_idx[part[qi]]
            ok = np.isin(key, keys)
            best = np.full(len(part), -np.inf)
            np.maximum.at(best, qi[ok], t[ok])
            hit = np.isfinite(best)
            last_street[part[hit]] = best[hit]
    passed = ~np.isnan(last_any)
    out = pd.DataFrame(
        {
            "building_id": bld["building_id"].to_numpy()[passed],
            "street_code": bld["street_code"].to_numpy()[passed],
            "grid_code": bld["grid_code"].to_numpy()[passed],
            "last_any": last_any[passed],
            "last_street": last_street[passed],
        }
    )
    return epsg, n_fixes, out


def fill(
    conn: Connection,
    days: Iterable[dt.date],
    *,
    params: CoverageParams | None = None,
    timezone: str | None = None,
    only_missing: bool = True,
) -> list[dt.date]:
    """Compute and store the given days (by default only those not stored yet, or stored
    with other thresholds, time zone or CRS); returns the days written.

    Each day is written in its own transaction on ``conn`` (committed here): call it on a
    connection of the data's owner (loaders, the command line), never inside a request.
    The advisory lock shared with the invalidation triggers is held from before the fixes
    are read until the day is committed.
    """
    p = params or CoverageParams()
    tzname = timezone or get_settings().timezone
    fp = params_fingerprint(p, tzname)
    tz = ZoneInfo(tzname)
    written: list[dt.date] = []
    for day in sorted(set(days)):
        if conn.in_transaction():
            conn.commit()
        store_sql.lock(conn)
        epsg_now = scope_epsg(conn)
        if only_missing and store_sql.is_stored(conn, day, *_day_window(day, tz), epsg_now, fp):
            conn.commit()
            continue
        epsg, n_fixes, frame = compute_day(conn, day, params=p, timezone=tzname)
        store_sql.replace_day(conn, day, *_day_window(day, tz), epsg, fp, n_fixes, frame)
        conn.commit()
        written.append(day)
    return written


def last_passed(
    conn: Connection,
    as_of: dt.date,
    days: int,
    *,
    street: str | None = None,
    params: CoverageParams | None = None,
    timezone: str | None = None,
) -> gpd.GeoDataFrame | None:
    """:func:`geo.coverage.last_passed` from the stored days, or None when one of the
    ``days`` days ending on ``as_of`` is not stored as the live call would compute it."""
    if days < 1:
        raise ValueError("days must be at least 1")
    p = params or CoverageParams()
    tzname = timezone or get_settings().timezone
    tz = ZoneInfo(tzname)
    epsg = scope_epsg(conn, street=street)
    since = as_of - dt.timedelta(days=days - 1)
    windows = [_day_window(since + dt.timedelta(days=k), tz) for k in range(days)]
    fp = params_fingerprint(p, tzname)
    if store_sql.stored_days(conn, since, as_of, windows, epsg, fp) != days:
        return None
    bld = _with_metric(sql.buildings(conn, street=street), epsg)
    best = store_sql.last_per_building(conn, since, as_of, street=street)
    last = bld["building_id"].map(best).to_numpy(dtype=float)
    return _last_passed_frame(bld, last, as_of, tz)


def last_passed_or_live(
    conn: Connection,
    as_of: dt.date,
    days: int,
    *,
    street: str | None = None,
    params: CoverageParams | None = None,
    timezone: str | None = None,
) -> tuple[gpd.GeoDataFrame, bool]:
    """The stored answer when complete, else :func:`geo.coverage.last_passed` computed
    live (with the same ``params`` and ``timezone``); and whether it came from the store."""
    stored = last_passed(conn, as_of, days, street=street, params=params, timezone=timezone)
    if stored is not None:
        return stored, True
    live = live_last_passed(conn, as_of, days, street=street, params=params, timezone=timezone)
    return live, False


def unvisited_buildings(
    conn: Connection,
    as_of: dt.date,
    days: Sequence[int] = DEFAULT_WINDOWS,
    street: str | None = None,
    *,
    params: CoverageParams | None = None,
    timezone: str | None = None,
) -> tuple[gpd.GeoDataFrame, bool]:
    """:func:`geo.coverage.unvisited_buildings` (not passed in 7 / 14 / 30 days) from the
    stored days when all of the longest window are there, else live; and whether it came
    from the store."""
    windows = sorted({int(d) for d in days})
    if not windows or windows[0] < 1:
        raise ValueError("days must be positive numbers of days, e.g. (7, 14, 30)")
    lp, from_store = last_passed_or_live(
        conn, as_of, windows[-1], street=street, params=params, timezone=timezone
    )
    return _unvisited_frame(lp, windows), from_store


def stored_days(conn: Connection) -> set[dt.date]:
    """The days stored (whatever their thresholds)."""
    return store_sql.all_days(conn)


def refresh_after_load(
    conn: Connection, before: set[dt.date], *, max_days: int = 30
) -> list[dt.date]:
    """The post-load step of a patrol load: store again the days that were stored before
    the load (``before``, from :func:`stored_days`) and that its fixes dropped, and the
    days after the last stored one up to the latest fix (at most ``max_days`` back), so
    that a daily load keeps the store complete. Nothing when nothing was ever stored (the
    first fill is ``python -m geo coverage-store``). Returns the days computed.

    The loader's command line reaches the same step through ``python -m geo
    coverage-store --days`` (:func:`store.coverage_store_sql.days_to_restore` names the
    days), so that the loaders never import :mod:`geo`."""
    days = store_sql.days_to_restore(conn, before, get_settings().timezone, max_days=max_days)
    return fill(conn, days) if days else []
