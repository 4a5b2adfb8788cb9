"""Incidents (事件) over a period and their full workflow logs.

Locations: a background spread over the buildings, three planted hotspots (Gaussian around
known centres, each with a category theme, steady all period), two planted emerging
patterns, and a few incidents just outside the street boundary. The emerging patterns are
planted so that ArcGIS's Emerging Hot Spot Analysis definitions (:mod:`geo.emerging`)
name them, on grids and on H3 hexagons alike:

* the **rising area** (around a junction by a construction site whose works grow: damaged
  roads, traffic hazards, dust, noise): incidents in every calendar month of the period,
  their number climbing linearly from the first month to the last — hot in (nearly) every
  month with a rising trend, an *intensifying* hot spot;
* the **new spot** (a night market that opened at a junction in the final month: vending,
  noise, litter, parking): incidents in the final month only — hot in the final month
  and never before, a *new* hot spot.

Both are centred on a road junction where several grids meet (``loaders.demo.generate``)
and are large: on the street's 41 grids a Gi* neighbourhood is a grid, its ~6 neighbours
and the previous month, standardised by the whole cube, so a pattern must add dozens of
incidents a month to be significant there from its first months.

Their months are the analysis's monthly bins: whole calendar months stepping back from the
end of the period (:func:`month_edges`), so each planted month is one bin.

Workflow logs are built from a small set of path templates (one per combination of
features: escalation depth, extension, rework, return, reopening, still open), expanded to
rows with numpy, so no Python loop runs over incidents. Every log obeys
:data:`store.vocab.WORKFLOW` and the tier rules the database enforces.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import shapely

from loaders.demo.geom import locate
from store import vocab, workcal
from store.settings import PROJECT_ROOT

CATEGORIES_CSV = PROJECT_ROOT / "data" / "incident_categories.csv"
DAY = 86_400
HOUR = 3_600
#: Minimum time between two transitions of one incident, seconds.
MIN_STEP_S = 60
#: Local offset of Asia/Shanghai (no daylight saving), seconds.
SHANGHAI_OFFSET_S = 8 * HOUR
#: Scatter of background incidents around the building they concern, metres.
BACKGROUND_SIGMA_M = 18.0
#: Distance band outside the boundary for the planted outside incidents, metres.
OUTSIDE_BAND_M = (25.0, 120.0)
#: Category themes (subcategory codes) of the planted patterns.
THEMES = {
    "market": ("0302", "0301", "0305", "0303"),
    "nightlife": ("0403", "0401", "0402"),
    "old_compound": ("0101", "0103", "0102", "0502"),
    "rising": ("0304", "0203", "0305", "0403"),
    "new_spot": ("0302", "0403", "0305", "0301"),
}
#: Mean reporting delay by source, minutes.
REPORT_DELAY_MIN = {"patrol": 15, "app": 50, "hotline": 90, "video": 8, "assigned": 240}
#: Departments called by the street, by top-level category.
DEPARTMENTS = {
    "01": "区司法局",
    "02": "区应急管理局",
    "03": "区综合行政执法局",
    "04": "区公安分局",
    "05": "区消防救援大队",
    "06": "区卫生健康局",
    "07": "区民政局",
    "08": "区政务服务中心",
}
SOURCE_ACTOR = {
    "app": "居民APP",
    "hotline": "12345热线",
    "video": "视频监控中心",
    "assigned": "区综治中心",
}
SOURCE_PHRASE = {
    "patrol": "网格员巡查发现",
    "app": "居民通过APP反映",
    "hotline": "12345热线转办，群众反映",
    "video": "视频巡查发现",
    "assigned": "上级交办：",
}
NOTES = {
    "reported": "事件上报",
    "registered": "已受理登记",
    "dispatched": "已派遣处置",
    "handling": "正在处置",
    "feedback": "处置完毕，反馈待复核",
    "verified": "现场核查属实，处置到位",
    "closed": "已办结，回访群众满意",
    "returned": "信息不全或不属本级职责，退回",
    "reworked": "复核未通过，要求返工",
    "extended": "情况复杂，申请延期",
    "escalated": "本级无法解决，上报上级",
    "reopened": "群众反映问题反复，重新启动",
}


@dataclass
class Incidents:
    """``incident`` and ``incident_transition`` frames (schema columns; geometry as metric
    ``x``/``y`` until the caller reprojects) and the planted truth."""

    incident: pd.DataFrame
    transition: pd.DataFrame
    truth: dict


def load_categories() -> pd.DataFrame:
    """The incident category table (``data/incident_categories.csv``), codes as text."""
    return pd.read_csv(CATEGORIES_CSV, dtype={"code": str, "parent_code": str})


def period_bounds(end_day: dt.date, days: int, tz: str) -> tuple[int, int]:
    """``(start, end)`` of a period of ``days`` days ending with ``end_day`` (local,
    inclusive) as UTC epoch seconds, end exclusive."""
    zone = ZoneInfo(tz)
    end = dt.datetime.combine(end_day + dt.timedelta(days=1), dt.time(), zone)
    start = end - dt.timedelta(days=days)
    return int(start.timestamp()), int(end.timestamp())


def generate_incidents(ctx: dict, cfg: dict, rng: np.random.Generator) -> Incidents:
    """Generate incidents and their transition logs.

    Parameters
    ----------
    ctx
        What the incidents refer to: ``grid`` (territory grid frame), ``grid_poly``
        (metric polygons), ``street`` (street frame), ``community`` frame,
        ``buildings`` (``x, y, address, weight``), ``centres`` (planted centres by theme,
        metres), ``worker_of_grid``, ``staff_code`` (id -> code).
    cfg
        Profile settings (``incidents`` section merged with the profile).
    rng
        The shared random generator.
    """
    ic = cfg["incidents"]
    start, end = period_bounds(
        dt.date.fromisoformat(cfg["period_end"]), cfg["incident_days"], cfg["timezone"]
    )
    n_total = cfg["n_incidents"]
    n_hot = round(ic["hotspot_share"] * n_total)
    months = month_edges(end, cfg["incident_days"], cfg["timezone"])
    rising = rising_counts(ic, len(months) - 1)
    new = np.zeros(len(months) - 1, dtype=np.int64)
    new[-1] = ic["new_spot_count"]
    n_out = ic["outside_street"]
    n_bg = n_total - 3 * n_hot - int(rising.sum()) - int(new.sum()) - n_out

    cats = load_categories()
    sub = cats[cats.code.str.len() == 4].reset_index(drop=True)
    parts = [_background(ctx, n_bg, ic, sub, start, end, rng)]
    for theme in ("market", "nightlife", "old_compound"):
        parts.append(_planted(ctx, theme, n_hot, ic["hotspot_sigma_m"], start, end, rng))
    parts.append(_monthly(ctx, "rising", rising, ic["rising_sigma_m"], months, rng))
    parts.append(_monthly(ctx, "new_spot", new, ic["new_spot_sigma_m"], months, rng))
    parts.append(_outside(ctx, n_out, sub, start, end, rng))
    inc = pd.concat(parts, ignore_index=True)
    _finish_rows(inc, ctx, ic, sub, rng)
    inc = inc.sort_values(["reported", "pattern"], kind="stable").reset_index(drop=True)
    inc["id"] = np.arange(1, len(inc) + 1)
    year = pd.to_datetime(inc["reported"] + SHANGHAI_OFFSET_S, unit="s").dt.year.to_numpy()
    seq = pd.Series(np.ones(len(inc), dtype=int)).groupby(year).cumsum().to_numpy()
    inc["code"] = [f"SJ{y}{s:06d}" for y, s in zip(year, seq, strict=True)]

    trans, paths = _transitions(inc, ctx, ic, end, rng)
    truth = _truth(inc, trans, paths, ctx, {"rising": rising, "new_spot": new}, months, end)
    frame = _incident_frame(inc)
    return Incidents(frame, trans, truth)


# --- where and what ---------------------------------------------------------------------


def _times(
    n: int,
    start: int,
    end: int,
    hours: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Report times (UTC seconds): days weighted towards working days and a mild season,
    the local hour from ``hours`` (24 weights)."""
    first = (start + SHANGHAI_OFFSET_S) // DAY
    days = np.arange(first, (end + SHANGHAI_OFFSET_S) // DAY)
    dates = days.astype("datetime64[D]")
    work = np.isin(dates, workcal.add_working_days(dates - 1, 1))
    season = 1 + 0.15 * np.sin(2 * np.pi * (days % 365.25) / 365.25 - 1.2)
    w = np.where(work, 1.0, 0.7) * season
    day = rng.choice(days, size=n, p=w / w.sum())
    hour = rng.choice(24, size=n, p=hours / hours.sum())
    local = day * DAY + hour * HOUR + rng.integers(0, HOUR, n)
    return local - SHANGHAI_OFFSET_S


#: Relative report frequency by local hour: daytime mostly, some evening, little at night.
DAY_HOURS = np.array(
    [
        0.2,
        0.1,
        0.1,
        0.1,
        0.1,
        0.2,
        0.6,
        1.5,
        5,
        8,
        9,
        8,
        5,
        6,
        8,
        9,
        8,
        6,
        3,
        2.2,
        1.6,
        1.0,
        0.6,
        0.3,
    ]
)
#: Nightlife incidents happen mostly in the evening and at night.
NIGHT_HOURS = np.array(
    [4, 3, 2, 1, 0.5, 0.2, 0.2, 0.3, 0.5, 0.8, 1, 1, 1, 1, 1, 1, 1.5, 2, 3, 4, 6, 7, 7, 6]
)


def _scatter_inside(
    ctx: dict, cx: np.ndarray, cy: np.ndarray, sigma: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian points around the given centres, redrawn until each lies in a grid."""
    x = cx + rng.normal(0, sigma, len(cx))
    y = cy + rng.normal(0, sigma, len(cy))
    g = locate(x, y, ctx["grid_poly"])
    while (bad := g < 0).any():
        x[bad] = cx[bad] + rng.normal(0, sigma, bad.sum())
        y[bad] = cy[bad] + rng.normal(0, sigma, bad.sum())
        g[bad] = locate(x[bad], y[bad], ctx["grid_poly"])
    return x, y, g


def _background(
    ctx: dict, n: int, ic: dict, sub: pd.DataFrame, start: int, end: int, rng: np.random.Generator
) -> pd.DataFrame:
    b = ctx["buildings"]
    w = b["weight"].to_numpy(dtype=float)
    pick = rng.choice(len(b), size=n, p=w / w.sum())
    x, y, g = _scatter_inside(
        ctx, b["x"].to_numpy()[pick], b["y"].to_numpy()[pick], BACKGROUND_SIGMA_M, rng
    )
    top_share = ic["category_shares"]
    sw = sub.code.map(lambda c: ic["subcategory_weights"].get(c, 1.0))
    sw = (
        sw / sw.groupby(sub.parent_code).transform("sum") * sub.parent_code.map(top_share)
    ).to_numpy()
    cat = rng.choice(sub.code.to_numpy(), size=n, p=sw / sw.sum())
    return pd.DataFrame(
        {
            "x": x,
            "y": y,
            "grid": g,
            "category_code": cat,
            "reported": _times(n, start, end, DAY_HOURS, rng),
            "pattern": "background",
        }
    )


def _theme_categories(theme: str, n: int, rng: np.random.Generator) -> np.ndarray:
    codes = THEMES[theme]
    w = 1.0 / np.arange(1, len(codes) + 1)
    return rng.choice(codes, size=n, p=w / w.sum())


def _planted(
    ctx: dict, theme: str, n: int, sigma: float, start: int, end: int, rng: np.random.Generator
) -> pd.DataFrame:
    cx, cy = ctx["centres"][theme]
    x, y, g = _scatter_inside(ctx, np.full(n, cx), np.full(n, cy), sigma, rng)
    hours = NIGHT_HOURS if theme == "nightlife" else DAY_HOURS
    return pd.DataFrame(
        {
            "x": x,
            "y": y,
            "grid": g,
            "category_code": _theme_categories(theme, n, rng),
            "reported": _times(n, start, end, hours, rng),
            "pattern": theme,
        }
    )


def month_edges(end: int, days: int, tz: str) -> np.ndarray:
    """Edges (UTC seconds) of the whole calendar months of the period of ``days`` days
    ending at ``end``: ``end − k`` months for k = n…0 in local wall time, as
    :func:`geo.emerging.bin_edges` steps its monthly bins back from the period's end; a
    remainder at the start shorter than a month belongs to no month."""
    stop = pd.Timestamp(end, unit="s", tz="UTC").tz_convert(tz)
    first = stop - pd.Timedelta(days=days)
    edges = [stop]
    while (edge := stop - pd.DateOffset(months=len(edges))) >= first:
        edges.append(edge)
    return np.array([int(e.timestamp()) for e in reversed(edges)], dtype=np.int64)


def rising_counts(ic: dict, n_months: int) -> np.ndarray:
    """Planted incidents of the rising area in each of ``n_months`` months: a straight line
    from ``rising_monthly.first`` to ``rising_monthly.last``, times ``rising_scale``,
    rounded."""
    spec = ic["rising_monthly"]
    line = np.linspace(spec["first"], spec["last"], n_months) * ic.get("rising_scale", 1)
    return np.rint(line).astype(np.int64)


def _monthly(
    ctx: dict,
    theme: str,
    counts: np.ndarray,
    sigma: float,
    edges: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """An emerging pattern: ``counts[k]`` incidents in month k (``[edges[k], edges[k+1])``),
    Gaussian around the ``theme``'s centre, days and hours weighted as the background's."""
    n = int(counts.sum())
    cx, cy = ctx["centres"][theme]
    x, y, g = _scatter_inside(ctx, np.full(n, cx), np.full(n, cy), sigma, rng)
    t = np.concatenate(
        [
            _times(int(c), int(edges[k]), int(edges[k + 1]), DAY_HOURS, rng)
            for k, c in enumerate(counts)
            if c > 0
        ]
        or [np.zeros(0, dtype=np.int64)]
    )
    return pd.DataFrame(
        {
            "x": x,
            "y": y,
            "grid": g,
            "category_code": _theme_categories(theme, n, rng),
            "reported": t,
            "pattern": theme,
        }
    )


def _outside(
    ctx: dict, n: int, sub: pd.DataFrame, start: int, end: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Points a little outside the outer boundary (no grid), on a boundary road's far side."""
    outline = ctx["district_poly"]
    ring = shapely.get_exterior_ring(max(outline.geoms, key=lambda p: p.area))
    out: list[tuple[float, float]] = []
    while len(out) < n:
        p = shapely.line_interpolate_point(ring, rng.random(), normalized=True)
        q = shapely.line_interpolate_point(ring, ring.project(p) + 1.0)
        px, py = shapely.get_coordinates(p)[0]
        qx, qy = shapely.get_coordinates(q)[0]
        t = np.array([qx - px, qy - py]) / max(np.hypot(qx - px, qy - py), 1e-9)
        d = rng.uniform(*OUTSIDE_BAND_M)
        for sign in (1.0, -1.0):
            cand = np.array([px, py]) + sign * np.array([t[1], -t[0]]) * d
            pt = shapely.Point(cand)
            if not outline.intersects(pt.buffer(OUTSIDE_BAND_M[0] / 2)):
                out.append((float(cand[0]), float(cand[1])))
                break
    xy = np.array(out)
    return pd.DataFrame(
        {
            "x": xy[:, 0],
            "y": xy[:, 1],
            "grid": -1,
            "category_code": rng.choice(["0301", "0304", "0305"], size=n),
            "reported": _times(n, start, end, DAY_HOURS, rng),
            "pattern": "outside",
        }
    )


def _finish_rows(
    inc: pd.DataFrame, ctx: dict, ic: dict, sub: pd.DataFrame, rng: np.random.Generator
) -> None:
    """Source, severity, occurred time, due time, reporter, codes and texts, in place."""
    n = len(inc)
    grid = ctx["grid"]
    g = inc["grid"].to_numpy()
    has_grid = g >= 0
    src_names = list(ic["source_shares"])
    src_p = np.array([ic["source_shares"][s] for s in src_names])
    source = rng.choice(src_names, size=n, p=src_p / src_p.sum())
    source[~has_grid] = "hotline"
    inc["source"] = source
    sev_p = np.asarray(ic["severity_shares"], dtype=float)
    sev = rng.choice(np.arange(1, 5), size=n, p=sev_p / sev_p.sum())
    inc["severity"] = sev
    mean = pd.Series(source).map(REPORT_DELAY_MIN).to_numpy() * 60.0
    delay = np.minimum(rng.exponential(mean), 72 * HOUR)
    major = sev >= vocab.MAJOR_SEVERITY
    late = major & (rng.random(n) < ic["major_late_share"])
    delay = np.where(major & ~late, np.minimum(delay, 3.8 * HOUR), delay)
    delay = np.where(late, rng.uniform(4.5 * HOUR, 30 * HOUR, n), delay)
    inc["occurred"] = inc["reported"] - delay.astype(np.int64)
    inc["major_late"] = late
    lim = sub.set_index("code")
    reported = pd.Series(pd.to_datetime(inc["reported"], unit="s", utc=True))
    due = workcal.due_at(
        reported,
        inc["category_code"].map(lim["limit_value"]).astype("int64"),
        inc["category_code"].map(lim["limit_unit"]),
        tz=ctx["timezone"],
    )
    inc["due"] = ((due - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy()
    inc["grid_code"] = np.where(has_grid, grid["code"].to_numpy()[g], None)
    street_of = np.where(has_grid, grid["street_code"].to_numpy()[g], "")
    if (~has_grid).any():
        near = locate_nearest(inc.loc[~has_grid, ["x", "y"]].to_numpy(), ctx["grid_poly"])
        street_of[~has_grid] = grid["street_code"].to_numpy()[near]
    inc["street_code"] = street_of
    worker = ctx["worker_of_grid"][np.maximum(g, 0)]
    by_worker = (source == "patrol") & has_grid
    inc["reporter_id"] = pd.Series(worker).where(by_worker).astype("Int64").to_numpy()
    b = ctx["buildings"]
    tree = shapely.STRtree(shapely.points(b["x"].to_numpy(), b["y"].to_numpy()))
    nearest = tree.query_nearest(
        shapely.points(inc["x"].to_numpy(), inc["y"].to_numpy()),
        return_distance=False,
        all_matches=False,
    )[1]
    addr = b["address"].to_numpy()[nearest]
    name = inc["category_code"].map(lim["name_zh"]).to_numpy()
    inc["address"] = addr
    inc["title"] = pd.Series(addr).str.cat(pd.Series(name), sep="附近").to_numpy()
    phrase = pd.Series(source).map(SOURCE_PHRASE)
    inc["description"] = (
        phrase + pd.Series(addr) + "附近存在" + pd.Series(name) + "问题，请及时处置。"
    ).to_numpy()


def locate_nearest(xy: np.ndarray, polys: np.ndarray) -> np.ndarray:
    """Index of the polygon nearest each point."""
    tree = shapely.STRtree(polys)
    return tree.query_nearest(shapely.points(xy[:, 0], xy[:, 1]), all_matches=False)[1]


# --- workflow -----------------------------------------------------------------------------

#: Open end states and the status the log stops at.
OPEN_AT = {1: "registered", 2: "dispatched", 3: "handling", 4: "feedback"}
FLAGS = ("open", "invalid", "tier", "down", "quick", "extended", "reworked", "reopened")


def _template(key: tuple[int, ...]) -> list[tuple[str, int]]:
    """The (status, tier index) path for one combination of :data:`FLAGS`."""
    f = dict(zip(FLAGS, key, strict=True))
    path = [("reported", 0)]
    if f["invalid"]:
        return [*path, ("returned", 0), ("closed", 0)]
    tier = 0
    if f["quick"]:
        path.append(("handling", 0))
    else:
        path += [("registered", 0), ("dispatched", 0), ("handling", 0)]
    for level in range(1, f["tier"] + 1):
        tier = level
        path += [("escalated", tier), ("dispatched", tier), ("handling", tier)]
        if f["down"] and level == 1:
            path.pop()
            tier = 0
            path += [("returned", 0), ("dispatched", 0), ("handling", 0)]
    if f["extended"]:
        path += [("extended", tier), ("handling", tier)]
    path.append(("feedback", tier))
    if f["reworked"]:
        path += [("reworked", tier), ("handling", tier), ("feedback", tier)]
    path += [("verified", tier), ("closed", tier)]
    if f["reopened"]:
        path += [
            ("reopened", tier),
            ("handling", tier),
            ("feedback", tier),
            ("verified", tier),
            ("closed", tier),
        ]
    if f["open"]:
        stop = OPEN_AT[f["open"]]
        path = path[: next(i for i, (s, _) in enumerate(path) if s == stop) + 1]
    return path


def _flags(inc: pd.DataFrame, ic: dict, end: int, rng: np.random.Generator) -> np.ndarray:
    """One row of :data:`FLAGS` per incident."""
    n = len(inc)
    reported = inc["reported"].to_numpy()
    due = inc["due"].to_numpy()
    outside = inc["grid"].to_numpy() < 0
    f = np.zeros((n, len(FLAGS)), dtype=np.int64)
    col = {k: i for i, k in enumerate(FLAGS)}
    n_pending = max(1, round(ic["open_pending"] * n))
    n_feedback = max(1, round(ic["open_feedback"] * n))
    n_open = n_pending + n_feedback
    n_overdue = round(ic["open_overdue"] * n_open)
    recent = np.flatnonzero((reported > end - 10 * DAY) & ~outside)
    old = np.flatnonzero(
        (reported < end - 15 * DAY) & (reported > end - 60 * DAY) & (due < end) & ~outside
    )
    chosen = np.concatenate(
        [
            rng.choice(old, n_overdue, replace=False),
            rng.choice(recent, n_open - n_overdue, replace=False),
        ]
    )
    chosen = rng.permutation(chosen)
    f[chosen[:n_pending], col["open"]] = rng.integers(1, 4, n_pending)
    f[chosen[n_pending:], col["open"]] = 4
    # Reported in the last hours: nobody has acted yet beyond registering it.
    f[(end - reported < 2 * HOUR) & (f[:, col["open"]] == 0), col["open"]] = 1
    is_open = f[:, col["open"]] > 0
    u = rng.random((n, 8))
    f[:, col["invalid"]] = ~is_open & (u[:, 0] < ic["returned_invalid"])
    valid = f[:, col["invalid"]] == 0
    tier = np.where(
        u[:, 1] < ic["escalated_department"],
        3,
        np.where(
            u[:, 1] < ic["escalated_street"], 2, np.where(u[:, 1] < ic["escalated_community"], 1, 0)
        ),
    )
    f[:, col["tier"]] = np.where(valid & ~outside, tier, 0)
    f[:, col["down"]] = (f[:, col["tier"]] == 1) & (u[:, 2] < ic["returned_down"])
    f[:, col["quick"]] = (
        valid & ~is_open & (f[:, col["tier"]] == 0) & (u[:, 3] < ic["self_handled"])
    )
    closed_ok = valid & ~is_open
    f[:, col["extended"]] = closed_ok & (u[:, 4] < ic["extended"])
    f[:, col["reworked"]] = closed_ok & (u[:, 5] < ic["reworked"])
    room = reported < end - 90 * DAY
    f[:, col["reopened"]] = closed_ok & room & (u[:, 6] < ic["reopened"] / max(room.mean(), 1e-9))
    return f


def _transitions(
    inc: pd.DataFrame, ctx: dict, ic: dict, end: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """Expand each incident's path template to transition rows with increasing times."""
    flags = _flags(inc, ic, end, rng)
    keys, which = np.unique(flags, axis=0, return_inverse=True)
    templates = [_template(tuple(int(v) for v in k)) for k in keys]
    status_pool = list(vocab.INCIDENT_STATUSES)
    t_len = np.array([len(t) for t in templates])
    t_status = [np.array([status_pool.index(s) for s, _ in t]) for t in templates]
    t_tier = [np.array([tier for _, tier in t]) for t in templates]
    t_close = np.array([_first(t, "closed") for t in templates])  # -1 when open
    max_len = t_len.max()
    st_tab = np.full((len(templates), max_len), -1)
    ti_tab = np.zeros((len(templates), max_len), dtype=int)
    for k in range(len(templates)):
        st_tab[k, : t_len[k]] = t_status[k]
        ti_tab[k, : t_len[k]] = t_tier[k]

    n = len(inc)
    length = t_len[which]
    row_inc = np.repeat(np.arange(n), length)
    step = np.arange(len(row_inc)) - np.repeat(np.cumsum(length) - length, length)
    status = st_tab[which[row_inc], step]
    tier = ti_tab[which[row_inc], step]

    reported = inc["reported"].to_numpy()
    due = inc["due"].to_numpy()
    col = {k: i for i, k in enumerate(FLAGS)}
    ext = flags[:, col["extended"]] == 1
    new_due = due + rng.integers(3, 11, n) * DAY
    deadline = np.where(ext, new_due, due)
    span_due = np.maximum(deadline - reported, HOUR)
    late = rng.random(n) < ic["closed_late"]
    frac = np.where(late, rng.uniform(1.05, 2.5, n), rng.beta(2.0, 3.0, n) * 0.95 + 0.02)
    frac = np.where(
        ext & ~late,
        (due - reported) / span_due + rng.uniform(0.05, 0.9, n) * (1 - (due - reported) / span_due),
        frac,
    )
    t_end = reported + (frac * span_due).astype(np.int64)
    is_open = flags[:, col["open"]] > 0
    t_end = np.where(is_open, reported + (rng.uniform(0.2, 0.9, n) * (end - reported)), t_end)
    t_end = np.where(
        flags[:, col["invalid"]] == 1, reported + rng.integers(HOUR, 8 * HOUR, n), t_end
    )
    reopened = flags[:, col["reopened"]] == 1
    tail = np.where(reopened, rng.integers(3 * DAY, 20 * DAY, n), 0)
    latest = end - HOUR - tail - MIN_STEP_S * length
    t_end = np.clip(t_end, reported + MIN_STEP_S * length, np.maximum(latest, reported))
    t_end = t_end.astype(np.int64)

    # Main segment: steps 1..close (or the last step when open) spread over reported..t_end.
    close_step = np.where(t_close[which] >= 0, t_close[which], length - 1)
    w = rng.gamma(1.2, 1.0, len(row_inc))
    in_main = (step >= 1) & (step <= close_step[row_inc])
    wm = np.where(in_main, w, 0.0)
    cum = _group_cumsum(wm, row_inc)
    tot = np.bincount(row_inc, wm, minlength=n)
    at = reported[row_inc] + (
        cum / np.maximum(tot[row_inc], 1e-12) * (t_end - reported)[row_inc]
    ).astype(np.int64)
    # Reopening: after the first closure, spread over the tail.
    in_tail = step > close_step[row_inc]
    wt = np.where(in_tail, w, 0.0)
    cum_t = _group_cumsum(wt, row_inc)
    tot_t = np.bincount(row_inc, wt, minlength=n)
    at_tail = t_end[row_inc] + (cum_t / np.maximum(tot_t[row_inc], 1e-12) * tail[row_inc]).astype(
        np.int64
    )
    at = np.where(in_tail, at_tail, at)
    # Distinct increasing times: at least MIN_STEP_S apart.
    shifted = at - step * MIN_STEP_S
    shifted = pd.Series(shifted).groupby(row_inc).cummax().to_numpy()
    at = shifted + step * MIN_STEP_S

    status_name = np.asarray(status_pool)[status]
    is_ext = status_name == "extended"
    nd = np.where(is_ext, np.maximum(new_due[row_inc], at + DAY), 0)
    tiers = np.asarray(vocab.TIERS)[tier]
    actor = _actors(inc, ctx, row_inc, tier, status_name)
    trans = pd.DataFrame(
        {
            "id": np.arange(1, len(row_inc) + 1),
            "incident_id": inc["id"].to_numpy()[row_inc],
            "at": pd.to_datetime(at, unit="s", utc=True),
            "to_status": status_name,
            "tier": tiers,
            "actor": actor,
            "note": pd.Series(status_name).map(NOTES).to_numpy(),
            "new_due_at": pd.Series(pd.to_datetime(nd, unit="s", utc=True)).where(is_ext),
            "grid_code": inc["grid_code"].to_numpy()[row_inc],
            "street_code": inc["street_code"].to_numpy()[row_inc],
        }
    )
    return trans, which


def _first(path: list[tuple[str, int]], status: str) -> int:
    return next((i for i, (s, _) in enumerate(path) if s == status), -1)


def _group_cumsum(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Cumulative sum restarting at each new group (rows sorted by group)."""
    c = np.cumsum(values)
    starts = np.r_[0, np.flatnonzero(np.diff(group)) + 1]
    before = np.repeat(c[starts] - values[starts], np.diff(np.r_[starts, len(values)]))
    return c - before


def _actors(
    inc: pd.DataFrame, ctx: dict, row_inc: np.ndarray, tier: np.ndarray, status: np.ndarray
) -> np.ndarray:
    """Who did each step: the grid worker, the community or street centre, a department;
    the first step names the source (worker code for patrols)."""
    grid = ctx["grid"]
    g = inc["grid"].to_numpy()
    has = g >= 0
    street_name = dict(zip(ctx["street"]["code"], ctx["street"]["name"], strict=True))
    comm_name = dict(zip(ctx["community"]["code"], ctx["community"]["name"], strict=True))
    s_centre = pd.Series(inc["street_code"]).map(street_name).to_numpy() + "综治中心"
    worker = np.where(has, ctx["staff_code"][ctx["worker_of_grid"][np.maximum(g, 0)]], s_centre)
    comm = np.where(has, grid["community_code"].to_numpy()[np.maximum(g, 0)], "")
    c_centre = np.where(
        has, pd.Series(comm).map(comm_name).fillna("").to_numpy() + "综治中心", s_centre
    )
    dept = inc["category_code"].str[:2].map(DEPARTMENTS).to_numpy()
    by_tier = np.stack([worker, c_centre, s_centre, dept])
    actor = by_tier[tier, row_inc]
    source = inc["source"].to_numpy()
    first_actor = np.where(source == "patrol", worker, pd.Series(source).map(SOURCE_ACTOR))
    first = status == "reported"
    actor[first] = first_actor[row_inc[first]]
    return actor


# --- frames and truth ----------------------------------------------------------------------


def _incident_frame(inc: pd.DataFrame) -> pd.DataFrame:
    def ts(col: str) -> pd.Series:
        return pd.to_datetime(inc[col], unit="s", utc=True)

    return pd.DataFrame(
        {
            "id": inc["id"],
            "code": inc["code"],
            "category_code": inc["category_code"],
            "source": inc["source"],
            "severity": inc["severity"],
            "title": inc["title"],
            "description": inc["description"],
            "address": inc["address"],
            "occurred_at": ts("occurred"),
            "reported_at": ts("reported"),
            "due_at": ts("due"),
            "reporter_id": inc["reporter_id"],
            "grid_code": inc["grid_code"],
            "street_code": inc["street_code"],
            "x": inc["x"],
            "y": inc["y"],
            "pattern": inc["pattern"],
        }
    )


def _truth(
    inc: pd.DataFrame,
    trans: pd.DataFrame,
    paths: np.ndarray,
    ctx: dict,
    monthly: dict[str, np.ndarray],
    months: np.ndarray,
    end: int,
) -> dict:
    """Status mix, tiers, deadlines and the planted patterns, as plain JSON values; the
    rising area and the new spot with their planted count in every month of the period
    (``windows``: the months as UTC instants, ``count`` 0 where nothing was planted)."""
    last = trans.groupby("incident_id", sort=True).tail(1).set_index("incident_id")
    status = last["to_status"]
    max_tier = (
        trans.assign(t=trans["tier"].map({t: i for i, t in enumerate(vocab.TIERS)}))
        .groupby("incident_id")["t"]
        .max()
    )
    ext_due = trans.dropna(subset=["new_due_at"]).groupby("incident_id")["new_due_at"].max()
    deadline = pd.to_datetime(inc.set_index("id")["due"], unit="s", utc=True)
    deadline = ext_due.reindex(deadline.index).fillna(deadline)
    closed_at = last["at"].where(status == "closed")
    end_ts = pd.Timestamp(end, unit="s", tz="UTC")
    is_open = status != "closed"
    has = {
        s: int(trans.loc[trans["to_status"] == s, "incident_id"].nunique())
        for s in ("reopened", "reworked", "extended", "returned", "escalated")
    }
    centres = ctx["centres_lonlat"]
    return {
        "count": len(inc),
        "status": {k: int(v) for k, v in status.value_counts().sort_index().items()},
        "open_pending": int(status.isin(["registered", "dispatched", "handling"]).sum()),
        "open_feedback": int((status == "feedback").sum()),
        "open_overdue": int((is_open & (deadline < end_ts)).sum()),
        "closed_late": int((closed_at > deadline).sum()),
        "max_tier": {
            vocab.TIERS[int(k)]: int(v) for k, v in max_tier.value_counts().sort_index().items()
        },
        "with_step": has,
        "major": int((inc["severity"] >= vocab.MAJOR_SEVERITY).sum()),
        "major_reported_late": int(inc["major_late"].sum()),
        "hotspots": [
            {
                "theme": t,
                "lon": centres[t][0],
                "lat": centres[t][1],
                "sigma_m": ctx["hotspot_sigma_m"],
                "categories": list(THEMES[t]),
                "count": int((inc["pattern"] == t).sum()),
            }
            for t in ("market", "nightlife", "old_compound")
        ],
        **{
            theme: {
                "lon": centres[theme][0],
                "lat": centres[theme][1],
                "sigma_m": ctx[f"{theme}_sigma_m"],
                "categories": list(THEMES[theme]),
                "count": int((inc["pattern"] == theme).sum()),
                "windows": [
                    {
                        "start": pd.Timestamp(a, unit="s", tz="UTC").isoformat(),
                        "end": pd.Timestamp(b, unit="s", tz="UTC").isoformat(),
                        "count": int(c),
                    }
                    for a, b, c in zip(months[:-1], months[1:], counts, strict=True)
                ],
            }
            for theme, counts in monthly.items()
        },
        "outside_street": inc.loc[inc["pattern"] == "outside", "code"].tolist(),
    }
