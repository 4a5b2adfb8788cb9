"""The embedded PostGIS: a private PostgreSQL cluster inside the checkout.

Used when ``DATABASE_URL`` is unset. :meth:`LocalCluster.ensure` creates the cluster on first
use (``initdb``), starts it on a free port on 127.0.0.1 when it is not running, creates the
``gridone`` database with PostGIS, and returns its URL; later calls reuse it.

PostgreSQL refuses to run as root. When we are root, the cluster's files belong to the
``postgres`` system user (created by Debian's ``postgresql`` package) and its commands run
through ``runuser``. If that user cannot reach a folder inside the checkout (a checkout under
``/root``, say), the data folder goes to ``/var/lib/gridone/<hash>`` and ``.local/pg/data``
points there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from store.errors import LocalClusterError

DB_NAME = "gridone"
SUPERUSER = "gridone"
#: Extensions the migrations create (their control files must be installed).
EXTENSIONS = ("postgis", "pgcrypto")
INSTALL_HINT = (
    "PostgreSQL with PostGIS is needed. On Debian/Ubuntu run `bash scripts/setup.sh setup` "
    "(it installs them), or by hand: sudo apt-get install postgresql-15 "
    "postgresql-15-postgis-3 (Debian 12; Ubuntu 24.04: postgresql-16 postgresql-16-postgis-3); "
    "or set DATABASE_URL to an existing PostGIS database."
)
_SERVER_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "shared_buffers": "256MB",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "4GB",
    "synchronous_commit": "off",
    "max_parallel_workers_per_gather": "2",
    "timezone": "UTC",
    "log_min_messages": "warning",
    # Failing rows and statements carry personal data: keep them out of the server log.
    "log_error_verbosity": "terse",
    "log_min_error_statement": "panic",
}


def _write_private(path: Path, content: str) -> None:
    """Write ``content`` to a file that is never readable by others, not even briefly."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(content)


def find_pg_bin(preferred: Path | None = None) -> Path:
    """The ``bin`` folder of the newest installed PostgreSQL that has PostGIS and pgcrypto."""
    if preferred is not None:
        if not (preferred / "initdb").exists():
            raise LocalClusterError(f"PG_BIN_DIR={preferred} has no initdb. {INSTALL_HINT}")
        return preferred
    root = Path("/usr/lib/postgresql")
    versions = sorted(
        (p for p in root.glob("*") if p.name.isdigit()), key=lambda p: int(p.name), reverse=True
    )
    for vdir in versions:
        extensions = Path(f"/usr/share/postgresql/{vdir.name}/extension")
        # PostGIS, and pgcrypto (logins, migration 0008; part of Debian's server package)
        has_extensions = all((extensions / f"{e}.control").exists() for e in EXTENSIONS)
        if (vdir / "bin" / "initdb").exists() and has_extensions:
            return vdir / "bin"
    raise LocalClusterError(f"no PostgreSQL server with PostGIS and pgcrypto found. {INSTALL_HINT}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass(frozen=True)
class ClusterInfo:
    """What a client needs to connect to the embedded cluster."""

    port: int
    password: str

    def url(self, database: str = DB_NAME) -> str:
        """SQLAlchemy URL of ``database`` on this cluster."""
        return (
            f"postgresql+psycopg://{SUPERUSER}:{quote(self.password, safe='')}"
            f"@127.0.0.1:{self.port}/{database}"
        )


class LocalCluster:
    """A PostgreSQL + PostGIS cluster kept in ``home`` (default ``.local/pg``)."""

    def __init__(self, home: Path, bin_dir: Path | None = None) -> None:
        self.home = Path(home).resolve()
        self._bin_dir = bin_dir
        self.as_root = os.geteuid() == 0

    # -- paths -------------------------------------------------------------------------
    @property
    def bin_dir(self) -> Path:
        return find_pg_bin(self._bin_dir)

    @property
    def info_file(self) -> Path:
        return self.home / "cluster.json"

    @property
    def data_dir(self) -> Path:
        link = self.home / "data"
        return link.resolve() if link.is_symlink() else link

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / "server.log" if self._outside() else self.home / "server.log"

    def _outside(self) -> bool:
        return (self.home / "data").is_symlink()

    # -- running commands as the cluster's owner ----------------------------------------
    def _owner(self) -> str | None:
        if not self.as_root:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise LocalClusterError(
                "running as root, PostgreSQL must run as another user, and the 'postgres' "
                f"system user does not exist. {INSTALL_HINT}"
            ) from exc
        return "postgres"

    def _run(self, args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        owner = self._owner()
        cmd = (["runuser", "-u", owner, "--"] if owner else []) + args
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/", check=False)
        if check and proc.returncode != 0:
            raise LocalClusterError(
                f"{' '.join(args[:2])} failed ({proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-2000:]}"
            )
        return proc

    def _chown(self, path: Path) -> None:
        owner = self._owner()
        if owner:
            shutil.chown(path, owner, owner)

    def _owner_can_write(self, folder: Path) -> bool:
        owner = self._owner()
        if owner is None:
            return True
        probe = subprocess.run(
            ["runuser", "-u", owner, "--", "test", "-w", str(folder)], check=False
        )
        return probe.returncode == 0

    # -- lifecycle --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.home / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def exists(self) -> bool:
        """Whether the cluster has been created.

        Raises
        ------
        LocalClusterError
            The data folder exists but ``cluster.json`` (port and password) is gone: never
            guessed or overwritten, since that would destroy the data.
        """
        has_data = (self.data_dir / "PG_VERSION").exists()
        if has_data and not self.info_file.exists():
            raise LocalClusterError(
                f"{self.data_dir} holds a cluster but {self.info_file} is missing; restore it, "
                f"or delete {self.home} to start over (its data will be lost)"
            )
        return has_data

    def running_port(self) -> int | None:
        """The port of the running server, or None when it is not running."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        proc = self._run(
            [str(self.bin_dir / "pg_ctl"), "status", "-D", str(self.data_dir)], check=False
        )
        if proc.returncode != 0:
            return None
        lines = pid_file.read_text().splitlines()
        return int(lines[3]) if len(lines) > 3 else None

    def _create(self) -> None:
        password = secrets.token_urlsafe(18)
        data = self.home / "data"
        if data.exists() or data.is_symlink():  # left by an interrupted creation: no PG_VERSION
            shutil.rmtree(data.resolve(), ignore_errors=True)
            if data.is_symlink():
                data.unlink()
        self._chown(self.home)
        if not self._owner_can_write(self.home):
            # e.g. a checkout under /root: keep the files where postgres can reach them.
            digest = hashlib.sha1(str(self.home).encode()).hexdigest()[:12]
            outside = Path("/var/lib/gridone") / digest
            outside.mkdir(parents=True, exist_ok=True)
            self._chown(outside)
            (outside / "data").mkdir(exist_ok=True)
            data.symlink_to(outside / "data")
        else:
            data.mkdir()
        self._chown(self.data_dir)
        pwfile = self.data_dir.parent / ".pwfile"
        _write_private(pwfile, password + "\n")
        self._chown(pwfile)
        try:
            self._run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with (self.data_dir / "postgresql.auto.conf").open("a") as fh:
            for key, value in _SERVER_SETTINGS.items():
                fh.write(f"{key} = '{value}'\n")
            # TCP on 127.0.0.1 only: no unix socket whose path length or folder rights matter.
            fh.write("unix_socket_directories = ''\n")
        self._save(ClusterInfo(port=free_port(), password=password))

    def _info(self) -> ClusterInfo:
        try:
            raw = json.loads(self.info_file.read_text())
        except PermissionError as exc:
            raise LocalClusterError(
                f"{self.info_file} belongs to another user (was setup run with sudo?); run as "
                "that user, or set GRIDONE_LOCAL_PG_DIR to a folder of your own"
            ) from exc
        return ClusterInfo(port=int(raw["port"]), password=str(raw["password"]))

    def start(self) -> ClusterInfo:
        """Start the server if needed; return how to connect."""
        info = self._info()
        port = self.running_port()
        if port is not None:
            if port != info.port:
                info = ClusterInfo(port=port, password=info.password)
                self._save(info)
            return info
        if _port_in_use(info.port):
            info = ClusterInfo(port=free_port(), password=info.password)
            self._save(info)
        log = self.log_file
        if not log.exists():
            _write_private(log, "")
            self._chown(log)
        self._run(
            [
                str(self.bin_dir / "pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(self.data_dir),
                "-l",
                str(log),
                "-o",
                f"-p {info.port}",
            ]
        )
        return info

    def _save(self, info: ClusterInfo) -> None:
        _write_private(self.info_file, json.dumps({"port": info.port, "password": info.password}))

    def stop(self) -> None:
        """Stop the server if it runs (fast shutdown)."""
        with self._lock():
            if self.exists() and self.running_port() is not None:
                pg_ctl = str(self.bin_dir / "pg_ctl")
                self._run([pg_ctl, "stop", "-m", "fast", "-w", "-D", str(self.data_dir)])

    def ensure(self, database: str = DB_NAME) -> str:
        """Create and start the cluster as needed, make sure ``database`` exists with
        PostGIS, and return its SQLAlchemy URL."""
        with self._lock():
            if not self.exists():
                self._create()
            info = self.start()
            self._ensure_database(info, database)
        return info.url(database)

    def _ensure_database(self, info: ClusterInfo, database: str) -> None:
        import psycopg
        from psycopg import sql

        deadline = time.monotonic() + 30
        while True:
            try:
                admin = psycopg.connect(
                    host="127.0.0.1",
                    port=info.port,
                    user=SUPERUSER,
                    password=info.password,
                    dbname="postgres",
                    autocommit=True,
                    connect_timeout=5,
                )
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with admin:
            found = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).fetchone()
            if not found:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        with psycopg.connect(info.url(database).replace("+psycopg", ""), autocommit=True) as db:
            db.execute("CREATE EXTENSION IF NOT EXISTS postgis")
