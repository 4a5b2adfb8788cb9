"""The patrol loader's post-load step reaches the stored coverage through its own command
(``python -m geo coverage-store --days``), never by importing geo (layers run one way;
tests/test_code_quality.py checks the imports). The whole path, a load dropping a stored
day and the step computing it again, is tests/test_coverage_store.py's
``test_reloading_a_days_tracks_with_the_loader_recomputes_that_day``."""

from __future__ import annotations

import datetime as dt

import pytest

import loaders.__main__ as cli


def test_a_failing_coverage_step_says_what_to_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The step fails (here: a command that exits 3): the loader says so, Chinese first,
    names the command that computes the days, and the load itself stands."""
    monkeypatch.setattr(
        cli, "COVERAGE_COMMAND", ("-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)")
    )
    days = [dt.date(2026, 11, 19), dt.date(2026, 11, 20)]
    assert cli._refresh_coverage(days) is False
    err = capsys.readouterr().err
    assert err.startswith("警告 / warning: 巡查覆盖未能重新计算")
    assert "python -m geo coverage-store --days 2026-11-19,2026-11-20" in err
    assert "boom" in err


def test_the_coverage_step_prints_the_days_it_computed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The days the command reports computed are what the loader prints; a command that
    computed none prints nothing."""
    line = "已重新计算巡查覆盖 / stored coverage recomputed for 1 day(s): 2026-11-19"
    monkeypatch.setattr(cli, "COVERAGE_COMMAND", ("-c", f"print({line!r})"))
    assert cli._refresh_coverage([dt.date(2026, 11, 19)]) is True
    assert capsys.readouterr().out.strip() == line
    none = "已重新计算巡查覆盖 / stored coverage recomputed for 0 day(s): "
    monkeypatch.setattr(cli, "COVERAGE_COMMAND", ("-c", f"print({none!r})"))
    assert cli._refresh_coverage([dt.date(2026, 11, 19)]) is True
    assert capsys.readouterr().out == ""
