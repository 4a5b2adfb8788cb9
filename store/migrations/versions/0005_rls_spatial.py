"""row-level security without losing the GiST indexes or the estimates: ``&&`` marked
LEAKPROOF, policies on one grid-code range

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 22:30:00

Issue 7 follow-up. Under row-level security PostgreSQL evaluates a user's condition below
the policy (as an index condition, before the policy has filtered the row) only when every
function in it is LEAKPROOF: otherwise a function that raises an error or a message could
tell the caller something about a row the policy hides. No PostGIS function is marked so;
as ``gridone_app`` every spatial join and box filter on a table with a policy therefore
read the whole table (a self-join of 2,000 incidents with their neighbours: 0.6 s as the
owner, more than 60 s as the application).

This migration marks exactly one function LEAKPROOF: ``geometry_overlaps(geometry,
geometry)``, the function of the bounding-box operator ``&&``, reviewed as follows
(PostGIS 3.3, ``gserialized_overlaps_2d``):

* it reads the two bounding boxes (from the serialized header, or computed for a point)
  and compares their coordinates as floats; the answer is its only output;
* it raises no error and no message for any well-formed value: empty geometries give
  false, a NaN box overlaps every box whatever the row; it does not compare SRIDs (mixed SRIDs compare boxes, no error,
  unlike ``ST_DWithin`` / ``ST_Intersects``, which raise "mixed SRID" errors);
* the values it meets under the policy are the stored ones, which the tables' CHECKs keep
  valid and non-empty, typmod-constrained to one geometry type and SRID 4490.

Every other spatial predicate stays non-leakproof on purpose: ``ST_DWithin`` raises on a
negative distance (which a query may take from a hidden row's column) and on mixed SRIDs,
the GEOS predicates can raise topology errors carrying coordinates. The store's queries
therefore put an explicit ``&&`` beside each such predicate, against a box that holds no
column of the scanned table (``ST_Expand`` of the other side, computed first over rows
already in scope); the ``&&`` runs in the GiST index, the exact predicate afterwards on
rows the policy has passed (see ``store/queries.py``, ``docs/access-control.md``).

Marking a function LEAKPROOF needs a superuser. Run by a role that is not one, the
migration marks nothing and says so in a WARNING: every result stays the same (the
policies filter as before), only spatial queries run without their index as the
application, slowly. A superuser can then run :data:`MARK_SQL` by hand (or
``python -m store migrate`` again after ``downgrade`` to 0003). The mark lives in the
database's ``pg_proc``: ``ALTER EXTENSION postgis UPDATE`` and a dump/restore of the
database recreate the function without it, so both must be followed by :data:`MARK_SQL`
(``store.access.spatial_index_usable`` tells whether it is in force).

The policies of 0003 were also estimated wrong: ``current_setting('gridone.grid_lo') = ''
OR …`` has no column, so the planner took the default 0.5 % selectivity and planned every
scope as 1/200 of its size (a street leader's KPIs with repeats paired every incident of
the window with every other one: more than 90 s instead of 5). The tables whose CHECK ties
the grid code to the street now filter on one grid-code range (:func:`grid_keyed_policy`),
``patrol_fix`` on its street and a grid range that is "any" in district and street scopes
(:func:`street_and_grid_policy`); the rows selected are 0003's for every scope
(tests/test_access_rls_spatial.py checks it), the estimates come from the columns'
statistics and a row costs fewer setting look-ups. ``gridone_set_scope`` sets the new
bounds (``gcode_lo/hi``, ``fixgrid_lo/hi``; empty ranges when the scope does not fit).
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

#: The function of ``geometry && geometry``, found through the operator so that the
#: schema PostGIS was installed in does not matter.
_OVERLAPS = (
    "(SELECT o.oprcode::regprocedure FROM pg_operator o "
    "WHERE o.oprname = '&&' AND o.oprleft = 'geometry'::regtype "
    "AND o.oprright = 'geometry'::regtype)"
)

#: Mark ``&&`` LEAKPROOF when the current role is a superuser; else a WARNING, nothing else.
MARK_SQL = """
DO $$
DECLARE
  f regprocedure := @OVERLAPS@;
BEGIN
  IF f IS NULL THEN
    RAISE WARNING 'geometry && geometry not found: is PostGIS installed?';
  ELSIF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE format('ALTER FUNCTION %s LEAKPROOF', f);
  ELSE
    RAISE WARNING 'gridone 0005: % is not a superuser, % stays not LEAKPROOF', current_user, f
      USING HINT = 'results are unchanged, but as gridone_app spatial queries cannot use '
                   'their GiST index; a superuser can run: ALTER FUNCTION ' || f::text
                   || ' LEAKPROOF';
  END IF;
END $$;
""".replace("@OVERLAPS@", _OVERLAPS)

#: Undo :data:`MARK_SQL` (PostGIS's own definition: not LEAKPROOF).
UNMARK_SQL = """
DO $$
DECLARE
  f regprocedure := @OVERLAPS@;
BEGIN
  IF f IS NOT NULL AND (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE format('ALTER FUNCTION %s NOT LEAKPROOF', f);
  ELSIF f IS NOT NULL THEN
    RAISE WARNING 'gridone 0005 downgrade: % is not a superuser, % keeps its LEAKPROOF mark',
      current_user, f;
  END IF;
END $$;
""".replace("@OVERLAPS@", _OVERLAPS)


# --- the policies: cheaper per row, and estimated right ------------------------------------

#: Tables whose CHECK ``grid_in_street`` makes a non-NULL grid code start with the street's
#: nine digits (and ``grid``, whose street code is generated from its code): for them "the
#: street in the scope's street range, and the grid in its grid range when the scope is a
#: community or grid" is the same as "the grid code under the scope's prefix", and the
#: policy compares one column. (table, grid column).
GRID_KEYED = (
    ("staff_assignment", "grid_code"),
    ("building", "grid_code"),
    ("housing_unit", "grid_code"),
    ("key_place", "grid_code"),
    ("facility", "grid_code"),
    ("incident", "grid_code"),
    ("incident_transition", "grid_code"),
    ("patrol", "grid_code"),
    ("work_log", "grid_code"),
)
#: patrol_fix: the street is the worker's, the grid the one the fix fell in (which may be
#: another street's), so both columns stay in the policy.
STREET_AND_GRID = (("patrol_fix", "street_code", "grid_code"),)


def _setting(name: str) -> str:
    return f"current_setting('gridone.{name}', true)"


def grid_keyed_policy(grid: str) -> str:
    """A grid code under the scope's prefix (``gcode_lo``/``gcode_hi``: the prefix padded
    with 0s and 9s to 15 digits); a row without a grid only in a district or street scope
    and within its street range, as in 0003."""
    return (
        f"{grid} BETWEEN {_setting('gcode_lo')} AND {_setting('gcode_hi')} "
        f"OR ({grid} IS NULL AND street_code BETWEEN {_setting('street_lo')} "
        f"AND {_setting('street_hi')} AND {_setting('grid_lo')} = '')"
    )


def street_and_grid_policy(street: str, grid: str) -> str:
    """The street in the scope's street range, and the grid in ``fixgrid_lo``/``fixgrid_hi``
    (every grid code in a district or street scope, the scope's grids in a community or
    grid scope); a row without a grid only in a district or street scope, as in 0003."""
    return (
        f"{street} BETWEEN {_setting('street_lo')} AND {_setting('street_hi')} "
        f"AND ({grid} BETWEEN {_setting('fixgrid_lo')} AND {_setting('fixgrid_hi')} "
        f"OR ({grid} IS NULL AND {_setting('grid_lo')} = ''))"
    )


def policy_0003(street: str, grid: str) -> str:
    """0003's row filter (for the downgrade)."""
    return (
        f"{street} BETWEEN {_setting('street_lo')} AND {_setting('street_hi')} "
        f"AND ({_setting('grid_lo')} = '' "
        f"OR {grid} BETWEEN {_setting('grid_lo')} AND {_setting('grid_hi')})"
    )


def policies_sql(*, before: bool = False) -> str:
    """ALTER POLICY scope_read of the code-carrying tables to 0005's filters (``before``:
    back to 0003's)."""
    out = []
    if before:
        out.append(f"ALTER POLICY scope_read ON grid USING ({policy_0003('street_code', 'code')});")
        for table, grid in GRID_KEYED:
            out.append(
                f"ALTER POLICY scope_read ON {table} USING ({policy_0003('street_code', grid)});"
            )
        for table, street, grid in STREET_AND_GRID:
            out.append(f"ALTER POLICY scope_read ON {table} USING ({policy_0003(street, grid)});")
        return "\n".join(out)
    out.append(
        "ALTER POLICY scope_read ON grid USING "
        f"(code BETWEEN {_setting('gcode_lo')} AND {_setting('gcode_hi')});"
    )
    for table, grid in GRID_KEYED:
        out.append(f"ALTER POLICY scope_read ON {table} USING ({grid_keyed_policy(grid)});")
    for table, street, grid in STREET_AND_GRID:
        out.append(
            f"ALTER POLICY scope_read ON {table} USING ({street_and_grid_policy(street, grid)});"
        )
    return "\n".join(out)


_SET_SCOPE_HEAD = r"""
CREATE OR REPLACE FUNCTION gridone_set_scope(role text, scope text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
  n integer := CASE role WHEN 'district' THEN 6 WHEN 'street' THEN 9
                         WHEN 'community' THEN 12 WHEN 'grid' THEN 15 END;
  ok boolean := coalesce(n IS NOT NULL AND scope ~ ('^[0-9]{' || n || '}$'), false);
  s text := CASE WHEN ok THEN scope ELSE '' END;
BEGIN
  PERFORM set_config('gridone.role', coalesce(role, ''), true);
  PERFORM set_config('gridone.scope', s, true);
  PERFORM set_config('gridone.street_lo', CASE WHEN ok THEN rpad(left(s, 9), 12, '0') ELSE '' END, true);
  PERFORM set_config('gridone.street_hi', CASE WHEN ok THEN rpad(left(s, 9), 12, '9') ELSE '' END, true);
  PERFORM set_config('gridone.grid_lo', CASE WHEN ok AND n > 9 THEN rpad(s, 15, '0') ELSE '' END, true);
  PERFORM set_config('gridone.grid_hi', CASE WHEN ok AND n > 9 THEN rpad(s, 15, '9') ELSE '' END, true);
"""
_SET_SCOPE_0005 = r"""
  PERFORM set_config('gridone.gcode_lo', CASE WHEN ok THEN rpad(s, 15, '0') ELSE '' END, true);
  PERFORM set_config('gridone.gcode_hi', CASE WHEN ok THEN rpad(s, 15, '9') ELSE '' END, true);
  PERFORM set_config('gridone.fixgrid_lo', CASE WHEN NOT ok THEN '' WHEN n > 9 THEN rpad(s, 15, '0')
                                                ELSE '000000000000000' END, true);
  PERFORM set_config('gridone.fixgrid_hi', CASE WHEN NOT ok THEN '' WHEN n > 9 THEN rpad(s, 15, '9')
                                                ELSE '999999999999999' END, true);
"""
_SET_SCOPE_TAIL = r"""
  RETURN ok;
END $$;
"""
#: 0005's gridone_set_scope: 0003's settings and the grid-code ranges of the new policies.
#: An empty range ('' to '') holds no code: a scope that does not fit reads nothing.
SET_SCOPE_SQL = _SET_SCOPE_HEAD + _SET_SCOPE_0005 + _SET_SCOPE_TAIL
#: 0003's gridone_set_scope, for the downgrade.
SET_SCOPE_0003_SQL = _SET_SCOPE_HEAD + _SET_SCOPE_TAIL


def upgrade() -> None:
    op.execute(SET_SCOPE_SQL)
    op.execute(policies_sql())
    op.execute(MARK_SQL)


def downgrade() -> None:
    op.execute(UNMARK_SQL)
    op.execute(policies_sql(before=True))
    op.execute(SET_SCOPE_0003_SQL)
