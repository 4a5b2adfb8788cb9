"""Database fixtures: a real PostGIS for every test that touches data.

The server is ``DATABASE_URL``'s when set (the role needs CREATEDB), otherwise the embedded
cluster. Each test session makes its own databases, named ``gridone_test_<pid>_…``, and drops
them at the end:

* ``engine`` / ``conn``: a migrated, empty database; ``conn`` is a connection inside a
  transaction rolled back after the test (fast isolation).
* ``fresh_engine``: a brand-new migrated database per test, for tests that must commit.
* ``app_login``: (login, password) of a role for this session that is a member of
  ``gridone_app``, the dashboard's database role (tests/test_access*.py connect with it
  and ``SET ROLE gridone_app``).
* ``demo``: the street demo generated once per session (``loaders.demo.generate``);
  ``demo_engine``: a database holding it, read-only by convention (but for the audit rows
  that briefings made through the command line and the page append: no figure reads them).
"""

from __future__ import annotations

import os
import re
import secrets
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url

from store.db import make_engine, normalise_url
from store.local import LocalCluster
from store.migrate import upgrade
from store.settings import get_settings

PREFIX = f"gridone_test_{os.getpid()}"


class TestServer:
    """Creates and drops databases on the test server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(normalise_url(admin_url))
        self.created: list[str] = []

    def _admin(self) -> psycopg.Connection:
        u = self.admin_url.set(drivername="postgresql", database="postgres")
        return psycopg.connect(u.render_as_string(hide_password=False), autocommit=True)

    def url(self, name: str) -> str:
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def create(self, suffix: str, *, template: str | None = None) -> str:
        name = f"{PREFIX}_{suffix}"
        with self._admin() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
            if template:
                query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
            admin.execute(query)
        self.created.append(name)
        return name

    def drop(self, name: str) -> None:
        with self._admin() as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
        if name in self.created:
            self.created.remove(name)

    def drop_stale(self) -> None:
        """Drop test databases left by runs that were killed (their process is gone)."""
        with self._admin() as admin:
            names = [
                r[0]
                for r in admin.execute(
                    "SELECT datname FROM pg_database WHERE datname LIKE 'gridone\\_test\\_%'"
                )
            ]
        for name in names:
            m = re.match(r"gridone_test_(\d+)_", name)
            if m and not _alive(int(m.group(1))):
                self.drop(name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def server() -> Iterator[TestServer]:
    settings = get_settings()
    url = settings.database_url or LocalCluster(settings.local_pg_dir, settings.pg_bin_dir).ensure()
    srv = TestServer(url)
    srv.drop_stale()
    yield srv
    for name in list(srv.created):
        srv.drop(name)


@pytest.fixture(scope="session")
def template_db(server: TestServer) -> str:
    """Name of an empty database migrated to head (the template of the others)."""
    name = server.create("template")
    engine = make_engine(server.url(name))
    upgrade(engine)
    engine.dispose()
    return name


@pytest.fixture(scope="session")
def engine(server: TestServer, template_db: str) -> Iterator[Engine]:
    name = server.create("shared", template=template_db)
    eng = make_engine(server.url(name))
    yield eng
    eng.dispose()


@pytest.fixture
def conn(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that is rolled back after the test."""
    with engine.connect() as connection:
        tx = connection.begin()
        try:
            yield connection
        finally:
            tx.rollback()


@pytest.fixture
def fresh_engine(server: TestServer, template_db: str) -> Iterator[Engine]:
    """A new migrated database for this test alone."""
    name = server.create(f"f{uuid.uuid4().hex[:8]}", template=template_db)
    eng = make_engine(server.url(name))
    yield eng
    eng.dispose()
    server.drop(name)


@pytest.fixture(scope="session")
def demo():
    """The street demo with the default seed, generated once per session."""
    from loaders.demo import generate

    return generate(get_settings().demo_seed, "street")


@pytest.fixture(scope="session")
def demo_engine(server: TestServer, template_db: str, demo, tmp_path_factory) -> Iterator[Engine]:
    """A database holding the street demo (read-only by convention, audit rows aside)."""
    from loaders.demo.load import write_demo

    name = server.create("demo", template=template_db)
    eng = make_engine(server.url(name))
    write_demo(eng, demo, truth_path=tmp_path_factory.mktemp("truth") / "truth.json")
    yield eng
    eng.dispose()


@pytest.fixture
def demo_copy(server: TestServer, demo_engine: Engine) -> Iterator[Engine]:
    """A writable copy of the street demo (sums built by the demo writer), dropped after
    the test."""
    source = demo_engine.url.database
    demo_engine.dispose()  # CREATE DATABASE … TEMPLATE needs the source unused
    name = server.create(f"dcp{uuid.uuid4().hex[:8]}", template=source)
    eng = make_engine(server.url(name))
    yield eng
    eng.dispose()
    server.drop(name)


@pytest.fixture(scope="session")
def app_login(server: TestServer, template_db: str) -> Iterator[tuple[str, str]]:
    """A login role for this test session: member of gridone_app, NOINHERIT (nothing of its
    own until SET ROLE), dropped at the end; stale ones of dead runs are dropped first."""
    login, password = f"{PREFIX}_app", secrets.token_urlsafe(18)
    with server._admin() as admin:
        for (name,) in admin.execute(
            "SELECT rolname FROM pg_roles WHERE rolname LIKE 'gridone\\_test\\_%\\_app'"
        ).fetchall():
            m = re.match(r"gridone_test_(\d+)_app$", name)
            if m and (not _alive(int(m.group(1))) or name == login):
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(
            sql.SQL(
                "CREATE ROLE {} LOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS PASSWORD {} "
                "IN ROLE gridone_app"
            ).format(sql.Identifier(login), sql.Literal(password))
        )
    yield login, password
    with server._admin() as admin:
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))


def pytest_ignore_collect(collection_path, config: pytest.Config) -> bool | None:
    """The real-data tests exist only where the data are (:mod:`tests.realdata`)."""
    from tests import realdata

    if collection_path.name in realdata.MODULES and realdata.REALDATA is None:
        return True
    return None


def pytest_report_header(config: pytest.Config) -> str:
    from tests import realdata

    if realdata.REALDATA is None:
        return (
            "real data: not found ($GRIDONE_REALDATA, ../shared/realdata); "
            f"not collected: {', '.join(realdata.MODULES)}"
        )
    return f"real data: {realdata.REALDATA}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """On CI (and under `scripts/setup.sh test`) a skipped test is a failure: every test
    must really run there."""
    if not (os.environ.get("CI") or os.environ.get("GRIDONE_FAIL_ON_SKIP")) or exitstatus != 0:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        print(f"\nCI: {len(skipped)} test(s) skipped; failing the run")
        session.exitstatus = 1
