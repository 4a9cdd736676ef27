"""A throwaway PostgreSQL server started from the machine's binaries (tests, benchmarks).

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user;
data and socket live under /tmp and vanish with ``stop()``.
"""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def app_connections(url: str) -> int:
    """The connections open to ``url``'s database, this one's aside (``pg_stat_activity``)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
        return int(row[0]) if row else 0


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL binary {name!r} not found: run scripts/ensure-services.sh")
    return path


def _alive(pid: int) -> bool:
    """Until it is reaped: a zombie postmaster still holds off a new one (postmaster.pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class PostgresServer:
    def __init__(self, settings: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="fidelia-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.dir),
            "max_connections": "400",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "256MB",
            **(settings or {}),
        }
        self.as_root = os.geteuid() == 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True)

    def start(self) -> "PostgresServer":
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"
        )
        self.pg_ctl_start()
        return self

    def pg_ctl_start(self) -> None:
        opts = " ".join(f"-c {k}={v}" for k, v in self.settings.items()) + f" -p {self.port}"
        self._run(
            pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def kill9(self) -> None:
        """Crash the server (the postmaster and its children) like a power cut. The children
        (backends, walwriter, walsenders...) are killed with it: left alive, a backend goes
        on serving its connection from the dead server's shared memory until it notices,
        which a power cut never allows."""
        pid_file = self.data / "postmaster.pid"
        pid = int(pid_file.read_text().splitlines()[0])
        found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        victims = [pid, *(int(child) for child in found.stdout.split())]
        for victim in victims:
            try:
                os.kill(victim, 9)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(v) for v in victims):
            time.sleep(0.05)
        subprocess.run(["pkill", "-9", "-f", f"postgres.*{self.data}"], check=False)
        time.sleep(0.5)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def copy(self, template: str = "fidelia_template", prefix: str = "t") -> str:
        """A new database made from ``template`` (the migrated schema); its URL. Copied as
        files (``FILE_COPY``, with the checkpoint it takes: cheap without ``fsync``), not
        block by block through the WAL as PostgreSQL 15 does by default: ~55 ms a copy
        against ~140, for most of the suite's tests."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        return self.url(name)

    def drop(self, url: str) -> None:
        """Drop the database at ``url``, its connections closed first."""
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        out = subprocess.run(
            [
                pg_bin("psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                dbname,
                "-v",
                "ON_ERROR_STOP=1",
                "-qAtc",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip()
