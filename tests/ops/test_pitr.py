"""Point-in-time recovery of PostgreSQL with the scripts of deploy/postgresql/, as an
operator runs them: a primary archiving its WAL (archive-wal.sh), a base backup taken under
load (base-backup.sh), then restore-pitr.sh to an instant while the load was still running,
into a fresh server. ``fidelia check`` passes on the result, every webhook answered 2xx
before that instant is in it, and what came well after it is not."""

import datetime
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from fidelia.kit.db import Database
from fidelia.models import InboundMessage
from tests.ops.test_backup import TimedLoad
from tests.reliability.harness import FIDELIA, Fidelia, credit_job, environment, fidelia_check
from tests.reliability.test_crash import pins_for
from tests.support.postgres import PostgresServer, free_port, pg_bin

pytestmark = pytest.mark.timeout(420)

SCRIPTS = Path(__file__).resolve().parents[2] / "deploy" / "postgresql"


def as_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "postgres:postgres", str(path)], check=True)


def run(script: str, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [str(SCRIPTS / script), *args], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"{script}: {done.stdout}{done.stderr}"
    return done.stdout


def test_point_in_time_recovery_with_the_deploy_scripts(tmp_path: Path):
    backups = Path(tempfile.mkdtemp(prefix="fidelia-backups-", dir="/tmp"))
    as_postgres(backups)
    archive = backups / "wal"
    command = f"'FIDELIA_WAL_ARCHIVE={archive} {SCRIPTS / 'archive-wal.sh'} %p %f'"
    primary = PostgresServer(
        {
            "synchronous_commit": "on",
            "full_page_writes": "on",
            "wal_level": "replica",
            "archive_mode": "on",
            "archive_command": command,
        }
    ).start()
    restored = PostgresServer()
    server = None
    try:
        primary.psql("CREATE DATABASE fidelia")
        url = primary.url("fidelia")
        made = pins_for(url, 4000)  # 40 s of load at 100/s: through a slow base backup too
        senders = [f"+5511{987700000 + n}" for n in range(20)]
        jobs = [credit_job(i, p, c, senders[i % 20], "pitr") for i, (p, c) in enumerate(made)]
        env = environment(url)
        env.update(
            FIDELIA_BACKUP_ROOT=str(backups),
            FIDELIA_WAL_ARCHIVE=str(archive),
            PGHOST="127.0.0.1",
            PGPORT=str(primary.port),
            PGUSER="postgres",
            PATH=f"{FIDELIA.parent}:{Path(pg_bin('pg_basebackup')).parent}:{env['PATH']}",
        )
        server = Fidelia(environment(url), free_port(), tmp_path)
        server.start()
        with TimedLoad(server.url, jobs) as load:
            time.sleep(2)
            said = run("base-backup.sh", env=env)  # under load
            time.sleep(2)
            target = datetime.datetime.now(datetime.UTC)
            target_clock = time.monotonic()
            time.sleep(3)
        server.stop()
        server = None
        assert "base backup" in said
        before = {mid for mid, at in load.answered.items() if at < target_clock}
        late = {mid for mid, at in load.answered.items() if at > target_clock + 1}
        assert len(before) > 50 and late, "the load did not run through the backup"
        # The last WAL segment reaches the archive (archive_timeout does that in production).
        segment = primary.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
        primary.psql("SELECT pg_switch_wal()")
        deadline = time.monotonic() + 60
        while primary.psql("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") < (
            segment
        ):
            assert time.monotonic() < deadline, "WAL archiving is stuck"
            time.sleep(0.2)
        # Restore into a fresh server, to the instant `target`.
        (base,) = sorted((backups / "base").iterdir())
        assert list((backups / "dumps").glob("*.pgdump"))  # the logical dump as well
        restored.data = restored.dir / "data"
        run(
            "restore-pitr.sh",
            str(base),
            str(restored.data),
            target.isoformat(sep=" "),
            env=env,
        )
        as_postgres(restored.dir)
        restored.pg_ctl_start()
        deadline = time.monotonic() + 120
        while restored.psql("SELECT pg_is_in_recovery()") != "f":
            assert time.monotonic() < deadline, (restored.dir / "log").read_text()[-3000:]
            time.sleep(0.2)
        back = restored.url("fidelia")
        check = fidelia_check(back)
        assert check.returncode == 0 and check.stdout.startswith("ok: "), (
            check.stdout + check.stderr
        )
        db = Database(back, pool_size=1)
        try:
            with db.session(readonly=True) as session:
                kept = set(session.scalars(select(InboundMessage.message_id)))
        finally:
            db.dispose()
        assert before - kept == set()  # nothing answered 2xx before the instant is missing
        assert late - kept, "restored to the end, not to the instant asked for"
    finally:
        if server is not None:
            server.stop()
        restored.destroy()
        primary.destroy()
        shutil.rmtree(backups, ignore_errors=True)
