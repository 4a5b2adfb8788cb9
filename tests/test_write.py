"""store.write.copy_frame: types, CRS and time zones checked before anything is sent."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Point
from sqlalchemy import Connection, text

from store.errors import CrsMismatchError, SchemaMismatchError
from store.write import copy_frame
from tests import factories as f


def _staff(**over) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "code": ["W2", "W3"],
            "name": ["王一", "李二 😀"],
            "role": ["volunteer", "police"],
            "phone": [None, "13912345678"],
            "street_code": [f.STREET, f.STREET],
            "active_from": pd.to_datetime(["2025-01-01", "2025-02-01"]).date,
        }
    )
    return frame.assign(**over)


def _places(crs: int = 4490) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "code": ["P1", "P2"],
            "name": ["农贸市场", "小学; DROP TABLE grid;--"],
            "kind": ["market", "school"],
            "grid_code": [f.GRID, None],
            "street_code": [f.STREET, f.STREET],
        },
        geometry=[Point(120.401, 36.301), Point(120.4015, 36.3012)],
        crs=crs,
    ).rename_geometry("geom")


def test_writes_text_nulls_dates_and_geometry(conn: Connection) -> None:
    f.area(conn)
    assert copy_frame(conn, "staff", _staff()) == 2
    assert copy_frame(conn, "key_place", _places()) == 2
    rows = conn.execute(
        text("SELECT name, grid_code, ST_SRID(geom), ST_AsText(geom) FROM key_place ORDER BY code")
    ).all()
    assert rows[1].name == "小学; DROP TABLE grid;--"
    assert rows[1].grid_code is None
    assert rows[0][2] == 4490
    assert rows[0][3] == "POINT(120.401 36.301)"
    phones = conn.execute(text("SELECT phone FROM staff WHERE code IN ('W2','W3') ORDER BY code"))
    assert phones.scalars().all() == [None, "13912345678"]


def test_integers_with_gaps_arrive_as_integers(conn: Connection) -> None:
    worker = f.area(conn)
    frame = _places().assign(code=["P3", "P4"])
    copy_frame(conn, "key_place", frame)
    ids = pd.Series([float(worker), np.nan])  # pandas made these floats
    logs = pd.DataFrame(
        {
            "worker_id": ids.fillna(worker),
            "log_date": ["2026-11-02"] * 2,
            "grid_code": [f.GRID, None],
            "street_code": [f.STREET] * 2,
            "body": ["走访", "巡查"],
        }
    )
    assert copy_frame(conn, "work_log", logs) == 2
    with pytest.raises(SchemaMismatchError, match=r"worker_id.*fractional"):
        copy_frame(conn, "work_log", logs.assign(worker_id=[1.5, 2.0]))


def test_wrong_crs_is_refused_before_sending(conn: Connection) -> None:
    f.area(conn)
    with pytest.raises(CrsMismatchError, match=r"to_crs\(4490\)"):
        copy_frame(conn, "key_place", _places().to_crs(3857))
    assert conn.execute(text("SELECT count(*) FROM key_place")).scalar_one() == 0


def test_naive_timestamps_are_refused(conn: Connection) -> None:
    f.area(conn)
    frame = pd.DataFrame(
        {
            "kind": ["x"],
            "source": ["y"],
            "rows": [1],
            "loaded_at": pd.to_datetime(["2026-11-01 08:00"]),
        }
    )
    with pytest.raises(SchemaMismatchError, match="time zone"):
        copy_frame(conn, "data_source", frame)


def test_unknown_columns_and_tables_are_named(conn: Connection) -> None:
    with pytest.raises(SchemaMismatchError, match="no writable column"):
        copy_frame(conn, "staff", _staff(), columns=["code", "nickname"])
    with pytest.raises(SchemaMismatchError, match="does not exist"):
        copy_frame(conn, "no_such_table", _staff())


def test_deferred_indexes_rebuild_what_they_dropped(conn: Connection) -> None:
    from store.write import deferred_indexes

    def shape() -> list:
        return (
            conn.execute(
                text(
                    "SELECT indexrelid::regclass::text FROM pg_index "
                    "WHERE indrelid = 'key_place'::regclass UNION ALL "
                    "SELECT conname FROM pg_constraint WHERE conrelid = 'key_place'::regclass "
                    "ORDER BY 1"
                )
            )
            .scalars()
            .all()
        )

    f.area(conn)
    before = shape()
    with deferred_indexes(conn, ["key_place", "grid"]) as treated:
        assert treated == ["key_place"]  # grid already holds a row: left alone
        assert "ix_key_place_geom" not in shape()
        copy_frame(conn, "key_place", _places())
    assert shape() == before


def test_deferred_foreign_keys_are_still_checked(conn: Connection) -> None:
    from sqlalchemy.exc import IntegrityError

    from store.write import deferred_indexes

    f.area(conn)
    orphan = _places().assign(grid_code=["370214900001999", None])  # no such grid
    with (
        pytest.raises(IntegrityError, match="fk_key_place_grid_code_grid"),
        conn.begin_nested(),
        deferred_indexes(conn, ["key_place"]),
    ):
        copy_frame(conn, "key_place", orphan)
    assert conn.execute(text("SELECT count(*) FROM key_place")).scalar_one() == 0


def test_text_escapes_and_round_trips_through_copy(conn: Connection) -> None:
    """Backslashes, tabs, newlines, quotes, SQL-looking text, emoji: stored exactly."""
    f.area(conn)
    nasty = [
        "a\\tb\\n",
        "行1\n行2\t列2\r",
        "'; DROP TABLE incident; --",
        "😀 网格 \\N",
        "",
        '=HYPERLINK("x","y"), "quoted", \\042',
    ]
    frame = pd.DataFrame(
        {
            "worker_id": [1] * len(nasty),
            "log_date": pd.to_datetime(["2026-11-02"] * len(nasty)).date,
            "grid_code": [f.GRID] * len(nasty),
            "street_code": [f.STREET] * len(nasty),
            "body": [x or "空" for x in nasty],
        }
    )
    worker = conn.execute(text("SELECT id FROM staff WHERE code = 'W1'")).scalar_one()
    copy_frame(conn, "work_log", frame.assign(worker_id=worker))
    stored = conn.execute(text("SELECT body FROM work_log ORDER BY id")).scalars().all()
    assert stored == [x or "空" for x in nasty]


def test_timestamps_floats_and_booleans_keep_their_values(conn: Connection) -> None:
    f.area(conn)
    worker = conn.execute(text("SELECT id FROM staff WHERE code = 'W1'")).scalar_one()
    conn.execute(text("SELECT ensure_patrol_fix_partitions('2026-11-01', '2026-11-30')"))
    when = pd.Series(pd.to_datetime(["2026-11-02 08:30:15.123456", "2026-11-02 08:30:20.000000"]))
    fixes = gpd.GeoDataFrame(
        {
            "worker_id": [worker, worker],
            "fixed_at": when.dt.tz_localize("Asia/Shanghai"),
            "accuracy_m": [3.7, np.nan],
            "grid_code": [f.GRID, None],
            "street_code": [f.STREET, f.STREET],
        },
        geometry=[Point(120.401, 36.301), Point(120.4011, 36.3011)],
        crs=4490,
    ).rename_geometry("geom")
    copy_frame(conn, "patrol_fix", fixes)
    rows = conn.execute(text("SELECT fixed_at, accuracy_m FROM patrol_fix ORDER BY fixed_at")).all()
    assert rows[0].fixed_at == when[0].tz_localize("Asia/Shanghai").to_pydatetime()
    assert rows[0].accuracy_m == 3.7
    assert rows[1].accuracy_m is None


def test_fast_point_encoding_equals_geos() -> None:
    """The numpy EWKB of points is byte-for-byte what GEOS writes."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from store.write import _point_ewkb_hex

    @settings(max_examples=50, deadline=None)
    @given(st.lists(st.tuples(st.floats(73, 136), st.floats(3, 54)), min_size=1, max_size=50))
    def check(xy):
        geoms = shapely.points(np.array(xy))
        ours = _point_ewkb_hex(geoms).to_pylist()
        geos = shapely.to_wkb(shapely.set_srid(geoms, 4490), hex=True, include_srid=True)
        assert ours == list(geos)

    check()


def test_fast_timestamp_text_equals_isoformat() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from store.write import _timestamp_text

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(
            st.datetimes(
                min_value=pd.Timestamp("1900-01-01").to_pydatetime(),
                max_value=pd.Timestamp("2200-12-31").to_pydatetime(),
            ),
            min_size=1,
            max_size=30,
        )
    )
    def check(stamps):
        col = pd.Series(pd.to_datetime(stamps)).dt.tz_localize("UTC")
        ours = _timestamp_text(col).to_pylist()
        expected = [t.strftime("%Y-%m-%d %H:%M:%S.%f") + "+00" for t in col]
        assert ours == expected

    check()


def test_deferred_indexes_on_a_partitioned_table_come_back_valid(conn: Connection) -> None:
    from store.write import deferred_indexes

    def indexes() -> list:
        return conn.execute(
            text(
                "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c "
                "ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid "
                "WHERE t.relname LIKE 'patrol_fix%' ORDER BY 1"
            )
        ).all()

    conn.execute(text("SELECT ensure_patrol_fix_partitions('2026-11-01', '2026-11-30')"))
    before = indexes()
    with deferred_indexes(conn, ["patrol_fix"], only_if_empty=False, foreign_keys=False):
        pass
    after = indexes()
    assert sorted(after) == sorted(before)
    assert all(valid for _, valid in after)
