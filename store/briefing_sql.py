"""SQL of the briefing (``dashboard/briefing``) that no analysis module already has: how fresh
the data of a jurisdiction is, and where the store's data came from.

Every figure of the briefing itself comes from :mod:`geo`; these two queries only feed its
"data sources and freshness" section.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pandas as pd
from psycopg import sql as psql
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


# --- one consistent view across several connections ---------------------------------------

#: The settings row-level security reads (store.access.scoped / migration 0003): a helper
#: connection of a scoped request carries the same ones, or it would read nothing.
SCOPE_SETTINGS = (
    "gridone.role",
    "gridone.scope",
    "gridone.street_lo",
    "gridone.street_hi",
    "gridone.grid_lo",
    "gridone.grid_hi",
    "gridone.staff_code",
)
_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9A-F]+)?$")
_EXPORT = text("SELECT pg_export_snapshot()")
_READ_SETTINGS = text(
    "SELECT name, current_setting(name, true) FROM unnest(CAST(:names AS text[])) AS name"
)
_SET_SETTING = text("SELECT set_config(:name, :value, true)")


@dataclass(frozen=True)
class SharedView:
    """What a helper connection needs to see exactly what the leading connection sees:
    its exported snapshot and its row-level security settings."""

    snapshot: str
    settings: dict[str, str]


def share_view(conn: Connection) -> SharedView:
    """Export the snapshot of ``conn``'s transaction (valid while that transaction lasts)
    and read its scope settings."""
    snapshot = str(conn.execute(_EXPORT).scalar_one())
    rows = conn.execute(_READ_SETTINGS, {"names": list(SCOPE_SETTINGS)}).all()
    return SharedView(snapshot, {name: value for name, value in rows if value})


def join_view(conn: Connection, view: SharedView) -> None:
    """Make ``conn``'s new transaction (REPEATABLE READ, nothing run in it yet) read the
    snapshot and scope of :func:`share_view`. ``SET TRANSACTION SNAPSHOT`` takes no bound
    parameter: the id, which the server made, is checked against its format and quoted."""
    if not _SNAPSHOT_ID.match(view.snapshot):
        raise ValueError(f"not a snapshot id: {view.snapshot!r}")
    raw = conn.connection.driver_connection
    statement = psql.SQL("SET TRANSACTION SNAPSHOT {}").format(psql.Literal(view.snapshot))
    conn.exec_driver_sql(statement.as_string(raw))  # type: ignore[arg-type]
    for name, value in view.settings.items():
        conn.execute(_SET_SETTING, {"name": name, "value": value})
