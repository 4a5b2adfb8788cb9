"""The embedded PostGIS: created on first use, reused, restarted on another port when its
own is taken, and reachable as root (as the postgres user)."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from store.errors import LocalClusterError
from store.local import LocalCluster, find_pg_bin


def _local_server_available() -> bool:
    try:
        find_pg_bin()
    except LocalClusterError:
        return False
    return True


# With DATABASE_URL pointing at another server, this machine may have no PostgreSQL at all.
pytestmark = pytest.mark.skipif(
    not _local_server_available(), reason="no local PostgreSQL + PostGIS to run initdb with"
)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path / "pg")
    yield c
    c.stop()
    data = (c.home / "data").resolve()
    shutil.rmtree(data.parent if data.parent != c.home else data, ignore_errors=True)


def _postgis(url: str) -> str:
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        return conn.execute("SELECT postgis_lib_version()").fetchone()[0]


def test_created_reused_and_restarted_on_a_free_port(cluster: LocalCluster) -> None:
    assert not cluster.exists()
    url = cluster.ensure()
    assert _postgis(url).startswith("3.")
    assert cluster.ensure() == url  # reused: same port, same password
    port = cluster.running_port()
    cluster.stop()
    assert cluster.running_port() is None
    with socket.socket() as squatter:  # something else takes our port meanwhile
        # the stopped server's closed connections may leave the port in TIME_WAIT
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        moved = cluster.ensure()
        assert moved != url
        assert cluster.running_port() != port
        assert _postgis(moved).startswith("3.")


def test_missing_cluster_file_never_destroys_data(cluster: LocalCluster) -> None:
    cluster.ensure()
    cluster.stop()
    cluster.info_file.rename(cluster.home / "cluster.json.bak")
    with pytest.raises(LocalClusterError, match="restore it"):
        cluster.ensure()
    assert (cluster.data_dir / "PG_VERSION").exists()
    (cluster.home / "cluster.json.bak").rename(cluster.info_file)


def test_secrets_and_log_are_private(cluster: LocalCluster) -> None:
    cluster.ensure()
    assert cluster.info_file.stat().st_mode & 0o077 == 0
    assert cluster.log_file.stat().st_mode & 0o077 == 0


def test_other_databases_get_postgis_too(cluster: LocalCluster) -> None:
    url = cluster.ensure("another")
    assert url.endswith("/another")
    assert _postgis(url)
