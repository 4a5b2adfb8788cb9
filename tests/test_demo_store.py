"""The demo street as stored in PostGIS: tiling, assignment, counts, workflow mix, and
all-or-nothing writes."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, text

from loaders.demo.load import StoreNotEmptyError, write_demo

METRIC = 4549  # CGCS2000 / 3-degree GK CM 120E, the demo's zone


def scalar(engine: Engine, sql: str, **params: object):
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def test_grids_tile_the_street_without_gaps_or_overlaps(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        street, union, total, communities = conn.execute(
            text(
                """
                SELECT (SELECT sum(ST_Area(ST_Transform(geom, :srid)))
                          FROM admin_unit WHERE level = 'street'),
                       (SELECT ST_Area(ST_Transform(ST_Union(geom), :srid)) FROM grid),
                       (SELECT sum(ST_Area(ST_Transform(geom, :srid))) FROM grid),
                       (SELECT sum(ST_Area(ST_Transform(geom, :srid)))
                          FROM admin_unit WHERE level = 'community')
                """
            ),
            {"srid": METRIC},
        ).one()
    assert 3e6 < street < 2e7  # a plausible street: 3–20 km²
    assert abs(union - street) / street < 0.001  # no gaps
    assert abs(total - union) / union < 0.001  # no overlaps
    assert abs(communities - street) / street < 0.001


def test_each_grid_lies_in_its_community(demo_engine: Engine) -> None:
    outside = scalar(
        demo_engine,
        """SELECT count(*) FROM grid g JOIN admin_unit c ON c.code = g.community_code
            WHERE ST_Area(ST_Transform(ST_Difference(g.geom, c.geom), :srid)) > 1""",
        srid=METRIC,
    )
    assert outside == 0


def test_every_building_in_exactly_one_grid_its_own(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        rows = conn.execute(
            text(
                """SELECT b.code, b.grid_code, array_agg(g.code) AS containing
                     FROM building b LEFT JOIN grid g ON ST_Covers(g.geom, b.geom)
                    GROUP BY b.code, b.grid_code"""
            )
        ).all()
    assert len(rows) > 2000
    wrong = [r for r in rows if r.containing != [r.grid_code]]
    assert wrong == []


def test_incidents_lie_in_their_grid_or_are_listed_outside(demo_engine: Engine, demo) -> None:
    with demo_engine.connect() as conn:
        mismatched = conn.execute(
            text(
                """SELECT count(*) FROM incident i
                    WHERE i.grid_code IS NOT NULL AND NOT EXISTS (
                      SELECT 1 FROM grid g WHERE g.code = i.grid_code
                         AND ST_Covers(g.geom, i.geom))"""
            )
        ).scalar_one()
        outside = (
            conn.execute(text("SELECT code FROM incident WHERE grid_code IS NULL ORDER BY code"))
            .scalars()
            .all()
        )
        inside_none = conn.execute(
            text(
                "SELECT count(*) FROM incident i JOIN grid g ON ST_Covers(g.geom, i.geom) "
                "WHERE i.grid_code IS NULL"
            )
        ).scalar_one()
    assert mismatched == 0
    assert inside_none == 0
    truth_outside = demo.truth.get("outside_incidents") or demo.truth.get("incidents_outside")
    assert sorted(outside) == sorted(truth_outside)


def test_counts_as_specified(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        counts = dict(
            conn.execute(
                text(
                    """SELECT 'communities', count(*) FROM admin_unit WHERE level = 'community'
                       UNION ALL SELECT 'streets', count(*) FROM admin_unit WHERE level='street'
                       UNION ALL SELECT 'grids', count(*) FROM grid
                       UNION ALL SELECT 'buildings', count(*) FROM building
                       UNION ALL SELECT 'housing', count(*) FROM housing_unit
                       UNION ALL SELECT 'cameras', count(*) FROM facility
                                  WHERE kind LIKE 'camera%'
                       UNION ALL SELECT 'workers', count(*) FROM staff
                                  WHERE role = 'grid_worker'
                       UNION ALL SELECT 'grids_with_worker', count(*) FROM grid
                                  WHERE worker_id IS NOT NULL
                       UNION ALL SELECT 'incidents', count(*) FROM incident
                       UNION ALL SELECT 'places', count(*) FROM key_place
                       UNION ALL SELECT 'fix_days', count(DISTINCT
                                  (fixed_at AT TIME ZONE 'Asia/Shanghai')::date) FROM patrol_fix
                       UNION ALL SELECT 'support_roles', count(DISTINCT role) FROM staff"""
                )
            ).all()
        )
    assert counts["streets"] == 1
    assert counts["communities"] == 9
    assert counts["grids"] == 41
    assert counts["workers"] == 41
    assert counts["grids_with_worker"] == 41
    assert 2500 <= counts["buildings"] <= 3500
    assert 8000 <= counts["housing"] <= 14000
    assert 110 <= counts["cameras"] <= 150
    assert 1700 <= counts["incidents"] <= 2400
    assert counts["places"] >= 30
    assert counts["support_roles"] >= 6
    assert 15 <= counts["fix_days"] <= 26  # working days within 30 calendar days


def test_status_and_escalation_mix(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        mix = conn.execute(
            text(
                """
                SELECT count(*) AS n,
                       count(*) FILTER (WHERE status = 'closed') AS closed,
                       count(*) FILTER (WHERE status IN
                           ('reported','registered','dispatched','handling','extended',
                            'reworked','escalated','returned','reopened')) AS pending,
                       count(*) FILTER (WHERE status = 'feedback') AS awaiting_review,
                       count(*) FILTER (WHERE status <> 'closed'
                                        AND coalesce(extended_due_at, due_at) < (
                                            SELECT max(reported_at) FROM incident)) AS overdue,
                       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM incident_transition t
                           WHERE t.incident_id = i.id AND t.to_status = 'escalated'
                             AND t.tier = 'community')) AS to_community,
                       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM incident_transition t
                           WHERE t.incident_id = i.id AND t.to_status = 'escalated'
                             AND t.tier = 'street')) AS to_street,
                       count(*) FILTER (WHERE closed_at > coalesce(extended_due_at, due_at))
                           AS closed_late
                  FROM incident i
                """
            )
        ).one()
        mismatches = conn.execute(text("SELECT count(*) FROM incident_status_mismatch"))
        mismatches = mismatches.scalar_one()
    assert mismatches == 0
    assert 0.97 <= mix.closed / mix.n <= 0.995
    assert mix.pending >= 3
    assert mix.awaiting_review >= 1
    assert mix.overdue >= 1
    assert 0.10 <= mix.to_community / mix.n <= 0.22
    assert 0.01 <= mix.to_street / mix.n <= 0.05
    assert mix.closed_late >= 10


def test_categories_mix_like_a_street(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        shares = dict(
            conn.execute(
                text(
                    "SELECT left(category_code, 2), count(*)::float / sum(count(*)) OVER () "
                    "FROM incident GROUP BY 1"
                )
            ).all()
        )
    assert shares["03"] == max(shares.values())  # city management leads
    assert 0.25 <= shares["03"] <= 0.45
    assert set(shares) >= {"01", "02", "03", "04", "05", "07"}


def test_every_index_is_usable_at_once(demo_engine: Engine) -> None:
    # the load updates incidents (the transition trigger) while their indexes are dropped;
    # an index rebuilt over heap-only updates of its own transaction is hidden from every
    # older snapshot of the cluster (indcheckxmin) until the writer rebuilds it
    with demo_engine.connect() as conn:
        hidden = (
            conn.execute(
                text(
                    "SELECT x.indexrelid::regclass::text FROM pg_index x "
                    "JOIN pg_class c ON c.oid = x.indrelid "
                    "WHERE x.indcheckxmin AND c.relnamespace = 'public'::regnamespace"
                )
            )
            .scalars()
            .all()
        )
    assert hidden == []


def test_truth_is_stored_with_the_data(demo_engine: Engine, demo) -> None:
    detail = scalar(demo_engine, "SELECT detail FROM data_source WHERE kind = 'demo'")
    assert detail["truth"] == json.loads(json.dumps(demo.truth))


def test_refuses_to_overwrite_without_replace(demo_engine: Engine, demo) -> None:
    before = scalar(demo_engine, "SELECT count(*) FROM incident")
    with pytest.raises(StoreNotEmptyError, match="--replace"):
        write_demo(demo_engine, demo)
    assert scalar(demo_engine, "SELECT count(*) FROM incident") == before


def test_a_failing_write_leaves_nothing_behind(fresh_engine: Engine, demo) -> None:
    """Break the last-but-one table: every table written before it is rolled back too."""
    import dataclasses

    bad = demo.patrol.copy()
    bad.loc[bad.index[-1], "n_fixes"] = 1  # violates ck_patrol_counts
    broken = dataclasses.replace(demo, patrol=bad)
    with pytest.raises(Exception, match="ck_patrol_counts"):
        write_demo(fresh_engine, broken)
    with fresh_engine.connect() as conn:
        total = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM admin_unit) + (SELECT count(*) FROM grid) + "
                "(SELECT count(*) FROM incident) + (SELECT count(*) FROM patrol_fix)"
            )
        ).scalar_one()
    assert total == 0


def test_replace_rewrites_the_demo_and_keeps_code_tables(fresh_engine: Engine, demo) -> None:
    first = write_demo(fresh_engine, demo)
    again = write_demo(fresh_engine, demo, replace=True)
    assert again == first
    with fresh_engine.connect() as conn:
        cats, rules, sources, bad = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM incident_category), "
                "(SELECT count(*) FROM workflow_rule), (SELECT count(*) FROM data_source), "
                "(SELECT count(*) FROM incident_status_mismatch)"
            )
        ).one()
    assert (cats, sources, bad) == (36, 1, 0)
    assert rules > 30
