"""Backups under load: ``fidelia backup`` runs while a real ``fidelia serve`` credits PINs
through the signed webhook; the backup is restored into a fresh database, ``fidelia check``
passes on it, and every webhook answered 2xx before the backup started is in it."""

import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import select

from fidelia.kit.db import Database
from fidelia.models import InboundMessage
from tests.reliability.harness import (
    FIDELIA,
    Fidelia,
    Job,
    credit_job,
    environment,
    fidelia_check,
    headers_for,
)
from tests.reliability.test_crash import pins_for
from tests.support.postgres import PostgresServer, free_port

pytestmark = pytest.mark.timeout(300)


def fidelia(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FIDELIA), *args], env=environment(url), capture_output=True, text=True, timeout=120
    )


class TimedLoad:
    """Sends jobs from a few threads, paced at ``rate`` a second in all, so the load lasts as
    long as its jobs say however fast the server answers (a faster webhook once ended it
    before the backup it was meant to run through); records when each 2xx arrived."""

    def __init__(self, url: str, jobs: list[Job], threads: int = 4, rate: float = 100) -> None:
        self.url, self.jobs, self.rate = url, jobs, rate
        self._started = 0.0
        self.answered: dict[str, float] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=15) as client:
            while not self._stop.is_set():
                with self._lock:
                    if self._next >= len(self.jobs):
                        return
                    job = self.jobs[self._next]
                    due = self._started + self._next / self.rate
                    self._next += 1
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                answer = client.post(
                    "/webhooks/whatsapp", content=job.body, headers=headers_for(job.body)
                )
                if answer.status_code == 200:
                    self.answered[job.message_id] = time.monotonic()

    def __enter__(self) -> "TimedLoad":
        self._started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def test_backup_under_load_then_restore(database_url: str, tmp_path: Path, pg: PostgresServer):
    made = pins_for(database_url, 600)
    senders = [f"+5511{987600000 + n}" for n in range(20)]
    jobs = [credit_job(i, p, c, senders[i % 20], "bk") for i, (p, c) in enumerate(made)]
    server = Fidelia(environment(database_url), free_port(), tmp_path)
    server.start()
    target = tmp_path / "backups" / "fidelia.backup"
    try:
        with TimedLoad(server.url, jobs) as load:
            time.sleep(2)
            started = time.monotonic()
            done = fidelia(database_url, "backup", str(target))
            time.sleep(1)
        assert done.returncode == 0, done.stderr
        assert "backup written to" in done.stdout
    finally:
        server.stop()
    before = {mid for mid, at in load.answered.items() if at < started}
    after = {mid for mid, at in load.answered.items() if at >= started}
    assert len(before) > 20 and after  # the backup really ran under load
    # Restore into a fresh database.
    if database_url.startswith("sqlite"):
        restored = f"sqlite:///{tmp_path / 'restored.db'}"
    else:
        name = f"rs_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        restored = pg.url(name)
    done = fidelia(restored, "restore", str(target))
    assert done.returncode == 0, done.stderr
    check = fidelia_check(restored)
    assert check.returncode == 0 and check.stdout.startswith("ok: "), check.stdout + check.stderr
    db = Database(restored, pool_size=1)
    try:
        with db.session(readonly=True) as session:
            kept = set(session.scalars(select(InboundMessage.message_id)))
    finally:
        db.dispose()
    assert before - kept == set()  # nothing answered 2xx before the backup is missing
    # Restoring over a database that has data is refused without --force.
    again = fidelia(restored, "restore", str(target))
    assert again.returncode == 1
    if not database_url.startswith("sqlite"):
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{restored.rsplit("/", 1)[1]}" WITH (FORCE)')
