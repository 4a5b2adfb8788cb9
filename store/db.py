"""Engines: where the database is and how to reach it.

:func:`resolve_url` gives ``DATABASE_URL`` when set, otherwise the embedded cluster's URL
(starting it if needed). :func:`make_engine` builds a SQLAlchemy engine on psycopg 3.
"""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from store.errors import DatabaseUnavailableError
from store.local import LocalCluster
from store.settings import Settings


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
