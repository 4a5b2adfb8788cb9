"""``python -m store users …``: dashboard accounts from the command line.

Run as the database owner (the same ``DATABASE_URL`` as ``migrate``). Every change is
written to the audit log with the operating-system user as the actor (``cli:<name>``).
Passwords are asked twice on a terminal, or read from one line of standard input with
``--password-stdin`` (for scripts); they are never command-line arguments, which other
users of the machine could see in the process list.
"""

from __future__ import annotations

import argparse
import getpass
import json
import secrets
import string
import sys

from sqlalchemy import Engine, text

from store import access, vocab
from store.errors import UserInputError
from store.local import _write_private
from store.settings import APP_URL_FILE, DEMO_LOGINS_FILE, AccessSettings, get_access_settings

ROLE_HELP = "角色 / role: " + ", ".join(
    f"{r}={vocab.label('user_role', r)}" for r in vocab.USER_ROLES
)
SCOPE_HELP = (
    "辖区编码 / scope code: 区 district 370214000000, 街道 street 370214900000, "
    "社区 community 370214900001, 网格 grid 370214900001001; sysadmin/auditor 不设 / none"
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``users`` command and its actions to the store's parser."""
    users = sub.add_parser("users", help="看板用户管理 / dashboard users and the audit log")
    acts = users.add_subparsers(dest="action", required=True)

    add = acts.add_parser("add", help="新增用户 / add a user")
    add.add_argument("login", help="登录名 / login name (a-z 0-9 _ . -)")
    add.add_argument("--name", required=True, help="姓名 / display name")
    add.add_argument("--role", required=True, choices=vocab.USER_ROLES, help=ROLE_HELP)
    add.add_argument("--scope", help=SCOPE_HELP)
    add.add_argument("--staff", help="对应的网格员编号（可选）/ the user's own worker code")
    add.add_argument("--password-stdin", action="store_true", help="从标准输入读密码 / read it")

    pw = acts.add_parser("passwd", help="设置或重置密码 / set or reset a password")
    pw.add_argument("login")
    pw.add_argument("--password-stdin", action="store_true", help="从标准输入读密码 / read it")

    acts.add_parser("list", help="列出用户 / list users")

    lock = acts.add_parser("lock", help="锁定账号 / lock an account")
    lock.add_argument("login")
    lock.add_argument(
        "--minutes", type=int, help="锁定分钟数，不填则直到解锁 / default: until unlocked"
    )

    unlock = acts.add_parser("unlock", help="解锁账号 / unlock an account")
    unlock.add_argument("login")

    role = acts.add_parser("role", help="修改角色和辖区 / change role and scope")
    role.add_argument("login")
    role.add_argument("--role", required=True, choices=vocab.USER_ROLES, help=ROLE_HELP)
    role.add_argument("--scope", help=SCOPE_HELP)

    for name, zh in (("disable", "停用"), ("enable", "启用")):
        p = acts.add_parser(name, help=f"{zh}账号 / {name} an account")
        p.add_argument("login")

    app_pw = acts.add_parser(
        "app-password",
        help="为看板数据库账号 gridone_app 生成新密码 / new password for the dashboard's "
        "database role gridone_app (prints the URL)",
    )
    app_pw.add_argument(
        "--save",
        action="store_true",
        help="保存到 .local/app.json（仅本人可读），看板自动使用 / keep the URL in "
        ".local/app.json (mode 600), where the dashboard finds it; do not print it",
    )
    app_pw.add_argument(
        "--if-missing",
        action="store_true",
        help="已保存且可连接时不更换 / keep a saved URL that still connects",
    )

    acts.add_parser(
        "demo-logins",
        help="为演示数据创建区级、街道领导和审计员账号（随机密码）/ demo users (district, the "
        "demo street's leader, an auditor) with generated passwords, kept in "
        ".local/demo-logins.txt (mode 600) and printed",
    )

    totp = acts.add_parser(
        "totp", help="开启或关闭动态口令（第二因素）/ turn the second factor (TOTP) on or off"
    )
    totp.add_argument("login")
    totp.add_argument("--off", action="store_true", help="关闭 / turn it off")

    policy = acts.add_parser(
        "policy",
        help="查看或修改登录锁定和会话超时策略 / show or change the login lock-out and session "
        "timeouts (no option: show)",
    )
    policy.add_argument(
        "--max-failures", type=int, help="连续失败几次后锁定 / failures in a row before a lock"
    )
    policy.add_argument("--lockout-minutes", type=int, help="锁定分钟数 / minutes of a lock")
    policy.add_argument(
        "--idle-minutes", type=int, help="会话闲置超时（分钟）/ idle minutes before a session ends"
    )
    policy.add_argument(
        "--max-hours", type=int, help="会话最长小时数 / hours after login a session ends"
    )

    purge = acts.add_parser(
        "purge-audit", help="清理过期审计日志 / delete audit rows older than the retention"
    )
    purge.add_argument(
        "--days",
        type=int,
        help="保留天数（至少180）/ retention in days, at least 180 (default the setting)",
    )


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("密码 / password: ")
    if getpass.getpass("再输入一次 / again: ") != first:
        raise UserInputError("两次输入的密码不一致 / the two passwords differ")
    return first


def run(args: argparse.Namespace, engine: Engine) -> int:
    """Carry out one ``users`` action; return the exit code."""
    actor = f"cli:{getpass.getuser()}"
    settings = get_access_settings()
    if args.action == "list":
        with engine.connect() as conn:
            users = access.list_users(conn)
            reset = {u.login for u in users if access.password_reset_required(conn, u.login)}
        print("登录名/login\t姓名/name\t角色/role\t辖区/scope\t状态/state")
        for u in users:
            state = "启用 active" if u.active else "停用 disabled"
            if u.locked_until is not None:
                state += f", 锁定至 locked until {u.locked_until:%Y-%m-%d %H:%M}"
            if u.login in reset:
                state += ", 须重设密码 password reset required (users passwd)"
            print(
                f"{u.login}\t{u.display_name}\t{vocab.label('user_role', u.role)} ({u.role})"
                f"\t{u.scope_code or '-'}\t{state}"
            )
        return 0
    if args.action == "app-password" and args.if_missing and _saved_app_url_works():
        print(f"看板数据库账号已设置 / the dashboard's login is set up ({APP_URL_FILE})")
        return 0
    if args.action == "demo-logins":
        print(demo_logins(engine, actor=actor, settings=settings))
        return 0
    with engine.begin() as conn:
        if args.action == "add":
            password = _read_password(args.password_stdin)
            user = access.create_user(
                conn,
                args.login,
                args.name,
                args.role,
                args.scope,
                password,
                staff_code=args.staff,
                actor=actor,
                settings=settings,
            )
            print(f"已新增 / added {user.login} ({user.role} {user.scope_code or ''})".rstrip())
        elif args.action == "passwd":
            access.set_password(conn, args.login, _read_password(args.password_stdin), actor=actor)
            print(f"已设置密码 / password set for {args.login}")
        elif args.action == "lock":
            access.lock_user(conn, args.login, minutes=args.minutes, actor=actor)
            print(f"已锁定 / locked {args.login}")
        elif args.action == "unlock":
            access.unlock_user(conn, args.login, actor=actor)
            print(f"已解锁 / unlocked {args.login}")
        elif args.action == "role":
            user = access.set_role(conn, args.login, args.role, args.scope, actor=actor)
            print(f"已修改 / changed {user.login}: {user.role} {user.scope_code or ''}".rstrip())
        elif args.action in ("disable", "enable"):
            access.set_active(conn, args.login, args.action == "enable", actor=actor)
            zh = "启用" if args.action == "enable" else "停用"
            print(f"已{zh} / {args.action}d {args.login}")
        elif args.action == "app-password":
            password = access.set_app_role_password(conn)
            url = engine.url.set(username=access.APP_ROLE, password=password)
            rendered = url.render_as_string(hide_password=False)
            if args.save:
                APP_URL_FILE.parent.mkdir(parents=True, exist_ok=True)
                _write_private(APP_URL_FILE, json.dumps({"url": rendered}) + "\n")
                print(f"已保存看板数据库地址 / the dashboard's URL is kept in {APP_URL_FILE}")
            else:
                print(
                    "看板应使用此数据库地址（请妥善保存）/ the dashboard connects with:\n  "
                    + rendered
                )
        elif args.action == "totp" and args.off:
            access.disable_totp(conn, args.login, actor=actor)
            print(f"已关闭动态口令 / second factor off for {args.login}")
        elif args.action == "totp":
            secret, uri = access.enable_totp(conn, args.login, actor=actor)
            print(
                "请在手机验证器（如 FreeOTP、Google/Microsoft Authenticator）中添加 / add to "
                f"an authenticator app:\n  密钥 / secret: {secret}\n  {uri}"
            )
        elif args.action == "policy":
            before = access.login_policy(conn)
            after = access.set_login_policy(
                conn,
                actor=actor,
                max_failures=args.max_failures,
                lockout_minutes=args.lockout_minutes,
                idle_minutes=args.idle_minutes,
                max_hours=args.max_hours,
            )
            if after != before:
                print("已修改登录策略 / login policy changed")
            print(_policy_text(after))
        elif args.action == "purge-audit":
            n = access.purge_audit(conn, args.days or settings.audit_retention_days)
            print(f"已删除 / deleted {n} audit rows")
    return 0


def _policy_text(policy: access.LoginPolicy) -> str:
    """The policy as ``users policy`` prints it, one setting a line."""
    when = f"{policy.updated_at:%Y-%m-%d %H:%M %Z}" if policy.updated_at else "-"
    return "\n".join(
        (
            f"连续失败锁定次数 / max failures:\t{policy.max_failures}",
            f"锁定分钟数 / lockout minutes:\t{policy.lockout_minutes}",
            f"会话闲置超时分钟 / idle minutes:\t{policy.idle_minutes}",
            f"会话最长小时数 / max hours:\t{policy.max_hours}",
            f"最后修改 / last changed:\t{when} ({policy.updated_by or '-'})",
        )
    )


def _saved_app_url_works() -> bool:
    """Whether ``.local/app.json`` holds a URL that connects (as gridone_app)."""
    from store.db import make_engine

    try:
        url = json.loads(APP_URL_FILE.read_text(encoding="utf-8"))["url"]
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                return conn.execute(text("SELECT session_user = 'gridone_app'")).scalar_one()
        finally:
            engine.dispose()
    except Exception:  # missing, malformed, stale password: make a new one
        return False


def _generated_password() -> str:
    """A random 16-character password that passes the rules (letters and digits)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        pw = "".join(secrets.choice(alphabet) for _ in range(16))
        if any(c.isalpha() for c in pw) and any(c.isdigit() for c in pw):
            return pw


#: The demo users: login, display name, role, and which scope (district / first street).
DEMO_USERS = (
    ("demo-district", "区级演示账号", "district", "district"),
    ("demo-street", "街道领导演示账号", "street", "street"),
    ("demo-auditor", "审计员演示账号", "auditor", None),
)


def demo_logins(engine: Engine, *, actor: str, settings: AccessSettings) -> str:
    """Create the demo users (or give them new passwords when the saved list is gone, or
    when their passwords were hashed before migration 0008 and must be set again) with
    generated passwords, keep the list in ``.local/demo-logins.txt`` (mode 600) and return
    it. Never a fixed password: each installation has its own."""
    if DEMO_LOGINS_FILE.exists():
        with engine.connect() as conn:
            if all(
                access.get_user(conn, login) and not access.password_reset_required(conn, login)
                for login, *_ in DEMO_USERS
            ):
                return DEMO_LOGINS_FILE.read_text(encoding="utf-8")
    lines = ["演示账号 / demo logins (登录名 login  密码 password  角色 role  辖区 scope)"]
    with engine.begin() as conn:
        district, street = conn.execute(
            text(
                "SELECT (SELECT min(code) FROM admin_unit WHERE level = 'district'), "
                "(SELECT min(code) FROM admin_unit WHERE level = 'street')"
            )
        ).one()
        if district is None or street is None:
            raise UserInputError(
                "库中没有区划，请先载入演示数据 / no admin units in the store: load the demo "
                "first (python -m loaders demo)"
            )
        for login, name, role, which in DEMO_USERS:
            scope = {"district": district, "street": street, None: None}[which]
            password = _generated_password()
            if access.get_user(conn, login) is None:
                access.create_user(
                    conn, login, name, role, scope, password, actor=actor, settings=settings
                )
            else:
                access.set_password(conn, login, password, actor=actor, settings=settings)
                access.unlock_user(conn, login, actor=actor)
            lines.append(f"  {login}  {password}  {role}  {scope or '-'}")
    out = "\n".join(lines) + "\n"
    DEMO_LOGINS_FILE.parent.mkdir(parents=True, exist_ok=True)
    _write_private(DEMO_LOGINS_FILE, out)
    return out
