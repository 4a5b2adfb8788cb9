"""Command line of the store: ``python -m store <command>``.

Commands
--------
migrate      bring the database to the current schema and reference data
check        connection, PostGIS version, schema revision, consistency of derived state
url          print the database URL in use (starting the embedded cluster if needed)
local start|stop|status
             manage the embedded PostGIS cluster in .local/pg
users add|passwd|list|lock|unlock|role|disable|enable|totp|app-password|
             demo-logins|purge-audit
             dashboard accounts and the audit log (store/access_cli.py)
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import text

from store import access_cli
from store.db import check_connection, local_cluster, make_engine, resolve_url
from store.errors import StoreError
from store.migrate import current_revision, head_revision, upgrade
from store.settings import get_settings


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m store",
        description="数据库管理 / Database management for Grid One-Map.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="升级数据库结构 / migrate to the current schema")
    sub.add_parser("check", help="检查数据库 / check connection, schema and consistency")
    sub.add_parser("url", help="显示数据库地址 / print the database URL")
    local = sub.add_parser("local", help="内置数据库 / the embedded PostGIS cluster")
    local.add_argument("action", choices=["start", "stop", "status"])
    access_cli.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; return the process exit code."""
    args = _parser().parse_args(argv)
    settings = get_settings()
    try:
        if args.command == "local":
            cluster = local_cluster(settings)
            if args.action == "start":
                print(cluster.ensure())
            elif args.action == "stop":
                cluster.stop()
                print("stopped")
            else:
                port = cluster.running_port() if cluster.exists() else None
                state = (
                    "not created"
                    if not cluster.exists()
                    else (f"running on 127.0.0.1:{port}" if port else "stopped")
                )
                print(f"{cluster.home}: {state}")
            return 0
        url = resolve_url(settings)
        if args.command == "url":
            print(url)
            return 0
        engine = make_engine(url)
        check_connection(engine)
        if args.command == "users":
            return access_cli.run(args, engine)
        if args.command == "migrate":
            upgrade(engine)
            print(f"schema at revision {head_revision()}")
            return 0
        with engine.connect() as conn:
            version = conn.execute(text("SELECT postgis_lib_version()")).scalar_one()
            rev = current_revision(conn)
            bad = (
                conn.execute(text("SELECT count(*) FROM incident_status_mismatch")).scalar_one()
                if rev
                else None
            )
        print(f"database: {engine.url.render_as_string(hide_password=True)}")
        print(f"postgis:  {version}")
        print(f"schema:   {rev or 'empty'} (head {head_revision()})")
        if bad is not None:
            print(f"incident status mismatches: {bad}")
        return 0 if rev == head_revision() and not bad else 1
    except StoreError as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
