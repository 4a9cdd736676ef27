"""Tools of the reliability suite: Fidelia as real processes that can be killed, a paced load
of signed credit webhooks whose every outcome is recorded, and ``fidelia check``."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from fidelia.kit.security import sign_sha256
from fidelia.simulator.routes import cloud_api_payload
from tests.reliability.summary import SUMMARY

FIDELIA = Path(sys.executable).parent / "fidelia"
WEBHOOK = "/webhooks/whatsapp"
APP_SECRET = "reliability-app-secret"
BOT_NUMBER = "50600000000"
LEASE_SECONDS = 3


def environment(database_url: str, **extra: str) -> dict[str, str]:
    """The machine's environment without any FIDELIA_ setting, plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIDELIA_")}
    env.update(
        {
            "FIDELIA_DATABASE_URL": database_url,
            "FIDELIA_WHATSAPP_APP_SECRET": APP_SECRET,
            "FIDELIA_BOT_NUMBER": BOT_NUMBER,
            "FIDELIA_RATE_LIMITS_ENABLED": "false",
            # Rows leased by a killed worker come back after 3 s, not a minute: the crash test
            # waits for them to be delivered, and `fidelia check` judges leases by it.
            "FIDELIA_OUTBOX_LEASE_SECONDS": str(LEASE_SECONDS),
            **extra,
        }
    )
    return env


def fidelia_check(database_url: str) -> subprocess.CompletedProcess[str]:
    """``fidelia check`` as an operator runs it."""
    return subprocess.run(
        [str(FIDELIA), "check"],
        env=environment(database_url),
        capture_output=True,
        text=True,
        timeout=120,
    )


def check_problems(database_url: str) -> list[str]:
    """The report lines of a failed ``fidelia check`` (empty when it says ok)."""
    result = fidelia_check(database_url)
    if result.returncode == 0 and result.stdout.startswith("ok: "):
        return []
    return [f"fidelia check exited {result.returncode}: {result.stdout}{result.stderr}".strip()]


class Fidelia:
    """``fidelia serve`` (and, with ``separate_worker``, a ``fidelia worker``) as real
    processes, each the leader of its own process group so that kill -9 takes the whole of
    it (uvicorn's worker processes too) and nothing else."""

    def __init__(
        self,
        env: dict[str, str],
        port: int,
        workdir: Path,
        *,
        workers: int = 1,
        separate_worker: bool = False,
    ) -> None:
        self.env, self.port, self.workdir = env, port, workdir
        self.workers, self.separate_worker = workers, separate_worker
        self.url = f"http://127.0.0.1:{port}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.starts = 0

    def _log(self, command: str) -> Path:
        """Where the process of this start running ``command`` writes its output."""
        return self.workdir / f"{command}-{self.starts}.log"

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self._log(args[0]), "wb")  # noqa: SIM115
        try:
            return subprocess.Popen(
                [str(FIDELIA), *args],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    def start(self, timeout: float = 60) -> None:
        self.starts += 1
        self.procs = [self._spawn(*self._serve())]
        if self.separate_worker:
            self.procs.append(self._spawn("worker"))
        self._wait_healthy(timeout)

    def _serve(self) -> list[str]:
        serve = ["serve", "--port", str(self.port), "--workers", str(self.workers)]
        if self.separate_worker:
            serve.append("--no-worker")
        return serve

    def kill9_web(self) -> None:
        """kill -9 of the web process alone (its separate worker goes on)."""
        web = self.procs.pop(0)
        try:
            os.killpg(web.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        web.wait(timeout=30)

    def start_web(self, timeout: float = 60) -> None:
        self.starts += 1
        self.procs.insert(0, self._spawn(*self._serve()))
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[0].poll() is not None:
                raise RuntimeError(f"fidelia serve exited:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"fidelia serve did not answer in {timeout} s:\n{self.log_tail()}")

    def kill9_worker(self) -> None:
        """kill -9 of the separate worker alone (the web processes go on storing)."""
        worker = self.procs.pop()
        try:
            os.killpg(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        worker.wait(timeout=30)

    def start_worker(self, wait: bool = False, timeout: float = 60) -> None:
        """Start the separate worker again; with ``wait``, return once it runs (migrated,
        connected, its loop started: the line it prints then), so that the next fault does
        not find it still starting."""
        self.starts += 1
        log = self._log("worker")
        proc = self._spawn("worker")
        self.procs.append(proc)
        deadline = time.monotonic() + timeout
        while wait and b"worker running" not in log.read_bytes():
            if proc.poll() is not None:
                raise RuntimeError(f"fidelia worker exited:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"fidelia worker not running after {timeout} s")
            time.sleep(0.05)

    def revive(self) -> int:
        """What systemd's Restart=always does: start again every process that exited
        (e.g. a worker that found the database down as it started). How many it started."""
        revived = 0
        for i, proc in enumerate(self.procs):
            if proc.poll() is None:
                continue
            revived += 1
            self.starts += 1
            if i == 0:
                self.procs[0] = self._spawn(*self._serve())
                self._wait_healthy(60)
            else:
                self.procs[i] = self._spawn("worker")
        return revived

    def kill9(self) -> None:
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
        self.procs = []

    def stop(self) -> None:
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=20)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        self.procs = []

    def log_tail(self, lines: int = 40) -> str:
        logs = sorted(self.workdir.glob("*.log"), key=lambda p: p.stat().st_mtime)
        if not logs:
            return ""
        return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Job:
    """One credit webhook: a fresh PIN sent by one of a few customers; its outcome."""

    index: int
    pin_id: int
    code: str
    sender: str
    message_id: str
    body: bytes
    status: int | None = None  # HTTP status of the first delivery; None: no answer
    processed: int | None = None
    error: str | None = None
    retries: int = 0

    @property
    def sent(self) -> bool:
        return self.status is not None or self.error is not None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def credit_job(index: int, pin_id: int, code: str, sender: str, tag: str) -> Job:
    payload = cloud_api_payload(sender, f"Quiero activar mi PIN: {code}", BOT_NUMBER, "1", "C")
    message_id = f"wamid.{tag}.{index}"
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = message_id  # type: ignore[index]
    return Job(index, pin_id, code, sender, message_id, json.dumps(payload).encode())


def headers_for(body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign_sha256(body, APP_SECRET),
    }


class Load:
    """Sends ``jobs`` in order at ``rate`` a second from ``threads`` threads (job i is due
    at start + i / rate, so a dead server costs at most ``rate`` PINs a second), until
    stopped or out of jobs. Every outcome is kept on its job."""

    def __init__(
        self, url: str, jobs: list[Job], rate: float, threads: int = 8, verify: bool = True
    ) -> None:
        self.url, self.jobs, self.rate, self.verify = url, jobs, rate, verify
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._t0 = 0.0

    def __enter__(self) -> "Load":
        self._t0 = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _take(self) -> Job | None:
        with self._lock:
            if self._next >= len(self.jobs):
                return None
            job = self.jobs[self._next]
            self._next += 1
            return job

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=15, verify=self.verify) as client:
            while not self._stop.is_set():
                job = self._take()
                if job is None:
                    return
                delay = self._t0 + job.index / self.rate - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                deliver(client, job)


def deliver(client: httpx.Client, job: Job) -> httpx.Response | None:
    """POST the job's webhook once; the first delivery's outcome is recorded on the job."""
    SUMMARY.sent()
    first = not job.sent
    try:
        response = client.post(WEBHOOK, content=job.body, headers=headers_for(job.body))
    except httpx.HTTPError as exc:
        if first:
            job.error = type(exc).__name__
        return None
    if first:
        job.status = response.status_code
        if response.status_code == 200:
            job.processed = response.json().get("processed")
    return response


def redeliver(url: str, jobs: Iterable[Job], attempts: int = 40, verify: bool = True) -> list[str]:
    """Like Meta: deliver again every webhook that did not get a 2xx, until it does."""
    problems = []
    with httpx.Client(base_url=url, timeout=15, verify=verify) as client:
        for job in jobs:
            if job.ok:
                continue
            for _ in range(attempts):
                job.retries += 1
                response = deliver(client, job)
                if response is not None and response.status_code == 200:
                    break
                time.sleep(0.25)
            else:
                problems.append(f"{job.message_id} never got a 2xx in {attempts} deliveries")
    return problems
