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

from store.cells import CELL_COLUMNS

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
    append_only
        Rows already stored are left alone (``ON CONFLICT … DO NOTHING``) even when the
        file says something else about them: for logs that are never updated.
    inserted
        The ``RETURNING`` expression that is true for a row inserted (not updated).
        ``xmax = 0`` unless the table is partitioned (no system columns there).
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
    #: Every foreign key of ``table`` is checked by ``derive`` (or a Python step) before
    #: the write, so a big batch may re-check the keys once at the end instead of per row.
    references_checked: bool = False
    geometry_required: bool = True
    extra: dict[str, str] = field(default_factory=dict)
    derive: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    append_only: bool = False
    inserted: str = "xmax = 0"

    def insert_sql(self, present: set[str], *, stored_only: bool = False) -> str:
        """The upsert for a file holding the fields ``present``: gets ``:lo`` and ``:hi``
        (a range of ``_row``) and returns ``xmax = 0`` per row (true: inserted).
        ``stored_only``: only the rows whose key is already stored (the others are
        written by :meth:`new_rows_sql`)."""
        keep = [
            c
            for c, expr in self.columns.items()
            if not self.append_only
            and c not in _key_columns(self.conflict)
            and self._reads_present(expr, present)
        ]
        join, columns = self._stored_defaults()
        match = self._key_match() if stored_only else None
        return self.prefix + _upsert(
            self.table,
            columns,
            self.conflict,
            update_columns=keep,
            inserted=self.inserted,
            join=join,
            only=f"EXISTS (SELECT 1 FROM {self.table} k WHERE {match})" if match else "",
        )

    def new_rows_sql(self) -> str | None:
        """A plain ``INSERT … SELECT`` of the staged rows in ``:lo..:hi`` whose key is not
        stored, in file order: no conflict handling, no stored values to join, nothing
        returned. Writes what the upsert would write for those rows (a new row takes
        every default), about a fifth faster. None when the key holds an expression
        (``md5(body)``) or the kind has a ``prefix`` statement. If it is refused (a row
        the database rejects, a key another load stored meanwhile) the caller falls
        back to the upsert, which finds the refused rows one by one."""
        match = self._key_match()
        if match is None or self.prefix or self.append_only:
            return None
        cols = list(self.columns)
        return (
            f"INSERT INTO {self.table} ({', '.join(cols)}) "
            f"SELECT {', '.join(self.columns[c] for c in cols)} FROM stage_load s "
            "WHERE s._error IS NULL AND s._row BETWEEN :lo AND :hi AND NOT EXISTS "
            f"(SELECT 1 FROM {self.table} k WHERE {match}) ORDER BY s._row"
        )

    def _key_match(self) -> str | None:
        """``k.<key> = <staged expression>`` for each column of the conflict key, or None
        when the key holds an expression (``md5(body)``)."""
        keys = [k.strip() for k in self.conflict.split(",")]
        if not all(re.fullmatch(r"\w+", k) and k in self.columns for k in keys):
            return None
        return " AND ".join(f"k.{k} = {self.columns[k]}" for k in keys)

    @property
    def grids_by_point(self) -> bool:
        """Whether rows get their grid from their point (:data:`_GRID_BY_POINT`): the
        loader then gives the points clearly inside one grid theirs in Python first
        (:mod:`loaders.assign`), and the SQL does the rest."""
        return _GRID_BY_POINT in self.derive

    @property
    def street_from_grid(self) -> bool:
        """Whether a row without a street takes its grid's (:data:`_STREET_FROM_GRID`)."""
        return _STREET_FROM_GRID in self.derive

    def _stored_defaults(self) -> tuple[str, dict[str, str]]:
        """A blank cell in a row already stored keeps the stored value; the default of a
        column (``coalesce(s.households, 0)``) is for new rows only. Done by joining the
        stored row on the conflict key and putting its value before the default:
        ``coalesce(s.households, t.households, 0)``. Append-only kinds and keys that are
        expressions need no such join."""
        keys = [k.strip() for k in self.conflict.split(",")]
        if self.append_only or not all(re.fullmatch(r"\w+", k) and k in self.columns for k in keys):
            return "", self.columns
        columns = {}
        for column, expr in self.columns.items():
            m = _DEFAULTED.fullmatch(expr)
            if m and m.group(1) in self.fields and column not in keys:
                expr = f"coalesce(s.{m.group(1)}, t.{column}, {m.group(2)})"
            columns[column] = expr
        if columns == self.columns:
            return "", self.columns
        on = " AND ".join(f"t.{k} = {self.columns[k]}" for k in keys)
        return f"LEFT JOIN {self.table} t ON {on}", columns

    def supersede_sql(self) -> str:
        """Marks (``_error = :sup``) every staged row whose natural key a later row of the
        same file repeats."""
        key = ", ".join(self.key)
        return (
            "UPDATE stage_load s SET _error = :sup FROM (SELECT _row, row_number() OVER "
            f"(PARTITION BY {key} ORDER BY _row DESC) AS rn FROM stage_load "
            "WHERE _error IS NULL) d WHERE s._row = d._row AND d.rn > 1"
        )

    def repeats_sql(self) -> str | None:
        """Whether a one-column natural key may repeat among the staged rows still to
        write: a distinct count (a sort of the key alone, several times cheaper than
        :meth:`supersede_sql`'s). Blank keys count as repeats, so the answer is never a
        wrong "no". None for keys of several columns (no cheap test)."""
        if len(self.key) != 1:
            return None
        key = self.key[0]
        return f"SELECT count(*) <> count(DISTINCT {key}) FROM stage_load WHERE _error IS NULL"

    def revive_sql(self) -> str:
        """Clears the mark of the latest superseded row of every key none of whose rows is
        left to write (the winner was refused by the database); returns their ``_row``."""
        key = ", ".join(self.key)
        xkey = ", ".join(f"x.{k}" for k in self.key)
        ykey = ", ".join(f"y.{k}" for k in self.key)
        return (
            "UPDATE stage_load s SET _error = NULL FROM (SELECT DISTINCT ON "
            f"({key}) _row FROM stage_load x WHERE x._error = :sup AND NOT EXISTS (SELECT 1 "
            f"FROM stage_load y WHERE y._error IS NULL AND ROW({ykey}) IS NOT DISTINCT FROM "
            f"ROW({xkey})) ORDER BY {key}, _row DESC) d WHERE s._row = d._row RETURNING s._row"
        )

    @property
    def footprints(self) -> bool:
        """Whether a polygon is the row's footprint, stored beside its point (buildings)."""
        return "footprint" in self.extra

    def _reads_present(self, expr: str, present: set[str]) -> bool:
        """Whether the file carries the field ``expr`` takes its value from: the first
        input field it reads (``coalesce(s.occurred_at, s.reported_at)`` is occurred_at,
        with reported_at only a default for new rows); expressions of derived values
        only are always written."""
        read = [DERIVED_FROM.get(f, f) for f in re.findall(r"\bs\.(\w+)", expr)]
        inputs = [f for f in read if f in self.fields]
        return not inputs or inputs[0] in present


#: A column expression with a default for blank cells: ``coalesce(s.<field>, <default>)``.
_DEFAULTED = re.compile(r"coalesce\(s\.(\w+), (.+)\)")


def _mark(condition: str, field_name: str, reason: str) -> str:
    """A derive statement rejecting the rows where ``condition`` holds (reason bilingual;
    static text written here, never user input)."""
    reason = reason.replace("'", "''")
    return (
        f"UPDATE stage_load SET _error = '{reason}', _field = '{field_name}' "
        f"WHERE _error IS NULL AND ({condition})"
    )


def _key_columns(key: str) -> set[str]:
    """The columns a conflict target names (``"worker_id, log_date, md5(body)"`` → worker_id,
    log_date, body and, harmlessly, md5)."""
    return set(re.findall(r"\w+", key))


def _upsert(
    table: str,
    columns: dict[str, str],
    key: str,
    *,
    update_columns: list[str] | None = None,
    inserted: str = "xmax = 0",
    join: str = "",
    only: str = "",
) -> str:
    cols = list(columns)
    select = ", ".join(columns[c] for c in cols)
    target = ", ".join(cols)
    if update_columns is None or update_columns:
        changed = update_columns or [c for c in cols if c not in _key_columns(key)]
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in changed)
        distinct = (
            f"({', '.join(f'{table}.{c}' for c in changed)}) IS DISTINCT FROM "
            f"({', '.join(f'EXCLUDED.{c}' for c in changed)})"
        )
        conflict = f"ON CONFLICT ({key}) DO UPDATE SET {sets} WHERE {distinct}"
    else:
        conflict = f"ON CONFLICT ({key}) DO NOTHING"
    return (
        f"INSERT INTO {table} ({target}) SELECT {select} FROM stage_load s {join} "
        f"WHERE s._error IS NULL AND s._row BETWEEN :lo AND :hi "
        f"{'AND ' + only + ' ' if only else ''}ORDER BY s._row "
        f"{conflict} RETURNING ({inserted})"
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
_STREET_EXISTS = _mark(
    "NOT EXISTS (SELECT 1 FROM admin_unit a WHERE a.code = street_code AND a.level = 'street')",
    "street_code",
    "街道编码不存在，请先导入街道 / no such street: load the streets first",
)
_POINT_AREA = (
    _GRID_EXISTS,
    _GRID_BY_POINT,
    _STREET_FROM_GRID,
    _STREET_BY_POINT,
    _STREET_KNOWN,
    _STREET_EXISTS,
)


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

#: A worker file row with a grid is the worker's current post: a first post starts on
#: ``active_from``, a move today; posts elsewhere (or in another role) end today, and every
#: post ends on the day the worker leaves (``active_to``); the grids' ``worker_id`` follows.
#: Reloading the same file changes nothing (a current post is kept as it is).
_WORKER_ASSIGNMENTS = (
    "INSERT INTO staff_assignment (staff_id, grid_code, street_code, role, valid_from) "
    "SELECT st.id, s.grid_code, st.street_code, st.role, CASE WHEN EXISTS (SELECT 1 FROM "
    "staff_assignment p WHERE p.staff_id = st.id) THEN greatest(CURRENT_DATE, st.active_from) "
    "ELSE st.active_from END FROM stage_load s JOIN staff st ON st.code = s.code "
    "WHERE s._error IS NULL AND s.grid_code IS NOT NULL "
    "AND (st.active_to IS NULL OR st.active_to > CURRENT_DATE) "
    "AND NOT EXISTS (SELECT 1 FROM staff_assignment o WHERE o.staff_id = st.id AND "
    "o.grid_code = s.grid_code AND o.role = st.role AND "
    "(o.valid_to IS NULL OR o.valid_to >= CURRENT_DATE)) "
    "ON CONFLICT (staff_id, grid_code, role, valid_from) DO UPDATE SET valid_to = NULL",
    "UPDATE staff_assignment a SET valid_to = greatest(a.valid_from, "
    "coalesce(st.active_to, CURRENT_DATE)) FROM stage_load s JOIN staff st ON st.code = s.code "
    "WHERE s._error IS NULL AND a.staff_id = st.id AND a.valid_to IS NULL AND "
    "(st.active_to IS NOT NULL OR (s.grid_code IS NOT NULL AND "
    "(a.grid_code <> s.grid_code OR a.role <> st.role)))",
    "UPDATE grid g SET worker_id = NULL FROM stage_load s JOIN staff st ON st.code = s.code "
    "WHERE s._error IS NULL AND g.worker_id = st.id AND (st.active_to <= CURRENT_DATE OR "
    "st.role <> 'grid_worker' OR (s.grid_code IS NOT NULL AND g.code <> s.grid_code))",
    "UPDATE grid g SET worker_id = st.id FROM stage_load s JOIN staff st "
    "ON st.code = s.code WHERE s._error IS NULL AND st.role = 'grid_worker' "
    "AND (st.active_to IS NULL OR st.active_to > CURRENT_DATE) "
    "AND g.code = s.grid_code AND g.worker_id IS DISTINCT FROM st.id",
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
            _mark(
                "grid_code IS NOT NULL AND street_code IS NOT NULL AND EXISTS (SELECT 1 FROM "
                "grid g WHERE g.code = stage_load.grid_code AND g.street_code <> stage_load.street_code)",
                "street_code",
                "街道编码与网格所在街道不符 / street_code is not the street of the grid",
            ),
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
        after=_WORKER_ASSIGNMENTS,
    )
)

_register(
    Kind(
        name="buildings",
        table="building",
        references_checked=True,
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
        references_checked=True,
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
        # the H3 cells (migration 0009), computed from the point in the staging frame
        # (loaders.engine._stage_cells) and written with the row
        extra={
            "worker_id": "bigint",
            "worker_street": "text",
            **dict.fromkeys(CELL_COLUMNS, "bigint"),
        },
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
            **{c: f"s.{c}" for c in CELL_COLUMNS},
        },
    )
)

# --- housing, places, facilities -----------------------------------------------------------

#: Resident counts of a housing unit, and the sensitive special-group counts kept apart
#: (housing_special_count: stricter access rules apply to it alone).
HOUSING_COUNTS = (
    "n_registered",
    "n_floating",
    "n_elderly_alone",
    "n_low_income",
    "n_disabled",
    "n_veterans",
    "n_party_members",
)
SPECIAL_COUNTS = (
    "n_released_prisoners",
    "n_community_correction",
    "n_drug_users",
    "n_severe_mental_illness",
    "n_key_youth",
)
_SPECIAL_STAGED = ", ".join(f"coalesce(s.{c}, 0)" for c in SPECIAL_COUNTS)
_SPECIAL_STORED = ", ".join(f"x.{c}" for c in SPECIAL_COUNTS)
_UNIT_OF_ROW = (
    "FROM stage_load s JOIN housing_unit h ON h.building_id = s.building_id "
    "AND h.unit_no = s.unit_no"
)

_register(
    Kind(
        name="housing",
        table="housing_unit",
        help_zh="房屋：楼栋编码、房号、用途、居住状态(自住/出租/借住/空置)、户籍/流动人口及各类人数；"
        "特殊人群人数（刑满释放、社区矫正、吸毒、严重精神障碍、重点青少年）另存",
        help_en="housing units: building code, unit number, use, occupancy (owner, rented, lent, "
        "vacant), registered/floating residents and category counts; special-group counts "
        "kept apart",
        fields={
            "building_code": "text",
            "unit_no": "text",
            "use": "vocab:housing_use",
            "occupancy": "vocab:occupancy",
            **dict.fromkeys(HOUSING_COUNTS, "int"),
            **dict.fromkeys(SPECIAL_COUNTS, "int"),
            "updated_on": "date",
        },
        required=("building_code", "unit_no", "occupancy"),
        geometry=None,
        geometry_required=False,
        key=("building_code", "unit_no"),
        conflict="building_id, unit_no",
        extra={"building_id": "bigint", **AREA_EXTRA},
        derive=(
            # a unit carries its building's codes (composite foreign keys)
            "UPDATE stage_load s SET building_id = b.id, grid_code = b.grid_code, "
            "street_code = b.street_code FROM building b WHERE b.code = s.building_code",
            _mark(
                "building_id IS NULL",
                "building_code",
                "找不到该楼栋编码，请先导入楼栋 / no building with this code: load the buildings "
                "first",
            ),
            # the units' own rules, checked here to name the field (the database checks them
            # again)
            _mark(
                "occupancy = 'vacant' AND coalesce(n_registered, 0) + coalesce(n_floating, 0) > 0",
                "occupancy",
                "空置房屋的居住人数应为0 / a vacant unit cannot have residents",
            ),
            *(
                _mark(
                    f"{c} > coalesce(n_registered, 0) + coalesce(n_floating, 0)",
                    c,
                    "分类人数不能超过户籍与流动人口之和 / a category count cannot exceed the "
                    "registered plus floating residents",
                )
                for c in HOUSING_COUNTS[2:]
            ),
            # checked here, not left to the database: these are written by `after`, outside
            # the per-row bisection
            *(
                _mark(
                    f"{c} NOT BETWEEN 0 AND 50",
                    c,
                    "特殊人群人数应在0到50之间 / a special-group count is between 0 and 50",
                )
                for c in SPECIAL_COUNTS
            ),
        ),
        columns={
            "building_id": "s.building_id",
            "grid_code": "s.grid_code",
            "street_code": "s.street_code",
            "unit_no": "s.unit_no",
            "use": "coalesce(s.use, 'residential')",
            "occupancy": "s.occupancy",
            **{c: f"coalesce(s.{c}, 0)" for c in HOUSING_COUNTS},
        },
        after=(
            # special-group counts: only units with any non-zero count have a row; its date
            # is the file's, else kept while the counts stay the same, else today
            "INSERT INTO housing_special_count (housing_unit_id, grid_code, street_code, "
            f"{', '.join(SPECIAL_COUNTS)}, updated_on) "
            f"SELECT h.id, h.grid_code, h.street_code, {_SPECIAL_STAGED}, "
            "CASE WHEN s.updated_on IS NOT NULL THEN s.updated_on "
            f"WHEN ({_SPECIAL_STORED}) = ({_SPECIAL_STAGED}) THEN x.updated_on "
            f"ELSE CURRENT_DATE END {_UNIT_OF_ROW} "
            "LEFT JOIN housing_special_count x ON x.housing_unit_id = h.id "
            f"WHERE s._error IS NULL AND GREATEST({_SPECIAL_STAGED}) > 0 "
            "ON CONFLICT (housing_unit_id) DO UPDATE SET grid_code = EXCLUDED.grid_code, "
            "street_code = EXCLUDED.street_code, "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in SPECIAL_COUNTS)
            + ", updated_on = EXCLUDED.updated_on WHERE ("
            + ", ".join(
                f"housing_special_count.{c}"
                for c in ("grid_code", "street_code", *SPECIAL_COUNTS, "updated_on")
            )
            + ") IS DISTINCT FROM ("
            + ", ".join(
                f"EXCLUDED.{c}" for c in ("grid_code", "street_code", *SPECIAL_COUNTS, "updated_on")
            )
            + ")",
            # a unit the file gives special-group columns for, all zero: its row goes
            "DELETE FROM housing_special_count x USING stage_load s JOIN housing_unit h "
            "ON h.building_id = s.building_id AND h.unit_no = s.unit_no "
            f"WHERE x.housing_unit_id = h.id AND s._error IS NULL "
            f"AND num_nonnulls({', '.join(f's.{c}' for c in SPECIAL_COUNTS)}) > 0 "
            f"AND GREATEST({_SPECIAL_STAGED}) = 0",
        ),
    )
)

# A key place or facility drawn as an outline is kept as a point inside it.
_POINT_ON_SURFACE = (
    "UPDATE stage_load SET geom = ST_PointOnSurface(geom) "
    "WHERE geom IS NOT NULL AND GeometryType(geom) <> 'POINT'"
)

_register(
    Kind(
        name="places",
        table="key_place",
        help_zh="重点场所/单位：编码、名称、类型(市场、学校、医院…)、地址、点位；网格与街道按位置确定",
        help_en="key places and units: code, name, kind (market, school, hospital…), address, "
        "point; grid and street from the location",
        fields={
            "code": "text",
            "name": "text",
            "kind": "vocab:place_kind",
            "address": "text",
            "grid_code": "text",
            "street_code": "text",
        },
        required=("code", "name", "kind"),
        geometry="point",
        key=("code",),
        derive=(_POINT_ON_SURFACE, *_POINT_AREA),
        columns={
            "code": "s.code",
            "name": "s.name",
            "kind": "s.kind",
            "address": "s.address",
            "grid_code": "s.grid_code",
            "street_code": "s.street_code",
            "geom": "s.geom",
        },
    )
)

_register(
    Kind(
        name="facilities",
        table="facility",
        help_zh="设施：编码、类型(天网/雪亮摄像头、消防栓、应急物资点、AED)、名称、摄像头可视半径(米)、"
        "点位；网格与街道按位置确定",
        help_en="facilities: code, kind (cameras, hydrant, emergency supplies, AED), name, "
        "camera view radius (m), point; grid and street from the location",
        fields={
            "code": "text",
            "kind": "vocab:facility_kind",
            "name": "text",
            "view_radius_m": "float",
            "grid_code": "text",
            "street_code": "text",
        },
        required=("code", "kind"),
        geometry="point",
        key=("code",),
        derive=(
            _mark(
                "(left(kind, 6) = 'camera') <> (view_radius_m IS NOT NULL)",
                "view_radius_m",
                "摄像头须填可视半径，其他设施不填 / a camera needs its view radius, other "
                "facilities have none",
            ),
            _mark(
                "view_radius_m NOT BETWEEN 1 AND 1000",
                "view_radius_m",
                "可视半径应在1到1000米之间 / the view radius is 1 to 1000 m",
            ),
            _POINT_ON_SURFACE,
            *_POINT_AREA,
        ),
        columns={
            "code": "s.code",
            "kind": "s.kind",
            "name": "s.name",
            "view_radius_m": "s.view_radius_m",
            "grid_code": "s.grid_code",
            "street_code": "s.street_code",
            "geom": "s.geom",
        },
    )
)

# --- incident transitions -------------------------------------------------------------------

_register(
    Kind(
        name="transitions",
        table="incident_transition",
        help_zh="事件流转：事件编号、时间、目标状态(编码或名称)、层级、处理人、备注、延期至；"
        "按事件和时间顺序追加，已有的步骤不变",
        help_en="incident transitions: incident code, time, new status (code or label), tier, "
        "actor, note, new due time; appended in time order per incident, steps already "
        "stored are left as they are",
        fields={
            "incident_code": "text",
            "at": "timestamp",
            "to_status": "vocab:incident_status",
            "tier": "vocab:tier",
            "actor": "text",
            "note": "text",
            "new_due_at": "timestamp",
        },
        required=("incident_code", "at", "to_status", "actor"),
        geometry=None,
        geometry_required=False,
        key=("incident_code", "at", "to_status"),
        conflict="incident_id, at, to_status",
        append_only=True,
        extra={"incident_id": "bigint", **AREA_EXTRA},
        derive=(
            "UPDATE stage_load s SET incident_id = i.id, grid_code = i.grid_code, "
            "street_code = i.street_code FROM incident i WHERE i.code = s.incident_code",
            _mark(
                "incident_id IS NULL",
                "incident_code",
                "找不到该事件编号，请先导入事件 / no incident with this code: load the incidents "
                "first",
            ),
            # no tier given: the tier of the step before (in the file, else as stored)
            "UPDATE stage_load s SET tier = coalesce((SELECT p.tier FROM stage_load p "
            "WHERE p.incident_id = s.incident_id AND p.tier IS NOT NULL AND p._error IS NULL "
            "AND (p.at, p._row) < (s.at, s._row) ORDER BY p.at DESC, p._row DESC LIMIT 1), "
            "(SELECT i.tier FROM incident i WHERE i.id = s.incident_id), 'grid') "
            "WHERE s.tier IS NULL AND s._error IS NULL",
            # written in time order per incident (the workflow trigger checks each step
            # against the one before), also when bisection retries a part of the file
            "UPDATE stage_load s SET _row = o.n FROM (SELECT _row AS old, row_number() OVER "
            "(ORDER BY incident_id, at, _row) AS n FROM stage_load) o "
            "WHERE s._row = o.old AND s._row <> o.n",
        ),
        columns={
            "incident_id": "s.incident_id",
            "at": "s.at",
            "to_status": "s.to_status",
            "tier": "s.tier",
            "actor": "s.actor",
            "note": "s.note",
            "new_due_at": "s.new_due_at",
            "grid_code": "s.grid_code",
            "street_code": "s.street_code",
        },
    )
)

# --- patrols and logs -----------------------------------------------------------------------

_register(
    Kind(
        name="patrols",
        table="patrol_fix",
        help_zh="巡查定位点(GPX 轨迹或表格)：人员编码(GPX 取轨迹名称)、定位时间、精度(米)、点位；"
        "网格按位置确定（边界附近可能是邻街网格），街道为人员所属街道",
        help_en="patrol GPS fixes (GPX tracks or tables): worker code (GPX: the track name), "
        "fix time, accuracy (m), point; grid from the location (near a boundary possibly "
        "another street's), street = the worker's",
        fields={"worker_code": "text", "fixed_at": "timestamp", "accuracy_m": "float"},
        required=("worker_code", "fixed_at"),
        geometry="point",
        key=("worker_code", "fixed_at"),
        conflict="worker_id, fixed_at",
        # partitioned: no xmax. A subquery in RETURNING sees the table as it was before the
        # statement, so a row found there was updated, not inserted.
        inserted="NOT EXISTS (SELECT 1 FROM patrol_fix o WHERE o.worker_id = "
        "patrol_fix.worker_id AND o.fixed_at = patrol_fix.fixed_at)",
        extra={"worker_id": "bigint", "worker_street": "text", **AREA_EXTRA},
        derive=(
            *_worker(),
            _mark(
                "accuracy_m NOT BETWEEN 0 AND 100000",
                "accuracy_m",
                "定位精度应在0到100000米之间 / accuracy is 0 to 100,000 m",
            ),
            _GRID_BY_POINT,
            "UPDATE stage_load SET street_code = worker_street",
        ),
        columns={
            "worker_id": "s.worker_id",
            "fixed_at": "s.fixed_at",
            "accuracy_m": "s.accuracy_m",
            "grid_code": "s.grid_code",
            "street_code": "s.street_code",
            "geom": "s.geom",
        },
    )
)

_register(
    Kind(
        name="worklogs",
        table="work_log",
        help_zh="民情日志/工作日志：人员编码、日期、类型(默认民情日志)、网格编码(默认该人员负责的网格)、"
        "内容",
        help_en="work logs: worker code, date, kind (default public-sentiment log), grid code "
        "(default: the worker's grid), text",
        fields={
            "worker_code": "text",
            "log_date": "date",
            "kind": "vocab:log_kind",
            "grid_code": "text",
            "body": "text",
        },
        required=("worker_code", "log_date", "body"),
        geometry=None,
        geometry_required=False,
        key=("worker_code", "log_date", "body"),
        conflict="worker_id, log_date, md5(body)",
        extra={"worker_id": "bigint", "worker_street": "text", "street_code": "text"},
        derive=(
            *_worker(),
            _mark(
                "length(body) > 20000",
                "body",
                "日志内容超过20000字 / the text is longer than 20,000 characters",
            ),
            _GRID_EXISTS,
            "UPDATE stage_load SET street_code = worker_street WHERE _error IS NULL",
            # no grid given: the grid the worker serves (on that day if known), grid worker
            # assignments first
            "UPDATE stage_load s SET grid_code = (SELECT a.grid_code FROM staff_assignment a "
            "WHERE a.staff_id = s.worker_id ORDER BY (a.valid_from <= s.log_date AND "
            "(a.valid_to IS NULL OR a.valid_to >= s.log_date)) DESC, "
            "(a.role = 'grid_worker') DESC, a.valid_from DESC, a.grid_code LIMIT 1) "
            "WHERE s.grid_code IS NULL AND s._error IS NULL",
            _mark(
                "left(grid_code, 9) <> left(street_code, 9)",
                "grid_code",
                "网格不在该人员所属街道 / the grid is not in the worker's street",
            ),
        ),
        columns={
            "worker_id": "s.worker_id",
            "log_date": "s.log_date",
            "kind": "coalesce(s.kind, 'public_sentiment')",
            "grid_code": "s.grid_code",
            "street_code": "s.street_code",
            "body": "s.body",
        },
    )
)
