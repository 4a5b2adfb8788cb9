"""Cached loaders of the 简报 (briefing) page. The files themselves are not cached: each is
made for its viewer, with that viewer's watermark (dashboard/views/briefing.py)."""

from __future__ import annotations

import streamlit as st

from dashboard.briefing.data import district
from dashboard.data import CACHE_SECONDS, engine


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def district_name() -> str:
    """The store's district name (the whole-district choice is labelled with it)."""
    with engine().connect() as conn:
        return district(conn)[1]
