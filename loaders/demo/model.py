"""The generator's result: one frame per table of :mod:`store.models`, plus the truth."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields

import pandas as pd

#: Tables in foreign-key-safe insert order.
TABLE_ORDER = (
    "admin_unit",
    "staff",
    "grid",
    "staff_assignment",
    "building",
    "housing_unit",
    "housing_special_count",
    "key_place",
    "facility",
    "road",
    "incident",
    "incident_transition",
    "patrol_fix",
    "patrol",
    "work_log",
)


@dataclass
class DemoData:
    """Generated demo data, one (Geo)DataFrame per table, columns named as the table's
    writable columns (generated and trigger-derived columns left out), geometries in
    EPSG:4490, timestamps time-zone aware, explicit integer ids from 1.

    ``truth`` records what was planted (hotspots, rising area, new spot, skipped patrols,
    never-visited blocks…), the counts, the seed, the scale and the periods; it is plain
    JSON-serialisable data.
    """

    admin_unit: pd.DataFrame
    staff: pd.DataFrame
    grid: pd.DataFrame
    staff_assignment: pd.DataFrame
    building: pd.DataFrame
    housing_unit: pd.DataFrame
    housing_special_count: pd.DataFrame
    key_place: pd.DataFrame
    facility: pd.DataFrame
    road: pd.DataFrame
    incident: pd.DataFrame
    incident_transition: pd.DataFrame
    patrol_fix: pd.DataFrame
    patrol: pd.DataFrame
    work_log: pd.DataFrame
    truth: dict = field(default_factory=dict)

    def tables(self) -> Iterator[tuple[str, pd.DataFrame]]:
        """``(table name, frame)`` pairs in foreign-key-safe insert order."""
        for name in TABLE_ORDER:
            yield name, getattr(self, name)

    def __post_init__(self) -> None:
        names = [f.name for f in fields(self) if f.name != "truth"]
        if tuple(names) != TABLE_ORDER:
            raise AssertionError("DemoData fields and TABLE_ORDER disagree")
