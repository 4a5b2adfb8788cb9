"""access control: users, sessions, audit trail, database roles, row-level security

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 18:30:00

Issue 7. The dashboard will connect as ``gridone_app``, a login role that owns nothing and
bypasses nothing, and set the user's role and scope inside each transaction with
``SELECT gridone_set_scope(role, scope)`` (SET LOCAL of ``gridone.role``, ``gridone.scope``
and the code ranges; see :func:`store.access.scoped`). What any role other than the owner
may read is decided here, by PostgreSQL, not by the pages:

* The scope is a code prefix: 6 digits (district), 9 (street), 12 (community) or 15
  (grid), and must agree with the role; ``gridone_set_scope`` checks that once and sets
  ``gridone.street_lo/hi`` (and ``grid_lo/hi`` for a community or grid). Unset, empty,
  malformed or mismatched: empty ranges, and every policy returns no row (default deny).
  sysadmin and auditor never have a scope, so they read no data.
* Every table carrying a street or grid code has row-level security ENABLEd and FORCEd,
  with one permissive SELECT policy for everyone (``scope_read``) comparing the stored
  codes with those ranges (``street_code BETWEEN current_setting(lo) AND
  current_setting(hi)``). current_setting is STABLE: the planner folds it while planning,
  so row estimates are right and the street_code b-tree indexes serve it as an index
  condition, and per row it costs two to four setting look-ups. (Scalar sub-selects would
  be evaluated once, but the planner then estimates a district as 50 rows: KPI queries ran
  for more than 15 minutes instead of seconds. Validating the scope with regular
  expressions in the policy itself cost 3 to 9 s per million rows; see benchmarks/rls.py.)
  The role running this migration (the data's owner: loaders, the command line) keeps full
  access through ``owner_maintains``; a superuser bypasses RLS anyway.
* Special-group counts per housing unit (``housing_special_count``) are not granted to the
  application at all; it reads ``special_group_by_grid`` (sums per grid, district and
  street roles only). Worker phone numbers are not granted either; ``staff_phone`` gives
  them masked except for the user's own record and the district role.
* ``audit_log`` is append-only for everyone: a trigger refuses UPDATE and TRUNCATE, and
  DELETE except from ``audit_purge(days)`` (SECURITY DEFINER) on rows older than
  max(days, 180). The application may INSERT; only the auditor role may SELECT.

Roles are cluster-wide and many databases share one cluster (tests), so each is created
only when missing, tolerating a concurrent creation; downgrade leaves them in place.

"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: NOLOGIN group roles and the application's login role (cluster-wide).
READER = "gridone_reader"  # SELECT on the data, under row-level security
AUTH = "gridone_auth"  # users, sessions, audit INSERT
APP = "gridone_app"  # LOGIN, member of both, owns nothing, NOBYPASSRLS

#: Tables with a street and a grid code: (table, street column, grid column).
SCOPED = (
    ("grid", "street_code", "code"),
    ("staff_assignment", "street_code", "grid_code"),
    ("building", "street_code", "grid_code"),
    ("housing_unit", "street_code", "grid_code"),
    ("key_place", "street_code", "grid_code"),
    ("facility", "street_code", "grid_code"),
    ("incident", "street_code", "grid_code"),
    ("incident_transition", "street_code", "grid_code"),
    ("patrol_fix", "street_code", "grid_code"),
    ("patrol", "street_code", "grid_code"),
    ("work_log", "street_code", "grid_code"),
)
#: Readable by any data role (no codes): reference layers and load records.
DATA_ONLY = ("road", "data_source")
#: Code tables readable by everyone who logs in.
CODE_TABLES = ("incident_category", "workflow_rule")
STAFF_COLUMNS = "id, code, name, role, street_code, active_from, active_to"


def _in_scope(street: str, grid: str) -> str:
    """The row filter: the street code within the scope's street range, and when the scope
    is a community or grid, the grid code within its range (NULL grid: outside). The bounds
    are settings made by ``gridone_set_scope``: the planner reads them when it plans (right
    row estimates, index conditions) and each row costs two or four setting look-ups."""
    return (
        f"{street} BETWEEN current_setting('gridone.street_lo', true) "
        "AND current_setting('gridone.street_hi', true) "
        "AND (current_setting('gridone.grid_lo', true) = '' "
        f"OR {grid} BETWEEN current_setting('gridone.grid_lo', true) "
        "AND current_setting('gridone.grid_hi', true))"
    )


ROLES_SQL = f"""
DO $$
DECLARE
  r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['{READER}', '{AUTH}'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      BEGIN
        EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', r);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;  -- created meanwhile by a migration of another database
      END;
    END IF;
  END LOOP;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP}') THEN
    BEGIN
      CREATE ROLE {APP} LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
        NOBYPASSRLS;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP}'
             AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb OR rolreplication)) THEN
    ALTER ROLE {APP} NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION;
  END IF;
  FOREACH r IN ARRAY ARRAY['{READER}', '{AUTH}'] LOOP
    IF NOT pg_has_role('{APP}', r, 'MEMBER') THEN
      BEGIN
        EXECUTE format('GRANT %I TO {APP}', r);
      EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
      END;
    END IF;
  END LOOP;
END $$;
"""

SCOPE_FUNCTIONS_SQL = r"""
CREATE FUNCTION gridone_scope() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN coalesce(current_setting('gridone.street_lo', true), '') = '' THEN NULL
    ELSE CASE current_setting('gridone.role', true)
    WHEN 'district' THEN substring(current_setting('gridone.scope', true) FROM '^([0-9]{6})$')
    WHEN 'street' THEN substring(current_setting('gridone.scope', true) FROM '^([0-9]{9})$')
    WHEN 'community' THEN substring(current_setting('gridone.scope', true) FROM '^([0-9]{12})$')
    WHEN 'grid' THEN substring(current_setting('gridone.scope', true) FROM '^([0-9]{15})$')
  END END
$$;
COMMENT ON FUNCTION gridone_scope() IS
  'The code prefix the transaction may read (set by gridone_set_scope), NULL: nothing. For the small tables (admin_unit, road, data_source).';
CREATE FUNCTION gridone_set_scope(role text, scope text) RETURNS boolean
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
  RETURN ok;
END $$;
COMMENT ON FUNCTION gridone_set_scope(text, text) IS
  'SET LOCAL of the role, the scope prefix and the code ranges the policies compare with; a scope that does not fit the role sets empty ranges (no rows). Returns whether it fitted.';
"""

AUDIT_SQL = r"""
CREATE FUNCTION audit_log_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    NEW.at := clock_timestamp();  -- the server's clock, not the caller's
    RETURN NEW;
  END IF;
  IF TG_OP = 'DELETE' AND current_setting('gridone.audit_purge', true) = 'on'
     AND OLD.at < now() - interval '180 days' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP
    USING ERRCODE = 'insufficient_privilege',
          HINT = 'rows older than the retention are removed only by audit_purge(days)';
END $$;
CREATE TRIGGER audit_log_guard_insert BEFORE INSERT ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
CREATE TRIGGER audit_log_guard BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_guard();
CREATE TRIGGER audit_log_guard_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_guard();

CREATE FUNCTION audit_purge(retention_days integer) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  n bigint;
BEGIN
  IF retention_days IS NULL OR retention_days < 180 THEN
    RAISE EXCEPTION 'audit retention must be at least 180 days (MLPS 2.0 level 3), got %',
      retention_days USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM set_config('gridone.audit_purge', 'on', true);
  DELETE FROM audit_log WHERE at < now() - make_interval(days => retention_days);
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM set_config('gridone.audit_purge', 'off', true);
  INSERT INTO audit_log (action, detail)
    VALUES ('purge', jsonb_build_object('retention_days', retention_days, 'deleted', n));
  RETURN n;
END $$;
REVOKE ALL ON FUNCTION audit_purge(integer) FROM PUBLIC;
COMMENT ON FUNCTION audit_purge(integer) IS
  'Deletes audit_log rows older than retention_days (at least 180); returns how many.';
"""


def _policies_sql() -> str:
    out = []
    for table, street, grid in SCOPED:
        out.append(
            f"CREATE POLICY scope_read ON {table} FOR SELECT TO PUBLIC "
            f"USING ({_in_scope(street, grid)});"
        )
    out.append(
        "CREATE POLICY scope_read ON housing_special_count FOR SELECT TO PUBLIC USING ("
        "current_setting('gridone.role', true) IN ('district', 'street') AND "
        f"{_in_scope('street_code', 'grid_code')});"
    )
    # staff carry only their street: in a community or grid scope, the staff assigned there
    out.append(
        "CREATE POLICY scope_read ON staff FOR SELECT TO PUBLIC USING ("
        "street_code BETWEEN current_setting('gridone.street_lo', true) "
        "AND current_setting('gridone.street_hi', true) "
        "AND (current_setting('gridone.grid_lo', true) = '' "
        "OR EXISTS (SELECT 1 FROM staff_assignment a WHERE a.staff_id = staff.id AND "
        "a.grid_code BETWEEN current_setting('gridone.grid_lo', true) "
        "AND current_setting('gridone.grid_hi', true)) "
        "OR EXISTS (SELECT 1 FROM grid g WHERE g.worker_id = staff.id AND "
        "g.code BETWEEN current_setting('gridone.grid_lo', true) "
        "AND current_setting('gridone.grid_hi', true))));"
    )
    # the jurisdiction's own subtree and its ancestors (names and outlines for titles)
    out.append(
        "CREATE POLICY scope_read ON admin_unit FOR SELECT TO PUBLIC USING ("
        "starts_with(code, left((SELECT gridone_scope()), 12)) OR code IN ("
        "left((SELECT gridone_scope()), 6) || '000000', "
        "left((SELECT gridone_scope()), 9) || '000'));"
    )
    for table in DATA_ONLY:
        out.append(
            f"CREATE POLICY scope_read ON {table} FOR SELECT TO PUBLIC "
            "USING ((SELECT gridone_scope()) IS NOT NULL);"
        )
    out.append(
        "CREATE POLICY auditor_read ON audit_log FOR SELECT TO PUBLIC "
        "USING (current_setting('gridone.role', true) = 'auditor');"
    )
    out.append("CREATE POLICY append ON audit_log FOR INSERT TO PUBLIC WITH CHECK (true);")
    rls_tables = [t for t, _, _ in SCOPED] + [
        "housing_special_count",
        "staff",
        "admin_unit",
        *DATA_ONLY,
        "audit_log",
    ]
    for table in rls_tables:
        out.append(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;")
        out.append(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY;")
        out.append(
            f"CREATE POLICY owner_maintains ON {table} FOR ALL TO CURRENT_USER "
            "USING (true) WITH CHECK (true);"
        )
    return "\n".join(out)


VIEWS_SQL = f"""
CREATE VIEW special_group_by_grid WITH (security_barrier) AS
SELECT h.grid_code, h.street_code,
       sum(h.n_released_prisoners)::integer AS n_released_prisoners,
       sum(h.n_community_correction)::integer AS n_community_correction,
       sum(h.n_drug_users)::integer AS n_drug_users,
       sum(h.n_severe_mental_illness)::integer AS n_severe_mental_illness,
       sum(h.n_key_youth)::integer AS n_key_youth,
       max(h.updated_on) AS updated_on
  FROM housing_special_count h
 WHERE current_setting('gridone.role', true) IN ('district', 'street')
   AND {_in_scope("h.street_code", "h.grid_code")}
 GROUP BY h.grid_code, h.street_code;
COMMENT ON VIEW special_group_by_grid IS
  'Special-group counts summed per grid (NULL grid: units outside every grid), for the district and street roles only; the application may not read the per-unit table.';

CREATE VIEW staff_phone WITH (security_barrier) AS
SELECT s.id,
       CASE WHEN s.phone IS NULL THEN NULL
            WHEN current_setting('gridone.role', true) = 'district'
              OR s.code = current_setting('gridone.staff_code', true) THEN s.phone
            ELSE left(s.phone, 3) || '****' || right(s.phone, 4) END AS phone
  FROM staff s
 WHERE s.street_code BETWEEN current_setting('gridone.street_lo', true)
                         AND current_setting('gridone.street_hi', true);
COMMENT ON VIEW staff_phone IS
  'Worker phone numbers, masked (139****0001) except the user''s own (gridone.staff_code) and for the district role.';
"""


def _grants_sql() -> str:
    data = ", ".join([t for t, _, _ in SCOPED] + ["admin_unit", *DATA_ONLY, *CODE_TABLES])
    return f"""
GRANT USAGE ON SCHEMA public TO {READER}, {AUTH};
GRANT SELECT ON {data} TO {READER};
GRANT SELECT ({STAFF_COLUMNS}) ON staff TO {READER};
GRANT SELECT ON special_group_by_grid, staff_phone TO {READER};
GRANT SELECT, INSERT, UPDATE ON app_user, app_session TO {AUTH};
GRANT SELECT, INSERT ON audit_log TO {AUTH};
GRANT EXECUTE ON FUNCTION audit_purge(integer) TO {AUTH};
"""


def _revoke_sql() -> str:
    tables = ", ".join(
        [t for t, _, _ in SCOPED]
        + ["admin_unit", "staff", "housing_special_count", *DATA_ONLY, *CODE_TABLES]
    )
    return f"""
REVOKE ALL ON {tables} FROM {READER};
REVOKE USAGE ON SCHEMA public FROM {READER}, {AUTH};
"""


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("login", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("scope_code", sa.Text(), nullable=True),
        sa.Column("staff_code", sa.Text(), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("failed_count", sa.SmallInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("totp_secret", sa.Text(), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "password_changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "login ~ '^[a-z0-9][a-z0-9_.-]{1,63}$'", name=op.f("ck_app_user_login_format")
        ),
        sa.CheckConstraint(
            "length(btrim(display_name)) > 0", name=op.f("ck_app_user_display_name_not_blank")
        ),
        sa.CheckConstraint(
            "role IN ('district', 'street', 'community', 'grid', 'sysadmin', 'auditor')",
            name=op.f("ck_app_user_role"),
        ),
        sa.CheckConstraint(
            "(role = 'district' AND scope_code ~ '^\\d{6}000000$') OR "
            "(role = 'street' AND scope_code ~ '^\\d{9}000$' AND scope_code !~ '^\\d{6}000000$') OR "
            "(role = 'community' AND scope_code ~ '^\\d{12}$' AND scope_code !~ '000$') OR "
            "(role = 'grid' AND scope_code ~ '^\\d{15}$') OR "
            "(role IN ('sysadmin', 'auditor') AND scope_code IS NULL)",
            name=op.f("ck_app_user_scope_matches_role"),
        ),
        sa.CheckConstraint(
            "password_hash LIKE '$argon2%'", name=op.f("ck_app_user_password_hash_argon2")
        ),
        sa.CheckConstraint("failed_count >= 0", name=op.f("ck_app_user_failed_count_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("login", name=op.f("uq_app_user_login")),
    )
    op.create_table(
        "app_session",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "last_seen", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "octet_length(token_hash) = 32", name=op.f("ck_app_session_token_hash_sha256")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["app_user.id"], name=op.f("fk_app_session_user_id_app_user")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_app_session_token_hash")),
    )
    op.create_index("ix_app_session_user_id", "app_session", ["user_id"], unique=False)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("login", sa.Text(), nullable=True),
        sa.Column("user_role", sa.Text(), nullable=True),
        sa.Column("scope_code", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("ok", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("client", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "action IN ('login', 'login_failed', 'logout', 'session_expired', 'page_view', "
            "'export', 'briefing', 'user_add', 'user_change', 'password_set', 'lock', "
            "'unlock', 'purge')",
            name=op.f("ck_audit_log_action"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"], unique=False)
    op.create_index("ix_audit_log_login_at", "audit_log", ["login", "at"], unique=False)

    op.execute(ROLES_SQL)
    op.execute(SCOPE_FUNCTIONS_SQL)
    op.execute(AUDIT_SQL)
    op.execute(_policies_sql())
    op.execute(VIEWS_SQL)
    op.execute(_grants_sql())


def downgrade() -> None:
    # The roles are cluster-wide (other databases use them): they stay.
    op.execute(_revoke_sql())
    op.execute("DROP VIEW IF EXISTS special_group_by_grid, staff_phone")
    tables = [t for t, _, _ in SCOPED] + [
        "housing_special_count",
        "staff",
        "admin_unit",
        *DATA_ONLY,
    ]
    for table in tables:
        op.execute(f"DROP POLICY IF EXISTS scope_read ON {table}")
        op.execute(f"DROP POLICY IF EXISTS owner_maintains ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP FUNCTION IF EXISTS gridone_set_scope(text, text)")
    op.execute("DROP FUNCTION IF EXISTS gridone_scope()")
    op.execute(f"REVOKE ALL ON app_user, app_session, audit_log FROM {AUTH}")
    op.drop_table("audit_log")  # its triggers go with it
    op.execute("DROP FUNCTION IF EXISTS audit_purge(integer)")
    op.execute("DROP FUNCTION IF EXISTS audit_log_guard()")
    op.drop_index("ix_app_session_user_id", table_name="app_session")
    op.drop_table("app_session")
    op.drop_table("app_user")
