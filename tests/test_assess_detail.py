"""geo.assess_detail rebuilds what geo.assess's score is made of: on the demo street, the
star score of the rebuilt components is geo's score for every worker, in months with and
without two-patrol compliance; the logs a month requires bound what meeting every week
takes."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from geo.assess import assess, star_score, stars_of
from geo.assess_detail import (
    COMPONENTS,
    grade_caps,
    required_logs_in_month,
    score_breakdown,
    score_components,
)
from geo.settings import AnalyticsSettings, Quotas, StarWeights, default_settings

DEMO_STREET = "370214900000"


@pytest.mark.parametrize(
    ("month", "patrols", "settings"),
    [
        ("2026-09", None, default_settings()),
        ("2026-11", "compute", default_settings()),
        (
            "2026-10",
            None,
            AnalyticsSettings(
                stars=StarWeights(incident_quota=0.5, no_rework=0.0),
                quotas=Quotas(disputes_per_month=1, hazards_per_month=3),
            ),
        ),
    ],
)
def test_components_give_back_geo_scores(
    demo_engine: Engine, month: str, patrols: str | None, settings: AnalyticsSettings
) -> None:
    with demo_engine.connect() as conn:
        f = assess(conn, street=DEMO_STREET, month=month, patrol_share=patrols, settings=settings)
    assert len(f) > 10
    comps = score_components(f, settings)
    assert list(comps.columns) == list(COMPONENTS)
    assert ((comps >= 0) & (comps <= 1) | comps.isna()).all().all()
    assert comps["two_patrol"].notna().all() == (patrols is not None)
    score = star_score(comps, settings.stars)
    assert np.allclose(score.round(settings.grades.score_decimals), f["score"], equal_nan=True)
    assert (stars_of(score) == f["stars"]).all()
    for i in range(len(f)):
        parts = score_breakdown(comps.iloc[i], settings.stars)
        assert 1 + parts["points"].sum() == pytest.approx(score.iloc[i])
        assert parts.loc[parts["counted"], "share_of_score"].sum() == pytest.approx(1.0)
    for g, cap in grade_caps(len(f), settings.grades).items():
        assert (f["grade"] == g).sum() <= cap
    need = {k: required_logs_in_month(month, k, settings) for k in ("urban", "village")}
    met = f[f["log_quota_met"]]
    assert (met["logs"].to_numpy() >= met["grid_kind"].map(need).to_numpy(dtype=int)).all()


def test_breakdown_leaves_out_what_has_no_value() -> None:
    comps = pd.Series(
        {
            "incident_quota": 0.5,
            "log_quota": 1.0,
            "two_patrol": np.nan,
            "on_time": 1.0,
            "no_rework": 0.8,
        }
    )
    parts = score_breakdown(comps, StarWeights())
    assert not parts.loc["two_patrol", "counted"] and parts.loc["two_patrol", "points"] == 0
    assert parts.loc["log_quota", "share_of_score"] == pytest.approx(0.15 / 0.75)
    expected = star_score(comps.to_frame().T, StarWeights()).iloc[0]
    assert 1 + parts["points"].sum() == pytest.approx(expected)


def test_required_logs_follow_holidays_and_kind() -> None:
    # October 2026: National Day week (Oct 1-8 holidays) needs fewer logs
    urban = required_logs_in_month("2026-10", "urban")
    assert urban < 5 * 5 and required_logs_in_month(dt.date(2026, 10, 9), "village") < urban
    assert (
        required_logs_in_month(
            "2026-06", "urban", AnalyticsSettings(quotas=Quotas(urban_logs_per_week=0))
        )
        == 0
    )
