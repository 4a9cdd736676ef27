"""The production shape under test (issue 16): real ``fidelia serve --workers N`` and
``fidelia worker`` processes on PostgreSQL, the real defaults (caches, rate limits), the
production refusals and SMTP against a server that requires what production uses.

Processes are spawned each as the leader of its own process group, so stopping one takes
its children too (uvicorn's web processes) and nothing else."""

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fidelia.kit.db import Database
from tests.reliability.harness import FIDELIA, environment
from tests.support.postgres import free_port


def wait_for(check: Callable[[], Any], seconds: float, what: str, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s (last: {result!r})")
        time.sleep(every)


class Processes:
    """``fidelia`` commands as real processes; ``stop()`` ends every one of them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
        log_path = self.workdir / f"{args[0]}-{len(self.procs)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [str(FIDELIA), *args],
                env=env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def serve(self, env: dict[str, str], workers: int, timeout: float = 90) -> str:
        """``fidelia serve --workers N --no-worker``; its URL once /healthz answers."""
        port = free_port()
        proc = self.spawn(
            env, "serve", "--port", str(port), "--workers", str(workers), "--no-worker"
        )
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"fidelia serve exited:\n{self.logs()}")
            try:
                return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout, "fidelia serve answering /healthz", every=0.2)
        return url

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.workdir.glob("*.log"))
        )

    def stop(self) -> None:
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=20)
        self.procs = []


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def pg_db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url, pool_size=2)
    yield database
    database.dispose()


def fidelia_env(database_url: str, **extra: str) -> dict[str, str]:
    """The reliability suite's environment (rate limits off, a known app secret)."""
    return environment(database_url, **extra)
