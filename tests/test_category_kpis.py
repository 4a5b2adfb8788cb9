"""KPIs of one category (geo/category_kpis.py) on the demo street: summed over every
top-level category they give the unit's own figures from geo.kpis (so the per-category
rows are read right), and each category's reported count and overdue cases are those of
the unit's category table and overdue list."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from geo.category_kpis import category_kpis
from geo.kpis import kpis

STREET = "370214900000"
ADDITIVE = (
    "reported", "reported_closed", "awaiting_review", "due", "due_on_time", "open_overdue",
    "closed", "closed_grid", "closed_community", "closed_street", "closed_department",
    "reworked", "extended", "returned", "major", "major_in_time",
)  # fmt: skip


@pytest.mark.parametrize("unit", [STREET, STREET[:9] + "004"])
def test_categories_add_up_to_the_unit(demo_engine: Engine, unit: str) -> None:
    start, end = "2026-08-01", "2026-11-01"
    with demo_engine.connect() as conn:
        report = kpis(conn, unit=unit, start=start, end=end)
        tops = report.categories[report.categories["level"] == "category"]["code"].tolist()
        every = [category_kpis(conn, unit=unit, start=start, end=end, category=c) for c in tops]
        sub = category_kpis(conn, unit=unit, start=start, end=end, category="0301")
    assert len(tops) > 3
    for which in ("figures", "previous"):
        total = getattr(report, which)
        parts = [getattr(c, which) for c in every]
        for k in ADDITIVE:
            assert sum(getattr(p, k) for p in parts) == getattr(total, k), (which, k)
        closed = sum(p.closed for p in parts)
        mean = sum(p.mean_hours * p.closed for p in parts if p.closed) / closed
        assert mean == pytest.approx(total.mean_hours, rel=1e-9)
    cats = report.categories.set_index("code")
    for c in every:
        assert c.figures.reported == cats.loc[c.category, "reported"]
        assert c.previous.reported == cats.loc[c.category, "previous"]
        overdue = report.overdue["category_code"].str.startswith(c.category)
        assert c.figures.open_overdue == int(overdue.sum())
        f = c.figures
        assert f.on_time_rate == (f.due_on_time / f.due if f.due else None)
    assert sub.figures.reported == cats.loc["0301", "reported"]
    assert sub.figures.closed == 0 or sub.figures.median_hours is not None


def test_bad_category_is_refused(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn, pytest.raises(ValueError, match="category must be"):
        category_kpis(conn, unit=STREET, start="2026-08-01", end="2026-09-01", category="3")
