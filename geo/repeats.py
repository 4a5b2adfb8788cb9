"""Repeat locations (重复发生点位): places where incidents of one subcategory keep coming
back — at least ``min_count`` (default 3) within ``radius_m`` (default 30 m) of each other
in the ``days`` (default 90) before ``as_of``.

What a place is. Incidents of one subcategory reported in ``[as_of − days, as_of)`` are
grouped by **single linkage at ``radius_m``**: two incidents belong to the same place when
they lie within ``radius_m`` metres of each other, directly or through a chain of such
incidents. It is computed in PostGIS with ``ST_ClusterDBSCAN(geom, eps := radius_m,
minpoints := 1) OVER (PARTITION BY category_code)`` on the points transformed to the
area's CGCS2000 Gauss-Krüger zone (:func:`store.crs.metric_epsg_for_bounds`), never on
degrees. With ``minpoints = 1`` every point is a DBSCAN core point, so DBSCAN reduces to
exactly this single linkage (connected components of the "within ``radius_m``" graph),
deterministic and independent of row order (with larger ``minpoints`` a border point
between two clusters goes to whichever is met first). A place is reported when it holds
at least ``min_count`` incidents.

So three incidents 25 m apart are one place; two incidents 35 m apart are one place only
when a third lies within 30 m of each (it links them), and then all three count together.
Chains can make a place longer than ``radius_m`` (a row of incidents 25 m apart along a
street); each place reports ``radius_m_max`` (the largest distance of a member from the
centre) so a page can show that. The centre is the mean of the members' points (in the
metric CRS). The place's grid is the current grid holding the centre.

The thresholds are documented defaults (:data:`DEFAULT_RADIUS_M`, :data:`DEFAULT_DAYS`,
:data:`DEFAULT_MIN_COUNT`); a caller with other local rules passes its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from sqlalchemy import Connection

from geo.emerging import local_instant
from geo.hotspots import Note
from store import queries
from store.crs import WEB_EPSG, metric_epsg_for_bounds
from store.settings import get_settings

#: Incidents within this many metres of each other (directly or by a chain) are one place.
DEFAULT_RADIUS_M = 30.0
#: Length of the window ending at ``as_of``, days.
DEFAULT_DAYS = 90
#: Least incidents of one subcategory at one place to call it a repeat location.
DEFAULT_MIN_COUNT = 3
#: Largest radius accepted: beyond this a "place" is a neighbourhood (use hot spots).
MAX_RADIUS_M = 500.0

COLUMNS = [
    "subcategory",
    "category_zh",
    "category_en",
    "category_group",
    "n",
    "first_at",
    "last_at",
    "codes",
    "grid_code",
    "member_grids",
    "radius_m_max",
    "geometry",
]


@dataclass(frozen=True)
class RepeatParams:
    """The rule applied and the window, so a page can say what "repeat" meant.

    Attributes
    ----------
    since, as_of
        The window ``[since, as_of)``, local tz-aware timestamps.
    days, radius_m, min_count
        The thresholds used.
    method
        How places are formed (single linkage via ``ST_ClusterDBSCAN``, ``minpoints`` 1).
    metric_epsg
        The Gauss-Krüger zone distances were measured in (None when there were no
        incidents to choose it from).
    street, category
        The filters as given.
    n_locations, n_incidents
        Places found; incidents in them.
    notes
        Caveats.
    """

    since: pd.Timestamp
    as_of: pd.Timestamp
    days: int
    radius_m: float
    min_count: int
    method: str
    metric_epsg: int | None
    street: str | None
    category: str | None
    n_locations: int
    n_incidents: int
    notes: tuple[Note, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class RepeatResult:
    """Repeat locations and the rule behind them.

    ``locations`` columns: ``subcategory`` (4-digit code), ``category_zh``,
    ``category_en``, ``category_group`` (its top-level code), ``n``, ``first_at``,
    ``last_at`` (local time), ``codes`` (incident codes by report time), ``grid_code``
    (current grid holding the centre; None outside every grid), ``member_grids`` (the
    members' stored grids), ``radius_m_max``, and the centre point in EPSG:4326; the most
    incidents first, then the most recent.
    """

    locations: gpd.GeoDataFrame
    params: RepeatParams


def _check(days: int, radius_m: float, min_count: int) -> None:
    problems = []
    if not isinstance(days, int | np.integer) or days < 1:
        problems.append(f"days must be a whole number of days ≥ 1, got {days!r}")
    if not np.isfinite(radius_m) or not 0 < radius_m <= MAX_RADIUS_M:
        problems.append(
            f"radius_m must be a distance in metres in (0, {MAX_RADIUS_M:g}], got {radius_m!r}"
        )
    if not isinstance(min_count, int | np.integer) or min_count < 2:
        problems.append(f"min_count must be a whole number ≥ 2 (a repeat), got {min_count!r}")
    if problems:
        raise ValueError("; ".join(problems))


def repeat_locations(
    conn: Connection,
    *,
    street: str | None = None,
    as_of: Any,
    days: int = DEFAULT_DAYS,
    radius_m: float = DEFAULT_RADIUS_M,
    min_count: int = DEFAULT_MIN_COUNT,
    category: str | None = None,
    timezone: str | None = None,
) -> RepeatResult:
    """Places with at least ``min_count`` incidents of one subcategory within ``radius_m``
    of each other (single linkage) reported in the ``days`` before ``as_of``.

    Parameters
    ----------
    conn
        Connection to the store.
    street
        Street code (12 digits); None for every street.
    as_of
        End of the window, exclusive: a timestamp, or a date meaning its local midnight
        (so ``as_of="2026-11-21"`` includes 20 November). The window is
        ``[as_of − days, as_of)``, the same half-open convention as every period filter.
    days, radius_m, min_count
        The rule (defaults 90 days, 30 m, 3 incidents).
    category
        Top-level ("03") or subcategory ("0302") code; None for all. Places are always
        formed per subcategory: two different subcategories never count together.
    timezone
        Zone of dates and naive times (default ``GRIDONE_TIMEZONE``).

    Returns
    -------
    RepeatResult
        The places (GeoDataFrame, EPSG:4326) and the rule.
    """
    _check(days, radius_m, min_count)
    tz = timezone or get_settings().timezone
    until = local_instant(as_of, tz)
    since = until - pd.Timedelta(days=int(days))
    bounds = queries.incident_extent(conn, street_code=street)
    epsg = None if bounds is None else metric_epsg_for_bounds(bounds)
    if epsg is None:
        frame = gpd.GeoDataFrame(
            {c: pd.Series(dtype=object) for c in COLUMNS if c != "geometry"},
            geometry=gpd.GeoSeries([], crs=WEB_EPSG),
            crs=WEB_EPSG,
        )
    else:
        raw = queries.repeat_location_clusters(
            conn,
            since=since.to_pydatetime(),
            until=until.to_pydatetime(),
            eps_m=float(radius_m),
            min_count=int(min_count),
            metric_srid=epsg,
            street_code=street,
            category=category,
        )
        frame = _frame(raw, tz)
    notes = []
    if epsg is None:
        notes.append(Note("没有事件数据", "there are no incidents to search"))
    params = RepeatParams(
        since=since,
        as_of=until,
        days=int(days),
        radius_m=float(radius_m),
        min_count=int(min_count),
        method="single linkage: ST_ClusterDBSCAN(eps = radius_m, minpoints = 1) per subcategory",
        metric_epsg=epsg,
        street=street,
        category=category,
        n_locations=len(frame),
        n_incidents=int(frame["n"].sum()) if len(frame) else 0,
        notes=tuple(notes),
    )
    return RepeatResult(frame, params)


def _frame(raw: gpd.GeoDataFrame, tz: str) -> gpd.GeoDataFrame:
    out = pd.DataFrame(
        {
            "subcategory": raw["category_code"].astype(str).to_numpy(),
            "category_zh": raw["category_zh"].to_numpy(),
            "category_en": raw["category_en"].to_numpy(),
            "category_group": raw["category_group"].to_numpy(),
            "n": raw["n"].astype(np.int64).to_numpy(),
            "first_at": _local(raw["first_at"], tz),
            "last_at": _local(raw["last_at"], tz),
            "codes": [list(c) for c in raw["codes"]],
            "grid_code": raw["grid_code"].to_numpy(),
            "member_grids": [sorted(g) if g is not None else [] for g in raw["member_grids"]],
            "radius_m_max": raw["radius_m"].astype(np.float64).to_numpy(),
        }
    )
    return gpd.GeoDataFrame(out, geometry=raw.geometry.to_numpy(), crs=WEB_EPSG)


def _local(values: pd.Series, tz: str) -> Any:
    """Times from the database as local tz-aware values (a DatetimeArray)."""
    return pd.to_datetime(values, utc=True).dt.tz_convert(tz).array
