"""SQL of the briefing (``dashboard/briefing``) that no analysis module already has: how fresh
the data of a jurisdiction is, and where the store's data came from.

Every figure of the briefing itself comes from :mod:`geo`; these two queries only feed its
"data sources and freshness" section.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import Connection, text

_FRESHNESS = text(
    """
    SELECT (SELECT max(i.reported_at) FROM incident i
             WHERE CAST(:street AS text) IS NULL OR i.street_code = :street) AS incident,
           (SELECT max(f.fixed_at) FROM patrol_fix f
             WHERE CAST(:street AS text) IS NULL OR f.street_code = :street) AS patrol
    """
)

_SOURCES = text(
    """
    SELECT kind, source, loaded_at, rows
      FROM data_source
     ORDER BY loaded_at DESC, id DESC
    """
)


@dataclass(frozen=True)
class Freshness:
    """The latest incident report and the latest patrol GPS fix in scope (None: none)."""

    last_incident: dt.datetime | None
    last_patrol_fix: dt.datetime | None


def freshness(conn: Connection, *, street: str | None = None) -> Freshness:
    """Latest ``incident.reported_at`` and ``patrol_fix.fixed_at`` of one street (its code)
    or of the whole store (None)."""
    row = conn.execute(_FRESHNESS, {"street": street}).one()
    return Freshness(row.incident, row.patrol)


def data_sources(conn: Connection) -> pd.DataFrame:
    """The loads recorded in ``data_source``, newest first: ``kind, source, loaded_at,
    rows``."""
    result = conn.execute(_SOURCES)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
