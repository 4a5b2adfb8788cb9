"""Why a worker got their stars and grade: the parts of :func:`geo.assess.assess`'s score
that its frame does not carry (the component shares, the grade caps, the logs a month
requires), rebuilt from its columns and the settings, so that a page or a briefing can
explain a result without computing a second one.

``tests/test_assess_detail.py`` checks on the demo that :func:`geo.assess.star_score` of
:func:`score_components` gives back every score of :func:`geo.assess.assess`, so this module
cannot drift from the assessment unnoticed.
"""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd

from geo.assess import month_bounds, month_weeks, required_logs
from geo.settings import AnalyticsSettings, Grades, StarWeights, default_settings

#: The star score's components, in the order of :class:`geo.settings.StarWeights`.
COMPONENTS: tuple[str, ...] = tuple(StarWeights.model_fields)


def _share(got: pd.Series, need: int) -> pd.Series:
    """min(1, got / need); 1 when nothing is required (as in :func:`geo.assess.assess`)."""
    if need <= 0:
        return pd.Series(1.0, index=got.index)
    return (got.astype(float) / need).clip(upper=1.0)


def score_components(
    frame: pd.DataFrame, settings: AnalyticsSettings | None = None
) -> pd.DataFrame:
    """Each worker's component shares in [0, 1] (NaN: no value, left out of the score).

    Parameters
    ----------
    frame
        :func:`geo.assess.assess`'s result (its columns ``disputes``, ``hazards``,
        ``log_weeks``, ``log_weeks_met``, ``two_patrol_share``, ``on_time_rate``,
        ``rework_rate``).
    settings
        The settings the assessment used; default :func:`geo.settings.default_settings`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COMPONENTS`, aligned with ``frame``.
    """
    q = (settings or default_settings()).quotas
    weeks = frame["log_weeks"].astype(float)
    return pd.DataFrame(
        {
            "incident_quota": (
                _share(frame["disputes"], q.disputes_per_month)
                + _share(frame["hazards"], q.hazards_per_month)
            )
            / 2,
            "log_quota": (frame["log_weeks_met"].astype(float) / weeks).where(weeks > 0),
            "two_patrol": frame["two_patrol_share"].astype(float),
            "on_time": frame["on_time_rate"].astype(float),
            "no_rework": 1.0 - frame["rework_rate"].astype(float),
        },
        index=frame.index,
    )


def score_breakdown(components: pd.Series, weights: StarWeights) -> pd.DataFrame:
    """One worker's score, part by part: for each component its share ``value``, its
    ``weight``, whether it ``counted`` (had a value), the renormalised weight ``share_of_score``
    (wᵢ / Σ wⱼ over the counted ones) and the ``points`` it adds to the base 1
    (4 × wᵢ·xᵢ / Σ wⱼ). ``1 + points.sum()`` is the score.
    """
    w = pd.Series(weights.model_dump(), dtype=float)
    x = components.reindex(w.index).astype(float)
    counted = x.notna() & (w > 0)
    den = float(w[counted].sum())
    norm = (w / den).where(counted, 0.0) if den > 0 else w * 0.0
    return pd.DataFrame(
        {
            "value": x,
            "weight": w,
            "counted": counted,
            "share_of_score": norm,
            "points": (4.0 * norm * x.fillna(0.0)).where(counted, 0.0),
        }
    )


def grade_caps(n: int, grades: Grades | None = None) -> dict[str, int]:
    """Most workers that may be graded ``good`` and ``fairly_good`` among ``n`` (the
    ``floor(cap × n)`` of :func:`geo.assess.assign_grades`)."""
    g = grades or Grades()
    return {
        "good": math.floor(g.good_cap * n + 1e-9),
        "fairly_good": math.floor(g.fairly_good_cap * n + 1e-9),
    }


def required_logs_in_month(
    month: dt.date | str, grid_kind: str, settings: AnalyticsSettings | None = None
) -> int:
    """Work logs a worker of a ``grid_kind`` (``urban`` / ``village``) grid needs over the
    weeks assessed in ``month`` (each week's :func:`geo.assess.required_logs`, summed)."""
    q = (settings or default_settings()).quotas
    quota = q.village_logs_per_week if grid_kind == "village" else q.urban_logs_per_week
    first, nxt = month_bounds(month)
    return sum(required_logs(m, quota, q.workdays_per_week) for m in month_weeks(first, nxt))
