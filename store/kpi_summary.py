"""Per street and day sums of the incident KPIs (migration 0004), kept in step with loads.

Why sums per street and day give the exact figures of ``geo.kpis`` (definitions there):
for a period ``[start, upto)`` whose ends, and the as-of instant T, are local midnights, an
incident falls into each cohort by one local day — reported (``reported_at``), due (the
deadline in force), closed (the standing closure), open and overdue (deadline before T's
day). Its state *as of T* equals its current state whenever its last step came before T
(``status_at < T``) and it is *regular* (deadline, extension and closure not before the
report, closure = last step): then every step is before T, and an incident reported at
or after T contributes to no cohort of a period ending by T. So the sums of the current
state of the regular incidents are right except for the few incidents "open across T"
(``reported_at < T <= status_at``, found by the GiST index on that span) and the
irregular ones (a partial index): ``geo.kpis`` takes those out of the sums and adds them
back with their state as of T, computed from the log like the slow path. Counts that do
not depend on T (reported, major, reported within 4 h, repeats, per subcategory) are
summed over every incident.

Keeping them: statement triggers on ``incident`` note the (street, day) keys of every old
and new row and the span and box of rows that moved; :func:`refresh` recomputes the
repeat flags in that region (:func:`_refresh_repeats`: a k-d tree on geocentric
coordinates — a chord is never longer than the geodesic — then the geodesic on the
ellipsoid, PostGIS deciding pairs within 1 mm of the radius) and the sums of the noted
days, in the caller's transaction. The loaders call it after each load; until someone
does, ``geo.kpis`` sees the notes and computes from the incidents.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import chain
from typing import Any

import numpy as np
from pyproj import Geod
from scipy.spatial import cKDTree
from sqlalchemy import Connection, text

from store.queries import copy_binary_records
from store.write import deferred_indexes

#: The local day of the sums (fixed by migration 0004).
SUMMARY_TZ = "Asia/Shanghai"

_GEOD = Geod(ellps="GRS80")  # CGCS2000's ellipsoid (EPSG:4490 in spatial_ref_sys)
_A = 6378137.0
_F = 1 / 298.257222101
_E2 = _F * (2 - _F)
#: The rules the sums are made with (a new store's ``kpi_summary_state``): they equal
#: ``geo.settings.default_settings()`` (tests/test_kpi_summary.py checks); ``geo.kpis``
#: reads the sums only with the same rules.
DEFAULT_RULE = {
    "tz": SUMMARY_TZ,
    "major_severity": 3,
    "max_delay_s": 4 * 3600.0,
    "repeat_m": 30.0,
    "repeat_days": 90,
}
#: Pairs whose geodesic length lies this close to the radius are decided by PostGIS.
_BAND_M = 1e-3


def _day(col: str) -> str:
    return f"CAST(({col} AT TIME ZONE '{SUMMARY_TZ}') AS date)"


#: An incident whose stored state can stand for its state as of any T after its last step.
REGULAR = (
    "(i.status_at IS NOT NULL AND i.status_at >= i.reported_at AND i.due_at >= i.reported_at"
    " AND (i.extended_due_at IS NULL OR i.extended_due_at >= i.reported_at)"
    " AND (i.closed_at IS NULL OR (i.closed_at >= i.reported_at AND i.closed_at = i.status_at)))"
)

_STATE = text("SELECT * FROM kpi_summary_state WHERE id = 1")
_HAS_TABLE = text("SELECT to_regclass('public.kpi_summary_state') IS NOT NULL")
_USABLE = text(
    """
    SELECT s.built AND s.tz = :tz AND s.major_severity = :major_severity
           AND s.max_delay_s = :max_delay_s AND s.repeat_m = :repeat_m
           AND s.repeat_days = :repeat_days
           AND NOT EXISTS (SELECT 1 FROM kpi_dirty_day)
           AND NOT EXISTS (SELECT 1 FROM kpi_dirty_region)
           AND COALESCE(current_setting('gridone.grid_lo', true), '') = ''
      FROM kpi_summary_state s WHERE s.id = 1
    """
)

_TAKE_REGION = text(
    """
    WITH d AS (DELETE FROM kpi_dirty_region RETURNING *)
    SELECT min(t_lo), max(t_hi), min(lon_lo), min(lat_lo), max(lon_hi), max(lat_hi) FROM d
    """
)
#: The region's incidents as numbers: id, category (numbered through incident_category:
#: only equality matters), report time in microseconds since the epoch (exact: EXTRACT is
#: numeric), point.
_FETCH = text(
    """
    SELECT i.id, COALESCE(c.n, 0),
           CAST(EXTRACT(EPOCH FROM i.reported_at) * 1000000 AS bigint),
           ST_X(i.geom), ST_Y(i.geom)
      FROM incident i
      LEFT JOIN (SELECT code, row_number() OVER (ORDER BY code) AS n
                   FROM incident_category) c ON c.code = i.category_code
     WHERE i.reported_at >= :t0 AND i.reported_at <= :t1
       AND i.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4490)
    """
)
_DWITHIN = text(
    """
    SELECT a.id, b.id
      FROM unnest(CAST(:a AS bigint[]), CAST(:b AS bigint[])) AS p (a, b)
      JOIN incident a ON a.id = p.a
      JOIN incident b ON b.id = p.b
     WHERE ST_DWithin(CAST(a.geom AS geography), CAST(b.geom AS geography), :r)
    """
)
#: The stored flags of a slice's incidents (reported in ``[t0, t1)``, in the box), found
#: through the incidents of the slice: by id range, every slice of a big load read nearly
#: every stored flag again (ids follow the file's order, not time). Sent as one bytea of
#: 8-byte big-endian ids: read row by row, a million flags cost seconds in the client.
_OLD_FLAGS = text(
    """
    SELECT string_agg(int8send(r.incident_id), CAST('' AS bytea))
      FROM incident i JOIN incident_repeat r ON r.incident_id = i.id
     WHERE i.reported_at >= :t0 AND i.reported_at < :t1
       AND i.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4490)
    """
)
#: Incidents per UTC day in the time span and box to flag (the slices of
#: :func:`_refresh_repeats`).
_DAY_COUNTS = text(
    """
    SELECT CAST(floor(EXTRACT(EPOCH FROM i.reported_at) / 86400) AS bigint), count(*)
      FROM incident i
     WHERE i.reported_at >= :t0 AND i.reported_at <= :t1
       AND i.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4490)
     GROUP BY 1 ORDER BY 1
    """
)
#: The ids whose flag changed, in a temporary table (a million of them when a big load
#: moves the whole table: bound as an array they cost seconds to build and send).
_CHANGED_TABLE = (
    "DROP TABLE IF EXISTS kpi_flag_change",
    "CREATE TEMP TABLE kpi_flag_change (id bigint NOT NULL, repeat boolean NOT NULL) "
    "ON COMMIT DROP",
)
_DEL_FLAGS = text(
    "DELETE FROM incident_repeat r USING kpi_flag_change c "
    "WHERE r.incident_id = c.id AND NOT c.repeat"
)
_ADD_FLAGS = text(
    "INSERT INTO incident_repeat (incident_id) SELECT id FROM kpi_flag_change WHERE repeat "
    "ON CONFLICT DO NOTHING"
)
_MARK_DAYS = text(
    f"""
    INSERT INTO kpi_dirty_day (street_code, day)
    SELECT DISTINCT i.street_code, {_day("i.reported_at")}
      FROM incident i JOIN kpi_flag_change c ON c.id = i.id
    ON CONFLICT DO NOTHING
    """  # noqa: S608
)

_KEYS = (
    "CREATE TEMP TABLE kpi_keys (street_code varchar(12), day date, "
    "PRIMARY KEY (street_code, day)) ON COMMIT DROP",
    "WITH d AS (DELETE FROM kpi_dirty_day RETURNING street_code, day) "
    "INSERT INTO kpi_keys SELECT DISTINCT street_code, day FROM d",
    "ANALYZE kpi_keys",
    "DELETE FROM kpi_street_day s USING kpi_keys k "
    "WHERE s.street_code = k.street_code AND s.day = k.day",
    "DELETE FROM kpi_street_day_category s USING kpi_keys k "
    "WHERE s.street_code = k.street_code AND s.day = k.day",
)

_SUMS = text(
    f"""
    INSERT INTO kpi_street_day
    WITH rule AS (SELECT * FROM kpi_summary_state WHERE id = 1),
    kk AS (
        SELECT k.street_code, k.day FROM kpi_keys k
    ), r AS (
        SELECT kk.street_code, kk.day,
               count(*) AS reported,
               count(*) FILTER (WHERE i.severity >= rule.major_severity) AS major,
               count(*) FILTER (WHERE i.severity >= rule.major_severity
                                AND EXTRACT(EPOCH FROM i.reported_at - i.occurred_at)
                                    <= rule.max_delay_s) AS major_in_time,
               count(ir.incident_id) AS repeats,
               count(*) FILTER (WHERE {REGULAR} AND i.status = 'closed') AS reported_closed,
               count(*) FILTER (WHERE {REGULAR} AND i.status = 'feedback') AS awaiting_review,
               count(*) FILTER (WHERE {REGULAR} AND i.extended_due_at IS NOT NULL) AS extended,
               count(*) FILTER (WHERE {REGULAR} AND EXISTS (
                   SELECT 1 FROM incident_transition t
                    WHERE t.incident_id = i.id AND t.to_status = 'reworked')) AS reworked,
               count(*) FILTER (WHERE {REGULAR} AND EXISTS (
                   SELECT 1 FROM incident_transition t
                    WHERE t.incident_id = i.id AND t.to_status = 'returned')) AS returned
          FROM kk CROSS JOIN rule
          JOIN incident i ON i.street_code = kk.street_code
                         AND {_day("i.reported_at")} = kk.day
          LEFT JOIN incident_repeat ir ON ir.incident_id = i.id
         GROUP BY kk.street_code, kk.day
    ), d AS (
        SELECT kk.street_code, kk.day,
               count(*) AS due,
               count(*) FILTER (WHERE i.closed_at <= COALESCE(i.extended_due_at, i.due_at))
                   AS due_on_time,
               count(*) FILTER (WHERE i.status <> 'closed') AS due_open
          FROM kk
          JOIN incident i ON i.street_code = kk.street_code
                         AND {_day("COALESCE(i.extended_due_at, i.due_at)")} = kk.day
         WHERE {REGULAR}
         GROUP BY kk.street_code, kk.day
    ), c AS (
        SELECT kk.street_code, kk.day,
               count(*) AS closed,
               count(*) FILTER (WHERE i.tier = 'grid') AS closed_grid,
               count(*) FILTER (WHERE i.tier = 'community') AS closed_community,
               count(*) FILTER (WHERE i.tier = 'street') AS closed_street,
               count(*) FILTER (WHERE i.tier = 'department') AS closed_department,
               sum(EXTRACT(EPOCH FROM i.closed_at - i.reported_at)) AS closed_seconds,
               string_agg(float8send(CAST(EXTRACT(EPOCH FROM i.closed_at - i.reported_at)
                                          AS double precision) / 3600.0),
                          CAST('' AS bytea) ORDER BY i.closed_at - i.reported_at)
                   AS closed_hours
          FROM kk
          JOIN incident i ON i.street_code = kk.street_code
                         AND {_day("i.closed_at")} = kk.day
         WHERE {REGULAR}
         GROUP BY kk.street_code, kk.day
    )
    SELECT kk.street_code, kk.day,
           COALESCE(r.reported, 0), COALESCE(r.major, 0), COALESCE(r.major_in_time, 0),
           COALESCE(r.repeats, 0), COALESCE(r.reported_closed, 0),
           COALESCE(r.awaiting_review, 0), COALESCE(r.extended, 0), COALESCE(r.reworked, 0),
           COALESCE(r.returned, 0),
           COALESCE(d.due, 0), COALESCE(d.due_on_time, 0), COALESCE(d.due_open, 0),
           COALESCE(c.closed, 0), COALESCE(c.closed_grid, 0), COALESCE(c.closed_community, 0),
           COALESCE(c.closed_street, 0), COALESCE(c.closed_department, 0),
           COALESCE(c.closed_seconds, 0), COALESCE(c.closed_hours, '')
      FROM kk
      LEFT JOIN r ON r.street_code = kk.street_code AND r.day = kk.day
      LEFT JOIN d ON d.street_code = kk.street_code AND d.day = kk.day
      LEFT JOIN c ON c.street_code = kk.street_code AND c.day = kk.day
     WHERE r.day IS NOT NULL OR d.day IS NOT NULL OR c.day IS NOT NULL
    """  # noqa: S608
)

_CATEGORY_SUMS = text(
    f"""
    INSERT INTO kpi_street_day_category (street_code, day, category_code, reported)
    SELECT k.street_code, k.day, i.category_code, count(*)
      FROM kpi_keys k
      JOIN incident i ON i.street_code = k.street_code
                     AND {_day("i.reported_at")} = k.day
     GROUP BY k.street_code, k.day, i.category_code
    """  # noqa: S608
)

_MONTH_SUMS = (
    """
    DELETE FROM kpi_street_month_category m
     USING (SELECT DISTINCT street_code, CAST(date_trunc('month', day) AS date) AS month
              FROM kpi_keys) k
     WHERE m.street_code = k.street_code AND m.month = k.month
    """,
    """
    INSERT INTO kpi_street_month_category (street_code, month, category_code, reported)
    SELECT c.street_code, k.month, c.category_code, sum(c.reported)
      FROM (SELECT DISTINCT street_code, CAST(date_trunc('month', day) AS date) AS month
              FROM kpi_keys) k
      JOIN kpi_street_day_category c
        ON c.street_code = k.street_code
       AND c.day >= k.month AND c.day < CAST(k.month + interval '1 month' AS date)
     GROUP BY c.street_code, k.month, c.category_code
    """,
)

_CLEAR = (
    "TRUNCATE kpi_street_day, kpi_street_day_category, kpi_street_month_category, "
    "incident_repeat, kpi_dirty_day, kpi_dirty_region",
)
_MARK_ALL = (
    f"""
    INSERT INTO kpi_dirty_day (street_code, day)
    SELECT i.street_code, {_day("i.reported_at")} FROM incident i
    UNION SELECT i.street_code, {_day("COALESCE(i.extended_due_at, i.due_at)")} FROM incident i
    UNION SELECT i.street_code, {_day("i.closed_at")} FROM incident i
     WHERE i.closed_at IS NOT NULL
    """,  # noqa: S608
    """
    INSERT INTO kpi_dirty_region (t_lo, t_hi, lon_lo, lat_lo, lon_hi, lat_hi)
    SELECT min(i.reported_at), max(i.reported_at), min(ST_X(i.geom)), min(ST_Y(i.geom)),
           max(ST_X(i.geom)), max(ST_Y(i.geom))
      FROM incident i HAVING count(*) > 0
    """,
)
_BUILT = text("UPDATE kpi_summary_state SET built = true WHERE id = 1")
_ENSURE_STATE = text(
    "INSERT INTO kpi_summary_state "
    "(id, tz, major_severity, max_delay_s, repeat_m, repeat_days, built) "
    "VALUES (1, :tz, :major_severity, :max_delay_s, :repeat_m, :repeat_days, false) "
    "ON CONFLICT (id) DO NOTHING"
)


def has_summary(conn: Connection) -> bool:
    """Whether the store has the summary tables (migration 0004)."""
    return bool(conn.execute(_HAS_TABLE).scalar_one())


def usable(conn: Connection, rule: dict[str, Any]) -> bool:
    """Whether the sums may stand for the incidents: built, made with ``rule`` (keys
    ``tz``, ``major_severity``, ``max_delay_s``, ``repeat_m``, ``repeat_days``), nothing
    changed since the last refresh, and the transaction reads whole streets (a community
    or grid scope reads none of the sums)."""
    if not has_summary(conn):
        return False
    return bool(conn.execute(_USABLE, rule).scalar())


def rebuild(conn: Connection) -> None:
    """Recompute every sum and repeat flag from the incidents (migration, demo writer,
    after a TRUNCATE, which no trigger sees)."""
    conn.execute(_ENSURE_STATE, DEFAULT_RULE)
    for sql in _CLEAR + _MARK_ALL:
        conn.execute(text(sql))
    refresh(conn)
    conn.execute(_BUILT)


def refresh(conn: Connection) -> dict[str, int]:
    """Bring the sums in step with the incidents after writes: the repeat flags in the
    region that moved, then the sums of every noted (street, day). Runs in the caller's
    transaction; returns what it did (``repeat_changes``, ``days``)."""
    if not has_summary(conn):
        return {"repeat_changes": 0, "days": 0}
    changed = _refresh_repeats(conn)
    for sql in _KEYS:
        conn.execute(text(sql))
    days = int(conn.execute(text("SELECT count(*) FROM kpi_keys")).scalar_one())
    if days:
        with _whole_pass(conn, _many_keys(conn, days)):
            conn.execute(_SUMS)
            conn.execute(_CATEGORY_SUMS)
        for sql in _MONTH_SUMS:
            conn.execute(text(sql))
    conn.execute(text("DROP TABLE kpi_keys"))
    return {"repeat_changes": changed, "days": days}


#: A refresh of at least this share of the stored (street, day) keys, and at least
#: :data:`KEY_PASS_MIN` of them, reads the incidents in one pass (hash joins on the local
#: day) instead of probing the day indexes of migration 0010 key by key: a thousand
#: keys spread over a year walked most of a big table in random order, once per kind of
#: day (measured: ``benchmarks/kpi_refresh_shapes.py``).
KEY_PASS_SHARE = 0.25
KEY_PASS_MIN = 50
_STORED_KEYS = text(
    "SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = to_regclass('kpi_street_day')"
)


def _many_keys(conn: Connection, days: int) -> bool:
    """Whether ``days`` keys are many enough for one pass (:data:`KEY_PASS_SHARE`)."""
    if days < KEY_PASS_MIN:
        return False
    stored = float(conn.execute(_STORED_KEYS).scalar_one() or 0)
    return days >= KEY_PASS_SHARE * stored


@contextmanager
def _whole_pass(conn: Connection, on: bool) -> Iterator[None]:
    """Within the block, when ``on``: no nested loops (the per-key index probes), so the
    planner joins the keys to the incidents by hashing; the setting is restored after."""
    if not on:
        yield
        return
    previous = conn.execute(text("SELECT current_setting('enable_nestloop')")).scalar_one()
    conn.execute(text("SELECT set_config('enable_nestloop', 'off', true)"))
    # no try/finally: after an error the transaction (or savepoint) is rolled back, and
    # the transaction-local setting with it
    yield
    conn.execute(text("SELECT set_config('enable_nestloop', :v, true)"), {"v": previous})


def _ecef(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    lam, phi = np.radians(lon), np.radians(lat)
    n = _A / np.sqrt(1 - _E2 * np.sin(phi) ** 2)
    return np.column_stack(
        (n * np.cos(phi) * np.cos(lam), n * np.cos(phi) * np.sin(lam), n * (1 - _E2) * np.sin(phi))
    )


def _margin(metres: float, y0: float, y1: float) -> tuple[float, float]:
    """Degrees of longitude and latitude that surely exceed ``metres`` between y0 and y1."""
    lat = min(89.0, max(abs(y0), abs(y1)) + 1.0)
    return metres / (110_000.0 * math.cos(math.radians(lat))), metres / 110_000.0


#: Candidates whose nearest neighbours are looked up per batch, how many nearest
#: neighbours decide most candidates, and the neighbour pairs examined per batch for the
#: others: the memory of :func:`_refresh_repeats` stays bounded however large the region
#: (a big load's region is the whole table) and however crowded a spot (a million
#: incidents tiled on a street's few hundred places: a billion pairs, which enumerated at
#: once took 6 GB).
#: New repeat flags from which their foreign key is checked once at the end
#: (:func:`store.write.deferred_indexes`) instead of per row.
BIG_FLAG_BATCH = 50_000
#: Incidents to flag per slice of the region (:func:`_refresh_repeats`). A slice of a
#: million holds ~400 MB, under a load's CSV chunk; smaller slices re-read the window
#: before each (90 days): 250k took 8.5 s for a 1M-row load where 1M takes 7.7 s.
SLICE_ROWS = 1_000_000
QUERY_BATCH = 32_768
NEAREST = 8
PAIR_BUDGET = 500_000


def _utc_us(t: dt.datetime) -> int:
    """Microseconds since the epoch, exactly (no float rounding)."""
    return (t - _EPOCH) // dt.timedelta(microseconds=1)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _fetch_region(
    conn: Connection, params: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``ids, category numbers, reported_at (µs), lon, lat`` of the incidents in the region:
    one binary COPY parsed into numpy arrays as it arrives (40 bytes a row; a row fetch
    built some 400 bytes of Python objects a row, and a second a million rows)."""
    ids, cats, t_us, lon, lat = copy_binary_records(
        conn, _FETCH, params, ("i8", "i8", "i8", "f8", "f8")
    )
    return ids, cats.astype(np.int32), t_us, lon, lat


def _budget_batches(counts: np.ndarray, budget: int) -> list[slice]:
    """Consecutive slices of ``counts`` whose sums stay within ``budget`` (a single item
    over it makes a slice of its own)."""
    out: list[slice] = []
    start, total = 0, 0
    for k, c in enumerate(counts.tolist()):
        if k > start and total + c > budget:
            out.append(slice(start, k))
            start, total = k, 0
        total += c
    if start < len(counts):
        out.append(slice(start, len(counts)))
    return out


def _refresh_repeats(conn: Connection) -> int:
    """Recompute the repeat flag of every incident whose flag a noted change may have
    moved (within the radius of a moved row, reported from its time to the window after),
    store the differences and note their days. Returns how many flags changed.

    The region is taken in slices of its time span holding at most :data:`SLICE_ROWS`
    incidents to flag (a day is never split), each read with the window before it: memory
    is bounded by a slice, not by the region (a big load's region is the whole table).
    Within a slice, :func:`_slice_flags` decides the flags."""
    t_lo, t_hi, x0, y0, x1, y1 = conn.execute(_TAKE_REGION).one()
    if t_lo is None:
        return 0
    st = conn.execute(_STATE).mappings().one()
    radius, window = float(st["repeat_m"]), dt.timedelta(days=int(st["repeat_days"]))
    dx1, dy1 = _margin(radius * 1.01 + 1.0, y0, y1)
    dx2, dy2 = _margin(2 * radius * 1.01 + 1.0, y0, y1)
    box = (x0 - dx1, y0 - dy1, x1 + dx1, y1 + dy1)  # the incidents to flag
    w_us = int(window.total_seconds()) * 1_000_000
    gone_parts: list[np.ndarray] = []
    new_parts: list[np.ndarray] = []
    for a_us, b_us in _slices(conn, _utc_us(t_lo), _utc_us(t_hi + window), box):
        ids, cats, t_us, lon, lat = _fetch_region(
            conn,
            {
                "t0": _from_us(a_us - w_us),
                "t1": _from_us(b_us),
                **_envelope((x0 - dx2, y0 - dy2, x1 + dx2, y1 + dy2)),
            },
        )
        target = (
            (t_us >= a_us)
            & (t_us < b_us)
            & (lon >= box[0])
            & (lon <= box[2])
            & (lat >= box[1])
            & (lat <= box[3])
        )
        if not target.any():
            continue
        flag = _slice_flags(conn, ids, cats, t_us, lon, lat, target, radius, w_us)
        span = {"t0": _from_us(a_us), "t1": _from_us(b_us), **_envelope(box)}
        gone, new = _flag_changes(conn, span, ids[target], ids[target & flag])
        gone_parts.append(gone)
        new_parts.append(new)
    gone = np.concatenate(gone_parts) if gone_parts else np.empty(0, np.int64)
    new = np.concatenate(new_parts) if new_parts else np.empty(0, np.int64)
    if len(gone) or len(new):
        for sql in _CHANGED_TABLE:
            conn.execute(text(sql))
        _copy_changes(conn, gone, new)
        conn.execute(_DEL_FLAGS)
        if len(new) >= BIG_FLAG_BATCH:
            # the foreign key checked once by a join, not row by row (~10 µs a row):
            # dropped and added back in this transaction, so all or nothing still holds
            with deferred_indexes(conn, ["incident_repeat"], only_if_empty=False):
                conn.execute(_ADD_FLAGS)
        else:
            conn.execute(_ADD_FLAGS)
        conn.execute(_MARK_DAYS)
        conn.execute(text("DROP TABLE kpi_flag_change"))
    return len(gone) + len(new)


def _envelope(box: tuple[float, float, float, float]) -> dict[str, float]:
    """The ``x0, y0, x1, y1`` parameters of a statement's ``ST_MakeEnvelope``."""
    return dict(zip(("x0", "y0", "x1", "y1"), box, strict=True))


def _from_us(us: int) -> dt.datetime:
    """The instant ``us`` microseconds after the epoch (UTC), exactly."""
    return _EPOCH + dt.timedelta(microseconds=us)


def _slices(
    conn: Connection, lo_us: int, hi_us: int, box: tuple[float, float, float, float]
) -> list[tuple[int, int]]:
    """Consecutive spans ``[a, b)`` (µs) covering ``lo_us``..``hi_us`` whose incidents in
    ``box`` number at most :data:`SLICE_ROWS` each, or one day's if that is more (counted
    per UTC day by the database, which sends a row a day)."""
    days = conn.execute(
        _DAY_COUNTS, {"t0": _from_us(lo_us), "t1": _from_us(hi_us), **_envelope(box)}
    ).all()
    if not days:
        return []
    day = np.array([d for d, _ in days], dtype=np.int64)
    counts = np.array([c for _, c in days], dtype=np.int64)
    starts = [max(lo_us, int(day[p.start]) * _DAY_US) for p in _budget_batches(counts, SLICE_ROWS)]
    starts[0] = lo_us
    return list(zip(starts, [*starts[1:], hi_us + 1], strict=True))


_DAY_US = 86_400 * 1_000_000


def _flag_changes(
    conn: Connection, span: dict[str, Any], target_ids: np.ndarray, now: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Of the incidents ``target_ids`` (those of the slice ``span``: ``t0``, ``t1``, box),
    the stored flags to clear and the flags to set for the flagged ones ``now``."""
    packed = conn.execute(_OLD_FLAGS, span).scalar_one()
    stored = np.frombuffer(packed or b"", dtype=">i8").astype(np.int64)
    # ids are unique (primary keys): sorting set operations, not numpy's hashing unique
    # (seconds on a million ids)
    before = stored[np.isin(stored, target_ids, assume_unique=True, kind="sort")]
    gone = np.setdiff1d(before, now, assume_unique=True)
    new = np.setdiff1d(now, before, assume_unique=True)
    return gone, new


def _slice_flags(
    conn: Connection,
    ids: np.ndarray,
    cats: np.ndarray,
    t_us: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    target: np.ndarray,
    radius: float,
    w_us: int,
) -> np.ndarray:
    """The repeat flag of each incident read (meaningful for the ``target`` ones, whose
    window before them was read too).

    A flag needs one earlier neighbour, not all of them: each candidate's
    :data:`NEAREST` nearest points (one vectorised k-d tree query per
    :data:`QUERY_BATCH` candidates) settle most candidates of a crowded region, by the
    chord alone where it is surely inside the radius (:func:`_surely_within`). The rest
    — no neighbour settled it and it may have more, or a neighbour lies near the radius —
    have all their neighbours enumerated in batches of at most :data:`PAIR_BUDGET` pairs
    (counted first) and decided as before. The region is read into numpy arrays (40
    bytes a row), and no step holds more than a batch of pairs."""
    # 4-D points: geocentric metres and time scaled so that the window spans the radius;
    # a pair within both lies within radius·√2 (a superset, filtered exactly below)
    xyz = _ecef(lon, lat)
    tt = (t_us - t_us.min()).astype(float) * (radius / w_us)
    pts = np.column_stack((xyz, tt))
    reach = radius * math.sqrt(2) + 2 * _BAND_M
    flag = np.zeros(len(ids), dtype=bool)
    near_a: list[np.ndarray] = []
    near_b: list[np.ndarray] = []
    order = np.argsort(cats, kind="stable")
    bounds = np.searchsorted(cats[order], np.arange(int(cats.max()) + 2))
    for k in range(len(bounds) - 1):
        idx = order[bounds[k] : bounds[k + 1]]
        cand = idx[target[idx]]  # a repeat candidate must lie in the target region
        if len(idx) < 2 or not len(cand):
            continue
        tree = cKDTree(pts[idx])
        nearest = min(NEAREST, len(idx))
        rest: list[np.ndarray] = []
        for start in range(0, len(cand), QUERY_BATCH):
            batch = cand[start : start + QUERY_BATCH]
            d, j = tree.query(pts[batch], k=list(range(1, nearest + 1)), distance_upper_bound=reach)
            found = j < len(idx)  # missing neighbours come back as len(idx)
            b = idx[np.where(found, j, 0)]
            # b earlier than a, within the window before it
            lag = t_us[batch][:, None] - t_us[b]
            ok = found & (lag > 0) & (lag <= w_us)
            # the chord from the 4-D distance less its time part: no gather of the
            # neighbours' coordinates (accurate to ~1e-8 m, the band is 1 mm)
            dtt = tt[batch][:, None] - tt[b]
            chord = np.where(ok, np.sqrt(np.maximum(np.where(ok, d, 0) ** 2 - dtt**2, 0)), np.inf)
            settled = _surely_within(chord, radius).any(axis=1)
            flag[batch[settled]] = True
            # not settled: it may have more neighbours than those seen, or one of them
            # lies near the radius (the chord does not decide it)
            open_ = ~settled & (found[:, -1] | (chord <= radius + _BAND_M).any(axis=1))
            rest.append(batch[open_])
        cand = np.concatenate(rest)
        if not len(cand):
            continue
        counts = np.asarray(tree.query_ball_point(pts[cand], reach, return_length=True))
        for part in _budget_batches(counts, PAIR_BUDGET):
            lens = counts[part]
            if not lens.sum():
                continue
            lists = tree.query_ball_point(pts[cand[part]], reach)
            b = idx[np.fromiter(chain.from_iterable(lists), dtype=np.intp, count=lens.sum())]
            a = np.repeat(cand[part], lens)
            keep = (t_us[a] > t_us[b]) & (t_us[b] >= t_us[a] - w_us)
            a, b = a[keep], b[keep]
            chord = np.linalg.norm(xyz[a] - xyz[b], axis=1)
            flag[a[_surely_within(chord, radius)]] = True
            # the geodesic only where the chord leaves it open
            keep = (chord <= radius + _BAND_M) & ~flag[a]
            a, b = a[keep], b[keep]
            if not len(a):
                continue
            _, _, dist = _GEOD.inv(lon[a], lat[a], lon[b], lat[b])
            dist = np.asarray(dist)
            flag[a[dist <= radius - _BAND_M]] = True
            # every neighbour of a candidate is in its batch: its flag is final here
            near = (np.abs(dist - radius) < _BAND_M) & ~flag[a]
            near_a.append(a[near])
            near_b.append(b[near])
    if near_a and sum(len(x) for x in near_a):
        a, b = np.concatenate(near_a), np.concatenate(near_b)
        hits = conn.execute(
            _DWITHIN, {"a": ids[a].tolist(), "b": ids[b].tolist(), "r": radius}
        ).all()
        flag |= np.isin(ids, np.fromiter((int(h[0]) for h in hits), dtype=np.int64))
    return flag


def _surely_within(chord: np.ndarray, radius: float) -> np.ndarray:
    """Pairs whose geodesic is surely within ``radius - _BAND_M`` (flagged by the rule as
    :func:`_refresh_repeats` applies it) from their chord alone. The geodesic on the
    ellipsoid exceeds the chord by about d³/24R² — some 3e-11 m at 30 m, against the
    1 mm band — so a chord a band short of that bound decides it without the geodesic."""
    return chord <= radius - 2 * _BAND_M


#: Binary COPY of (id bigint, repeat boolean) rows into ``kpi_flag_change``.
_COPY_CHANGES = "COPY kpi_flag_change (id, repeat) FROM STDIN (FORMAT binary)"
_CHANGE_ROW = np.dtype(
    [("n", ">i2"), ("len_id", ">i4"), ("id", ">i8"), ("len_repeat", ">i4"), ("repeat", "u1")]
)


def _copy_changes(conn: Connection, gone: np.ndarray, new: np.ndarray) -> None:
    """The flags to clear (``gone``) and to set (``new``) into ``kpi_flag_change``, as one
    binary COPY built by numpy."""
    rows = np.empty(len(gone) + len(new), dtype=_CHANGE_ROW)
    rows["n"], rows["len_id"], rows["len_repeat"] = 2, 8, 1
    rows["id"] = np.concatenate([gone, new])
    rows["repeat"] = np.r_[np.zeros(len(gone), np.uint8), np.ones(len(new), np.uint8)]
    header = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, extension length
    raw = conn.connection.driver_connection
    with raw.cursor() as cur, cur.copy(_COPY_CHANGES) as copy:  # type: ignore[union-attr]
        copy.write(header + rows.tobytes() + b"\xff\xff")
