"""What the 简报 (briefing) page holds, without Streamlit: its filter state (jurisdiction and
period) and how that state reads from and writes to the URL.

URL: ``street`` (a street code, or ``all`` for the whole district), ``from`` and ``to``
(local dates, both included, as on the other pages).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from dashboard.url_state import BadParam, Reader, date, read_params

#: ``street`` value of the whole district in the URL.
DISTRICT = "all"


@dataclass(frozen=True)
class BriefingQuery:
    """Jurisdiction (``street`` None: the whole district) and period, both days included."""

    street: str | None
    start: dt.date
    end: dt.date

    @property
    def end_exclusive(self) -> dt.date:
        """The day after ``end``: the open end the analyses take."""
        return self.end + dt.timedelta(days=1)


def default_query(
    latest: dt.date | None, streets: Collection[str], *, today: dt.date | None = None
) -> BriefingQuery:
    """Month to date up to the latest incident (today when there is none); the only street
    when there is one, else the whole district."""
    end = latest or today or dt.date.today()
    street = next(iter(streets)) if len(streets) == 1 else None
    return BriefingQuery(street, end.replace(day=1), end)


def parse_query(
    params: Mapping[str, str], *, defaults: BriefingQuery, streets: Collection[str]
) -> tuple[BriefingQuery, list[BadParam]]:
    """The state in URL parameters; an invalid value falls back to its default and is
    reported (never an exception). A period whose end comes before its start is reported
    and replaced by the default period."""

    def scope(raw: str) -> str | None:
        value = raw.strip()
        if value == DISTRICT:
            return None
        if value not in streets:
            raise ValueError(raw)
        return value

    readers: tuple[Reader, ...] = (
        ("street", "street", scope, defaults.street or DISTRICT),
        ("from", "start", date, defaults.start.isoformat()),
        ("to", "end", date, defaults.end.isoformat()),
    )
    fields, bad = read_params(params, readers)
    street = fields.get("street", defaults.street)
    start, end = fields.get("start", defaults.start), fields.get("end", defaults.end)
    if end < start:
        bad.append(BadParam("to", end.isoformat(), defaults.end.isoformat()))
        start, end = defaults.start, defaults.end
    return BriefingQuery(street, start, end), bad


def to_params(q: BriefingQuery) -> dict[str, str]:
    """The URL parameters of ``q`` (read back by :func:`parse_query`)."""
    return {
        "street": q.street or DISTRICT,
        "from": q.start.isoformat(),
        "to": q.end.isoformat(),
    }
