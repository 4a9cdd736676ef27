"""CPU cost of one request on each hot path, measured in process: no HTTP server, no load
generator, no other process's noise. What `make bench` shows as requests/s on 2 cores is
mostly this number (the web processes are CPU-bound), so this is the one to drive down.

    python bench/hotpath.py                       # every scenario, PostgreSQL and SQLite
    python bench/hotpath.py credit --db sqlite    # one scenario, one database
    python bench/hotpath.py credit --profile py-spy   # where its CPU goes, every thread
    python bench/hotpath.py worker --db postgresql    # the worker crediting stored webhooks
    python bench/hotpath.py replies --db postgresql   # the worker delivering their replies
    python bench/hotpath.py fold --db postgresql      # the worker folding them into rollups
    python bench/hotpath.py pin lookup --floor        # and the floor app, same requests
    python bench/hotpath.py pin --floor --direct      # the apps alone, no HTTP client
    python bench/hotpath.py credit --listen           # with a worker's LISTEN taking NOTIFYs
    python bench/hotpath.py pos-order --in-flight 8   # eight requests at a time, as under load

Requests go through the whole ASGI app (middleware, dependencies, thread hops, the
database) with ``httpx.ASGITransport``, one at a time, and the CPU time of this process
(``time.process_time``) is divided by their count. The database server's own CPU is
not included in that figure (the profilers' is, with --profile); on PostgreSQL the line
gives it beside, per request (``bench/services.py postgres_cpu``: the server's processes,
autovacuum included).

``worker`` is the other half of the credit: the webhooks are answered (stored) first, not
measured, then the worker's ``process_batch`` credits them in batches of 50, and its CPU
time is divided by the messages credited. ``replies`` is what follows: the credits done (not
measured), the outbox worker (``Worker.run_once``, batches of 20 as ``fidelia worker``) hands
their replies to a sender that does nothing, so what is measured is the worker's own cost of
a delivery: the claim, the lease and recording the outcome; CPU and wall time are divided by
the replies delivered. ``sent`` is ``replies`` with the bundled WhatsApp sender posting each
reply over HTTP to a loopback sink answering like the Graph API (``bench/services.py
GraphSink``, in a thread of this process): its CPU is the worker thread's alone
(``time.thread_time``), so the sink's own is not counted. ``fold`` is the worker's sweep
after them: the credits done (not measured), ``rollups.update`` folds the rows they wrote
(their ledger entries, and the PINs the bench seeded for them) into the dashboard's
rollups; CPU and wall time are divided by the source rows folded, not by the requests.

``--floor`` (PostgreSQL): each door path is measured a second time on the floor app
(``bench/floor.py``, issue 14), in this process, with the same requests against the same
database, and the line gives Fidelia's CPU per request over the floor's. That ratio is
the target's (``make bench``: ≥ 0.8 × the floor's requests/s on two cores is about ≤ 1.25
× its CPU per request) without the noise of two servers and wrk sharing the machine; both
include the test client's own CPU (about 0.17 ms a request, ``healthz``), which hides part
of the gap. ``--direct`` hands each request to the ASGI app as a server would (scope,
``receive``, ``send``), no client: the ratio is then the apps' alone (uvicorn's own HTTP
work, the same for both under ``make bench``, is in neither).
"""

import argparse
import asyncio
import contextlib
import functools
import gc
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from bench import load, report, seed  # noqa: E402
from bench import profile as profiling  # noqa: E402
from bench.services import APP_SECRET, RATE_LIMIT, GraphSink, postgres_cpu  # noqa: E402
from fidelia.app import create_app  # noqa: E402
from fidelia.kit.migrate import upgrade  # noqa: E402
from fidelia.kit.settings import Settings  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402

SCENARIOS = (
    "credit",
    "worker",
    "replies",
    "sent",
    "fold",
    "pin",
    "lookup",
    "redeem",
    "pos-redeem",
    "pos-order",
    "retail-transaction",
    "v2-sale",
    "healthz",
)
RESULTS = Path(__file__).resolve().parent / "results"  # profiles: profile-hotpath-*


def _split(raw: bytes) -> tuple[str, str, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    method, path, _ = lines[0].split(" ")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    headers.pop("Host", None)
    headers.pop("Content-Length", None)
    return method, path, headers, body


def requests_for(
    name: str, url: str, data: seed.Dataset, n: int, rng: random.Random
) -> list[bytes]:
    host = "bench"
    merchants = {m.id: m for m in data.merchants}
    customers = data.all_customers()
    if name == "pos-redeem":
        return load.pos_redeem_requests(customers, merchants, host, n, rng)
    if name == "pos-order":
        return load.pos_order_requests(customers, merchants, host, n, rng)
    if name == "retail-transaction":
        return load.retail_requests(customers, merchants, host, n, rng)
    if name == "v2-sale":
        return load.v2_sale_requests(customers, _tokens(url, data), host, n, rng)
    if name in ("credit", "worker", "replies", "sent", "fold"):
        with seed.Loader(url) as db:
            pool = seed.add_pin_pool(db, data, n, rng)
        return load.webhook_requests(pool, host, APP_SECRET, str(rng.randrange(10**9)))
    if name == "pin":
        return load.pin_requests(data.merchants, host, n, rng)
    if name == "lookup":
        return load.lookup_requests(data.all_customers(), host, n, rng)
    if name == "healthz":  # the framework alone: middleware, routing, the thread hop
        return [load.http_request("GET", "/healthz", host) for _ in range(n)]
    rewards = {m.id: m.reward_id for m in data.merchants}
    return load.redeem_requests(data.all_customers(), rewards, host, n, rng)


_TOKENS: dict[str, dict[int, str]] = {}


def _tokens(url: str, data: seed.Dataset) -> dict[int, str]:
    """The `/v2` access tokens, bought once per database."""
    if url not in _TOKENS:
        _TOKENS[url] = seed.v2_tokens(url, data)
    return _TOKENS[url]


async def drive(app: Any, raws: list[bytes]) -> list[int]:
    statuses = []
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        for raw in raws:
            method, path, headers, body = _split(raw)
            response = await client.request(method, path, headers=headers, content=body)
            statuses.append(response.status_code)
    return statuses


async def drive_directly(app: Any, raws: list[bytes]) -> list[int]:
    """``drive`` without the HTTP client: each request handed to the ASGI app as the server
    would (scope, ``receive``, ``send``), so what is measured is the app alone (``--direct``)."""
    statuses = []
    for raw in raws:
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        method, target, _ = lines[0].decode().split(" ")
        path, _, query = target.partition("?")
        headers = [
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(b":") for line in lines[1:])
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(path),
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 5000),
            "server": ("bench", 80),
        }
        statuses.append(await _answer(app, scope, body))
    return statuses


Send = Callable[[Any, list[bytes]], Coroutine[Any, Any, list[int]]]


async def in_flight(send: Send, k: int, app: Any, raws: list[bytes]) -> list[int]:
    """``send``'s requests ``k`` at a time (``--in-flight``): ``k`` clients, each sending its
    share one after another, so the app has up to ``k`` requests under way as a web
    process has under load (its worker threads, its pool), measured in one process."""
    if k <= 1:
        return await send(app, raws)
    answers = await asyncio.gather(*(send(app, raws[i::k]) for i in range(k)))
    return [status for share in answers for status in share]


async def _answer(app: Any, scope: dict[str, Any], body: bytes) -> int:
    done = asyncio.Event()
    status = [0]
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()  # as a server: the client is gone once the answer is sent
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            done.set()

    await app(scope, receive, send)
    return status[0]


def work(app: Any) -> int:
    """The worker's half of the credit: process the stored messages in batches until
    none is pending; returns how many did not end ``done``."""
    from sqlalchemy import func, select

    from fidelia.messaging import intake
    from fidelia.models import InboundMessage

    state = app.state.fidelia
    while intake.process_batch(state.db, state.bot, 50):
        pass
    with state.db.session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(InboundMessage)
                .where(InboundMessage.status != "done")
            )
            or 0
        )


def pending_replies(app: Any) -> int:
    from sqlalchemy import func, select

    from fidelia.models import OutboxMessage

    with app.state.fidelia.db.session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status != "sent")
            )
            or 0
        )


def deliver(app: Any, sender: Any = None) -> int:
    """The outbox worker's deliveries: every pending reply handed to ``sender`` (default:
    one that does nothing), in ``fidelia worker``'s batches; returns how many are not
    ``sent``."""
    from fidelia.messaging.worker import Worker

    chosen = sender or (lambda payload: None)
    Worker(app.state.fidelia.db, {"whatsapp": chosen}).drain(rounds=10**6)
    return pending_replies(app)


def fold(app: Any) -> int:
    """The worker's sweep of the rollups: everything written so far folded (no settle
    time); returns the source rows folded."""
    from datetime import timedelta

    from fidelia.rollups import service as rollups

    return rollups.update(app.state.fidelia.db, settle=timedelta(0))


class Measured(NamedTuple):
    cpu: float  # ms per request (``fold``: per source row folded)
    wall: float
    errors: int
    db: float | None  # the database server's CPU ms per request, when given its clock


def serve(app: Any, send: Send, raws: list[bytes]) -> list[int]:
    """``send``'s requests on a new event loop with the statement pool open on it, as the
    app's lifespan opens it on the loop it serves from (``Database.open_statements``). The
    previous loop's pool is closed first, not as its run ends: its backends would end as
    PostgreSQL's CPU is read (``postgres_cpu``), and one reaped between the postmaster's
    figure and its children's would be counted in neither. ``measure`` closes the last."""

    async def serving() -> list[int]:
        state = getattr(app.state, "fidelia", None)  # None: the floor's app
        if state is not None:
            state.db.close_statements()
            await state.db.open_statements()
        return await send(app, raws)

    return asyncio.run(serving())


def measure(
    app: Any,
    name: str,
    build: Callable[[int], list[bytes]],
    n: int,
    profile: str,
    out: Path,
    db_clock: Callable[[], float] | None = None,
    direct: bool = False,
    k: int = 1,
) -> Measured:
    """CPU and wall ms per request, errors, over ``n`` requests (``fold``: per source row
    folded); with ``db_clock`` (the database server's CPU seconds so far), its CPU too.
    ``profile``: "" (none), "py-spy" (every thread: the endpoints run in worker threads)
    or "pyinstrument" (the event loop thread: middleware, routing, serialisation)."""
    with contextlib.ExitStack() as stack:
        return _measure(stack, app, name, build, n, profile, out, db_clock, direct, k)


def _measure(
    stack: contextlib.ExitStack,
    app: Any,
    name: str,
    build: Callable[[int], list[bytes]],
    n: int,
    profile: str,
    out: Path,
    db_clock: Callable[[], float] | None,
    direct: bool,
    k: int,
) -> Measured:
    send: Send = functools.partial(in_flight, drive_directly if direct else drive, k)
    state = getattr(app.state, "fidelia", None)  # None: the floor's app
    if state is not None:  # the statement pool ``serve`` opened, after the figures are read
        stack.callback(state.db.close_statements)
    worker = name in ("worker", "replies", "sent", "fold")
    folding = name == "fold"
    replies = name in ("replies", "sent")
    sender = None
    if name == "sent":
        from fidelia.messaging.channels import WhatsAppCloud

        sink = stack.enter_context(GraphSink())
        sender = WhatsAppCloud(
            app.state.fidelia.settings.model_copy(update={"whatsapp_api_base": sink.url})
        )
    clock = time.thread_time if name == "sent" else time.process_time
    serve(app, send, build(max(20, n // 10)))  # warm up: caches, prepared statements
    if worker:
        work(app)
    if replies:
        deliver(app, sender)
    if folding:
        fold(app)
    raws = build(n)
    statuses: list[int] = []
    if worker:  # answered (stored) first, then credited by the measured worker
        statuses = serve(app, send, raws)
    if folding:  # credited first too: the rows they wrote are what is measured
        statuses += [500] * work(app)
    if replies:  # credited first too: their replies are what is measured
        statuses += [500] * work(app)
        if pending_replies(app) != n:  # one reply a credit: the count divided by
            statuses.append(500)
    count = n
    if folding:  # a full collection of the bench's heap would be most of a short fold
        gc.collect()
    with profiling.this_process(profile, out):
        db = db_clock() if db_clock else 0.0
        cpu, wall = clock(), time.perf_counter()
        if folding:
            count, left = fold(app), 0
        elif replies:
            left = deliver(app, sender)
        elif worker:
            left = work(app)
        else:
            statuses, left = serve(app, send, raws), 0
        cpu, wall = clock() - cpu, time.perf_counter() - wall
        db = db_clock() - db if db_clock else 0.0
    errors = sum(1 for s in statuses if s >= 400) + left + int(folding and count < n)
    per = 1000 / max(count, 1)
    return Measured(cpu * per, wall * per, errors, db * per if db_clock else None)


def seeded_app(url: str, merchants: int = 10, **settings: Any) -> tuple[Any, seed.Dataset]:
    """The schema at ``url``, ``merchants`` merchants of 100 customers (10 of 1,000 from
    100 merchants on), and an app on it with the doors' limits raised and no worker
    (``settings``: more of them)."""
    upgrade(url)
    data = seed.Dataset()
    with seed.Loader(url) as db:
        seed.add_merchants(db, data, merchants, 100 if merchants < 100 else 10)
        db.analyze()
    config = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        whatsapp_app_secret=APP_SECRET,
        rate_limit_pin_door=RATE_LIMIT,
        rate_limit_pdv=RATE_LIMIT,
        rate_limit_retail=RATE_LIMIT,
        rate_limit_rest_v2=RATE_LIMIT,
        simulator=False,
        log_format="json",  # production's lines (the readable ones cost 0.2 ms more each)
        **settings,
    )
    return create_app(config, run_worker=False), data


# The paths the floor app serves (bench/floor.py): `make bench`'s door scenarios.
FLOOR_PATHS = tuple(name for name in SCENARIOS if name in report.ORDER)


def floor_app(url: str) -> Any:
    """The floor app on ``url`` (it reads its settings from the environment on import)."""
    import importlib
    import os

    os.environ["FLOOR_DATABASE_URL"] = url
    os.environ["FLOOR_APP_SECRET"] = APP_SECRET
    return importlib.import_module("bench.floor").app


@contextlib.contextmanager
def listening(url: str) -> Iterator[None]:
    """A worker's LISTEN connection in a thread of this process while the block runs, taking
    every NOTIFY as `fidelia worker`'s does (its CPU counted with this process's)."""
    import psycopg

    from fidelia.messaging import intake

    stop = threading.Event()
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(f"LISTEN {intake.CHANNEL}")

    def take() -> None:
        while not stop.is_set():
            for _ in conn.notifies(timeout=0.2):
                pass

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        conn.close()


def run(
    db_kind: str,
    names: list[str],
    n: int,
    profile: str,
    merchants: int = 10,
    floor: bool = False,
    listen: bool = False,
    direct: bool = False,
    k: int = 1,
) -> list[str]:
    out = []
    with (
        tempfile.TemporaryDirectory(prefix="fidelia-hotpath-") as tmp,
        contextlib.ExitStack() as on,
    ):
        pg = PostgresServer().start() if db_kind == "postgresql" else None
        try:
            if pg is not None:
                pg.psql("CREATE DATABASE fidelia")
                url = pg.url("fidelia")
                if listen:
                    on.enter_context(listening(url))
            else:
                url = f"sqlite:///{tmp}/fidelia.db"
            app, data = seeded_app(url, merchants)
            rng = random.Random(7)
            for name in names:
                server = functools.partial(postgres_cpu, pg) if pg is not None else None
                cpu, wall, errors, db = measure(
                    app,
                    name,
                    functools.partial(requests_for, name, url, data, rng=rng),
                    n,
                    profile,
                    RESULTS / f"profile-hotpath-{name}-{db_kind}",
                    server,
                    direct,
                    k,
                )
                unit = "row folded" if name == "fold" else "request"
                digits = 4 if name == "fold" else 2
                line = (
                    f"hotpath {name} {db_kind}: {cpu:.{digits}f} ms CPU/{unit}, "
                    f"{wall:.{digits}f} ms wall, {errors} errors"
                )
                if db is not None:
                    line += f" (PostgreSQL {db:.{digits + 1}f} ms CPU/{unit})"
                if floor and pg is not None and name in FLOOR_PATHS:
                    bare, _, refused, bare_db = measure(
                        floor_app(url),
                        name,
                        functools.partial(requests_for, name, url, data, rng=rng),
                        n,
                        "",
                        RESULTS / f"profile-hotpath-{name}-floor",
                        server,
                        direct,
                        k,
                    )
                    line += (
                        f"; floor {bare:.2f} ms CPU/request ({refused} errors, PostgreSQL "
                        f"{bare_db:.3f}), {cpu / bare:.2f} × the floor's"
                    )
                print(line, flush=True)
                out.append(line)
            app.state.fidelia.db.dispose()
        finally:
            if pg is not None:
                pg.destroy()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="*", help=f"any of {', '.join(SCENARIOS)} (all)")
    parser.add_argument("--db", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("-n", type=int, default=1000, help="requests per scenario")
    parser.add_argument(
        "--merchants",
        type=int,
        default=10,
        help="merchants seeded (10: 100 customers each; 100 or more: 10 each)",
    )
    parser.add_argument(
        "--profile",
        choices=("py-spy", "pyinstrument"),
        default="",
        help="profile each scenario (bench/results/profile-hotpath-*)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="PostgreSQL: also measure the floor app (bench/floor.py) on the same requests",
    )
    parser.add_argument(
        "--direct",
        action="store_true",
        help="hand the requests to the ASGI app without the HTTP client (its CPU not counted)",
    )
    parser.add_argument(
        "--listen",
        action="store_true",
        help="PostgreSQL: a worker's LISTEN connection in this process takes the NOTIFYs",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        default=1,
        metavar="K",
        help="requests under way at once (K clients in this process; 1: one at a time)",
    )
    args = parser.parse_args()
    names = args.scenario or list(SCENARIOS)
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario {', '.join(sorted(unknown))}")
    kinds = ["postgresql", "sqlite"] if args.db == "both" else [args.db]
    for kind in kinds:
        run(
            kind,
            names,
            args.n,
            args.profile,
            args.merchants,
            args.floor,
            args.listen,
            args.direct,
            args.in_flight,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
