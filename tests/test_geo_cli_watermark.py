"""``python -m geo … --out FILE --user NAME``: every output file carries its watermark where
the format has room (GeoJSON foreign member, Parquet key-value metadata; not CSV) and
writes one audit row with the file's SHA-256, as ``python -m loaders export`` does (issue
7). Against the demo street in real PostGIS."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, text

from geo.__main__ import main
from store import access
from store.settings import get_settings
from store.watermark import WATERMARK_KEY, os_user
from tests.access_data import last_export_audit

STREET = "370214900000"

#: One run of each command, and the formats its result can be written in.
RUNS = {
    "hotspots": (["hotspots", "--street", STREET], (".geojson", ".parquet", ".csv")),
    "emerging": (
        ["emerging", "--street", STREET, "--from", "2025-11-21", "--to", "2026-11-21"],
        (".geojson", ".parquet", ".csv"),
    ),
    "coverage": (
        ["coverage", "--street", STREET, "--from", "2026-11-19", "--to", "2026-11-20"],
        (".parquet", ".csv"),
    ),
    "kpis": (
        ["kpis", "--street", STREET, "--from", "2026-10-01", "--to", "2026-11-01"],
        (".parquet", ".csv"),
    ),
    "assess": (
        ["assess", "--street", STREET, "--month", "2026-10", "--no-patrols"],
        (".parquet", ".csv"),
    ),
}
CASES = [(cmd, suffix) for cmd, (_, suffixes) in RUNS.items() for suffix in suffixes]


@pytest.fixture
def cli_db(demo_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("DATABASE_URL", demo_engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    with demo_engine.begin() as conn:
        if access.get_user(conn, "geo_analyst") is None:
            access.create_user(
                conn, "geo_analyst", "分析员", "sysadmin", None, "Secret123456", actor="test"
            )
    yield demo_engine
    get_settings.cache_clear()


def _last_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT coalesce(max(id), 0) FROM audit_log WHERE action = 'export'")
        ).scalar_one()


def _watermark_in(path: Path) -> dict[str, str] | None:
    """The watermark as the file carries it; None for CSV (no place for one)."""
    if path.suffix == ".geojson":
        return json.loads(path.read_text(encoding="utf-8"))[WATERMARK_KEY]
    if path.suffix == ".parquet":
        meta = pq.read_schema(path).metadata
        return json.loads(meta[WATERMARK_KEY.encode()].decode("utf-8"))
    return None


@pytest.mark.parametrize(("command", "suffix"), CASES)
def test_each_output_is_watermarked_where_it_can_be_and_audited(
    cli_db: Engine, tmp_path: Path, capsys, command: str, suffix: str
) -> None:
    args, _ = RUNS[command]
    out = tmp_path / f"{command}{suffix}"
    before = _last_id(cli_db)
    start = dt.datetime.now(dt.UTC)
    assert main([*args, "--out", str(out), "--user", "geo_analyst"]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    body = out.read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    assert f"sha256 {digest}" in printed
    assert not list(tmp_path.glob("*.partial*"))  # renamed once audited

    row = last_export_audit(cli_db)
    assert row.id > before and (row.login, row.ok) == ("geo_analyst", True)
    detail = row.detail
    assert detail["via"] == "cli" and detail["kind"] == f"geo {command}"
    assert detail["format"] == suffix.lstrip(".")
    assert (detail["sha256"], detail["bytes"]) == (digest, len(body))
    assert detail["out"] == str(out.resolve())
    assert detail["filters"]["street"] == STREET
    assert detail["rows"] > 0
    wm = detail["watermark"]
    assert (wm["user"], wm["login"]) == ("分析员", "geo_analyst")
    made = dt.datetime.fromisoformat(wm["at"])
    assert made.utcoffset() == dt.timedelta(hours=8)
    assert start - dt.timedelta(seconds=1) <= made <= dt.datetime.now(dt.UTC)

    carried = _watermark_in(out)
    if suffix == ".csv":
        assert carried is None
        assert "has no place for the watermark" in printed
        assert body.startswith(b"\xef\xbb\xbf")  # the CSV itself untouched: BOM, then header
        assert b"gridone" not in body
    else:
        assert carried is not None
        assert {k: carried[k] for k in ("user", "login", "at")} == wm
        assert "分析员（geo_analyst）" in carried["text"] and "do not pass on" in carried["text"]


def test_parquet_watermark_keeps_the_geoparquet_metadata(cli_db: Engine, tmp_path: Path) -> None:
    import geopandas as gpd

    out = tmp_path / "hot.parquet"
    assert main([*RUNS["hotspots"][0], "--out", str(out), "--user", "geo_analyst"]) == 0
    assert b"geo" in pq.read_schema(out).metadata
    assert len(gpd.read_parquet(out)) == last_export_audit(cli_db).detail["rows"]


def test_the_default_user_is_whoever_runs_the_command(cli_db: Engine, tmp_path: Path) -> None:
    out = tmp_path / "kpis.csv"
    assert main([*RUNS["kpis"][0], "--out", str(out)]) == 0
    row = last_export_audit(cli_db)
    assert row.login == os_user() and row.detail["watermark"]["user"] == os_user()


def test_a_bad_user_writes_nothing_and_says_why(cli_db: Engine, tmp_path: Path, capsys) -> None:
    out = tmp_path / "kpis.csv"
    before = _last_id(cli_db)
    assert main([*RUNS["kpis"][0], "--out", str(out), "--user", "a\nb"]) == 2
    err = capsys.readouterr().err
    assert "控制字符" in err and "nothing was written" in err
    assert not out.exists()
    assert _last_id(cli_db) == before


def test_csv_output_guards_text_cells_against_formulas(tmp_path: Path) -> None:
    """A grid or category name typed as ``=HYPERLINK(…)`` reaches the analyst's CSV as text
    (``'=…``), never as a formula Excel would run; numbers and codes stay as they were."""
    import pandas as pd

    from geo.output import write_result

    frame = pd.DataFrame({"grid_name": ['=HYPERLINK("x")', "东区"], "z": [-1.25, 2.0]})
    path = write_result(frame, tmp_path / "r.csv")
    back = pd.read_csv(path, encoding="utf-8-sig", dtype=str)
    assert back["grid_name"].tolist() == ['\'=HYPERLINK("x")', "东区"]
    assert back["z"].tolist() == ["-1.25", "2.0"]
