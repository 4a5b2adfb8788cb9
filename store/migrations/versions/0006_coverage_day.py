"""coverage day: building coverage per day, stored once, invalidated when its fixes change

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 22:10:00

Issue 6 (the briefing in under 15 s at district scale). Reading and cleaning a district
day's five million fixes to find which buildings were passed took most of the briefing;
the answer for a past day does not change unless its fixes (or the buildings) do. So
:mod:`geo.coverage_store` computes each day once — with :mod:`geo.coverage`'s own code —
and stores, per building passed that day, the latest time it was passed:

* ``coverage_day``: the days stored, their window ``[starts_at, ends_at)`` (local
  midnight to midnight), the metric CRS and a fingerprint of the thresholds used;
* ``coverage_building_day``: ``last_any`` (any worker: the district's figure) and
  ``last_street`` (the workers a computation scoped to the building's street reads).

Correctness over speed: a stored day must never outlive its inputs. Triggers on
``patrol_fix`` (statement level, with transition tables, so a load of a million fixes
costs one small query) delete every stored day whose window overlaps the inserted, updated
or deleted fixes (a reload of one past day's tracks drops that day; the rows of its
buildings go with it, ON DELETE CASCADE); TRUNCATE of ``patrol_fix`` and any change to
``building`` drop every stored day. The trigger functions are SECURITY DEFINER so that any
role allowed to write fixes invalidates, whatever its rights on these tables. They take
a shared advisory lock first (``hashtext('gridone.coverage_day')``) that the filler takes
exclusively from before it reads the fixes until it commits: a load waits for a running fill
and then deletes what it stored, and a fill waits for a running load and then reads its
fixes.

``coverage_building_day`` carries street and grid codes: row-level security as in 0003
(ENABLE + FORCE, ``scope_read``, ``owner_maintains``, SELECT for ``gridone_reader``);
``coverage_day`` holds no codes and is readable by any data role, as ``road``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

READER = "gridone_reader"


def _in_scope(street: str, grid: str) -> str:
    """The row filter of 0003 (copied: a migration does not import another)."""
    return (
        f"{street} BETWEEN current_setting('gridone.street_lo', true) "
        "AND current_setting('gridone.street_hi', true) "
        "AND (current_setting('gridone.grid_lo', true) = '' "
        f"OR {grid} BETWEEN current_setting('gridone.grid_lo', true) "
        "AND current_setting('gridone.grid_hi', true))"
    )


TRIGGERS_SQL = """
CREATE FUNCTION coverage_stale_new() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  PERFORM pg_advisory_xact_lock_shared(hashtext('gridone.coverage_day'));
  DELETE FROM coverage_day d
   USING (SELECT min(fixed_at) AS lo, max(fixed_at) AS hi FROM changed_fixes) c
   WHERE c.lo IS NOT NULL AND d.starts_at <= c.hi AND d.ends_at > c.lo;
  RETURN NULL;
END $$;
COMMENT ON FUNCTION coverage_stale_new() IS
  'Drops the stored coverage days overlapping the fixes a statement wrote (transition table changed_fixes).';
CREATE FUNCTION coverage_stale_all() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  PERFORM pg_advisory_xact_lock_shared(hashtext('gridone.coverage_day'));
  DELETE FROM coverage_day;
  RETURN NULL;
END $$;
COMMENT ON FUNCTION coverage_stale_all() IS
  'Drops every stored coverage day (fixes truncated, buildings changed).';
CREATE TRIGGER coverage_stale_insert AFTER INSERT ON patrol_fix
  REFERENCING NEW TABLE AS changed_fixes
  FOR EACH STATEMENT EXECUTE FUNCTION coverage_stale_new();
CREATE TRIGGER coverage_stale_update_new AFTER UPDATE ON patrol_fix
  REFERENCING NEW TABLE AS changed_fixes
  FOR EACH STATEMENT EXECUTE FUNCTION coverage_stale_new();
CREATE TRIGGER coverage_stale_update_old AFTER UPDATE ON patrol_fix
  REFERENCING OLD TABLE AS changed_fixes
  FOR EACH STATEMENT EXECUTE FUNCTION coverage_stale_new();
CREATE TRIGGER coverage_stale_delete AFTER DELETE ON patrol_fix
  REFERENCING OLD TABLE AS changed_fixes
  FOR EACH STATEMENT EXECUTE FUNCTION coverage_stale_new();
CREATE TRIGGER coverage_stale_truncate AFTER TRUNCATE ON patrol_fix
  FOR EACH STATEMENT EXECUTE FUNCTION coverage_stale_all();
CREATE TRIGGER coverage_stale_building AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
  ON building FOR EACH STATEMENT EXECUTE FUNCTION coverage_stale_all();
"""


def upgrade() -> None:
    op.create_table(
        "coverage_day",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("epsg", sa.Integer(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("fixes", sa.BigInteger(), nullable=False),
        sa.Column(
            "computed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_coverage_day_window")),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_coverage_day")),
    )
    op.create_index("ix_coverage_day_starts_at_ends_at", "coverage_day", ["starts_at", "ends_at"])
    op.create_table(
        "coverage_building_day",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.Column("street_code", sa.String(length=12), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("last_any", sa.Float(), nullable=False),
        sa.Column("last_street", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["day"],
            ["coverage_day.day"],
            name=op.f("fk_coverage_building_day_day_coverage_day"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("day", "building_id", name=op.f("pk_coverage_building_day")),
    )
    op.create_index(
        "ix_coverage_building_day_street_code_day",
        "coverage_building_day",
        ["street_code", "day"],
    )
    op.execute(TRIGGERS_SQL)
    op.execute(
        "CREATE POLICY scope_read ON coverage_building_day FOR SELECT TO PUBLIC "
        f"USING ({_in_scope('street_code', 'grid_code')});"
    )
    op.execute(
        "CREATE POLICY scope_read ON coverage_day FOR SELECT TO PUBLIC "
        "USING ((SELECT gridone_scope()) IS NOT NULL);"
    )
    for table in ("coverage_day", "coverage_building_day"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY owner_maintains ON {table} FOR ALL TO CURRENT_USER "
            "USING (true) WITH CHECK (true)"
        )
        op.execute(f"GRANT SELECT ON {table} TO {READER}")


def downgrade() -> None:
    op.execute(f"REVOKE ALL ON coverage_day, coverage_building_day FROM {READER}")
    for name in (
        "coverage_stale_insert",
        "coverage_stale_update_new",
        "coverage_stale_update_old",
        "coverage_stale_delete",
        "coverage_stale_truncate",
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON patrol_fix")
    op.execute("DROP TRIGGER IF EXISTS coverage_stale_building ON building")
    op.execute("DROP FUNCTION IF EXISTS coverage_stale_new()")
    op.execute("DROP FUNCTION IF EXISTS coverage_stale_all()")
    op.drop_index("ix_coverage_building_day_street_code_day", table_name="coverage_building_day")
    op.drop_table("coverage_building_day")
    op.drop_index("ix_coverage_day_starts_at_ends_at", table_name="coverage_day")
    op.drop_table("coverage_day")
