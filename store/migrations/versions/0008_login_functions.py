"""login functions: passwords checked in the database, no table access for the application

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 02:30:00

Issue 7, closing the injection gap 0007 left. Until here ``gridone_auth`` (and so the
dashboard's ``gridone_app``) could SELECT, INSERT and UPDATE ``app_user`` and
``app_session``, because passwords were checked in Python: SQL injected through the
dashboard could read the password hashes and TOTP secrets, or insert a session for a
district user and read everything with its token. Now:

* pgcrypto (a trusted extension since PostgreSQL 13: the database's owner may create it
  without being a superuser) does the password hashing in the database: bcrypt,
  ``crypt(password, gen_salt('bf', cost))``; the cost is the owner-side setting
  ``GRIDONE_PASSWORD_BCRYPT_COST``.
* Three SECURITY DEFINER functions, owned by the owner, with a fixed ``search_path``, are
  all the application may do with logins and sessions (EXECUTE to ``gridone_auth`` only):
  ``gridone_login`` (password with ``crypt``, lock-out, the second factor (TOTP, RFC 6238,
  HMAC-SHA1 with pgcrypto's ``hmac``, one step of drift either side, no replay), the audit
  rows, and a new session whose token is made by ``gen_random_bytes`` and stored as its
  SHA-256 only), ``gridone_session_resume`` and ``gridone_session_end``. The application
  gets a token and the user's public fields; never a hash, a secret or another user.
* Every privilege of ``gridone_auth`` on ``app_user`` and ``app_session`` is revoked.
* Every SECURITY DEFINER function of the schema now names ``pg_temp`` last in its
  ``search_path``. Before, the caller's temporary schema was searched first for tables
  (PostgreSQL does that when pg_temp is not named), and ``gridone_app`` may create
  temporary tables: a temporary ``app_user`` and ``app_session`` holding a made-up
  district user made ``gridone_scope_session`` sign a district scope for a made-up token,
  and a temporary ``gridone_secret`` gave away the signature's key. (Functions and
  operators are never looked up in pg_temp.)
* Argon2 hashes (made before this migration) cannot be checked in SQL. They are kept (a
  downgrade makes them usable again), the CHECK accepts both forms, and the login answers
  ``reset_required`` for such an account until an administrator sets a new password
  (``python -m store users passwd LOGIN``; ``python -m store users demo-logins`` does it
  for the demo users).

The downgrade gives ``gridone_auth`` its 0003 grants back, drops the functions and
pgcrypto, and restores the Argon2-only CHECK: bcrypt hashes set under 0008 become an
Argon2-shaped string that verifies no password, so those accounts need a new password
under 0007 (the mirror of the upgrade).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

AUTH = "gridone_auth"

#: A bcrypt hash as pgcrypto writes it: $2a$, a two-digit cost, 22 + 31 characters.
BCRYPT_RE = r"^\$2a\$[0-9]{2}\$[./A-Za-z0-9]{53}$"
#: What a bcrypt hash becomes on downgrade: Argon2-shaped, verifies nothing.
UNUSABLE_ARGON2 = "$argon2id$v=19$m=65536,t=3,p=4$cmVzZXQ$cmVzZXQgcmVxdWlyZWQ"

#: The SECURITY DEFINER functions of 0003-0007, whose ``search_path = pg_catalog, public``
#: left the caller's temporary schema searched first for tables: ``gridone_app`` may
#: create temporary tables, and a temporary ``app_session`` / ``app_user`` (or
#: ``gridone_secret``) shadowed the real ones inside ``gridone_scope_session`` (or the
#: signature), giving any scope. pg_temp is now named last, as PostgreSQL's manual
#: ("Writing SECURITY DEFINER Functions Safely") asks.
EARLIER_DEFINERS = (
    "gridone_set_scope(text, text)",
    "gridone_scope_sig()",
    "gridone_scope_ok()",
    "gridone_scope_session(text)",
    "audit_purge(integer)",
    "coverage_stale_new()",
    "coverage_stale_all()",
)
SAFE_PATH = "pg_catalog, public, pg_temp"
EARLIER_PATH = "pg_catalog, public"

#: The functions the application may call (signature as in pg_proc).
APP_FUNCTIONS = (
    "gridone_login(text, text, text, text, integer, integer, integer, integer)",
    "gridone_session_resume(text, text)",
    "gridone_session_end(text, text)",
)
#: The owner's helpers (EXECUTE revoked from PUBLIC).
OWNER_FUNCTIONS = (
    "gridone_base32_decode(text)",
    "gridone_totp_code(text, bigint)",
    "gridone_bcrypt_cost()",
    "gridone_session_open(integer, integer, integer)",
)

#: pgcrypto ships with the server (Debian: in postgresql-15; elsewhere a "contrib" package)
#: and is trusted since PostgreSQL 13: the database's owner needs no superuser for it.
PGCRYPTO_SQL = """
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgcrypto') THEN
    RAISE EXCEPTION 'pgcrypto is not installed on this PostgreSQL server: install its '
      'contrib extensions (Debian/Ubuntu: part of the postgresql-NN package; RHEL: '
      'postgresqlNN-contrib), then migrate again';
  END IF;
END $$;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
"""

FUNCTIONS_SQL = r"""
CREATE FUNCTION gridone_base32_decode(s text) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
  alphabet constant text := 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  bits bigint := 0;
  nbits integer := 0;
  result bytea := ''::bytea;
  v integer;
  i integer;
  u text := upper(rtrim(s, '='));
BEGIN
  FOR i IN 1 .. length(u) LOOP
    v := strpos(alphabet, substr(u, i, 1)) - 1;
    IF v < 0 THEN
      RAISE EXCEPTION 'not a base32 string' USING ERRCODE = '22023';
    END IF;
    bits := (bits << 5) | v;
    nbits := nbits + 5;
    IF nbits >= 8 THEN
      result := result || set_byte('\x00'::bytea, 0, ((bits >> (nbits - 8)) & 255)::integer);
      nbits := nbits - 8;
      bits := bits & ((1::bigint << nbits) - 1);
    END IF;
  END LOOP;
  RETURN result;
END $$;
COMMENT ON FUNCTION gridone_base32_decode(text) IS
  'The bytes of a base32 (RFC 4648) string: TOTP secrets are kept as authenticator apps show them.';

CREATE FUNCTION gridone_totp_code(secret text, step bigint) RETURNS text
LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, public, pg_temp AS $$
  SELECT lpad(((((get_byte(mac, o) & 127)::bigint << 24) | (get_byte(mac, o + 1) << 16)
                | (get_byte(mac, o + 2) << 8) | get_byte(mac, o + 3)) % 1000000)::text,
              6, '0')
    FROM (SELECT mac, get_byte(mac, 19) & 15 AS o
            FROM (SELECT hmac(int8send(step), gridone_base32_decode(secret), 'sha1') AS mac) m
         ) t
$$;
COMMENT ON FUNCTION gridone_totp_code(text, bigint) IS
  'The RFC 6238 code (HMAC-SHA1, 6 digits) of a base32 secret for a 30-second time step.';

CREATE FUNCTION gridone_bcrypt_cost() RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
  SELECT coalesce((SELECT substr(password_hash, 5, 2)::integer FROM app_user
                    WHERE password_hash LIKE '$2a$%'
                    ORDER BY password_changed_at DESC, id DESC LIMIT 1), 12)
$$;
COMMENT ON FUNCTION gridone_bcrypt_cost() IS
  'The bcrypt cost of the newest password: what a check against a dummy hash must cost so that an unknown login takes as long as a known one.';

CREATE FUNCTION gridone_session_open(user_id integer, idle_minutes integer, max_hours integer)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
  token text := translate(rtrim(encode(gen_random_bytes(32), 'base64'), '='), '+/', '-_');
BEGIN
  INSERT INTO app_session (token_hash, user_id, idle_minutes, max_hours)
  VALUES (sha256(convert_to(token, 'UTF8')), user_id, idle_minutes, max_hours);
  RETURN token;
END $$;
COMMENT ON FUNCTION gridone_session_open(integer, integer, integer) IS
  'A new session of a user: a random token (32 bytes, base64url) returned once, its SHA-256 stored.';

CREATE FUNCTION gridone_login(
  p_login text, p_password text, p_totp text, p_client text,
  p_max_failures integer, p_lockout_minutes integer,
  p_idle_minutes integer, p_max_hours integer)
RETURNS TABLE (outcome text, token text, locked_until timestamptz, id integer, login text,
               display_name text, role text, scope_code text, staff_code text, active boolean)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
#variable_conflict use_column
DECLARE
  -- the bounds of store.settings.AccessSettings: a caller cannot turn the lock-out off
  max_f constant integer := least(greatest(coalesce(p_max_failures, 5), 1), 100);
  lock_m constant integer := least(greatest(coalesce(p_lockout_minutes, 15), 1), 1440);
  idle_m constant integer := least(greatest(coalesce(p_idle_minutes, 30), 1), 1440);
  max_h constant integer := least(greatest(coalesce(p_max_hours, 12), 1), 168);
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
COMMENT ON FUNCTION gridone_login(text, text, text, text, integer, integer, integer, integer) IS
  'Log in: login, password, one-time code (or NULL), client address, then the lock-out and session settings (clamped to the bounds of AccessSettings). Outcome ok (with the session token and the user''s public fields), wrong, wrong_code, code_required (right password, TOTP account, no code given), locked (with locked_until) or reset_required (Argon2 hash of before 0008). Audited as login / login_failed / lock.';

CREATE FUNCTION gridone_session_resume(p_token text, p_client text)
RETURNS TABLE (outcome text, id integer, login text, display_name text, role text,
               scope_code text, staff_code text, active boolean, locked_until timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
#variable_conflict use_column
DECLARE
  r record;
  reason text;
BEGIN
  SELECT s.id AS session_id, s.revoked_at,
         s.last_seen < now() - make_interval(mins => s.idle_minutes) AS idle,
         s.created_at < now() - make_interval(hours => s.max_hours) AS old,
         a.id AS user_id, a.login AS user_login, a.display_name AS user_name,
         a.role AS user_role, a.scope_code AS user_scope, a.staff_code AS user_staff,
         a.active AS user_active, a.locked_until AS user_locked_until,
         coalesce(a.locked_until > now(), false) AS locked
    INTO r
    FROM app_session s JOIN app_user a ON a.id = s.user_id
   WHERE s.token_hash = sha256(convert_to(coalesce(p_token, ''), 'UTF8'))
     FOR UPDATE OF s;
  IF NOT FOUND OR r.revoked_at IS NOT NULL THEN
    RETURN QUERY SELECT 'invalid'::text, NULL::integer, NULL::text, NULL::text, NULL::text,
      NULL::text, NULL::text, NULL::boolean, NULL::timestamptz;
    RETURN;
  END IF;
  reason := CASE WHEN r.idle THEN 'idle' WHEN r.old THEN 'max_age'
                 WHEN NOT r.user_active THEN 'inactive' WHEN r.locked THEN 'locked' END;
  IF reason IS NOT NULL THEN
    UPDATE app_session s SET revoked_at = now() WHERE s.id = r.session_id;
    INSERT INTO audit_log (login, user_role, scope_code, action, ok, detail, client)
    VALUES (r.user_login, r.user_role, r.user_scope, 'session_expired', true,
            jsonb_build_object('reason', reason), p_client);
    RETURN QUERY SELECT 'expired'::text, NULL::integer, NULL::text, NULL::text, NULL::text,
      NULL::text, NULL::text, NULL::boolean, NULL::timestamptz;
    RETURN;
  END IF;
  UPDATE app_session s SET last_seen = now() WHERE s.id = r.session_id;
  RETURN QUERY SELECT 'ok'::text, r.user_id, r.user_login, r.user_name, r.user_role,
    r.user_scope, r.user_staff, r.user_active, r.user_locked_until;
END $$;
COMMENT ON FUNCTION gridone_session_resume(text, text) IS
  'The user of a live session (its last use moved to now): outcome ok; invalid (unknown or logged out); expired (idle, too old, user inactive or locked: revoked now and audited as session_expired).';

CREATE FUNCTION gridone_session_end(p_token text, p_client text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
  r record;
BEGIN
  UPDATE app_session s SET revoked_at = now() FROM app_user a
   WHERE s.token_hash = sha256(convert_to(coalesce(p_token, ''), 'UTF8'))
     AND s.revoked_at IS NULL AND a.id = s.user_id
  RETURNING a.login, a.role, a.scope_code INTO r;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  INSERT INTO audit_log (login, user_role, scope_code, action, ok, client)
  VALUES (r.login, r.role, r.scope_code, 'logout', true, p_client);
  RETURN true;
END $$;
COMMENT ON FUNCTION gridone_session_end(text, text) IS
  'Log out: the session of this token is revoked (its token refused from now on) and audited.';
"""


def _acl_sql() -> str:
    out = [f"REVOKE ALL ON app_user, app_session FROM {AUTH};"]
    for fn in OWNER_FUNCTIONS + APP_FUNCTIONS:
        out.append(f"REVOKE ALL ON FUNCTION {fn} FROM PUBLIC;")
    for fn in APP_FUNCTIONS:
        out.append(f"GRANT EXECUTE ON FUNCTION {fn} TO {AUTH};")
    return "\n".join(out)


def upgrade() -> None:
    op.execute(PGCRYPTO_SQL)
    op.execute("ALTER TABLE app_user DROP CONSTRAINT ck_app_user_password_hash_argon2")
    op.execute(
        "ALTER TABLE app_user ADD CONSTRAINT ck_app_user_password_hash_format CHECK "
        f"(password_hash ~ '{BCRYPT_RE}' OR password_hash LIKE '$argon2%')"
    )
    for fn in EARLIER_DEFINERS:
        op.execute(f"ALTER FUNCTION {fn} SET search_path = {SAFE_PATH}")
    op.execute(FUNCTIONS_SQL)
    op.execute(_acl_sql())


def downgrade() -> None:
    for fn in APP_FUNCTIONS + OWNER_FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    for fn in EARLIER_DEFINERS:
        op.execute(f"ALTER FUNCTION {fn} SET search_path = {EARLIER_PATH}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON app_user, app_session TO {AUTH}")
    op.execute("ALTER TABLE app_user DROP CONSTRAINT ck_app_user_password_hash_format")
    op.get_bind().execute(
        sa.text("UPDATE app_user SET password_hash = :h WHERE password_hash NOT LIKE '$argon2%'"),
        {"h": UNUSABLE_ARGON2},
    )
    op.execute(
        "ALTER TABLE app_user ADD CONSTRAINT ck_app_user_password_hash_argon2 CHECK "
        "(password_hash LIKE '$argon2%')"
    )
    op.execute("DROP EXTENSION IF EXISTS pgcrypto")
