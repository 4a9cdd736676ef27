"""The processes a benchmark runs against: a throwaway PostgreSQL server (the tests'
own), Fidelia served as real subprocesses, and a sink standing in for Meta's Graph API.

Fidelia runs exactly as an operator would run it (`fidelia serve`, `fidelia worker`) with
production settings: real secrets, no simulator, replies delivered over HTTP by the outbox
worker. Only the per-IP rate limit is raised, through its documented setting, because every
request of a load generator comes from one address.
"""

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

import httpx

from tests.support.postgres import PostgresServer, free_port

BIN = Path(sys.executable).parent
APP_SECRET = "bench-app-secret"
# Every request comes from 127.0.0.1, so the production default (30/minute per IP and
# endpoint) would answer 429 within a second. Per second, the in-memory moving window of
# one address stays as short as a real client's.
RATE_LIMIT = "1000000/second"

__all__ = [
    "APP_SECRET",
    "RATE_LIMIT",
    "FideliaServer",
    "FloorServer",
    "GraphSink",
    "PostgresServer",
    "postgres_cpu",
]


class GraphSink:
    """Answers every request like the Graph API's send endpoint (200 and a message id),
    with as little CPU as possible, so the outbox worker's deliveries cost what they cost
    on our side only. Counts what it received."""

    BODY = b'{"messaging_product":"whatsapp","messages":[{"id":"wamid.bench.sink.0"}]}'
    RESPONSE = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
        + BODY
    )

    def __init__(self) -> None:
        self.received = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="graph-sink")

    def __enter__(self) -> "GraphSink":
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _serve(self) -> None:
        sink = self

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport: asyncio.Transport = transport  # type: ignore[assignment]
                self.buffer = b""

            def data_received(self, data: bytes) -> None:
                self.buffer += data
                while True:
                    end = self.buffer.find(b"\r\n\r\n")
                    if end < 0:
                        return
                    length = 0
                    for line in self.buffer[:end].split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    if len(self.buffer) < end + 4 + length:
                        return
                    self.buffer = self.buffer[end + 4 + length :]
                    sink.received += 1
                    self.transport.write(GraphSink.RESPONSE)

        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            self._loop.create_server(Protocol, "127.0.0.1", self.port)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()


def fidelia_env(database_url: str, sink_url: str, **extra: str) -> dict[str, str]:
    """Production settings for a Fidelia process under benchmark."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIDELIA_")}
    env.update(
        FIDELIA_ENV="production",
        FIDELIA_DATABASE_URL=database_url,
        FIDELIA_WHATSAPP_API_BASE=sink_url,
        FIDELIA_WHATSAPP_APP_SECRET=APP_SECRET,
        FIDELIA_WHATSAPP_VERIFY_TOKEN="bench-verify-token",
        FIDELIA_WHATSAPP_TOKEN="bench-token",
        FIDELIA_SECRET_KEY="bench-secret-key-" + "x" * 32,
        FIDELIA_SMS_GATEWAY_URL=sink_url + "/sms",
        FIDELIA_SIMULATOR="0",
        FIDELIA_RATE_LIMIT_PIN_DOOR=RATE_LIMIT,
        # Per credential: the POS, retail and /v2 scenarios spread over 10 merchants' keys.
        FIDELIA_RATE_LIMIT_PDV=RATE_LIMIT,
        FIDELIA_RATE_LIMIT_RETAIL=RATE_LIMIT,
        FIDELIA_RATE_LIMIT_REST_V2=RATE_LIMIT,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class FideliaServer:
    """`fidelia serve` (and, for PostgreSQL, a separate `fidelia worker`) as subprocesses."""

    def __init__(
        self,
        env: dict[str, str],
        log_dir: Path,
        *,
        workers: int = 1,
        separate_worker: bool = False,
        name: str = "fidelia",
    ) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.separate_worker = separate_worker
        self.log_dir = log_dir
        self.name = name
        self.procs: list[subprocess.Popen[bytes]] = []

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        out = open(self.log_dir / log, "ab")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            [str(BIN / "fidelia"), *args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        self.procs.append(proc)
        return proc

    def start(self) -> "FideliaServer":
        self.env["FIDELIA_PUBLIC_URL"] = self.url
        args = ["serve", "--port", str(self.port), "--workers", str(self.workers)]
        if self.separate_worker:
            args.append("--no-worker")
        self._spawn(args, f"{self.name}-serve.log")
        if self.separate_worker:
            self._spawn(["worker"], f"{self.name}-worker.log")
        self.wait_ready()
        return self

    def wait_ready(self, probe: str = "/healthz", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited early; see {self.log_dir}")
            try:
                # Every web process must be up: ask more times than there are workers.
                with httpx.Client(base_url=self.url, timeout=2) as client:
                    if all(client.get(probe).status_code < 500 for _ in range(4 * self.workers)):
                        return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer within {timeout} s; see {self.log_dir}")

    def web_pids(self) -> list[int]:
        """The processes that serve requests (uvicorn's children with --workers > 1)."""
        if not self.procs:
            return []
        main = self.procs[0].pid
        children = _children(main)
        return children or [main]

    def worker_pids(self) -> list[int]:
        """The separate outbox worker's process (none when the worker runs inside serve)."""
        return [self.procs[1].pid] if self.separate_worker and len(self.procs) > 1 else []

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time used so far by the web processes, and by the separate outbox worker."""
        web = sum(_cpu(pid) for pid in self.web_pids())
        worker = _cpu(self.procs[1].pid) if self.separate_worker and len(self.procs) > 1 else 0.0
        return web, worker

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.procs = []

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class FloorServer(FideliaServer):
    """The floor reference app (bench/floor.py) under uvicorn, as many workers as Fidelia
    gets, on its own copy of the seeded database."""

    def __init__(self, database_url: str, log_dir: Path, *, workers: int = 2) -> None:
        root = str(Path(__file__).resolve().parent.parent)
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIDELIA_")}
        env.update(
            FLOOR_DATABASE_URL=database_url,
            FLOOR_APP_SECRET=APP_SECRET,
            PYTHONPATH=os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p),
        )
        super().__init__(env, log_dir, workers=workers, name="floor")
        self.root = root

    def start(self) -> "FloorServer":
        out = open(self.log_dir / "floor.log", "ab")  # noqa: SIM115 (closed with the process)
        self.procs.append(
            subprocess.Popen(
                [str(BIN / "uvicorn"), "bench.floor:app", "--host", "127.0.0.1"]
                + ["--port", str(self.port), "--workers", str(self.workers)]
                + ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
                + ["--log-level", "warning"],
                env=self.env,
                cwd=self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        out.close()
        self.wait_ready("/api/v1/redimir/puntos/none")
        return self


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    # uvicorn's supervisor may also run a resource tracker; keep the `fidelia` processes.
    return [p for p in found if "multiprocessing.resource_tracker" not in _cmdline(p)]


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu(pg: PostgresServer) -> float:
    """CPU seconds a PostgreSQL server has used so far: the postmaster with what its ended
    children used (reaped: in its cutime and cstime), plus its live processes (backends,
    autovacuum, the writers). The figure a plan that grows with the tables shows in."""
    try:
        pid = int((pg.data / "postmaster.pid").read_text().split()[0])
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return 0.0
    own = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return own + sum(_cpu(child) for child in _children(pid))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
