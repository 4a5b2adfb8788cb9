"""Bring a database to the current schema and reference data.

:func:`upgrade` runs the Alembic migrations in ``store/migrations`` up to head (a no-op when
already there), then :func:`sync_reference_data`, which makes the code tables equal to the
files in ``data/`` and to :data:`store.vocab.WORKFLOW`, and writes the login policy settings
the environment gives into ``gridone_login_policy`` (:func:`store.access.sync_login_policy`).
All are idempotent.
"""

from __future__ import annotations

import csv
import getpass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from geoalchemy2 import alembic_helpers
from sqlalchemy import Column, Connection, Engine, text

from store import vocab
from store.access import sync_login_policy
from store.settings import PROJECT_ROOT, get_access_settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
CATEGORIES_CSV = PROJECT_ROOT / "data" / "incident_categories.csv"


# Partitions of patrol_fix are created at run time, not by the models.
_RUNTIME_TABLE_PREFIXES = ("patrol_fix_",)


def include_object(obj, name, type_, reflected, compare_to):
    """Alembic filter: leave out PostGIS's own table, run-time partitions, and indexes on
    expressions (alembic cannot compare those; tests/test_migrations.py compares
    PostgreSQL's own definitions of every index instead)."""
    if type_ == "table" and (
        name == "spatial_ref_sys" or any(name.startswith(p) for p in _RUNTIME_TABLE_PREFIXES)
    ):
        return False
    if type_ == "index" and any(not isinstance(e, Column) for e in getattr(obj, "expressions", ())):
        return False
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configuration pointing at ``store/migrations``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest migration's revision id."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (None: never migrated)."""
    return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Migrate to head, sync the reference data and write the login policy settings the
    environment gives (:func:`store.access.sync_login_policy`), in one transaction."""
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
        sync_reference_data(conn)
        sync_login_policy(conn, get_access_settings(), actor=f"migrate:{getpass.getuser()}")


def sync_reference_data(conn: Connection) -> None:
    """Make ``incident_category`` equal ``data/incident_categories.csv`` (insert or update;
    categories in use are never deleted) and ``workflow_rule`` equal
    :data:`store.vocab.WORKFLOW`."""
    with CATEGORIES_CSV.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rows.sort(key=lambda r: len(r["code"]))  # parents first
    upsert = text(
        """
        INSERT INTO incident_category (code, parent_code, name_zh, name_en, limit_value,
                                       limit_unit)
        VALUES (:code, :parent_code, :name_zh, :name_en, :limit_value, :limit_unit)
        ON CONFLICT (code) DO UPDATE SET parent_code = EXCLUDED.parent_code,
            name_zh = EXCLUDED.name_zh, name_en = EXCLUDED.name_en,
            limit_value = EXCLUDED.limit_value, limit_unit = EXCLUDED.limit_unit
        WHERE (incident_category.parent_code, incident_category.name_zh,
               incident_category.name_en, incident_category.limit_value,
               incident_category.limit_unit)
          IS DISTINCT FROM (EXCLUDED.parent_code, EXCLUDED.name_zh, EXCLUDED.name_en,
                            EXCLUDED.limit_value, EXCLUDED.limit_unit)
        """
    )
    for r in rows:
        conn.execute(
            upsert,
            {
                "code": r["code"],
                "parent_code": r["parent_code"] or None,
                "name_zh": r["name_zh"],
                "name_en": r["name_en"],
                "limit_value": int(r["limit_value"]) if r["limit_value"] else None,
                "limit_unit": r["limit_unit"] or None,
            },
        )
    wanted = {(f, t) for f, tos in vocab.WORKFLOW.items() for t in tos}
    have = {
        (f, t) for f, t in conn.execute(text("SELECT from_status, to_status FROM workflow_rule"))
    }
    for f, t in sorted(have - wanted, key=str):
        conn.execute(
            text(
                "DELETE FROM workflow_rule WHERE from_status IS NOT DISTINCT FROM :f "
                "AND to_status = :t"
            ),
            {"f": f, "t": t},
        )
    for f, t in sorted(wanted - have, key=str):
        conn.execute(
            text("INSERT INTO workflow_rule (from_status, to_status) VALUES (:f, :t)"),
            {"f": f, "t": t},
        )
