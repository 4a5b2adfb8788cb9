"""Reads for assigning points to grids in Python at load time (:mod:`loaders.assign`).

The rule is the one of the loader's SQL (:data:`loaders.kinds._GRID_BY_POINT`): a grid in
force today (``valid_to`` empty or later than today, by the database's ``CURRENT_DATE``)
whose polygon covers the point, edges and vertices included; of several, the lowest code.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

_CURRENT_GRIDS = text(
    "SELECT code, ST_AsBinary(geom) FROM grid "
    "WHERE geom IS NOT NULL AND (valid_to IS NULL OR valid_to > CURRENT_DATE) ORDER BY code"
)


def current_grids(conn: Connection) -> tuple[list[str], list[bytes]]:
    """Codes (ascending) and WKB polygons (storage CRS, as stored) of the grids in force
    today, read in the caller's transaction so they are the grids the load sees."""
    rows = conn.execute(_CURRENT_GRIDS).all()
    return [r[0] for r in rows], [bytes(r[1]) for r in rows]
