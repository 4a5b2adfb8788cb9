"""incident: four indexes no query uses dropped

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 10:30:00

Issue 4. Every index on ``incident`` is rebuilt by a big load (``store.write.deferred_indexes``)
and updated row by row by every smaller one and by every transition (the trigger writes
``status``, ``closed_at`` …, so those updates are never HOT). Four of the 18 serve no query:

* ``ix_incident_street_code_reported_at`` — the same key as ``ix_incident_cells`` (migration
  0009: ``street_code, reported_at`` with the cells included), which serves every query it
  served;
* ``ix_incident_occurred_at`` — no query filters or sorts on the time an incident occurred
  (the KPIs read it per row, beside ``reported_at``);
* ``ix_incident_due_at``, ``ix_incident_closed_at`` — the deadline and the close time are
  read through the local-day indexes of migration 0010 (the KPI sums) or as arms of an
  ``OR`` whose other arms no index holds (``status IS DISTINCT FROM 'closed'``), where a
  single-column index cannot be used.

Measured on a million incidents: the four took 1.5 s of the 9.7 s index rebuild of a
1M-row load. ``downgrade`` creates them again as migration 0001 did.
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

#: The dropped indexes and their columns, as migration 0001 made them.
DROPPED = {
    "ix_incident_street_code_reported_at": ["street_code", "reported_at"],
    "ix_incident_occurred_at": ["occurred_at"],
    "ix_incident_due_at": ["due_at"],
    "ix_incident_closed_at": ["closed_at"],
}


def upgrade() -> None:
    for name in DROPPED:
        op.drop_index(name, table_name="incident", if_exists=True)


def downgrade() -> None:
    for name, columns in DROPPED.items():
        op.create_index(name, "incident", columns, unique=False, if_not_exists=True)
