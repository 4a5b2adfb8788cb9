"""Errors of the store, each subclassing a built-in, with messages that say what to do.

:func:`explain` turns a database integrity error into a :class:`ConstraintViolationError` naming
the table, the rule that was broken and the fix, in Chinese and English.
"""

from __future__ import annotations

import re

from sqlalchemy.exc import DBAPIError


class StoreError(Exception):
    """Base of every error raised by the store."""


class DatabaseUnavailableError(StoreError, ConnectionError):
    """The database could not be reached or started."""


class LocalClusterError(StoreError, RuntimeError):
    """The embedded PostGIS cluster could not be created or started."""


class SchemaMismatchError(StoreError, ValueError):
    """Data does not fit the tables it is written to."""


class CrsMismatchError(StoreError, ValueError):
    """Geometries are not in the storage CRS."""


class AccessError(StoreError, PermissionError):
    """Logging in, a session or a database connection was refused (store/access.py)."""


class LoginFailedError(AccessError):
    """Wrong login name or password (the message never says which)."""


class AccountLockedError(AccessError):
    """Too many failed logins: the account is locked until ``until``."""

    def __init__(self, message: str, *, until: object) -> None:
        super().__init__(message)
        self.until = until


class CodeRequiredError(AccessError):
    """The password is right and the account has a second factor: ask for the one-time
    code and log in again with it (no session was started, nothing was counted)."""


class WrongCodeError(LoginFailedError):
    """The password was right, the one-time code wrong or used already (counted as a
    failed login, like a wrong password)."""


class PasswordResetRequiredError(LoginFailedError):
    """The account's password was hashed before migration 0008 (Argon2), which the
    database cannot check: an administrator must set a new one."""


class SessionInvalidError(AccessError):
    """The session token is unknown, logged out, idle too long or too old."""


class UnsafeConnectionError(AccessError):
    """Scoped reads were asked of a connection that row-level security does not bind
    (a superuser, a role with BYPASSRLS or the tables' owner)."""


class UserInputError(StoreError, ValueError):
    """A user account's fields are wrong (login, role, scope, password)."""


class ConstraintViolationError(StoreError, ValueError):
    """A row broke one of the schema's rules. ``constraint`` names the rule."""

    def __init__(self, message: str, *, table: str | None, constraint: str | None) -> None:
        super().__init__(message)
        self.table = table
        self.constraint = constraint


# constraint-name suffix -> (中文说明, English explanation and fix)
_RULES: dict[str, tuple[str, str]] = {
    "geom_valid": (
        "几何图形无效（自相交或环方向错误），请先修复（make-valid）",
        "the geometry is invalid (self-intersecting or badly formed); repair it (make-valid) "
        "before loading",
    ),
    "geom_in_china": (
        "坐标不在中国范围内（经度73–136，纬度3–54）：请检查经纬度是否颠倒、坐标系是否为投影坐标",
        "coordinates lie outside China (lon 73–136, lat 3–54): check that longitude and "
        "latitude are not swapped and that projected metres were not given as degrees",
    ),
    "street_code_format": (
        "街道编码应为12位数字且以000结尾",
        "street_code must be 12 digits ending in 000 (e.g. 370214900000)",
    ),
    "grid_code_format": ("网格编码应为15位数字", "grid_code must be 15 digits"),
    "grid_in_street": (
        "网格编码与街道编码不一致（网格编码前9位应等于街道编码前9位）",
        "grid_code does not belong to street_code (their first 9 digits must match)",
    ),
    "code_in_community": (
        "网格编码前12位应为所属社区编码",
        "the grid code's first 12 digits must be its community's code",
    ),
    "code_matches_level": (
        "区划编码与层级不符（区：后6位为0；街道：后3位为0；社区：后3位非0）",
        "the area code does not match its level (district ends in 000000, street in 000, "
        "community not in 000) or its parent",
    ),
    "occurred_before_reported": (
        "发生时间晚于上报时间",
        "occurred_at is after reported_at",
    ),
    "due_after_reported": ("办理时限早于上报时间", "due_at must be after reported_at"),
    "extension_has_due": (
        "延期环节必须给出新的办理时限（晚于延期时间），其他环节不得给出",
        "an 'extended' transition needs new_due_at later than its time; others must not have one",
    ),
    "camera_has_radius": (
        "摄像头必须填写可视半径，其他设施不填",
        "cameras need view_radius_m; other facilities must leave it empty",
    ),
    "vacant_is_empty": ("空置房屋的居住人数应为0", "a vacant unit cannot have residents"),
    "category_counts": (
        "分类人数不能为负，也不能超过实有人口（户籍+流动）",
        "category counts must be ≥ 0 and at most the residents (registered + floating)",
    ),
    "phone_format": ("手机号应为11位，以1开头", "phone must be an 11-digit mobile number"),
}


def explain(exc: DBAPIError) -> StoreError:
    """A clear :class:`StoreError` for a database error raised while writing.

    Check-constraint, foreign-key and unique violations become :class:`ConstraintViolationError`
    with the rule explained; the workflow trigger's own messages pass through unchanged."""
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    table = getattr(diag, "table_name", None)
    constraint = getattr(diag, "constraint_name", None)
    primary = getattr(diag, "message_primary", None) or str(orig).splitlines()[0]
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == "55P03":  # lock_not_available (lock_timeout)
        return StoreError(
            "数据表正被其他会话使用（如正在查看的看板或另一次导入），请稍后重试 / the table is "
            f"in use by another session (a dashboard query or another load): try again later "
            f"[{primary}]"
        )
    if sqlstate == "23502":  # not-null violation
        column = getattr(diag, "column_name", None)
        return ConstraintViolationError(
            f"{table}.{column}: 必填字段为空 / {column} is required: give it a value",
            table=table,
            constraint=f"not_null_{column}",
        )
    if constraint:
        explanation = next(
            (zh + " / " + en for key, (zh, en) in _RULES.items() if constraint.endswith(key)),
            None,
        )
        if explanation is None and sqlstate == "23505":
            explanation = "记录重复 / duplicate of a row already stored (same natural key)"
        if explanation is None and sqlstate == "23503":
            detail = getattr(diag, "message_detail", "") or ""
            explanation = f"引用的记录不存在 / refers to a row that does not exist: {detail}"
        if explanation is None:
            explanation = _humanise(constraint)
        return ConstraintViolationError(
            f"{table}: {explanation} [{constraint}]", table=table, constraint=constraint
        )
    return StoreError(primary)


def _humanise(constraint: str) -> str:
    rule = re.sub(r"^ck_[a-z_]+?_(?=[a-z]+_)", "", constraint)
    return f"违反规则 / rule broken: {rule.replace('_', ' ')}"
