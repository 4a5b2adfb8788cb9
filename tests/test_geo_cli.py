"""``python -m geo``: each analysis from the command line writes the same figures the
Python functions return, in the format the file's extension names; bad input is an error
naming what to fix. Against the demo street in real PostGIS."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from sqlalchemy import Engine

from geo.__main__ import main
from store.settings import get_settings

STREET = "370214900000"


@pytest.fixture
def cli_db(demo_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("DATABASE_URL", demo_engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    yield demo_engine
    get_settings.cache_clear()


def test_hotspots_to_geojson_equal_the_function(cli_db: Engine, tmp_path: Path, capsys) -> None:
    from geo.hotspots import hotspots

    out = tmp_path / "hot.geojson"
    code = main(
        ["hotspots", "--street", STREET, "--unit", "hex", "--resolution", "10", "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "热点 hot" in printed and "written" in printed
    got = gpd.read_file(out).set_index("unit").sort_index()
    with cli_db.connect() as conn:
        exp = hotspots(conn, street=STREET, unit="hex", resolution=10).units
    exp = exp.set_index("unit").sort_index()
    assert got.index.equals(exp.index)
    assert (got["bin"].to_numpy() == exp["bin"].to_numpy()).all()
    assert (got["bin"] > 0).any()


def test_dates_are_beijing_days(cli_db: Engine, tmp_path: Path) -> None:
    from geo.hotspots import hotspots

    out = tmp_path / "hot.csv"
    args = ["hotspots", "--street", STREET, "--from", "2026-06-01", "--to", "2026-07-01"]
    assert main([*args, "--out", str(out)]) == 0
    got = pd.read_csv(out, dtype={"unit": str}, encoding="utf-8-sig")
    assert "wkt" in got.columns
    tz = dt.timezone(dt.timedelta(hours=8))
    with cli_db.connect() as conn:
        exp = hotspots(
            conn,
            street=STREET,
            start=dt.datetime(2026, 6, 1, tzinfo=tz),
            end=dt.datetime(2026, 7, 1, tzinfo=tz),
        ).units
    assert got["count"].sum() == exp["count"].sum() > 0


def test_density_to_parquet(cli_db: Engine, tmp_path: Path) -> None:
    out = tmp_path / "kde.parquet"
    assert main(["density", "--street", STREET, "--out", str(out)]) == 0
    cells = gpd.read_parquet(out)
    assert len(cells) > 0 and (cells["density_km2"] >= 0).all()


def test_unsupported_output_is_named(cli_db: Engine, tmp_path: Path, capsys) -> None:
    assert main(["hotspots", "--street", STREET, "--out", str(tmp_path / "x.shp")]) == 2
    assert ".geojson, .csv or .parquet" in capsys.readouterr().err


def test_a_bad_date_is_refused_before_anything_runs(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["hotspots", "--from", "2026-13-01", "--out", "x.csv"])
    assert exc.value.code == 2
    assert "not a date" in capsys.readouterr().err


def test_emerging_to_geojson_equal_the_function(cli_db: Engine, tmp_path: Path, capsys) -> None:
    from geo.emerging import emerging

    out = tmp_path / "emerging.geojson"
    args = ["emerging", "--street", STREET, "--from", "2025-11-21", "--to", "2026-11-21"]
    assert main([*args, "--out", str(out)]) == 0, capsys.readouterr().err
    assert "emerging" in capsys.readouterr().out
    got = gpd.read_file(out).set_index("unit").sort_index()
    with cli_db.connect() as conn:
        exp = emerging(conn, street=STREET, start="2025-11-21", end="2026-11-21").units
    exp = exp.set_index("unit").sort_index()
    assert (got["pattern"].to_numpy() == exp["pattern"].to_numpy()).all()
    assert (got["pattern"] != 0).any()


def test_emerging_needs_a_period(cli_db: Engine, tmp_path: Path, capsys) -> None:
    assert main(["emerging", "--out", str(tmp_path / "e.csv")]) == 2
    assert "needs --from and --to" in capsys.readouterr().err


def test_repeats_include_the_as_of_day(cli_db: Engine, tmp_path: Path) -> None:
    from geo.repeats import repeat_locations

    out = tmp_path / "repeats.csv"
    assert main(["repeats", "--street", STREET, "--as-of", "2026-11-20", "--out", str(out)]) == 0
    got = pd.read_csv(out, dtype=str, encoding="utf-8-sig")
    with cli_db.connect() as conn:
        exp = repeat_locations(conn, street=STREET, as_of="2026-11-21").locations
    assert len(got) == len(exp) > 0
    assert sorted(got["codes"]) == sorted(";".join(c) for c in exp["codes"])


def test_coverage_by_grid_equals_the_function(cli_db: Engine, tmp_path: Path, capsys) -> None:
    from geo.coverage import coverage_day

    out = tmp_path / "coverage.csv"
    args = ["coverage", "--street", STREET, "--from", "2026-11-18", "--to", "2026-11-20"]
    assert main([*args, "--out", str(out)]) == 0, capsys.readouterr().err
    assert "two-patrol rule met" in capsys.readouterr().out
    got = pd.read_csv(out, dtype={"grid_code": str}, encoding="utf-8-sig")
    assert sorted(got["day"].unique()) == ["2026-11-18", "2026-11-19"]
    with cli_db.connect() as conn:
        exp = coverage_day(conn, dt.date(2026, 11, 19), street=STREET).grid_day
    day = got[got["day"] == "2026-11-19"].set_index("grid_code").sort_index()
    exp = exp.set_index("grid_code").sort_index()
    assert (day["rule_met"].to_numpy() == exp["rule_met"].to_numpy()).all()


def test_unvisited_buildings_to_geojson(cli_db: Engine, tmp_path: Path) -> None:
    out = tmp_path / "unvisited.geojson"
    args = ["coverage", "--by", "unvisited", "--street", STREET, "--from", "2026-11-19"]
    assert main([*args, "--out", str(out)]) == 0
    got = gpd.read_file(out)
    assert len(got) > 0 and (got["not_passed_days"] >= 7).all()


def test_kpis_figures_equal_the_function(cli_db: Engine, tmp_path: Path, capsys) -> None:
    from geo.kpis import kpis

    out = tmp_path / "kpis.csv"
    args = ["kpis", "--street", STREET, "--from", "2026-08-01", "--to", "2026-11-01"]
    assert main([*args, "--out", str(out)]) == 0, capsys.readouterr().err
    assert "办结率" in capsys.readouterr().out
    got = pd.read_csv(out, encoding="utf-8-sig").set_index("figure")
    with cli_db.connect() as conn:
        exp = kpis(conn, unit=STREET, start="2026-08-01", end="2026-11-01").figures
    assert got.loc["reported", "current"] == exp.reported > 0
    assert got.loc["closure_rate", "current"] == pytest.approx(exp.closure_rate)
    assert got.loc["open_overdue", "current"] == exp.open_overdue


def test_kpis_by_grid_have_a_row_per_grid(cli_db: Engine, tmp_path: Path) -> None:
    out = tmp_path / "by_grid.parquet"
    args = ["kpis", "--unit", STREET, "--by", "grid", "--from", "2026-10-01", "--to", "2026-11-01"]
    assert main([*args, "--out", str(out)]) == 0
    got = pd.read_parquet(out)
    assert got["unit"].notna().sum() == 41
    assert "previous_reported" in got.columns


def test_assess_writes_grades_within_the_caps(cli_db: Engine, tmp_path: Path) -> None:
    out = tmp_path / "assess.csv"
    args = ["assess", "--street", STREET, "--month", "2026-10", "--no-patrols"]
    assert main([*args, "--out", str(out)]) == 0
    got = pd.read_csv(out, encoding="utf-8-sig")
    assert len(got) > 0
    assert (got["grade"] == "good").sum() <= 0.2 * len(got)
    assert (got["grade"] == "fairly_good").sum() <= 0.3 * len(got)


def test_hot_but_under_patrolled(cli_db: Engine, tmp_path: Path, capsys) -> None:
    base = ["hotspots", "--street", STREET, "--unit", "hex", "--resolution", "10"]
    # one day of tracks: a few hot cells have buildings nobody passed that day
    period = ["--from", "2026-08-21", "--to", "2026-11-21", "--coverage-days", "1"]
    listed = {}
    for share in ("1", "0.99", "0"):
        out = tmp_path / f"under_{share}.csv"
        assert main([*base, *period, "--under-patrolled", share, "--out", str(out)]) == 0
        listed[share] = pd.read_csv(out, encoding="utf-8-sig")
        assert (listed[share]["bin"] > 0).all()
        covered = listed[share]["coverage"]
        assert (covered.isna() | (covered < float(share))).all()
    assert len(listed["1"]) >= len(listed["0.99"]) >= len(listed["0"])
    assert len(listed["1"]) > 0
    assert "hot but under-patrolled" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*base, "--under-patrolled", "1.5", "--out", str(tmp_path / "x.csv")])
    assert "between 0 and 1" in capsys.readouterr().err
