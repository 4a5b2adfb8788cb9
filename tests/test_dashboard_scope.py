"""Every read of the dashboard is scoped, and its cache is per scope (issue 7).

The loaders of ``dashboard/data*.py`` run against a two-street database as ``gridone_app``
with the sessions of two street leaders taking turns: each must get its own street's rows,
never the other's, also when the other's result for the same arguments is already cached.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from dashboard import data
from store.db import make_engine
from tests import access_data, conftest
from tests.access_data import STREET_A, STREET_B, fill

DASHBOARD = Path(data.__file__).parent


@pytest.fixture(scope="module")
def two_streets(server: conftest.TestServer, template_db: str) -> Iterator[tuple[str, Engine]]:
    name = server.create(f"dscope{os.getpid() % 1000}", template=template_db)
    engine = make_engine(server.url(name))
    with engine.begin() as conn:
        fill(conn)
    yield name, engine
    engine.dispose()
    server.drop(name)


@pytest.fixture
def as_user(server, two_streets, app_login, monkeypatch) -> Iterator:
    """Switch the dashboard's session between users: ``as_user(role, prefix)``."""
    app = access_data.app_engine(server, two_streets[0], app_login)
    monkeypatch.setattr(data, "engine", lambda: app)
    current: dict[str, tuple[data.ScopeKey, str]] = {}
    monkeypatch.setattr(data, "session_scope", lambda: current.get("s", (data.NO_SCOPE, "")))

    def switch(role: str | None, prefix: str | None = None) -> None:
        if role is None:
            current.pop("s", None)
            return
        token = access_data.session_token(two_streets[1], role, prefix)
        current["s"] = (data.ScopeKey(role, prefix or "", ""), token)

    yield switch
    app.dispose()
    data.street_names.clear()
    data.grid_outlines.clear()
    data.summary.clear()


def test_two_streets_never_get_each_others_cached_results(as_user) -> None:
    as_user("street", STREET_A[:9])
    a_streets = data.street_names()
    a_grids = set(data.grid_outlines(None)["code"])
    a_grids_of_b = data.grid_outlines(STREET_B)  # a crafted ?street= of the other street
    as_user("street", STREET_B[:9])
    b_streets = data.street_names()  # same arguments, A's result is in the cache
    b_grids = set(data.grid_outlines(None)["code"])
    b_summary = data.summary()
    as_user("street", STREET_A[:9])
    again = data.street_names()  # A's cached result is still A's
    assert a_streets == again == {STREET_A: "甲街道"}
    assert b_streets == {STREET_B: "乙街道"}
    assert a_grids and b_grids and not (a_grids & b_grids)
    assert {g[:9] for g in a_grids} == {STREET_A[:9]}
    assert len(a_grids_of_b) == 0
    assert b_summary.grids == len(b_grids)


def test_no_session_reads_nothing(as_user) -> None:
    as_user(None)
    assert data.street_names() == {}
    with data.scoped_conn() as conn:
        assert conn.execute(text("SELECT count(*) FROM incident")).scalar_one() == 0


def test_a_district_and_a_street_are_different_cache_entries(as_user) -> None:
    as_user("district", "370214")
    district = data.street_names()
    as_user("street", STREET_B[:9])
    street = data.street_names()
    assert district == {STREET_A: "甲街道", STREET_B: "乙街道"}
    assert street == {STREET_B: "乙街道"}


def _modules() -> list[Path]:
    return sorted(
        [*DASHBOARD.glob("data*.py"), DASHBOARD / "auth.py", *DASHBOARD.glob("views/*.py")]
    )


def test_every_loader_is_cached_per_scope_and_reads_scoped() -> None:
    """No ``st.cache_data`` in the loaders but :func:`dashboard.data.scoped_cache`'s own, and
    no connection but :func:`dashboard.data.scoped_conn` (the login's own bookkeeping in
    dashboard/auth.py aside, which goes through store.access)."""
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "cache_data":
                assert path.name == "data.py", f"{path.name}: st.cache_data outside scoped_cache"
            if isinstance(node, ast.Attribute) and node.attr in ("connect", "raw_connection"):
                raise AssertionError(f"{path.name}:{node.lineno}: an unscoped connection")
            if isinstance(node, ast.Attribute) and node.attr == "begin":
                assert path.name in ("data.py", "auth.py"), f"{path.name}:{node.lineno}"
