"""简报 (briefing): one jurisdiction and period as an A4 PDF and a Word file, ready to print.

No Streamlit here: the page (``dashboard/views/briefing.py``), the command line
(``python -m dashboard.briefing``) and the tests call :func:`build`. Steps:

1. :func:`dashboard.briefing.data.gather` reads every figure from :mod:`geo`;
2. :func:`dashboard.briefing.maps.render_maps` draws three static maps (matplotlib);
3. :func:`dashboard.briefing.content.build_document` formats them into sections;
4. :mod:`dashboard.briefing.render` writes the PDF (WeasyPrint) and the DOCX (python-docx).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from sqlalchemy import Connection

from dashboard.briefing.content import Document, build_document
from dashboard.briefing.data import BriefingData, EmptyPeriodError, gather
from dashboard.briefing.maps import render_maps
from dashboard.briefing.render import to_docx, to_pdf
from store.vocab import Lang

__all__ = ["Briefing", "BriefingData", "EmptyPeriodError", "build", "gather"]


@dataclass(frozen=True)
class Briefing:
    """A made briefing: its data, its content, the files, and seconds per step."""

    data: BriefingData
    document: Document
    pdf: bytes | None
    docx: bytes | None
    seconds: dict[str, float] = field(default_factory=dict)


def build(
    conn: Connection,
    *,
    street: str | None,
    start: dt.date,
    end: dt.date,
    lang: Lang = "zh",
    pdf: bool = True,
    docx: bool = True,
) -> Briefing:
    """The briefing of ``street`` (None: the whole district) for ``[start, end)``.

    Raises
    ------
    EmptyPeriodError
        No incident reported in scope in the period.
    ValueError
        Unknown street, or an end not after the start.
    """
    t0 = time.perf_counter()
    data = gather(conn, street=street, start=start, end=end)
    seconds = dict(data.seconds)
    t1 = time.perf_counter()
    maps = render_maps(data, lang)
    t2 = time.perf_counter()
    doc = build_document(data, maps, lang)
    pdf_bytes = to_pdf(doc) if pdf else None
    t3 = time.perf_counter()
    docx_bytes = to_docx(doc) if docx else None
    t4 = time.perf_counter()
    seconds.update(
        {"gather": t1 - t0, "maps": t2 - t1, "pdf": t3 - t2, "docx": t4 - t3, "total": t4 - t0}
    )
    return Briefing(data, doc, pdf_bytes, docx_bytes, seconds)
