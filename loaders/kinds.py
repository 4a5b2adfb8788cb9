"""What each kind of input holds and where it goes: fields, types, keys and the SQL that
derives and writes them. Data, not code paths: :mod:`loaders.engine` runs any of them.

Each kind's rows are staged in a temporary table ``stage_load`` (one column per field plus
``geom`` and the derived columns), checked and completed by ``derive`` statements that mark
bad rows (``_error``, ``_field``), and written by ``insert`` — an ``INSERT … SELECT`` with
``ON CONFLICT`` on the natural key, so loading the same file twice changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Staged columns derived from an input field (for deciding what a file can update).
DERIVED_FROM = {"worker_id": "worker_code", "worker_street": "worker_code"}

#: SQL type of each field type.
SQL_TYPES = {
    "text": "text",
    "int": "bigint",
    "float": "double precision",
    "date": "date",
    "timestamp": "timestamptz",
    "bool": "boolean",
}


@dataclass(frozen=True)
class Kind:
    """One kind of input.

    Attributes
    ----------
    name, table
        The CLI name and the table written.
    help_zh, help_en
        What the file holds, for ``--help``.
    fields
        Canonical field → type (``text``, ``int``, ``float``, ``date``, ``timestamp``,
        ``bool`` or ``vocab:<vocabulary>`` — a code or its Chinese/English label).
    required
        Fields every row must have.
    geometry
        ``point``, ``polygon``, ``line`` or None; ``geometry_required`` says whether a row
        without one is rejected.
    extra
        Derived staging columns → SQL type (filled by ``derive``).
    derive
        SQL run on ``stage_load`` in order; each marks rows it cannot complete.
    columns
        Target column → SQL expression over the staged row ``s``. On update, a column
        whose expression reads only input fields absent from the file is left as stored
        (a reloaded file without a worker column keeps the grids' workers).
    conflict
        The unique key the upsert conflicts on.
    prefix
        SQL put before the ``INSERT`` (a ``WITH`` clause).
    after
        SQL run once after the rows are written.
    key
        The natural key, for duplicate detection inside one file.
    """

    name: str
    table: str
    help_zh: str
    help_en: str
    fields: dict[str, str]
    required: tuple[str, ...]
    geometry: str | None
    columns: dict[str, str]
    key: tuple[str, ...]
    conflict: str = "code"
    prefix: str = ""
    geometry_required: bool = True
    extra: dict[str, str] = field(default_factory=dict)
    derive: tuple[str, ...] = ()
    after: tuple[str, ...] = ()

    def insert_sql(self, present: set[str]) -> str:
        """The upsert for a file holding the fields ``present``: gets ``:lo`` and ``:hi``
        (a range of ``_row``) and returns ``xmax = 0`` per row (true: inserted)."""
        keep = [
            c
            for c, expr in self.columns.items()
            if c not in self.conflict.split(", ") and self._reads_present(expr, present)
        ]
        return self.prefix + _upsert(self.table, self.columns, self.conflict, update_columns=keep)

    def supersede_sql(self) -> str:
        """Marks (``_error = :sup``) every staged row whose natural key a later row of the
        same file repeats."""
        key = ", ".join(self.key)
        return (
            "UPDATE stage_load s SET _error = :sup FROM (SELECT _row, row_number() OVER "
            f"(PARTITION BY {key} ORDER BY _row DESC) AS rn FROM stage_load "
            "WHERE _error IS NULL) d WHERE s._row = d._row AND d.rn > 1"
        )

    def _reads_present(self, expr: str, present: set[str]) -> bool:
        """Whether ``expr`` reads an input field of the file (or only derived values)."""
        read = {DERIVED_FROM.get(f, f) for f in re.findall(r"\bs\.(\w+)", expr)}
        inputs = read & set(self.fields)
        return not inputs or bool(inputs & present)


def _mark(condition: str, field_name: str, reason: str) -> str:
    """A derive statement rejecting the rows where ``condition`` holds (reason bilingual;
    static text written here, never user input)."""
    return (
        f"UPDATE stage_load SET _error = '{reason}', _field = '{field_name}' "
        f"WHERE _error IS NULL AND ({condition})"
    )


def _upsert(
    table: str, columns: dict[str, str], key: str, *, update_columns: list[str] | None = None
) -> str:
    cols = list(columns)
    select = ", ".join(columns[c] for c in cols)
    target = ", ".join(cols)
    if update_columns is None or update_columns:
        changed = update_columns or [c for c in cols if c not in key.split(", ")]
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in changed)
        distinct = (
            f"({', '.join(f'{table}.{c}' for c in changed)}) IS DISTINCT FROM "
            f"({', '.join(f'EXCLUDED.{c}' for c in changed)})"
        )
        conflict = f"ON CONFLICT ({key}) DO UPDATE SET {sets} WHERE {distinct}"
    else:
        conflict = f"ON CONFLICT ({key}) DO NOTHING"
    return (
        f"INSERT INTO {table} ({target}) SELECT {select} FROM stage_load s "
        f"WHERE s._error IS NULL AND s._row BETWEEN :lo AND :hi ORDER BY s._row "
        f"{conflict} RETURNING (xmax = 0)"
    )


# Spatial completion shared by point kinds: the grid a point lies in (one grid even on a
# shared edge: the lowest code) and the street from the grid or from the street polygon.
_GRID_BY_POINT = (
    "UPDATE stage_load s SET grid_code = (SELECT g.code FROM grid g "
    "WHERE ST_Covers(g.geom, s.geom) AND (g.valid_to IS NULL OR g.valid_to > CURRENT_DATE) "
    "ORDER BY g.code LIMIT 1) WHERE s.grid_code IS NULL AND s.geom IS NOT NULL "
    "AND s._error IS NULL"
)
_STREET_FROM_GRID = (
    "UPDATE stage_load SET street_code = left(grid_code, 9) || '000' "
    "WHERE street_code IS NULL AND grid_code IS NOT NULL"
)
_STREET_BY_POINT = (
    "UPDATE stage_load s SET street_code = (SELECT a.code FROM admin_unit a "
    "WHERE a.level = 'street' AND ST_Covers(a.geom, s.geom) ORDER BY a.code LIMIT 1) "
    "WHERE s.street_code IS NULL AND s.geom IS NOT NULL"
)
_GRID_EXISTS = _mark(
    "grid_code IS NOT NULL AND NOT EXISTS (SELECT 1 FROM grid g WHERE g.code = grid_code)",
    "grid_code",
    "网格编码不存在，请先导入网格 / no such grid: load the grids first",
)
_STREET_KNOWN = _mark(
    "street_code IS NULL",
    "street_code",
    "不在任何街道内，且未给出街道编码 / outside every street and no street_code given",
)
_POINT_AREA = (_GRID_EXISTS, _GRID_BY_POINT, _STREET_FROM_GRID, _STREET_BY_POINT, _STREET_KNOWN)


def _worker(field_name: str = "worker_code", *, required: bool = True) -> tuple[str, ...]:
    found = (
        "UPDATE stage_load s SET worker_id = st.id, worker_street = st.street_code "
        f"FROM staff st WHERE st.code = s.{field_name}"
    )
    missing = _mark(
        f"worker_id IS NULL AND {field_name} IS NOT NULL",
        field_name,
        "找不到该人员编码，请先导入人员 / no staff member with this code: load workers first",
    )
    if not required:
        return (found, missing)
    return (found, missing, _mark(f"{field_name} IS NULL", field_name, "人员编码必填 / required"))


AREA_EXTRA = {"grid_code": "text", "street_code": "text"}

KINDS: dict[str, Kind] = {}


def _register(kind: Kind) -> None:
    KINDS[kind.name] = kind


_register(
    Kind(
        name="streets",
        table="admin_unit",
        help_zh="街道边界：编码(12位)、名称、面",
        help_en="street boundaries: 12-digit code, name, polygon",
        fields={"code": "text", "name": "text"},
        required=("code", "name"),
        geometry="polygon",
        key=("code",),
        derive=(
            _mark(
                r"code !~ '^\d{9}000$' OR code ~ '000000$'",
                "code",
                "街道编码应为12位数字且以000结尾（后6位不能全为0）/ a street code has 12 digits "
                "ending in 000 (not 000000)",
            ),
        ),
        # the district row a street hangs from: created if missing (its outline is the union
        # of its streets, refreshed after the load)
        prefix=(
            "WITH d AS (INSERT INTO admin_unit (code, level, name, geom) "
            "SELECT DISTINCT left(s.code, 6) || '000000', 'district', "
            "'区 ' || left(s.code, 6), ST_Multi(s.geom) FROM stage_load s "
            "WHERE s._error IS NULL AND s._row BETWEEN :lo AND :hi "
            "ON CONFLICT (code) DO NOTHING) "
        ),
        columns={
            "code": "s.code",
            "level": "'street'",
            "name": "s.name",
            "parent_code": "left(s.code, 6) || '000000'",
            "geom": "ST_Multi(s.geom)",
        },
        after=(
            "UPDATE admin_unit d SET geom = u.geom FROM (SELECT parent_code, "
            "ST_Multi(ST_Union(geom)) AS geom FROM admin_unit WHERE level = 'street' "
            "GROUP BY parent_code) u WHERE d.code = u.parent_code AND d.level = 'district' "
            "AND NOT ST_Equals(d.geom, u.geom)",
        ),
    )
)

_register(
    Kind(
        name="communities",
        table="admin_unit",
        help_zh="社区边界：编码(12位)、名称、面；所属街道取编码前9位",
        help_en="community boundaries: 12-digit code, name, polygon; street = first 9 digits",
        fields={"code": "text", "name": "text"},
        required=("code", "name"),
        geometry="polygon",
        key=("code",),
        derive=(
            _mark(
                r"code !~ '^\d{12}$' OR code ~ '000$'",
                "code",
                "社区编码应为12位数字且不以000结尾 / a community code has 12 digits, not "
                "ending in 000",
            ),
            _mark(
                "NOT EXISTS (SELECT 1 FROM admin_unit a WHERE a.code = left(code, 9) || '000' "
                "AND a.level = 'street')",
                "code",
                "所属街道不存在，请先导入街道 / its street is not loaded: load the streets first",
            ),
        ),
        columns={
            "code": "s.code",
            "level": "'community'",
            "name": "s.name",
            "parent_code": "left(s.code, 9) || '000'",
            "geom": "ST_Multi(s.geom)",
        },
    )
)

_register(
    Kind(
        name="grids",
        table="grid",
        help_zh="网格：编码(15位=社区12位+3位序号)、名称、类型、户数、网格员编码、起止日期、面",
        help_en="grids: 15-digit code (community + 3), name, kind, households, worker code, "
        "valid from/to, polygon",
        fields={
            "code": "text",
            "name": "text",
            "kind": "vocab:grid_kind",
            "households": "int",
            "worker_code": "text",
            "valid_from": "date",
            "valid_to": "date",
        },
        required=("code", "name"),
        geometry="polygon",
        key=("code",),
        extra={"worker_id": "bigint", "worker_street": "text"},
        derive=(
            _mark(
                r"code !~ '^\d{15}$'", "code", "网格编码应为15位数字 / a grid code has 15 digits"
            ),
            _mark(
                "NOT EXISTS (SELECT 1 FROM admin_unit a WHERE a.code = left(code, 12) "
                "AND a.level = 'community')",
                "code",
                "所属社区（编码前12位）不存在，请先导入社区 / its community (first 12 digits) "
                "is not loaded: load the communities first",
            ),
            *_worker(required=False),
        ),
        columns={
            "code": "s.code",
            "name": "s.name",
            "kind": "coalesce(s.kind, 'urban')",
            "community_code": "left(s.code, 12)",
            "households": "coalesce(s.households, 0)",
            "worker_id": "s.worker_id",
            "valid_from": "coalesce(s.valid_from, CURRENT_DATE)",
            "valid_to": "s.valid_to",
            "geom": "ST_Multi(s.geom)",
        },
    )
)

_register(
    Kind(
        name="workers",
        table="staff",
        help_zh="网格员及辅助力量：编码、姓名、角色、手机号、街道编码、网格编码、在岗起止日期",
        help_en="grid workers and support roles: code, name, role, phone, street code, grid "
        "code, active from/to",
        fields={
            "code": "text",
            "name": "text",
            "role": "vocab:staff_role",
            "phone": "text",
            "street_code": "text",
            "grid_code": "text",
            "active_from": "date",
            "active_to": "date",
        },
        required=("code", "name"),
        geometry=None,
        geometry_required=False,
        key=("code",),
        derive=(
            _GRID_EXISTS,
            _STREET_FROM_GRID,
            _mark(
                "street_code IS NULL",
                "street_code",
                "需要街道编码或网格编码 / give street_code or grid_code",
            ),
        ),
        columns={
            "code": "s.code",
            "name": "s.name",
            "role": "coalesce(s.role, 'grid_worker')",
            "phone": "s.phone",
            "street_code": "s.street_code",
            "active_from": "coalesce(s.active_from, CURRENT_DATE)",
            "active_to": "s.active_to",
        },
        after=(
            "INSERT INTO staff_assignment (staff_id, grid_code, street_code, role, valid_from) "
            "SELECT st.id, s.grid_code, st.street_code, st.role, st.active_from "
            "FROM stage_load s JOIN staff st ON st.code = s.code "
            "WHERE s._error IS NULL AND s.grid_code IS NOT NULL "
            "ON CONFLICT (staff_id, grid_code, role, valid_from) DO NOTHING",
            "UPDATE grid g SET worker_id = st.id FROM stage_load s JOIN staff st "
            "ON st.code = s.code WHERE s._error IS NULL AND st.role = 'grid_worker' "
            "AND g.code = s.grid_code AND g.worker_id IS DISTINCT FROM st.id",
        ),
    )
)

_register(
    Kind(
        name="buildings",
        table="building",
        help_zh="楼栋：编码、地址、层数、用途、点位（或轮廓面）；网格与街道按位置确定",
        help_en="buildings: code, address, floors, use, point (or footprint); grid and street "
        "from the location",
        fields={
            "code": "text",
            "address": "text",
            "floors": "int",
            "use": "vocab:building_use",
            "grid_code": "text",
            "street_code": "text",
        },
        required=("code", "address"),
        geometry="point",
        key=("code",),
        extra={"footprint": "geometry"},
        derive=_POINT_AREA,
        columns={
            "code": "s.code",
            "grid_code": "s.grid_code",
            "street_code": "s.street_code",
            "address": "s.address",
            "floors": "coalesce(s.floors, 1)",
            "use": "coalesce(s.use, 'residential')",
            "geom": "s.geom",
            "footprint": "s.footprint",
        },
    )
)

_register(
    Kind(
        name="incidents",
        table="incident",
        help_zh="事件：编号、事件类型(编码或名称)、来源、等级、标题、描述、地址、发生时间、上报时间、"
        "办理时限、上报人编码、网格编码、点位",
        help_en="incidents: code, category (code or name), source, severity, title, "
        "description, address, occurred/reported time, due time, reporter code, grid, point",
        fields={
            "code": "text",
            "category_code": "text",
            "source": "vocab:incident_source",
            "severity": "int",
            "title": "text",
            "description": "text",
            "address": "text",
            "occurred_at": "timestamp",
            "reported_at": "timestamp",
            "due_at": "timestamp",
            "worker_code": "text",
            "grid_code": "text",
            "street_code": "text",
        },
        required=("code", "category_code", "reported_at"),
        geometry="point",
        key=("code",),
        extra={"worker_id": "bigint", "worker_street": "text"},
        derive=(*_POINT_AREA, *_worker(required=False)),
        columns={
            "code": "s.code",
            "category_code": "s.category_code",
            "source": "coalesce(s.source, 'app')",
            "severity": "coalesce(s.severity, 1)",
            "title": "s.title",
            "description": "s.description",
            "address": "s.address",
            "occurred_at": "coalesce(s.occurred_at, s.reported_at)",
            "reported_at": "s.reported_at",
            "due_at": "s.due_at",
            "reporter_id": "s.worker_id",
            "grid_code": "s.grid_code",
            "street_code": "s.street_code",
            "geom": "s.geom",
        },
    )
)
