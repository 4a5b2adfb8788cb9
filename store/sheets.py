"""Text cells that a spreadsheet would run: the one guard every CSV writer applies.

Excel and WPS read a CSV cell that starts with ``=``, ``+``, ``-``, ``@`` (or a tab or
carriage return before one) as a formula, so ``=HYPERLINK("http://…","点此")`` typed into
an incident's description would run on the office computer that opens the export (CSV
injection). OWASP's advice is a leading ``'``: the cell shows as text and is never run.
``python -m loaders load`` takes the ``'`` off again (``loaders/parse.py``), so an export
loads back exactly.

Used by ``python -m loaders export``, ``python -m geo … --out FILE.csv`` and the
dashboard's CSV downloads; XLSX cells are written as string cells, which no spreadsheet
runs, so they need no guard.
"""

from __future__ import annotations

import pandas as pd

#: What makes a spreadsheet read a cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def guard_formula(value: object) -> object:
    """``'=1+2`` for ``=1+2``: shown as text, never run, by Excel and WPS. Anything that is
    not a string (numbers, missing values) is returned as it is."""
    if isinstance(value, str) and value.lstrip("'").startswith(FORMULA_START):
        return "'" + value
    return value


def guard_text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with :func:`guard_formula` applied to every text (object or string)
    column; number, date and boolean columns are left alone, so ``-3.5`` stays a number.
    The frame given is not changed."""
    text_columns = [
        c
        for c in frame.columns
        if pd.api.types.is_object_dtype(frame[c]) or pd.api.types.is_string_dtype(frame[c])
    ]
    if not text_columns:
        return frame
    guarded = frame.copy()
    for column in text_columns:
        guarded[column] = guarded[column].map(guard_formula)
    return guarded
