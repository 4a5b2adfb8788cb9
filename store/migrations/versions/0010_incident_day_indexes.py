"""incident day indexes: the KPI refresh reads only the days a load touched

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 03:00:00

Issue 4. ``store.kpi_summary.refresh`` recomputes the sums of the (street, day) keys a load
touched: each kind of day (reported, due, closed) joins the incidents on
``street_code = key.street_code AND <local date of the day's instant> = key.day``. No index
held those local dates, so each kind of day read the whole incident table, whatever the
load's size (1M incidents: four full scans and a sort for a load of one row). These three
expression indexes hold them by street; the statements are unchanged (their expressions
are the indexed ones, character for character), and the planner estimates a key's rows from
the indexes' statistics.

``timestamptz AT TIME ZONE text`` and the cast to date are immutable, as an index needs.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

#: Index name suffix → the instant whose local (Beijing) day is indexed.
DAYS = {
    "reported": "reported_at",
    "due": "COALESCE(extended_due_at, due_at)",
    "closed": "closed_at",
}


def upgrade() -> None:
    for name, col in DAYS.items():
        op.execute(
            f"CREATE INDEX IF NOT EXISTS ix_incident_street_{name}_day ON incident "
            f"(street_code, CAST(({col} AT TIME ZONE 'Asia/Shanghai') AS date))"
        )
    op.execute("ANALYZE incident")  # statistics of the indexed expressions


def downgrade() -> None:
    for name in DAYS:
        op.execute(f"DROP INDEX IF EXISTS ix_incident_street_{name}_day")
