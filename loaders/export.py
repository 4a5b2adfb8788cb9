"""Exporting one kind from the store to a file that :mod:`loaders.engine` loads back as it was.

Each kind is written with exactly the fields its loader reads (:data:`loaders.kinds.KINDS`;
housing less its special-group fields, see below), under their canonical names, so the file
loads again without a mapping: codes stand in for the store's surrogate ids
(``worker_code``, ``building_code``, ``incident_code``), and the geometry goes the way the
format carries it:

========  ==================================================================================
geojson   native geometry, EPSG:4326 (RFC 7946)
gpkg      native geometry, EPSG:4490 recorded in the GeoPackage (layer named after the kind)
csv       UTF-8 with BOM (Excel in China opens it right); ``lon``/``lat`` columns for points
          (``x``/``y`` in a projected CRS), a ``wkt`` column for polygons and lines
xlsx      the same columns as CSV, through GDAL's XLSX driver
open311   Open311 GeoReport v2 service requests (a JSON array), incidents only
========  ==================================================================================

A building's footprint travels with it: in GeoJSON and GeoPackage a building that has one is
drawn as its footprint, with its own point as ``lon``/``lat`` text beside it (the others
stay points); in CSV and XLSX the footprint is a ``wkt`` column after ``lon``/``lat``. The
loader takes the polygon as the footprint and the coordinates as the point.

What crosses the file boundary is chosen so that a reload is exact, not merely close:
timestamps are ISO 8601 text in local time with their offset (``2026-03-01T08:30:00+08:00``,
microseconds kept), dates ISO text, coordinates and other real numbers the shortest text that
reads back to the same double (in XLSX too: GDAL writes numeric cells with 16 significant
digits, which would move a point by 1e-14 degrees and make a reload count it as updated).

Special groups (特殊人群) never leave below grid level (issue 7): the per-unit special-group
counts of ``housing`` and their date are withheld (:data:`WITHHELD`; a reload of the file
leaves the stored counts as they are), and an export whose rows would carry any
special-group column is refused (:func:`check_no_special_groups`).

Every export carries a watermark (:mod:`store.watermark`: user and time) where the format
has a place every reader ignores, and is recorded in ``audit_log`` (action ``export``: kind,
format, CRS, filters, rows, path, size and SHA-256 of the file, watermark) before the file
takes its name; a refused export is recorded too (``ok`` false, with the reason):

========  ==================================================================================
geojson   a foreign member ``gridone_watermark`` of the FeatureCollection (RFC 7946 §6.1)
gpkg      the layer's description (``gpkg_contents``) and dataset metadata
          (``gpkg_metadata``: ``GRIDONE_WATERMARK*``)
xlsx      document properties (author, last modified by, description, created) and the
          sheet's printed header and footer
csv       nothing: a comment line or an extra column would change what every reader
          reads; the audit row's SHA-256 identifies the file
open311   nothing: GeoReport v2 is a bare JSON array; likewise the SHA-256
========  ==================================================================================

Worker phone numbers (``workers``) leave as the dashboard shows them (issue 7): masked
(``138****1234``, :func:`store.access.mask_phone`) unless the export is made for a
district-role dashboard user, or the row is that user's own record
(:class:`store.access.PhoneView`, the rule of the database's ``staff_phone`` view). A file
with masked numbers does not load back: the loader refuses a masked number as a phone.

``--where`` filters never reach SQL as text: each ``FIELD OP VALUE`` is checked against the
kind's whitelist of filterable fields (:attr:`ExportSpec.filters`) and a fixed set of
operators, its value parsed to the field's type, and compiled to a clause with a bound
parameter on a dialect-quoted column.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from sqlalchemy import Connection, Engine, TextClause, text
from sqlalchemy.engine import Dialect

from loaders import coords
from loaders.kinds import KINDS, Kind
from loaders.sniff import InputError
from store.access import PhoneView, User, audit, phone_view
from store.crs import STORAGE_EPSG, WEB_EPSG
from store.models import HousingSpecialCount, HousingUnit
from store.queries import read_gdf
from store.sheets import guard_formula
from store.watermark import (
    WATERMARK_KEY,
    Watermark,
    finish_xlsx,
    os_user,
    watermark_fields,
)

#: Export formats, in the order ``--help`` lists them.
FORMATS = ("geojson", "gpkg", "csv", "xlsx", "open311")

#: File extension → format, when ``--format`` is not given.
EXTENSIONS = {
    ".geojson": "geojson",
    ".gpkg": "gpkg",
    ".csv": "csv",
    ".txt": "csv",
    ".xlsx": "xlsx",
}

#: Default CRS of each format (the loader reads a CSV/XLSX without ``--crs`` as EPSG:4326).
DEFAULT_EPSG = {
    "geojson": WEB_EPSG,
    "gpkg": STORAGE_EPSG,
    "csv": WEB_EPSG,
    "xlsx": WEB_EPSG,
    "open311": WEB_EPSG,
}

#: Comparison operators ``--where`` accepts (``<>`` is read as ``!=``).
OPERATORS = (">=", "<=", "!=", "<>", "=", ">", "<")

#: GDAL geometry type written for each kind geometry (an empty layer still needs one).
_GEOMETRY_TYPES = {"point": "Point", "polygon": "MultiPolygon", "line": "LineString"}

#: Our incident statuses as Open311 ``status`` (GeoReport v2 knows only open and closed).
OPEN311_STATUS = {"closed": "closed"}  # every other status, and none yet, is "open"


class ExportError(InputError):
    """The export cannot be made as asked (format, CRS or kind); nothing was written."""


class WhereError(ExportError):
    """A ``--where`` condition is not ``FIELD OP VALUE`` over an allowed field."""


class SpecialGroupError(ExportError):
    """The export would carry special-group data below grid level; nothing was written."""


# --- what each kind exports ---------------------------------------------------------------


@dataclass(frozen=True)
class ExportSpec:
    """How one kind is read back out of the store.

    Attributes
    ----------
    sql
        A ``SELECT`` returning every field of the kind under its canonical name, the
        geometry as WKB in EPSG:4490 named ``geom`` (kinds with a geometry), and the
        columns listed in ``filters``/``extra`` that are not fields. Written here from
        constants only; filters are applied around it.
    filters
        Field → type (``text``, ``int``, ``date``, ``timestamp``) of the columns ``--where``
        may compare. Each must be an output column of ``sql``.
    order
        Output columns the rows are sorted by (a stable file for a stable store).
    extra
        Output columns that are not loader fields but that a format needs (Open311's
        status and tier); dropped from the other formats.
    """

    sql: str
    filters: dict[str, str]
    order: tuple[str, ...] = ("code",)
    extra: tuple[str, ...] = ()


#: Resident counts of a housing unit, and the special-group counts kept in their own table.
HOUSING_COUNTS = tuple(c.name for c in HousingUnit.__table__.columns if c.name.startswith("n_"))
SPECIAL_COUNTS = tuple(
    c.name for c in HousingSpecialCount.__table__.columns if c.name.startswith("n_")
)

_AREA_FILTERS = {"street_code": "text", "grid_code": "text", "community_code": "text"}

EXPORTS: dict[str, ExportSpec] = {
    "streets": ExportSpec(
        sql="SELECT a.code, a.name, a.code AS street_code, ST_AsBinary(a.geom) AS geom "
        "FROM admin_unit a WHERE a.level = 'street'",
        filters={"code": "text", "street_code": "text"},
    ),
    "communities": ExportSpec(
        sql="SELECT a.code, a.name, a.parent_code AS street_code, a.code AS community_code, "
        "ST_AsBinary(a.geom) AS geom FROM admin_unit a WHERE a.level = 'community'",
        filters={"code": "text", "street_code": "text", "community_code": "text"},
    ),
    "grids": ExportSpec(
        sql="SELECT g.code, g.name, g.kind, g.households, st.code AS worker_code, "
        "g.valid_from, g.valid_to, g.street_code, g.community_code, g.code AS grid_code, "
        "ST_AsBinary(g.geom) AS geom FROM grid g LEFT JOIN staff st ON st.id = g.worker_id",
        filters={
            "code": "text",
            **_AREA_FILTERS,
            "kind": "text",
            "worker_code": "text",
            "valid_from": "date",
            "valid_to": "date",
        },
    ),
    # a worker's grid: the assignment the workers loader makes (role and start of the
    # worker's own); one per worker, so further assignments do not travel
    "workers": ExportSpec(
        sql="SELECT st.code, st.name, st.role, st.phone, st.street_code, a.grid_code, "
        "st.active_from, st.active_to, left(a.grid_code, 12) AS community_code "
        "FROM staff st LEFT JOIN LATERAL (SELECT sa.grid_code FROM staff_assignment sa "
        "WHERE sa.staff_id = st.id ORDER BY (sa.role = st.role AND sa.valid_from = "
        "st.active_from) DESC, sa.valid_from, sa.grid_code LIMIT 1) a ON TRUE",
        filters={
            "code": "text",
            **_AREA_FILTERS,
            "role": "text",
            "active_from": "date",
            "active_to": "date",
        },
    ),
    "buildings": ExportSpec(
        sql="SELECT b.code, b.address, b.floors, b.use, b.grid_code, b.street_code, "
        "left(b.grid_code, 12) AS community_code, ST_AsBinary(b.footprint) AS footprint, "
        "ST_AsBinary(b.geom) AS geom FROM building b",
        filters={"code": "text", **_AREA_FILTERS, "use": "text", "floors": "int"},
    ),
    "incidents": ExportSpec(
        sql="SELECT i.code, i.category_code, i.source, i.severity, i.title, i.description, "
        "i.address, i.occurred_at, i.reported_at, i.due_at, r.code AS worker_code, "
        "i.grid_code, i.street_code, left(i.grid_code, 12) AS community_code, i.status, "
        "i.tier, i.status_at, i.closed_at, ST_AsBinary(i.geom) AS geom "
        "FROM incident i LEFT JOIN staff r ON r.id = i.reporter_id",
        filters={
            "code": "text",
            **_AREA_FILTERS,
            "category_code": "text",
            "source": "text",
            "severity": "int",
            "status": "text",
            "tier": "text",
            "occurred_at": "timestamp",
            "reported_at": "timestamp",
            "due_at": "timestamp",
            "closed_at": "timestamp",
        },
        order=("reported_at", "code"),
        extra=("status", "tier", "status_at"),
    ),
    # the special-group counts (housing_special_count) stay behind: see WITHHELD
    "housing": ExportSpec(
        sql="SELECT b.code AS building_code, h.unit_no, h.use, h.occupancy, "
        + ", ".join(f"h.{c}" for c in HOUSING_COUNTS)
        + ", h.grid_code, h.street_code, left(h.grid_code, 12) AS community_code "
        "FROM housing_unit h JOIN building b ON b.id = h.building_id",
        filters={"building_code": "text", **_AREA_FILTERS, "use": "text", "occupancy": "text"},
        order=("building_code", "unit_no"),
    ),
    "places": ExportSpec(
        sql="SELECT p.code, p.name, p.kind, p.address, p.grid_code, p.street_code, "
        "left(p.grid_code, 12) AS community_code, ST_AsBinary(p.geom) AS geom FROM key_place p",
        filters={"code": "text", **_AREA_FILTERS, "kind": "text"},
    ),
    "facilities": ExportSpec(
        sql="SELECT f.code, f.kind, f.name, f.view_radius_m, f.grid_code, f.street_code, "
        "left(f.grid_code, 12) AS community_code, ST_AsBinary(f.geom) AS geom FROM facility f",
        filters={"code": "text", **_AREA_FILTERS, "kind": "text"},
    ),
    # steps logged at the same instant keep their order (the loader writes them in file order)
    "transitions": ExportSpec(
        sql="SELECT i.code AS incident_code, t.at, t.to_status, t.tier, t.actor, t.note, "
        "t.new_due_at, t.grid_code, t.street_code, left(t.grid_code, 12) AS community_code, "
        "t.id AS seq FROM incident_transition t JOIN incident i ON i.id = t.incident_id",
        filters={
            "incident_code": "text",
            **_AREA_FILTERS,
            "at": "timestamp",
            "to_status": "text",
            "tier": "text",
        },
        order=("incident_code", "at", "seq"),
    ),
    "patrols": ExportSpec(
        sql="SELECT st.code AS worker_code, p.fixed_at, p.accuracy_m, p.grid_code, "
        "p.street_code, left(p.grid_code, 12) AS community_code, ST_AsBinary(p.geom) AS geom "
        "FROM patrol_fix p JOIN staff st ON st.id = p.worker_id",
        filters={"worker_code": "text", **_AREA_FILTERS, "fixed_at": "timestamp"},
        order=("worker_code", "fixed_at"),
    ),
    "worklogs": ExportSpec(
        sql="SELECT st.code AS worker_code, w.log_date, w.kind, w.grid_code, w.body, "
        "w.street_code, left(w.grid_code, 12) AS community_code, w.id AS seq "
        "FROM work_log w JOIN staff st ON st.id = w.worker_id",
        filters={
            "worker_code": "text",
            **_AREA_FILTERS,
            "log_date": "date",
            "kind": "text",
        },
        order=("worker_code", "log_date", "seq"),
    ),
}


#: Loader fields no export writes, by kind: special-group figures below grid level (issue 7:
#: "never in exports below grid level"). ``updated_on`` of a housing unit is the date of
#: its special-group counts: a unit that has one has special-group residents.
WITHHELD: dict[str, tuple[str, ...]] = {"housing": (*SPECIAL_COUNTS, "updated_on")}

#: Output columns that are special-group data whatever the kind (the counts' own names).
SPECIAL_COLUMNS = frozenset(SPECIAL_COUNTS)

#: The rule quoted when special-group data is withheld or refused.
SPECIAL_RULE = (
    "特殊人群数据只能按网格或更大范围汇总（少于5显示为“<5”），不得以更细的粒度导出 / "
    "special-group figures appear only as counts per grid or larger (under 5 shown as "
    '"<5") and never in exports below grid level'
)


def check_no_special_groups(kind_name: str, columns: Iterable[str]) -> None:
    """Refuse (:class:`SpecialGroupError`, naming the rule) rows that carry a special-group
    column: every export is per record (a unit, a building, a person), below grid level."""
    found = sorted(SPECIAL_COLUMNS.intersection(columns))
    if found:
        raise SpecialGroupError(
            f"{kind_name} 的导出含特殊人群字段 {', '.join(found)}，已拒绝 / the {kind_name} "
            f"export would carry special-group columns ({', '.join(found)}): refused. "
            f"{SPECIAL_RULE}."
        )


def exported_kind(kind: Kind) -> Kind:
    """``kind`` as exports write it: its loader fields less :data:`WITHHELD`."""
    withheld = WITHHELD.get(kind.name, ())
    if not withheld:
        return kind
    fields = {k: v for k, v in kind.fields.items() if k not in withheld}
    return dataclasses.replace(kind, fields=fields)


def spec_for(kind_name: str) -> tuple[Kind, ExportSpec]:
    """The loader kind and the export spec of ``kind_name``.

    Raises
    ------
    ExportError
        When the kind is unknown, or loadable but without an export entry yet.
    """
    if kind_name not in KINDS:
        raise ExportError(
            f"未知数据类型 {kind_name!r} / unknown kind {kind_name!r}; kinds: {', '.join(KINDS)}"
        )
    if kind_name not in EXPORTS:
        raise ExportError(
            f"{kind_name} 暂不支持导出 / {kind_name} cannot be exported yet (no entry in "
            f"loaders.export.EXPORTS); exportable: {', '.join(k for k in KINDS if k in EXPORTS)}"
        )
    return KINDS[kind_name], EXPORTS[kind_name]


# --- --where ------------------------------------------------------------------------------

_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|!=|<>|=|>|<)\s*(.*?)\s*$", re.S)


@dataclass(frozen=True)
class Condition:
    """One checked ``--where`` condition: a whitelisted field, an operator from
    :data:`OPERATORS` and the value parsed to the field's type (bound, never inlined)."""

    field: str
    op: str
    value: Any


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _typed(value: str, ftype: str, fld: str, tz: str) -> Any:
    try:
        if ftype == "int":
            return int(value)
        if ftype == "date":
            return dt.date.fromisoformat(value)
        if ftype == "timestamp":
            stamp = pd.Timestamp(value)
            if stamp is pd.NaT:
                raise ValueError(value)
            if stamp.tzinfo is None:
                stamp = stamp.tz_localize(tz)
            return stamp.to_pydatetime()
    except ValueError:
        example = {"int": "3", "date": "2026-03-01", "timestamp": "2026-03-01 08:00"}[ftype]
        raise WhereError(
            f"--where {fld}：{value!r} 不是有效的值（如 {example}）/ {value!r} is not a valid "
            f"{ftype} for {fld}, e.g. {example}"
        ) from None
    return value


def parse_where(
    conditions: Iterable[str], kind_name: str, *, tz: str = "Asia/Shanghai"
) -> list[Condition]:
    """Check and type ``--where`` conditions (``field=value``, ``field>=value`` …).

    Parameters
    ----------
    conditions
        The raw conditions, combined with AND.
    kind_name
        The kind exported: its :attr:`ExportSpec.filters` are the fields allowed.
    tz
        Time zone of timestamps given without an offset.

    Returns
    -------
    list of Condition

    Raises
    ------
    WhereError
        On anything that is not ``FIELD OP VALUE`` over an allowed field with a value of
        the field's type; the message lists the allowed fields.
    """
    _, spec = spec_for(kind_name)
    allowed = ", ".join(spec.filters)
    out = []
    for raw in conditions:
        m = _CONDITION.match(raw)
        if not m or m.group(1) not in spec.filters:
            what = (
                f"未知字段 {m.group(1)!r} / unknown field {m.group(1)!r}"
                if m
                else f"应为 字段=值 / expected FIELD=VALUE (or >=, <=, >, <, !=), not {raw!r}"
            )
            raise WhereError(
                f"--where {raw!r}: {what}; {kind_name} 可筛选字段 / fields allowed: {allowed}"
            )
        name, op, value = m.group(1), m.group(2), _unquote(m.group(3))
        out.append(
            Condition(name, "!=" if op == "<>" else op, _typed(value, spec.filters[name], name, tz))
        )
    return out


def export_query(
    spec: ExportSpec, conditions: Sequence[Condition], dialect: Dialect
) -> tuple[TextClause, dict[str, Any]]:
    """The statement and bound parameters selecting ``spec``'s rows under ``conditions``.

    Column names come from the spec's whitelist and are quoted through ``dialect``; the
    operator from :data:`OPERATORS`; every value is a bound parameter.
    """
    quote = dialect.identifier_preparer.quote
    clauses, params = [], {}
    for i, c in enumerate(conditions):
        if c.field not in spec.filters or c.op not in OPERATORS:  # built by parse_where
            raise WhereError(f"condition not allowed: {c}")
        clauses.append(f"e.{quote(c.field)} {c.op} :w{i}")
        params[f"w{i}"] = c.value
    where = " AND ".join(clauses) or "TRUE"
    order = ", ".join(f"e.{quote(c)}" for c in spec.order)
    # only the spec's constant SQL, whitelisted quoted names and fixed operators are joined
    sql = "SELECT * FROM (" + spec.sql + ") AS e WHERE " + where + " ORDER BY " + order  # noqa: S608
    return text(sql), params


# --- the export ---------------------------------------------------------------------------


@dataclass
class ExportResult:
    """What an export wrote.

    Attributes
    ----------
    kind, path, format
        The kind, the file written and its format.
    rows
        Rows written (0: a valid empty file).
    crs
        The coordinate system of the file's geometry (None for kinds without one).
    warnings
        What the user should know (bilingual).
    sha256
        The file's SHA-256, as the audit log records it.
    """

    kind: str
    path: Path
    format: str
    rows: int
    crs: str | None
    warnings: list[str] = field(default_factory=list)
    sha256: str | None = None

    def summary(self) -> str:
        """A one-screen bilingual summary."""
        where = f"{self.path} ({self.format}{', ' + self.crs if self.crs else ''})"
        if self.rows == 0:
            head = (
                f"没有符合条件的数据，已写出空文件 / nothing matched: wrote an empty file {where}"
            )
        else:
            head = f"已导出 {self.rows:,} 行 / exported {self.rows:,} {self.kind} to {where}"
        lines = [head, *(f"  ! {w}" for w in self.warnings)]
        if self.sha256:
            lines.append(f"  已记入审计日志 / recorded in the audit log: sha256 {self.sha256}")
        return "\n".join(lines)


def format_for(path: Path, fmt: str | None, kind_name: str) -> str:
    """The format asked for, else the one ``path``'s extension names.

    Raises
    ------
    ExportError
        For an unknown format or extension, or Open311 for anything but incidents.
    """
    if fmt is None:
        fmt = EXTENSIONS.get(path.suffix.lower())
        if fmt is None:
            raise ExportError(
                f"{path.name}: 无法从扩展名判断格式，请用 --format / cannot tell the format from "
                f"the extension; give --format ({', '.join(FORMATS)})"
            )
    if fmt not in FORMATS:
        raise ExportError(
            f"未知格式 {fmt!r} / unknown format {fmt!r}; formats: {', '.join(FORMATS)}"
        )
    if fmt == "open311" and kind_name != "incidents":
        raise ExportError(
            "Open311 只用于事件 / Open311 GeoReport v2 carries incidents only; "
            f"export {kind_name} as geojson, gpkg, csv or xlsx"
        )
    return fmt


def target_crs(fmt: str, crs: str | None) -> coords.CrsSpec:
    """The CRS to write ``fmt`` in: ``--crs`` if given (checked against what the format
    can record), else the format's default (:data:`DEFAULT_EPSG`).

    GCJ-02 and BD-09 have no EPSG code, so a GeoJSON or GeoPackage could only label them
    WGS84 — a file that silently sits hundreds of metres off for every other reader. They
    are refused there and offered in CSV/XLSX (reload with ``--crs gcj02``).
    """
    try:
        spec = coords.parse_crs(crs) if crs else coords.CrsSpec("epsg", DEFAULT_EPSG[fmt])
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    if fmt == "open311" and spec != coords.CrsSpec("epsg", WEB_EPSG):
        raise ExportError("Open311 的 lat/long 是 WGS84 / Open311 lat/long are WGS84: drop --crs")
    if fmt in ("geojson", "gpkg") and spec.kind != "epsg":
        raise ExportError(
            f"{spec} 没有 EPSG 编码，{fmt} 文件无法记录 / {spec} has no EPSG code, so a {fmt} "
            f"file would claim WGS84 for offset coordinates; export csv or xlsx with --crs "
            f"{spec} and load it back with --crs {spec}"
        )
    return spec


def export_kind(
    engine: Engine,
    kind_name: str,
    path: Path,
    *,
    fmt: str | None = None,
    crs: str | None = None,
    where: Iterable[str] = (),
    tz: str = "Asia/Shanghai",
    watermark: Watermark | None = None,
    user: User | None = None,
    via: str = "python",
    phones: PhoneView | None = None,
) -> ExportResult:
    """Export the rows of ``kind_name`` matching ``where`` to ``path``, watermarked, and
    record it in ``audit_log``.

    Parameters
    ----------
    engine
        The store.
    kind_name
        A kind of :data:`loaders.kinds.KINDS` with an entry in :data:`EXPORTS`.
    path
        The file to write; replaced only once the new one is complete and audited.
    fmt
        One of :data:`FORMATS`; default from the extension.
    crs
        Target CRS (``--crs``: EPSG code, ``gcj02``, ``bd09``); default per format.
    where
        ``--where`` conditions (:func:`parse_where`), combined with AND.
    tz
        Time zone timestamps are written in (with their offset) and ``--where`` timestamps
        without an offset are read in.
    watermark
        Who the file is made for, and when (default: the OS user, now).
    user
        The dashboard user exporting, if any (the audit row's role and scope).
    via
        What made the export, for the audit row (``cli``, ``dashboard``…).
    phones
        Whose worker phone numbers the file carries in full; default: those the user
        (``user``, else the dashboard login named by the watermark) may see
        (:func:`store.access.phone_view`: all for the district role, else only their own).

    Returns
    -------
    ExportResult

    Raises
    ------
    ExportError
        When the kind, format, CRS or a condition is not allowed, or the rows would carry
        special-group data (:class:`SpecialGroupError`); nothing is written. A refusal
        after the kind is known is recorded in the audit log (``ok`` false).
    """
    watermark = watermark or Watermark.now(os_user())
    detail: dict[str, Any] = {
        "via": via,
        "kind": kind_name,
        "format": fmt,
        "crs": crs,
        "where": list(where),
        "out": str(path.resolve()),
        "watermark": watermark.as_dict(),
    }
    try:
        done = _export(engine, kind_name, path, fmt, crs, tz, watermark, user, detail, phones)
    except ExportError as exc:
        with engine.begin() as conn:
            _audit_export(conn, user, watermark, {**detail, "refused": str(exc)}, ok=False)
        raise
    return done


def _audit_export(
    conn: Connection, user: User | None, watermark: Watermark, detail: dict[str, Any], *, ok: bool
) -> None:
    audit(conn, "export", user=user, login=watermark.login, ok=ok, detail=detail)


def _export(
    engine: Engine,
    kind_name: str,
    path: Path,
    fmt: str | None,
    crs: str | None,
    tz: str,
    watermark: Watermark,
    user: User | None,
    detail: dict[str, Any],
    phones: PhoneView | None,
) -> ExportResult:
    """:func:`export_kind` once the audit detail is started: checks, reads, writes the
    file under a temporary name, audits it, gives it its name."""
    kind, spec = spec_for(kind_name)
    kind = exported_kind(kind)
    fmt = format_for(path, fmt, kind_name)
    detail["format"] = fmt
    target = target_crs(fmt, crs) if kind.geometry else None
    conditions = parse_where(detail["where"], kind_name, tz=tz)
    stmt, params = export_query(spec, conditions, engine.dialect)
    with engine.connect() as conn:
        if kind.geometry:
            frame: pd.DataFrame = read_gdf(conn, stmt, params, crs=STORAGE_EPSG)
        else:
            result = conn.execute(stmt, params)
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        if "phone" in frame.columns and phones is None:
            phones = phone_view(conn, user.login if user else watermark.login)
    check_no_special_groups(kind_name, frame.columns)
    if kind.footprints:
        frame["footprint"] = shapely.from_wkb(frame["footprint"].to_numpy(dtype=object))
    missing = [f for f in kind.fields if f not in frame.columns]
    if missing:  # the spec drifted from the kind: a bug here, not the user's
        raise RuntimeError(f"EXPORTS[{kind_name!r}] does not select {missing}")
    done = ExportResult(kind_name, path, fmt, len(frame), str(target) if target else None)
    if "phone" in frame.columns and phones is not None:
        detail["phones"] = _mask_phones(frame, phones, done)
    if WITHHELD.get(kind_name):
        done.warnings.append(
            f"未导出特殊人群字段 {', '.join(WITHHELD[kind_name])}；再导入本文件不会改变库中的"
            f"特殊人群数据 / withheld: {', '.join(WITHHELD[kind_name])} (special groups are "
            "never exported below grid level); loading this file back leaves the stored "
            "special-group counts as they are"
        )
    if len(frame) and kind.geometry and fmt in ("csv", "xlsx") and kind.geometry != "point":
        done.warnings += _long_wkt_warning(frame, fmt)
    if fmt in ("csv", "open311"):
        done.warnings.append(
            f"{fmt} 文件内无处放置水印，已在审计日志中记录其 SHA-256 / a {fmt} file has no "
            "place for the watermark: the audit log records its SHA-256 instead"
        )
    writer = WRITERS[fmt]
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.partial{path.suffix}")
    partial.unlink(missing_ok=True)
    try:
        writer(frame, kind, target, partial, tz, watermark)
        with partial.open("rb") as f:
            done.sha256 = hashlib.file_digest(f, "sha256").hexdigest()
        detail.update(
            crs=done.crs,
            rows=done.rows,
            bytes=partial.stat().st_size,
            sha256=done.sha256,
            withheld=list(WITHHELD.get(kind_name, ())),
        )
        with engine.begin() as conn:  # recorded before the file takes its name
            _audit_export(conn, user, watermark, detail, ok=True)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return done


def _mask_phones(frame: pd.DataFrame, phones: PhoneView, done: ExportResult) -> str:
    """Mask in ``frame`` the phone numbers ``phones`` does not show in full; say so in
    ``done``'s warnings. Returns what the audit row records: ``full``, ``masked`` or
    ``masked_but_own``."""
    frame["phone"] = [phones.show(c, p) for c, p in zip(frame["code"], frame["phone"], strict=True)]
    if phones.full:
        return "full"
    if frame["phone"].notna().any():
        done.warnings.append(
            "手机号已隐去中间四位（仅区级用户或本人可见完整号码）；本文件不能再导入手机号 / "
            "phone numbers are masked (138****1234): only a district-role user sees them all, "
            "anyone else only their own; the masked numbers do not load back"
        )
    return "masked_but_own" if phones.own else "masked"


def _long_wkt_warning(frame: pd.DataFrame, fmt: str) -> list[str]:
    """Excel shows at most 32,767 characters in a cell: longer WKT is cut there."""
    lengths = shapely.to_wkt(np.asarray(frame.geometry.values), rounding_precision=-1)
    n = int(sum(len(w) > 32_767 for w in lengths))
    if not n:
        return []
    return [
        f"{n} 个面的 WKT 超过 32767 字符，Excel 中会被截断，请用 gpkg / {n} polygons have WKT "
        f"longer than Excel's 32,767-character cell: use gpkg to edit them in a GIS"
    ]


# --- values and geometry as text ------------------------------------------------------------


def _text_value(value: Any, ftype: str, tz: str) -> str | None:
    """One value as the loader reads it back exactly."""
    if value is None or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return None
    if ftype == "timestamp":
        return pd.Timestamp(value).tz_convert(tz).isoformat()
    if ftype == "date":
        return value.isoformat()
    if ftype == "int":
        return str(int(value))
    if ftype == "float":
        return repr(float(value))
    if ftype == "bool":
        return "true" if value else "false"
    return str(value)


def _field_type(kind: Kind, name: str) -> str:
    ftype = kind.fields.get(name, "text")
    return "text" if ftype.startswith("vocab:") else ftype


def _as_text(frame: pd.DataFrame, columns: Sequence[str], kind: Kind, tz: str) -> pd.DataFrame:
    """``columns`` of ``frame`` as text (None for missing)."""
    return pd.DataFrame(
        {
            c: pd.Series(
                [_text_value(v, _field_type(kind, c), tz) for v in frame[c].tolist()],
                index=frame.index,
                dtype=object,
            )
            for c in columns
        },
        index=frame.index,
    )


def _native(frame: pd.DataFrame, kind: Kind, tz: str) -> pd.DataFrame:
    """The kind's fields for formats with typed attributes (GeoJSON, GeoPackage, XLSX):
    whole numbers as nullable integers, everything else as exact text."""
    out = _as_text(frame, list(kind.fields), kind, tz)
    for name in kind.fields:
        if _field_type(kind, name) == "int":
            out[name] = pd.array(
                [None if v is None else int(v) for v in out[name].tolist()], dtype="Int64"
            )
    return out


def _reprojected(
    frame: pd.DataFrame, target: coords.CrsSpec, column: str | None = None
) -> np.ndarray:
    """The geometries of ``frame`` (EPSG:4490) in ``target``; ``column``: another geometry
    column than the frame's geometry (a building's footprint)."""
    geoms = np.asarray((frame[column] if column else frame.geometry).values, dtype=object)
    if target == coords.STORAGE_CRS or not len(geoms):
        return geoms

    def move(xy: np.ndarray) -> np.ndarray:
        x, y = coords.from_storage(xy[:, 0], xy[:, 1], target)
        return np.column_stack([x, y])

    return shapely.transform(geoms, move)


def _is_projected(target: coords.CrsSpec) -> bool:
    if target.kind != "epsg" or target.epsg is None:
        return False
    from pyproj import CRS

    return bool(CRS.from_epsg(target.epsg).is_projected)


def _table(frame: pd.DataFrame, kind: Kind, target: coords.CrsSpec | None, tz: str) -> pd.DataFrame:
    """The CSV/XLSX table: the kind's fields as text, then coordinate or WKT columns."""
    out = _as_text(frame, list(kind.fields), kind, tz)
    if kind.geometry is None or target is None:
        return out
    geoms = _reprojected(frame, target)
    if kind.geometry == "point":
        out = pd.concat([out, _xy_text(geoms, target, out.index)], axis=1)
        if kind.footprints:  # the footprint beside the point, as WKT
            out["wkt"] = _wkt(_reprojected(frame, target, "footprint"))
    else:
        out["wkt"] = _wkt(geoms)
    return out


def _wkt(geoms: np.ndarray) -> list[str | None]:
    """Exact WKT (every digit of each double), None for a missing geometry."""
    return [None if g is None else shapely.to_wkt(g, rounding_precision=-1) for g in geoms]


def _xy_text(points: np.ndarray, target: coords.CrsSpec, index: pd.Index) -> pd.DataFrame:
    """``lon``/``lat`` (``x``/``y`` in a projected CRS) of points as the shortest text that
    reads back to the same double; None for a missing point."""
    xname, yname = ("x", "y") if _is_projected(target) else ("lon", "lat")
    missing = shapely.is_missing(points)
    xs, ys = shapely.get_x(points), shapely.get_y(points)
    return pd.DataFrame(
        {
            xname: [None if m else repr(float(v)) for m, v in zip(missing, xs, strict=True)],
            yname: [None if m else repr(float(v)) for m, v in zip(missing, ys, strict=True)],
        },
        index=index,
        dtype=object,
    )


# --- writers --------------------------------------------------------------------------------

Writer = Callable[[pd.DataFrame, Kind, "coords.CrsSpec | None", Path, str, Watermark], None]


def _write_vector(
    frame: pd.DataFrame,
    kind: Kind,
    target: coords.CrsSpec | None,
    path: Path,
    tz: str,
    *,
    driver: str,
    layer: str | None = None,
    **options: Any,
) -> None:
    """Write through GDAL; ``options`` go to ``pyogrio.write_dataframe`` (the watermark's
    layer options and metadata)."""
    attrs = _native(frame, kind, tz)
    if kind.geometry is None or target is None:  # a table without geometry (workers)
        pyogrio.write_dataframe(attrs, path, driver=driver, layer=layer, **options)
        return
    geoms = _reprojected(frame, target)
    geometry_type = _GEOMETRY_TYPES[kind.geometry]
    if kind.footprints:
        # a building with a footprint is drawn as it (what a GIS user expects to see), its
        # point travelling as lon/lat text beside it; the others stay points
        attrs = pd.concat([attrs, _xy_text(geoms, target, attrs.index)], axis=1)
        footprints = _reprojected(frame, target, "footprint")
        has = ~shapely.is_missing(footprints)
        if has.any():
            geoms = np.where(has, footprints, geoms)
            geometry_type = "Unknown"
    gdf = gpd.GeoDataFrame(attrs, geometry=gpd.GeoSeries(geoms, index=attrs.index))
    gdf = gdf.set_crs(target.epsg, allow_override=True)
    pyogrio.write_dataframe(
        gdf,
        path,
        driver=driver,
        layer=layer,
        geometry_type=geometry_type,
        promote_to_multi=kind.geometry == "polygon",
        **options,
    )


def _write_geojson(
    frame: pd.DataFrame,
    kind: Kind,
    target: coords.CrsSpec | None,
    path: Path,
    tz: str,
    watermark: Watermark,
) -> None:
    """GeoJSON (17 significant digits, GDAL's default, so coordinates read back exactly);
    the watermark as the collection's foreign member :data:`WATERMARK_KEY`."""
    member = json.dumps({WATERMARK_KEY: watermark_fields(watermark)}, ensure_ascii=False)
    _write_vector(
        frame,
        kind,
        target,
        path,
        tz,
        driver="GeoJSON",
        layer_options={"FOREIGN_MEMBERS_COLLECTION": member},
    )


def _write_gpkg(
    frame: pd.DataFrame,
    kind: Kind,
    target: coords.CrsSpec | None,
    path: Path,
    tz: str,
    watermark: Watermark,
) -> None:
    """GeoPackage, one layer named after the kind, its CRS recorded; the watermark as the
    layer's description and as dataset metadata (``gpkg_metadata``)."""
    _write_vector(
        frame,
        kind,
        target,
        path,
        tz,
        driver="GPKG",
        layer=kind.name,
        layer_options={"DESCRIPTION": watermark.bilingual()},
        dataset_metadata={
            f"{WATERMARK_KEY.upper()}_{k.upper()}": v
            for k, v in watermark_fields(watermark).items()
        },
    )


def _write_csv(
    frame: pd.DataFrame,
    kind: Kind,
    target: coords.CrsSpec | None,
    path: Path,
    tz: str,
    watermark: Watermark,
) -> None:
    """CSV in UTF-8 with BOM: Excel in China reads a BOM-less file as GBK. No watermark: see
    the module's table. Text cells that Excel would run as a formula (``=HYPERLINK(…)``
    typed into an incident's description) get a leading ``'`` (OWASP's advice on CSV
    injection); the loader takes it off again."""
    table = _table(frame, kind, target, tz)
    for name in kind.fields:
        if name in table and _field_type(kind, name) == "text":
            table[name] = table[name].map(guard_formula)
    table.to_csv(path, index=False, encoding="utf-8-sig")


def _write_xlsx(
    frame: pd.DataFrame,
    kind: Kind,
    target: coords.CrsSpec | None,
    path: Path,
    tz: str,
    watermark: Watermark,
) -> None:
    """XLSX through GDAL: whole numbers as number cells, everything else (codes, times,
    coordinates) as text cells, so nothing is rounded or turned into scientific notation.
    The watermark goes into the document properties and the sheet's printed header and
    footer (:func:`store.watermark.finish_xlsx`)."""
    table = _table(frame, kind, target, tz)
    for name in kind.fields:
        if _field_type(kind, name) == "int":
            table[name] = pd.array(
                [None if v is None else int(v) for v in table[name].tolist()], dtype="Int64"
            )
    pyogrio.write_dataframe(table, path, driver="XLSX", layer=kind.name)
    finish_xlsx(path, watermark, list(table.columns) if table.empty else None)


def _write_open311(
    frame: pd.DataFrame,
    kind: Kind,
    target: coords.CrsSpec | None,
    path: Path,
    tz: str,
    watermark: Watermark,
) -> None:
    """Open311 GeoReport v2 service requests (no watermark: see the module's table).
    ``service_name`` is the incident's title (our Open311 reader maps it back to
    ``title``); ``expected_datetime`` is the deadline, ``updated_datetime`` the time of the
    last status change, ``agency_responsible`` the tier now handling it."""

    def stamp(v: Any) -> str | None:
        return _text_value(v, "timestamp", tz)

    geoms = _reprojected(frame, target) if target is not None else np.array([])
    requests = []
    for i, row in enumerate(frame.itertuples(index=False)):
        g = geoms[i] if len(geoms) else None
        requests.append(
            {
                "service_request_id": row.code,
                "status": OPEN311_STATUS.get(row.status or "", "open"),
                "service_code": row.category_code,
                "service_name": row.title,
                "description": row.description,
                "agency_responsible": row.tier,
                "requested_datetime": stamp(row.reported_at),
                "updated_datetime": stamp(row.status_at),
                "expected_datetime": stamp(row.due_at),
                "address": row.address,
                "lat": None if g is None else float(shapely.get_y(g)),
                "long": None if g is None else float(shapely.get_x(g)),
            }
        )
    path.write_text(json.dumps(requests, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


WRITERS: dict[str, Writer] = {
    "geojson": _write_geojson,
    "gpkg": _write_gpkg,
    "csv": _write_csv,
    "xlsx": _write_xlsx,
    "open311": _write_open311,
}


def filters_help() -> str:
    """``--where`` fields by kind, for ``--help``."""
    lines = ["可筛选字段 / --where fields by kind:"]
    for name in KINDS:
        if name in EXPORTS:
            lines.append(f"  {name:<12} {', '.join(EXPORTS[name].filters)}")
    return "\n".join(lines)
