"""Scratch databases of the benchmarks, on the configured server: created (or kept from an
earlier run, so a district-scale benchmark regenerates its data only when asked),
migrated, and dropped on request."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from store.db import make_engine, resolve_url
from store.migrate import upgrade
from store.settings import get_settings


def admin(url: str | None = None) -> psycopg.Connection:
    """An autocommit connection to the server's ``postgres`` database (CREATE/DROP DATABASE)."""
    u = make_url(url or resolve_url(get_settings())).set(
        drivername="postgresql", database="postgres"
    )
    return psycopg.connect(u.render_as_string(hide_password=False), autocommit=True)


def open_database(name: str, *, regenerate: bool = False) -> Engine:
    """An engine on the migrated scratch database ``name``: created when missing, dropped
    and created again when ``regenerate``."""
    base_url = resolve_url(get_settings())
    with admin(base_url) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if regenerate and exists:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(
        make_url(base_url).set(database=name).render_as_string(hide_password=False)
    )
    upgrade(engine)
    return engine


def drop_database(name: str) -> None:
    """Drop the scratch database ``name`` if it exists."""
    with admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def demo_database(name: str, scale: str, seed: int) -> Engine:
    """The migrated scratch database ``name`` holding the demo at ``scale``, generated and
    written (truth in /tmp) only when it holds no incident."""
    from loaders.demo import generate
    from loaders.demo.load import write_demo

    engine = open_database(name)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM incident")).scalar_one()
    if n == 0:
        t0 = time.perf_counter()
        write_demo(
            engine, generate(seed, scale), replace=True, truth_path=Path(f"/tmp/{name}-truth.json")
        )
        print(f"generated and wrote the {scale} demo in {time.perf_counter() - t0:.0f} s")
    return engine
