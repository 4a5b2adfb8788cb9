"""What the 事件 (incidents) page shows, without Streamlit: its filter state and how that
state reads from and writes to the URL, the KPI cards, and the tables beside the charts.

Pure functions of plain values and :mod:`geo.kpis` / :mod:`geo.trend` results, so that a
test, a CSV download or the briefing can reuse them. Every figure is the geo result's own;
this module only picks, formats and labels.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal, get_args
from urllib.parse import urlencode

import altair as alt
import pandas as pd

from dashboard.i18n import t
from dashboard.url_state import BadParam, Reader, choice, date, read_params
from geo.category_kpis import CategoryKpis
from geo.kpis import FIGURES, KpiFigures, KpiReport, UnitKpis
from geo.trend import TREND_BINS, TrendBin
from store.vocab import TIERS, Lang, label

Preset = Literal["month", "last_month", "quarter", "year", "custom"]
PRESETS: tuple[Preset, ...] = get_args(Preset)
By = Literal["community", "grid"]
BYS: tuple[By, ...] = get_args(By)
#: Rows of the overdue list shown on the page (the CSV download has them all).
OVERDUE_ROWS = 20
#: The four headline cards: figure, and whether a rise is good ("normal") or bad ("inverse").
CARDS: tuple[tuple[str, Literal["normal", "inverse"]], ...] = (
    ("closure_rate", "normal"),
    ("on_time_rate", "normal"),
    ("open_overdue", "inverse"),
    ("mean_hours", "inverse"),
)


@dataclass(frozen=True)
class IncidentQuery:
    """The page's filter state; every field is in the URL.

    ``start`` and ``end`` are both included (the page shows days); geo gets
    ``[start, end + 1 day)``. ``community`` lies in ``street``.
    """

    street: str | None
    community: str | None
    preset: Preset
    start: dt.date
    end: dt.date
    category: str | None = None
    by: By = "community"
    bin: TrendBin = "week"

    @property
    def end_exclusive(self) -> dt.date:
        """The day after ``end``: the open end geo takes."""
        return self.end + dt.timedelta(days=1)

    @property
    def unit(self) -> str | None:
        """The jurisdiction the figures are of: the community, else the street, else all."""
        return self.community or self.street

    @property
    def unit_level(self) -> Literal["street", "community", "grid"]:
        """Level of the rows of the unit table: streets for all streets; the chosen ``by``
        for a street; grids for a community."""
        if self.street is None:
            return "street"
        return "grid" if self.community is not None else self.by


def _month_start(day: dt.date, months_back: int = 0) -> dt.date:
    k = day.year * 12 + day.month - 1 - months_back
    return dt.date(k // 12, k % 12 + 1, 1)


def preset_range(preset: Preset, latest: dt.date) -> tuple[dt.date, dt.date]:
    """First and last day (both included) of a preset period ending on ``latest`` (the
    latest data day): this month / quarter / year to date, or the whole previous month.
    ``custom`` gives this month (the starting point of a custom choice)."""
    if preset == "last_month":
        first = _month_start(latest, 1)
        return first, _month_start(latest) - dt.timedelta(days=1)
    if preset == "quarter":
        return dt.date(latest.year, 3 * ((latest.month - 1) // 3) + 1, 1), latest
    if preset == "year":
        return dt.date(latest.year, 1, 1), latest
    return _month_start(latest), latest


def default_query(
    latest: dt.date | None, streets: Mapping[str, str], *, today: dt.date | None = None
) -> IncidentQuery:
    """This month up to the latest data day (today when the store has none), the only street
    when there is one (all otherwise), every category, communities, weekly trend."""
    end = latest or today or dt.date.today()
    start, end = preset_range("month", end)
    street = next(iter(streets)) if len(streets) == 1 else None
    return IncidentQuery(street=street, community=None, preset="month", start=start, end=end)


def parse_query(
    params: Mapping[str, str],
    *,
    defaults: IncidentQuery,
    latest: dt.date,
    streets: Mapping[str, str],
    communities: Mapping[str, str],
    categories: Mapping[str, str],
) -> tuple[IncidentQuery, list[BadParam]]:
    """The filter state in URL parameters; each invalid value falls back to its default
    and is reported (never an exception). ``from``/``to`` win over ``period``: a link
    keeps its dates when data is added later (the preset is then shown as custom unless
    they are still its dates).

    Parameters
    ----------
    params
        ``st.query_params.to_dict()``.
    defaults
        :func:`default_query`'s state.
    latest
        The latest data day (presets end there).
    streets, communities, categories
        Codes that exist (→ names); a community must lie in the chosen street.
    """
    d = defaults
    readers: tuple[Reader, ...] = (
        ("street", "street", choice(streets), d.street or ""),
        ("community", "community", choice(communities), ""),
        ("period", "preset", choice(PRESETS), d.preset),
        ("from", "start", date, d.start.isoformat()),
        ("to", "end", date, d.end.isoformat()),
        ("category", "category", choice(categories), ""),
        ("by", "by", choice(BYS), d.by),
        ("bin", "bin", choice(TREND_BINS), d.bin),
    )
    fields, bad = read_params(params, readers)
    q = replace(d, **fields)
    if q.community is not None:
        street = q.community[:9] + "000"
        if q.street is not None and q.street != street:
            bad.append(BadParam("community", q.community, ""))
            q = replace(q, community=None)
        else:
            q = replace(q, street=street)
    start, end = preset_range(q.preset, latest)
    if "start" in fields or "end" in fields:
        start, end = fields.get("start", start), fields.get("end", end)
        if start > end:
            bad.append(BadParam("from/to", f"{start}/{end}", f"{d.start}/{d.end}"))
            return replace(q, preset=d.preset, start=d.start, end=d.end), bad
        if (start, end) != preset_range(q.preset, latest) or q.preset == "custom":
            q = replace(q, preset=match_preset(start, end, latest))
    return replace(q, start=start, end=end), bad


def match_preset(start: dt.date, end: dt.date, latest: dt.date) -> Preset:
    """The preset whose dates are ``start``–``end``, else ``custom``."""
    for p in PRESETS[:-1]:
        if preset_range(p, latest) == (start, end):
            return p
    return "custom"


def to_params(q: IncidentQuery) -> dict[str, str]:
    """The URL parameters of ``q`` (inverse of :func:`parse_query`); the dates are always
    written so that a link pins the view."""
    out: dict[str, str] = {}
    if q.street is not None:
        out["street"] = q.street
    if q.community is not None:
        out["community"] = q.community
    out["period"] = q.preset
    out["from"] = q.start.isoformat()
    out["to"] = q.end.isoformat()
    if q.category is not None:
        out["category"] = q.category
    out["by"] = q.by
    out["bin"] = q.bin
    return out


def overview_link(incident: str, street: str | None) -> str:
    """Link to the 一张图 page centred on ``incident`` (its code), relative to this page so
    that it works under any base path."""
    params = {"street": street} if street else {}
    return "./?" + urlencode({**params, "incident": incident})


# --- cards ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """One KPI card: ``value`` and ``delta`` as shown (``delta`` None without a previous
    value), ``color`` for ``st.metric``'s ``delta_color``, ``definition`` one line with the
    counts behind the figure; ``current`` / ``previous`` the raw figures from geo."""

    figure: str
    label: str
    value: str
    delta: str | None
    color: Literal["normal", "inverse", "off"]
    definition: str
    current: float | None
    previous: float | None


def format_value(figure: str, value: float | None, lang: Lang = "zh") -> str:
    """A figure as the page prints it: rates in percent with one decimal, hours with one
    decimal, counts whole; "—" for None."""
    if value is None or pd.isna(value):
        return "—"
    kind = FIGURES[figure][2]
    if kind == "rate":
        return f"{value * 100:.1f}%"
    if kind == "hours":
        return t("inc_hours", lang, v=f"{value:.1f}")
    return f"{int(value):,}"


def format_change(figure: str, change: float | None, lang: Lang = "zh") -> str | None:
    """A change as the page prints it, signed: percentage points for rates."""
    if change is None or pd.isna(change):
        return None
    kind = FIGURES[figure][2]
    if kind == "rate":
        return t("inc_pp", lang, v=f"{change * 100:+.1f}")
    if kind == "hours":
        return t("inc_hours", lang, v=f"{change:+.1f}")
    return f"{int(change):+,}"


def _definition(figure: str, f: KpiFigures, lang: Lang) -> str:
    median = format_value("median_hours", f.median_hours, lang)
    num, den = {
        "closure_rate": (f.reported_closed, f.reported),
        "on_time_rate": (f.due_on_time, f.due),
        "mean_hours": (None, f.closed),
        "grid_share": (f.closed_grid, f.closed),
        "street_share": (f.closed_grid + f.closed_community + f.closed_street, f.closed),
    }.get(figure, (None, None))
    key = f"inc_def_{figure}"
    if figure == "mean_hours" and f.median_hours is None:
        key = "inc_def_mean_hours_only"
    return t(key, lang, num=num, den=den, median=median)


#: What the cards are of: a unit's KPIs, or one category's (:mod:`geo.category_kpis`).
Figures = KpiReport | CategoryKpis


def card(report: Figures, figure: str, color: str, lang: Lang = "zh") -> Card:
    """The card of one figure of ``report``: value, change against the previous period."""
    cur = getattr(report.figures, figure)
    prev = getattr(report.previous, figure)
    change = None if cur is None or prev is None else cur - prev
    return Card(
        figure=figure,
        label=t(f"inc_card_{figure}", lang),
        value=format_value(figure, cur, lang),
        delta=format_change(figure, change, lang),
        color="off" if change == 0 else color,  # type: ignore[arg-type]
        definition=_definition(figure, report.figures, lang),
        current=cur,
        previous=prev,
    )


def cards(report: Figures, lang: Lang = "zh") -> list[Card]:
    """The four headline cards (:data:`CARDS`)."""
    return [card(report, f, color, lang) for f, color in CARDS]


def tier_cards(report: Figures, lang: Lang = "zh") -> list[Card]:
    """小事不出网格率 and 大事不出街道率 as cards."""
    return [card(report, f, "normal", lang) for f in ("grid_share", "street_share")]


def comparison_table(report: Figures, lang: Lang = "zh") -> pd.DataFrame:
    """Every figure of :data:`geo.kpis.FIGURES`: label, this period, previous, change, as
    printed (as ``KpiReport.comparison``)."""
    cur, prev = report.figures.as_dict(), report.previous.as_dict()
    c = pd.DataFrame(
        {
            "figure": list(FIGURES),
            "label": [v[0 if lang == "zh" else 1] for v in FIGURES.values()],
            "current": [cur[k] for k in FIGURES],
            "previous": [prev[k] for k in FIGURES],
            "change": [
                None if cur[k] is None or prev[k] is None else cur[k] - prev[k] for k in FIGURES
            ],
        }
    )
    return pd.DataFrame(
        {
            t("inc_col_figure", lang): c["label"],
            t("inc_col_current", lang): [
                format_value(f, v, lang) for f, v in zip(c["figure"], c["current"], strict=True)
            ],
            t("inc_col_previous", lang): [
                format_value(f, v, lang) for f, v in zip(c["figure"], c["previous"], strict=True)
            ],
            t("inc_col_change", lang): [
                format_change(f, v, lang) or "—"
                for f, v in zip(c["figure"], c["change"], strict=True)
            ],
        }
    )


# --- tables --------------------------------------------------------------------------------


def tier_table(report: Figures, lang: Lang = "zh") -> pd.DataFrame:
    """Cases closed in the period by the tier that closed them, with their share of all
    closed: ``tier`` (label), ``closed``, ``share`` (0–1; None when nothing closed)."""
    f = report.figures
    counts = [getattr(f, f"closed_{tier}") for tier in TIERS]
    return pd.DataFrame(
        {
            "tier": [label("tier", tier, lang) for tier in TIERS],
            "closed": counts,
            "share": [c / f.closed if f.closed else None for c in counts],
        }
    )


def category_table(
    report: KpiReport, category: str | None, lang: Lang = "zh"
) -> tuple[pd.DataFrame, str]:
    """Rows of the category chart: top-level categories when ``category`` is None, else
    the subcategories of the chosen one (a chosen subcategory: itself). Columns ``code``,
    ``name``, ``reported``, ``previous``, ``change``; the level shown."""
    c = report.categories
    name = c["name_zh" if lang == "zh" else "name_en"]
    if category is None:
        mask, level = c["level"] == "category", "category"
    elif len(category) == 2:
        mask, level = (c["level"] == "subcategory") & (c["parent_code"] == category), "subcategory"
    else:
        mask, level = (c["level"] == "subcategory") & (c["code"] == category), "subcategory"
    out = c[mask].assign(name=name[mask])[["code", "name", "reported", "previous", "change"]]
    return out.sort_values(["reported", "code"], ascending=[False, True]).reset_index(
        drop=True
    ), level


def overdue_rows(report: KpiReport, category: str | None) -> pd.DataFrame:
    """The open-overdue list of ``report`` (most overdue first), of one category prefix."""
    o = report.overdue
    if category is not None:
        o = o[o["category_code"].str.startswith(category)]
    return o.reset_index(drop=True)


def overdue_table(
    overdue: pd.DataFrame, grid_names: Mapping[str, str], lang: Lang = "zh"
) -> pd.DataFrame:
    """The overdue list as printed, with a ``link`` column to the 一张图 page per row."""
    cat = overdue["category_zh" if lang == "zh" else "category_en"]
    return pd.DataFrame(
        {
            t("inc_col_incident", lang): overdue["code"],
            t("inc_col_category", lang): cat,
            t("inc_col_grid", lang): [
                grid_names.get(g, g) if isinstance(g, str) else "—" for g in overdue["grid_code"]
            ],
            t("inc_col_reported_at", lang): overdue["reported_at"].dt.strftime("%Y-%m-%d %H:%M"),
            t("inc_col_deadline", lang): overdue["deadline"].dt.strftime("%Y-%m-%d %H:%M"),
            t("inc_col_status", lang): [
                label("incident_status", s, lang) for s in overdue["status"]
            ],
            t("inc_col_tier", lang): [label("tier", s, lang) for s in overdue["tier"]],
            t("inc_col_days", lang): overdue["days_overdue"].round(1),
            "link": [
                overview_link(c, s)
                for c, s in zip(overdue["code"], overdue["street_code"], strict=True)
            ],
        }
    )


def _md_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def overdue_markdown(table: pd.DataFrame, rows: int = OVERDUE_ROWS) -> str:
    """The first ``rows`` of :func:`overdue_table` as a Markdown table whose incident codes
    link to the 一张图 page (a real ``<a href>``, which a dataframe canvas would not give)."""
    cols = [c for c in table.columns if c != "link"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.head(rows).iterrows():
        cells = [f"[{_md_cell(r[cols[0]])}]({r['link']})"]
        cells += [_md_cell(r[c]) for c in cols[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


UNIT_FIGURES = ("reported", "closure_rate", "on_time_rate", "open_overdue", "mean_hours")


def unit_table(units: UnitKpis, lang: Lang = "zh") -> pd.DataFrame:
    """One row per unit of ``units`` (the ``None`` unit — incidents in no unit — last, and
    only when it has any): name, code, the headline figures (raw values, rates 0–1) and the
    change of the on-time rate against the previous period (0–1 points)."""
    cur = units.current
    keep = cur.index.notna() | (cur["reported"] + cur["open_overdue"] + cur["closed"] > 0)
    cur = cur[keep]
    out = pd.DataFrame(
        {
            t("inc_col_unit", lang): [
                n if isinstance(n, str) else t("inc_no_unit", lang) for n in cur["name"]
            ],
            t("inc_col_code", lang): [u if isinstance(u, str) else "—" for u in cur.index],
        }
    )
    for f in UNIT_FIGURES:
        out[FIGURES[f][0 if lang == "zh" else 1]] = cur[f].to_numpy()
    if units.previous is not None:
        change = units.change().loc[cur.index, "on_time_rate"]
        out[t("inc_col_on_time_change", lang)] = change.to_numpy()
    return out


def trend_frame(counts: pd.DataFrame, names: Mapping[str, str]) -> pd.DataFrame:
    """The trend's long counts with category names, for a stacked bar chart: ``bin_start``
    (date), ``category`` (name), ``reported``."""
    return pd.DataFrame(
        {
            "bin_start": pd.to_datetime(counts["bin_start"]),
            "category": [names.get(c, c) for c in counts["category_code"]],
            "reported": counts["reported"].astype(int),
        }
    )


# --- charts (Vega-Lite specs; Streamlit bundles Vega, so they draw offline) ----------------


def trend_chart(frame: pd.DataFrame, lang: Lang = "zh") -> alt.Chart:
    """Stacked bars of :func:`trend_frame`: incidents per bin, coloured by category."""
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X(
                "yearmonthdate(bin_start):O",
                title=t("inc_col_bin", lang),
                axis=alt.Axis(format="%m-%d", labelAngle=0),
            ),
            y=alt.Y("sum(reported):Q", title=t("inc_col_reported", lang)),
            color=alt.Color("category:N", title=t("inc_col_category", lang)),
            tooltip=["category", "reported"],
        )
    )


def category_chart(table: pd.DataFrame, lang: Lang = "zh") -> alt.Chart:
    """Horizontal bars of :func:`category_table`, most reported first."""
    return (
        alt.Chart(table)
        .mark_bar()
        .encode(
            x=alt.X("reported:Q", title=t("inc_col_reported", lang)),
            y=alt.Y("name:N", sort="-x", title=None, axis=alt.Axis(labelLimit=200)),
            tooltip=["name", "reported", "previous", "change"],
        )
    )


def tier_chart(tiers: pd.DataFrame, lang: Lang = "zh") -> alt.Chart:
    """Horizontal bars of :func:`tier_table`, grid tier first."""
    return (
        alt.Chart(tiers)
        .mark_bar()
        .encode(
            x=alt.X("closed:Q", title=t("inc_col_closed", lang)),
            y=alt.Y("tier:N", sort=None, title=None),
            tooltip=["tier", "closed", alt.Tooltip("share:Q", format=".1%")],
        )
    )
