"""What the briefing says, once, for both the PDF and the Word copy: the title, the header
lines and the sections (paragraphs, tables of strings, map images), built from
:class:`~dashboard.briefing.data.BriefingData` by formatting geo's figures — no figure is
computed here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from dashboard import hotspot_view as hv
from dashboard.briefing.data import (
    COVERAGE_DAYS,
    COVERAGE_MIN,
    KEY_FIGURES,
    TOP_HOT,
    TOP_OVERDUE,
    BriefingData,
    coverage_total,
    hot_count,
)
from dashboard.briefing.maps import MapImages
from dashboard.i18n import t
from geo.kpis import FIGURES
from store.vocab import Lang

DASH = "—"


@dataclass(frozen=True)
class Table:
    """A table of formatted cells; ``numeric`` marks right-aligned columns."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]


@dataclass(frozen=True)
class Image:
    """A map: PNG bytes and its caption."""

    png: bytes
    caption: str


Block = str | Table | Image


@dataclass(frozen=True)
class Section:
    """A numbered section: its heading and blocks in order."""

    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Document:
    """The whole briefing, in one language."""

    lang: Lang
    title: str
    meta: tuple[str, ...]
    sections: tuple[Section, ...]
    footer: str


# --- formatting ------------------------------------------------------------------------------


def fmt_value(kind: str, value: float | None) -> str:
    """A figure as printed: counts with thousands separators, rates in percent with one
    decimal, hours with one decimal; None as a dash."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return DASH
    if kind == "count":
        return f"{int(value):,}"
    if kind == "rate":
        return f"{value * 100:.1f}%"
    return f"{value:,.1f}"


def fmt_change(kind: str, value: float | None, lang: Lang = "zh") -> str:
    """A change on the previous period: signed; rates in percentage points."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return DASH
    if kind == "count":
        return f"{int(value):+,}"
    if kind == "rate":
        points = round(value * 100, 1)
        return t("br_pp", lang, value=0.0 if points == 0 else points)  # no "-0.0"
    hours = round(value, 1)
    return f"{0.0 if hours == 0 else hours:+,.1f}"


def fmt_time(value: Any, tz: str, lang: Lang = "zh") -> str:
    """A moment in local time, to the minute; missing as "none"."""
    if value is None or pd.isna(value):
        return t("br_none", lang)
    return pd.Timestamp(value).tz_convert(tz).strftime("%Y-%m-%d %H:%M")


def _cell(value: Any, decimals: int = 0) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return DASH
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{float(value):,.{decimals}f}"
    return str(value)


def _frame_table(frame: pd.DataFrame, decimals: dict[str, int] | None = None) -> Table:
    decimals = decimals or {}
    numeric = tuple(pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns)
    rows = tuple(
        tuple(_cell(v, decimals.get(c, 0)) for c, v in zip(frame.columns, row, strict=True))
        for row in frame.itertuples(index=False, name=None)
    )
    return Table(tuple(str(c) for c in frame.columns), rows, numeric)


def _day(d: dt.date) -> str:
    return d.isoformat()


# --- sections --------------------------------------------------------------------------------


def key_figures(data: BriefingData, lang: Lang = "zh") -> Table:
    """Key figures of :data:`KEY_FIGURES`: label, this period, previous, change."""
    cur, prev = data.report.figures.as_dict(), data.report.previous.as_dict()
    rows = []
    for name in KEY_FIGURES:
        zh, en, kind = FIGURES[name]
        c, p = cur[name], prev[name]
        change = None if c is None or p is None else c - p
        rows.append(
            (
                zh if lang == "zh" else en,
                fmt_value(kind, c),
                fmt_value(kind, p),
                fmt_change(kind, change, lang),
            )
        )
    header = tuple(
        t(k, lang) for k in ("br_col_figure", "br_col_current", "br_col_previous", "br_col_change")
    )
    return Table(header, tuple(rows), (False, True, True, True))


def top_hotspots(data: BriefingData, lang: Lang = "zh") -> pd.DataFrame:
    """The hottest hexagons as the hotspots page ranks them (:func:`hv.hot_units`)."""
    return hv.hot_units(data.hot.units, lang, grids=data.grid_rates).head(TOP_HOT)


def under_patrolled_table(data: BriefingData, lang: Lang = "zh") -> pd.DataFrame | None:
    """The under-patrolled hot units as the hotspots page lists them; None without
    tracks."""
    if data.under is None:
        return None
    return hv.under_patrolled_units(data.under, lang, grids=data.grid_rates)


def overdue_table(data: BriefingData, lang: Lang = "zh") -> pd.DataFrame:
    """The most overdue open cases (:attr:`geo.kpis.KpiReport.overdue`, its order)."""
    od = data.report.overdue.head(TOP_OVERDUE)
    tz = data.report.period.tz
    return pd.DataFrame(
        {
            t("br_col_incident", lang): od["code"].astype(str),
            t("br_col_category", lang): od["category_zh" if lang == "zh" else "category_en"],
            t("br_col_grid", lang): od["grid_code"].fillna(DASH).astype(str),
            t("br_col_reported", lang): [fmt_time(v, tz, lang) for v in od["reported_at"]],
            t("br_col_deadline", lang): [fmt_time(v, tz, lang) for v in od["deadline"]],
            t("br_col_days_overdue", lang): od["days_overdue"].astype(float),
        }
    )


def unit_table(data: BriefingData, lang: Lang = "zh") -> Table:
    """One row per community (street) from :func:`geo.kpis.kpis_by_unit`: reported this and
    the previous period, closure and on-time rates, open overdue."""
    cur, prev = data.by_unit.current, data.by_unit.previous
    rows = []
    for unit, r in cur.iterrows():
        p_reported = int(prev.loc[unit, "reported"]) if prev is not None else None
        if unit is None or (isinstance(unit, float) and np.isnan(unit)):
            if r["reported"] == 0 and not p_reported:
                continue
            name = t("br_unit_none", lang)
        else:
            name = str(r["name"]) if isinstance(r["name"], str) else str(unit)
        rows.append(
            (
                name,
                fmt_value("count", r["reported"]),
                fmt_value("count", p_reported),
                fmt_value("rate", _none(r["closure_rate"])),
                fmt_value("rate", _none(r["on_time_rate"])),
                fmt_value("count", r["open_overdue"]),
            )
        )
    header = (
        t("br_col_unit", lang),
        FIGURES["reported"][0 if lang == "zh" else 1],
        t("br_col_previous", lang),
        FIGURES["closure_rate"][0 if lang == "zh" else 1],
        FIGURES["on_time_rate"][0 if lang == "zh" else 1],
        FIGURES["open_overdue"][0 if lang == "zh" else 1],
    )
    return Table(header, tuple(rows), (False, True, True, True, True, True))


def _none(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def build_document(data: BriefingData, maps: MapImages, lang: Lang = "zh") -> Document:
    """The briefing's content in ``lang``."""
    rep = data.report
    tz = rep.period.tz
    prev = rep.previous_period
    meta = (
        t("br_meta_scope", lang, name=data.name),
        t(
            "br_meta_period",
            lang,
            start=_day(data.start),
            end=_day(data.last_day),
            prev_start=_day(prev.start),
            prev_end=_day(prev.end - dt.timedelta(days=1)),
        ),
        t("br_meta_generated", lang, at=data.generated_at.strftime("%Y-%m-%d %H:%M")),
        t(
            "br_meta_fresh",
            lang,
            incident=fmt_time(data.freshness.last_incident, tz, lang),
            patrol=fmt_time(data.freshness.last_patrol_fix, tz, lang),
        ),
    )
    as_of = _day(data.coverage_as_of)
    sections = [
        Section(t("br_sec_figures", lang), (key_figures(data, lang),)),
        Section(
            t("br_sec_maps", lang),
            (
                Image(maps.indicator, t("br_map_indicator", lang)),
                Image(maps.hotspots, t("br_map_hotspots", lang)),
                Image(maps.coverage, t("br_map_coverage", lang, days=COVERAGE_DAYS, as_of=as_of)),
            ),
        ),
    ]

    p = data.hot.params
    n_hot = hot_count(data)
    hot_blocks: list[Block] = [
        t(
            "br_hot_summary",
            lang,
            unit=hv.unit_text(p.resolution, lang),
            n_units=p.n_units,
            n_incidents=p.n_incidents,
            fdr=t("fdr_on" if p.fdr else "fdr_off", lang),
            n_hot=n_hot,
        )
    ]
    hot_blocks += [n.zh if lang == "zh" else n.en for n in p.notes]
    ranked = top_hotspots(data, lang)
    hot_blocks.append(
        _frame_table(ranked, {t("col_z", lang): 2}) if len(ranked) else t("no_hot", lang)
    )
    sections.append(Section(t("br_sec_hotspots", lang, n=TOP_HOT), tuple(hot_blocks)))

    under_blocks: list[Block] = []
    total = coverage_total(data)
    least = round(COVERAGE_MIN * 100)
    if total is None:
        under_blocks.append(t("under_no_tracks", lang, days=COVERAGE_DAYS, end=as_of))
    else:
        passed, n = total
        share = fmt_value("rate", passed / n if n else None)
        under_blocks.append(
            t(
                "br_coverage_total",
                lang,
                days=COVERAGE_DAYS,
                share=share,
                passed=f"{passed:,}",
                total=f"{n:,}",
            )
        )
        table = under_patrolled_table(data, lang)
        if n_hot == 0:
            under_blocks.append(t("under_no_hot", lang))
        elif table is None or table.empty:
            under_blocks.append(t("under_none", lang, days=COVERAGE_DAYS, min=least))
        else:
            under_blocks.append(
                t(
                    "br_under_caption",
                    lang,
                    days=COVERAGE_DAYS,
                    as_of=as_of,
                    min=least,
                    n=len(table),
                )
            )
            under_blocks.append(_frame_table(table))
    sections.append(Section(t("br_sec_under", lang), tuple(under_blocks)))

    n_over = len(rep.overdue)
    shown = t("br_shown_first", lang, k=TOP_OVERDUE) if n_over > TOP_OVERDUE else ""
    over_blocks: list[Block] = [
        t(
            "br_overdue_caption",
            lang,
            as_of=rep.period.as_of.strftime("%Y-%m-%d %H:%M"),
            n=n_over,
            shown=shown,
        )
    ]
    if n_over:
        over_blocks.append(
            _frame_table(overdue_table(data, lang), {t("br_col_days_overdue", lang): 1})
        )
    sections.append(Section(t("br_sec_overdue", lang), tuple(over_blocks)))

    key = "br_sec_units_community" if data.scope == "street" else "br_sec_units_street"
    sections.append(Section(t(key, lang), (unit_table(data, lang),)))

    src = data.sources
    sources = Table(
        tuple(t(k, lang) for k in ("br_col_kind", "br_col_source", "br_col_loaded", "br_col_rows")),
        tuple(
            (str(r.kind), str(r.source), fmt_time(r.loaded_at, tz, lang), f"{int(r.rows):,}")
            for r in src.itertuples(index=False)
        ),
        (False, False, False, True),
    )
    sections.append(
        Section(
            t("br_sec_sources", lang),
            (meta[3], sources, t("br_sources_note", lang)),
        )
    )
    return Document(
        lang=lang,
        title=t("br_title", lang, name=data.name),
        meta=meta,
        sections=tuple(sections),
        footer=t("br_footer", lang, page="{page}"),
    )
