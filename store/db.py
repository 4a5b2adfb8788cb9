"""Engines: where the database is and how to reach it.

:func:`resolve_url` gives ``DATABASE_URL`` when set, otherwise the embedded cluster's URL
(starting it if needed). :func:`make_engine` builds a SQLAlchemy engine on psycopg 3.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from store.errors import DatabaseUnavailableError, UnsafeConnectionError
from store.local import LocalCluster
from store.settings import APP_URL_FILE, Settings


def normalise_url(url: str) -> str:
    """The URL with the psycopg 3 driver named (``postgresql://`` → ``postgresql+psycopg://``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise DatabaseUnavailableError(
            f"DATABASE_URL must point at PostgreSQL/PostGIS, got {parsed.get_backend_name()!r}"
        )
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def local_cluster(settings: Settings) -> LocalCluster:
    """The embedded cluster described by ``settings``."""
    return LocalCluster(settings.local_pg_dir, settings.pg_bin_dir)


def resolve_url(settings: Settings) -> str:
    """URL of the database to use: ``DATABASE_URL``, or the embedded cluster's (started)."""
    if settings.database_url:
        return normalise_url(settings.database_url)
    return local_cluster(settings).ensure()


def resolve_app_url(settings: Settings) -> str:
    """URL the dashboard connects with (as ``gridone_app``): ``GRIDONE_APP_DATABASE_URL``, or
    the one ``python -m store users app-password --save`` kept in ``.local/app.json``
    (starting the embedded cluster first when ``DATABASE_URL`` is unset). Raises
    :class:`DatabaseUnavailableError` with the next step when there is none."""
    if settings.app_database_url:
        return normalise_url(settings.app_database_url)
    if not settings.database_url:
        local_cluster(settings).ensure()
    try:
        saved = json.loads(APP_URL_FILE.read_text(encoding="utf-8"))["url"]
    except (OSError, ValueError, KeyError, TypeError):
        raise DatabaseUnavailableError(
            "看板的数据库账号未设置：请运行 `python -m store users app-password --save`（或 "
            "`bash scripts/setup.sh demo`），或设置 GRIDONE_APP_DATABASE_URL / the dashboard's "
            "database login is not set up: run `python -m store users app-password --save` "
            "(scripts/setup.sh does) or set GRIDONE_APP_DATABASE_URL"
        ) from None
    return normalise_url(saved)


def make_app_engine(url: str) -> Engine:
    """The dashboard's engine: every connection acts as ``gridone_app``. A login that is a
    member of it (a test's own login) switches to it with SET ROLE; a superuser or a
    BYPASSRLS login is refused, and so is one that may not become ``gridone_app`` (the
    tables' owner): row-level security must bind the dashboard."""
    engine = make_engine(url)

    @event.listens_for(engine, "connect")
    def _as_app_role(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute(
                "SELECT r.rolsuper OR r.rolbypassrls, pg_has_role(session_user, "
                "'gridone_app', 'MEMBER') FROM pg_roles r WHERE r.rolname = session_user"
            )
            unsafe, member = cur.fetchone()
            if unsafe or not member:
                dbapi_conn.rollback()
                raise UnsafeConnectionError(
                    "看板必须以 gridone_app 连接数据库（不能用超级用户或表的所有者）：运行 "
                    "`python -m store users app-password --save` / the dashboard must connect "
                    "as gridone_app, not as a superuser or the tables' owner: run "
                    "`python -m store users app-password --save`"
                )
            cur.execute("SET ROLE gridone_app")
        dbapi_conn.commit()

    return engine


def make_engine(url: str, **kwargs: object) -> Engine:
    """A SQLAlchemy engine on psycopg 3 with pre-ping (survives a database restart)."""
    return create_engine(normalise_url(url), pool_pre_ping=True, **kwargs)  # type: ignore[arg-type]


def check_connection(engine: Engine) -> None:
    """Raise :class:`DatabaseUnavailableError` with the next step when the database is down
    or its server cannot provide PostGIS (the migration creates the extension itself)."""
    try:
        with engine.connect() as conn:
            available = conn.execute(
                text("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'postgis')")
            ).scalar_one()
    except OperationalError as exc:
        raise DatabaseUnavailableError(
            f"cannot reach the database at {engine.url.render_as_string(hide_password=True)}: "
            f"{str(exc.orig).strip().splitlines()[0]}. Start it (unset DATABASE_URL to use "
            "the embedded one: `python -m store local start`) and try again."
        ) from exc
    if not available:
        raise DatabaseUnavailableError(
            f"the server at {engine.url.render_as_string(hide_password=True)} has no PostGIS; "
            "install it there (Debian/Ubuntu: postgresql-<version>-postgis-3) or unset "
            "DATABASE_URL to use the embedded PostGIS"
        )
