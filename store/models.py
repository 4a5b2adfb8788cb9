"""The schema: SQLAlchemy 2 + GeoAlchemy2 models of the grid-governance store.

Conventions (see README, "The store"):

* Geometries are stored in CGCS2000 geographic coordinates, EPSG:4490 (:data:`SRID`).
  Metric work reprojects to the CGCS2000 3-degree Gauss-Krüger zone of the area
  (:mod:`store.crs`) or uses geography; never degrees.
* Every row that belongs to an area carries ``street_code`` (12 digits) and, where it lies in
  a grid, ``grid_code`` (15 digits = community code + 3-digit sequence). Access rules key on
  them.
* Codes follow the national statistical area codes (统计用区划代码): district
  ``DDDDDD000000``, street ``DDDDDDSSS000``, community ``DDDDDDSSSCCC``.
* The incident's ``status``, ``tier``, ``status_at``, ``closed_at`` and ``extended_due_at``
  are derived from the append-only ``incident_transition`` log by database triggers
  (migration 0001); writing them directly is refused.
* Vocabulary columns (kinds, roles, statuses) are text with CHECK constraints; their
  Chinese and English labels live in :mod:`store.vocab`.

The migrations in ``store/migrations`` create exactly this schema plus triggers, views and
partitions; ``tests/test_migrations.py`` fails when the two drift apart.
"""

from __future__ import annotations

import datetime as dt

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Computed,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from store import vocab

#: Storage CRS: CGCS2000 geographic (EPSG:4490).
SRID = 4490

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so constraint names are stable and
    :mod:`store.errors` can explain each one."""

    metadata = MetaData(naming_convention=NAMING)


def _in(column: str, values: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


def _geom(kind: str, *, nullable: bool = False) -> Mapped:
    # spatial_index=False: indexes are declared explicitly below so their names are ours.
    return mapped_column(Geometry(kind, srid=SRID, spatial_index=False), nullable=nullable)


def _in_china(col: str = "geom") -> str:
    """Bounding-box guard: CGCS2000 longitude/latitude within China's extent.

    Catches swapped latitude/longitude and projected metres stored as degrees."""
    return (
        f"ST_XMin({col}) >= 73 AND ST_XMax({col}) <= 136 "
        f"AND ST_YMin({col}) >= 3 AND ST_YMax({col}) <= 54"
    )


STREET_CODE_CK = r"street_code ~ '^\d{9}000$' AND street_code !~ '^\d{6}000000$'"
GRID_MATCHES_STREET_CK = "grid_code IS NULL OR left(grid_code, 9) = left(street_code, 9)"
GRID_CODE_CK = r"grid_code IS NULL OR grid_code ~ '^\d{15}$'"


def _area_checks(
    table: str,
    *,
    geom: str | None = "geom",
    grid_fk: bool = False,
    grid_in_street: bool = True,
) -> tuple:
    """Rules every row that belongs to an area obeys: well-formed street and grid codes that
    agree with each other, a street that exists (and the grid, with ``grid_fk``; other
    tables declare the grid foreign key on the column), a valid non-empty geometry in China.
    ``grid_in_street=False`` where the grid is where a thing lies and the street who owns it
    (a patrol fix just across the boundary of the worker's street).
    """
    rules: list = [
        CheckConstraint(STREET_CODE_CK, name="street_code_format"),
        CheckConstraint(GRID_CODE_CK, name="grid_code_format"),
        ForeignKeyConstraint(["street_code"], ["admin_unit.code"]),
    ]
    if grid_in_street:
        rules.append(CheckConstraint(GRID_MATCHES_STREET_CK, name="grid_in_street"))
    if grid_fk:
        rules.append(ForeignKeyConstraint(["grid_code"], ["grid.code"]))
    if geom:
        rules += [
            CheckConstraint(f"ST_IsValid({geom}) AND NOT ST_IsEmpty({geom})", name="geom_valid"),
            CheckConstraint(_in_china(geom), name="geom_in_china"),
        ]
    return tuple(rules)


# --- jurisdiction ---------------------------------------------------------------------


class AdminUnit(Base):
    """District (区), street (街道/镇) or community (社区/村) with its boundary."""

    __tablename__ = "admin_unit"
    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    level: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("admin_unit.code"))
    geom = _geom("MULTIPOLYGON")
    __table_args__ = (
        CheckConstraint(_in("level", vocab.ADMIN_LEVELS), name="level"),
        CheckConstraint(r"code ~ '^\d{12}$'", name="code_format"),
        CheckConstraint(
            "(level = 'district' AND code ~ '000000$' AND parent_code IS NULL) OR "
            "(level = 'street' AND code ~ '000$' AND code !~ '000000$' "
            " AND parent_code = left(code, 6) || '000000') OR "
            "(level = 'community' AND code !~ '000$' AND parent_code = left(code, 9) || '000')",
            name="code_matches_level",
        ),
        CheckConstraint("length(btrim(name)) > 0", name="name_not_blank"),
        CheckConstraint("ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name="geom_valid"),
        CheckConstraint(_in_china(), name="geom_in_china"),
        Index("ix_admin_unit_geom", "geom", postgresql_using="gist"),
        Index("ix_admin_unit_parent_code", "parent_code"),
    )


class Grid(Base):
    """A grid (网格): the smallest management unit, with one responsible grid worker."""

    __tablename__ = "grid"
    code: Mapped[str] = mapped_column(String(15), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text, server_default="urban")
    community_code: Mapped[str] = mapped_column(ForeignKey("admin_unit.code"))
    street_code: Mapped[str] = mapped_column(
        String(12), Computed("left(code, 9) || '000'", persisted=True)
    )
    households: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    worker_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    geom = _geom("MULTIPOLYGON")
    __table_args__ = (
        CheckConstraint(r"code ~ '^\d{15}$'", name="code_format"),
        CheckConstraint("left(code, 12) = community_code", name="code_in_community"),
        CheckConstraint(_in("kind", vocab.GRID_KINDS), name="kind"),
        CheckConstraint("households BETWEEN 0 AND 100000", name="households_range"),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="valid_period"),
        CheckConstraint("length(btrim(name)) > 0", name="name_not_blank"),
        CheckConstraint("ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name="geom_valid"),
        CheckConstraint(_in_china(), name="geom_in_china"),
        Index("ix_grid_geom", "geom", postgresql_using="gist"),
        Index("ix_grid_community_code", "community_code"),
        Index("ix_grid_street_code", "street_code"),
    )


class Staff(Base):
    """A grid worker or support-role member (网格员, 督导员, 网格警员, 消防员, 监督员, 志愿者…)."""

    __tablename__ = "staff"
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    street_code: Mapped[str] = mapped_column(ForeignKey("admin_unit.code"))
    active_from: Mapped[dt.date] = mapped_column(Date)
    active_to: Mapped[dt.date | None] = mapped_column(Date)
    __table_args__ = (
        UniqueConstraint("id", "street_code"),  # target of (worker_id, street_code) keys
        CheckConstraint(_in("role", vocab.STAFF_ROLES), name="role"),
        CheckConstraint(r"phone IS NULL OR phone ~ '^1[3-9]\d{9}$'", name="phone_format"),
        CheckConstraint(STREET_CODE_CK, name="street_code_format"),
        CheckConstraint("active_to IS NULL OR active_to >= active_from", name="active_period"),
        CheckConstraint("length(btrim(name)) > 0", name="name_not_blank"),
        Index("ix_staff_street_code", "street_code"),
    )


class StaffAssignment(Base):
    """Which grid(s) a staff member serves, in which role, and when."""

    __tablename__ = "staff_assignment"
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    grid_code: Mapped[str] = mapped_column(ForeignKey("grid.code"))
    street_code: Mapped[str] = mapped_column(String(12))
    role: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_to: Mapped[dt.date | None] = mapped_column(Date)
    __table_args__ = (
        UniqueConstraint("staff_id", "grid_code", "role", "valid_from"),
        CheckConstraint(_in("role", vocab.STAFF_ROLES), name="role"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_period"),
        ForeignKeyConstraint(["staff_id", "street_code"], ["staff.id", "staff.street_code"]),
        *_area_checks("staff_assignment", geom=None),
        Index("ix_staff_assignment_grid_code", "grid_code"),
    )


# --- buildings and housing --------------------------------------------------------------


class Building(Base):
    """A building (楼栋): a point, optionally its footprint."""

    __tablename__ = "building"
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    grid_code: Mapped[str | None] = mapped_column(ForeignKey("grid.code"))
    street_code: Mapped[str] = mapped_column(String(12))
    address: Mapped[str] = mapped_column(Text)
    floors: Mapped[int] = mapped_column(SmallInteger)
    use: Mapped[str] = mapped_column(Text)
    geom = _geom("POINT")
    footprint = _geom("MULTIPOLYGON", nullable=True)
    __table_args__ = (
        # targets of the housing units' (building_id, street/grid code) keys
        UniqueConstraint("id", "street_code"),
        UniqueConstraint("id", "grid_code"),
        CheckConstraint(_in("use", vocab.BUILDING_USES), name="use"),
        CheckConstraint("floors BETWEEN 1 AND 200", name="floors_range"),
        CheckConstraint(
            "footprint IS NULL OR (ST_IsValid(footprint) AND ST_Intersects(footprint, geom))",
            name="footprint_valid",
        ),
        *_area_checks("building"),
        Index("ix_building_geom", "geom", postgresql_using="gist"),
        Index("ix_building_footprint", "footprint", postgresql_using="gist"),
        Index("ix_building_grid_code", "grid_code"),
        Index("ix_building_street_code", "street_code"),
    )


class HousingUnit(Base):
    """A housing unit (房屋 / 实有房屋) with resident counts by category.

    Counts only: no resident names or ID numbers are stored in this release."""

    __tablename__ = "housing_unit"
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("building.id", ondelete="CASCADE"))
    grid_code: Mapped[str | None] = mapped_column(String(15))
    street_code: Mapped[str] = mapped_column(String(12))
    unit_no: Mapped[str] = mapped_column(Text)
    use: Mapped[str] = mapped_column(Text)
    occupancy: Mapped[str] = mapped_column(Text)
    rented: Mapped[bool] = mapped_column(Boolean, Computed("occupancy = 'rented'", persisted=True))
    n_registered: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    n_floating: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    n_elderly_alone: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    n_low_income: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    n_disabled: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    n_veterans: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    n_party_members: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    __table_args__ = (
        UniqueConstraint("building_id", "unit_no"),
        UniqueConstraint("id", "street_code"),
        UniqueConstraint("id", "grid_code"),
        # a unit carries its building's codes; re-gridding a building carries its units along
        ForeignKeyConstraint(
            ["building_id", "street_code"],
            ["building.id", "building.street_code"],
            onupdate="CASCADE",
        ),
        ForeignKeyConstraint(
            ["building_id", "grid_code"],
            ["building.id", "building.grid_code"],
            onupdate="CASCADE",
        ),
        CheckConstraint(_in("use", vocab.HOUSING_USES), name="use"),
        CheckConstraint(_in("occupancy", vocab.OCCUPANCY), name="occupancy"),
        CheckConstraint(
            "n_registered BETWEEN 0 AND 200 AND n_floating BETWEEN 0 AND 200",
            name="residents_range",
        ),
        CheckConstraint(
            "LEAST(n_elderly_alone, n_low_income, n_disabled, n_veterans, n_party_members) >= 0 "
            "AND GREATEST(n_elderly_alone, n_low_income, n_disabled, n_veterans, "
            "n_party_members) <= n_registered + n_floating",
            name="category_counts",
        ),
        CheckConstraint(
            "occupancy <> 'vacant' OR n_registered + n_floating = 0", name="vacant_is_empty"
        ),
        *_area_checks("housing_unit", geom=None, grid_fk=True),
        Index("ix_housing_unit_grid_code", "grid_code"),
        Index("ix_housing_unit_street_code", "street_code"),
    )


class HousingSpecialCount(Base):
    """Counts of the sensitive special groups (特殊人群) per housing unit.

    Kept apart from :class:`HousingUnit` so that stricter access rules can apply to it alone.
    Counts only, never persons."""

    __tablename__ = "housing_special_count"
    housing_unit_id: Mapped[int] = mapped_column(
        ForeignKey("housing_unit.id", ondelete="CASCADE"), primary_key=True
    )
    grid_code: Mapped[str | None] = mapped_column(String(15))
    street_code: Mapped[str] = mapped_column(String(12))
    n_released_prisoners: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    n_community_correction: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    n_drug_users: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    n_severe_mental_illness: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    n_key_youth: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    updated_on: Mapped[dt.date] = mapped_column(Date)
    __table_args__ = (
        CheckConstraint(
            "LEAST(n_released_prisoners, n_community_correction, n_drug_users, "
            "n_severe_mental_illness, n_key_youth) >= 0 AND GREATEST(n_released_prisoners, "
            "n_community_correction, n_drug_users, n_severe_mental_illness, n_key_youth) <= 50",
            name="counts_range",
        ),
        ForeignKeyConstraint(
            ["housing_unit_id", "street_code"],
            ["housing_unit.id", "housing_unit.street_code"],
            onupdate="CASCADE",
        ),
        ForeignKeyConstraint(
            ["housing_unit_id", "grid_code"],
            ["housing_unit.id", "housing_unit.grid_code"],
            onupdate="CASCADE",
        ),
        *_area_checks("housing_special_count", geom=None, grid_fk=True),
        Index("ix_housing_special_count_grid_code", "grid_code"),
        Index("ix_housing_special_count_street_code", "street_code"),
    )


# --- places, facilities, roads -----------------------------------------------------------


class KeyPlace(Base):
    """A key place or unit (重点场所 / 重点单位): market, school, hospital, venue…"""

    __tablename__ = "key_place"
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    grid_code: Mapped[str | None] = mapped_column(ForeignKey("grid.code"))
    street_code: Mapped[str] = mapped_column(String(12))
    geom = _geom("POINT")
    __table_args__ = (
        CheckConstraint(_in("kind", vocab.PLACE_KINDS), name="kind"),
        *_area_checks("key_place"),
        Index("ix_key_place_geom", "geom", postgresql_using="gist"),
        Index("ix_key_place_street_code", "street_code"),
    )


class Facility(Base):
    """A facility: camera (天网 / 雪亮) with its view radius, hydrant, emergency supply point."""

    __tablename__ = "facility"
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    kind: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    view_radius_m: Mapped[float | None] = mapped_column(Float)
    grid_code: Mapped[str | None] = mapped_column(ForeignKey("grid.code"))
    street_code: Mapped[str] = mapped_column(String(12))
    geom = _geom("POINT")
    __table_args__ = (
        CheckConstraint(_in("kind", vocab.FACILITY_KINDS), name="kind"),
        CheckConstraint(
            "(left(kind, 6) = 'camera') = (view_radius_m IS NOT NULL)", name="camera_has_radius"
        ),
        CheckConstraint(
            "view_radius_m IS NULL OR view_radius_m BETWEEN 1 AND 1000", name="radius_range"
        ),
        *_area_checks("facility"),
        Index("ix_facility_geom", "geom", postgresql_using="gist"),
        Index("ix_facility_street_code", "street_code"),
    )


class Road(Base):
    """A road centreline segment (reference data for patrol coverage of street length)."""

    __tablename__ = "road"
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    geom = _geom("LINESTRING")
    __table_args__ = (
        CheckConstraint(_in("kind", vocab.ROAD_KINDS), name="kind"),
        CheckConstraint("ST_IsValid(geom) AND NOT ST_IsEmpty(geom)", name="geom_valid"),
        CheckConstraint(_in_china(), name="geom_in_china"),
        Index("ix_road_geom", "geom", postgresql_using="gist"),
    )


# --- incidents ----------------------------------------------------------------------------


class IncidentCategory(Base):
    """Incident category code table (two levels), with its handling time limit.

    Loaded from ``data/incident_categories.csv`` by :func:`store.migrate.sync_reference_data`."""

    __tablename__ = "incident_category"
    code: Mapped[str] = mapped_column(Text, primary_key=True)
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("incident_category.code"))
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)
    limit_value: Mapped[int | None] = mapped_column(SmallInteger)
    limit_unit: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (
        CheckConstraint(r"code ~ '^\d{2}(\d{2})?$'", name="code_format"),
        CheckConstraint(
            "(length(code) = 2 AND parent_code IS NULL AND limit_value IS NULL) OR "
            "(length(code) = 4 AND parent_code = left(code, 2) AND limit_value > 0 "
            " AND limit_unit IN ('hours', 'working_days'))",
            name="levels",
        ),
    )


class Incident(Base):
    """An incident (事件) as reported, with its current state derived from the log."""

    __tablename__ = "incident"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(Text, unique=True)
    category_code: Mapped[str] = mapped_column(ForeignKey("incident_category.code"))
    source: Mapped[str] = mapped_column(Text)
    severity: Mapped[int] = mapped_column(SmallInteger, server_default=text("1"))
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    address: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    reported_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    grid_code: Mapped[str | None] = mapped_column(ForeignKey("grid.code"))
    street_code: Mapped[str] = mapped_column(String(12))
    # Derived from incident_transition by triggers; never written directly.
    status: Mapped[str | None] = mapped_column(Text)
    tier: Mapped[str | None] = mapped_column(Text)
    status_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    extended_due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    geom = _geom("POINT")
    # H3 cell of the point at resolutions 7-11 (store/cells.py, migration 0009): computed
    # in Python when the row is written; cleared by a trigger when geom moves without them
    h3_r7: Mapped[int | None] = mapped_column(BigInteger)
    h3_r8: Mapped[int | None] = mapped_column(BigInteger)
    h3_r9: Mapped[int | None] = mapped_column(BigInteger)
    h3_r10: Mapped[int | None] = mapped_column(BigInteger)
    h3_r11: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (
        CheckConstraint(r"category_code ~ '^\d{4}$'", name="subcategory"),
        CheckConstraint(
            "num_nulls(h3_r7, h3_r8, h3_r9, h3_r10, h3_r11) IN (0, 5)", name="cells_all_or_none"
        ),
        CheckConstraint(_in("source", vocab.INCIDENT_SOURCES), name="source"),
        CheckConstraint("severity BETWEEN 1 AND 4", name="severity_range"),
        CheckConstraint("occurred_at <= reported_at", name="occurred_before_reported"),
        CheckConstraint("reported_at >= '2000-01-01'", name="reported_plausible"),
        CheckConstraint("due_at > reported_at", name="due_after_reported"),
        CheckConstraint("length(btrim(title)) > 0", name="title_not_blank"),
        *_area_checks("incident"),
        Index("ix_incident_geom", "geom", postgresql_using="gist"),
        Index("ix_incident_reported_at", "reported_at"),
        Index("ix_incident_grid_code_reported_at", "grid_code", "reported_at"),
        # (street_code, reported_at) is ix_incident_cells' key; no query filters on the
        # occurred, due or closed time alone (migration 0012 dropped those indexes)
        Index("ix_incident_status", "status"),
        Index("ix_incident_category_code", "category_code"),
        # the hexagon counts per stored cell as an index-only scan: filters, the columns
        # of the row-level security policy and the cells (store/cells.py, migration 0009)
        Index(
            "ix_incident_cells",
            "street_code",
            "reported_at",
            postgresql_include=[
                "grid_code",
                "category_code",
                "h3_r7",
                "h3_r8",
                "h3_r9",
                "h3_r10",
                "h3_r11",
            ],
        ),
        # rows without cells, which the hexagon counts bin from their points (store/cells.py)
        Index("ix_incident_without_cells", "id", postgresql_where=text("h3_r7 IS NULL")),
        # migration 0004 (store.kpi_summary): incidents whose state as of T is not their
        # stored one — open across T (reported_at < T <= status_at), or irregular
        Index(
            "ix_incident_state_span",
            text("tstzrange(reported_at, GREATEST(status_at, reported_at), '(]')"),
            postgresql_using="gist",
        ),
        Index(
            "ix_incident_irregular",
            "id",
            postgresql_where=text(
                "status_at IS NULL OR status_at < reported_at OR due_at < reported_at "
                "OR extended_due_at < reported_at OR closed_at < reported_at "
                "OR closed_at <> status_at"
            ),
        ),
        # migration 0008: the local day of each cohort by street — the KPI refresh
        # (store.kpi_summary) finds the incidents of a touched (street, day) through these,
        # not by reading the whole table once per kind of day
        *(
            Index(
                f"ix_incident_street_{name}_day",
                "street_code",
                text(f"CAST(({col} AT TIME ZONE 'Asia/Shanghai') AS date)"),
            )
            for name, col in (
                ("reported", "reported_at"),
                ("due", "COALESCE(extended_due_at, due_at)"),
                ("closed", "closed_at"),
            )
        ),
    )


class WorkflowRule(Base):
    """Allowed incident state transitions (``from_status`` NULL: the first entry)."""

    __tablename__ = "workflow_rule"
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    from_status: Mapped[str | None] = mapped_column(Text)
    to_status: Mapped[str] = mapped_column(Text)
    __table_args__ = (
        UniqueConstraint("from_status", "to_status", postgresql_nulls_not_distinct=True),
    )


class IncidentTransition(Base):
    """One step of an incident's workflow (append-only: updates and deletes are refused)."""

    __tablename__ = "incident_transition"
    # GENERATED ALWAYS: the id orders steps logged at the same instant, so callers cannot
    # choose it.
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id", ondelete="CASCADE"))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    to_status: Mapped[str] = mapped_column(Text)
    tier: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    new_due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    grid_code: Mapped[str | None] = mapped_column(String(15))
    street_code: Mapped[str] = mapped_column(String(12))
    __table_args__ = (
        CheckConstraint(_in("to_status", vocab.INCIDENT_STATUSES), name="to_status"),
        CheckConstraint(_in("tier", vocab.TIERS), name="tier"),
        CheckConstraint(
            "(to_status = 'extended') = (new_due_at IS NOT NULL AND new_due_at > at)",
            name="extension_has_due",
        ),
        CheckConstraint("length(btrim(actor)) > 0", name="actor_not_blank"),
        # the natural key (migration 0002): the same step logged twice is one step
        UniqueConstraint("incident_id", "at", "to_status"),
        *_area_checks("incident_transition", geom=None),
        Index("ix_incident_transition_incident_id_at", "incident_id", "at"),
        Index("ix_incident_transition_street_code", "street_code"),
    )


# --- patrols and logs ------------------------------------------------------------------------


class PatrolFix(Base):
    """A GPS fix from a worker's phone. Partitioned by month on ``fixed_at``.

    ``grid_code`` is the grid the point falls in (NULL outside every grid), which near a
    boundary may belong to another street; ``street_code`` is the worker's street, the
    owner of the record."""

    __tablename__ = "patrol_fix"
    worker_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), primary_key=True)
    fixed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    grid_code: Mapped[str | None] = mapped_column(String(15))
    street_code: Mapped[str] = mapped_column(String(12))
    geom = _geom("POINT")
    __table_args__ = (
        CheckConstraint("accuracy_m IS NULL OR accuracy_m BETWEEN 0 AND 100000", name="accuracy"),
        ForeignKeyConstraint(["worker_id", "street_code"], ["staff.id", "staff.street_code"]),
        *_area_checks("patrol_fix", grid_fk=True, grid_in_street=False),
        Index("ix_patrol_fix_geom", "geom", postgresql_using="gist"),
        Index("ix_patrol_fix_fixed_at", "fixed_at"),
        Index("ix_patrol_fix_street_code_fixed_at", "street_code", "fixed_at"),
        {"postgresql_partition_by": "RANGE (fixed_at)"},
    )


class Patrol(Base):
    """A worker's patrol session: start, end and its cleaned track."""

    __tablename__ = "patrol"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    n_fixes: Mapped[int] = mapped_column(Integer)
    length_m: Mapped[float] = mapped_column(Float)
    grid_code: Mapped[str | None] = mapped_column(ForeignKey("grid.code"))
    street_code: Mapped[str] = mapped_column(String(12))
    geom = _geom("LINESTRING")
    __table_args__ = (
        UniqueConstraint("worker_id", "started_at"),
        CheckConstraint("ended_at > started_at", name="period"),
        CheckConstraint("n_fixes >= 2 AND length_m >= 0", name="counts"),
        ForeignKeyConstraint(["worker_id", "street_code"], ["staff.id", "staff.street_code"]),
        *_area_checks("patrol"),
        Index("ix_patrol_geom", "geom", postgresql_using="gist"),
        Index("ix_patrol_started_at", "started_at"),
        Index("ix_patrol_grid_code_started_at", "grid_code", "started_at"),
    )


class WorkLog(Base):
    """A worker's log entry (民情日志 / 工作日志)."""

    __tablename__ = "work_log"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    log_date: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(Text, server_default="public_sentiment")
    grid_code: Mapped[str | None] = mapped_column(ForeignKey("grid.code"))
    street_code: Mapped[str] = mapped_column(String(12))
    body: Mapped[str] = mapped_column(Text)
    __table_args__ = (
        CheckConstraint(_in("kind", vocab.LOG_KINDS), name="kind"),
        CheckConstraint("length(btrim(body)) BETWEEN 1 AND 20000", name="body_length"),
        ForeignKeyConstraint(["worker_id", "street_code"], ["staff.id", "staff.street_code"]),
        *_area_checks("work_log", geom=None),
        Index("ix_work_log_worker_id_log_date", "worker_id", "log_date"),
        Index("ix_work_log_grid_code_log_date", "grid_code", "log_date"),
        # the natural key (migration 0002): one worker's entry of one day with one text
        Index(
            "uq_work_log_worker_id_log_date_body_md5",
            "worker_id",
            "log_date",
            text("md5(body)"),
            unique=True,
        ),
    )


class DataSource(Base):
    """Where loaded data came from and when: for freshness lines in briefings."""

    __tablename__ = "data_source"
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    loaded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    rows: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[dict | None] = mapped_column(JSONB)


# --- access control (migration 0003) ----------------------------------------------------

#: Tables of logins, sessions and the audit trail: not data, never emptied by a data reload.
ACCESS_TABLES = (
    "app_user",
    "app_session",
    "audit_log",
    "gridone_secret",
    "gridone_login_policy",
)

USER_SCOPE_CK = (
    r"(role = 'district' AND scope_code ~ '^\d{6}000000$') OR "
    r"(role = 'street' AND scope_code ~ '^\d{9}000$' AND scope_code !~ '^\d{6}000000$') OR "
    r"(role = 'community' AND scope_code ~ '^\d{12}$' AND scope_code !~ '000$') OR "
    r"(role = 'grid' AND scope_code ~ '^\d{15}$') OR "
    "(role IN ('sysadmin', 'auditor') AND scope_code IS NULL)"
)


class AppUser(Base):
    """A person who may log in to the dashboard, with one role and one jurisdiction.

    ``scope_code`` is the admin code (district, street, community) or grid code whose
    subtree the user sees; system administrators and auditors have none and read no data.
    Users are deactivated, never deleted (the audit trail names them)."""

    __tablename__ = "app_user"
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    login: Mapped[str] = mapped_column(Text, unique=True)
    display_name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    scope_code: Mapped[str | None] = mapped_column(Text)
    # the user's own worker record (natural key, no foreign key: survives a data reload)
    staff_code: Mapped[str | None] = mapped_column(Text)
    password_hash: Mapped[str] = mapped_column(Text)
    failed_count: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # optional second factor (RFC 6238 TOTP, base32 secret); the last time step accepted,
    # so that one code cannot be used twice
    totp_secret: Mapped[str | None] = mapped_column(Text)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    password_changed_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    __table_args__ = (
        CheckConstraint(r"login ~ '^[a-z0-9][a-z0-9_.-]{1,63}$'", name="login_format"),
        CheckConstraint("length(btrim(display_name)) > 0", name="display_name_not_blank"),
        CheckConstraint(_in("role", vocab.USER_ROLES), name="role"),
        CheckConstraint(USER_SCOPE_CK, name="scope_matches_role"),
        # bcrypt (pgcrypto, migration 0008), or an Argon2 hash of before it (reset required)
        CheckConstraint(
            r"password_hash ~ '^\$2a\$[0-9]{2}\$[./A-Za-z0-9]{53}$' "
            "OR password_hash LIKE '$argon2%'",
            name="password_hash_format",
        ),
        CheckConstraint("failed_count >= 0", name="failed_count_range"),
    )


class AppSession(Base):
    """A server-side login session. Only the SHA-256 of its token is stored, so a copy of
    the table does not let anyone in; logout sets ``revoked_at`` and the token is dead."""

    __tablename__ = "app_session"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    last_seen: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    #: The timeouts in force at login (settings), checked by the database itself when the
    #: token sets a transaction's scope (``gridone_scope_session``, migration 0007).
    idle_minutes: Mapped[int] = mapped_column(Integer, server_default=text("30"))
    max_hours: Mapped[int] = mapped_column(Integer, server_default=text("12"))
    __table_args__ = (
        CheckConstraint("octet_length(token_hash) = 32", name="token_hash_sha256"),
        CheckConstraint(
            "idle_minutes BETWEEN 1 AND 1440 AND max_hours BETWEEN 1 AND 168",
            name="timeouts_range",
        ),
        Index("ix_app_session_user_id", "user_id"),
    )


#: The key of the scope signature (``gridone.sig``, migration 0007): one random row,
#: readable by the owner only (no grants).
gridone_secret = Table(
    "gridone_secret",
    Base.metadata,
    Column("k", LargeBinary, nullable=False),
    CheckConstraint("octet_length(k) >= 16", name="key_length"),
    comment="Key of the scope signature (gridone.sig); readable by the owner only.",
)

#: The lock-out and session timeouts ``gridone_login`` applies (migration 0011): one row,
#: read and written by the owner only (no grants), so the application cannot loosen them;
#: ``store.access.set_login_policy`` writes it, audited.
gridone_login_policy = Table(
    "gridone_login_policy",
    Base.metadata,
    Column("id", Boolean, primary_key=True, server_default=text("true")),
    Column("max_failures", Integer, nullable=False),
    Column("lockout_minutes", Integer, nullable=False),
    Column("idle_minutes", Integer, nullable=False),
    Column("max_hours", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_by", Text),
    CheckConstraint("id", name="one_row"),
    CheckConstraint(
        "max_failures BETWEEN 1 AND 100 AND lockout_minutes BETWEEN 1 AND 1440 "
        "AND idle_minutes BETWEEN 1 AND 1440 AND max_hours BETWEEN 1 AND 168",
        name="bounds",
    ),
    comment=(
        "The login lock-out and session timeouts gridone_login applies (one row); the owner "
        "only reads and writes it."
    ),
)


class AuditLog(Base):
    """The audit trail (审计日志): append-only. The application may insert, never update or
    delete; only ``audit_purge`` removes rows, and only those older than the retention
    (at least 180 days, MLPS 2.0 level 3)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"))
    login: Mapped[str | None] = mapped_column(Text)
    user_role: Mapped[str | None] = mapped_column(Text)
    scope_code: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    ok: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    detail: Mapped[dict | None] = mapped_column(JSONB)
    client: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (
        CheckConstraint(_in("action", vocab.AUDIT_ACTIONS), name="action"),
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_login_at", "login", "at"),
    )


# --- KPI sums per street and day (migration 0004, store.kpi_summary) ------------------------

#: Tables computed from the incidents by store.kpi_summary, never loaded from files.
KPI_SUMMARY_TABLES = (
    "kpi_street_day",
    "kpi_street_day_category",
    "kpi_street_month_category",
    "incident_repeat",
    "kpi_dirty_day",
    "kpi_dirty_region",
    "kpi_summary_state",
)


class KpiStreetDay(Base):
    """Incident KPI sums of one street and local day (``store.kpi_summary``): derived from
    the incidents, rebuilt or refreshed, never loaded."""

    __tablename__ = "kpi_street_day"
    street_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    reported: Mapped[int] = mapped_column(Integer)
    major: Mapped[int] = mapped_column(Integer)
    major_in_time: Mapped[int] = mapped_column(Integer)
    repeats: Mapped[int] = mapped_column(Integer)
    reported_closed: Mapped[int] = mapped_column(Integer)
    awaiting_review: Mapped[int] = mapped_column(Integer)
    extended: Mapped[int] = mapped_column(Integer)
    reworked: Mapped[int] = mapped_column(Integer)
    returned: Mapped[int] = mapped_column(Integer)
    due: Mapped[int] = mapped_column(Integer)
    due_on_time: Mapped[int] = mapped_column(Integer)
    due_open: Mapped[int] = mapped_column(Integer)
    closed: Mapped[int] = mapped_column(Integer)
    closed_grid: Mapped[int] = mapped_column(Integer)
    closed_community: Mapped[int] = mapped_column(Integer)
    closed_street: Mapped[int] = mapped_column(Integer)
    closed_department: Mapped[int] = mapped_column(Integer)
    closed_seconds: Mapped[float] = mapped_column(Numeric)
    closed_hours: Mapped[bytes] = mapped_column(LargeBinary)


class KpiStreetDayCategory(Base):
    """Incidents reported per street, local day and subcategory (``store.kpi_summary``)."""

    __tablename__ = "kpi_street_day_category"
    street_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    category_code: Mapped[str] = mapped_column(Text, primary_key=True)
    reported: Mapped[int] = mapped_column(Integer)
    __table_args__ = (Index("ix_kpi_street_day_category_day", "day"),)


class KpiStreetMonthCategory(Base):
    """Incidents reported per street, month (its first day) and subcategory: the sums of
    ``kpi_street_day_category`` over whole months, so that a year is a few rows."""

    __tablename__ = "kpi_street_month_category"
    street_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    month: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    category_code: Mapped[str] = mapped_column(Text, primary_key=True)
    reported: Mapped[int] = mapped_column(Integer)


class IncidentRepeat(Base):
    """The incidents that are repeats (``geo.settings.RepeatRule`` as stored in
    ``kpi_summary_state``), kept by ``store.kpi_summary``."""

    __tablename__ = "incident_repeat"
    incident_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("incident.id", ondelete="CASCADE"), primary_key=True
    )


class KpiDirtyDay(Base):
    """(street, day) keys whose sums a write has made stale, until the next refresh."""

    __tablename__ = "kpi_dirty_day"
    street_code: Mapped[str] = mapped_column(String(12), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)


class KpiDirtyRegion(Base):
    """Time span and box of incidents whose place, time or category changed, until the
    repeat flags around them are refreshed."""

    __tablename__ = "kpi_dirty_region"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    t_lo: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    t_hi: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    lon_lo: Mapped[float] = mapped_column(Float(53))
    lat_lo: Mapped[float] = mapped_column(Float(53))
    lon_hi: Mapped[float] = mapped_column(Float(53))
    lat_hi: Mapped[float] = mapped_column(Float(53))


class KpiSummaryState(Base):
    """The one row of rules the KPI sums were made with, and whether they are built."""

    __tablename__ = "kpi_summary_state"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tz: Mapped[str] = mapped_column(Text)
    major_severity: Mapped[int] = mapped_column(Integer)
    max_delay_s: Mapped[float] = mapped_column(Float(53))
    repeat_m: Mapped[float] = mapped_column(Float(53))
    repeat_days: Mapped[int] = mapped_column(Integer)
    built: Mapped[bool] = mapped_column(Boolean)
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)


# --- stored patrol coverage (geo.coverage_store) ----------------------------------------------


#: Tables computed from the fixes by geo.coverage_store, never loaded from files.
COVERAGE_STORE_TABLES = ("coverage_day", "coverage_building_day")


class CoverageDay(Base):
    """A local day whose building coverage is stored in :class:`CoverageBuildingDay`.

    A row exists only while the stored figures are those :func:`geo.coverage.last_passed`
    computes from the fixes: triggers (migration 0006) delete the day when a fix of its
    window ``[starts_at, ends_at)`` is inserted, changed or deleted, and every day when
    buildings change. ``epsg`` (the metric CRS of the district's grids) and ``params`` (a
    fingerprint of the coverage thresholds and time zone) are checked by the reader."""

    __tablename__ = "coverage_day"
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    epsg: Mapped[int] = mapped_column(Integer)
    params: Mapped[str] = mapped_column(Text)
    fixes: Mapped[int] = mapped_column(BigInteger)
    computed_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="window"),
        Index("ix_coverage_day_starts_at_ends_at", "starts_at", "ends_at"),
    )


class CoverageBuildingDay(Base):
    """When a building was last passed on a stored day (epoch seconds, as computed):
    ``last_any`` by any worker (the district's figure), ``last_street`` by the workers a
    street-scoped computation of the building's street reads that day (its own workers and
    anyone with a fix in one of its grids). Only buildings passed that day have a row."""

    __tablename__ = "coverage_building_day"
    day: Mapped[dt.date] = mapped_column(
        ForeignKey("coverage_day.day", ondelete="CASCADE"), primary_key=True
    )
    building_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    street_code: Mapped[str] = mapped_column(String(12))
    grid_code: Mapped[str | None] = mapped_column(String(15))
    last_any: Mapped[float] = mapped_column(Float)
    last_street: Mapped[float | None] = mapped_column(Float)
    __table_args__ = (Index("ix_coverage_building_day_street_code_day", "street_code", "day"),)
