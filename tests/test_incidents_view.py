"""The 事件 page's view model (dashboard/incidents_view.py): URL state round trips and bad
values fall back with a report; presets end on the latest data day; the cards, tables and
links carry geo.kpis' own figures for the demo street."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from dashboard import incidents_view as iv
from geo.category_kpis import category_kpis
from geo.kpis import kpis, kpis_by_unit

STREET = "370214900000"
STREETS = {STREET: "示范街道"}
COMMUNITIES = {STREET[:9] + "001": "白鹭社区", "370214901001": "别的社区"}
CATEGORIES = {"03": "城市管理", "0301": "违规停车"}
LATEST = dt.date(2026, 11, 20)


def parse(params: dict[str, str]) -> tuple[iv.IncidentQuery, list]:
    return iv.parse_query(
        params,
        defaults=iv.default_query(LATEST, STREETS),
        latest=LATEST,
        streets=STREETS,
        communities=COMMUNITIES,
        categories=CATEGORIES,
    )


def test_presets_end_on_the_latest_day() -> None:
    assert iv.preset_range("month", LATEST) == (dt.date(2026, 11, 1), LATEST)
    assert iv.preset_range("last_month", LATEST) == (dt.date(2026, 10, 1), dt.date(2026, 10, 31))
    assert iv.preset_range("quarter", LATEST) == (dt.date(2026, 10, 1), LATEST)
    assert iv.preset_range("year", LATEST) == (dt.date(2026, 1, 1), LATEST)
    assert iv.preset_range("last_month", dt.date(2026, 1, 5)) == (
        dt.date(2025, 12, 1),
        dt.date(2025, 12, 31),
    )
    q = iv.default_query(LATEST, STREETS)
    assert (q.street, q.preset, q.start, q.end) == (STREET, "month", dt.date(2026, 11, 1), LATEST)
    assert iv.default_query(LATEST, {**STREETS, "370214901000": "x"}).street is None


def test_url_round_trip() -> None:
    q = iv.IncidentQuery(
        STREET,
        STREET[:9] + "001",
        "custom",
        dt.date(2026, 3, 2),
        dt.date(2026, 5, 9),
        "0301",
        "grid",
        "month",
    )
    back, bad = parse(iv.to_params(q))
    assert bad == [] and back == q
    assert back.unit == STREET[:9] + "001" and back.unit_level == "grid"


def test_dates_win_over_the_preset_and_name_it() -> None:
    q, bad = parse({"period": "month", "from": "2026-10-01", "to": "2026-10-31"})
    assert bad == [] and q.preset == "last_month"
    q, _ = parse({"period": "year", "from": "2026-02-01", "to": "2026-02-10"})
    assert q.preset == "custom" and (q.start, q.end) == (dt.date(2026, 2, 1), dt.date(2026, 2, 10))
    q, _ = parse({"period": "quarter"})
    assert (q.start, q.end) == (dt.date(2026, 10, 1), LATEST)


def test_bad_values_fall_back_and_are_reported() -> None:
    q, bad = parse(
        {"street": "999", "period": "decade", "category": "99", "by": "x", "from": "2026-02-30"}
    )
    assert {b.key for b in bad} == {"street", "period", "category", "by", "from"}
    assert q == iv.default_query(LATEST, STREETS)
    q, bad = parse({"from": "2026-05-01", "to": "2026-04-01"})
    assert [b.key for b in bad] == ["from/to"] and q.start == dt.date(2026, 11, 1)
    q, bad = parse({"street": STREET, "community": "370214901001"})  # another street's
    assert [b.key for b in bad] == ["community"] and q.community is None


def test_a_community_sets_its_street() -> None:
    q, bad = parse({"community": STREET[:9] + "001"})
    assert bad == [] and q.street == STREET


@given(
    st.dictionaries(
        st.sampled_from(
            ["street", "community", "period", "from", "to", "category", "by", "bin", "zzz"]
        ),
        st.text(max_size=12),
    )
)
def test_any_url_gives_a_valid_state(params: dict[str, str]) -> None:
    q, _bad = parse(params)
    assert q.start <= q.end and q.preset in iv.PRESETS and q.by in iv.BYS
    assert q.street in (None, *STREETS) and q.category in (None, *CATEGORIES)


def test_overview_link() -> None:
    link = iv.overview_link("SJ2026001521", STREET)
    parts = urlsplit(link)
    assert parts.path == "./"
    assert parse_qs(parts.query) == {"street": [STREET], "incident": ["SJ2026001521"]}


def test_formatting() -> None:
    assert iv.format_value("on_time_rate", 0.88172) == "88.2%"
    assert iv.format_value("on_time_rate", None) == "—"
    assert iv.format_change("on_time_rate", -0.037) == "-3.7 个百分点"
    assert iv.format_change("open_overdue", 7) == "+7"
    assert iv.format_value("mean_hours", 51.0006, "en") == "51.0 h"
    assert iv.format_change("mean_hours", None) is None


@pytest.fixture(scope="module")
def report(demo_engine: Engine):
    with demo_engine.connect() as conn:
        return kpis(conn, unit=STREET, start="2026-11-01", end="2026-11-21")


def test_cards_are_geo_figures(report) -> None:
    cards = iv.cards(report)
    assert [c.figure for c in cards] == [
        "closure_rate",
        "on_time_rate",
        "open_overdue",
        "mean_hours",
    ]
    for c in cards:
        cur, prev = getattr(report.figures, c.figure), getattr(report.previous, c.figure)
        assert (c.current, c.previous) == (cur, prev)
        assert c.value == iv.format_value(c.figure, cur)
        assert c.delta == iv.format_change(c.figure, cur - prev)
    on_time = cards[1]
    f = report.figures
    assert f"{f.due_on_time} ÷ 本期到期 {f.due}" in on_time.definition
    for c, (_, color) in zip(cards, iv.CARDS, strict=True):  # grey when unchanged
        assert c.color == ("off" if c.current == c.previous else color)
    assert [color for _, color in iv.CARDS] == ["normal", "normal", "inverse", "inverse"]


def test_tables_are_geo_figures(report, demo_engine: Engine) -> None:
    f = report.figures
    tiers = iv.tier_table(report)
    assert tiers["closed"].tolist() == [
        f.closed_grid,
        f.closed_community,
        f.closed_street,
        f.closed_department,
    ]
    assert tiers["share"].iloc[0] == pytest.approx(f.grid_share)
    cats, level = iv.category_table(report, None)
    assert level == "category" and cats["reported"].sum() == f.reported
    subs, _ = iv.category_table(report, "03")
    top = report.categories.set_index("code").loc["03", "reported"]
    assert subs["reported"].sum() == top and subs["code"].str.startswith("03").all()
    overdue = iv.overdue_rows(report, None)
    assert len(overdue) == f.open_overdue
    table = iv.overdue_table(overdue, {})
    assert table["link"].iloc[0] == iv.overview_link(overdue["code"].iloc[0], STREET)
    md = iv.overdue_markdown(table)
    assert f"[{overdue['code'].iloc[0]}]({table['link'].iloc[0]})" in md
    assert md.count("\n") == 1 + min(len(table), iv.OVERDUE_ROWS)
    assert len(iv.overdue_rows(report, "03")) <= len(overdue)
    with demo_engine.connect() as conn:
        units = kpis_by_unit(conn, "community", "2026-11-01", "2026-11-21", within=STREET)
    ut = iv.unit_table(units)
    assert ut["上报事件数"].sum() == f.reported
    assert ut["超期未办结数"].sum() == f.open_overdue
    comp = iv.comparison_table(report)
    assert len(comp) == len(iv.FIGURES)


def test_cards_of_one_category(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        ck = category_kpis(conn, unit=STREET, start="2026-11-01", end="2026-11-21", category="03")
    for c in iv.cards(ck) + iv.tier_cards(ck):
        assert c.current == getattr(ck.figures, c.figure)
        assert c.value == iv.format_value(c.figure, c.current)
    assert iv.tier_table(ck)["closed"].sum() == ck.figures.closed
    comp = iv.comparison_table(ck)
    assert comp.iloc[0, 1] == str(ck.figures.reported)


def test_charts_carry_the_tables(report) -> None:
    tiers = iv.tier_table(report)
    spec = iv.tier_chart(tiers).to_dict()
    values = next(iter(spec["datasets"].values()))
    assert [v["closed"] for v in values] == tiers["closed"].tolist()
    cats, _ = iv.category_table(report, None)
    spec = iv.category_chart(cats, "en").to_dict()
    assert spec["encoding"]["x"]["title"] == "Reported"
    assert (
        sum(v["reported"] for v in next(iter(spec["datasets"].values()))) == cats["reported"].sum()
    )
