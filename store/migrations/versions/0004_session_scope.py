"""session scope: the transaction's scope comes from a live session token, and is signed

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 22:00:00

Issue 7, hardening of 0003. Until here anyone who could run SQL as ``gridone_app`` (SQL
injected through the dashboard) could call ``gridone_set_scope('district', '370214')`` or
simply ``set_config('gridone.street_lo', '0', true)`` and read every street. Now:

* ``gridone_scope_session(token)`` (SECURITY DEFINER) is the application's only way to set a
  scope: it finds the live session whose token hashes to ``sha256(token)`` (not revoked,
  used within its ``idle_minutes``, younger than its ``max_hours``, user active and not
  locked) and sets exactly what ``gridone_set_scope`` sets for that user's role and scope,
  plus ``gridone.staff_code``. No live session: empty ranges, nothing readable.
* ``gridone_set_scope`` stays for the owner (tests, maintenance) but EXECUTE is revoked from
  PUBLIC: the application may not call it.
* Every value it sets is signed: ``gridone.sig`` is a SHA-256 over the role, scope, ranges,
  staff code, backend and transaction start, keyed by a random secret in
  ``gridone_secret`` that only the owner can read. Every policy and the two views now also
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

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

AUTH = "gridone_auth"
GATE = "(SELECT gridone_scope_ok())"


def _m0003() -> ModuleType:
    """Migration 0003 (its policy and view texts, which this one extends and restores)."""
    path = Path(__file__).with_name("0003_access_control.py")
    spec = importlib.util.spec_from_file_location("gridone_migration_0003", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_POLICY = re.compile(r"^CREATE POLICY (\w+) ON (\w+) (.*) USING \((.*)\);$")


def _data_policies(gated: bool) -> str:
    """Drop and re-create the ``scope_read`` / ``auditor_read`` policies of 0003, with the
    signature gate (``gated``) or as 0003 made them."""
    out = []
    for line in _m0003()._policies_sql().splitlines():
        m = _POLICY.match(line)
        if not m or m.group(1) not in ("scope_read", "auditor_read"):
            continue
        name, table, rest, using = m.groups()
        if gated:
            using = f"({using}) AND {GATE}"
        out.append(f"DROP POLICY {name} ON {table};")
        out.append(f"CREATE POLICY {name} ON {table} {rest} USING ({using});")
    return "\n".join(out)


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
    op.execute(_data_policies(gated=True))
    op.execute(_views(gated=True))


def downgrade() -> None:
    op.execute(_views(gated=False))
    op.execute(_data_policies(gated=False))
    op.execute(UNGATED_SCOPE_SQL)
    op.execute("DROP FUNCTION IF EXISTS gridone_scope_session(text)")
    op.execute("DROP FUNCTION IF EXISTS gridone_set_scope(text, text)")
    op.execute(
        "CREATE FUNCTION gridone_set_scope"
        + _m0003().SCOPE_FUNCTIONS_SQL.split("CREATE FUNCTION gridone_set_scope", 1)[1]
    )
    op.execute("DROP FUNCTION IF EXISTS gridone_scope_ok()")
    op.execute("DROP FUNCTION IF EXISTS gridone_scope_sig()")
    op.execute("DROP TABLE IF EXISTS gridone_secret")
    op.drop_constraint(op.f("ck_app_session_timeouts_range"), "app_session", type_="check")
    op.drop_column("app_session", "max_hours")
    op.drop_column("app_session", "idle_minutes")
