"""Minimal valid rows for schema tests: one district, street, community, grid, worker."""

from __future__ import annotations

from sqlalchemy import Connection, text

DISTRICT = "370214000000"
STREET = "370214900000"
COMMUNITY = "370214900001"
GRID = "370214900001001"
# a ~200 m square near 36.30N 120.40E, CGCS2000
SQUARE = (
    "MULTIPOLYGON(((120.400 36.300,120.402 36.300,120.402 36.302,120.400 36.302,120.400 36.300)))"
)
INSIDE = "POINT(120.401 36.301)"


def area(conn: Connection) -> int:
    """Insert the jurisdiction chain and one grid worker; return the worker's id."""
    for code, level, parent in (
        (DISTRICT, "district", None),
        (STREET, "street", DISTRICT),
        (COMMUNITY, "community", STREET),
    ):
        conn.execute(
            text(
                "INSERT INTO admin_unit (code, level, name, parent_code, geom) "
                "VALUES (:c, :l, :n, :p, ST_GeomFromText(:g, 4490))"
            ),
            {"c": code, "l": level, "n": f"测试{level}", "p": parent, "g": SQUARE},
        )
    worker = conn.execute(
        text(
            "INSERT INTO staff (code, name, role, phone, street_code, active_from) "
            "VALUES ('W1', '张测试', 'grid_worker', '13900000001', :s, '2025-01-01') "
            "RETURNING id"
        ),
        {"s": STREET},
    ).scalar_one()
    conn.execute(
        text(
            "INSERT INTO grid (code, name, kind, community_code, households, worker_id, "
            "valid_from, geom) VALUES (:g, '测试网格', 'urban', :c, 300, :w, '2025-01-01', "
            "ST_GeomFromText(:geom, 4490))"
        ),
        {"g": GRID, "c": COMMUNITY, "w": worker, "geom": SQUARE},
    )
    return int(worker)


def incident(conn: Connection, code: str = "SJ1", *, reported: str = "2026-03-02 09:00+08") -> int:
    """Insert one incident (no transitions yet); return its id."""
    return int(
        conn.execute(
            text(
                "INSERT INTO incident (code, category_code, source, severity, title, "
                "occurred_at, reported_at, due_at, grid_code, street_code, geom) VALUES "
                "(:code, '0301', 'patrol', 1, '违规停车', "
                "CAST(:rep AS timestamptz) - interval '1 hour', "
                ":rep, CAST(:rep AS timestamptz) + interval '2 days', :g, :s, "
                "ST_GeomFromText(:p, 4490)) RETURNING id"
            ),
            {"code": code, "rep": reported, "g": GRID, "s": STREET, "p": INSIDE},
        ).scalar_one()
    )


def step(
    conn: Connection,
    incident_id: int,
    to_status: str,
    at: str,
    tier: str = "grid",
    new_due_at: str | None = None,
) -> None:
    """Append one transition."""
    conn.execute(
        text(
            "INSERT INTO incident_transition (incident_id, at, to_status, tier, actor, "
            "new_due_at, grid_code, street_code) "
            "VALUES (:i, :at, :st, :tier, 'W1', :due, :g, :s)"
        ),
        {
            "i": incident_id,
            "at": at,
            "st": to_status,
            "tier": tier,
            "due": new_due_at,
            "g": GRID,
            "s": STREET,
        },
    )
