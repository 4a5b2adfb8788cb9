"""Moments from what people type: a date means local midnight (Asia/Shanghai unless the
settings say otherwise), never the database session's time zone.

A street leader asking for "2026-11-01 to 2026-12-01" means November in Beijing time; cast
to ``timestamptz`` by PostgreSQL the same text would be midnight in whatever zone the
session runs in (UTC on most servers), eight hours off. Every analysis converts its bounds
here before they reach a query.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from store.settings import get_settings


def as_instant(
    value: dt.date | dt.datetime | str | None, tz: str | None = None
) -> dt.datetime | None:
    """``value`` as a time-zone-aware moment: dates and naive times read in ``tz`` (default:
    the configured zone), aware times unchanged, None kept.

    Raises
    ------
    ValueError
        For text that is neither ``YYYY-MM-DD`` nor an ISO 8601 time, with the value.
    """
    if value is None:
        return None
    zone = ZoneInfo(tz or get_settings().timezone)
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"不是有效日期或时间（如 2026-11-01）/ not a date or time, e.g. 2026-11-01: "
                f"{value!r}"
            ) from None
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)
