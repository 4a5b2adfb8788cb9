"""Incidents reported per grid in a period: the ``reported`` column of
:func:`geo.kpis.kpis_by_unit` at grid level, without the rest of the KPIs.

Why: the briefing's indicator map needs only this count per grid, and asking
:func:`~geo.kpis.kpis_by_unit` for it works out every KPI of every grid as of T from the
incidents (the per street and day sums of ``store.kpi_summary`` hold no grid): 2.5 s at
district scale on an idle machine, against a few hundredths for the count. The count is
the same by definition (reported = ``reported_at`` in ``[start, upto)``, the period cut
at T, grouped by the incident's ``grid_code``); tests/test_grid_reported.py checks it
against :func:`~geo.kpis.kpis_by_unit`.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Connection

from geo.kpis import make_period, unit_level
from store import briefing_sql


def reported_by_grid(
    conn: Connection,
    start: dt.date | str,
    end: dt.date | str,
    *,
    within: str | None = None,
    as_of: dt.datetime | dt.date | str | None = None,
    tz: str | None = None,
) -> pd.Series:
    """Incidents reported per grid code in ``[start, end)`` (local dates) as of ``as_of``
    (default the end), inside the district or street ``within`` (default everything).

    Returns
    -------
    pandas.Series
        ``reported`` (int64) indexed by grid code (``unit``), for the grids with at least
        one incident; the incidents outside every grid under a missing code (NaN). Equal,
        on those units, to ``kpis_by_unit(conn, "grid", start, end, within=within,
        as_of=as_of).current["reported"]`` (which lists every valid grid, zeros
        included).
    """
    period = make_period(start, end, as_of, tz=tz)
    level = unit_level(within)
    if level not in ("all", "district", "street"):
        raise ValueError(f"within must be a district or street code, got {within!r}")
    frame = briefing_sql.reported_by_grid(
        conn,
        period.start_ts,
        period.upto,
        street=within if level == "street" else None,
        district=within if level == "district" else None,
    )
    index = pd.Index(frame["grid"].tolist(), name="unit", dtype=object)
    return pd.Series(frame["reported"].to_numpy(dtype="int64"), index=index, name="reported")
