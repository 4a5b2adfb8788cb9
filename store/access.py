"""Logins, sessions, the per-transaction scope and the audit trail (issue 7).

Who may read what is enforced by PostgreSQL (migration 0003): the dashboard connects as
``gridone_app``, which owns nothing and bypasses nothing, and at the start of every
transaction calls :func:`scoped` with the session token, and the database sets that
session's user's role and scope for that transaction only (``gridone_scope_session``:
``SET LOCAL`` of the role, the scope and its code ranges, signed; migration 0007).
Row-level security then returns only rows
inside the user's jurisdiction; with no scope set, none.

* Passwords are hashed with Argon2id (argon2-cffi's defaults: 64 MiB, 3 passes). After
  :attr:`~store.settings.AccessSettings.login_max_failures` failures in a row the account is
  locked for ``login_lockout_minutes``. An unknown login costs the same hash as a known one
  and gets the same message, so timing and wording do not tell which logins exist.
* Sessions live in ``app_session``; the browser holds a random token, the table only its
  SHA-256. A session ends on logout (revoked, the token is then refused), after
  ``session_idle_minutes`` without use, or ``session_max_hours`` after login.
* Every login, failed login, logout, expiry and user change is written to ``audit_log``
  (append-only: the application can insert, never update or delete).

Functions that must record a failure and then refuse (:func:`authenticate`,
:func:`resume_session`) take an :class:`~sqlalchemy.Engine` and commit their bookkeeping in
their own transaction before raising; the others take the caller's connection.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import time
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg import sql
from sqlalchemy import Connection, Engine, text

from store import vocab
from store.errors import (
    AccountLockedError,
    LoginFailedError,
    SessionInvalidError,
    UnsafeConnectionError,
    UserInputError,
)
from store.settings import AccessSettings, get_access_settings

LOGIN_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
_SCOPE_RE = {
    "district": re.compile(r"^\d{6}000000$"),
    "street": re.compile(r"^\d{9}000$"),
    "community": re.compile(r"^\d{12}$"),
    "grid": re.compile(r"^\d{15}$"),
}


def _scope_fits(role: str, scope_code: str | None) -> bool:
    """Whether ``scope_code`` is a code of the level ``role`` reads (as app_user's CHECK)."""
    if role not in _SCOPE_RE or not scope_code or not _SCOPE_RE[role].match(scope_code):
        return False
    if role == "street":
        return not scope_code.endswith("000000")
    if role == "community":
        return not scope_code.endswith("000")
    return True


@dataclass(frozen=True)
class User:
    """A dashboard user as stored in ``app_user`` (without the password hash)."""

    id: int
    login: str
    display_name: str
    role: str
    scope_code: str | None
    staff_code: str | None = None
    active: bool = True
    locked_until: dt.datetime | None = None

    @property
    def scope_prefix(self) -> str | None:
        """The code prefix the user may read (6/9/12/15 digits), None for sysadmin and
        auditor, who read no data."""
        n = vocab.USER_ROLE_SCOPE.get(self.role)
        code = self.scope_code
        if not n or code is None or not _scope_fits(self.role, code):
            return None  # a malformed scope reads nothing rather than something
        return code[:n]

    @property
    def sees_special_groups(self) -> bool:
        """Whether the special-group counts (特殊人群) are shown to this user at all."""
        return self.role in vocab.SPECIAL_GROUP_ROLES


def _user(row: Any) -> User:
    return User(**{k: row._mapping[k] for k in User.__dataclass_fields__})


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@cache
def _dummy_hash() -> str:
    """A hash to verify against when the login is unknown, so that costs the same."""
    return _hasher().hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    """The Argon2id hash of ``password`` (PHC string, salt included)."""
    return _hasher().hash(password)


def check_password_rules(login: str, password: str, settings: AccessSettings) -> None:
    """Refuse a password that is too short, lacks letters or digits, or contains the login."""
    problems = []
    if len(password) < settings.password_min_length:
        problems.append(
            f"至少{settings.password_min_length}个字符 / at least "
            f"{settings.password_min_length} characters"
        )
    if not (re.search(r"[A-Za-z]", password) and re.search(r"\d", password)):
        problems.append("须同时包含字母和数字 / must mix letters and digits")
    if login and login.lower() in password.lower():
        problems.append("不得包含登录名 / must not contain the login name")
    if problems:
        raise UserInputError("密码不符合要求 / password refused: " + "; ".join(problems))


def check_user_fields(login: str, role: str, scope_code: str | None) -> None:
    """Refuse a malformed login name, an unknown role or a scope that does not fit the role
    (district 12 digits ending 000000, street ending 000, community 12 digits, grid 15;
    sysadmin and auditor none)."""
    if not LOGIN_RE.match(login or ""):
        raise UserInputError(
            f"登录名 {login!r} 无效：2–64个小写字母、数字或 _.- / invalid login {login!r}: "
            "2–64 lower-case letters, digits or _.-"
        )
    if role not in vocab.USER_ROLES:
        raise UserInputError(
            f"角色 {role!r} 无效，可选 / unknown role {role!r}, choose one of: "
            + ", ".join(vocab.USER_ROLES)
        )
    if role in _SCOPE_RE:
        if not _scope_fits(role, scope_code):
            raise UserInputError(
                f"角色 {vocab.label('user_role', role)} 需要对应的辖区编码，得到 {scope_code!r} / "
                f"role {role} needs a {role} code as its scope, got {scope_code!r} (district "
                "370214000000, street 370214900000, community 370214900001, grid "
                "370214900001001)"
            )
    elif scope_code:
        raise UserInputError(
            f"{role} 不读取业务数据，不设辖区 / {role} reads no data: give no scope"
        )


def _check_scope_exists(conn: Connection, role: str, scope_code: str | None) -> None:
    if scope_code is None:
        return
    found = conn.execute(
        text(
            "SELECT CASE WHEN :grid THEN EXISTS (SELECT 1 FROM grid WHERE code = :c) "
            "ELSE EXISTS (SELECT 1 FROM admin_unit WHERE code = :c) END"
        ),
        {"grid": role == "grid", "c": scope_code},
    ).scalar_one()
    if not found:
        raise UserInputError(
            f"辖区 {scope_code} 不存在，请先载入区划和网格 / scope {scope_code} is not in the "
            "store: load the admin units and grids first"
        )


# --- the audit trail ---------------------------------------------------------------------


def audit(
    conn: Connection,
    action: str,
    *,
    login: str | None = None,
    user: User | None = None,
    ok: bool = True,
    detail: dict[str, Any] | None = None,
    client: str | None = None,
) -> None:
    """Append one row to ``audit_log`` (the time is the server's). ``user`` fills the login,
    role and scope; ``login`` alone is for attempts by someone not (yet) known."""
    if action not in vocab.AUDIT_ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    conn.execute(
        text(
            "INSERT INTO audit_log (login, user_role, scope_code, action, ok, detail, client) "
            "VALUES (:login, :role, :scope, :action, :ok, CAST(:detail AS jsonb), :client)"
        ),
        {
            "login": user.login if user else login,
            "role": user.role if user else None,
            "scope": user.scope_code if user else None,
            "action": action,
            "ok": ok,
            "detail": json.dumps(detail, ensure_ascii=False, default=str) if detail else None,
            "client": client,
        },
    )


def search_audit(
    conn: Connection,
    *,
    login: str | None = None,
    action: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    contains: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Audit rows, newest first, filtered by login, action, time ``[since, until)`` and a
    text the detail contains. Row-level security shows them to the auditor role only."""
    # NUL cannot be in text: a search for it finds what a search without it finds
    login, action, contains = (
        None if v is None else v.replace("\x00", "\ufffd") for v in (login, action, contains)
    )
    rows = conn.execute(
        text(
            "SELECT id, at, login, user_role, scope_code, action, ok, detail, client "
            "FROM audit_log WHERE (CAST(:login AS text) IS NULL OR login = :login) "
            "AND (CAST(:action AS text) IS NULL OR action = :action) "
            "AND (CAST(:since AS timestamptz) IS NULL OR at >= :since) "
            "AND (CAST(:until AS timestamptz) IS NULL OR at < :until) "
            "AND (CAST(:contains AS text) IS NULL "
            "     OR strpos(detail::text, CAST(:contains AS text)) > 0) "
            "ORDER BY at DESC, id DESC LIMIT :limit"
        ),
        {
            "login": login,
            "action": action,
            "since": since,
            "until": until,
            "contains": contains,
            "limit": limit,
        },
    )
    return [dict(r._mapping) for r in rows]


def purge_audit(conn: Connection, retention_days: int | None = None) -> int:
    """Delete audit rows older than the retention (default the setting, never under 180
    days) through the database's ``audit_purge``; return how many went."""
    days = retention_days or get_access_settings().audit_retention_days
    return int(conn.execute(text("SELECT audit_purge(:d)"), {"d": days}).scalar_one())


# --- users --------------------------------------------------------------------------------


def get_user(conn: Connection, login: str) -> User | None:
    """The user with this login, or None."""
    row = conn.execute(
        text(
            "SELECT id, login, display_name, role, scope_code, staff_code, active, "
            "locked_until FROM app_user WHERE login = :login"
        ),
        {"login": login},
    ).first()
    return _user(row) if row else None


def list_users(conn: Connection) -> list[User]:
    """Every user, by login."""
    rows = conn.execute(
        text(
            "SELECT id, login, display_name, role, scope_code, staff_code, active, "
            "locked_until FROM app_user ORDER BY login"
        )
    )
    return [_user(r) for r in rows]


def _require(conn: Connection, login: str) -> User:
    user = get_user(conn, login)
    if user is None:
        raise UserInputError(f"用户 {login!r} 不存在 / no user {login!r}")
    return user


def create_user(
    conn: Connection,
    login: str,
    display_name: str,
    role: str,
    scope_code: str | None,
    password: str,
    *,
    staff_code: str | None = None,
    actor: str,
    settings: AccessSettings | None = None,
) -> User:
    """Add a user (audited as ``user_add`` by ``actor``). The scope must exist in the store."""
    settings = settings or get_access_settings()
    check_user_fields(login, role, scope_code)
    check_password_rules(login, password, settings)
    if not display_name.strip():
        raise UserInputError("姓名不能为空 / the display name is empty")
    if get_user(conn, login) is not None:
        raise UserInputError(f"用户 {login!r} 已存在 / user {login!r} exists already")
    _check_scope_exists(conn, role, scope_code)
    row = conn.execute(
        text(
            "INSERT INTO app_user (login, display_name, role, scope_code, staff_code, "
            "password_hash) VALUES (:login, :name, :role, :scope, :staff, :hash) "
            "RETURNING id, login, display_name, role, scope_code, staff_code, active, "
            "locked_until"
        ),
        {
            "login": login,
            "name": display_name.strip(),
            "role": role,
            "scope": scope_code,
            "staff": staff_code,
            "hash": hash_password(password),
        },
    ).one()
    user = _user(row)
    audit(
        conn,
        "user_add",
        login=actor,
        detail={"target": login, "role": role, "scope": scope_code, "staff": staff_code},
    )
    return user


def set_password(
    conn: Connection,
    login: str,
    password: str,
    *,
    actor: str,
    settings: AccessSettings | None = None,
) -> None:
    """Set a user's password (and clear failures and any lock); audited as ``password_set``."""
    settings = settings or get_access_settings()
    _require(conn, login)
    check_password_rules(login, password, settings)
    conn.execute(
        text(
            "UPDATE app_user SET password_hash = :h, password_changed_at = now(), "
            "failed_count = 0, locked_until = NULL WHERE login = :login"
        ),
        {"h": hash_password(password), "login": login},
    )
    audit(conn, "password_set", login=actor, detail={"target": login})


def set_role(
    conn: Connection,
    login: str,
    role: str,
    scope_code: str | None,
    *,
    actor: str,
) -> User:
    """Change a user's role and scope; the user's open sessions end. Audited."""
    before = _require(conn, login)
    check_user_fields(login, role, scope_code)
    _check_scope_exists(conn, role, scope_code)
    row = conn.execute(
        text(
            "UPDATE app_user SET role = :role, scope_code = :scope WHERE login = :login "
            "RETURNING id, login, display_name, role, scope_code, staff_code, active, "
            "locked_until"
        ),
        {"role": role, "scope": scope_code, "login": login},
    ).one()
    _revoke_all(conn, before.id)
    audit(
        conn,
        "user_change",
        login=actor,
        detail={
            "target": login,
            "role": [before.role, role],
            "scope": [before.scope_code, scope_code],
        },
    )
    return _user(row)


def set_active(conn: Connection, login: str, active: bool, *, actor: str) -> None:
    """Deactivate (sessions end, login refused) or reactivate a user. Audited."""
    user = _require(conn, login)
    conn.execute(
        text("UPDATE app_user SET active = :a WHERE login = :login"), {"a": active, "login": login}
    )
    if not active:
        _revoke_all(conn, user.id)
    audit(conn, "user_change", login=actor, detail={"target": login, "active": active})


def lock_user(conn: Connection, login: str, *, minutes: int | None, actor: str) -> None:
    """Lock an account for ``minutes`` (None: until unlocked); its sessions end. Audited."""
    user = _require(conn, login)
    conn.execute(
        text(
            "UPDATE app_user SET locked_until = CASE WHEN CAST(:m AS integer) IS NULL "
            "THEN '9999-12-31 00:00+00'::timestamptz ELSE now() + make_interval(mins => :m) END "
            "WHERE login = :login"
        ),
        {"m": minutes, "login": login},
    )
    _revoke_all(conn, user.id)
    audit(conn, "lock", login=actor, detail={"target": login, "minutes": minutes})


def unlock_user(conn: Connection, login: str, *, actor: str) -> None:
    """Lift a lock and clear the failure count. Audited."""
    _require(conn, login)
    conn.execute(
        text("UPDATE app_user SET locked_until = NULL, failed_count = 0 WHERE login = :login"),
        {"login": login},
    )
    audit(conn, "unlock", login=actor, detail={"target": login})


# --- logging in ---------------------------------------------------------------------------

_WRONG = "用户名或密码错误 / wrong login name or password"


def authenticate(
    engine: Engine,
    login: str,
    password: str,
    *,
    totp: str | None = None,
    client: str | None = None,
    settings: AccessSettings | None = None,
) -> User:
    """Check a login and password (and the one-time code of a user who has a second
    factor); return the user or raise.

    Raises :class:`LoginFailedError` (unknown login, inactive user or wrong password: one
    message for all) or :class:`AccountLockedError`. Each outcome is audited and the failure
    count committed before raising; the ``login_max_failures``-th failure in a row locks
    the account for ``login_lockout_minutes``."""
    settings = settings or get_access_settings()
    failure: Exception | None = None
    with engine.begin() as conn:
        row = None
        if LOGIN_RE.match(login):  # anything else cannot be a login: no need to ask
            row = conn.execute(
                text(
                    "SELECT id, login, display_name, role, scope_code, staff_code, active, "
                    "locked_until, password_hash, failed_count, totp_secret, totp_last_step, "
                    "locked_until > now() AS locked FROM app_user WHERE login = :login FOR UPDATE"
                ),
                {"login": login},
            ).first()
        if row is None or not row.active:
            _verify(_dummy_hash(), password)
            audit(
                conn,
                "login_failed",
                login=_printable(login),
                ok=False,
                detail={"reason": "unknown" if row is None else "inactive"},
                client=client,
            )
            failure = LoginFailedError(_WRONG)
        elif row.locked:
            audit(
                conn,
                "login_failed",
                login=login,
                ok=False,
                detail={"reason": "locked"},
                client=client,
            )
            failure = AccountLockedError(_locked_message(row.locked_until), until=row.locked_until)
        elif not _verify(row.password_hash, password) or (
            row.totp_secret is not None
            and (step := totp_step(row.totp_secret, totp, after=row.totp_last_step)) is None
        ):
            failures = row.failed_count + 1
            locks = failures >= settings.login_max_failures
            until = conn.execute(
                text(
                    "UPDATE app_user SET failed_count = CASE WHEN :locks THEN 0 ELSE :n END, "
                    "locked_until = CASE WHEN :locks "
                    "THEN now() + make_interval(mins => :mins) END "
                    "WHERE id = :id RETURNING locked_until"
                ),
                {
                    "locks": locks,
                    "n": failures,
                    "mins": settings.login_lockout_minutes,
                    "id": row.id,
                },
            ).scalar_one()
            audit(
                conn,
                "login_failed",
                login=login,
                ok=False,
                detail={"reason": "password or code", "failures": failures},
                client=client,
            )
            if locks:
                audit(
                    conn,
                    "lock",
                    login=login,
                    detail={"reason": "failures", "minutes": settings.login_lockout_minutes},
                    client=client,
                )
                failure = AccountLockedError(_locked_message(until), until=until)
            else:
                failure = LoginFailedError(_WRONG)
        else:
            user = _user(row)
            new_hash = (
                hash_password(password)
                if _hasher().check_needs_rehash(row.password_hash)
                else row.password_hash
            )
            conn.execute(
                text(
                    "UPDATE app_user SET failed_count = 0, locked_until = NULL, "
                    "password_hash = :h, totp_last_step = coalesce(:step, totp_last_step) "
                    "WHERE id = :id"
                ),
                {"h": new_hash, "id": row.id, "step": step if row.totp_secret else None},
            )
            audit(conn, "login", user=user, client=client)
    if failure is not None:
        raise failure
    return user


def _printable(value: str) -> str:
    """A typed login as the audit log can hold it (NUL is not allowed in text), cut to 64."""
    return value.replace("\x00", "\ufffd")[:64]


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _locked_message(until: dt.datetime | None) -> str:
    when = "管理员解锁前 / until an administrator unlocks it"
    if until is not None and until.year < 9999:
        when = f"{until:%Y-%m-%d %H:%M %Z} 前 / until {until:%Y-%m-%d %H:%M %Z}"
    return (
        f"账号因多次登录失败已锁定，{when}；可请系统管理员解锁 / the account is locked after "
        "repeated failed logins; wait or ask the system administrator to unlock it"
    )


# --- the second factor (TOTP, RFC 6238) -------------------------------------------------------

TOTP_PERIOD_S = 30
TOTP_DIGITS = 6


def totp_code(secret: str, step: int) -> str:
    """The RFC 6238 code (HMAC-SHA1, 6 digits) of a base32 ``secret`` for time ``step``
    (Unix seconds // 30), as phone authenticator apps compute it."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    mac = hmac.new(key, step.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**TOTP_DIGITS).zfill(TOTP_DIGITS)


def totp_step(
    secret: str, code: str | None, *, after: int | None = None, now: float | None = None
) -> int | None:
    """The time step ``code`` is valid for (now, or one step either side for clock drift),
    None if it is not valid or its step is not later than ``after`` (a replay)."""
    if not code or not code.strip().isdigit():
        return None
    t = int((time.time() if now is None else now) // TOTP_PERIOD_S)
    for step in (t, t - 1, t + 1):
        if (after is None or step > after) and hmac.compare_digest(
            totp_code(secret, step), code.strip()
        ):
            return step
    return None


def enable_totp(conn: Connection, login: str, *, actor: str) -> tuple[str, str]:
    """Give a user a new TOTP secret (the second factor from the next login on); return the
    secret and the ``otpauth://`` URI to show as a QR code or type into the app. Audited."""
    _require(conn, login)
    secret = base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")
    conn.execute(
        text("UPDATE app_user SET totp_secret = :s, totp_last_step = NULL WHERE login = :login"),
        {"s": secret, "login": login},
    )
    audit(conn, "user_change", login=actor, detail={"target": login, "totp": True})
    uri = f"otpauth://totp/GridOne:{quote(login)}?secret={secret}&issuer=GridOne"
    return secret, uri


def disable_totp(conn: Connection, login: str, *, actor: str) -> None:
    """Remove a user's second factor. Audited."""
    _require(conn, login)
    conn.execute(
        text("UPDATE app_user SET totp_secret = NULL, totp_last_step = NULL WHERE login = :login"),
        {"login": login},
    )
    audit(conn, "user_change", login=actor, detail={"target": login, "totp": False})


# --- sessions -----------------------------------------------------------------------------


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def create_session(conn: Connection, user: User, *, settings: AccessSettings | None = None) -> str:
    """Start a session for ``user``; return its token (only its hash is stored, with the
    idle and absolute timeouts in force, which the database checks itself when the token
    sets a transaction's scope)."""
    settings = settings or get_access_settings()
    token = secrets.token_urlsafe(32)
    conn.execute(
        text(
            "INSERT INTO app_session (token_hash, user_id, idle_minutes, max_hours) "
            "VALUES (:h, :u, :idle, :maxh)"
        ),
        {
            "h": _token_hash(token),
            "u": user.id,
            "idle": settings.session_idle_minutes,
            "maxh": settings.session_max_hours,
        },
    )
    return token


def resume_session(
    engine: Engine,
    token: str,
    *,
    client: str | None = None,
    settings: AccessSettings | None = None,
) -> User:
    """The user of a live session, its last use moved to now; or
    :class:`SessionInvalidError` when the token is unknown, logged out, idle longer than
    ``session_idle_minutes``, older than ``session_max_hours``, or its user is inactive or
    locked (an expiry is revoked and audited first)."""
    settings = settings or get_access_settings()
    failure: SessionInvalidError | None = None
    with engine.begin() as conn:
        row = conn.execute(
            text(
                "SELECT s.id AS session_id, s.revoked_at, "
                "s.last_seen < now() - make_interval(mins => :idle) AS idle, "
                "s.created_at < now() - make_interval(hours => :maxh) AS old, "
                "u.id, u.login, u.display_name, u.role, u.scope_code, u.staff_code, u.active, "
                "u.locked_until, "
                "coalesce(u.locked_until > now(), false) AS locked "
                "FROM app_session s JOIN app_user u ON u.id = s.user_id "
                "WHERE s.token_hash = :h FOR UPDATE OF s"
            ),
            {
                "h": _token_hash(token or ""),
                "idle": settings.session_idle_minutes,
                "maxh": settings.session_max_hours,
            },
        ).first()
        if row is None or row.revoked_at is not None:
            failure = SessionInvalidError(
                "会话无效或已退出，请重新登录 / the session is not valid (logged out?): "
                "log in again"
            )
        elif row.idle or row.old or not row.active or row.locked:
            reason = (
                "idle"
                if row.idle
                else "max_age"
                if row.old
                else "inactive"
                if not row.active
                else "locked"
            )
            conn.execute(
                text("UPDATE app_session SET revoked_at = now() WHERE id = :id"),
                {"id": row.session_id},
            )
            audit(
                conn,
                "session_expired",
                user=_user(row),
                detail={"reason": reason},
                client=client,
            )
            failure = SessionInvalidError(
                "会话已超时，请重新登录 / the session has expired: log in again"
            )
        else:
            conn.execute(
                text("UPDATE app_session SET last_seen = now() WHERE id = :id"),
                {"id": row.session_id},
            )
            user = _user(row)
    if failure is not None:
        raise failure
    return user


def end_session(conn: Connection, token: str, *, client: str | None = None) -> None:
    """Log out: the session is revoked (its token refused from now on) and audited."""
    row = conn.execute(
        text(
            "UPDATE app_session s SET revoked_at = now() FROM app_user u "
            "WHERE s.token_hash = :h AND s.revoked_at IS NULL AND u.id = s.user_id "
            "RETURNING u.id, u.login, u.display_name, u.role, u.scope_code, u.staff_code, "
            "u.active, u.locked_until"
        ),
        {"h": _token_hash(token or "")},
    ).first()
    if row is not None:
        audit(conn, "logout", user=_user(row), client=client)


def _revoke_all(conn: Connection, user_id: int) -> None:
    conn.execute(
        text("UPDATE app_session SET revoked_at = now() WHERE user_id = :u AND revoked_at IS NULL"),
        {"u": user_id},
    )


# --- the scope of a transaction -------------------------------------------------------------


def scoped(conn: Connection, token: str) -> bool:
    """Bind the current transaction to the role and scope of the user whose live session
    ``token`` is (SET LOCAL, signed, by the database function ``gridone_scope_session``):
    from here to its end, row-level security shows only rows inside that user's
    jurisdiction (nothing for sysadmin and auditor, nothing for a token that is unknown,
    logged out or expired). Call it first in every transaction of a logged-in request.
    Returns whether the token was live.

    The scope is looked up by the database from the session, not passed in: SQL injected
    through the application cannot widen it without a live token of a wider user.

    It also turns JIT compilation off for the transaction: with the policies estimated
    right (migration 0005) many of the dashboard's short reads pass ``jit_above_cost``, and
    compiling one cost 4.3 s for 0.14 s of execution (hotspot grid counts of a street,
    district demo; ``geo.kpis`` already turns it off around its KPI statement).

    Raises :class:`UnsafeConnectionError` when the connection is one row-level security
    does not bind (superuser, BYPASSRLS, the tables' owner): the dashboard must connect
    as ``gridone_app``."""
    row = conn.execute(
        text(
            "SELECT gridone_scope_session(:token) AS live, "
            "set_config('jit', 'off', true), "
            "row_security_active('incident') AS rls, "
            "pg_has_role(current_user, (SELECT relowner FROM pg_class "
            "WHERE oid = 'incident'::regclass), 'MEMBER') AS owner"
        ),
        {"token": token or ""},
    ).one()
    if not row.rls or row.owner:
        raise UnsafeConnectionError(
            "此数据库连接不受行级安全约束（超级用户、BYPASSRLS 或表的所有者），看板必须以 "
            "gridone_app 连接 / this connection is not bound by row-level security "
            "(superuser, BYPASSRLS or the tables' owner): connect the dashboard as gridone_app"
        )
    return bool(row.live)


_OVERLAPS_LEAKPROOF = text(
    "SELECT coalesce((SELECT p.proleakproof FROM pg_operator o JOIN pg_proc p "
    "ON p.oid = o.oprcode WHERE o.oprname = '&&' AND o.oprleft = 'geometry'::regtype "
    "AND o.oprright = 'geometry'::regtype), false)"
)


def spatial_index_usable(conn: Connection) -> bool:
    """Whether ``geometry && geometry`` is LEAKPROOF in this database (migration 0005), so
    that as ``gridone_app`` the GiST indexes serve spatial conditions under row-level
    security. False when 0005 ran without a superuser, or after ``ALTER EXTENSION postgis
    UPDATE`` or a dump and restore recreated the function: results stay right, spatial
    queries get slow (see docs/access-control.md)."""
    return bool(conn.execute(_OVERLAPS_LEAKPROOF).scalar_one())


APP_ROLE = "gridone_app"


def set_app_role_password(conn: Connection) -> str:
    """Give the dashboard's database role ``gridone_app`` a new random password and return
    it (for ``GRIDONE_APP_DATABASE_URL``). Roles are cluster-wide: every database of the
    cluster sees the change. Needs CREATEROLE; the password is generated here, never
    typed, and quoted by the driver (ALTER ROLE takes no bound parameters)."""
    password = secrets.token_urlsafe(24)
    raw = conn.connection.dbapi_connection
    statement = sql.SQL("ALTER ROLE {} PASSWORD {}").format(
        sql.Identifier(APP_ROLE), sql.Literal(password)
    )
    with raw.cursor() as cur:  # type: ignore[union-attr]
        cur.execute(statement)
    return password


def mask_count(n: int | None, threshold: int = 5) -> str:
    """A special-group count as shown: ``"<5"`` below ``threshold`` (0 included: whether
    anyone is there is itself the sensitive fact), else the number."""
    if n is None:
        return ""
    return f"<{threshold}" if n < threshold else str(n)


#: A mobile number, and one the database's ``staff_phone`` view has masked already.
_PHONE = re.compile(r"^(\d{3})\d{4}(\d{4})$")
_MASKED_PHONE = re.compile(r"^(\d{3})\*{4}(\d{4})$")


def mask_phone(phone: str) -> str:
    """A worker's phone number with its middle four digits hidden (``138****1234``), as
    ``staff_phone`` masks it in the database (issue 7); anything that is not an 11-digit
    number is hidden whole (``****``)."""
    text_ = phone.strip()
    m = _PHONE.match(text_) or _MASKED_PHONE.match(text_)
    return f"{m.group(1)}****{m.group(2)}" if m else "****"


@dataclass(frozen=True)
class PhoneView:
    """Whose phone numbers a user sees in full, the rest masked (:func:`mask_phone`): the
    rule of the ``staff_phone`` view (migration 0003) for files made outside the dashboard's
    database role: every number for the district role, else only the user's own record.

    Attributes
    ----------
    full
        Every number in full (a district-role user).
    own
        The staff code of the user's own record (``app_user.staff_code``), shown in full.
    """

    full: bool = False
    own: str | None = None

    def show(self, code: object, phone: object) -> object:
        """``phone`` of the staff member ``code`` as this user may see it (a missing value,
        None or NaN, stays as it is)."""
        if not isinstance(phone, str) or self.full or (self.own is not None and code == self.own):
            return phone
        return mask_phone(phone)


def phone_view(conn: Connection, login: str | None) -> PhoneView:
    """The :class:`PhoneView` of the dashboard user ``login`` (active, not locked out of
    its role); anyone else (an operating-system user, an unknown name) sees every number
    masked."""
    if not login:
        return PhoneView()
    row = conn.execute(
        text("SELECT role, staff_code FROM app_user WHERE login = :login AND active"),
        {"login": login},
    ).first()
    if row is None:
        return PhoneView()
    return PhoneView(full=row.role == "district", own=row.staff_code)


def scope_name(conn: Connection, user: User) -> str | None:
    """The name of ``user``'s jurisdiction (a grid's or an admin unit's), read inside a
    transaction scoped for that user; None for sysadmin and auditor."""
    if not user.scope_code or user.scope_prefix is None:
        return None
    return conn.execute(
        text(
            "SELECT coalesce((SELECT name FROM grid WHERE code = :c LIMIT 1), "
            "(SELECT name FROM admin_unit WHERE code = :c))"
        ),
        {"c": user.scope_code},
    ).scalar_one()


#: The special groups (特殊人群) of ``special_group_by_grid``, in the order shown.
SPECIAL_GROUPS = (
    "n_released_prisoners",
    "n_community_correction",
    "n_drug_users",
    "n_severe_mental_illness",
    "n_key_youth",
)


def special_groups(conn: Connection, grid: str) -> dict[str, int] | None:
    """The special-group counts of one grid (``special_group_by_grid``: sums per grid, for
    the district and street roles only), None when the view shows the caller nothing. Show
    them through :func:`mask_count`, never below grid level."""
    row = conn.execute(
        text(
            "SELECT n_released_prisoners, n_community_correction, n_drug_users, "
            "n_severe_mental_illness, n_key_youth FROM special_group_by_grid "
            "WHERE grid_code = :g"
        ),
        {"g": grid},
    ).first()
    return None if row is None else {k: int(v or 0) for k, v in row._mapping.items()}
