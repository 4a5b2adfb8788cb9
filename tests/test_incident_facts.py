"""The incident facts kept for the KPIs (migration 0003): the first reworked / returned /
extended step, and ``repeat_of``, each equal to a plain computation from the log or the
incidents, whatever order things are written in; and the migration's way down and up."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic import command
from pyproj import Geod
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from store.migrate import alembic_config, current_revision, head_revision
from tests import factories as f

GEOD = Geod(ellps="GRS80")
LON, LAT = 120.401, 36.301  # factories.INSIDE

# The first step of each kind from the log alone, and what the incident row holds.
_STEPS_VS_LOG = """
SELECT i.id, i.reworked_at, i.returned_at, i.extended_at, k.reworked, k.returned, k.extended
  FROM incident i
  LEFT JOIN (SELECT incident_id,
                    min(at) FILTER (WHERE to_status = 'reworked') AS reworked,
                    min(at) FILTER (WHERE to_status = 'returned') AS returned,
                    min(at) FILTER (WHERE to_status = 'extended') AS extended
               FROM incident_transition GROUP BY incident_id) k ON k.incident_id = i.id
 WHERE (i.reworked_at, i.returned_at, i.extended_at)
       IS DISTINCT FROM (k.reworked, k.returned, k.extended)
"""

# repeat_of by brute force: every pair of the same subcategory, no index, no cells; the
# latest earlier one within 30 m (ellipsoid) and 90 days, ties by the lowest id.
_REPEATS_VS_BRUTE_FORCE = """
SELECT a.id, a.repeat_of, (
         SELECT b.id FROM incident b
          WHERE b.category_code = a.category_code
            AND b.reported_at < a.reported_at
            AND b.reported_at >= a.reported_at - interval '90 days'
            AND ST_Distance(CAST(a.geom AS geography), CAST(b.geom AS geography)) <= 30
          ORDER BY b.reported_at DESC, b.id
          LIMIT 1) AS brute
  FROM incident a
"""


def _at(day: int, hour: int = 9) -> str:
    return f"2026-03-{day:02d} {hour:02d}:00+08"


def _facts(conn: Connection, inc: int) -> tuple:
    return conn.execute(
        text("SELECT reworked_at, returned_at, extended_at FROM incident WHERE id = :i"),
        {"i": inc},
    ).one()


def _ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("+08", "+08:00"))


def test_step_columns_follow_appended_transitions(conn: Connection) -> None:
    f.area(conn)
    inc = f.incident(conn, reported=_at(2))
    assert _facts(conn, inc) == (None, None, None)
    for status, day in (("reported", 2), ("handling", 3), ("feedback", 4)):
        f.step(conn, inc, status, _at(day))
    assert _facts(conn, inc) == (None, None, None)
    f.step(conn, inc, "reworked", _at(5))
    assert _facts(conn, inc)[0] == _ts(_at(5))
    f.step(conn, inc, "handling", _at(5, 10))
    f.step(conn, inc, "extended", _at(6), new_due_at=_at(20))
    f.step(conn, inc, "handling", _at(6, 10))
    f.step(conn, inc, "feedback", _at(7))
    f.step(conn, inc, "reworked", _at(8))  # a second rework keeps the first time
    f.step(conn, inc, "handling", _at(8, 10))
    f.step(conn, inc, "extended", _at(9), new_due_at=_at(25))  # a second extension too
    assert _facts(conn, inc) == (_ts(_at(5)), None, _ts(_at(6)))
    # several steps of several incidents in one statement (the trigger is per statement)
    other = f.incident(conn, "SJ2", reported=_at(10))
    conn.execute(
        text(
            "INSERT INTO incident_transition (incident_id, at, to_status, tier, actor, "
            "grid_code, street_code) VALUES "
            "(:o, :t1, 'reported', 'grid', 'W1', :g, :s), "
            "(:o, :t2, 'returned', 'grid', 'W1', :g, :s), "
            "(:o, :t3, 'closed', 'grid', 'W1', :g, :s), "
            "(:i, :t2, 'handling', 'grid', 'W1', :g, :s)"
        ),
        {"o": other, "i": inc, "t1": _at(10), "t2": _at(11), "t3": _at(12)}
        | {"g": f.GRID, "s": f.STREET},
    )
    assert _facts(conn, other) == (None, _ts(_at(11)), None)
    assert _facts(conn, inc) == (_ts(_at(5)), None, _ts(_at(6)))
    assert conn.execute(text(_STEPS_VS_LOG)).all() == []


def test_step_columns_cannot_be_written(conn: Connection) -> None:
    f.area(conn)
    inc = f.incident(conn)
    f.step(conn, inc, "reported", _at(2))
    for assignment in (
        "reworked_at = now()",
        "returned_at = now()",
        "extended_at = now()",
        "repeat_of = id",
    ):
        with pytest.raises(DBAPIError, match="change only by appending"), conn.begin_nested():
            conn.execute(
                text("UPDATE incident SET " + assignment + " WHERE id = :i"),  # noqa: S608
                {"i": inc},
            )
    with pytest.raises(DBAPIError, match="derived from incident_transition"), conn.begin_nested():
        conn.execute(
            text(
                "INSERT INTO incident (code, category_code, source, title, occurred_at, "
                "reported_at, due_at, street_code, reworked_at, geom) VALUES ('SJX', '0301', "
                "'app', 't', now(), now(), now() + interval '1 day', :s, now(), "
                "ST_GeomFromText(:p, 4490))"
            ),
            {"s": f.STREET, "p": f.INSIDE},
        )


def _point(metres: float, azimuth: float = 90.0) -> str:
    lon, lat, _ = GEOD.fwd(LON, LAT, azimuth, metres)
    return f"POINT({lon:.10f} {lat:.10f})"


def _put(conn: Connection, code: str, day: int, metres: float, category: str = "0301") -> int:
    return int(
        conn.execute(
            text(
                "INSERT INTO incident (code, category_code, source, severity, title, "
                "occurred_at, reported_at, due_at, grid_code, street_code, geom) VALUES "
                "(:code, :cat, 'patrol', 1, '测试', CAST(:rep AS timestamptz), :rep, "
                "CAST(:rep AS timestamptz) + interval '2 days', :g, :s, "
                "ST_GeomFromText(:p, 4490)) RETURNING id"
            ),
            {
                "code": code,
                "cat": category,
                "rep": _at(day),
                "g": f.GRID,
                "s": f.STREET,
                "p": _point(metres),
            },
        ).scalar_one()
    )


def _repeat_of(conn: Connection) -> dict[str, str | None]:
    rows = conn.execute(
        text(
            "SELECT i.code, r.code FROM incident i LEFT JOIN incident r ON r.id = i.repeat_of "
            "ORDER BY i.code"
        )
    ).all()
    return {a: b for a, b in rows}


def _agrees_with_brute_force(conn: Connection) -> bool:
    return all(r.repeat_of == r.brute for r in conn.execute(text(_REPEATS_VS_BRUTE_FORCE)))


@pytest.mark.parametrize("way", ["probes", "bulk"])
def test_repeat_of_kept_right_whatever_the_order_of_writes(conn: Connection, way: str) -> None:
    f.area(conn)
    if way == "bulk":  # as during a bulk load: the spatial index dropped (rolled back after)
        conn.execute(text("DROP INDEX ix_incident_geom"))
    c = _put(conn, "C", 20, 0)
    assert _repeat_of(conn) == {"C": None}
    _put(conn, "A", 1, 10)  # written after C, reported before it: C repeats A
    assert _repeat_of(conn) == {"A": None, "C": "A"}
    b = _put(conn, "B", 10, 20)  # between them in time: nearest in time wins
    _put(conn, "D", 15, 5, category="0302")  # other subcategory
    _put(conn, "E", 25, 60)  # 40 m from B, 50 m from A, 60 m from C: none
    assert _repeat_of(conn) == {"A": None, "B": "A", "C": "B", "D": None, "E": None}
    assert _agrees_with_brute_force(conn)
    # moving B away: C falls back to A; B repeats nothing
    conn.execute(
        text("UPDATE incident SET geom = ST_GeomFromText(:p, 4490) WHERE id = :b"),
        {"b": b, "p": _point(200, 0)},
    )
    assert _repeat_of(conn) == {"A": None, "B": None, "C": "A", "D": None, "E": None}
    # re-dating C more than 90 days after A: no repeat
    conn.execute(
        text(
            "UPDATE incident SET occurred_at = '2026-06-15 09:00+08', "
            "reported_at = '2026-06-15 09:00+08', due_at = '2026-06-17 09:00+08' WHERE id = :c"
        ),
        {"c": c},
    )
    assert _repeat_of(conn)["C"] is None
    conn.execute(
        text(
            "UPDATE incident SET occurred_at = '2026-03-20 09:00+08', "
            "reported_at = '2026-03-20 09:00+08', due_at = '2026-03-22 09:00+08' WHERE id = :c"
        ),
        {"c": c},
    )
    assert _repeat_of(conn)["C"] == "A"
    # several rows in one statement, some repeating each other
    conn.execute(
        text(
            "INSERT INTO incident (code, category_code, source, severity, title, occurred_at, "
            "reported_at, due_at, grid_code, street_code, geom) "
            "SELECT 'F' || k, '0302', 'patrol', 1, '测试', r, r, r + interval '1 day', :g, :s, "
            "ST_GeomFromText(:p, 4490) FROM generate_series(1, 3) k, "
            "LATERAL (SELECT CAST('2026-03-16 09:00+08' AS timestamptz) + k * interval '1 day' "
            "AS r) t"
        ),
        {"g": f.GRID, "s": f.STREET, "p": _point(3)},
    )
    got = _repeat_of(conn)
    assert (got["F1"], got["F2"], got["F3"]) == ("D", "F1", "F2")
    # deleting A: those that repeated it are looked at again
    conn.execute(text("DELETE FROM incident WHERE code = 'A'"))
    assert _repeat_of(conn)["C"] is None
    assert _agrees_with_brute_force(conn)


def test_repeat_of_on_the_demo_street_equals_brute_force(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        rows = conn.execute(text(_REPEATS_VS_BRUTE_FORCE)).all()
        assert len(rows) > 1500
        wrong = [r for r in rows if r.repeat_of != r.brute]
        assert wrong == []
        assert sum(r.brute is not None for r in rows) > 50  # the demo has repeats
        # the steps written by the demo writer's COPY are on the rows
        assert conn.execute(text(_STEPS_VS_LOG)).all() == []
        # both ways of computing agree: the bulk recomputation (what the demo writer's
        # load used) and the index probes (a few rows) change nothing
        conn.rollback()
        tx = conn.begin()
        try:
            bulk, probes = (
                conn.execute(
                    text(
                        "SELECT incident_repeat_refresh(ARRAY(SELECT id FROM incident), "
                        "'{}', :bulk)"
                    ),
                    {"bulk": way},
                ).scalar_one()
                for way in (True, False)
            )
        finally:
            tx.rollback()
        assert (bulk, probes) == (0, 0)


def test_downgrade_and_upgrade_round_trip(fresh_engine: Engine) -> None:
    with fresh_engine.begin() as conn:
        f.area(conn)
        a = _put(conn, "A", 1, 0)
        _put(conn, "B", 5, 12)
        for status, day in (("reported", 1), ("handling", 2), ("feedback", 3), ("reworked", 4)):
            f.step(conn, a, status, _at(day))
    with fresh_engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0002")
    with fresh_engine.begin() as conn:
        assert current_revision(conn) == "0002"
        columns = set(
            conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_name = 'incident'"
                )
            ).scalars()
        )
        assert not columns & {"reworked_at", "returned_at", "extended_at", "repeat_of"}
        # the 0001 trigger works without the new columns, and new rows are accepted
        f.step(conn, a, "handling", _at(5))
        f.step(conn, a, "extended", _at(6), new_due_at=_at(20))
        _put(conn, "C", 7, 5)
        assert conn.execute(text("SELECT status FROM incident WHERE id = :a"), {"a": a}).scalar()
    with fresh_engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    with fresh_engine.begin() as conn:
        assert current_revision(conn) == head_revision()
        assert conn.execute(text(_STEPS_VS_LOG)).all() == []  # backfilled
        assert _repeat_of(conn) == {"A": None, "B": "A", "C": "B"}
        assert _agrees_with_brute_force(conn)
        assert _facts(conn, a) == (_ts(_at(4)), None, _ts(_at(6)))
