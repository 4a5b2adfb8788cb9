"""Logins, sessions, the per-transaction scope and the audit trail (issue 7).

Who may read what is enforced by PostgreSQL (migration 0003): the dashboard connects as
``gridone_app``, which owns nothing and bypasses nothing, and at the start of every
transaction calls :func:`scoped` with the session token, and the database sets that
session's user's role and scope for that transaction only (``gridone_scope_session``:
``SET LOCAL`` of the role, the scope and its code ranges, signed; migration 0007).
Row-level security then returns only rows
inside the user's jurisdiction; with no scope set, none.

* Passwords are hashed and checked in the database (migration 0008): bcrypt by pgcrypto,
  ``crypt(password, gen_salt('bf', cost))``. The application (``gridone_app``) has no
  privilege on ``app_user`` or ``app_session`` at all: it logs in, resumes and ends
  sessions through the SECURITY DEFINER functions ``gridone_login``,
  ``gridone_session_resume`` and ``gridone_session_end`` (:func:`log_in`,
  :func:`resume_session`, :func:`end_session`), and never sees a hash, a TOTP secret or
  another user. After ``max_failures`` failures in a row the account is locked for
  ``lockout_minutes``: the :class:`LoginPolicy`, a row only the owner reads and writes
  (migration 0011; from the settings ``login_max_failures`` … at ``migrate``, or
  ``python -m store users policy``). An unknown login costs a
  bcrypt of the same cost as a known one and gets the same answer, so timing and wording
  do not tell which logins exist.
* Sessions live in ``app_session``; the database makes the random token, the browser's
  Streamlit session holds it, the table only its SHA-256. A session ends on logout
  (revoked, the token is then refused), after ``session_idle_minutes`` without use, or
  ``session_max_hours`` after login.
* Every login, failed login, logout, expiry and user change is written to ``audit_log``
  (append-only: nobody updates or deletes). The application cannot insert into it: its
  rows (page views, downloads, briefings) go through ``gridone_audit``
  (:func:`audit_session`), which writes them in the name of the session that scoped the
  transaction.

User administration (:func:`create_user`, :func:`set_password`, …) runs as the database
owner (``python -m store users``). :func:`log_in` and :func:`resume_session` take an
:class:`~sqlalchemy.Engine` and commit the database's bookkeeping (failure count, audit
rows, revoked sessions) in their own transaction before raising; the others take the
caller's connection.
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
from typing import Any
from urllib.parse import quote

from psycopg import sql
from sqlalchemy import Connection, Engine, text

from store import vocab
from store.errors import (
    AccountLockedError,
    CodeRequiredError,
    LoginFailedError,
    PasswordResetRequiredError,
    SessionInvalidError,
    UnsafeConnectionError,
    UserInputError,
    WrongCodeError,
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


def hash_password(conn: Connection, password: str, cost: int) -> str:
    """The bcrypt hash of ``password`` made by the database (pgcrypto's ``crypt`` with a
    random ``gen_salt('bf', cost)``), as ``gridone_login`` checks it. bcrypt reads the first
    72 bytes of a password; NUL, which text cannot hold, is stored as U+FFFD."""
    return conn.execute(
        text("SELECT crypt(:pw, gen_salt('bf', :cost))"),
        {"pw": _no_nul(password), "cost": cost},
    ).scalar_one()


def _no_nul(value: str) -> str:
    """``value`` as PostgreSQL text can hold it (NUL is not allowed in text)."""
    return value.replace("\x00", "\ufffd")


def password_reset_required(conn: Connection, login: str) -> bool:
    """Whether the user's password hash is one the database cannot check (Argon2, made
    before migration 0008): the login refuses it until the password is set again. Owner
    only, like every read of ``app_user``."""
    return bool(
        conn.execute(
            text("SELECT password_hash NOT LIKE '$2a$%' FROM app_user WHERE login = :l"),
            {"l": login},
        ).scalar()
    )


#: bcrypt reads the first 72 bytes of a password: a longer one is refused when set, and
#: ``gridone_login`` (migration 0011) treats one as wrong, so that a password's first 72
#: bytes followed by anything do not log in.
BCRYPT_MAX_BYTES = 72


def check_password_rules(login: str, password: str, settings: AccessSettings) -> None:
    """Refuse a password that is too short, lacks letters or digits, contains the login, or
    is longer than bcrypt reads (:data:`BCRYPT_MAX_BYTES` bytes of UTF-8)."""
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
    size = len(_no_nul(password).encode("utf-8"))
    if size > BCRYPT_MAX_BYTES:
        problems.append(
            f"不得超过{BCRYPT_MAX_BYTES}字节（UTF-8 编码，一个汉字占3字节），当前{size}字节 / at "
            f"most {BCRYPT_MAX_BYTES} bytes in UTF-8 (a Chinese character takes 3), this one "
            f"has {size}: bcrypt ignores everything after byte {BCRYPT_MAX_BYTES}"
        )
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
    """Append one row to ``audit_log`` (the time is the server's), as the database owner
    (command lines, user administration): since migration 0011 the application may not
    insert, it writes through :func:`audit_session`. ``user`` fills the login, role and
    scope; ``login`` alone is for attempts by someone not (yet) known."""
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


def audit_session(
    conn: Connection,
    action: str,
    *,
    ok: bool = True,
    detail: dict[str, Any] | None = None,
    client: str | None = None,
) -> int:
    """Append one row to ``audit_log`` as the user of the session that scoped this
    transaction (:func:`scoped` first, same transaction): the database's ``gridone_audit``
    (migration 0011) takes the login, role and scope from that session, so the application
    (which may not INSERT into ``audit_log``) cannot write a row in another user's name.
    Only the application's own actions (``page_view``, ``export``, ``briefing``); without
    a live session in the transaction the database refuses (InsufficientPrivilege).
    Returns the row's id."""
    if action not in APP_AUDIT_ACTIONS:
        raise ValueError(f"the application does not write {action!r} audit rows")
    return int(
        conn.execute(
            text("SELECT gridone_audit(:action, :ok, CAST(:detail AS jsonb), :client)"),
            {
                "action": action,
                "ok": ok,
                "detail": json.dumps(detail, ensure_ascii=False, default=str) if detail else None,
                "client": client,
            },
        ).scalar_one()
    )


#: What the dashboard writes through :func:`audit_session` (the database writes the logins).
APP_AUDIT_ACTIONS = ("page_view", "export", "briefing")


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
            "hash": hash_password(conn, password, settings.password_bcrypt_cost),
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
        {"h": hash_password(conn, password, settings.password_bcrypt_cost), "login": login},
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
_WRONG_CODE = (
    "动态口令错误或已使用，请输入验证器中的新口令 / wrong or already used one-time code: type "
    "the current code of the authenticator app"
)
_CODE_REQUIRED = (
    "请输入验证器（手机动态口令）中的6位口令 / enter the 6-digit code of your authenticator app"
)


def _reset_message(login: str) -> str:
    return (
        f"账号 {login} 的密码须由系统管理员重设后才能登录（系统已升级密码存储），请管理员运行 "
        f"python -m store users passwd {login} / the password of {login} must be set again "
        "by the system administrator before it can log in (password storage was upgraded): "
        f"run python -m store users passwd {login}"
    )


# --- the login policy (migration 0011) --------------------------------------------------------

#: Columns of ``gridone_login_policy`` → the :class:`~store.settings.AccessSettings` field
#: each is set from.
POLICY_SETTINGS = {
    "max_failures": "login_max_failures",
    "lockout_minutes": "login_lockout_minutes",
    "idle_minutes": "session_idle_minutes",
    "max_hours": "session_max_hours",
}


@dataclass(frozen=True)
class LoginPolicy:
    """The lock-out and session timeouts ``gridone_login`` applies: one row of
    ``gridone_login_policy``, which only the owner reads and writes (the application
    cannot loosen it, as it could when they were arguments of the function)."""

    max_failures: int
    lockout_minutes: int
    idle_minutes: int
    max_hours: int
    updated_at: dt.datetime | None = None
    updated_by: str | None = None


def login_policy(conn: Connection) -> LoginPolicy:
    """The policy in force (owner only: the application has no privilege on the table)."""
    row = conn.execute(
        text(
            "SELECT max_failures, lockout_minutes, idle_minutes, max_hours, updated_at, "
            "updated_by FROM gridone_login_policy"
        )
    ).one()
    return LoginPolicy(**row._mapping)


def _policy_bounds(column: str) -> tuple[int, int]:
    """The bounds :class:`~store.settings.AccessSettings` gives the column's setting."""
    meta = AccessSettings.model_fields[POLICY_SETTINGS[column]].metadata
    lo = next(m.ge for m in meta if hasattr(m, "ge"))
    hi = next(m.le for m in meta if hasattr(m, "le"))
    return int(lo), int(hi)


def set_login_policy(conn: Connection, *, actor: str, **values: int | None) -> LoginPolicy:
    """Change the policy's columns given (``max_failures``, ``lockout_minutes``,
    ``idle_minutes``, ``max_hours``; None: unchanged) within the bounds of
    :class:`~store.settings.AccessSettings`; audited (``user_change``, target
    ``login_policy``, each changed column as [before, after]) when anything changes.
    Sessions already open keep the timeouts they were opened with. Owner only."""
    unknown = set(values) - set(POLICY_SETTINGS)
    if unknown:
        raise ValueError(f"not a policy column: {sorted(unknown)}")
    problems = []
    for column, value in values.items():
        lo, hi = _policy_bounds(column)
        if value is not None and not lo <= value <= hi:
            problems.append(
                f"{column}（{POLICY_SETTINGS[column]}）须在 {lo}–{hi} 之间，得到 {value} / "
                f"{column} must be between {lo} and {hi}, got {value}"
            )
    if problems:
        raise UserInputError("登录策略无效 / login policy refused: " + "; ".join(problems))
    before = login_policy(conn)
    changed = {
        c: [getattr(before, c), v]
        for c, v in values.items()
        if v is not None and v != getattr(before, c)
    }
    if not changed:
        return before
    conn.execute(
        text(
            "UPDATE gridone_login_policy SET "
            "max_failures = coalesce(CAST(:max_failures AS integer), max_failures), "
            "lockout_minutes = coalesce(CAST(:lockout_minutes AS integer), lockout_minutes), "
            "idle_minutes = coalesce(CAST(:idle_minutes AS integer), idle_minutes), "
            "max_hours = coalesce(CAST(:max_hours AS integer), max_hours), "
            "updated_at = now(), updated_by = :actor"
        ),
        {**dict.fromkeys(POLICY_SETTINGS), **{c: v[1] for c, v in changed.items()}, "actor": actor},
    )
    audit(conn, "user_change", login=actor, detail={"target": "login_policy", **changed})
    return login_policy(conn)


def sync_login_policy(conn: Connection, settings: AccessSettings, *, actor: str) -> LoginPolicy:
    """Write the policy settings that ``settings`` was given explicitly (the environment's
    ``GRIDONE_LOGIN_MAX_FAILURES``, ``GRIDONE_LOGIN_LOCKOUT_MINUTES``,
    ``GRIDONE_SESSION_IDLE_MINUTES``, ``GRIDONE_SESSION_MAX_HOURS``) into the table, as
    ``python -m store migrate`` does; a setting left unset keeps the stored value (what
    ``python -m store users policy`` set). Audited when it changes anything."""
    given = {
        column: getattr(settings, field)
        for column, field in POLICY_SETTINGS.items()
        if field in settings.model_fields_set
    }
    return set_login_policy(conn, actor=actor, **given)


# --- logging in (continued) --------------------------------------------------------------

_LOGIN = text(
    "SELECT outcome, token, locked_until, id, login, display_name, role, scope_code, "
    "staff_code, active FROM gridone_login(:login, :password, :totp, :client)"
)


def log_in(
    engine: Engine,
    login: str,
    password: str,
    *,
    totp: str | None = None,
    client: str | None = None,
) -> tuple[User, str]:
    """Log in through the database's ``gridone_login``: the password (and the one-time
    code of a user who has a second factor) is checked there; return the user and the
    new session's token, or raise.

    Raises :class:`LoginFailedError` (unknown login, inactive user or wrong password: one
    message for all), :class:`CodeRequiredError` (the password is right, the account has a
    second factor and no code was given: ask for it and call again with it),
    :class:`WrongCodeError`, :class:`AccountLockedError` or
    :class:`PasswordResetRequiredError`. The database audits each outcome and counts the
    failures; the ``max_failures``-th in a row locks the account for ``lockout_minutes``,
    and the session gets ``idle_minutes`` / ``max_hours``: the owner's
    :class:`LoginPolicy` (migration 0011), which the caller cannot choose. A password of
    more than 72 bytes is wrong (bcrypt would read only its first 72)."""
    with engine.begin() as conn:
        row = conn.execute(
            _LOGIN,
            {
                "login": _no_nul(login),
                "password": _no_nul(password),
                "totp": _no_nul(totp) if totp else None,
                "client": client,
            },
        ).one()
    if row.outcome == "ok":
        return _user(row), row.token
    if row.outcome == "locked":
        raise AccountLockedError(_locked_message(row.locked_until), until=row.locked_until)
    if row.outcome == "code_required":
        raise CodeRequiredError(_CODE_REQUIRED)
    if row.outcome == "wrong_code":
        raise WrongCodeError(_WRONG_CODE)
    if row.outcome == "reset_required":
        raise PasswordResetRequiredError(_reset_message(login))
    raise LoginFailedError(_WRONG)


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
    (Unix seconds // 30), as phone authenticator apps compute it. The login checks codes
    in the database (``gridone_totp_code``, migration 0008); this is the reference the
    tests hold it to, and what a test types as the user's phone would."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    mac = hmac.new(key, step.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = int.from_bytes(mac[offset : offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**TOTP_DIGITS).zfill(TOTP_DIGITS)


def current_totp_step(now: float | None = None) -> int:
    """The TOTP time step of ``now`` (Unix seconds // 30)."""
    return int((time.time() if now is None else now) // TOTP_PERIOD_S)


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


def create_session(conn: Connection, user: User, *, settings: AccessSettings | None = None) -> str:
    """Start a session for ``user`` without a password, as the database owner (tests,
    benchmarks, maintenance; the application cannot: it logs in with :func:`log_in`).
    The token is made by the database (``gridone_session_open``), only its hash stored,
    with the idle and absolute timeouts in force."""
    settings = settings or get_access_settings()
    return conn.execute(
        text("SELECT gridone_session_open(:u, :idle, :maxh)"),
        {"u": user.id, "idle": settings.session_idle_minutes, "maxh": settings.session_max_hours},
    ).scalar_one()


_RESUME = text(
    "SELECT outcome, id, login, display_name, role, scope_code, staff_code, active, "
    "locked_until FROM gridone_session_resume(:token, :client)"
)


def resume_session(engine: Engine, token: str, *, client: str | None = None) -> User:
    """The user of a live session, its last use moved to now (``gridone_session_resume``);
    or :class:`SessionInvalidError` when the token is unknown, logged out, idle longer
    than its ``session_idle_minutes``, older than its ``session_max_hours`` (both as in
    force at login), or its user is inactive or locked (an expiry is revoked and audited
    by the database first)."""
    with engine.begin() as conn:
        row = conn.execute(_RESUME, {"token": _no_nul(token or ""), "client": client}).one()
    if row.outcome == "ok":
        return _user(row)
    if row.outcome == "expired":
        raise SessionInvalidError("会话已超时，请重新登录 / the session has expired: log in again")
    raise SessionInvalidError(
        "会话无效或已退出，请重新登录 / the session is not valid (logged out?): log in again"
    )


def end_session(conn: Connection, token: str, *, client: str | None = None) -> None:
    """Log out: the session is revoked (its token refused from now on) and audited, by
    ``gridone_session_end``."""
    conn.execute(
        text("SELECT gridone_session_end(:token, :client)"),
        {"token": _no_nul(token or ""), "client": client},
    )


def _revoke_all(conn: Connection, user_id: int) -> None:
    """End every open session of a user (owner only: role change, deactivation, lock)."""
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
