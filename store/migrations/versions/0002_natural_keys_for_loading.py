"""natural keys for loading: incident transitions and work logs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:00:00

Loading the same file twice must change nothing (``python -m loaders load``), so every
table a loader writes needs a natural key to conflict on. Two had none:

* ``incident_transition`` — UNIQUE (incident_id, at, to_status). A step is "this incident
  moved to this status at this instant"; the same step exported twice (two exports of one
  case system, a re-run of the same file) is one step. Two different steps of one incident
  at the same instant to the same status cannot both be valid workflow moves, so nothing
  real is lost. The log is append-only: the loader inserts with ON CONFLICT DO NOTHING.

* ``work_log`` — a UNIQUE index on (worker_id, log_date, md5(body)). A log entry has no
  code in the street offices' exports (民情日志 are free text written in the phone app), so
  the key is what identifies it to a person: who wrote it, on which day, and what it says.
  The text is hashed because a body may be up to 20,000 characters, more than a b-tree
  entry can hold (about 2,700 bytes). Two entries of one worker on one day with exactly the
  same text are a duplicate entry, not two logs (they would also count twice towards the
  weekly log quota). ``kind`` and ``grid_code`` are outside the key so that a reload can
  correct them (ON CONFLICT … DO UPDATE).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_unique_constraint(
        op.f("uq_incident_transition_incident_id_at_to_status"),
        "incident_transition",
        ["incident_id", "at", "to_status"],
    )
    op.create_index(
        "uq_work_log_worker_id_log_date_body_md5",
        "work_log",
        ["worker_id", "log_date", sa.text("md5(body)")],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_work_log_worker_id_log_date_body_md5", table_name="work_log")
    op.drop_constraint(
        op.f("uq_incident_transition_incident_id_at_to_status"),
        "incident_transition",
        type_="unique",
    )
