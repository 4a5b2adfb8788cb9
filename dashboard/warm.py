"""Import the analysis stack in the background while the login form shows.

The first map after the server starts took ~12 s against ~2 s later: most of the gap is
importing the stack the pages use (esda ~4 s, libpysal, mapclassify and scikit-learn ~3 s
each, folium and streamlit-folium ~2 s, cold, on this 2-core machine). Streamlit runs
nothing until a browser connects, and the login form needs none of it, so the first run
that draws the form starts one daemon thread that imports the modules the pages import;
the seconds someone spends typing a password pay for them. The first page run after the
login waits for the thread (:func:`wait`) before it imports anything: two threads
importing the same packages at once can meet in a circular import, where Python hands one
of them a half-initialised module rather than deadlock. A failed import here is left for
the page to raise with its own message.
"""

from __future__ import annotations

import contextlib
import importlib
import threading

import streamlit as st

#: What the pages import (directly or through their view models), heaviest first.
MODULES = (
    "geo.hotspots",
    "geo.emerging",
    "mapclassify",
    "geo.overview",
    "geo.kpis",
    "geo.coverage",
    "streamlit_folium",
    "dashboard.maps",
    "dashboard.patrol_maps",
    "dashboard.overview_view",
    "dashboard.data_overview",
    "dashboard.incidents_view",
    "dashboard.hotspot_view",
    "dashboard.patrol_view",
    "dashboard.assess_view",
    "dashboard.briefing",
    "altair",
)


def _import_all() -> None:
    for name in MODULES:
        with contextlib.suppress(Exception):  # the page importing it shows the error
            importlib.import_module(name)


@st.cache_resource(show_spinner=False)
def start() -> threading.Thread:
    """Start the import thread, once per server process (Streamlit's resource cache)."""
    thread = threading.Thread(target=_import_all, name="gridone-warm-imports", daemon=True)
    thread.start()
    return thread


def wait() -> None:
    """Let the import thread finish before a page imports: at once when it has; otherwise
    the wait costs nothing the page would not have spent importing the same modules."""
    start().join()
