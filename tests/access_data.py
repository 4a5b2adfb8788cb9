"""Two streets of one district, every coded table filled in each grid, for the access tests.

Street A (370214900000) has two communities and three grids, street B (370214901000) one
community and one grid. Every grid gets a worker (with a phone), an assignment, a building,
a housing unit with special-group counts, a key place, a camera, an incident with two
transitions, a patrol, two GPS fixes and a work log; plus one road and one load record.
The figures the tests compare against are read back from the tables as the owner.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import psycopg
from sqlalchemy import Connection, Engine, Row, create_engine, event, text

from store.db import make_engine, normalise_url
from tests import conftest

DISTRICT = "370214000000"
STREET_A = "370214900000"
STREET_B = "370214901000"
COMMUNITIES = {
    "370214900001": STREET_A,
    "370214900002": STREET_A,
    "370214901001": STREET_B,
}
GRIDS = ("370214900001001", "370214900001002", "370214900002001", "370214901001001")


def _square(i: int) -> tuple[str, str]:
    """A ~200 m square and a point inside it, the i-th along the parallel."""
    x0 = 120.400 + 0.003 * i
    sq = (
        f"MULTIPOLYGON((({x0} 36.300,{x0 + 0.002} 36.300,{x0 + 0.002} 36.302,"
        f"{x0} 36.302,{x0} 36.300)))"
    )
    return sq, f"POINT({x0 + 0.001} 36.301)"


BIG = "MULTIPOLYGON(((120.39 36.29,120.42 36.29,120.42 36.31,120.39 36.31,120.39 36.29)))"


def fill(conn: Connection) -> None:
    """Write the two streets (as the owner, in the caller's transaction)."""
    ins_unit = text(
        "INSERT INTO admin_unit (code, level, name, parent_code, geom) "
        "VALUES (:c, :l, :n, :p, ST_GeomFromText(:g, 4490))"
    )
    conn.execute(ins_unit, {"c": DISTRICT, "l": "district", "n": "测试区", "p": None, "g": BIG})
    for s, name in ((STREET_A, "甲街道"), (STREET_B, "乙街道")):
        conn.execute(ins_unit, {"c": s, "l": "street", "n": name, "p": DISTRICT, "g": BIG})
    for c, s in COMMUNITIES.items():
        conn.execute(ins_unit, {"c": c, "l": "community", "n": f"社区{c[-3:]}", "p": s, "g": BIG})
    conn.execute(text("SELECT ensure_patrol_fix_partitions('2026-11-01', '2026-11-30')"))
    conn.execute(
        text(
            "INSERT INTO road (name, kind, geom) VALUES ('测试路', 'main', "
            "ST_GeomFromText('LINESTRING(120.40 36.30, 120.41 36.30)', 4490))"
        )
    )
    conn.execute(
        text(
            "INSERT INTO data_source (kind, source, loaded_at, rows) "
            "VALUES ('grids', 'test.csv', now(), 4)"
        )
    )
    for i, g in enumerate(GRIDS):
        street = g[:9] + "000"
        sq, pt = _square(i)
        p = {"g": g, "s": street, "c": g[:12], "sq": sq, "pt": pt, "i": i}
        w = conn.execute(
            text(
                "INSERT INTO staff (code, name, role, phone, street_code, active_from) VALUES "
                "('W' || :i, '网格员' || :i, 'grid_worker', '1390000000' || :i, :s, "
                "'2025-01-01') RETURNING id"
            ),
            p,
        ).scalar_one()
        p["w"] = w
        conn.execute(
            text(
                "INSERT INTO grid (code, name, kind, community_code, households, worker_id, "
                "valid_from, geom) VALUES (:g, '网格' || :i, 'urban', :c, 300, :w, "
                "'2025-01-01', ST_GeomFromText(:sq, 4490))"
            ),
            p,
        )
        conn.execute(
            text(
                "INSERT INTO staff_assignment (staff_id, grid_code, street_code, role, "
                "valid_from) VALUES (:w, :g, :s, 'grid_worker', '2025-01-01')"
            ),
            p,
        )
        b = conn.execute(
            text(
                "INSERT INTO building (code, grid_code, street_code, address, floors, use, geom) "
                "VALUES ('B' || :i, :g, :s, '测试路' || :i || '号', 6, 'residential', "
                "ST_GeomFromText(:pt, 4490)) RETURNING id"
            ),
            p,
        ).scalar_one()
        p["b"] = b
        h = conn.execute(
            text(
                "INSERT INTO housing_unit (building_id, grid_code, street_code, unit_no, use, "
                "occupancy, n_registered) VALUES (:b, :g, :s, '101', 'residential', 'owner', 3) "
                "RETURNING id"
            ),
            p,
        ).scalar_one()
        p["h"] = h
        conn.execute(
            text(
                "INSERT INTO housing_special_count (housing_unit_id, grid_code, street_code, "
                "n_released_prisoners, n_drug_users, n_severe_mental_illness, updated_on) "
                "VALUES (:h, :g, :s, 1 + :i, 2, 1, '2026-11-01')"
            ),
            p,
        )
        conn.execute(
            text(
                "INSERT INTO key_place (code, name, kind, grid_code, street_code, geom) VALUES "
                "('P' || :i, '市场' || :i, 'market', :g, :s, ST_GeomFromText(:pt, 4490))"
            ),
            p,
        )
        conn.execute(
            text(
                "INSERT INTO facility (code, kind, view_radius_m, grid_code, street_code, geom) "
                "VALUES ('F' || :i, 'camera_xueliang', 50, :g, :s, ST_GeomFromText(:pt, 4490))"
            ),
            p,
        )
        inc = conn.execute(
            text(
                "INSERT INTO incident (code, category_code, source, severity, title, "
                "occurred_at, reported_at, due_at, reporter_id, grid_code, street_code, geom) "
                "VALUES ('SJ' || :i, '0301', 'patrol', 1, '违规停车' || :i, "
                "'2026-11-02 08:00+08', '2026-11-02 09:00+08', '2026-11-04 09:00+08', :w, "
                ":g, :s, ST_GeomFromText(:pt, 4490)) RETURNING id"
            ),
            p,
        ).scalar_one()
        p["inc"] = inc
        conn.execute(
            text(
                "INSERT INTO incident_transition (incident_id, at, to_status, tier, actor, "
                "grid_code, street_code) VALUES "
                "(:inc, '2026-11-02 09:00+08', 'reported', 'grid', 'W', :g, :s), "
                "(:inc, '2026-11-02 10:00+08', 'registered', 'grid', 'W', :g, :s)"
            ),
            p,
        )
        conn.execute(
            text(
                "INSERT INTO patrol (worker_id, started_at, ended_at, n_fixes, length_m, "
                "grid_code, street_code, geom) VALUES (:w, '2026-11-02 08:00+08', "
                "'2026-11-02 09:00+08', 2, 100, :g, :s, "
                "ST_MakeLine(ST_GeomFromText(:pt, 4490), "
                "ST_Translate(ST_GeomFromText(:pt, 4490), 0.0005, 0)))"
            ),
            p,
        )
        conn.execute(
            text(
                "INSERT INTO patrol_fix (worker_id, fixed_at, accuracy_m, grid_code, "
                "street_code, geom) VALUES "
                "(:w, '2026-11-02 08:00+08', 5, :g, :s, ST_GeomFromText(:pt, 4490)), "
                "(:w, '2026-11-02 08:30+08', 5, :g, :s, ST_GeomFromText(:pt, 4490))"
            ),
            p,
        )
        conn.execute(
            text(
                "INSERT INTO work_log (worker_id, log_date, grid_code, street_code, body) "
                "VALUES (:w, '2026-11-02', :g, :s, '走访住户' || :i)"
            ),
            p,
        )
    # stored coverage (migration 0006) last: writing fixes or buildings clears it
    conn.execute(
        text(
            "INSERT INTO coverage_day (day, starts_at, ends_at, epsg, params, fixes) "
            "VALUES ('2026-11-02', '2026-11-02 00:00+08', '2026-11-03 00:00+08', 4549, 'x', 0)"
        )
    )
    conn.execute(
        text(
            "INSERT INTO coverage_building_day (day, building_id, street_code, grid_code, "
            "last_any, last_street) SELECT '2026-11-02', id, street_code, grid_code, 0, 0 "
            "FROM building"
        )
    )


# --- the database ------------------------------------------------------------------------


@contextlib.contextmanager
def two_streets(
    server: conftest.TestServer,
    template_db: str,
    prefix: str,
    extra: Callable[[Connection], object] | None = None,
) -> Iterator[tuple[str, Engine]]:
    """A database of its own holding the two streets (:func:`fill`), then ``extra`` (users,
    more rows) in the same transaction, analysed; as (name, owner engine), dropped after."""
    name = server.create(f"{prefix}{os.getpid() % 1000}", template=template_db)
    engine = make_engine(server.url(name))
    try:
        with engine.begin() as conn:
            fill(conn)
            if extra is not None:
                extra(conn)
            conn.execute(text("ANALYZE"))
        yield name, engine
    finally:
        engine.dispose()
        server.drop(name)


# --- connecting as the application role ------------------------------------------------


def app_url(server: conftest.TestServer, db: str, login: tuple[str, str]) -> str:
    return server.admin_url.set(database=db, username=login[0], password=login[1]).render_as_string(
        hide_password=False
    )


def app_engine(server: conftest.TestServer, db: str, login: tuple[str, str]) -> Engine:
    """A SQLAlchemy engine on ``db`` whose every connection is exactly gridone_app."""
    engine = create_engine(normalise_url(app_url(server, db, login)))

    @event.listens_for(engine, "connect")
    def _set_role(dbapi_conn, _record) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute("SET ROLE gridone_app")
        dbapi_conn.commit()

    return engine


@contextlib.contextmanager
def raw_app_conn(
    server: conftest.TestServer, db: str, login: tuple[str, str]
) -> Iterator[psycopg.Connection]:
    """A raw psycopg connection to ``db`` as exactly gridone_app: what injected SQL runs as."""
    url = app_url(server, db, login).replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE gridone_app")
        conn.commit()
        yield conn


def last_export_audit(engine: Engine) -> Row:
    """The newest ``export`` row of the audit log (id, login, ok, detail), read as the
    owner."""
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT id, login, ok, detail FROM audit_log WHERE action = 'export' "
                "ORDER BY id DESC LIMIT 1"
            )
        ).one()


# --- sessions: the only way the application sets a scope (migration 0007) -------------------

#: One bcrypt hash for every test user (none of them logs in with a password here).
_HASH: list[str] = []
_TOKENS: dict[tuple[str, str, str | None, str | None, str | None], str] = {}


def scope_code(role: str, prefix: str | None) -> str | None:
    """The app_user scope code of a role and its code prefix (``370214`` → ``370214000000``,
    a 9-digit street prefix → ``…000``); None for sysadmin and auditor."""
    if role in ("sysadmin", "auditor") or not prefix:
        return None
    return prefix.ljust(12, "0") if role in ("district", "street") else prefix


def session_token(
    owner: Engine, role: str, prefix: str | None = None, *, staff: str | None = None
) -> str:
    """The token of a live session of a user with ``role`` over the scope ``prefix``
    (created by the owner once per database, user and staff code)."""
    from store.access import create_session, hash_password

    key = (owner.url.database or "", role, prefix, staff, None)
    if key in _TOKENS:
        return _TOKENS[key]
    code = scope_code(role, prefix)
    login = f"t-{role}-{code or 'none'}-{staff or 'x'}".lower()
    with owner.begin() as conn:
        if not _HASH:  # the lowest cost: these users never log in with it
            _HASH.append(hash_password(conn, "not used 12345", 10))
        uid = conn.execute(
            text(
                "INSERT INTO app_user (login, display_name, role, scope_code, staff_code, "
                "password_hash) VALUES (:l, :l, :r, :s, :st, :h) "
                "ON CONFLICT (login) DO UPDATE SET active = true RETURNING id"
            ),
            {"l": login, "r": role, "s": code, "st": staff, "h": _HASH[0]},
        ).scalar_one()
        from store.access import User

        token = create_session(conn, User(uid, login, login, role, code, staff))
    _TOKENS[key] = token
    return token
