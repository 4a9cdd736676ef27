"""A streaming replica of a test PostgreSQL server: pg_basebackup -R from the primary,
started from the machine's binaries on its own port."""

import shutil
import time

from tests.support.postgres import PostgresServer, pg_bin


def start_replica(primary: PostgresServer) -> PostgresServer:
    replica = PostgresServer({"hot_standby": "on"})
    if replica.as_root:
        shutil.chown(replica.dir, "postgres", "postgres")
    replica._run(
        pg_bin("pg_basebackup"),
        "-h",
        "127.0.0.1",
        "-p",
        str(primary.port),
        "-U",
        "postgres",
        "-D",
        str(replica.data),
        "-R",  # standby.signal + primary_conninfo: a streaming replica
        "-X",
        "stream",
        "-c",
        "fast",  # checkpoint now, not spread over minutes
    )
    replica.pg_ctl_start()
    deadline = time.monotonic() + 30
    while replica.psql("SELECT pg_is_in_recovery()") != "t":
        if time.monotonic() > deadline:
            raise RuntimeError("the replica did not start streaming")
        time.sleep(0.1)
    return replica


def wait_replayed(primary: PostgresServer, replica: PostgresServer, timeout: float = 30) -> None:
    """Until the replica has replayed everything the primary has written so far."""
    target = primary.psql("SELECT pg_current_wal_insert_lsn()")
    deadline = time.monotonic() + timeout
    while replica.psql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn") != "t":
        if time.monotonic() > deadline:
            raise RuntimeError("the replica is not catching up")
        time.sleep(0.05)
