"""Loading files into the store: every format the street offices have, checked row by row,
all-or-nothing, idempotent. Against real PostGIS, with the demo street written out as files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from sqlalchemy import Engine, text

from loaders import coords
from loaders.engine import LoadRejectedError, Options, load_file
from loaders.sniff import InputError
from store.settings import PROJECT_ROOT

SH = "Asia/Shanghai"


@pytest.fixture(scope="module")
def files(demo, tmp_path_factory) -> dict[str, Path]:
    """The demo street as the files a street office would hold."""
    out = tmp_path_factory.mktemp("street_files")
    au = demo.admin_unit
    au[au.level == "street"][["code", "name", "geom"]].to_file(out / "streets.geojson")
    au[au.level == "community"][["code", "name", "geom"]].to_file(
        out / "communities.gpkg", driver="GPKG"
    )
    staff = demo.staff.set_index("id")
    grids = demo.grid.assign(worker_code=demo.grid.worker_id.map(staff.code))
    with warnings.catch_warnings():  # the point: DBF truncates worker_code to 10 letters
        warnings.simplefilter("ignore")
        grids.drop(columns=["worker_id", "community_code"]).to_file(
            out / "grids.shp", encoding="utf-8"
        )
    with zipfile.ZipFile(out / "grids.zip", "w") as z:
        for part in out.glob("grids.*"):
            if part.suffix != ".zip":
                z.write(part, part.name)
    first_grid = demo.staff_assignment.drop_duplicates("staff_id").set_index("staff_id")
    workers = demo.staff.assign(grid_code=demo.staff.id.map(first_grid.grid_code))
    workers[["code", "name", "role", "phone", "street_code", "grid_code", "active_from"]].rename(
        columns={
            "code": "人员编码",
            "name": "姓名",
            "role": "角色",
            "phone": "手机号",
            "street_code": "街道编码",
            "grid_code": "网格编码",
            "active_from": "在岗日期",
        }
    ).to_csv(out / "workers.csv", index=False, encoding="gb18030")
    b = demo.building.assign(经度=demo.building.geom.x, 纬度=demo.building.geom.y)
    b[["code", "address", "floors", "use", "经度", "纬度"]].to_csv(
        out / "buildings.csv", index=False, encoding="utf-8-sig"
    )
    inc = demo.incident.assign(
        lon=demo.incident.geom.x,
        lat=demo.incident.geom.y,
        worker_code=demo.incident.reporter_id.map(staff.code),
        reported_at=demo.incident.reported_at.dt.tz_convert(SH).dt.strftime("%Y-%m-%d %H:%M:%S"),
        occurred_at=demo.incident.occurred_at.dt.tz_convert(SH).dt.strftime("%Y-%m-%d %H:%M:%S"),
    )
    cols = [
        "code",
        "category_code",
        "source",
        "severity",
        "title",
        "description",
        "address",
        "occurred_at",
        "reported_at",
        "worker_code",
        "lon",
        "lat",
    ]
    inc[cols].to_csv(out / "incidents.csv", index=False)
    return {p.stem: p for p in out.iterdir()} | {"incidents_frame": inc[cols]}  # type: ignore[dict-item]


ORDER = [
    ("streets", "streets.geojson"),
    ("communities", "communities.gpkg"),
    ("grids", "grids.zip"),
    ("workers", "workers.csv"),
    ("buildings", "buildings.csv"),
    ("incidents", "incidents.csv"),
]


def _load_all(engine: Engine, folder: Path, **opts) -> dict[str, object]:
    return {k: load_file(engine, k, folder / f, Options(**opts)) for k, f in ORDER}


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(
            conn.execute(
                text(
                    "SELECT 'admin_unit', count(*) FROM admin_unit UNION ALL "
                    "SELECT 'grid', count(*) FROM grid UNION ALL "
                    "SELECT 'staff', count(*) FROM staff "
                    "UNION ALL SELECT 'building', count(*) FROM building UNION ALL "
                    "SELECT 'incident', count(*) FROM incident UNION ALL "
                    "SELECT 'with_worker', count(worker_id) FROM grid"
                )
            ).all()
        )


def test_a_street_loads_from_six_formats_and_again_changes_nothing(
    fresh_engine: Engine, files, demo
) -> None:
    folder = files["streets"].parent
    first = _load_all(fresh_engine, folder)
    assert {k: r.inserted for k, r in first.items()} == {
        "streets": 1,
        "communities": 9,
        "grids": 41,
        "workers": len(demo.staff),
        "buildings": len(demo.building),
        "incidents": 1997,
    }
    # the 3 planted incidents outside the street are refused, by line, with the reason
    outside = first["incidents"].rejected
    assert len(outside) == 3
    assert all(p.field == "street_code" and "outside every street" in p.reason for p in outside)
    counts = _counts(fresh_engine)
    assert counts["with_worker"] == 41  # workers file set each grid's responsible worker
    again = _load_all(fresh_engine, folder)
    assert all(r.inserted == 0 and r.updated == 0 for r in again.values()), {
        k: (r.inserted, r.updated) for k, r in again.items()
    }
    assert _counts(fresh_engine) == counts


def test_stored_rows_equal_the_generators(fresh_engine: Engine, files, demo) -> None:
    """Grid by location, street, reporter and deadline: derived in the loader exactly as
    the generator planted them."""
    _load_all(fresh_engine, files["streets"].parent)
    with fresh_engine.connect() as conn:
        got = pd.DataFrame(
            conn.execute(
                text(
                    "SELECT i.code, i.grid_code, i.street_code, i.due_at, i.reported_at, "
                    "s.code AS rep "
                    "FROM incident i LEFT JOIN staff s ON s.id = i.reporter_id ORDER BY i.code"
                )
            ).all()
        )
    exp = demo.incident.set_index("code").loc[got.code]
    assert (got.grid_code.to_numpy() == exp.grid_code.to_numpy()).all()
    assert (got.due_at.to_numpy() == exp.due_at.to_numpy()).all()
    assert (got.reported_at.to_numpy() == exp.reported_at.to_numpy()).all()


def test_reloading_grids_without_a_worker_column_keeps_the_workers(
    fresh_engine: Engine, files
) -> None:
    _load_all(fresh_engine, files["streets"].parent)
    # a shapefile truncates worker_code to 10 letters: the reload has no worker column
    report = load_file(fresh_engine, "grids", files["grids"].parent / "grids.zip", Options())
    assert (report.updated, report.unchanged) == (0, 41)
    assert _counts(fresh_engine)["with_worker"] == 41


def _bad_incidents(files, tmp_path: Path) -> Path:
    frame = files["incidents_frame"].head(20).astype(object)
    frame.loc[2, "reported_at"] = "2026-13-45 25:00"  # line 4
    frame.loc[5, "category_code"] = "外星人入侵"  # line 7
    frame.loc[8, ["lon", "lat"]] = [frame.loc[8, "lat"], frame.loc[8, "lon"]]  # line 10
    frame.loc[11, "severity"] = "很严重"  # line 13
    frame.loc[14, "title"] = "'; DROP TABLE incident; -- 😀"  # line 16: a fine title
    path = tmp_path / "bad_incidents.csv"
    frame.to_csv(path, index=False)
    return path


def test_bad_rows_are_named_and_good_rows_still_land(
    fresh_engine: Engine, files, tmp_path: Path
) -> None:
    for kind, f in ORDER[:5]:
        load_file(fresh_engine, kind, files["streets"].parent / f, Options())
    report = load_file(fresh_engine, "incidents", _bad_incidents(files, tmp_path), Options())
    why = {p.line: (p.field, p.reason) for p in report.rejected}
    assert why[4][0] == "reported_at"
    assert "not a valid time" in why[4][1]
    assert why[7][0] == "category_code"
    assert why[10][1].startswith("经纬度颠倒")
    assert why[13] == ("severity", "不是整数 / not a whole number")
    assert report.inserted == 20 - 4
    with fresh_engine.connect() as conn:
        title = conn.execute(
            text("SELECT title FROM incident WHERE code = :c"),
            {"c": files["incidents_frame"].code.iloc[14]},
        ).scalar_one()
    assert title == "'; DROP TABLE incident; -- 😀"


def test_strict_refuses_the_whole_file(fresh_engine: Engine, files, tmp_path: Path) -> None:
    for kind, f in ORDER[:5]:
        load_file(fresh_engine, kind, files["streets"].parent / f, Options())
    with pytest.raises(LoadRejectedError, match="line 4"):
        load_file(fresh_engine, "incidents", _bad_incidents(files, tmp_path), Options(strict=True))
    assert _counts(fresh_engine)["incident"] == 0


def test_dry_run_writes_nothing(fresh_engine: Engine, files) -> None:
    report = load_file(fresh_engine, "streets", files["streets"], Options(dry_run=True))
    assert report.inserted == 1
    assert _counts(fresh_engine)["admin_unit"] == 0


def test_gcj02_data_is_caught_and_converted_on_request(
    fresh_engine: Engine, files, tmp_path: Path
) -> None:
    """Points copied from AutoNavi sit 100–700 m off: refused with the fix; with
    --crs gcj02 they land in the right grids."""
    for kind, f in ORDER[:5]:
        load_file(fresh_engine, kind, files["streets"].parent / f, Options())
    frame = files["incidents_frame"].head(200).copy()
    frame["lon"], frame["lat"] = coords.wgs84_to_gcj02(frame.lon.to_numpy(), frame.lat.to_numpy())
    path = tmp_path / "from_autonavi.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match="--crs gcj02"):
        load_file(fresh_engine, "incidents", path, Options())
    assert _counts(fresh_engine)["incident"] == 0
    report = load_file(fresh_engine, "incidents", path, Options(crs="gcj02"))
    assert report.inserted == len(frame) - len(report.rejected)
    with fresh_engine.connect() as conn:
        wrong = conn.execute(
            text(
                "SELECT count(*) FROM incident i WHERE NOT EXISTS (SELECT 1 FROM grid g "
                "WHERE g.code = i.grid_code "
                "AND ST_DWithin(g.geom::geography, i.geom::geography, 1))"
            )
        ).scalar_one()
    assert wrong == 0


def test_a_file_with_latitude_and_longitude_swapped_is_refused(
    fresh_engine: Engine, files, tmp_path: Path
) -> None:
    frame = files["incidents_frame"].head(50).rename(columns={"lon": "lat", "lat": "lon"})
    path = tmp_path / "swapped.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"swapped|颠倒"):
        load_file(fresh_engine, "incidents", path, Options())


def test_bow_tie_grid_is_repaired_and_listed(fresh_engine: Engine, files) -> None:
    for kind, f in ORDER[:2]:
        load_file(fresh_engine, kind, files["streets"].parent / f, Options())
    corpus = PROJECT_ROOT / "tests" / "data" / "corpus"
    report = load_file(fresh_engine, "grids", corpus / "bowtie_grid.geojson", Options())
    assert report.repaired, report.summary()
    assert "Self-intersection" in (report.repaired[0].value or "")


def test_killed_mid_load_leaves_the_store_as_it_was(
    fresh_engine: Engine, files, tmp_path: Path
) -> None:
    """kill -9 while the rows are being written: the transaction never commits."""
    for kind, f in ORDER[:5]:
        load_file(fresh_engine, kind, files["streets"].parent / f, Options())
    before = _counts(fresh_engine)
    big = pd.concat([files["incidents_frame"]] * 60, ignore_index=True)
    big["code"] = big["code"] + "-" + (big.index // 2000).astype(str)
    path = tmp_path / "big.csv"
    big.to_csv(path, index=False)
    env = {**os.environ, "DATABASE_URL": fresh_engine.url.render_as_string(hide_password=False)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "loaders", "load", "incidents", str(path)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    writing = False
    while time.monotonic() < deadline and proc.poll() is None and not writing:
        with fresh_engine.connect() as conn:  # wait until it is inside its transaction
            writing = bool(
                conn.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                        "AND (query ILIKE 'COPY stage_load%' OR query ILIKE '%stage_load%') "
                        "AND pid <> pg_backend_pid()"
                    )
                ).scalar_one()
            )
    assert writing, "the loader never reached its writing step"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    assert _counts(fresh_engine) == before


def test_streaming_in_chunks_changes_nothing_but_memory(
    fresh_engine: Engine, files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks of 7 rows: a duplicate across chunks is still caught (the last row wins), a
    bad row in a later chunk keeps its true line number."""
    import loaders.read

    monkeypatch.setattr(loaders.read, "CHUNK_ROWS", 7)
    for kind, f in ORDER[:5]:
        load_file(fresh_engine, kind, files["streets"].parent / f, Options())
    frame = files["incidents_frame"].head(30).astype(object)
    frame.loc[25, "code"] = frame.loc[3, "code"]  # same incident again, 3 chunks later
    frame.loc[25, "title"] = "后来的更正"
    frame.loc[19, "reported_at"] = "不是时间"  # line 21, in the third chunk
    path = tmp_path / "chunked.csv"
    frame.to_csv(path, index=False)
    report = load_file(fresh_engine, "incidents", path, Options())
    assert [(p.line, p.field) for p in report.rejected] == [(21, "reported_at")]
    assert (report.duplicates, report.inserted) == (1, 28)
    with fresh_engine.connect() as conn:
        title = conn.execute(
            text("SELECT title FROM incident WHERE code = :c"), {"c": frame.loc[3, "code"]}
        ).scalar_one()
    assert title == "后来的更正"


def test_big_batches_rebuild_indexes_and_keys_and_still_reject_by_row(
    fresh_engine: Engine, files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import loaders.engine

    monkeypatch.setattr(loaders.engine, "BIG_BATCH_ROWS", 1)  # every batch is "big"

    def schema() -> list:
        with fresh_engine.connect() as conn:
            return (
                conn.execute(
                    text(
                        "SELECT indexdef FROM pg_indexes WHERE tablename = 'incident' UNION ALL "
                        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                        "WHERE conrelid = 'incident'::regclass ORDER BY 1"
                    )
                )
                .scalars()
                .all()
            )

    for kind, f in ORDER[:5]:
        load_file(fresh_engine, kind, files["streets"].parent / f, Options())
    before = schema()
    frame = files["incidents_frame"].head(40).astype(object)
    frame["street_code"] = "370214900000"
    frame.loc[7, "street_code"] = "370214999000"  # no such street: line 9
    # and outside this street: 1 km east of it, within the area's margin (farther out, the
    # area guard refuses the row before the database sees it)
    x1, y0 = gpd.read_file(files["streets"]).total_bounds[[2, 1]]
    frame.loc[7, ["lon", "lat"]] = [x1 + 0.01, y0 + 0.001]
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    report = load_file(fresh_engine, "incidents", path, Options())
    assert [(p.line, p.field) for p in report.rejected] == [(9, "street_code")]
    assert report.inserted == 39
    assert schema() == before


def test_overlapping_grids_are_reported_with_their_area(fresh_engine: Engine) -> None:
    box = "MULTIPOLYGON(((120.39 36.29,120.42 36.29,120.42 36.31,120.39 36.31,120.39 36.29)))"
    with fresh_engine.begin() as conn:
        for code, level, parent in (
            ("370214000000", "district", None),
            ("370214001000", "street", "370214000000"),
            ("370214001001", "community", "370214001000"),
        ):
            conn.execute(
                text(
                    "INSERT INTO admin_unit (code, level, name, parent_code, geom) "
                    "VALUES (:c, :l, :n, :p, ST_GeomFromText(:g, 4490))"
                ),
                {"c": code, "l": level, "n": f"测试{level}", "p": parent, "g": box},
            )
    corpus = PROJECT_ROOT / "tests" / "data" / "corpus"
    report = load_file(fresh_engine, "grids", corpus / "overlapping_grids.geojson", Options())
    assert report.inserted == 2
    overlaps = [w for w in report.warnings if "overlap" in w]
    assert len(overlaps) == 1
    assert "370214001001001 × 370214001001002" in overlaps[0]
    area = float(overlaps[0].split(": ")[-1].removesuffix(" m²").replace(",", ""))
    with fresh_engine.connect() as conn:
        truth = conn.execute(
            text(
                "SELECT ST_Area(ST_Transform(ST_Intersection(a.geom, b.geom), 4549)) FROM grid a, "
                "grid b WHERE a.code < b.code"
            )
        ).scalar_one()
    assert abs(area - truth) < 1


def test_points_far_outside_the_area_are_rejected_by_row(
    fresh_engine: Engine, files, tmp_path: Path
) -> None:
    """The area is the stored streets' extent and 5 km around it. An incident in another
    province and one 20 km off are rejected, each with its coordinates and the reason,
    and the file's warning gives examples; one 1 km off the street is no business of this
    guard (the street rules decide it); the good rows land."""
    for kind, f in ORDER[:5]:
        load_file(fresh_engine, kind, files["streets"].parent / f, Options())
    _x0, y0, x1, y1 = gpd.read_file(files["streets"]).total_bounds
    frame = files["incidents_frame"].head(12).astype(object)
    frame.loc[2, ["lon", "lat"]] = [126.6, 45.75]  # Harbin
    frame.loc[5, ["lon", "lat"]] = [x1 + 0.2, (y0 + y1) / 2]  # ~18 km east
    frame.loc[8, ["lon", "lat"]] = [x1 + 0.01, (y0 + y1) / 2]  # ~1 km east
    path = tmp_path / "far.csv"
    frame.to_csv(path, index=False)
    report = load_file(fresh_engine, "incidents", path, Options())
    far = [p for p in report.rejected if p.field == "geometry"]
    assert [p.line for p in far] == [4, 7]
    assert far[0].value == "126.600000,45.750000"
    assert all("outside the area" in p.reason and "不在本区域范围内" in p.reason for p in far)
    assert sum("outside the area's bounds" in w for w in report.warnings) == 1
    assert [p.line for p in report.rejected if p.field != "geometry"] == [10]  # no street
    assert report.inserted == 9
    with fresh_engine.connect() as conn:
        stored = conn.execute(
            text("SELECT count(*) FROM incident WHERE code = ANY(:c)"),
            {"c": frame.loc[[2, 5, 8], "code"].tolist()},
        ).scalar_one()
    assert stored == 0


def test_patrol_fixes_far_outside_the_area_are_rejected(
    fresh_engine: Engine, tmp_path: Path, files
) -> None:
    """A patrol app's fix in another province is not the worker's patrol: rejected (before,
    stored and flagged as outside every grid); the worker's fixes in the street land."""
    for kind, f in ORDER[:4]:
        load_file(fresh_engine, kind, files["streets"].parent / f, Options())
    x0, y0, x1, y1 = gpd.read_file(files["streets"]).total_bounds
    workers = files["streets"].parent / "workers.csv"
    worker = pd.read_csv(workers, dtype=str, encoding="gb18030")["人员编码"].iloc[0]
    fixes = pd.DataFrame(
        {
            "worker_code": worker,
            "fixed_at": pd.date_range("2026-03-02 09:00", periods=4, freq="1min").astype(str),
            "lon": [(x0 + x1) / 2, (x0 + x1) / 2 + 0.0005, 129.6, (x0 + x1) / 2 + 0.001],
            "lat": [(y0 + y1) / 2, (y0 + y1) / 2, 45.76, (y0 + y1) / 2],
        }
    )
    path = tmp_path / "fixes.csv"
    fixes.to_csv(path, index=False)
    report = load_file(fresh_engine, "patrols", path, Options())
    assert [(p.line, p.field) for p in report.rejected] == [(4, "geometry")]
    assert report.inserted == 3


def _run_cli(args: list[str], env: dict[str, str], *, tty: bool) -> str:
    """The loader's command line run for real; its standard error, written to a terminal
    (a pseudo-terminal) when ``tty``, else to a pipe."""
    import pty
    import select

    cmd = [sys.executable, "-m", "loaders", *args]
    if not tty:
        done = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, check=False)
        return done.stderr.decode()
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            block = os.read(master, 1 << 16)
        except OSError:  # the child closed the terminal
            break
        if not block:
            break
        out += block
    proc.wait(30)
    os.close(master)
    return out.decode(errors="replace")


def test_progress_bar_on_a_terminal_only(fresh_engine: Engine, files, tmp_path: Path) -> None:
    """A file of more than a few megabytes shows a progress bar with its share done on a
    terminal (redrawn on one line), and nothing of it in a pipe or a log."""
    for kind, f in ORDER[:5]:
        load_file(fresh_engine, kind, files["streets"].parent / f, Options())
    frame = files["incidents_frame"]
    big = pd.concat([frame] * (-(-6_000_000 // len(frame.to_csv(index=False)))), ignore_index=True)
    big["code"] = big["code"] + "-" + big.index.astype(str)
    path = tmp_path / "big.csv"
    big.to_csv(path, index=False)
    assert path.stat().st_size > 5_000_000  # a bar needs the line count of a big file
    env = {**os.environ, "DATABASE_URL": fresh_engine.url.render_as_string(hide_password=False)}
    args = ["load", "incidents", str(path), "--dry-run"]
    shown = _run_cli(args, env, tty=True)
    assert "\r\x1b[K… [########################] 100%  已检查 checked" in shown
    assert "写入 writing" in shown  # the step after the checks, on the same line
    piped = _run_cli(args, env, tty=False)
    assert "已检查 checked" not in piped and "\r" not in piped
