"""User-facing text: simplified Chinese first, English available (``GRIDONE_LANGUAGE``).

Each page keeps its text in ``dashboard/texts/<page>.py``; this module merges them and refuses
a key defined twice (two pages silently overriding each other's words)."""

from __future__ import annotations

from collections.abc import Mapping

from dashboard.texts import (
    assess,
    auth,
    briefing,
    common,
    downloads,
    hotspots,
    incidents,
    overview,
    patrol,
)
from store.vocab import Lang


def _merge(*parts: Mapping[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    merged: dict[str, tuple[str, str]] = {}
    for part in parts:
        twice = merged.keys() & part.keys()
        if twice:
            raise ValueError(f"text keys defined twice: {sorted(twice)}")
        merged.update(part)
    return merged


TEXT: dict[str, tuple[str, str]] = _merge(
    common.TEXT,
    downloads.TEXT,
    assess.TEXT,
    auth.TEXT,
    briefing.TEXT,
    hotspots.TEXT,
    incidents.TEXT,
    overview.TEXT,
    patrol.TEXT,
)


def t(key: str, lang: Lang = "zh", **values: object) -> str:
    """The text for ``key`` in ``lang``, formatted with ``values``."""
    zh, en = TEXT[key]
    return (zh if lang == "zh" else en).format(**values)
