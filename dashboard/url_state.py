"""Page state in the URL, shared by every page: read ``st.query_params`` values into typed
fields, falling back to defaults and reporting what could not be used (never an exception),
so that a shared link reproduces a view and a mistyped one still opens.

Pure functions; a page calls :func:`read_params` with its readers, shows each
:class:`BadParam` as a warning, and writes its state back with ``st.query_params``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class BadParam:
    """A URL parameter that could not be used, and what was used instead."""

    key: str
    value: str
    used: str


#: One URL parameter: (URL key, field name, parser raising ValueError, default as text).
Reader = tuple[str, str, Callable[[str], Any], str]


def read_params(
    params: Mapping[str, str], readers: Collection[Reader]
) -> tuple[dict[str, Any], list[BadParam]]:
    """The fields that ``params`` sets validly, and the parameters that were not used.

    A key absent from ``params`` is left out of the fields (the caller's default stands); a
    value its parser refuses is reported with the default's text. Unknown keys are ignored.
    """
    fields: dict[str, Any] = {}
    bad: list[BadParam] = []
    for key, name, read, used in readers:
        raw = params.get(key)
        if raw is None:
            continue
        try:
            fields[name] = read(raw)
        except ValueError:
            bad.append(BadParam(key, raw, used))
    return fields, bad


def date(text: str) -> dt.date:
    """An ISO date (``2026-11-20``); ValueError otherwise."""
    return dt.date.fromisoformat(text.strip())


def choice(options: Collection[str]) -> Callable[[str], str]:
    """A parser accepting only ``options``."""

    def parse(raw: str) -> str:
        if raw.strip() not in options:
            raise ValueError(raw)
        return raw.strip()

    return parse


def int_choice(options: Collection[int]) -> Callable[[str], int]:
    """A parser accepting only the integers ``options``."""

    def parse(raw: str) -> int:
        value = int(raw)
        if value not in options:
            raise ValueError(raw)
        return value

    return parse


def flag(raw: str) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off``; ValueError otherwise."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(raw)
