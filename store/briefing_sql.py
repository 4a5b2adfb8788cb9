"""SQL of the briefing (``dashboard/briefing``) that no analysis module already has: how fresh
the data of a jurisdiction is, where the store's data came from, and the count of incidents
reported per grid.

Every figure of the briefing itself comes from :mod:`geo`: the first two queries only feed
its "data sources and freshness" section; the count per grid is read through
:func:`geo.grid_reported.reported_by_grid`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import pandas as pd
from psycopg import sql as psql
from sqlalchemy import Connection, text

from store.access import scoped

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


_REPORTED_BY_GRID = text(
    """
    SELECT i.grid_code AS grid, count(*) AS reported
      FROM incident i
     WHERE i.reported_at >= :start AND i.reported_at < :upto
       AND (CAST(:street AS text) IS NULL OR i.street_code = :street)
       AND (CAST(:district AS text) IS NULL
            OR left(i.street_code, 6) = left(CAST(:district AS text), 6))
     GROUP BY i.grid_code
    """
)


def reported_by_grid(
    conn: Connection,
    start: dt.datetime,
    upto: dt.datetime,
    *,
    street: str | None = None,
    district: str | None = None,
) -> pd.DataFrame:
    """Incidents reported in ``[start, upto)`` per ``grid_code`` (``grid``, NULL for the
    incidents outside every grid; ``reported``), of one street or district (codes; None:
    no filter). One index range scan on ``reported_at``: the period's incidents only, not
    the state of every incident as of T that ``store.kpi_sql.KPI_FIGURES`` works out."""
    result = conn.execute(
        _REPORTED_BY_GRID, {"start": start, "upto": upto, "street": street, "district": district}
    )
    return pd.DataFrame(result.fetchall(), columns=["grid", "reported"])


# --- one consistent view across several connections ---------------------------------------

_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9A-F]+)?$")
_EXPORT = text("SELECT pg_export_snapshot()")
_SCOPE_SET = text("SELECT coalesce(current_setting('gridone.sig', true), '') <> ''")


@dataclass(frozen=True)
class SharedView:
    """What a helper connection needs to see exactly what the leading connection sees:
    its exported snapshot and the session token its scope was bound with (None: the
    leading connection has no scope, e.g. the owner's command line).

    The scope itself cannot be copied: its settings are signed over the backend and the
    transaction (migration 0007), so a helper binds its own transaction to the same live
    session with :func:`store.access.scoped`."""

    snapshot: str
    token: str | None = None


def scope_set(conn: Connection) -> bool:
    """Whether ``conn``'s transaction is bound to a scope (signed settings present): a
    helper connection then needs the session token to read the same rows."""
    return bool(conn.execute(_SCOPE_SET).scalar_one())


def share_view(conn: Connection, token: str | None = None) -> SharedView:
    """Export the snapshot of ``conn``'s transaction (valid while that transaction lasts),
    with the session ``token`` its scope was bound with (if any)."""
    snapshot = str(conn.execute(_EXPORT).scalar_one())
    return SharedView(snapshot, token)


def join_view(conn: Connection, view: SharedView) -> None:
    """Make ``conn``'s new transaction (REPEATABLE READ, nothing run in it yet) read the
    snapshot of :func:`share_view`, bound to the same session's scope when it has a token.
    ``SET TRANSACTION SNAPSHOT`` takes no bound parameter: the id, which the server made,
    is checked against its format and quoted."""
    if not _SNAPSHOT_ID.match(view.snapshot):
        raise ValueError(f"not a snapshot id: {view.snapshot!r}")
    raw = conn.connection.driver_connection
    statement = psql.SQL("SET TRANSACTION SNAPSHOT {}").format(psql.Literal(view.snapshot))
    conn.exec_driver_sql(statement.as_string(raw))  # type: ignore[arg-type]
    if view.token is not None:
        scoped(conn, view.token)
