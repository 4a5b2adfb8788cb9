"""One worker's day of fixes for a track replay (轨迹回放): every raw fix, why it was
dropped if it was, its session, and whether the step from the previous kept fix is drawn
as track — exactly the cleaning of :mod:`geo.coverage` (:func:`geo.coverage.clean_fixes`
on the same fixes :func:`geo.coverage.day_tracks` reads), laid out fix by fix so a page can
show what the coverage figures were computed from."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyproj
from sqlalchemy import Connection

from geo.coverage import BAD_ACCURACY, IMPOSSIBLE_JUMP, KEPT, clean_fixes, scope_epsg
from geo.settings import CoverageParams
from store import coverage_sql as sql
from store.crs import STORAGE_EPSG, WEB_EPSG
from store.settings import get_settings

#: Why a fix was dropped, Chinese and English (``reason`` of :func:`worker_day_fixes`).
REASON_LABELS: dict[int, tuple[str, str]] = {
    KEPT: ("保留", "kept"),
    BAD_ACCURACY: ("定位精度差（误差超过{acc:g}米）", "poor accuracy (worse than {acc:g} m)"),
    IMPOSSIBLE_JUMP: (
        "不可能的跳点（速度超过{speed:g}公里/小时）",
        "impossible jump (faster than {speed:g} km/h)",
    ),
}


def worker_day_fixes(
    conn: Connection,
    day: dt.date,
    worker_id: int,
    *,
    street: str | None = None,
    params: CoverageParams | None = None,
    timezone: str | None = None,
) -> pd.DataFrame:
    """Every fix of one worker on one local day, cleaned as :func:`geo.coverage.coverage_day`
    cleans it.

    Returns
    -------
    pandas.DataFrame
        One row per raw fix in time order: ``at`` (local time), ``lon``, ``lat``
        (EPSG:4326), ``accuracy_m``, ``reason`` (:data:`geo.coverage.KEPT`,
        ``BAD_ACCURACY`` or ``IMPOSSIBLE_JUMP``), ``session`` (0, 1, … for kept fixes in
        the worker's day, −1 for dropped ones) and ``drawn`` (kept and joined to the
        previous kept fix of its session by a step of at most ``max_step_s``: a line is
        drawn; otherwise the signal was lost and the way walked is unknown). Empty when
        the worker has no fix that day.
    """
    p = params or CoverageParams()
    tz = ZoneInfo(timezone or get_settings().timezone)
    epsg = scope_epsg(conn, street=street)
    t0 = dt.datetime.combine(day, dt.time(0), tzinfo=tz)
    raw = sql.fixes(conn, t0, t0 + dt.timedelta(days=1), street=street)
    x, y = pyproj.Transformer.from_crs(STORAGE_EPSG, epsg, always_xy=True).transform(
        raw.lon, raw.lat
    )
    cleaned = clean_fixes(raw.worker, raw.t, x, y, raw.accuracy, p)
    mine = np.flatnonzero(raw.worker == worker_id)
    session = cleaned.session[mine]
    if len(mine):  # number the worker's own sessions from 0
        kept_s = session[session >= 0]
        first = kept_s.min() if len(kept_s) else 0
        session = np.where(session >= 0, session - first, -1)
    t = raw.t[mine]
    kept = session >= 0
    kept_i = np.flatnonzero(kept)
    drawn = np.zeros(len(mine), dtype=bool)
    if len(kept_i) > 1:
        step_ok = (session[kept_i[1:]] == session[kept_i[:-1]]) & (
            np.diff(t[kept_i]) <= p.max_step_s
        )
        drawn[kept_i[1:]] = step_ok
    lon, lat = pyproj.Transformer.from_crs(STORAGE_EPSG, WEB_EPSG, always_xy=True).transform(
        raw.lon[mine], raw.lat[mine]
    )
    return pd.DataFrame(
        {
            "at": pd.Series(pd.to_datetime(t, unit="s", utc=True)).dt.tz_convert(tz),
            "lon": np.asarray(lon, dtype=float),
            "lat": np.asarray(lat, dtype=float),
            "accuracy_m": raw.accuracy[mine],
            "reason": cleaned.reason[mine].astype(int),
            "session": session.astype(int),
            "drawn": drawn,
        }
    )
