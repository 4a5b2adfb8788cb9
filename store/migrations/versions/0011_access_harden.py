"""access hardening: the lock-out policy in the database, audit rows only as the session's user

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 05:30:00

Issue 7, closing three limits 0008 left (docs/access-control.md):

* **The lock-out policy was the caller's.** ``gridone_login`` took the failures before a
  lock, the lock's minutes and the session timeouts as arguments, clamped only to
  ``AccessSettings``' bounds: SQL injected as ``gridone_app`` could call it with 100
  failures and a 1-minute lock. Now the policy is one row of ``gridone_login_policy``, a
  table only the owner may read or write (no grant to anyone), which ``gridone_login``
  reads itself; the function takes login, password, one-time code and client address only.
  The owner writes the row: this migration seeds it with ``AccessSettings``' defaults,
  ``python -m store migrate`` then writes the values the environment sets
  (``GRIDONE_LOGIN_MAX_FAILURES`` …), ``python -m store users policy`` shows or changes it;
  each change is audited (``store.access.set_login_policy``).
* **The application could insert any audit row** (another login, role or scope). INSERT on
  ``audit_log`` is revoked from ``gridone_auth``; the application writes its rows
  (``page_view``, ``export``, ``briefing``) through ``gridone_audit(action, ok, detail,
  client)``, SECURITY DEFINER, which takes login, role and scope from the session that
  scoped the current transaction. ``gridone_scope_session`` now also sets
  ``gridone.session`` (the session's id) and ``gridone.session_sig``, a SHA-256 keyed by
  ``gridone_secret`` over that id and the transaction's scope signature (``gridone.sig``,
  which already binds backend and transaction start): an id set by hand, or a scope set
  afterwards by ``gridone_set_scope``, does not match, and ``gridone_audit`` refuses.
  The owner still inserts directly (command lines: exports, briefings, user changes).
* **bcrypt reads only the first 72 bytes of a password**: a password of more than 72 bytes
  (UTF-8) is now a wrong password in ``gridone_login`` (the hash is still computed, so the
  time says nothing), and ``store.access.check_password_rules`` refuses to set one.

The downgrade restores 0010 exactly: 0008's ``gridone_login`` with its eight arguments and
grants, 0007's ``gridone_scope_session`` (with 0008's search path), INSERT on
``audit_log`` for ``gridone_auth``; the policy table and the two new functions go
(tests/test_access_harden.py compares the catalogue with a database migrated to 0010).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

AUTH = "gridone_auth"
SAFE_PATH = "pg_catalog, public, pg_temp"

#: ``AccessSettings``' defaults, the policy until the owner sets another.
DEFAULT_POLICY = {"max_failures": 5, "lockout_minutes": 15, "idle_minutes": 30, "max_hours": 12}

#: The actions the application writes itself (the others are the database's or the owner's).
APP_ACTIONS = ("page_view", "export", "briefing")

#: The functions the application may call after this migration, and the owner's new helper.
APP_FUNCTIONS = (
    "gridone_login(text, text, text, text)",
    "gridone_session_resume(text, text)",
    "gridone_session_end(text, text)",
    "gridone_audit(text, boolean, jsonb, text)",
)
OWNER_FUNCTIONS = ("gridone_session_sig()",)
OLD_LOGIN = "gridone_login(text, text, text, text, integer, integer, integer, integer)"


def _migration(name: str) -> ModuleType:
    """Another migration module of this directory (the texts this one restores)."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"gridone_migration_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _block(sql: str, start: str, end: str) -> str:
    """The text of ``sql`` from ``start`` up to (not including) ``end``."""
    m = re.search(re.escape(start) + r".*?(?=" + re.escape(end) + ")", sql, re.S)
    assert m, start
    return m.group(0)


POLICY_SQL = """
CREATE TABLE gridone_login_policy (
  id boolean DEFAULT true NOT NULL,
  max_failures integer NOT NULL,
  lockout_minutes integer NOT NULL,
  idle_minutes integer NOT NULL,
  max_hours integer NOT NULL,
  updated_at timestamptz DEFAULT now() NOT NULL,
  updated_by text,
  CONSTRAINT pk_gridone_login_policy PRIMARY KEY (id),
  CONSTRAINT ck_gridone_login_policy_one_row CHECK (id),
  CONSTRAINT ck_gridone_login_policy_bounds CHECK (max_failures BETWEEN 1 AND 100
    AND lockout_minutes BETWEEN 1 AND 1440 AND idle_minutes BETWEEN 1 AND 1440
    AND max_hours BETWEEN 1 AND 168));
REVOKE ALL ON gridone_login_policy FROM PUBLIC;
COMMENT ON TABLE gridone_login_policy IS
  'The login lock-out and session timeouts gridone_login applies (one row); the owner only reads and writes it.';
"""

SEED_SQL = """
INSERT INTO gridone_login_policy (max_failures, lockout_minutes, idle_minutes, max_hours,
                                  updated_by)
VALUES (:max_failures, :lockout_minutes, :idle_minutes, :max_hours, 'migration 0011')
"""

FUNCTIONS_SQL = r"""
CREATE FUNCTION gridone_session_sig() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
  SELECT encode(sha256((SELECT k FROM gridone_secret LIMIT 1) || convert_to(concat_ws('|',
    'session', current_setting('gridone.session', true), current_setting('gridone.sig', true)),
    'UTF8')), 'hex')
$$;
COMMENT ON FUNCTION gridone_session_sig() IS
  'Signature of gridone.session (the id of the session that scoped this transaction) over the scope signature gridone.sig.';

CREATE OR REPLACE FUNCTION gridone_scope_session(token text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
  u record;
  ok boolean;
BEGIN
  SELECT s.id AS session_id, a.role, a.scope_code, a.staff_code INTO u
    FROM app_session s JOIN app_user a ON a.id = s.user_id
   WHERE s.token_hash = sha256(convert_to(coalesce(token, ''), 'UTF8'))
     AND s.revoked_at IS NULL
     AND s.last_seen >= now() - make_interval(mins => s.idle_minutes)
     AND s.created_at >= now() - make_interval(hours => s.max_hours)
     AND a.active AND (a.locked_until IS NULL OR a.locked_until <= now());
  IF NOT FOUND THEN
    PERFORM set_config('gridone.staff_code', '', true);
    PERFORM gridone_set_scope(NULL, NULL);
    PERFORM set_config('gridone.session', '', true);
    PERFORM set_config('gridone.session_sig', '', true);
    RETURN false;
  END IF;
  PERFORM set_config('gridone.staff_code', coalesce(u.staff_code, ''), true);
  ok := gridone_set_scope(u.role, left(u.scope_code, CASE u.role WHEN 'district' THEN 6
    WHEN 'street' THEN 9 WHEN 'community' THEN 12 WHEN 'grid' THEN 15 ELSE 0 END));
  PERFORM set_config('gridone.session', u.session_id::text, true);
  PERFORM set_config('gridone.session_sig', gridone_session_sig(), true);
  RETURN ok OR u.role IN ('sysadmin', 'auditor');
END $$;
COMMENT ON FUNCTION gridone_scope_session(text) IS
  'Sets the transaction''s scope (as gridone_set_scope, signed) from the live session whose token this is, and the session''s id (gridone.session, signed: gridone_audit reads it); returns false and sets an empty scope when there is none.';

CREATE FUNCTION gridone_audit(p_action text, p_ok boolean, p_detail jsonb, p_client text)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
#variable_conflict use_column
DECLARE
  sid text := coalesce(current_setting('gridone.session', true), '');
  r record;
  new_id bigint;
BEGIN
  IF p_action IS NULL OR p_action NOT IN ({app_actions}) THEN
    RAISE EXCEPTION 'gridone_audit: the application does not write % rows', p_action
      USING ERRCODE = '22023';
  END IF;
  IF sid !~ '^[0-9]{1,18}$' OR NOT gridone_scope_ok()
     OR current_setting('gridone.session_sig', true) IS DISTINCT FROM gridone_session_sig() THEN
    RAISE EXCEPTION 'gridone_audit: no session scopes this transaction'
      USING ERRCODE = '42501',
            HINT = 'call gridone_scope_session(token) first in the same transaction';
  END IF;
  SELECT a.login, a.role, a.scope_code INTO r
    FROM app_session s JOIN app_user a ON a.id = s.user_id
   WHERE s.id = sid::bigint AND s.revoked_at IS NULL
     AND s.last_seen >= now() - make_interval(mins => s.idle_minutes)
     AND s.created_at >= now() - make_interval(hours => s.max_hours)
     AND a.active AND (a.locked_until IS NULL OR a.locked_until <= now());
  IF NOT FOUND THEN
    RAISE EXCEPTION 'gridone_audit: the session of this transaction has ended'
      USING ERRCODE = '42501';
  END IF;
  INSERT INTO audit_log (login, user_role, scope_code, action, ok, detail, client)
  VALUES (r.login, r.role, r.scope_code, p_action, coalesce(p_ok, true), p_detail, p_client)
  RETURNING id INTO new_id;
  RETURN new_id;
END $$;
COMMENT ON FUNCTION gridone_audit(text, boolean, jsonb, text) IS
  'The application''s audit rows (page_view, export, briefing): written with the login, role and scope of the session that scoped this transaction (gridone_scope_session), whatever the caller says; refused without one.';

CREATE FUNCTION gridone_login(p_login text, p_password text, p_totp text, p_client text)
RETURNS TABLE (outcome text, token text, locked_until timestamptz, id integer, login text,
               display_name text, role text, scope_code text, staff_code text, active boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
#variable_conflict use_column
DECLARE
  pol gridone_login_policy%ROWTYPE;
  max_f integer;
  lock_m integer;
  idle_m integer;
  max_h integer;
  pw constant text := coalesce(p_password, '');
  code constant text := btrim(coalesce(p_totp, ''));
  typed constant text := left(coalesce(p_login, ''), 64);
  u app_user%ROWTYPE;
  known boolean := false;
  pw_ok boolean;
  t bigint;
  step bigint;
  failures integer;
  locks boolean;
  until timestamptz;
BEGIN
  -- the owner's policy (one row; its CHECK holds the bounds of AccessSettings), never
  -- the caller's: without a row, AccessSettings' defaults
  SELECT * INTO pol FROM gridone_login_policy LIMIT 1;
  max_f := least(greatest(coalesce(pol.max_failures, 5), 1), 100);
  lock_m := least(greatest(coalesce(pol.lockout_minutes, 15), 1), 1440);
  idle_m := least(greatest(coalesce(pol.idle_minutes, 30), 1), 1440);
  max_h := least(greatest(coalesce(pol.max_hours, 12), 1), 168);
  IF coalesce(p_login, '') ~ '^[a-z0-9][a-z0-9_.-]{1,63}$' THEN
    SELECT * INTO u FROM app_user a WHERE a.login = p_login FOR UPDATE;
    known := FOUND;
  END IF;
  IF NOT known OR NOT u.active THEN
    PERFORM crypt(pw, gen_salt('bf', gridone_bcrypt_cost()));  -- costs what a check costs
    INSERT INTO audit_log (login, action, ok, detail, client)
    VALUES (typed, 'login_failed', false,
            jsonb_build_object('reason', CASE WHEN known THEN 'inactive' ELSE 'unknown' END),
            p_client);
    RETURN QUERY SELECT 'wrong'::text, NULL::text, NULL::timestamptz, NULL::integer,
      NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::boolean;
    RETURN;
  END IF;
  IF u.locked_until > now() THEN
    INSERT INTO audit_log (login, action, ok, detail, client)
    VALUES (u.login, 'login_failed', false, '{"reason": "locked"}'::jsonb, p_client);
    RETURN QUERY SELECT 'locked'::text, NULL::text, u.locked_until, NULL::integer,
      NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::boolean;
    RETURN;
  END IF;
  IF u.password_hash NOT LIKE '$2a$%' THEN  -- an Argon2 hash of before 0008
    PERFORM crypt(pw, gen_salt('bf', gridone_bcrypt_cost()));
    INSERT INTO audit_log (login, action, ok, detail, client)
    VALUES (u.login, 'login_failed', false, '{"reason": "password reset required"}'::jsonb,
            p_client);
    RETURN QUERY SELECT 'reset_required'::text, NULL::text, NULL::timestamptz, NULL::integer,
      NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::boolean;
    RETURN;
  END IF;
  pw_ok := crypt(pw, u.password_hash) = u.password_hash;
  -- bcrypt reads 72 bytes: a longer password is one no password was set to (the rules
  -- refuse them), and its first 72 bytes must not let it in (computed first: same time)
  IF octet_length(convert_to(pw, 'UTF8')) > 72 THEN
    pw_ok := false;
  END IF;
  IF pw_ok THEN
    IF u.totp_secret IS NULL THEN
      step := NULL;
    ELSIF code = '' THEN  -- the password is right: now, and only now, ask for the code
      RETURN QUERY SELECT 'code_required'::text, NULL::text, NULL::timestamptz,
        NULL::integer, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text,
        NULL::boolean;
      RETURN;
    ELSE
      t := floor(extract(epoch FROM clock_timestamp()) / 30)::bigint;
      SELECT s INTO step
        FROM unnest(ARRAY[t, t - 1, t + 1]) WITH ORDINALITY AS c(s, n)
       WHERE code ~ '^[0-9]{6}$'
         AND (u.totp_last_step IS NULL OR s > u.totp_last_step)
         AND gridone_totp_code(u.totp_secret, s) = code
       ORDER BY n LIMIT 1;
      IF step IS NULL THEN
        failures := -1;  -- a wrong code: counted below like a wrong password
      END IF;
    END IF;
    IF failures IS NULL THEN
      UPDATE app_user a SET failed_count = 0, locked_until = NULL,
             totp_last_step = coalesce(step, a.totp_last_step)
       WHERE a.id = u.id;
      INSERT INTO audit_log (login, user_role, scope_code, action, ok, client)
      VALUES (u.login, u.role, u.scope_code, 'login', true, p_client);
      RETURN QUERY SELECT 'ok'::text, gridone_session_open(u.id, idle_m, max_h),
        u.locked_until, u.id, u.login, u.display_name, u.role, u.scope_code, u.staff_code,
        u.active;
      RETURN;
    END IF;
  END IF;
  -- a wrong password, or the right one with a wrong or replayed code
  failures := u.failed_count + 1;
  locks := failures >= max_f;
  UPDATE app_user a SET failed_count = CASE WHEN locks THEN 0 ELSE failures END,
         locked_until = CASE WHEN locks THEN now() + make_interval(mins => lock_m) END
   WHERE a.id = u.id
  RETURNING a.locked_until INTO until;
  INSERT INTO audit_log (login, action, ok, detail, client)
  VALUES (u.login, 'login_failed', false,
          jsonb_build_object('reason', 'password or code', 'failures', failures), p_client);
  IF locks THEN
    INSERT INTO audit_log (login, action, ok, detail, client)
    VALUES (u.login, 'lock', true,
            jsonb_build_object('reason', 'failures', 'minutes', lock_m), p_client);
    RETURN QUERY SELECT 'locked'::text, NULL::text, until, NULL::integer, NULL::text,
      NULL::text, NULL::text, NULL::text, NULL::text, NULL::boolean;
    RETURN;
  END IF;
  RETURN QUERY SELECT CASE WHEN pw_ok THEN 'wrong_code' ELSE 'wrong' END,
    NULL::text, NULL::timestamptz, NULL::integer, NULL::text, NULL::text, NULL::text,
    NULL::text, NULL::text, NULL::boolean;
END $$;
COMMENT ON FUNCTION gridone_login(text, text, text, text) IS
  'Log in: login, password, one-time code (or NULL), client address; the lock-out and the session timeouts are the owner''s gridone_login_policy, not the caller''s. A password over 72 bytes (UTF-8) is wrong. Outcome ok (with the session token and the user''s public fields), wrong, wrong_code, code_required (right password, TOTP account, no code given), locked (with locked_until) or reset_required (Argon2 hash of before 0008). Audited as login / login_failed / lock.';
""".replace("{app_actions}", ", ".join(f"'{a}'" for a in APP_ACTIONS))


def _acl_sql() -> str:
    out = [f"REVOKE INSERT ON audit_log FROM {AUTH};"]
    for fn in OWNER_FUNCTIONS + APP_FUNCTIONS:
        out.append(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC;")
    for fn in APP_FUNCTIONS:
        out.append(f"GRANT EXECUTE ON FUNCTION {fn} TO {AUTH};")
    return "\n".join(out)


def upgrade() -> None:
    op.execute(POLICY_SQL)
    op.get_bind().execute(sa.text(SEED_SQL), DEFAULT_POLICY)
    op.execute(f"DROP FUNCTION {OLD_LOGIN}")
    op.execute(FUNCTIONS_SQL)
    op.execute(_acl_sql())


def downgrade() -> None:
    m0007 = _migration("0007_session_scope")
    m0008 = _migration("0008_login_functions")
    op.execute("DROP FUNCTION IF EXISTS gridone_login(text, text, text, text)")
    op.execute("DROP FUNCTION IF EXISTS gridone_audit(text, boolean, jsonb, text)")
    # 0007's text (CREATE OR REPLACE keeps owner and grants), with 0008's search path
    scope_session = _block(
        m0007.FUNCTIONS_SQL,
        "CREATE FUNCTION gridone_scope_session(",
        "CREATE OR REPLACE FUNCTION gridone_scope()",
    ).replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
    op.execute(scope_session)
    op.execute(f"ALTER FUNCTION gridone_scope_session(text) SET search_path = {SAFE_PATH}")
    op.execute("DROP FUNCTION IF EXISTS gridone_session_sig()")
    op.execute(
        _block(
            m0008.FUNCTIONS_SQL,
            "CREATE FUNCTION gridone_login(",
            "CREATE FUNCTION gridone_session_resume(",
        )
    )
    op.execute(f"REVOKE ALL ON FUNCTION {OLD_LOGIN} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {OLD_LOGIN} TO {AUTH}")
    op.execute(f"GRANT INSERT ON audit_log TO {AUTH}")
    op.execute("DROP TABLE IF EXISTS gridone_login_policy")
