"""Monthly assessment of grid workers (网格员月度考核): quotas, the two-patrol rule, the
quality of the handling in their grids, a 1–5 star score and a capped grade.

Measures (thresholds in :class:`geo.settings.AnalyticsSettings`):

* **Incident quota** (事件上报): incidents the worker reported (``incident.reporter_id``) in
  the month whose top-level category is disputes (矛盾纠纷, ``01``) and safety hazards
  (安全隐患, ``02``); met with ≥ 2 of each.
* **Log quota** (民情日志): the worker's work logs (both kinds) per week, Monday to Sunday.
  The month's weeks are those whose Thursday falls in it (the ISO 8601 rule), so every week
  is assessed in exactly one month; a week's logs count whole, even the days in the next
  or previous month. A week needs 5 logs in an urban (community) grid and 2 in a village
  grid; a week with fewer working days (public holidays, ``store.workcal``) needs
  ``ceil(quota × working days / 5)``, never more than the quota; a week without working
  days is not assessed. Met when every assessed week is.
* **Two-patrol compliance** (一日两巡): the share of the month's working days on which the
  worker's grids met the rule (:func:`geo.coverage.patrol_compliance`, with the rule of
  :class:`geo.settings.TwoPatrolRule`); ``patrol_share="compute"`` computes it, or it is
  passed in. Without it the column is empty and the score leaves it out (below), so the
  stars measure what is known rather than punish a missing input.
* **On-time closure** (按期办结率) and **rework rate** (返工率) of the incidents in the
  worker's grid(s), as defined in :mod:`geo.kpis` for the month (cases due in the month;
  incidents reported in the month), summed over the grids the worker served in it.

**Score** (综合得分, 1–5): each component is a share in [0, 1] — incident quota
``(min(1, disputes/2) + min(1, hazards/2)) / 2``, weeks at log quota ÷ weeks assessed,
two-patrol share, on-time closure rate, 1 − rework rate — and
``score = 1 + 4 × Σ wᵢ·xᵢ / Σ wᵢ`` over the components that have a value (no case due,
no patrol data: left out, weights renormalised). Default weights: incident quota 0.25, logs
0.15, two patrols 0.25, on time 0.25, no rework 0.10. **Stars** = the score rounded half up
to a whole number, 1–5.

**Grades** (等次) 好 / 较好 / 一般: 好 needs ≥ 4 stars (and, by default, no major incident
reported late by the worker that month), 较好 ≥ 3 stars; at most ``floor(20 % × workers)``
are 好 and ``floor(30 % × workers)`` 较好 (caps are ceilings, so small teams may have no
好: 4 workers → 0). Workers are ranked by score rounded to 2 decimals, then — between
equal scores — by the number of incidents they reported in the month (实绩, the work
actually done). Workers equal on both are *tied* and always get the same grade: going down
the ranking, a tied group that would overflow a cap misses that grade as a whole (it may
still get the next one), and so does every worker below it. Ties are never broken by name,
code or input order.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sqlalchemy import Connection

from geo.kpis import kpis_by_unit, make_period, unit_level
from geo.settings import AnalyticsSettings, Grades, StarWeights, default_settings
from store import kpi_sql, workcal

#: Grade codes, best first, with (中文, English) labels.
GRADES: dict[str, tuple[str, str]] = {
    "good": ("好", "Good"),
    "fairly_good": ("较好", "Fairly good"),
    "average": ("一般", "Average"),
}

#: Columns of :func:`assess`, with (中文, English) labels.
COLUMNS: dict[str, tuple[str, str]] = {
    "worker_id": ("人员ID", "Worker id"),
    "worker_code": ("人员编号", "Worker code"),
    "worker_name": ("姓名", "Name"),
    "street_code": ("街道编码", "Street code"),
    "grids": ("负责网格", "Grids"),
    "grid_kind": ("网格类型", "Grid kind"),
    "reported": ("上报事件数", "Incidents reported"),
    "disputes": ("上报矛盾纠纷数", "Disputes reported"),
    "hazards": ("上报安全隐患数", "Hazards reported"),
    "incident_quota_met": ("事件上报达标", "Incident quota met"),
    "logs": ("民情日志数", "Work logs"),
    "log_weeks": ("考核周数", "Weeks assessed"),
    "log_weeks_met": ("日志达标周数", "Weeks at log quota"),
    "log_quota_met": ("日志达标", "Log quota met"),
    "two_patrol_share": ("一日两巡达标率", "Two-patrol compliance"),
    "due": ("网格到期事件数", "Cases due in grid"),
    "due_on_time": ("网格按期办结数", "Closed on time in grid"),
    "on_time_rate": ("网格按期办结率", "On-time closure rate in grid"),
    "grid_reported": ("网格上报事件数", "Incidents in grid"),
    "reworked": ("网格返工数", "Reworked in grid"),
    "rework_rate": ("网格返工率", "Rework rate in grid"),
    "late_majors": ("重大事件超时上报数", "Majors reported late"),
    "score": ("综合得分", "Score"),
    "stars": ("星级", "Stars"),
    "grade": ("等次", "Grade"),
    "grade_label": ("等次名称", "Grade label"),
}


# --- months and weeks --------------------------------------------------------------------


def month_bounds(month: dt.date | str) -> tuple[dt.date, dt.date]:
    """First day of ``month`` (a date in it, ``"2026-03"`` or ``"2026-03-01"``) and of the
    next month."""
    if isinstance(month, dt.datetime):
        month = month.date()
    if isinstance(month, str):
        try:
            month = dt.date.fromisoformat(month if len(month) > 7 else month + "-01")
        except ValueError:
            raise ValueError(f"month must look like 2026-03, got {month!r}") from None
    first = month.replace(day=1)
    nxt = (first + dt.timedelta(days=32)).replace(day=1)
    return first, nxt


def month_weeks(first: dt.date, nxt: dt.date) -> list[dt.date]:
    """Mondays of the weeks assessed in the month ``[first, nxt)``: those whose Thursday
    lies in it."""
    thursday = first + dt.timedelta(days=(3 - first.weekday()) % 7)
    out = []
    while thursday < nxt:
        out.append(thursday - dt.timedelta(days=3))
        thursday += dt.timedelta(days=7)
    return out


def required_logs(monday: dt.date, quota: int, workdays_per_week: int = 5) -> int:
    """Logs a week needs: the quota, scaled down (rounded up) in weeks with fewer working
    days than usual; 0 in a week without one."""
    workdays = sum(workcal.is_workday(monday + dt.timedelta(days=k)) for k in range(7))
    return min(quota, math.ceil(quota * workdays / workdays_per_week))


# --- score and grades ----------------------------------------------------------------------


def star_score(components: pd.DataFrame, weights: StarWeights) -> pd.Series:
    """Score 1–5 from components in [0, 1] (columns named as the weights; NaN = no value,
    left out with the weights renormalised). NaN when no component has a value."""
    w = pd.Series(weights.model_dump(), dtype=float)
    x = components[list(w.index)].astype(float)
    have = x.notna()
    num = (x.fillna(0.0) * w).sum(axis=1)
    den = (have * w).sum(axis=1)
    return (1.0 + 4.0 * num / den).where(den > 0)


def stars_of(score: pd.Series) -> pd.Series:
    """Whole stars 1–5: the score rounded half up."""
    return np.floor(score + 0.5).clip(1, 5).astype("Int64")


def assign_grades(
    scores: ArrayLike,
    *,
    tiebreak: ArrayLike | None = None,
    good_ok: ArrayLike | None = None,
    fairly_good_ok: ArrayLike | None = None,
    grades: Grades | None = None,
) -> NDArray[np.str_]:
    """Grades (``good`` / ``fairly_good`` / ``average``) under the caps, ties kept together.

    Parameters
    ----------
    scores
        One score per worker (NaN: not gradable, ``average``). Compared rounded to
        ``grades.score_decimals``.
    tiebreak
        A second number compared, higher first, between workers of equal rounded score
        (NaN lowest); default none. Workers equal on both are tied.
    good_ok, fairly_good_ok
        Whether each worker may be graded 好 / 较好 at all (stars, late majors); default
        all may.
    grades
        Caps and rounding; default :class:`geo.settings.Grades`.

    Returns
    -------
    numpy.ndarray
        Grade codes in the input order. At most ``floor(good_cap × n)`` are ``good`` and
        ``floor(fairly_good_cap × n)`` ``fairly_good``; tied workers of equal eligibility
        get equal grades; among workers of equal eligibility a better (score, tiebreak)
        never gets a lower grade; the result does not depend on the input order. Going
        down the ranking, the first tied group that would overflow a grade's cap misses
        that grade as a whole, and so does everyone below it.
    """
    g = grades or Grades()
    s = np.round(np.asarray(scores, dtype=float), g.score_decimals)
    n = s.size
    t = np.zeros(n) if tiebreak is None else np.asarray(tiebreak, dtype=float).copy()
    t[np.isnan(t)] = -np.inf
    ok_good = np.ones(n, bool) if good_ok is None else np.asarray(good_ok, bool)
    ok_fair = np.ones(n, bool) if fairly_good_ok is None else np.asarray(fairly_good_ok, bool)
    gradable = ~np.isnan(s)
    ok_good = ok_good & ok_fair & gradable
    ok_fair = ok_fair & gradable
    out = np.full(n, "average", dtype=object)
    caps = {
        "good": math.floor(g.good_cap * n + 1e-9),
        "fairly_good": math.floor(g.fairly_good_cap * n + 1e-9),
    }
    # distinct (score, tiebreak) pairs, best first
    pairs = sorted({(float(a), float(b)) for a, b in zip(s[gradable], t[gradable], strict=True)})
    for grade, ok in (("good", ok_good), ("fairly_good", ok_fair)):
        used = 0
        for a, b in reversed(pairs):
            group = (s == a) & (t == b) & ok & (out == "average")
            k = int(group.sum())
            if k == 0:
                continue
            if used + k > caps[grade]:
                break  # this tied group and every one below it miss this grade
            out[group] = grade
            used += k
    return out.astype(str)


# --- the assessment ---------------------------------------------------------------------


def _read(conn: Connection, sql: Any, params: Mapping[str, Any]) -> pd.DataFrame:
    result = conn.execute(sql, dict(params))
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


#: What `assess` accepts as two-patrol compliance (see its docstring).
PatrolShares: TypeAlias = Mapping[Any, float] | pd.Series | pd.DataFrame | Literal["compute"] | None


def _patrol(
    conn: Connection,
    frame: pd.DataFrame,
    patrol_share: PatrolShares,
    *,
    street: str | None,
    days: tuple[dt.date, dt.date],
    settings: AnalyticsSettings,
    tz: str | None,
) -> Any:
    """Two-patrol share per worker row (NaN where unknown)."""
    if patrol_share is None:
        return np.nan
    if isinstance(patrol_share, str):
        if patrol_share != "compute":
            raise ValueError(
                f"patrol_share must be a mapping, a frame or 'compute', got {patrol_share!r}"
            )
        from geo.coverage import CoverageParams, patrol_compliance

        patrol_share = patrol_compliance(
            conn,
            days[0],
            days[1],
            street=street,
            params=CoverageParams(rule=settings.two_patrol),
            timezone=tz,
        )
    shares: dict[Any, float]
    if isinstance(patrol_share, pd.DataFrame):
        missing = {"worker_id", "share"} - set(patrol_share.columns)
        if missing:
            raise ValueError(
                f"a patrol frame needs the columns worker_id and share "
                f"(geo.coverage.patrol_compliance); it lacks {sorted(missing)}"
            )
        shares = dict(zip(patrol_share["worker_id"], patrol_share["share"], strict=True))
    elif isinstance(patrol_share, (Mapping, pd.Series)):
        shares = dict(patrol_share.items())
    else:
        raise TypeError(f"patrol_share cannot be a {type(patrol_share).__name__}")
    bad = {k: v for k, v in shares.items() if not (pd.isna(v) or 0.0 <= float(v) <= 1.0)}
    if bad:
        raise ValueError(f"two-patrol shares must lie in [0, 1]; got {bad}")
    by_code = frame["worker_code"].map(lambda c: shares.get(c, np.nan))
    by_id = frame["worker_id"].map(lambda i: shares.get(i, np.nan))
    return by_code.fillna(by_id).astype(float)


def assess(
    conn: Connection,
    *,
    street: str | None = None,
    month: dt.date | str,
    patrol_share: PatrolShares = None,
    settings: AnalyticsSettings | None = None,
    tz: str | None = None,
    lang: Literal["zh", "en"] = "zh",
) -> pd.DataFrame:
    """Assess every grid worker of ``street`` (default: all) for ``month``.

    Parameters
    ----------
    conn
        A connection to the store.
    street
        Street code (12 digits); None: every street.
    month
        The month: a date in it, ``"2026-03"`` or ``"2026-03-01"``.
    patrol_share
        Two-patrol compliance (share of the month's working days on which the rule was
        met): ``"compute"`` to have :func:`geo.coverage.patrol_compliance` work it out from
        the GPS tracks (seconds per street-month); its frame (``worker_id``, ``share``)
        when already computed; a mapping worker code or id → share; None to leave it out
        of the score.
    settings
        Thresholds; default :func:`geo.settings.default_settings`.
    tz
        Local time zone; default ``GRIDONE_TIMEZONE``.
    lang
        Language of ``grade_label``.

    Returns
    -------
    pandas.DataFrame
        One row per grid worker active in the month, best score first (ties by worker
        code); the columns of :data:`COLUMNS` (labels there).
    """
    s = settings or default_settings()
    if street is not None and unit_level(street) != "street":
        raise ValueError(f"street must be a street code like 370214900000, got {street!r}")
    m0, m1 = month_bounds(month)
    period = make_period(m0, m1, tz=tz)
    q = s.quotas

    rows = _read(conn, kpi_sql.ASSESS_WORKERS, {"d0": m0, "d1": m1, "street": street})
    if rows.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    workers = (
        rows.groupby(["worker_id", "worker_code", "worker_name", "street_code"], sort=False)
        .agg(
            grids=("grid_code", lambda c: ",".join(sorted(x for x in c if isinstance(x, str)))),
            village=("grid_kind", lambda k: bool(len(k.dropna())) and (k == "village").all()),
        )
        .reset_index()
    )
    workers["grid_kind"] = np.where(workers["village"], "village", "urban")
    quota = np.where(workers["village"], q.village_logs_per_week, q.urban_logs_per_week)

    reports = _read(
        conn,
        kpi_sql.ASSESS_REPORTS,
        {
            "m0": period.start_ts,
            "m1": period.end_ts,
            "street": street,
            "dispute": q.dispute_category,
            "hazard": q.hazard_category,
            "major_severity": s.reporting.major_severity,
            "max_delay_s": s.reporting.max_delay_h * 3600.0,
        },
    )
    out = workers.merge(reports, on="worker_id", how="left")
    for c in ("reported", "disputes", "hazards", "late_majors"):
        out[c] = out[c].fillna(0).astype("int64")
    out["incident_quota_met"] = (out["disputes"] >= q.disputes_per_month) & (
        out["hazards"] >= q.hazards_per_month
    )

    # logs per assessed week
    mondays = month_weeks(m0, m1)
    logs = _read(
        conn,
        kpi_sql.ASSESS_LOGS,
        {
            "w0": mondays[0],
            "w1": mondays[-1] + dt.timedelta(days=7),
            "street": street,
        },
    )
    per_week = (
        logs.pivot_table(index="worker_id", columns="week", values="logs", aggfunc="sum")
        .reindex(index=out["worker_id"], columns=mondays)
        .fillna(0)
        .to_numpy(dtype=float)
        if not logs.empty
        else np.zeros((len(out), len(mondays)))
    )
    need = np.array(
        [[required_logs(m, int(k), q.workdays_per_week) for m in mondays] for k in quota],
        dtype=float,
    ).reshape(len(out), len(mondays))
    assessed = need > 0
    out["logs"] = per_week.sum(axis=1).astype("int64")
    out["log_weeks"] = assessed.sum(axis=1)
    out["log_weeks_met"] = ((per_week >= need) & assessed).sum(axis=1)
    out["log_quota_met"] = out["log_weeks_met"] == out["log_weeks"]

    out["two_patrol_share"] = _patrol(
        conn,
        out,
        patrol_share,
        street=street,
        days=(m0, min(m1, period.as_of.date()) - dt.timedelta(days=1)),
        settings=s,
        tz=tz,
    )

    # quality in the worker's grids
    by_grid = kpis_by_unit(
        conn, "grid", m0, m1, within=street, settings=s, tz=tz, previous=False, repeats=False
    ).current
    served = rows.dropna(subset=["grid_code"])[["worker_id", "grid_code"]].drop_duplicates()
    quality = (
        served.merge(
            by_grid[["due", "due_on_time", "reported", "reworked"]],
            left_on="grid_code",
            right_index=True,
            how="left",
        )
        .groupby("worker_id")[["due", "due_on_time", "reported", "reworked"]]
        .sum()
        .rename(columns={"reported": "grid_reported"})
    )
    out = out.merge(quality, left_on="worker_id", right_index=True, how="left")
    for c in ("due", "due_on_time", "grid_reported", "reworked"):
        out[c] = out[c].fillna(0).astype("int64")
    out["on_time_rate"] = (out["due_on_time"] / out["due"]).where(out["due"] > 0)
    out["rework_rate"] = (out["reworked"] / out["grid_reported"]).where(out["grid_reported"] > 0)

    # score, stars, grades
    def share(got: pd.Series, need_: int) -> pd.Series:
        return (got / need_).clip(upper=1.0) if need_ > 0 else pd.Series(1.0, index=got.index)

    components = pd.DataFrame(
        {
            "incident_quota": (
                share(out["disputes"], q.disputes_per_month)
                + share(out["hazards"], q.hazards_per_month)
            )
            / 2,
            "log_quota": (out["log_weeks_met"] / out["log_weeks"]).where(out["log_weeks"] > 0),
            "two_patrol": out["two_patrol_share"],
            "on_time": out["on_time_rate"],
            "no_rework": 1.0 - out["rework_rate"],
        }
    )
    score = star_score(components, s.stars)
    out["score"] = score.round(s.grades.score_decimals)
    out["stars"] = stars_of(score)
    stars = out["stars"].fillna(0).astype(int)
    good_ok = stars >= s.grades.good_min_stars
    if s.grades.late_major_bars_good:
        good_ok &= out["late_majors"] == 0
    out["grade"] = assign_grades(
        score.to_numpy(dtype=float),
        tiebreak=out["reported"].to_numpy(dtype=float),
        good_ok=good_ok.to_numpy(),
        fairly_good_ok=(stars >= s.grades.fairly_good_min_stars).to_numpy(),
        grades=s.grades,
    )
    out["grade_label"] = out["grade"].map(lambda g: GRADES[g][0 if lang == "zh" else 1])
    out = out.sort_values(
        ["score", "reported", "worker_code"],
        ascending=[False, False, True],
        na_position="last",
        kind="stable",
    )
    return out[list(COLUMNS)].reset_index(drop=True)
