"""Cached loaders of the 考核 (assessment) page: :func:`geo.assess.assess`, the grids' KPIs
(:func:`geo.kpis.kpis_by_unit`) and how many of a month's working days have patrol tracks,
each cached by its plain arguments (street, month, whether patrols count)."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from dashboard.data import scoped_cache, scoped_conn
from geo import assess as geo_assess
from geo.kpis import kpis_by_unit, make_period
from geo.period import as_instant
from store import queries, workcal
from store.vocab import Lang


@scoped_cache
def assessment(street: str | None, month: str, patrols: bool, lang: Lang) -> pd.DataFrame:
    """:func:`geo.assess.assess` of ``street`` for ``month`` (``"2026-10"``), with
    two-patrol compliance computed from the tracks when ``patrols`` (else left out of the
    score), grade labels in the dashboard's language."""
    with scoped_conn() as conn:
        return geo_assess.assess(
            conn,
            street=street,
            month=month,
            patrol_share="compute" if patrols else None,
            lang=lang,
        )


@scoped_cache
def grid_kpis(street: str | None, month: str) -> pd.DataFrame:
    """Every grid's incident KPIs for ``month`` (:func:`geo.kpis.kpis_by_unit`, grid level,
    without the previous period and repeats — as the assessment reads them), by grid code."""
    m0, m1 = geo_assess.month_bounds(month)
    with scoped_conn() as conn:
        return kpis_by_unit(
            conn, "grid", m0, m1, within=street, previous=False, repeats=False
        ).current


@scoped_cache
def track_days(street: str | None, month: str) -> tuple[int, int]:
    """(working days, working days with any patrol GPS fix in the street) of the days
    :func:`geo.assess.assess` judges the two-patrol rule on: the month up to its as-of
    instant."""
    m0, m1 = geo_assess.month_bounds(month)
    last = min(m1, make_period(m0, m1).as_of.date())
    days = [
        m0 + dt.timedelta(days=k)
        for k in range((last - m0).days)
        if workcal.is_workday(m0 + dt.timedelta(days=k))
    ]
    with scoped_conn() as conn:
        covered = sum(
            queries.patrol_fixes_exist(
                conn,
                street_code=street,
                since=as_instant(d),
                until=as_instant(d + dt.timedelta(days=1)),
            )
            for d in days
        )
    return len(days), covered


@scoped_cache
def community_names(street: str | None) -> dict[str, str]:
    """Community code → name, of a street or all."""
    with scoped_conn() as conn:
        units = queries.admin_units(conn, "community", street_code=street)
    return dict(zip(units["code"], units["name"], strict=True))
