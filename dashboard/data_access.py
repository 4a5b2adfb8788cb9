"""Cached loaders that access control adds to pages: the special-group counts of a grid
(``special_group_by_grid``, district and street roles only), cached per scope."""

from __future__ import annotations

from dashboard.data import scoped_cache, scoped_conn
from store import access


@scoped_cache
def special_groups(grid: str) -> dict[str, int] | None:
    """:func:`store.access.special_groups` of ``grid`` for the logged-in user (None when
    the database shows this user none: community and grid roles, another jurisdiction)."""
    with scoped_conn() as conn:
        return access.special_groups(conn, grid)
