"""Cached loaders of the 简报 (briefing) page: the made files, cached per jurisdiction,
period and language, so a second click (or the other format) costs nothing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import streamlit as st

from dashboard.briefing import build
from dashboard.briefing.data import district
from dashboard.data import CACHE_SECONDS, engine
from store.vocab import Lang


@dataclass(frozen=True)
class BriefingFiles:
    """The PDF and the Word file of one briefing, its jurisdiction's name and build time."""

    pdf: bytes
    docx: bytes
    name: str
    seconds: float


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def district_name() -> str:
    """The store's district name (the whole-district choice is labelled with it)."""
    with engine().connect() as conn:
        return district(conn)[1]


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False, max_entries=16)
def briefing_files(street: str | None, start: dt.date, end: dt.date, lang: Lang) -> BriefingFiles:
    """:func:`dashboard.briefing.build` for ``[start, end)`` (local days), both formats."""
    with engine().connect() as conn:
        made = build(conn, street=street, start=start, end=end, lang=lang)
    assert made.pdf is not None and made.docx is not None
    return BriefingFiles(made.pdf, made.docx, made.data.name, made.seconds["total"])
