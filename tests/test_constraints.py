"""The schema refuses impossible rows, and :func:`store.errors.explain` says why and how to
fix it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from store.errors import ConstraintViolationError, explain
from tests import factories as f

BOWTIE = (
    "MULTIPOLYGON(((120.400 36.300,120.402 36.302,120.402 36.300,120.400 36.302,120.400 36.300)))"
)
SWAPPED = "POINT(36.301 120.401)"
METRES = "POINT(540000 4017000)"


def _building(geom: str = f.INSIDE, **over: object) -> tuple[str, dict]:
    params = {
        "code": "B1",
        "g": f.GRID,
        "s": f.STREET,
        "floors": 6,
        "use": "residential",
        "geom": geom,
    }
    params.update(over)
    sql = (
        "INSERT INTO building (code, grid_code, street_code, address, floors, use, geom) "
        "VALUES (:code, :g, :s, '春阳路1号', :floors, :use, ST_GeomFromText(:geom, 4490))"
    )
    return sql, params


CASES = {
    "swapped lat/lon": (_building(SWAPPED), "geom_in_china", "经纬度是否颠倒"),
    "projected metres": (_building(METRES), "geom_in_china", "projected metres"),
    "floors zero": (_building(floors=0), "floors_range", "floors range"),
    "unknown use": (_building(use="castle"), "building_use", "use"),
    "grid of another street": (
        _building(g="370214901001001"),
        "grid_in_street",
        "do not belong|does not belong",
    ),
    "street code of a district": (
        _building(g=None, s="370214000000"),
        "street_code_format",
        "12 digits",
    ),
    "bow-tie grid": (
        (
            "INSERT INTO grid (code, name, community_code, valid_from, geom) VALUES "
            "('370214900001002', '坏网格', :c, '2025-01-01', ST_GeomFromText(:geom, 4490))",
            {"c": f.COMMUNITY, "geom": BOWTIE},
        ),
        "geom_valid",
        "make-valid",
    ),
    "grid outside its community": (
        (
            "INSERT INTO grid (code, name, community_code, valid_from, geom) VALUES "
            "('370214900002001', '错社区', :c, '2025-01-01', ST_GeomFromText(:geom, 4490))",
            {"c": f.COMMUNITY, "geom": f.SQUARE},
        ),
        "code_in_community",
        "first 12 digits",
    ),
    "camera without radius": (
        (
            "INSERT INTO facility (code, kind, grid_code, street_code, geom) VALUES "
            "('C1', 'camera_xueliang', :g, :s, ST_GeomFromText(:p, 4490))",
            {"g": f.GRID, "s": f.STREET, "p": f.INSIDE},
        ),
        "camera_has_radius",
        "view_radius_m",
    ),
    "occurred after reported": (
        (
            "INSERT INTO incident (code, category_code, source, title, occurred_at, reported_at, "
            "due_at, street_code, geom) VALUES ('SJ9', '0301', 'app', 't', '2026-03-02', "
            "'2026-03-01', '2026-03-05', :s, ST_GeomFromText(:p, 4490))",
            {"s": f.STREET, "p": f.INSIDE},
        ),
        "occurred_before_reported",
        "occurred_at is after reported_at",
    ),
    "top-level category on an incident": (
        (
            "INSERT INTO incident (code, category_code, source, title, occurred_at, reported_at, "
            "due_at, street_code, geom) VALUES ('SJ9', '03', 'app', 't', '2026-03-01', "
            "'2026-03-01', '2026-03-05', :s, ST_GeomFromText(:p, 4490))",
            {"s": f.STREET, "p": f.INSIDE},
        ),
        "subcategory",
        "subcategory",
    ),
    "bad phone": (
        (
            "INSERT INTO staff (code, name, role, phone, street_code, active_from) VALUES "
            "('W9', '李', 'grid_worker', '12345', :s, '2025-01-01')",
            {"s": f.STREET},
        ),
        "phone_format",
        "11-digit",
    ),
    "duplicate building code": (
        (
            "INSERT INTO building (code, street_code, address, floors, use, geom) SELECT code, "
            "street_code, address, floors, use, geom FROM building",
            {},
        ),
        "uq_building_code",
        "duplicate",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_rows_are_refused_with_an_explanation(conn: Connection, case: str) -> None:
    (sql, params), constraint, message = CASES[case]
    f.area(conn)
    if case == "duplicate building code":
        conn.execute(text(_building()[0]), _building()[1])
    before = conn.execute(text("SELECT count(*) FROM building")).scalar_one()
    with pytest.raises(DBAPIError) as info, conn.begin_nested():
        conn.execute(text(sql), params)
    err = explain(info.value)
    assert isinstance(err, ConstraintViolationError)
    assert err.constraint is not None
    assert constraint in err.constraint
    assert re.search(message, str(err)), str(err)
    assert conn.execute(text("SELECT count(*) FROM building")).scalar_one() == before


def test_vacant_unit_cannot_have_residents(conn: Connection) -> None:
    f.area(conn)
    conn.execute(text(_building()[0]), _building()[1])
    bid = conn.execute(text("SELECT id FROM building")).scalar_one()
    sql = text(
        "INSERT INTO housing_unit (building_id, grid_code, street_code, unit_no, use, "
        "occupancy, n_registered, n_elderly_alone) VALUES (:b, :g, :s, :u, 'residential', :o, "
        ":r, :e)"
    )
    conn.execute(
        sql, {"b": bid, "g": f.GRID, "s": f.STREET, "u": "1-101", "o": "owner", "r": 2, "e": 1}
    )
    rented = conn.execute(text("SELECT rented FROM housing_unit")).scalar_one()
    assert rented is False
    for unit, occ, reg, eld, rule in (
        ("1-102", "vacant", 2, 0, "vacant_is_empty"),
        ("1-103", "owner", 1, 2, "category_counts"),
    ):
        with pytest.raises(DBAPIError) as info, conn.begin_nested():
            conn.execute(
                sql, {"b": bid, "g": f.GRID, "s": f.STREET, "u": unit, "o": occ, "r": reg, "e": eld}
            )
        assert rule in str(explain(info.value))


def test_empty_geometries_are_refused(conn: Connection) -> None:
    f.area(conn)
    with pytest.raises(DBAPIError) as info, conn.begin_nested():
        conn.execute(text(_building("POINT EMPTY")[0]), _building("POINT EMPTY")[1])
    assert "geom_valid" in str(explain(info.value))


def test_housing_units_carry_their_buildings_codes(conn: Connection) -> None:
    """A unit cannot claim another grid than its building's; re-gridding a building moves
    its units (and their special-group counts) along."""
    f.area(conn)
    conn.execute(text(_building()[0]), _building()[1])
    bid = conn.execute(text("SELECT id FROM building")).scalar_one()
    conn.execute(
        text(
            "INSERT INTO grid (code, name, community_code, valid_from, geom) VALUES "
            "('370214900001002', '第二网格', :c, '2025-01-01', ST_GeomFromText(:g, 4490))"
        ),
        {"c": f.COMMUNITY, "g": f.SQUARE},
    )
    unit = text(
        "INSERT INTO housing_unit (building_id, grid_code, street_code, unit_no, use, occupancy)"
        " VALUES (:b, :g, :s, :u, 'residential', 'owner') RETURNING id"
    )
    with pytest.raises(DBAPIError) as info, conn.begin_nested():
        conn.execute(unit, {"b": bid, "g": "370214900001002", "s": f.STREET, "u": "1-101"})
    assert "fk_housing_unit_building_id_grid_code_building" in str(explain(info.value))
    uid = conn.execute(unit, {"b": bid, "g": f.GRID, "s": f.STREET, "u": "1-101"}).scalar_one()
    conn.execute(
        text(
            "INSERT INTO housing_special_count (housing_unit_id, grid_code, street_code, "
            "n_key_youth, updated_on) VALUES (:u, :g, :s, 1, '2026-11-01')"
        ),
        {"u": uid, "g": f.GRID, "s": f.STREET},
    )
    conn.execute(
        text("UPDATE building SET grid_code = '370214900001002' WHERE id = :b"), {"b": bid}
    )
    moved = conn.execute(
        text(
            "SELECT u.grid_code, s.grid_code FROM housing_unit u "
            "JOIN housing_special_count s ON s.housing_unit_id = u.id"
        )
    ).one()
    assert tuple(moved) == ("370214900001002", "370214900001002")


def test_area_rows_need_an_existing_street(conn: Connection) -> None:
    f.area(conn)
    with pytest.raises(DBAPIError) as info, conn.begin_nested():
        conn.execute(
            text(_building(g=None, s="370214901000")[0]), _building(g=None, s="370214901000")[1]
        )
    assert "fk_building_street_code_admin_unit" in str(explain(info.value))
