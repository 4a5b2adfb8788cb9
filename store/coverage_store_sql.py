"""Every SQL statement of the stored building coverage (:mod:`geo.coverage_store`; tables
``coverage_day`` and ``coverage_building_day`` of migration 0006), as ``sqlalchemy.text``
with bound parameters.

Times are stored as the float8 epoch seconds the live computation produces (not
``timestamptz``, which would round them to microseconds), written with a binary COPY and
read back with one, so a stored figure is bit for bit the live one.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from sqlalchemy import Connection, text

from store.queries import copy_float_columns

#: The advisory lock the invalidation triggers take shared and the filler exclusively.
_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('gridone.coverage_day'))")


def lock(conn: Connection) -> None:
    """Take the filler's lock until the transaction ends (see migration 0006)."""
    conn.execute(_LOCK)


_WORKER_STREETS = text(
    """
    SELECT DISTINCT f.worker_id, f.street_code, left(f.grid_code, 9) AS grid_prefix
      FROM patrol_fix f
     WHERE f.fixed_at >= :t0 AND f.fixed_at < :t1
    """
)


def worker_streets(conn: Connection, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """``worker_id, street_code, grid_prefix`` of the fixes in ``[start, end)``: who a
    street-scoped read of :func:`store.coverage_sql.fixes` takes in (a worker of the
    street, or one with a fix in a grid whose code starts with the street's 9 digits)."""
    rows = conn.execute(_WORKER_STREETS, {"t0": start, "t1": end}).all()
    return pd.DataFrame(rows, columns=["worker_id", "street_code", "grid_prefix"])


_IS_STORED = text(
    """
    SELECT count(*) FROM coverage_day
     WHERE day = :day AND starts_at = :t0 AND ends_at = :t1 AND epsg = :epsg
       AND params = :params
    """
)


def is_stored(
    conn: Connection, day: dt.date, start: dt.datetime, end: dt.datetime, epsg: int, params: str
) -> bool:
    """Whether ``day`` is stored with this window, CRS and parameter fingerprint."""
    row = conn.execute(
        _IS_STORED, {"day": day, "t0": start, "t1": end, "epsg": epsg, "params": params}
    ).scalar_one()
    return bool(row)


_STORED_DAYS = text(
    """
    SELECT count(*) FROM coverage_day d
      JOIN unnest(CAST(:days AS date[]), CAST(:t0 AS timestamptz[]),
                  CAST(:t1 AS timestamptz[])) AS w(day, t0, t1)
        ON d.day = w.day AND d.starts_at = w.t0 AND d.ends_at = w.t1
     WHERE d.day BETWEEN :since AND :until AND d.epsg = :epsg AND d.params = :params
    """
)


def stored_days(
    conn: Connection,
    since: dt.date,
    until: dt.date,
    windows: list[tuple[dt.datetime, dt.datetime]],
    epsg: int,
    params: str,
) -> int:
    """How many of the days ``since`` … ``until`` are stored with the given windows (one
    per day, in order), CRS and fingerprint."""
    days = [since + dt.timedelta(days=k) for k in range(len(windows))]
    return int(
        conn.execute(
            _STORED_DAYS,
            {
                "days": days,
                "t0": [w[0] for w in windows],
                "t1": [w[1] for w in windows],
                "since": since,
                "until": until,
                "epsg": epsg,
                "params": params,
            },
        ).scalar_one()
    )


_DELETE_DAY = text("DELETE FROM coverage_day WHERE day = :day")
_INSERT_DAY = text(
    """
    INSERT INTO coverage_day (day, starts_at, ends_at, epsg, params, fixes)
    VALUES (:day, :t0, :t1, :epsg, :params, :fixes)
    """
)
_COPY_ROWS = (
    "COPY coverage_building_day (day, building_id, street_code, grid_code, last_any, "
    "last_street) FROM STDIN"
)


def replace_day(
    conn: Connection,
    day: dt.date,
    start: dt.datetime,
    end: dt.datetime,
    epsg: int,
    params: str,
    fixes: int,
    frame: pd.DataFrame,
) -> None:
    """Store one day (replacing what was stored for it): the day's row, then one row per
    building passed (``building_id, street_code, grid_code, last_any, last_street``;
    ``last_street`` NaN for NULL). Inside the caller's transaction."""
    conn.execute(_DELETE_DAY, {"day": day})
    conn.execute(
        _INSERT_DAY,
        {"day": day, "t0": start, "t1": end, "epsg": epsg, "params": params, "fixes": fixes},
    )
    raw = conn.connection.driver_connection
    street = frame["last_street"].to_numpy(dtype=float)
    with raw.cursor() as cur, cur.copy(_COPY_ROWS) as copy:  # type: ignore[union-attr]
        for bid, sc, gc, la, ls in zip(
            frame["building_id"].to_numpy(),
            frame["street_code"].to_numpy(),
            frame["grid_code"].to_numpy(),
            frame["last_any"].to_numpy(dtype=float),
            street,
            strict=True,
        ):
            copy.write_row(
                (
                    day,
                    int(bid),
                    sc,
                    gc if isinstance(gc, str) else None,
                    float(la),
                    None if np.isnan(ls) else float(ls),
                )
            )


_LAST_ANY = text(
    """
    SELECT building_id::float8, max(last_any)
      FROM coverage_building_day
     WHERE day BETWEEN :since AND :until
     GROUP BY building_id
    """
)
_LAST_STREET = text(
    """
    SELECT building_id::float8, max(last_street)
      FROM coverage_building_day
     WHERE day BETWEEN :since AND :until AND street_code = :street
       AND last_street IS NOT NULL
     GROUP BY building_id
    """
)


def last_per_building(
    conn: Connection, since: dt.date, until: dt.date, *, street: str | None = None
) -> pd.Series:
    """Latest stored passing time per building (epoch seconds, indexed by building id)
    over the days ``since`` … ``until``: by anyone (``street`` None), or by the street's
    readers for the buildings of ``street``."""
    if street is None:
        cols = copy_float_columns(conn, _LAST_ANY, {"since": since, "until": until}, 2)
    else:
        cols = copy_float_columns(
            conn, _LAST_STREET, {"since": since, "until": until, "street": street}, 2
        )
    return pd.Series(cols[:, 1], index=cols[:, 0].astype(np.int64))


_ALL_DAYS = text("SELECT day FROM coverage_day")
_LATEST_FIX = text("SELECT max(fixed_at) FROM patrol_fix")


def all_days(conn: Connection) -> set[dt.date]:
    """Every day stored in ``coverage_day``."""
    return set(conn.execute(_ALL_DAYS).scalars())


def latest_fix(conn: Connection) -> dt.datetime | None:
    """The latest ``patrol_fix.fixed_at`` of the store (None: no fix)."""
    return conn.execute(_LATEST_FIX).scalar_one()


def days_to_restore(
    conn: Connection, before: set[dt.date], timezone: str, *, max_days: int = 30
) -> list[dt.date]:
    """The days a patrol load leaves to compute again: those stored before the load
    (``before``, from :func:`all_days`) that its fixes dropped (the triggers of migration
    0006 delete a day whose fixes change), and the days after the last stored one up to
    the latest fix (at most ``max_days`` back), so that a daily load keeps the store
    complete. None when nothing was ever stored (the first fill is ``python -m geo
    coverage-store``).

    The choice lives here, in the store, so that the loaders can name the days without
    importing :mod:`geo` (layers run one way); ``python -m geo coverage-store --days``
    computes them."""
    if not before:
        return []
    days = set(before) - all_days(conn)
    latest = latest_fix(conn)
    if latest is not None:
        last = latest.astimezone(ZoneInfo(timezone)).date()
        first = max(max(before) + dt.timedelta(days=1), last - dt.timedelta(days=max_days - 1))
        days |= {first + dt.timedelta(days=k) for k in range((last - first).days + 1)}
    return sorted(days)
