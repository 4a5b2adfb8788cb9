"""The incident workflow log drives the incident's status, in the database itself."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from store import vocab
from store.errors import explain
from tests import factories as f

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def state(conn: Connection, incident_id: int) -> tuple:
    return conn.execute(
        text(
            "SELECT status, tier, closed_at IS NOT NULL, extended_due_at FROM incident "
            "WHERE id = :i"
        ),
        {"i": incident_id},
    ).one()


def mismatches(conn: Connection) -> int:
    return conn.execute(text("SELECT count(*) FROM incident_status_mismatch")).scalar_one()


@pytest.fixture
def inc(conn: Connection) -> int:
    f.area(conn)
    return f.incident(conn)


def test_status_tier_and_closure_follow_the_log(conn: Connection, inc: int) -> None:
    assert state(conn, inc) == (None, None, False, None)
    f.step(conn, inc, "reported", "2026-03-02 09:00+08")
    f.step(conn, inc, "registered", "2026-03-02 09:10+08")
    f.step(conn, inc, "escalated", "2026-03-02 10:00+08", tier="community")
    assert state(conn, inc)[:3] == ("escalated", "community", False)
    f.step(conn, inc, "dispatched", "2026-03-02 10:30+08", tier="community")
    f.step(conn, inc, "handling", "2026-03-02 11:00+08", tier="community")
    f.step(
        conn,
        inc,
        "extended",
        "2026-03-03 11:00+08",
        tier="community",
        new_due_at="2026-03-09 00:00+08",
    )
    f.step(conn, inc, "feedback", "2026-03-05 11:00+08", tier="community")
    f.step(conn, inc, "verified", "2026-03-05 15:00+08", tier="community")
    f.step(conn, inc, "closed", "2026-03-05 16:00+08", tier="community")
    status, tier, closed, extended = state(conn, inc)
    assert (status, tier, closed) == ("closed", "community", True)
    assert extended == dt.datetime(2026, 3, 8, 16, 0, tzinfo=dt.UTC)
    f.step(conn, inc, "reopened", "2026-03-06 09:00+08", tier="community")
    assert state(conn, inc)[:3] == ("reopened", "community", False)
    assert mismatches(conn) == 0


def test_many_rows_in_one_statement_are_checked_in_time_order(conn: Connection, inc: int) -> None:
    other = f.incident(conn, "SJ2")
    conn.execute(
        text(
            "INSERT INTO incident_transition (incident_id, at, to_status, tier, actor, "
            "grid_code, street_code) SELECT i, CAST(at AS timestamptz), s, 'grid', 'W1', :g, :st "
            "FROM (VALUES (:a, '2026-03-02 09:20+08', 'registered'), "
            "(:a, '2026-03-02 09:00+08', 'reported'), (:b, '2026-03-02 09:05+08', 'reported'))"
            " AS v(i, at, s)"
        ),
        {"a": inc, "b": other, "g": f.GRID, "st": f.STREET},
    )
    assert state(conn, inc)[0] == "registered"
    assert state(conn, other)[0] == "reported"


REFUSED = [
    (["reported", "closed"], ["grid", "grid"], "reported -> closed is not an allowed step"),
    (["registered"], ["grid"], r"\(start\) -> registered is not an allowed step"),
    (
        ["reported", "registered", "escalated"],
        ["community", "community", "grid"],
        "escalated must move the case up a tier",
    ),
    (["reported", "registered"], ["grid", "street"], "registered keeps the tier"),
]


@pytest.mark.parametrize(("steps", "tiers", "message"), REFUSED)
def test_illegal_steps_are_refused(conn, inc, steps, tiers, message) -> None:
    # the failing step is the last of a sequence: the whole sequence runs inside raises
    with pytest.raises(DBAPIError, match=message) as info, conn.begin_nested():  # noqa: PT012
        for i, (s, t) in enumerate(zip(steps, tiers, strict=True)):
            f.step(conn, inc, s, (T0 + dt.timedelta(minutes=i)).isoformat(), tier=t)
    assert "incident SJ1" in str(explain(info.value))
    assert state(conn, inc) == (None, None, False, None)


def test_out_of_order_transition_is_refused(conn: Connection, inc: int) -> None:
    f.step(conn, inc, "reported", "2026-03-02 09:00+08")
    f.step(conn, inc, "registered", "2026-03-02 09:30+08")
    with pytest.raises(DBAPIError, match="out of order"), conn.begin_nested():
        f.step(conn, inc, "dispatched", "2026-03-02 09:10+08")
    assert state(conn, inc)[0] == "registered"


def test_derived_columns_cannot_be_written(conn: Connection, inc: int) -> None:
    f.step(conn, inc, "reported", "2026-03-02 09:00+08")
    with pytest.raises(DBAPIError, match="change only by appending"), conn.begin_nested():
        conn.execute(text("UPDATE incident SET status = 'closed' WHERE id = :i"), {"i": inc})
    with pytest.raises(DBAPIError, match="derived from incident_transition"), conn.begin_nested():
        conn.execute(
            text(
                "INSERT INTO incident (code, category_code, source, title, occurred_at, "
                "reported_at, due_at, street_code, status, geom) VALUES ('SJX', '0301', "
                "'app', 't', now(), now(), now() + interval '1 day', :s, 'closed', "
                "ST_GeomFromText(:p, 4490))"
            ),
            {"s": f.STREET, "p": f.INSIDE},
        )
    # other columns stay editable
    conn.execute(text("UPDATE incident SET title = '新标题' WHERE id = :i"), {"i": inc})


def test_log_is_append_only_but_goes_with_its_incident(conn: Connection, inc: int) -> None:
    f.step(conn, inc, "reported", "2026-03-02 09:00+08")
    with pytest.raises(DBAPIError, match="append-only: UPDATE"), conn.begin_nested():
        conn.execute(text("UPDATE incident_transition SET note = 'x'"))
    with pytest.raises(DBAPIError, match="append-only: DELETE"), conn.begin_nested():
        conn.execute(text("DELETE FROM incident_transition"))
    conn.execute(text("DELETE FROM incident WHERE id = :i"), {"i": inc})
    assert conn.execute(text("SELECT count(*) FROM incident_transition")).scalar_one() == 0


def _walks(max_len: int = 14):
    """Random walks through the workflow, legal or not, with tiers."""
    return st.lists(
        st.tuples(st.sampled_from(vocab.INCIDENT_STATUSES), st.sampled_from(vocab.TIERS)),
        min_size=1,
        max_size=max_len,
    )


def _legal_prefix(walk: list[tuple[str, str]]) -> int:
    """How many leading steps of ``walk`` the rules allow (the model of the trigger)."""
    status, tier = None, None
    for n, (to, t) in enumerate(walk):
        if to not in vocab.WORKFLOW.get(status, ()):
            return n
        if tier is not None:
            up, prev = vocab.TIERS.index(t), vocab.TIERS.index(tier)
            ok = up > prev if to == "escalated" else up <= prev if to == "returned" else t == tier
            if not ok:
                return n
        status, tier = to, t
    return len(walk)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(walk=_walks())
def test_stored_status_always_equals_the_log(conn: Connection, inc: int, walk) -> None:
    """Append each step of a random walk; the database accepts exactly the legal prefix and
    the incident's status always equals the last accepted step."""
    sp = conn.begin_nested()
    try:
        accepted = 0
        for i, (to, tier) in enumerate(walk):
            due = (T0 + dt.timedelta(days=30)).isoformat() if to == "extended" else None
            try:
                with conn.begin_nested():
                    f.step(conn, inc, to, (T0 + dt.timedelta(hours=i)).isoformat(), tier, due)
                accepted += 1
            except DBAPIError:
                break
        assert accepted == _legal_prefix(walk)
        status, tier_now, closed, _ = state(conn, inc)
        last = walk[accepted - 1] if accepted else (None, None)
        assert (status, tier_now) == last
        assert closed == (status == "closed")
        assert mismatches(conn) == 0
    finally:
        sp.rollback()


def test_concurrent_appends_cannot_fork_the_log(fresh_engine) -> None:
    """T1 appends 'feedback' at 12:00 and holds its transaction open; T2 appends 'extended'
    at 11:00 to the same incident. T2 waits for T1, then sees T1's step and is refused."""
    import threading

    with fresh_engine.begin() as conn:
        f.area(conn)
        inc = f.incident(conn)
        for i, s in enumerate(("reported", "registered", "dispatched", "handling")):
            f.step(conn, inc, s, f"2026-03-02 0{i + 8}:00+08")
    outcome: dict[str, object] = {}
    t1 = fresh_engine.connect()
    t1.begin()
    f.step(t1, inc, "feedback", "2026-03-02 12:00+08")

    def second() -> None:
        with fresh_engine.connect() as t2:
            t2.begin()
            try:
                f.step(t2, inc, "extended", "2026-03-02 11:00+08", new_due_at="2026-03-20 00:00+08")
                t2.commit()
                outcome["t2"] = "committed"
            except DBAPIError as exc:
                outcome["t2"] = str(exc.orig)

    worker = threading.Thread(target=second)
    worker.start()
    worker.join(timeout=1.0)
    assert worker.is_alive(), "T2 must wait for T1's lock on the incident"
    t1.commit()
    t1.close()
    worker.join(timeout=30)
    assert "out of order" in str(outcome["t2"])
    with fresh_engine.connect() as conn:
        assert state(conn, inc)[0] == "feedback"
        assert mismatches(conn) == 0


def test_transition_ids_cannot_be_chosen(conn: Connection, inc: int) -> None:
    with pytest.raises(DBAPIError, match="GENERATED ALWAYS"), conn.begin_nested():
        conn.execute(
            text(
                "INSERT INTO incident_transition (id, incident_id, at, to_status, tier, actor, "
                "grid_code, street_code) VALUES (1, :i, now(), 'reported', 'grid', 'W1', :g, :s)"
            ),
            {"i": inc, "g": f.GRID, "s": f.STREET},
        )


def test_truncating_the_log_needs_a_deliberate_setting(conn: Connection, inc: int) -> None:
    f.step(conn, inc, "reported", "2026-03-02 09:00+08")
    with pytest.raises(DBAPIError, match="TRUNCATE refused"), conn.begin_nested():
        conn.execute(text("TRUNCATE incident CASCADE"))
    with conn.begin_nested():
        conn.execute(text("SET LOCAL gridone.allow_truncate = on"))
        conn.execute(text("TRUNCATE incident CASCADE"))
        assert conn.execute(text("SELECT count(*) FROM incident")).scalar_one() == 0
