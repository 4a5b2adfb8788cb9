"""Cached loaders of the 简报 (briefing) page: the made files, cached per jurisdiction,
period and language, so a second click (or the other format) costs nothing."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from dashboard.briefing import build
from dashboard.briefing.data import district
from dashboard.data import scoped_cache, scoped_conn
from store.vocab import Lang


@dataclass(frozen=True)
class BriefingFiles:
    """The PDF and the Word file of one briefing, its jurisdiction's name and build time."""

    pdf: bytes
    docx: bytes
    name: str
    seconds: float


@scoped_cache
def district_name() -> str:
    """The store's district name (the whole-district choice is labelled with it)."""
    with scoped_conn() as conn:
        return district(conn)[1]


@scoped_cache(max_entries=16)
def briefing_files(street: str | None, start: dt.date, end: dt.date, lang: Lang) -> BriefingFiles:
    """:func:`dashboard.briefing.build` for ``[start, end)`` (local days), both formats."""
    with scoped_conn() as conn:
        made = build(conn, street=street, start=start, end=end, lang=lang)
    assert made.pdf is not None and made.docx is not None
    return BriefingFiles(made.pdf, made.docx, made.data.name, made.seconds["total"])
