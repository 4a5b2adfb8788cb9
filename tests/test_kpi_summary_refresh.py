"""How :func:`store.kpi_summary.refresh` does its work, beside what it computes (which
tests/test_kpi_summary.py checks against the incidents and a rebuild):

- the repeat flags come out the same however small the batches the region is read and
  the neighbour pairs are enumerated in (memory stays bounded on a big load), and equal
  the rule written out in SQL;
- the sums of a few touched days are found through the indexes (migration 0010), not by
  reading the whole incident table once per kind of day.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sqlalchemy import Connection, Engine, text

from store import kpi_summary

#: The repeat rule, written out plainly: an incident is a repeat when an earlier one of
#: its subcategory lies within 30 m (on the ellipsoid) and was reported at most 90 days
#: before it.
_REPEATS_BY_DEFINITION = text(
    """
    SELECT a.id FROM incident a
     WHERE EXISTS (
        SELECT 1 FROM incident b
         WHERE b.category_code = a.category_code
           AND b.reported_at < a.reported_at
           AND b.reported_at >= a.reported_at - make_interval(days => :days)
           AND ST_DWithin(CAST(a.geom AS geography), CAST(b.geom AS geography), :m))
     ORDER BY a.id
    """
)
_FLAGS = text("SELECT incident_id FROM incident_repeat ORDER BY 1")
_SUMS = (
    "SELECT * FROM kpi_street_day ORDER BY street_code, day",
    "SELECT * FROM kpi_street_day_category ORDER BY street_code, day, category_code",
    "SELECT * FROM kpi_street_month_category ORDER BY street_code, month, category_code",
)


def _snapshot(conn: Connection) -> list[list]:
    return [conn.execute(_FLAGS).all()] + [conn.execute(text(q)).all() for q in _SUMS]


@pytest.mark.parametrize(
    ("block", "batch", "nearest", "budget", "slice_rows"),
    [(97, 7, 1, 5, 40), (1, 1, 2, 1, 1), (1 << 22, 32_768, 8, 500_000, 1_000_000)],
)
def test_repeat_flags_do_not_depend_on_the_batches(
    demo_copy: Engine,
    monkeypatch: pytest.MonkeyPatch,
    block: int,
    batch: int,
    nearest: int,
    budget: int,
    slice_rows: int,
) -> None:
    """A rebuild read in blocks of 97 bytes (or 1), in slices of the year holding 40
    incidents to flag (or one day each), looking up the 1 (or 2) nearest neighbours of 7
    candidates (or 1) at a time, with at most 5 (or 1) neighbour pairs a batch for the
    candidates those leave open, flags exactly the incidents the rule names, and gives
    the sums of a rebuild with the default batches."""
    from store import queries

    with demo_copy.begin() as conn:
        kpi_summary.rebuild(conn)
        default = _snapshot(conn)
        rule = kpi_summary.DEFAULT_RULE
        expected = conn.execute(
            _REPEATS_BY_DEFINITION, {"days": rule["repeat_days"], "m": rule["repeat_m"]}
        ).all()
        assert len(expected) > 20  # the demo plants repeats: the check can fail
        monkeypatch.setattr(queries, "_RECORD_BLOCK", block)
        monkeypatch.setattr(kpi_summary, "QUERY_BATCH", batch)
        monkeypatch.setattr(kpi_summary, "NEAREST", nearest)
        monkeypatch.setattr(kpi_summary, "PAIR_BUDGET", budget)
        monkeypatch.setattr(kpi_summary, "SLICE_ROWS", slice_rows)
        slices = []
        real_slices = kpi_summary._slices
        monkeypatch.setattr(
            kpi_summary, "_slices", lambda *a: slices.extend(real_slices(*a)) or slices
        )
        # the small batches also add their flags with the foreign key checked at the end
        monkeypatch.setattr(kpi_summary, "BIG_FLAG_BATCH", 1 if budget < 10 else 10**9)
        kpi_summary.rebuild(conn)
        # the year is read in many slices when they are small, in one when not
        assert (len(slices) > 30) if slice_rows < 100 else (len(slices) == 1)
        assert conn.execute(_FLAGS).all() == expected
        assert (
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_constraint "
                    "WHERE conrelid = 'incident_repeat'::regclass AND contype = 'f'"
                )
            ).scalar_one()
            == 1
        )
        assert _snapshot(conn) == default
        conn.rollback()


def test_slices_cover_the_span_once_and_split_no_day(
    demo_copy: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slices of a refresh are consecutive, start at the span's first microsecond and
    end after its last, begin on a UTC day boundary inside the span, and hold at most
    :data:`SLICE_ROWS` incidents each unless one day holds more."""
    monkeypatch.setattr(kpi_summary, "SLICE_ROWS", 100)
    with demo_copy.connect() as conn:
        lo, hi, x0, y0, x1, y1 = conn.execute(
            text(
                "SELECT min(reported_at), max(reported_at), min(ST_X(geom)), min(ST_Y(geom)), "
                "max(ST_X(geom)), max(ST_Y(geom)) FROM incident"
            )
        ).one()
        lo_us, hi_us = kpi_summary._utc_us(lo), kpi_summary._utc_us(hi)
        slices = kpi_summary._slices(conn, lo_us, hi_us, (x0, y0, x1, y1))
        assert len(slices) > 10
        assert slices[0][0] == lo_us and slices[-1][1] == hi_us + 1
        assert all(b == a2 for (_, b), (a2, _) in itertools.pairwise(slices))
        assert all(a % kpi_summary._DAY_US == 0 for a, _ in slices[1:])
        for a, b in slices:
            n, days = conn.execute(
                text(
                    "SELECT count(*), count(DISTINCT floor(EXTRACT(EPOCH FROM reported_at) "
                    "/ 86400)) FROM incident WHERE reported_at >= :a AND reported_at < :b"
                ),
                {"a": kpi_summary._from_us(a), "b": kpi_summary._from_us(b)},
            ).one()
            assert n <= 100 or days == 1


def test_budget_batches_cover_every_item_once_within_the_budget() -> None:
    rng = np.random.default_rng(3)
    for budget in (1, 5, 40):
        counts = rng.integers(0, 12, size=200)
        counts[17] = 100  # one item over the budget: a batch of its own
        parts = kpi_summary._budget_batches(counts, budget)
        assert [i for p in parts for i in range(len(counts))[p]] == list(range(len(counts)))
        for p in parts:
            assert counts[p].sum() <= budget or p.stop - p.start == 1
    assert kpi_summary._budget_batches(np.array([], dtype=int), 5) == []


def test_refresh_of_one_day_reads_no_whole_table(demo_copy: Engine) -> None:
    """One incident changed in a store of 50,000: the refresh of its (street, day) keys
    reads the few incidents of those days through the indexes of migration 0008 — no
    sequential scan, and not a whole index either (before, no index held the local days
    the statements match on, so every refresh read the table once per kind of day)."""
    cols = (
        "category_code, source, severity, title, occurred_at, reported_at, due_at, "
        "grid_code, street_code, geom"  # the state comes from transitions: none here
    )
    with demo_copy.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO incident (code, {cols}) SELECT code || '-' || k, {cols} "  # noqa: S608
                "FROM incident CROSS JOIN generate_series(1, 24) AS k"
            )
        )
        conn.execute(text("DELETE FROM kpi_dirty_day"))  # the copies' sums are not the point
        conn.execute(text("DELETE FROM kpi_dirty_region"))
        conn.execute(text("ANALYZE incident"))
        total = conn.execute(text("SELECT count(*) FROM incident")).scalar_one()
        assert total >= 40_000
        inc = conn.execute(
            text(
                "SELECT id FROM incident WHERE closed_at IS NOT NULL "
                "ORDER BY reported_at DESC LIMIT 1"
            )
        ).scalar_one()
        conn.execute(text("UPDATE incident SET severity = 4 WHERE id = :id"), {"id": inc})
        assert conn.execute(text("SELECT count(*) FROM kpi_dirty_day")).scalar_one() >= 2
        # a severity moves no repeat: the sums alone are measured (the repeat step reads
        # the window of time around a moved incident, through the indexes too)
        conn.execute(text("DELETE FROM kpi_dirty_region"))
        before = _incident_reads(conn)
        done = kpi_summary.refresh(conn)
        after = _incident_reads(conn)
        conn.rollback()
    assert done["days"] >= 2
    assert after[0] == before[0], "a refresh statement read the incident table in full"
    # the incidents of the touched days (25 copies of a few each), not the table's
    assert after[1] - before[1] < total / 20, (after, before, total)


def _incident_reads(conn: Connection) -> tuple[int, int]:
    """Sequential scans of ``incident`` and rows fetched by its indexes, in this
    transaction so far."""
    seq, fetched = conn.execute(
        text(
            "SELECT seq_scan, COALESCE(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
            "WHERE relid = 'incident'::regclass"
        )
    ).one()
    return int(seq), int(fetched)


def test_many_keys_are_read_in_one_pass_with_the_same_sums(
    demo_copy: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Incidents changed on days spread over the whole period: a quarter of the stored
    keys or more are refreshed by one pass over the incidents (no nested loops of per-key
    index probes), and the sums equal those of the per-key probes and of a rebuild."""
    change = text(
        "UPDATE incident SET severity = 4 - severity "
        "WHERE id IN (SELECT min(id) FROM incident GROUP BY CAST(reported_at AS date))"
    )
    results = []
    chosen: list[bool] = []
    decide = kpi_summary._many_keys

    def spy(conn: Connection, days: int) -> bool:
        chosen.append(decide(conn, days))
        return chosen[-1]

    monkeypatch.setattr(kpi_summary, "_many_keys", spy)
    for many in (True, False):
        monkeypatch.setattr(kpi_summary, "KEY_PASS_MIN", 50 if many else 10**12)
        with demo_copy.begin() as conn:
            conn.execute(text("ANALYZE kpi_street_day"))
            conn.execute(change)
            days = conn.execute(text("SELECT count(DISTINCT day) FROM kpi_dirty_day")).scalar()
            stored = conn.execute(text("SELECT count(*) FROM kpi_street_day")).scalar_one()
            assert days >= kpi_summary.KEY_PASS_SHARE * stored and days >= 50
            kpi_summary.refresh(conn)
            assert chosen[-1] is many
            results.append(_snapshot(conn))
            kpi_summary.rebuild(conn)
            assert _snapshot(conn) == results[-1]
            conn.rollback()
    assert results[0] == results[1]
