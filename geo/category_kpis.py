"""Incident KPIs of one category (按类别的事件指标): the figures of :func:`geo.kpis.kpis` for
the incidents of one category or subcategory, from the same SQL statement.

``store.kpi_sql.KPI_FIGURES`` already counts every figure per subcategory (its second
grouping set); :func:`geo.kpis.kpis` keeps only the reported counts of those rows. Here
the rows of the chosen category are summed instead, and the rates derived from the sums
by :meth:`geo.kpis.KpiFigures.from_row`, so the definitions stay those of
:mod:`geo.kpis`:

* every count is additive over subcategories, so a category's count is exact;
* the mean handling time is the closed-weighted mean of the subcategories' means (exact);
* the median is exact for a subcategory; for a top-level category spanning several
  subcategories medians do not combine, so it is None unless a single subcategory has
  closures.

Uses :mod:`geo.kpis`' SQL runner (``_params``, ``_figures_frame``): when that changes
shape, ``tests/test_category_kpis.py`` (figures summed over every category equal the
unit's totals) fails.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from geo import kpis as kp
from geo.settings import AnalyticsSettings, default_settings


@dataclass(frozen=True)
class CategoryKpis:
    """The figures of one category in a period and in the previous one."""

    category: str
    period: kp.Period
    previous_period: kp.Period
    figures: kp.KpiFigures
    previous: kp.KpiFigures


def _sum_rows(rows: pd.DataFrame) -> dict[str, Any] | None:
    if rows.empty:
        return None
    out: dict[str, Any] = {k: int(rows[k].sum()) for k in kp._COUNTS}
    closed = rows["closed"].to_numpy(dtype=float)
    means = rows["mean_hours"].to_numpy(dtype=float)
    has = closed > 0
    out["mean_hours"] = (
        float(np.sum(means[has] * closed[has]) / closed[has].sum()) if has.any() else None
    )
    out["median_hours"] = float(rows.loc[has, "median_hours"].iloc[0]) if has.sum() == 1 else None
    return out


def category_kpis(
    conn: Connection,
    *,
    unit: str | None = None,
    start: dt.date | str,
    end: dt.date | str,
    category: str,
    as_of: dt.datetime | dt.date | str | None = None,
    settings: AnalyticsSettings | None = None,
    tz: str | None = None,
) -> CategoryKpis:
    """The KPIs of the incidents of ``category`` (a 2-digit category or 4-digit
    subcategory) of ``unit`` in ``[start, end)``, and of the previous period; arguments as
    for :func:`geo.kpis.kpis`. The repeat rate is left out (None)."""
    if not category.isdigit() or len(category) not in (2, 4):
        raise ValueError(f"category must be a 2- or 4-digit code, got {category!r}")
    s = settings or default_settings()
    period = kp.make_period(start, end, as_of, tz=tz)
    level = kp.unit_level(unit)
    params = kp._params(period, kp._filters(unit), level, s, repeats=False)
    frame = kp._figures_frame(conn, params, repeats=False)
    rows = frame[frame["category_code"].notna()]
    rows = rows[rows["category_code"].astype(str).str.startswith(category)]

    def figures(p: int) -> kp.KpiFigures:
        row = _sum_rows(rows[rows["period"] == p])
        if row is not None:
            row["repeats"] = None
        return kp.KpiFigures.from_row(row)

    return CategoryKpis(category, period, period.previous(), figures(0), figures(1))
