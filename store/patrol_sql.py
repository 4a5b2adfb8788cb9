"""SQL of the 巡查 (patrol) page that :mod:`store.coverage_sql` does not already hold: when a
street's latest patrol fix was taken (the page's default day). ``sqlalchemy.text`` with
bound parameters only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

_LATEST_FIX = text(
    """
    SELECT max(f.fixed_at)
      FROM patrol_fix f
     WHERE (CAST(:street AS text) IS NULL OR f.street_code = :street)
    """
)


def latest_fix(conn: Connection, *, street: str | None = None) -> Any:
    """The time (aware) of the latest patrol fix by a street's workers (all streets when
    None); None when there is none."""
    return conn.execute(_LATEST_FIX, {"street": street}).scalar_one()
