"""Cached access to the store for pages: one engine per process, query results cached by
their plain arguments. The only module of the dashboard that talks to the database layer."""

from __future__ import annotations

import streamlit as st
from sqlalchemy import Engine

from dashboard.maps import OverviewData
from store import queries
from store.db import check_connection, make_engine, resolve_url
from store.settings import Settings, get_settings

CACHE_SECONDS = 300


@st.cache_resource(show_spinner=False)
def settings() -> Settings:
    """The settings, read once per server process."""
    return get_settings()


@st.cache_resource(show_spinner=False)
def engine() -> Engine:
    """The engine (pre-ping: a restarted database is picked up again)."""
    return make_engine(resolve_url(settings()))


def check() -> None:
    """Raise :class:`store.errors.DatabaseUnavailableError` when the store is unreachable."""
    check_connection(engine())


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def summary() -> queries.StoreSummary:
    """Row counts of the store."""
    with engine().connect() as conn:
        return queries.summary(conn)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def street_names() -> dict[str, str]:
    """Street code → name."""
    with engine().connect() as conn:
        return queries.street_names(conn)


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def overview(street_code: str | None) -> OverviewData:
    """Everything the overview map draws, for one street or all."""
    with engine().connect() as conn:
        return OverviewData(
            streets=queries.admin_units(conn, "street", street_code=street_code),
            communities=queries.admin_units(conn, "community", street_code=street_code),
            grids=queries.grids(conn, street_code=street_code),
            buildings=queries.buildings(conn, street_code=street_code),
            incidents=queries.incidents(conn, street_code=street_code),
        )
