"""incident cells: the H3 cell of every incident at resolutions 7-11, stored at write time

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 02:40:00

Issue 5 (Gi* over ~20,000 hexagons from 1,000,000 incidents in under 3 s end to end). On
the district demo, reading the million points and binning them into H3 cells in Python
took ~2 of the 2.4 s of ``geo.hotspots.hotspots(unit="hex")``; with each incident's cell
stored, the database counts per cell and returns one row per occupied cell.

* ``incident.h3_r7`` … ``h3_r11`` (bigint, H3 cell as an integer): the cell at each
  resolution the analyses offer. Not one resolution plus ``cell_to_parent``: ~7 % of points
  lie in another cell than the parent of their finer cell (see ``store/cells.py``).
  There is no h3 extension here, so cells are computed in Python by ``store.cells`` when
  rows are written (the loader, the demo) and for the rows already stored by this
  migration (~1 min on the district demo's million incidents; the KPI trigger on updates is
  off meanwhile: nothing it sums changes).
* ``ix_incident_cells`` on ``(street_code, reported_at)`` including ``grid_code``,
  ``category_code`` and the cells: every column the counts per cell read — the filters
  (street, period, category) and the row-level security policy (street and grid codes) —
  so they are an index-only scan of ~110 MB instead of a scan of the ~640 MB table (district
  demo, load average 11: 0.64 s instead of 2.6 s as the owner, 1.2 s instead of 3.3 s as
  gridone_app). Served only once VACUUM has marked the pages all-visible (autovacuum
  does after a load; the planner falls back to the table until then).
* ``ck_incident_cells_all_or_none``: a row carries all five or none.
* ``ix_incident_without_cells``: partial index on the rows without cells, which the reading
  path bins from their points (results never depend on the fill, only the time does).
* trigger ``incident_cells_stale``: an UPDATE moving ``geom`` without also changing the
  cells clears them, so a stored cell never belongs to an old place.

Row-level security: new columns of ``incident`` are covered by its existing policies.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = ("h3_r7", "h3_r8", "h3_r9", "h3_r10", "h3_r11")
#: Besides the cells, what the hexagon counts read (filters, row-level security policy)
INCLUDED = ("grid_code", "category_code")

TRIGGER_SQL = """
CREATE FUNCTION incident_cells_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- the point moved and the statement did not set its cells: they are no longer its cells
  IF (NEW.h3_r7, NEW.h3_r8, NEW.h3_r9, NEW.h3_r10, NEW.h3_r11)
     IS NOT DISTINCT FROM (OLD.h3_r7, OLD.h3_r8, OLD.h3_r9, OLD.h3_r10, OLD.h3_r11) THEN
    NEW.h3_r7 := NULL; NEW.h3_r8 := NULL; NEW.h3_r9 := NULL;
    NEW.h3_r10 := NULL; NEW.h3_r11 := NULL;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER incident_cells_stale BEFORE UPDATE OF geom ON incident
  FOR EACH ROW WHEN (NEW.geom IS DISTINCT FROM OLD.geom)
  EXECUTE FUNCTION incident_cells_stale();
"""


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("incident", sa.Column(name, sa.BigInteger(), nullable=True))
    op.create_check_constraint(
        op.f("ck_incident_cells_all_or_none"),
        "incident",
        "num_nulls(h3_r7, h3_r8, h3_r9, h3_r10, h3_r11) IN (0, 5)",
    )
    op.execute(TRIGGER_SQL)
    # the rows already stored (none in a new database)
    from store.cells import fill_incident_cells

    op.execute("ALTER TABLE incident DISABLE TRIGGER kpi_dirty_update")
    fill_incident_cells(op.get_bind())
    op.execute("ALTER TABLE incident ENABLE TRIGGER kpi_dirty_update")
    op.create_index(
        "ix_incident_cells",
        "incident",
        ["street_code", "reported_at"],
        unique=False,
        postgresql_include=[*INCLUDED, *COLUMNS],
    )
    op.create_index(
        "ix_incident_without_cells",
        "incident",
        ["id"],
        unique=False,
        postgresql_where=sa.text("h3_r7 IS NULL"),
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS incident_cells_stale ON incident")
    op.execute("DROP FUNCTION IF EXISTS incident_cells_stale()")
    op.drop_index("ix_incident_without_cells", table_name="incident")
    op.drop_index("ix_incident_cells", table_name="incident")
    op.drop_constraint(op.f("ck_incident_cells_all_or_none"), "incident", type_="check")
    for name in COLUMNS:
        op.drop_column("incident", name)
