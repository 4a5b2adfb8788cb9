"""Migrations: up from empty, again with nothing to do, and in step with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text

from store.db import make_engine
from store.migrate import current_revision, head_revision, include_object, upgrade
from store.models import Base


def test_upgrade_from_empty_and_again(server) -> None:
    name = server.create("empty")
    engine = make_engine(server.url(name))
    try:
        with engine.connect() as conn:
            assert current_revision(conn) is None
        upgrade(engine)
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
            tables = set(inspect(conn).get_table_names())
            counts = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM incident_category), "
                    "(SELECT count(*) FROM workflow_rule)"
                )
            ).one()
        assert set(Base.metadata.tables) <= tables
        upgrade(engine)  # nothing to do: same revision, same reference rows
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
            again = conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM incident_category), "
                    "(SELECT count(*) FROM workflow_rule)"
                )
            ).one()
        assert again == counts
        assert counts[0] == 36
    finally:
        engine.dispose()
        server.drop(name)


def test_models_match_migrations(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"include_object": include_object, "compare_type": True}
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_spatial_and_time_indexes_exist(engine: Engine) -> None:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.relname, am.amname FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
                "JOIN pg_class t ON t.oid = i.indrelid WHERE t.relname = ANY(:tables)"
            ),
            {"tables": [t for t in Base.metadata.tables]},
        ).all()
    gist = {name for name, am in rows if am == "gist"}
    for table in Base.metadata.tables.values():
        for col in table.columns:
            if col.name == "geom":
                assert f"ix_{table.name}_geom" in gist, table.name
    names = {name for name, _ in rows}
    assert {"ix_incident_reported_at", "ix_patrol_fix_fixed_at", "ix_patrol_started_at"} <= names


def test_patrol_fix_partitions_created_on_demand(conn) -> None:
    made = conn.execute(
        text("SELECT ensure_patrol_fix_partitions('2026-10-20', '2026-12-01')")
    ).scalar_one()
    again = conn.execute(
        text("SELECT ensure_patrol_fix_partitions('2026-10-20', '2026-12-01')")
    ).scalar_one()
    parts = (
        conn.execute(
            text(
                "SELECT c.relname FROM pg_inherits JOIN pg_class c ON c.oid = inhrelid "
                "WHERE inhparent = 'patrol_fix'::regclass ORDER BY 1"
            )
        )
        .scalars()
        .all()
    )
    assert (made, again) == (3, 0)
    assert parts == ["patrol_fix_2026_10", "patrol_fix_2026_11", "patrol_fix_2026_12"]


def test_constraints_and_indexes_match_the_models(fresh_engine: Engine) -> None:
    """Alembic's comparison ignores CHECK constraints (where the vocabularies live): build the
    models in a scratch schema and compare PostgreSQL's own definitions of every constraint
    and index with the migrated schema's."""
    tables = list(Base.metadata.tables)
    with fresh_engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA model_check"))
        Base.metadata.create_all(conn.execution_options(schema_translate_map={None: "model_check"}))

        def definitions(schema: str) -> set[tuple[str, str, str]]:
            rows = conn.execute(
                text(
                    """
                    SELECT c.relname, con.conname, pg_get_constraintdef(con.oid)
                      FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
                      JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = :schema AND c.relname = ANY(:tables)
                    UNION ALL
                    SELECT tablename, indexname, indexdef FROM pg_indexes
                     WHERE schemaname = :schema AND tablename = ANY(:tables)
                    """
                ),
                {"schema": schema, "tables": tables},
            ).all()
            return {(t, n, d.replace(f"{schema}.", "").replace("public.", "")) for t, n, d in rows}

        migrated, modelled = definitions("public"), definitions("model_check")
        conn.rollback()
    assert migrated - modelled == set()
    assert modelled - migrated == set()


def test_0012_downgrade_gives_back_the_indexes_of_0011(server, template_db: str) -> None:
    """Migration 0012 drops four incident indexes; its downgrade creates them again exactly
    as a database migrated only to 0011 has them (name and definition)."""
    from alembic import command

    from store.migrate import alembic_config

    indexes = text(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = 'incident'::regclass ORDER BY 1"
    )
    names = [server.create("down12", template=template_db), server.create("only11")]
    engines = [make_engine(server.url(n)) for n in names]
    try:
        with engines[1].begin() as conn:
            command.upgrade(alembic_config(conn), "0011")
        with engines[1].connect() as conn:
            want = conn.execute(indexes).all()
        with engines[0].connect() as conn:
            head = conn.execute(indexes).all()
        assert len(want) - len(head) == 4
        with engines[0].begin() as conn:
            command.downgrade(alembic_config(conn), "0011")
        with engines[0].connect() as conn:
            assert conn.execute(indexes).all() == want
    finally:
        for engine, name in zip(engines, names, strict=True):
            engine.dispose()
            server.drop(name)
