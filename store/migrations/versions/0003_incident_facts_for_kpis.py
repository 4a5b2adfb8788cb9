"""incident facts for the KPIs: first rework/return/extension step, repeat_of

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 17:00:00

The KPIs (``geo.kpis``) need, for every incident, whether it had a ``reworked``,
``returned`` or ``extended`` step before the as-of instant T, and whether it repeats an
earlier incident (same subcategory, within 30 m, in the 90 days before). Read from the
transition log and a spatial self-join each time, these took seconds per district-year
(``benchmarks/kpis.py``). This revision keeps them on the incident row, maintained by
triggers (``store/migrations/sql_0003.py``), and backfills the rows already stored:

* ``reworked_at``, ``returned_at``, ``extended_at``: time of the first step of each kind
  (steps are appended in time order, so "a step before T" is ``<column> < T``);
* ``repeat_of``: the id of the latest earlier incident that makes this one a repeat; a
  partial index on it finds the incidents pointing at one that moves or goes away. It is
  no foreign key: the triggers keep it right on delete, and a foreign key would add a
  check per row to every bulk refresh.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from store.migrations import sql_0003

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("incident", sa.Column("reworked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("incident", sa.Column("returned_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("incident", sa.Column("extended_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("incident", sa.Column("repeat_of", sa.BigInteger(), nullable=True))
    op.execute(sql_0003.UPGRADE)
    op.create_index(
        "ix_incident_repeat_of",
        "incident",
        ["repeat_of"],
        unique=False,
        postgresql_where=sa.text("repeat_of IS NOT NULL"),
    )


def downgrade() -> None:
    op.execute(sql_0003.DOWNGRADE)
    op.drop_index("ix_incident_repeat_of", table_name="incident")
    op.drop_column("incident", "repeat_of")
    op.drop_column("incident", "extended_at")
    op.drop_column("incident", "returned_at")
    op.drop_column("incident", "reworked_at")
