"""View model of the 巡查 (patrol) page: the filter state and its URL form, and the tables,
map classes and replay frames the page shows, built from :mod:`geo.coverage` results.

No Streamlit here: every function takes plain values or geo/ results and returns frames or
dataclasses, so the unit tests, the CSV downloads and a briefing can reuse them. Every
figure is one geo/ computes (a week's figures are sums of geo's daily figures, or counts
of its daily verdicts); nothing is computed a second way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import geopandas as gpd
import pandas as pd

from dashboard import url_state
from dashboard.i18n import t
from geo.coverage import DEFAULT_WINDOWS, KEPT, CoverageResult
from geo.replay import REASON_LABELS
from geo.settings import CoverageParams
from store.vocab import Lang

Span = Literal["day", "week"]
ColorBy = Literal["rule", "buildings", "roads"]
SPANS: tuple[Span, ...] = ("day", "week")
COLOR_BYS: tuple[ColorBy, ...] = ("rule", "buildings", "roads")
#: Days of the "week" span: the chosen day and the six before it.
WEEK_DAYS = 7
#: Map colours: rule met / not met, and share classes (< 50 %, 50–80 %, 80–95 %, ≥ 95 %).
MET_COLOR, NOT_MET_COLOR = "#1a9850", "#d73027"
SHARE_BREAKS: tuple[float, ...] = (0.5, 0.8, 0.95)
SHARE_COLORS: tuple[str, ...] = ("#d73027", "#fc8d59", "#91cf60", "#1a9850")
NO_DATA_COLOR = "#bdbdbd"
#: A day of the week matrix that is not a working day.
REST_MARK = "休"
#: Colours of a replay's sessions (cycled).
SESSION_COLORS: tuple[str, ...] = ("#1f77b4", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")


@dataclass(frozen=True)
class PatrolQuery:
    """What the page shows; every field is in the URL (:func:`to_params`)."""

    street: str | None
    community: str | None
    day: dt.date
    span: Span
    worker: int | None
    window: int
    color: ColorBy

    @property
    def days(self) -> list[dt.date]:
        """The days shown, oldest first: the day, or the week ending on it."""
        n = WEEK_DAYS if self.span == "week" else 1
        return [self.day - dt.timedelta(days=k) for k in range(n - 1, -1, -1)]


def default_query(latest_day: dt.date | None, streets: Mapping[str, str]) -> PatrolQuery:
    """The opening view: the first street, the latest day with patrol fixes (today when the
    store has none), every worker, the 7-day unvisited list, grids coloured by the rule."""
    return PatrolQuery(
        street=next(iter(streets), None),
        community=None,
        day=latest_day or dt.date.today(),
        span="day",
        worker=None,
        window=DEFAULT_WINDOWS[0],
        color="rule",
    )


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError(raw)
    return value


def parse_query(
    params: Mapping[str, str], *, defaults: PatrolQuery, streets: Mapping[str, str]
) -> tuple[PatrolQuery, list[url_state.BadParam]]:
    """The view a URL asks for, and the parameters that could not be used (the default
    stands for those). ``community`` and ``worker`` are checked by the page against the data
    (which exist depends on the street and the day)."""
    readers: list[url_state.Reader] = [
        ("street", "street", url_state.choice(streets), defaults.street or ""),
        ("community", "community", str.strip, ""),
        ("day", "day", url_state.date, defaults.day.isoformat()),
        ("span", "span", url_state.choice(SPANS), defaults.span),
        ("worker", "worker", _positive_int, ""),
        ("window", "window", url_state.int_choice(DEFAULT_WINDOWS), str(defaults.window)),
        ("color", "color", url_state.choice(COLOR_BYS), defaults.color),
    ]
    fields, bad = url_state.read_params(params, readers)
    if fields.get("community") == "":
        fields["community"] = None
    return replace(defaults, **fields), bad


def to_params(q: PatrolQuery) -> dict[str, str]:
    """The URL parameters of ``q`` (defaults included: a copied link pins the day)."""
    out = {
        "street": q.street or "",
        "community": q.community or "",
        "day": q.day.isoformat(),
        "span": q.span,
        "worker": "" if q.worker is None else str(q.worker),
        "window": str(q.window),
        "color": q.color,
    }
    return {k: v for k, v in out.items() if v}


def rule_text(params: CoverageParams, lang: Lang) -> str:
    """The two-patrol rule and the coverage radii in one line."""
    r = params.rule
    return t(
        "pat_rule_line",
        lang,
        n=r.patrols_per_day,
        gap=f"{r.min_gap_h:g}",
        inside=f"{r.min_inside_min:g}",
        tol=f"{params.grid_tolerance_m:g}",
        bld=f"{params.building_radius_m:g}",
        road=f"{params.road_radius_m:g}",
        acc=f"{params.max_accuracy_m:g}",
        speed=f"{params.max_speed_kmh:g}",
        gap_min=f"{params.session_gap_min:g}",
    )


# --- per grid ---------------------------------------------------------------------------


def _in_community(frame: pd.DataFrame, community: str | None) -> pd.DataFrame:
    if community is None:
        return frame
    return frame[frame["community_code"] == community]


def minutes_inside(result: CoverageResult) -> pd.Series:
    """Minutes the grid's own workers' patrols spent inside each grid (sum of geo's
    ``session_grid.minutes_inside`` over the patrols), by grid code."""
    sg = result.session_grid
    patrols = set(result.sessions.loc[result.sessions["patrol"], "session"])
    return sg[sg["session"].isin(patrols)].groupby("grid_code")["minutes_inside"].sum()


@dataclass(frozen=True)
class GridSummary:
    """Per-grid figures of the shown days (``frame``: one row per grid, raw numbers) and
    the headline: grid-days meeting the rule out of all grid-days."""

    frame: pd.DataFrame
    grid_days: int
    grid_days_met: int


def grid_summary(results: Sequence[CoverageResult], community: str | None) -> GridSummary:
    """Per grid over the days of ``results``: days met, counted patrols, minutes inside,
    buildings and road shares. One day: geo's figures as they are; a week: days met
    counted, patrols and minutes summed, shares averaged over the days (the mean of geo's
    daily shares) — over working days only (``workday`` not False), as the assessment's
    :func:`geo.coverage.patrol_compliance` counts them."""
    parts = []
    for r in results:
        g = _in_community(r.grid_day, community).copy()
        if len(results) > 1:  # a week counts working days, as geo.coverage.patrol_compliance
            g = g[g["workday"].ne(False)]
        g["minutes_inside"] = g["grid_code"].map(minutes_inside(r)).fillna(0.0)
        g["day"] = r.day
        parts.append(g)
    days = pd.concat(parts, ignore_index=True)
    agg = days.groupby(["grid_code", "grid_name", "community_code"], sort=True).agg(
        days=("day", "size"),
        days_met=("rule_met", "sum"),
        counted_patrols=("counted_patrols", "sum"),
        minutes_inside=("minutes_inside", "sum"),
        buildings=("buildings", "max"),
        building_share=("building_share", "mean"),
        road_share=("road_share", "mean"),
    )
    frame = agg.reset_index()
    frame["days_met"] = frame["days_met"].astype(int)
    frame["share_met"] = frame["days_met"] / frame["days"]
    return GridSummary(frame, len(days), int(days["rule_met"].sum()))


def grid_table(summary: GridSummary, span: Span, lang: Lang) -> pd.DataFrame:
    """The per-grid table as shown (labels in ``lang``): worst first."""
    f = summary.frame.sort_values(["share_met", "building_share", "grid_code"])
    if span == "day":
        met = f["days_met"].map(lambda v: t("pat_met" if v else "pat_not_met", lang))
    else:
        met = f["days_met"].astype(str) + f" / {int(f['days'].max()) if len(f) else 0}"
    return pd.DataFrame(
        {
            t("pat_col_grid", lang): f["grid_name"].to_numpy(),
            t("pat_col_code", lang): f["grid_code"].to_numpy(),
            t("pat_col_rule" if span == "day" else "pat_col_days_met", lang): met.to_numpy(),
            t("pat_col_patrols", lang): f["counted_patrols"].astype(int).to_numpy(),
            t("pat_col_minutes", lang): f["minutes_inside"].round(0).astype(int).to_numpy(),
            t("pat_col_bld_share", lang): _percent(f["building_share"]),
            t("pat_col_road_share", lang): _percent(f["road_share"]),
        }
    )


def _percent(values: pd.Series) -> list[str]:
    return ["—" if pd.isna(v) else f"{v * 100:.0f}%" for v in values]


def share_class(value: float) -> int:
    """Class of a share for the map: 0 (< 50 %) … 3 (≥ 95 %), −1 when unknown."""
    if pd.isna(value):
        return -1
    return sum(value >= b for b in SHARE_BREAKS)


def grid_map_units(
    outlines: gpd.GeoDataFrame, summary: GridSummary, color: ColorBy, span: Span, lang: Lang
) -> tuple[gpd.GeoDataFrame, dict[int, str], list[tuple[str, str]]]:
    """Grid polygons with a ``cls`` column to colour by, the colours and the legend
    entries. Rule on a day: met / not met; over a week: share of days met in the share
    classes; buildings / roads: the share in the share classes."""
    f = summary.frame.set_index("grid_code")
    units = outlines.rename(columns={"code": "grid_code", "name": "grid_name"})
    units = units[units["grid_code"].isin(f.index)].copy()
    column = {"rule": "share_met", "buildings": "building_share", "roads": "road_share"}[color]
    value = units["grid_code"].map(f[column])
    labels = [t(f"pat_share_{k}", lang) for k in range(4)]
    if color == "rule" and span == "day":
        units["cls"] = value.map(lambda v: 1 if v >= 1 else 0).astype(int)
        colors = {1: MET_COLOR, 0: NOT_MET_COLOR}
        entries = [(MET_COLOR, t("pat_met", lang)), (NOT_MET_COLOR, t("pat_not_met", lang))]
    else:
        units["cls"] = value.map(share_class).astype(int)
        colors = {-1: NO_DATA_COLOR, **dict(enumerate(SHARE_COLORS))}
        entries = [(SHARE_COLORS[k], labels[k]) for k in range(3, -1, -1)]
        if (units["cls"] < 0).any():
            entries.append((NO_DATA_COLOR, t("pat_no_data", lang)))
    units["__value"] = ["—" if pd.isna(v) else f"{v * 100:.0f}%" for v in value]
    return units, colors, entries


def compliance_matrix(results: Sequence[CoverageResult], community: str | None) -> pd.DataFrame:
    """Grid × day of ✓ (rule met) / ✗ (not met) / 休 (not a working day): rows grid names,
    columns ``MM-DD``."""
    cols = {}
    names = None
    for r in results:
        g = _in_community(r.grid_day, community).set_index("grid_code")
        mark = g["rule_met"].map(lambda v: "✓" if v else "✗")
        cols[r.day.strftime("%m-%d")] = mark.where(g["workday"].ne(False), REST_MARK)
        names = g["grid_name"] if names is None else names.combine_first(g["grid_name"])
    out = pd.DataFrame(cols)
    if names is not None:
        out.index = [f"{names[c]}" for c in out.index]
    return out.fillna("—")


# --- per worker ---------------------------------------------------------------------------


def worker_summary(results: Sequence[CoverageResult]) -> pd.DataFrame:
    """Per worker over the days: patrols, distance (m), patrol minutes, minutes inside own
    grids, raw and dropped fixes — sums of geo's ``worker_day``."""
    days = pd.concat([r.worker_day for r in results], ignore_index=True)
    cols = [
        "patrols",
        "distance_m",
        "patrol_minutes",
        "minutes_in_own_grid",
        "fixes",
        "dropped_accuracy",
        "dropped_speed",
    ]
    return (
        days.groupby(["worker_id", "worker_code", "worker_name", "own_grids"], sort=True)[cols]
        .sum()
        .reset_index()
    )


def worker_table(summary: pd.DataFrame, grids_in: set[str] | None, lang: Lang) -> pd.DataFrame:
    """The per-worker table as shown; only workers of grids in ``grids_in`` when given."""
    f = summary
    if grids_in is not None:
        mine = f["own_grids"].map(lambda s: bool(set(s.split(",")) & grids_in))
        f = f[mine]
    f = f.sort_values(["patrols", "worker_code"])
    return pd.DataFrame(
        {
            t("pat_col_worker", lang): f["worker_name"].to_numpy(),
            t("pat_col_worker_code", lang): f["worker_code"].to_numpy(),
            t("pat_col_own_grids", lang): f["own_grids"].to_numpy(),
            t("pat_col_patrols_all", lang): f["patrols"].astype(int).to_numpy(),
            t("pat_col_km", lang): (f["distance_m"] / 1000).round(2).to_numpy(),
            t("pat_col_own_minutes", lang): f["minutes_in_own_grid"]
            .round(0)
            .astype(int)
            .to_numpy(),
            t("pat_col_dropped", lang): (f["dropped_accuracy"] + f["dropped_speed"])
            .astype(int)
            .to_numpy(),
        }
    )


# --- replay ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Replay:
    """A worker's day up to a moment: the drawn track pieces (lists of ``(lat, lon)`` per
    session stretch), the gaps (signal lost: ``(lat, lon)`` pairs), dropped fixes, the
    position at that moment, and the sessions table."""

    stretches: list[tuple[int, list[tuple[float, float]]]]
    gaps: list[tuple[tuple[float, float], tuple[float, float]]]
    dropped: pd.DataFrame
    position: tuple[float, float] | None
    sessions: pd.DataFrame


def replay(
    fixes: pd.DataFrame, until: pd.Timestamp | None, params: CoverageParams, lang: Lang
) -> Replay:
    """Cut :func:`geo.replay.worker_day_fixes` at ``until`` (all when None) into what the
    map draws: each run of drawn steps as a line coloured by session, each kept step too
    long to draw (signal lost) as a gap, the dropped fixes with the reason in words."""
    shown = fixes if until is None else fixes[fixes["at"] <= until]
    kept = shown[shown["reason"] == KEPT]
    stretches: list[tuple[int, list[tuple[float, float]]]] = []
    gaps: list[tuple[tuple[float, float], tuple[float, float]]] = []
    prev = None
    for row in kept.itertuples(index=False):
        here = (float(row.lat), float(row.lon))
        if row.drawn and stretches:
            stretches[-1][1].append(here)
        else:
            if prev is not None and prev[0] == row.session:
                gaps.append((prev[1], here))
            stretches.append((int(row.session), [here]))
        prev = (row.session, here)
    fmt = {"acc": params.max_accuracy_m, "speed": params.max_speed_kmh}
    dropped = shown[shown["reason"] != KEPT]
    dropped = pd.DataFrame(
        {
            "at": dropped["at"].dt.strftime("%H:%M:%S").to_numpy(),
            "lat": dropped["lat"].to_numpy(),
            "lon": dropped["lon"].to_numpy(),
            "accuracy_m": dropped["accuracy_m"].to_numpy(),
            "why": [
                REASON_LABELS[int(r)][0 if lang == "zh" else 1].format(**fmt)
                for r in dropped["reason"]
            ],
        }
    )
    position = (float(kept["lat"].iloc[-1]), float(kept["lon"].iloc[-1])) if len(kept) else None
    all_kept = fixes[fixes["reason"] == KEPT]
    sessions = all_kept.groupby("session").agg(
        start=("at", "min"), end=("at", "max"), fixes=("at", "size")
    )
    sessions["gaps"] = [
        int(((all_kept["session"] == s) & ~all_kept["drawn"]).sum()) - 1 for s in sessions.index
    ]
    sessions = pd.DataFrame(
        {
            t("pat_col_session", lang): [int(s) + 1 for s in sessions.index],
            t("pat_col_start", lang): sessions["start"].dt.strftime("%H:%M").to_numpy(),
            t("pat_col_end", lang): sessions["end"].dt.strftime("%H:%M").to_numpy(),
            t("pat_col_fixes", lang): sessions["fixes"].to_numpy(),
            t("pat_col_gaps", lang): sessions["gaps"].to_numpy(),
        }
    )
    return Replay(stretches, gaps, dropped, position, sessions)


# --- unvisited buildings -------------------------------------------------------------------


def unvisited_subset(
    unvisited: gpd.GeoDataFrame, window: int, grids_in: set[str] | None, lang: Lang
) -> gpd.GeoDataFrame:
    """Buildings not passed in the last ``window`` days (geo's ``not_passed_<N>d``), only
    those of the grids ``grids_in`` when given (a community's), with ``__label`` (the
    label in ``lang``) for the map."""
    u = unvisited[unvisited[f"not_passed_{window}d"]]
    if grids_in is not None:
        u = u[u["grid_code"].isin(grids_in)]
    return u.assign(__label=u["label_zh" if lang == "zh" else "label_en"])


def unvisited_table(subset: gpd.GeoDataFrame, lang: Lang) -> pd.DataFrame:
    """The not-passed list as shown and downloaded (a :func:`unvisited_subset`)."""
    last = ["—" if d is None or pd.isna(d) else d.isoformat() for d in subset["last_passed_on"]]
    return pd.DataFrame(
        {
            t("pat_col_building", lang): subset["building_code"].to_numpy(),
            t("pat_col_address", lang): subset["address"].to_numpy(),
            t("pat_col_code", lang): subset["grid_code"].to_numpy(),
            t("pat_col_last_passed", lang): last,
            t("pat_col_label", lang): subset["__label"].to_numpy(),
        }
    )
