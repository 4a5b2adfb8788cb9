"""Cached loaders of the 简报 (briefing) page. The files themselves are not cached: each is
made for its viewer, with that viewer's watermark (dashboard/views/briefing.py)."""

from __future__ import annotations

from dashboard.briefing.data import district
from dashboard.data import scoped_cache, scoped_conn


@scoped_cache
def district_name() -> str:
    """The store's district name (the whole-district choice is labelled with it)."""
    with scoped_conn() as conn:
        return district(conn)[1]
