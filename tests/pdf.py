"""Reading a briefing PDF's text in tests, the watermark kept apart.

The briefing's diagonal watermark (``dashboard/briefing/render.py``) is the only text a
briefing draws rotated, so the page text is what is drawn upright and the watermark is what
is drawn at an angle: :func:`pdf_text` reads the first, :func:`pdf_marks` the second. The
footer line of the watermark is upright, and part of the page text on purpose.
"""

from __future__ import annotations

import io

from pypdf import PageObject, PdfReader


def _pieces(page: PageObject) -> tuple[list[str], list[str]]:
    """The upright and the rotated text pieces of ``page``, in drawing order."""
    upright: list[str] = []
    rotated: list[str] = []

    def visit(text: str, cm: list[float], tm: list[float], font: object, size: float) -> None:
        # b and c of the text-to-page matrix (tm × cm) are 0 for upright or mirrored text
        b = tm[0] * cm[1] + tm[1] * cm[3]
        c = tm[2] * cm[0] + tm[3] * cm[2]
        (rotated if abs(b) > 1e-6 or abs(c) > 1e-6 else upright).append(text)

    page.extract_text(visitor_text=visit)
    return upright, rotated


def pdf_text(body: bytes) -> str:
    """Every page's upright text (the content, footer included), pages joined."""
    return "\n".join("".join(_pieces(p)[0]) for p in PdfReader(io.BytesIO(body)).pages)


def pdf_marks(body: bytes) -> list[list[str]]:
    """Per page, the non-blank rotated text pieces (the diagonal watermark)."""
    return [
        [t.strip() for t in _pieces(p)[1] if t.strip()] for p in PdfReader(io.BytesIO(body)).pages
    ]
