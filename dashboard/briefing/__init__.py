"""简报 (briefing): one jurisdiction and period as an A4 PDF and a Word file, ready to print.

No Streamlit here: the page (``dashboard/views/briefing.py``), the command line
(``python -m dashboard.briefing``) and the tests call :func:`build`. Steps:

1. :func:`dashboard.briefing.data.gather` reads every figure from :mod:`geo`;
   — the key figures, the per-unit table, the per-grid rates, the hot spots and the patrol
   coverage side by side on their own connections (one snapshot), the KPIs from the per
   street and day sums where they serve (:mod:`store.kpi_summary`), patrol coverage from
   the stored days (:mod:`geo.coverage_store`) when they are all there;
2. :func:`dashboard.briefing.maps.render_maps` draws three static maps (matplotlib; the
   maps already while the key figures are being computed, on the threads that computed
   their data);
3. :func:`dashboard.briefing.content.build_document` formats them into sections;
4. :mod:`dashboard.briefing.render` writes the PDF (WeasyPrint) and the DOCX (python-docx).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass, field

import geopandas as gpd
import pandas as pd
from sqlalchemy import Connection, Engine

from dashboard.briefing.content import Document, build_document
from dashboard.briefing.data import BriefingData, EmptyPeriodError, gather
from dashboard.briefing.maps import indicator_map, render_maps, spatial_maps
from dashboard.briefing.render import to_docx, to_pdf
from geo.hotspots import HotspotResult
from store.access import User, audit, audit_session, scoped
from store.vocab import Lang
from store.watermark import Watermark

__all__ = [
    "Briefing",
    "BriefingData",
    "EmptyPeriodError",
    "audit_briefing",
    "build",
    "build_audited",
    "gather",
]


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
    watermark: Watermark,
    lang: Lang = "zh",
    pdf: bool = True,
    docx: bool = True,
    parallel: bool = True,
    stored: bool = True,
    token: str | None = None,
) -> Briefing:
    """The briefing of ``street`` (None: the whole district) for ``[start, end)``, made for
    ``watermark``'s user: the files carry it on every page (:mod:`store.watermark`).

    Raises
    ------
    EmptyPeriodError
        No incident reported in scope in the period.
    ValueError
        Unknown street, or an end not after the start.

    ``parallel`` and ``stored``: see :func:`dashboard.briefing.data.gather` (both on by
    default; off only to measure what they save). ``token``: the session token ``conn``
    is scoped with, for the helper connections (see ``gather``).
    """
    t0 = time.perf_counter()

    def draw(
        hot: HotspotResult,
        grids: gpd.GeoDataFrame,
        grid_coverage: pd.DataFrame | None,
        outlines: gpd.GeoDataFrame,
    ) -> tuple[bytes, bytes]:
        # the two maps that need no key figure, drawn while those are still computed
        return spatial_maps(hot.units, grids, grid_coverage, outlines, lang)

    def draw_rates(grid_rates: gpd.GeoDataFrame, outlines: gpd.GeoDataFrame) -> bytes:
        # the indicator map, drawn on the thread of the per-grid rates
        return indicator_map(grid_rates, lang, outlines=outlines)

    data = gather(
        conn,
        street=street,
        start=start,
        end=end,
        parallel=parallel,
        stored=stored,
        draw=draw if parallel else None,
        draw_rates=draw_rates if parallel else None,
        token=token,
    )
    seconds = dict(data.seconds)
    t1 = time.perf_counter()
    maps = render_maps(data, lang)
    t2 = time.perf_counter()
    doc = build_document(data, maps, lang)
    pdf_bytes = to_pdf(doc, watermark) if pdf else None
    t3 = time.perf_counter()
    docx_bytes = to_docx(doc, watermark) if docx else None
    t4 = time.perf_counter()
    seconds.update(
        {"gather": t1 - t0, "maps": t2 - t1, "pdf": t3 - t2, "docx": t4 - t3, "total": t4 - t0}
    )
    return Briefing(data, doc, pdf_bytes, docx_bytes, seconds)


def audit_briefing(
    conn: Connection,
    made: Briefing,
    watermark: Watermark,
    *,
    via: str,
    user: User | None = None,
    out: str | None = None,
    session: bool = False,
) -> None:
    """Record a made briefing in ``audit_log`` (action ``briefing``): who (``user``, else
    the watermark's login), through what (``via``: ``cli`` or ``dashboard``), the
    jurisdiction, period and language, the incidents it covers, each file's size and
    SHA-256 (to match a copy found later), the watermark and ``out``, the path written.
    Commit it before the files are handed over. ``session``: ``conn`` is the
    application's, scoped by the user's session (:func:`store.access.scoped`): the row is
    written by the database in that session's user's name (:func:`audit_session`); else
    ``conn`` is the owner's (the command line) and inserts it."""
    d = made.data
    files = {
        kind: {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        for kind, body in (("pdf", made.pdf), ("docx", made.docx))
        if body is not None
    }
    detail = {
        "via": via,
        "scope": d.scope,
        "code": d.code,
        "name": d.name,
        "from": d.start.isoformat(),
        "to": d.last_day.isoformat(),
        "lang": made.document.lang,
        "incidents": d.report.figures.reported,
        "files": files,
        "out": out,
        "watermark": watermark.as_dict(),
    }
    if session:
        audit_session(conn, "briefing", detail=detail)
    else:
        audit(conn, "briefing", user=user, login=watermark.login, detail=detail)


def build_audited(
    engine: Engine,
    *,
    street: str | None,
    start: dt.date,
    end: dt.date,
    watermark: Watermark,
    via: str,
    lang: Lang = "zh",
    pdf: bool = True,
    docx: bool = True,
    user: User | None = None,
    out: str | None = None,
    token: str | None = None,
) -> Briefing:
    """:func:`build`, then :func:`audit_briefing` committed: what the page and the command
    line call, so no briefing leaves without its audit row (a failed audit raises and the
    files are not returned). ``token``: the logged-in user's session token; the briefing
    is built in that session's scope (:func:`store.access.scoped`, helpers included)."""
    with engine.connect() as conn:
        if token is not None:
            scoped(conn, token)
        made = build(
            conn,
            street=street,
            start=start,
            end=end,
            watermark=watermark,
            lang=lang,
            pdf=pdf,
            docx=docx,
            token=token,
        )
    with engine.begin() as conn:
        if token is not None:
            scoped(conn, token)
        audit_briefing(
            conn, made, watermark, via=via, user=user, out=out, session=token is not None
        )
    return made
