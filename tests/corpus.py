"""The loader test corpus (``tests/data/corpus``) and generators of the files too big to
commit. Independent of :mod:`loaders`, so the files it makes do not depend on the code under
test."""

from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "data" / "corpus"

LONG_LINE_HEADERS = ("code", "category", "title", "description", "lng", "lat", "grid_code")


def write_long_line_csv(
    path: Path,
    *,
    line_bytes: int = 10 * 1024 * 1024,
    encoding: str = "utf-8",
    cut_at: int = 64 * 1024,
) -> Path:
    """Write an incidents CSV whose second data row carries a ``line_bytes``-long
    description of Chinese text, padded so that byte offset ``cut_at`` falls inside a
    multibyte character (a sample of that size ends mid-character).

    Returns ``path``. About ``line_bytes`` plus a few hundred bytes are written.
    """
    unit = "长文本描述😀" if encoding.startswith("utf") else "长文本描述"
    per_unit = len(unit.encode(encoding))
    long_text = unit * (line_bytes // per_unit + 1)
    data = b""
    for pad in range(4):  # shift the long text until the cut falls inside a character
        rows = [
            ",".join(LONG_LINE_HEADERS),
            "SJ1,0101,短的,正常描述,120.4011,36.3012,370214001001001",
            f"SJ2,0302,{'x' * pad}很长,{long_text},120.4049,36.3009,370214001001002",
            "SJ3,0701,短的,正常描述,120.4081,36.3021,370214001001003",
        ]
        data = ("\r\n".join(rows) + "\r\n").encode(encoding)
        try:
            data[:cut_at].decode(encoding)
        except UnicodeDecodeError:
            break
    path.write_bytes(data)
    return path
