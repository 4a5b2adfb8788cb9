"""The briefing's :class:`~dashboard.briefing.content.Document` as an A4 PDF (HTML and CSS
through WeasyPrint, Noto Sans CJK SC) and as a Word file (python-docx), with the same
sections, tables and maps in the same order."""

from __future__ import annotations

import base64
import datetime as dt
import io

import docx
import jinja2
import markupsafe
from docx.enum.section import WD_ORIENT
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Cm, Pt, RGBColor

from dashboard.briefing.content import Document, Image, Table
from dashboard.briefing.maps import FONT
from store.watermark import Watermark

_TEMPLATE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(
    """<!DOCTYPE html>
<html lang="{{ 'zh-CN' if doc.lang == 'zh' else 'en' }}"><head><meta charset="utf-8">
<title>{{ doc.title }}</title>
<meta name="author" content="{{ author }}"><meta name="description" content="{{ mark_line }}">
<style>
@page { size: A4; margin: 16mm 15mm 16mm 15mm;
  @bottom-center { content: {{ css(mark_line) }} "\\A {{ footer_before }}" counter(page)
                   "{{ footer_after }}"; white-space: pre; font-family: "{{ font }}";
                   font-size: 8pt; color: #666; } }
body { font-family: "{{ font }}", sans-serif; font-size: 9.5pt; line-height: 1.45; color: #111; }
h1 { font-size: 17pt; text-align: center; margin: 0 0 4mm 0; }
.meta { font-size: 8.5pt; color: #333; border-top: 1.5pt solid #b22222;
        border-bottom: 0.5pt solid #999; padding: 2mm 0; margin-bottom: 4mm; }
.meta p { margin: 0.5mm 0; }
h2 { font-size: 12.5pt; margin: 5mm 0 2mm 0; border-left: 3pt solid #b22222; padding-left: 2mm;
     break-after: avoid; }
p { margin: 1.5mm 0; }
table { border-collapse: collapse; width: 100%; font-size: 8pt; margin: 2mm 0 3mm 0; }
th, td { border: 0.5pt solid #999; padding: 1mm 1.5mm; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f0f0f0; font-weight: bold; }
td.num, th.num { text-align: right; white-space: nowrap; }
tr { break-inside: avoid; }
figure { margin: 2mm 0 4mm 0; break-inside: avoid; text-align: center; }
figure img { width: 100%; max-height: 100mm; object-fit: contain; }
figcaption { font-size: 8.5pt; color: #333; margin-top: 1mm; }
.watermark { position: fixed; top: -16mm; left: -15mm; width: 210mm; height: 297mm;
             overflow: hidden; z-index: 10; }
.watermark p { position: absolute; margin: 0; white-space: nowrap; font-size: 13pt;
               color: rgba(90, 90, 90, {{ mark_alpha }}); transform: rotate(-30deg);
               transform-origin: 0 0; }
</style></head><body>
<div class="watermark" aria-hidden="true">{% for x, y in mark_at %}
<p style="left: {{ x }}mm; top: {{ y }}mm">{{ mark }}</p>{% endfor %}</div>
<h1>{{ doc.title }}</h1>
<div class="meta">{% for line in doc.meta %}<p>{{ line }}</p>{% endfor %}</div>
{% for section in doc.sections %}
<section><h2>{{ section.title }}</h2>
{% for block in section.blocks %}
{% if block is string %}<p>{{ block }}</p>
{% elif block.png is defined %}<figure><img src="data:image/png;base64,{{ b64(block.png) }}">
<figcaption>{{ block.caption }}</figcaption></figure>
{% else %}<table><thead><tr>
{% for h in block.header %}<th{{ num(block, loop.index0) }}>{{ h }}</th>{% endfor %}
</tr></thead><tbody>
{% for row in block.rows %}<tr>
{% for c in row %}<td{{ num(block, loop.index0) }}>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
{% endif %}
{% endfor %}</section>
{% endfor %}
</body></html>
"""
)


#: Opacity of the diagonal watermark: readable when looked for, not in the way of reading.
MARK_ALPHA = 0.16

#: Where the diagonal watermark starts on the page (mm from the sheet's top left corner):
#: staggered rows, so any part of the page big enough to matter carries one.
MARK_AT = tuple((x + (52 if row % 2 else 0), 55 + 62 * row) for row in range(5) for x in (-10, 100))


def css_string(value: str) -> markupsafe.Markup:
    """``value`` as a CSS string literal: every character but ASCII letters and digits
    escaped as six hex digits, so a quote, a backslash or ``</style>`` in a user name
    stays text."""
    body = "".join(c if c.isascii() and c.isalnum() else f"\\{ord(c):06x}" for c in value)
    return markupsafe.Markup(f'"{body}"')


def to_html(doc: Document, watermark: Watermark) -> str:
    """The document as one self-contained HTML page (maps as data URIs), with
    ``watermark`` across every page and in its footer."""
    before, _, after = doc.footer.partition("{page}")
    return _TEMPLATE.render(
        doc=doc,
        font=FONT,
        footer_before=before,
        footer_after=after,
        mark=watermark.mark(doc.lang),
        mark_line=watermark.line(doc.lang),
        mark_at=MARK_AT,
        mark_alpha=MARK_ALPHA,
        author=watermark.who,
        css=css_string,
        b64=lambda png: base64.b64encode(png).decode("ascii"),
        num=lambda table, i: markupsafe.Markup(' class="num"') if table.numeric[i] else "",
    )


def to_pdf(doc: Document, watermark: Watermark) -> bytes:
    """The document as an A4 PDF (WeasyPrint; fonts embedded, subset), watermarked."""
    from weasyprint import HTML  # a second of imports: only when a PDF is made

    return HTML(string=to_html(doc, watermark)).write_pdf()


def _east_asian(style_or_run: object, size: float | None = None) -> None:
    """Set the Latin and East Asian font (Word keeps them apart) and the size."""
    font = style_or_run.font  # type: ignore[attr-defined]
    font.name = FONT
    if size is not None:
        font.size = Pt(size)
    rpr = style_or_run.element.get_or_add_rPr()  # type: ignore[attr-defined]
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = rpr.makeelement(qn("w:rFonts"), {})
        rpr.append(fonts)
    fonts.set(qn("w:eastAsia"), FONT)


def _docx_table(out: object, table: Table) -> None:
    t = out.add_table(rows=1 + len(table.rows), cols=len(table.header))  # type: ignore[attr-defined]
    t.style = "Table Grid"
    t.alignment = WD_TABLE_ALIGNMENT.CENTER
    # a row's cells once per row: Table.cell(r, c) lists every cell of the table on each
    # call (a district's tables: a second of the Word file)
    for r, (row, values) in enumerate(zip(t.rows, (table.header, *table.rows), strict=True)):
        cells = row.cells
        for c, value in enumerate(values):
            para = cells[c].paragraphs[0]
            run = para.add_run(value)
            run.font.size = Pt(8)
            run.bold = r == 0
            if table.numeric[c]:
                para.alignment = WD_ALIGN_PARAGRAPH.RIGHT


def _docx_mark(paragraph: object, value: str) -> None:
    """One small grey line of the watermark (header or footer)."""
    paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER  # type: ignore[attr-defined]
    run = paragraph.add_run(value)  # type: ignore[attr-defined]
    run.font.size = Pt(7.5)
    run.font.color.rgb = RGBColor(0x80, 0x80, 0x80)


def to_docx(doc: Document, watermark: Watermark) -> bytes:
    """The document as a Word file: A4, the same sections, tables and maps; the watermark
    in every page's header (who and when) and footer (the sentence), and in the file's
    properties (author, comments).

    No diagonal mark behind the text: Word draws that as a VML shape in the header, which
    python-docx has no API for (it would be hand-written XML); the header and footer lines
    are on every page and printed with it."""
    out = docx.Document()
    section = out.sections[0]
    section.orientation = WD_ORIENT.PORTRAIT
    section.page_width, section.page_height = Cm(21.0), Cm(29.7)
    for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
        setattr(section, side, Cm(1.6))
    _east_asian(out.styles["Normal"], 10)
    for name, size in (("Title", 18), ("Heading 1", 13)):
        _east_asian(out.styles[name], size)
    out.core_properties.title = doc.title
    out.core_properties.author = watermark.who
    out.core_properties.last_modified_by = watermark.login
    out.core_properties.comments = watermark.line(doc.lang)
    out.core_properties.created = out.core_properties.modified = watermark.at.astimezone(dt.UTC)
    _docx_mark(section.header.paragraphs[0], watermark.mark(doc.lang))
    _docx_mark(section.footer.paragraphs[0], watermark.line(doc.lang))
    out.add_heading(doc.title, level=0).alignment = WD_ALIGN_PARAGRAPH.CENTER
    for line in doc.meta:
        out.add_paragraph(line).runs[0].font.size = Pt(9)
    for sec in doc.sections:
        out.add_heading(sec.title, level=1)
        for block in sec.blocks:
            if isinstance(block, str):
                out.add_paragraph(block)
            elif isinstance(block, Image):
                out.add_picture(io.BytesIO(block.png), width=Cm(16.5))
                out.paragraphs[-1].alignment = WD_ALIGN_PARAGRAPH.CENTER
                cap = out.add_paragraph(block.caption)
                cap.alignment = WD_ALIGN_PARAGRAPH.CENTER
                cap.runs[0].font.size = Pt(9)
            else:
                _docx_table(out, block)
                out.add_paragraph()
    buf = io.BytesIO()
    out.save(buf)
    return buf.getvalue()
