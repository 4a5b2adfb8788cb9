"""Writing a generated demo into the store: all tables in one transaction.

Kept apart from the generator (pure, no database) so the generator can be tested and timed
alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text

from store import kpi_summary
from store.cells import with_incident_cells
from store.models import ACCESS_TABLES, Base
from store.settings import PROJECT_ROOT
from store.write import copy_frame, deferred_indexes, reindex_unsettled, utc_now

TRUTH_DIR = PROJECT_ROOT / ".local" / "demo"


class StoreNotEmptyError(RuntimeError):
    """The store already holds data and replacing it was not asked for."""


def store_is_empty(conn: Connection) -> bool:
    """Whether the store holds no jurisdiction, grid or incident rows."""
    return not conn.execute(
        text(
            "SELECT EXISTS (SELECT 1 FROM admin_unit) OR EXISTS (SELECT 1 FROM grid) "
            "OR EXISTS (SELECT 1 FROM incident)"
        )
    ).scalar_one()


#: Code tables kept by --replace (they come from data/ and store.vocab, not from the demo).
REFERENCE_TABLES = ("incident_category", "workflow_rule")


def _clear(conn: Connection) -> None:
    """Empty every data table (not the code tables), on purpose: the transition log's
    truncate guard is lifted for this transaction only."""
    quote = conn.dialect.identifier_preparer.quote
    kept = REFERENCE_TABLES + ACCESS_TABLES
    tables = ", ".join(quote(t) for t in Base.metadata.tables if t not in kept)
    conn.execute(text("SET LOCAL gridone.allow_truncate = on"))
    conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


def _reset_identities(conn: Connection) -> None:
    """After explicit ids were copied in, move each identity past the largest id."""
    for table in Base.metadata.sorted_tables:
        if table.name in ACCESS_TABLES:
            continue
        if "id" in table.c and table.c.id.identity is not None:
            top = conn.execute(select(func.max(table.c.id))).scalar_one() or 1
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :v)"),
                {"t": table.name, "v": top},
            )


def write_demo(
    engine: Engine, data: Any, *, replace: bool = False, truth_path: Path | None = None
) -> dict[str, int]:
    """Write ``data`` (a :class:`loaders.demo.DemoData`) into the store in one transaction.

    Parameters
    ----------
    engine
        The store.
    data
        The generated demo.
    replace
        Empty every table first. Without it a store that holds data is left untouched and
        :class:`StoreNotEmptyError` is raised.
    truth_path
        Where to write the planted truth as JSON
        (default ``.local/demo/truth-<scale>-<seed>.json``).

    Returns
    -------
    dict
        Rows written per table.
    """
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        if not store_is_empty(conn):
            if not replace:
                raise StoreNotEmptyError(
                    "the store already holds data; use --replace to overwrite it with the demo"
                )
            _clear(conn)
        fixes = data.patrol_fix
        if len(fixes):
            conn.execute(
                text("SELECT ensure_patrol_fix_partitions(:lo, :hi)"),
                {
                    "lo": fixes["fixed_at"].min().to_pydatetime(),
                    "hi": fixes["fixed_at"].max().to_pydatetime(),
                },
            )
        tables = list(data.tables())
        with deferred_indexes(conn, [name for name, _ in tables]):
            for name, frame in tables:
                if name == "incident_transition":  # its ids are GENERATED ALWAYS
                    frame = frame.drop(columns="id")
                if name == "incident":  # the H3 cells of each point (store/cells.py)
                    frame = with_incident_cells(frame)
                counts[name] = copy_frame(conn, name, frame)
        _reset_identities(conn)
        kpi_summary.rebuild(conn)  # TRUNCATE and COPY: the sums from scratch
        truth = data.truth
        conn.execute(
            text(
                "INSERT INTO data_source (kind, source, loaded_at, rows, detail) "
                "VALUES ('demo', :source, :at, :rows, CAST(:detail AS jsonb))"
            ),
            {
                "source": f"loaders.demo seed={truth.get('seed')} scale={truth.get('scale')}",
                "at": utc_now(),
                "rows": sum(counts.values()),
                "detail": json.dumps({"counts": counts, "truth": truth}, ensure_ascii=False),
            },
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        reindex_unsettled(conn, [name for name, _ in tables])
        conn.execute(text("ANALYZE"))
    path = truth_path or TRUTH_DIR / f"truth-{truth.get('scale')}-{truth.get('seed')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(truth, ensure_ascii=False, indent=1), encoding="utf-8")
    return counts
