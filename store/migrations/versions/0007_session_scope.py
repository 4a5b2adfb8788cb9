"""session scope: the transaction's scope comes from a live session token, and is signed

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 22:00:00

Issue 7, hardening of 0003 (written as 0004 against 0003, renumbered after
0004_kpi_summary, 0005_rls_spatial and 0006_coverage_day). Until here anyone who could run
SQL as ``gridone_app`` (SQL injected through the dashboard) could call ``gridone_set_scope('district', '370214')`` or
simply ``set_config('gridone.street_lo', '0', true)`` and read every street. Now:

* ``gridone_scope_session(token)`` (SECURITY DEFINER) is the application's only way to set a
  scope: it finds the live session whose token hashes to ``sha256(token)`` (not revoked,
  used within its ``idle_minutes``, younger than its ``max_hours``, user active and not
  locked) and sets exactly what ``gridone_set_scope`` sets for that user's role and scope,
  plus ``gridone.staff_code``. No live session: empty ranges, nothing readable.
* ``gridone_set_scope`` stays for the owner (tests, maintenance) but EXECUTE is revoked from
  PUBLIC: the application may not call it.
* Every value it sets is signed: ``gridone.sig`` is a SHA-256 over the role, scope, ranges
  (0005's grid-code ranges ``gcode_*`` and ``fixgrid_*`` included), staff code, backend and
  transaction start, keyed by a random secret in
  ``gridone_secret`` that only the owner can read. Every ``scope_read`` / ``auditor_read``
  policy as 0006 left it (0005's grid-code ranges, the KPI sums of 0004, the coverage store
  of 0006; the upgrade appends the gate to the filter read from ``pg_policies``, the
  downgrade writes back the filters of 0003-0006's own texts) and the two views now also
  require ``(SELECT gridone_scope_ok())``, which recomputes the signature: settings made by
  hand (``set_config``) or copied from another transaction read nothing. As an uncorrelated
  sub-select it runs once per statement (an InitPlan) and the planner treats it as a
  one-time gating condition, so row estimates and index conditions are unchanged.
* The idle and absolute timeouts are stored with each session (``idle_minutes``,
  ``max_hours``, from the settings at login) so the database can check them itself.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

AUTH = "gridone_auth"
GATE = "(SELECT gridone_scope_ok())"


def _migration(name: str) -> ModuleType:
    """Another migration module of this directory (its SQL texts, which this one extends and
    restores)."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"gridone_migration_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _m0003() -> ModuleType:
    return _migration("0003_access_control")


#: The policies that let a scope read (the owner's ``owner_maintains`` and the audit
#: ``append`` are not gated).
_GATED_POLICIES = ("scope_read", "auditor_read")

_POLICIES = sa.text(
    "SELECT tablename, policyname, qual FROM pg_policies "
    "WHERE schemaname = current_schema() AND policyname IN ('scope_read', 'auditor_read') "
    "ORDER BY tablename, policyname"
)

#: The gate as PostgreSQL prints it back in ``pg_policies.qual``, at the end of the AND.
_GATE_PRINTED = re.compile(r"\s+AND\s+\(\s*SELECT gridone_scope_ok\(\) AS gridone_scope_ok\)\)$")


def _gate_policies(conn: sa.Connection) -> None:
    """Add the signature gate to every ``scope_read`` / ``auditor_read`` policy, keeping its
    row filter exactly as it is (0005's ranges, 0004's and 0006's filters)."""
    for table, name, qual in conn.execute(_POLICIES).all():
        if _GATE_PRINTED.search(qual):
            continue
        conn.execute(sa.text(f"ALTER POLICY {name} ON {table} USING (({qual}) AND {GATE})"))


_CREATE = re.compile(r"^CREATE POLICY (\w+) ON (\w+) .* USING \((.*)\);$")
_ALTER = re.compile(r"^ALTER POLICY (\w+) ON (\w+) USING \((.*)\);$")


def _filters_0006() -> dict[tuple[str, str], str]:
    """(table, policy) → the row filter 0006 leaves, from the migrations that wrote it:
    0003's policies, 0005's grid-code ranges over them, 0004's KPI sums, 0006's coverage."""
    out: dict[tuple[str, str], str] = {}
    for line in _m0003()._policies_sql().splitlines():
        m = _CREATE.match(line)
        if m and m.group(1) in _GATED_POLICIES:
            out[(m.group(2), m.group(1))] = m.group(3)
    for line in _migration("0004_kpi_summary")._rls_sql().splitlines():
        m = _CREATE.match(line)
        if m and m.group(1) in _GATED_POLICIES:
            out[(m.group(2), m.group(1))] = m.group(3)
    for line in _migration("0005_rls_spatial").policies_sql().splitlines():
        m = _ALTER.match(line)
        assert m, line
        out[(m.group(2), m.group(1))] = m.group(3)
    m0006 = _migration("0006_coverage_day")
    out[("coverage_building_day", "scope_read")] = m0006._in_scope("street_code", "grid_code")
    out[("coverage_day", "scope_read")] = "(SELECT gridone_scope()) IS NOT NULL"
    return out


def _ungate_policies(conn: sa.Connection) -> None:
    """Give every gated policy back the filter 0006 left it, written as 0003–0006 wrote it
    (so ``pg_policies`` reads exactly as after 0006; tests/test_session_scope.py compares
    it with a database migrated only to 0006)."""
    filters = _filters_0006()
    for table, name, qual in conn.execute(_POLICIES).all():
        if not _GATE_PRINTED.search(qual):
            continue
        conn.execute(sa.text(f"ALTER POLICY {name} ON {table} USING ({filters[(table, name)]})"))


def _views(gated: bool) -> str:
    """0003's two views, with (``gated``) or without the signature gate."""
    views = _m0003().VIEWS_SQL.replace("CREATE VIEW", "CREATE OR REPLACE VIEW")
    if not gated:
        return views
    marker_sg = "\n GROUP BY h.grid_code, h.street_code;"
    marker_ph = "AND current_setting('gridone.street_hi', true);"
    assert marker_sg in views and marker_ph in views
    views = views.replace(marker_sg, f"\n   AND {GATE}{marker_sg}")
    return views.replace(
        marker_ph, f"AND current_setting('gridone.street_hi', true)\n   AND {GATE};"
    )


FUNCTIONS_SQL = r"""
CREATE TABLE gridone_secret (
  k bytea NOT NULL CONSTRAINT ck_gridone_secret_key_length CHECK (octet_length(k) >= 16));
REVOKE ALL ON gridone_secret FROM PUBLIC;
INSERT INTO gridone_secret (k) VALUES (decode(
  replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', ''),
  'hex'));
COMMENT ON TABLE gridone_secret IS
  'Key of the scope signature (gridone.sig); readable by the owner only.';

CREATE FUNCTION gridone_scope_sig() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT encode(sha256((SELECT k FROM gridone_secret LIMIT 1) || convert_to(concat_ws('|',
    current_setting('gridone.role', true), current_setting('gridone.scope', true),
    current_setting('gridone.street_lo', true), current_setting('gridone.street_hi', true),
    current_setting('gridone.grid_lo', true), current_setting('gridone.grid_hi', true),
    current_setting('gridone.gcode_lo', true), current_setting('gridone.gcode_hi', true),
    current_setting('gridone.fixgrid_lo', true), current_setting('gridone.fixgrid_hi', true),
    current_setting('gridone.staff_code', true), pg_backend_pid()::text,
    (extract(epoch FROM transaction_timestamp()) * 1000000)::bigint::text), 'UTF8')), 'hex')
$$;
REVOKE ALL ON FUNCTION gridone_scope_sig() FROM PUBLIC;

CREATE FUNCTION gridone_scope_ok() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
  SELECT coalesce(current_setting('gridone.sig', true) = gridone_scope_sig(), false)
$$;
COMMENT ON FUNCTION gridone_scope_ok() IS
  'Whether the scope settings of this transaction were made by gridone_set_scope / gridone_scope_session (their signature matches), not by hand.';

CREATE OR REPLACE FUNCTION gridone_set_scope(role text, scope text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
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
  PERFORM set_config('gridone.gcode_lo', CASE WHEN ok THEN rpad(s, 15, '0') ELSE '' END, true);
  PERFORM set_config('gridone.gcode_hi', CASE WHEN ok THEN rpad(s, 15, '9') ELSE '' END, true);
  PERFORM set_config('gridone.fixgrid_lo', CASE WHEN NOT ok THEN '' WHEN n > 9 THEN rpad(s, 15, '0')
                                                ELSE '000000000000000' END, true);
  PERFORM set_config('gridone.fixgrid_hi', CASE WHEN NOT ok THEN '' WHEN n > 9 THEN rpad(s, 15, '9')
                                                ELSE '999999999999999' END, true);
  PERFORM set_config('gridone.sig', gridone_scope_sig(), true);
  RETURN ok;
END $$;
REVOKE ALL ON FUNCTION gridone_set_scope(text, text) FROM PUBLIC;

CREATE FUNCTION gridone_scope_session(token text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
  u record;
  ok boolean;
BEGIN
  SELECT a.role, a.scope_code, a.staff_code INTO u
    FROM app_session s JOIN app_user a ON a.id = s.user_id
   WHERE s.token_hash = sha256(convert_to(coalesce(token, ''), 'UTF8'))
     AND s.revoked_at IS NULL
     AND s.last_seen >= now() - make_interval(mins => s.idle_minutes)
     AND s.created_at >= now() - make_interval(hours => s.max_hours)
     AND a.active AND (a.locked_until IS NULL OR a.locked_until <= now());
  IF NOT FOUND THEN
    PERFORM set_config('gridone.staff_code', '', true);
    PERFORM gridone_set_scope(NULL, NULL);
    RETURN false;
  END IF;
  PERFORM set_config('gridone.staff_code', coalesce(u.staff_code, ''), true);
  ok := gridone_set_scope(u.role, left(u.scope_code, CASE u.role WHEN 'district' THEN 6
    WHEN 'street' THEN 9 WHEN 'community' THEN 12 WHEN 'grid' THEN 15 ELSE 0 END));
  RETURN ok OR u.role IN ('sysadmin', 'auditor');
END $$;
REVOKE ALL ON FUNCTION gridone_scope_session(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION gridone_scope_session(text) TO {auth};
COMMENT ON FUNCTION gridone_scope_session(text) IS
  'Sets the transaction''s scope (as gridone_set_scope, signed) from the live session whose token this is; returns false and sets an empty scope when there is none.';

CREATE OR REPLACE FUNCTION gridone_scope() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN coalesce(current_setting('gridone.street_lo', true), '') = ''
                OR NOT gridone_scope_ok() THEN NULL
    ELSE CASE current_setting('gridone.role', true)
    WHEN 'district' THEN substring(current_setting('gridone.scope', true) FROM '^([0-9]{6})$')
    WHEN 'street' THEN substring(current_setting('gridone.scope', true) FROM '^([0-9]{9})$')
    WHEN 'community' THEN substring(current_setting('gridone.scope', true) FROM '^([0-9]{12})$')
    WHEN 'grid' THEN substring(current_setting('gridone.scope', true) FROM '^([0-9]{15})$')
  END END
$$;
""".replace("{auth}", AUTH)

UNGATED_SCOPE_SQL = r"""
CREATE OR REPLACE FUNCTION gridone_scope() RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN coalesce(current_setting('gridone.street_lo', true), '') = '' THEN NULL
    ELSE CASE current_setting('gridone.role', true)
    WHEN 'district' THEN substring(current_setting('gridone.scope', true) FROM '^([0-9]{6})$')
    WHEN 'street' THEN substring(current_setting('gridone.scope', true) FROM '^([0-9]{9})$')
    WHEN 'community' THEN substring(current_setting('gridone.scope', true) FROM '^([0-9]{12})$')
    WHEN 'grid' THEN substring(current_setting('gridone.scope', true) FROM '^([0-9]{15})$')
  END END
$$;
"""


def upgrade() -> None:
    op.add_column(
        "app_session",
        sa.Column("idle_minutes", sa.Integer(), server_default=sa.text("30"), nullable=False),
    )
    op.add_column(
        "app_session",
        sa.Column("max_hours", sa.Integer(), server_default=sa.text("12"), nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_app_session_timeouts_range"),
        "app_session",
        "idle_minutes BETWEEN 1 AND 1440 AND max_hours BETWEEN 1 AND 168",
    )
    op.execute(FUNCTIONS_SQL)
    _gate_policies(op.get_bind())
    op.execute(_views(gated=True))


def downgrade() -> None:
    op.execute(_views(gated=False))
    _ungate_policies(op.get_bind())
    op.execute(UNGATED_SCOPE_SQL)
    op.execute("DROP FUNCTION IF EXISTS gridone_scope_session(text)")
    op.execute("DROP FUNCTION IF EXISTS gridone_set_scope(text, text)")
    op.execute(_migration("0005_rls_spatial").SET_SCOPE_SQL)
    op.execute("DROP FUNCTION IF EXISTS gridone_scope_ok()")
    op.execute("DROP FUNCTION IF EXISTS gridone_scope_sig()")
    op.execute("DROP TABLE IF EXISTS gridone_secret")
    op.drop_constraint(op.f("ck_app_session_timeouts_range"), "app_session", type_="check")
    op.drop_column("app_session", "max_hours")
    op.drop_column("app_session", "idle_minutes")
