"""What the 考核 (assessment) page shows, without Streamlit: its filter state in the URL, the
formula written from the settings, the worker and grid rankings, the grade distribution
against the caps and one worker's breakdown.

Every figure comes from :func:`geo.assess.assess` (and, for grids, from
:func:`geo.kpis.kpis_by_unit`); this module only orders, formats and labels them, and
explains them with :mod:`geo.assess_detail`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Literal, get_args
from urllib.parse import urlencode

import numpy as np
import pandas as pd

from dashboard.i18n import t
from dashboard.url_state import BadParam, choice, read_params
from geo.assess import COLUMNS, GRADES
from geo.assess_detail import (
    COMPONENTS,
    grade_caps,
    required_logs_in_month,
    score_breakdown,
    score_components,
)
from geo.settings import AnalyticsSettings
from store.vocab import Lang

Patrols = Literal["auto", "on", "off"]
PATROLS: tuple[Patrols, ...] = get_args(Patrols)
DASH = "—"
STAR, NO_STAR = "★", "☆"


# --- filter state and the URL -----------------------------------------------------------------


def month_key(day: dt.date) -> str:
    """``"2026-10"`` for any day of October 2026."""
    return f"{day.year:04d}-{day.month:02d}"


def month_range(first: dt.date, last: dt.date) -> list[str]:
    """Months from ``first``'s to ``last``'s, newest first (``"2026-11"``, ``"2026-10"``…)."""
    out = []
    y, m = first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out[::-1]


def default_month(latest: dt.date) -> str:
    """The latest complete month with data: ``latest``'s month when ``latest`` is its last
    day, else the month before (data up to 2026-11-20 → ``"2026-10"``)."""
    if (latest + dt.timedelta(days=1)).day == 1:
        return month_key(latest)
    return month_key(latest.replace(day=1) - dt.timedelta(days=1))


@dataclass(frozen=True)
class AssessQuery:
    """The page's filter state; every field is in the URL.

    ``community`` only filters the rows shown (ranks and caps stay the street's);
    ``patrols`` says whether two-patrol compliance enters the score (``auto``: when the
    month's tracks are complete, :func:`patrols_included`); ``worker`` is the worker code
    whose breakdown is shown (None: the first ranked).
    """

    street: str | None
    month: str
    community: str | None = None
    patrols: Patrols = "auto"
    worker: str | None = None


def default_query(
    latest: dt.date | None, streets: Collection[str], *, today: dt.date | None = None
) -> AssessQuery:
    """The latest complete month up to the latest data day (today's when there is none),
    the only street when there is one (all otherwise), every community, patrols automatic."""
    street = next(iter(streets)) if len(streets) == 1 else None
    return AssessQuery(street=street, month=default_month(latest or today or dt.date.today()))


def _worker_code(raw: str) -> str:
    code = raw.strip()
    if not code or len(code) > 40 or not code.isalnum():
        raise ValueError(raw)
    return code


def parse_query(
    params: Mapping[str, str],
    *,
    defaults: AssessQuery,
    streets: Collection[str],
    months: Collection[str],
    communities: Collection[str],
) -> tuple[AssessQuery, list[BadParam]]:
    """The filter state in URL parameters ``params`` (``street``, ``month``, ``community``,
    ``patrols``, ``worker``); a value that is not valid falls back to its default and is
    reported, never raised. A community outside the chosen street is reported too."""
    d = defaults
    readers = (
        ("street", "street", choice(streets), d.street or ""),
        ("month", "month", choice(months), d.month),
        ("community", "community", choice(communities), ""),
        ("patrols", "patrols", choice(PATROLS), d.patrols),
        ("worker", "worker", _worker_code, ""),
    )
    fields, bad = read_params(params, readers)
    q = replace(d, **fields)
    if q.community is not None and q.street is not None and not in_street(q.community, q.street):
        bad.append(BadParam("community", q.community, ""))
        q = replace(q, community=None)
    return q, bad


def to_params(q: AssessQuery) -> dict[str, str]:
    """The URL parameters of ``q`` (inverse of :func:`parse_query`); "all" is left out."""
    out: dict[str, str] = {}
    if q.street is not None:
        out["street"] = q.street
    out["month"] = q.month
    if q.community is not None:
        out["community"] = q.community
    out["patrols"] = q.patrols
    if q.worker is not None:
        out["worker"] = q.worker
    return out


def overview_link(street: str | None, grid: str) -> str:
    """A relative link to the 一张图 (overview) page opening ``grid``'s panel (its URL
    contract: ``street``, ``grid``)."""
    params = {"street": street, "grid": grid} if street else {"grid": grid}
    return "./?" + urlencode(params)


def in_street(unit: str, street: str) -> bool:
    """Whether a community or grid code lies in ``street`` (codes share their first 9
    digits: ``370214900004`` and ``370214900004001`` are in ``370214900000``)."""
    return unit[:9] == street[:9]


def in_community(grids: str, community: str) -> bool:
    """Whether any grid of a comma list (``assess``'s ``grids``) lies in ``community``."""
    return any(g.startswith(community) for g in grids.split(",") if g)


def patrols_included(choice_: Patrols, workdays: int, days_with_tracks: int) -> bool:
    """Whether two-patrol compliance enters the score: as chosen, or — ``auto`` — when
    every working day of the month has patrol tracks (a missing day would count as every
    worker failing the rule: tracks not yet loaded are not patrols missed)."""
    if choice_ != "auto":
        return choice_ == "on"
    return workdays > 0 and days_with_tracks >= workdays


# --- formatting --------------------------------------------------------------------------------


def stars_text(stars: object, most: int = 5) -> str:
    """``★★★★☆`` for 4 stars; ``—`` when there are none."""
    if stars is None or pd.isna(stars):  # type: ignore[call-overload]
        return DASH
    n = int(stars)  # type: ignore[call-overload]
    return STAR * n + NO_STAR * (most - n)


def _num(x: object, fmt: str = "{:.2f}") -> str:
    return DASH if x is None or pd.isna(x) else fmt.format(x)  # type: ignore[call-overload]


def pct(x: object) -> str:
    """``87%``; ``—`` for NaN."""
    return DASH if x is None or pd.isna(x) else f"{float(x) * 100:.0f}%"  # type: ignore[call-overload,arg-type]


def _w(x: float) -> str:
    return f"{x:g}"


def _cap_pct(x: float) -> str:
    return f"{x * 100:g}%"


# --- the formula, from the settings --------------------------------------------------------------


@dataclass(frozen=True)
class Formula:
    """The score, stars and grade rules in words, every figure read from the settings."""

    score: str
    renorm: str
    parts: tuple[str, ...]
    stars: str
    grades: tuple[str, ...]


def formula(settings: AnalyticsSettings, lang: Lang = "zh") -> Formula:
    """The rules of :func:`geo.assess.assess` as the page prints them: a changed weight,
    quota, cap or rule in ``settings`` changes the text."""
    w = settings.stars.model_dump()
    terms = " + ".join(f"{_w(w[c])}×{t(f'as_comp_{c}', lang)}" for c in COMPONENTS)
    weights = " + ".join(_w(w[c]) for c in COMPONENTS)
    q, rule, g = settings.quotas, settings.two_patrol, settings.grades
    parts = (
        t(
            "as_def_incident_quota",
            lang,
            disputes=q.disputes_per_month,
            hazards=q.hazards_per_month,
        ),
        t("as_def_log_quota", lang, urban=q.urban_logs_per_week, village=q.village_logs_per_week),
        t(
            "as_def_two_patrol",
            lang,
            n=rule.patrols_per_day,
            gap=_w(rule.min_gap_h),
            inside=_w(rule.min_inside_min),
        ),
        t("as_def_on_time", lang),
        t("as_def_no_rework", lang),
    )
    late = (
        t("as_formula_late", lang, hours=_w(settings.reporting.max_delay_h))
        if g.late_major_bars_good
        else ""
    )
    grades = (
        t(
            "as_formula_good",
            lang,
            stars=g.good_min_stars,
            late=late,
            cap_pct=_cap_pct(g.good_cap),
        ),
        t(
            "as_formula_fair",
            lang,
            stars=g.fairly_good_min_stars,
            cap_pct=_cap_pct(g.fairly_good_cap),
        ),
        t("as_formula_average", lang),
        t("as_formula_ties", lang, dec=g.score_decimals),
    )
    return Formula(
        score=t("as_formula_score", lang, terms=terms, weights=weights),
        renorm=t("as_formula_renorm", lang),
        parts=parts,
        stars=t("as_formula_stars", lang, lo=1, hi=5),
        grades=grades,
    )


# --- rankings ------------------------------------------------------------------------------------


def ranks(frame: pd.DataFrame, settings: AnalyticsSettings) -> pd.Series:
    """Rank of each worker of an :func:`geo.assess.assess` frame (in its order): 1 for the
    best; workers tied in the assessment (equal rounded score and equal incidents reported)
    share a rank, the next rank skips (1, 2, 2, 4). No score: ranked last."""
    score = frame["score"].astype(float).round(settings.grades.score_decimals)
    key = list(zip(score.fillna(-np.inf), frame["reported"].astype(float), strict=True))
    out, prev, rank = [], None, 0
    for i, k in enumerate(key, start=1):
        if k != prev:
            rank, prev = i, k
        out.append(rank)
    return pd.Series(out, index=frame.index, dtype="int64")


def worker_table(
    frame: pd.DataFrame,
    settings: AnalyticsSettings,
    month: str,
    lang: Lang = "zh",
    *,
    grid_names: Mapping[str, str] | None = None,
    community: str | None = None,
) -> pd.DataFrame:
    """The ranking as the page shows it, one row per worker in :func:`geo.assess.assess`'s
    order: rank, name, grids, stars, score, grade, each quota and quality measure against
    its requirement. With ``community``, only its workers, keeping their street ranks."""
    q = settings.quotas
    names = grid_names or {}
    need = {kind: required_logs_in_month(month, kind, settings) for kind in ("urban", "village")}
    rank_of = ranks(frame, settings)
    shown = filter_community(frame, community)
    rows = []
    for rank, (_, r) in zip(rank_of.loc[shown.index], shown.iterrows(), strict=True):
        grids = [g for g in str(r["grids"]).split(",") if g]
        rows.append(
            {
                t("as_col_rank", lang): rank,
                t("as_col_name", lang): r["worker_name"],
                t("as_col_grids", lang): "、".join(names.get(g, g) for g in grids) or DASH,
                t("as_col_stars", lang): stars_text(r["stars"]),
                t("as_col_score", lang): _num(r["score"]),
                t("as_col_grade", lang): r["grade_label"],
                t("as_col_incidents", lang): (
                    f"{r['disputes']}/{q.disputes_per_month} · {r['hazards']}/{q.hazards_per_month}"
                ),
                t("as_col_logs", lang): (
                    f"{r['logs']}/{need[r['grid_kind']]} · {r['log_weeks_met']}/{r['log_weeks']}"
                ),
                t("as_col_patrol", lang): pct(r["two_patrol_share"]),
                t("as_col_on_time", lang): (
                    f"{r['due_on_time']}/{r['due']} ({pct(r['on_time_rate'])})"
                    if r["due"]
                    else DASH
                ),
                t("as_col_rework", lang): (
                    f"{r['reworked']}/{r['grid_reported']} ({pct(r['rework_rate'])})"
                    if r["grid_reported"]
                    else DASH
                ),
            }
        )
    return pd.DataFrame(rows)


def worker_export(
    frame: pd.DataFrame, settings: AnalyticsSettings, lang: Lang = "zh"
) -> pd.DataFrame:
    """Every column of the assessment with a rank first, labelled in ``lang`` (geo's
    labels): the table the page offers for download."""
    out = frame[list(COLUMNS)].copy()
    out.insert(0, "rank", ranks(frame, settings))
    labels = {k: v[0 if lang == "zh" else 1] for k, v in COLUMNS.items()}
    labels["rank"] = t("as_col_rank", lang)
    return out.rename(columns=labels)


def worker_csv(frame: pd.DataFrame, settings: AnalyticsSettings, lang: Lang = "zh") -> bytes:
    """:func:`worker_export` as CSV, UTF-8 with a BOM so that Excel opens it right."""
    return worker_export(frame, settings, lang).to_csv(index=False).encode("utf-8-sig")


@dataclass(frozen=True)
class GradeCount:
    """One grade: how many workers got it and its cap (None: no cap)."""

    grade: str
    label: str
    n: int
    cap: int | None
    cap_share: float | None


def grade_distribution(
    frame: pd.DataFrame, settings: AnalyticsSettings, lang: Lang = "zh"
) -> list[GradeCount]:
    """Workers per grade, best first, with the caps of :func:`geo.assess_detail.grade_caps`
    for the number of workers assessed."""
    caps = grade_caps(len(frame), settings.grades)
    shares = {"good": settings.grades.good_cap, "fairly_good": settings.grades.fairly_good_cap}
    counts = frame["grade"].value_counts()
    return [
        GradeCount(
            grade=g,
            label=labels[0 if lang == "zh" else 1],
            n=int(counts.get(g, 0)),
            cap=caps.get(g),
            cap_share=shares.get(g),
        )
        for g, labels in GRADES.items()
    ]


def stars_counts(frame: pd.DataFrame, lang: Lang = "zh") -> pd.DataFrame:
    """Workers per number of stars, 1 to 5 (zeros included), for a bar chart."""
    counts = frame["stars"].dropna().astype(int).value_counts().reindex(range(1, 6), fill_value=0)
    return pd.DataFrame(
        {
            t("as_stars_axis", lang): [t("as_stars_tick", lang, n=k) for k in counts.index],
            t("as_workers_axis", lang): counts.to_numpy(dtype=int),
        }
    )


def grid_table(
    frame: pd.DataFrame,
    grid_kpis: pd.DataFrame,
    settings: AnalyticsSettings,
    lang: Lang = "zh",
    *,
    community: str | None = None,
) -> pd.DataFrame:
    """Grids ranked by their worker's score (the mean of several), then on-time closure
    rate, then code; with the grid's incident KPIs for the month
    (:func:`geo.kpis.kpis_by_unit` at grid level, ``current``, indexed by grid code).
    Grids whose worker has no score (or none assessed) come last. With ``community``,
    only its grids, keeping their street ranks."""
    kpis = grid_kpis[grid_kpis.index.notna()]
    served = (
        frame.assign(grid=frame["grids"].str.split(","))
        .explode("grid")
        .dropna(subset=["grid"])
        .query("grid != ''")
    )
    per_grid = served.groupby("grid").agg(
        workers=("worker_name", lambda s: "、".join(s)),
        score=("score", "mean"),
        stars=("stars", lambda s: "、".join(stars_text(x) for x in s)),
        grade=("grade_label", lambda s: "、".join(dict.fromkeys(s))),
    )
    g = kpis.join(per_grid, how="left")
    g["score"] = g["score"].astype(float).round(settings.grades.score_decimals)
    g = g.assign(_code=g.index.astype(str)).sort_values(
        ["score", "on_time_rate", "_code"],
        ascending=[False, False, True],
        na_position="last",
        kind="stable",
    )
    key = list(zip(g["score"].fillna(-np.inf), g["on_time_rate"].fillna(-np.inf), strict=True))
    rank, prev, rank_col = 0, None, []
    for i, k in enumerate(key, start=1):
        if k != prev:
            rank, prev = i, k
        rank_col.append(rank)
    keep = (
        np.ones(len(g), bool)
        if community is None
        else g["_code"].str.startswith(community).to_numpy()
    )
    g = g[keep]
    rank_col = [r for r, k in zip(rank_col, keep, strict=True) if k]
    return pd.DataFrame(
        {
            t("as_col_rank", lang): rank_col,
            t("as_gcol_grid", lang): g["name"].to_numpy(),
            t("as_gcol_code", lang): g["_code"].to_numpy(),
            t("as_gcol_workers", lang): g["workers"].fillna(DASH).to_numpy(),
            t("as_col_stars", lang): g["stars"].fillna(DASH).to_numpy(),
            t("as_col_score", lang): [_num(s) for s in g["score"]],
            t("as_col_grade", lang): g["grade"].fillna(DASH).to_numpy(),
            t("as_gcol_reported", lang): g["reported"].astype(int).to_numpy(),
            t("as_gcol_closure", lang): [pct(x) for x in g["closure_rate"]],
            t("as_gcol_on_time", lang): [pct(x) for x in g["on_time_rate"]],
            t("as_gcol_rework", lang): [pct(x) for x in g["rework_rate"]],
            t("as_gcol_overdue", lang): g["open_overdue"].astype(int).to_numpy(),
        }
    )


# --- one worker ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerDetail:
    """Why one worker got their stars and grade.

    Attributes
    ----------
    head
        One line: name, code, rank, stars, score, grade.
    parts
        One row per component: the month's figures, its share, weight, part of the score
        and the points it adds.
    total
        How the points add up to the score and the stars.
    reasons
        Why the grade: eligibility and the caps.
    grids
        The worker's grid codes (for links to the overview map).
    """

    head: str
    parts: pd.DataFrame
    total: str
    reasons: tuple[str, ...]
    grids: tuple[str, ...]


def _figures(r: pd.Series, need: int, settings: AnalyticsSettings, lang: Lang) -> list[str]:
    q = settings.quotas
    patrol = (
        t("as_fig_patrol", lang, share=pct(r["two_patrol_share"]))
        if pd.notna(r["two_patrol_share"])
        else t("as_fig_patrol_none", lang)
    )
    return [
        t(
            "as_fig_incident",
            lang,
            disputes=r["disputes"],
            dq=q.disputes_per_month,
            hazards=r["hazards"],
            hq=q.hazards_per_month,
        ),
        t(
            "as_fig_logs",
            lang,
            logs=r["logs"],
            need=need,
            met=r["log_weeks_met"],
            weeks=r["log_weeks"],
        ),
        patrol,
        t("as_fig_on_time", lang, due=r["due"], ok=r["due_on_time"]),
        t("as_fig_rework", lang, reported=r["grid_reported"], reworked=r["reworked"]),
    ]


def grade_reasons(
    r: pd.Series, n_workers: int, settings: AnalyticsSettings, lang: Lang
) -> list[str]:
    """Why a worker (a row of :func:`geo.assess.assess`) got their grade: the grade's rule
    met, or each rule that kept them from a better one (stars, late majors, the cap)."""
    g = settings.grades
    caps = grade_caps(n_workers, g)
    stars = 0 if pd.isna(r["stars"]) else int(r["stars"])
    if r["grade"] == "good":
        return [t("as_why_good", lang, stars=g.good_min_stars, cap=caps["good"])]
    out = []
    if stars < g.good_min_stars:
        out.append(t("as_why_not_good_stars", lang, stars=g.good_min_stars))
    elif g.late_major_bars_good and r["late_majors"] > 0:
        hours = _w(settings.reporting.max_delay_h)
        out.append(t("as_why_not_good_late", lang, n=r["late_majors"], hours=hours))
    else:
        out.append(t("as_why_not_good_cap", lang, cap=caps["good"]))
    if r["grade"] == "fairly_good":
        out.append(t("as_why_fair", lang, stars=g.fairly_good_min_stars, cap=caps["fairly_good"]))
    elif stars < g.fairly_good_min_stars:
        out.append(t("as_why_not_fair_stars", lang, stars=g.fairly_good_min_stars))
    else:
        out.append(t("as_why_not_fair_cap", lang, cap=caps["fairly_good"]))
    return out


def worker_detail(
    frame: pd.DataFrame,
    code: str,
    settings: AnalyticsSettings,
    month: str,
    lang: Lang = "zh",
) -> WorkerDetail:
    """The breakdown of worker ``code``'s score (a code in ``frame``; KeyError otherwise)."""
    hit = frame.index[frame["worker_code"] == code]
    if len(hit) == 0:
        raise KeyError(code)
    i = hit[0]
    r = frame.loc[i]
    rank = int(ranks(frame, settings).loc[i])
    comps = score_components(frame.loc[[i]], settings).iloc[0]
    parts = score_breakdown(comps, settings.stars)
    need = required_logs_in_month(month, str(r["grid_kind"]), settings)
    figures = _figures(r, need, settings, lang)
    not_counted = t("as_not_counted", lang)
    table = pd.DataFrame(
        {
            t("as_dcol_part", lang): [t(f"as_comp_{c}", lang) for c in COMPONENTS],
            t("as_dcol_figures", lang): figures,
            t("as_dcol_value", lang): [
                pct(v) if ok else not_counted
                for v, ok in zip(parts["value"], parts["counted"], strict=True)
            ],
            t("as_dcol_weight", lang): [_w(w) for w in parts["weight"]],
            t("as_dcol_norm", lang): [
                pct(s) if ok else not_counted
                for s, ok in zip(parts["share_of_score"], parts["counted"], strict=True)
            ],
            t("as_dcol_points", lang): [
                f"{p:.2f}" if ok else not_counted
                for p, ok in zip(parts["points"], parts["counted"], strict=True)
            ],
        }
    )
    if pd.isna(r["score"]):
        total = t("as_detail_no_score", lang)
    else:
        points = " + ".join(f"{p:.2f}" for p in parts["points"][parts["counted"]])
        total = t("as_detail_total", lang, points=points, score=_num(r["score"]), stars=r["stars"])
    head = t(
        "as_detail_head",
        lang,
        name=r["worker_name"],
        code=code,
        rank=rank,
        stars=_num(r["stars"], "{}"),
        score=_num(r["score"]),
        grade=r["grade_label"],
    )
    grids = tuple(g for g in str(r["grids"]).split(",") if g)
    return WorkerDetail(
        head=head,
        parts=table,
        total=total,
        reasons=tuple(grade_reasons(r, len(frame), settings, lang)),
        grids=grids,
    )


def month_label(month: str, lang: Lang, latest: dt.date | None = None) -> str:
    """``2026年10月``; a month ending after ``latest`` says up to which day there is data."""
    y, m = (int(x) for x in month.split("-"))
    if latest is not None and (latest.year, latest.month) == (y, m):
        last_day = (dt.date(y, m, 28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
        if latest < last_day:
            return t("as_month_partial", lang, year=y, month=m, day=latest.day)
    return t("as_month_option", lang, year=y, month=m)


def filter_community(frame: pd.DataFrame, community: str | None) -> pd.DataFrame:
    """The workers with a grid in ``community`` (all when None), order kept."""
    if community is None:
        return frame
    return frame[[in_community(str(g), community) for g in frame["grids"]]]
