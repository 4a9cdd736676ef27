"""`make bench`'s Bling scenarios (issue 13), against the fake Bling of the tests
(tests/fakes/bling.py, in a thread of this process, its rate limit off) and Fidelia as
real processes with production settings:

- **bling-import**: `fidelia bling import --tenant bling --since DATE` reads the contacts
  and the sales (pages of 100, the detail of every order that earns), with
  ``FIDELIA_BLING_REQUESTS_PER_SECOND=0`` (no pacing): orders/s.
- **bling-events**: a backlog of order events (100,000 in the full run) stored as
  `POST /webhooks/bling` stores them (one ``bling_events`` row each, bulk-loaded with COPY),
  then drained by ``workers`` `fidelia worker` processes: each event fetches the order's
  current state from the fake and applies it. Events arrive shuffled and repeated; orders
  the import made earn are cancelled or deleted in the meantime (reversals), new orders
  earn (once), stay open or are cancelled before earning, some are a walk-in's (nobody).
  Events/s from the first to the last one processed, and the worker's CPU per event.

Checks (a failure fails the run): every event done, each order that should earn earned
once (one earn entry, no more), each imported order cancelled or deleted reversed once,
the import's counts, and the ledger's balances add up.
"""

import json
import random
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import seed
from bench.services import BIN, FideliaServer, PostgresServer, _cpu, fidelia_env
from fidelia.kit.migrate import upgrade

DONE, OPEN, CANCELLED = 9, 6, 12  # Bling's sales situations: Atendido, Em aberto, Cancelado
SLUG = "bling"
CLIENT_ID, CLIENT_SECRET = "bench-bling-client", "bench-bling-secret"


@dataclass
class Sizes:
    events: int  # the backlog
    imported: int  # orders the import reads (all "Atendido": each one's detail is read)
    contacts: int
    workers: int = 2  # `fidelia worker` processes draining the backlog

    @classmethod
    def of(cls, quick: bool) -> "Sizes":
        if quick:
            return cls(events=600, imported=150, contacts=100)
        return cls(events=100_000, imported=20_000, contacts=10_000)


def cpf(n: int) -> str:
    """A valid CPF (check digits computed) from a number."""
    digits = [int(c) for c in f"{100_000_000 + n:09d}"[-9:]]
    for length in (9, 10):
        total = sum(d * (length + 1 - i) for i, d in enumerate(digits[:length]))
        digits.append((total * 10 % 11) % 10)
    return "".join(map(str, digits))


@dataclass
class Expected:
    earned: int = 0  # new orders that must earn once
    reversed: int = 0  # imported orders that must be reversed once
    events: int = 0


def run(bench: Any, pg: PostgresServer, sizes: Sizes | None = None) -> None:
    """Both scenarios on their own database of the benchmark's PostgreSQL server; results
    in ``bench.results["bling"]``, failures through ``bench.check``."""
    from fidelia.connectors.bling.crypto import generate_key
    from tests.fakes.bling import FakeBling

    sizes = sizes or Sizes.of(bench.c.quick)
    pg.psql("CREATE DATABASE bling")
    url = pg.url("bling")
    upgrade(url)
    fake = FakeBling(CLIENT_ID, CLIENT_SECRET)
    env = fidelia_env(
        url,
        bench.sink.url,
        FIDELIA_BLING_CLIENT_ID=CLIENT_ID,
        FIDELIA_BLING_CLIENT_SECRET=CLIENT_SECRET,
        FIDELIA_BLING_API_BASE=fake.url,
        FIDELIA_BLING_AUTHORIZE_URL=f"{fake.url}/oauth/authorize",
        FIDELIA_BLING_REQUESTS_PER_SECOND="0",  # the fake has no limit either
        FIDELIA_BLING_RECONCILE_MINUTES="1440",  # not during the measurement
        FIDELIA_ENCRYPTION_KEYS=generate_key(),
        FIDELIA_PUBLIC_URL="http://127.0.0.1:9",
    )
    rng = random.Random(20_261_130)
    try:
        company = fake.add_company("bench-company", "Loja Bench LTDA")
        contacts = _contacts(fake, company, sizes.contacts, rng)
        imported = [
            fake.add_order(company, rng.choice(contacts), produtos=_price(rng), situacao=DONE)
            for _ in range(sizes.imported)
        ]
        since = _connect(url, env, fake, company.id)
        bench.results["bling"] = {
            "sizes": sizes.__dict__,
            "import": _import(bench, url, env, since, sizes, len(imported)),
        }
        bench.results["bling"]["events"] = _events(
            bench, url, env, fake, company, contacts, imported, sizes, rng
        )
    finally:
        fake.close()


def _price(rng: random.Random) -> str:
    return f"{rng.randrange(1_000, 50_000) / 100:.2f}"


def _contacts(fake: Any, company: Any, count: int, rng: random.Random) -> list[int]:
    found = []
    for n in range(count):
        found.append(
            fake.add_contact(
                company,
                nome=f"Cliente {n}",
                documento=cpf(n) if n % 4 else "",
                celular=f"(11) 9{n:08d}" if n % 3 else "",
                email=f"cliente{n}@example.com",
            )
        )
    return found


def _connect(url: str, env: dict[str, str], fake: Any, company_id: str) -> date:
    """A merchant connected through the real OAuth flow (in process); the import the
    connection queued is left for `fidelia bling import`. Returns its date."""
    from fidelia.connectors.bling import service
    from fidelia.connectors.bling.client import Bling
    from fidelia.kit.db import Database
    from fidelia.kit.settings import Settings
    from fidelia.models import BlingImport, Tenant
    from fidelia.tenants.service import create_tenant, set_setting

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        secret_key=env["FIDELIA_SECRET_KEY"],
        bling_client_id=CLIENT_ID,
        bling_client_secret=CLIENT_SECRET,
        bling_api_base=fake.url,
        bling_authorize_url=f"{fake.url}/oauth/authorize",
        bling_requests_per_second=0,
        encryption_keys=env["FIDELIA_ENCRYPTION_KEYS"],
        public_url=env["FIDELIA_PUBLIC_URL"],
    )
    db = Database(url)
    try:
        with db.session() as session:
            create_tenant(session, slug=SLUG, name="Loja Bench")
            for key, value in {
                "currency": "BRL",
                "locale": "pt_BR",
                "timezone": "America/Sao_Paulo",
                "earn_points_per_unit": "1",
                "cashback_percent": "5",
            }.items():
                set_setting(session, SLUG, key, value)
            tenant = session.query(Tenant).filter_by(slug=SLUG).one()
            binding = secrets.token_urlsafe(24)
            authorize = service.start_connect(session, tenant, binding, settings)
        state = authorize.split("state=", 1)[1]
        bling = Bling(db, settings)
        try:
            service.complete_connect(db, bling, fake.issue_code(company_id), state, binding)
        finally:
            bling.close()
        with db.session(readonly=True) as session:
            job = session.query(BlingImport).one()
            return job.since
    finally:
        db.engine.dispose()


def _import(
    bench: Any, url: str, env: dict[str, str], since: date, sizes: Sizes, orders: int
) -> dict[str, Any]:
    bench.say(
        f"bling-import: {sizes.contacts:,} contacts and {orders:,} orders at the fake; "
        f"`fidelia bling import --tenant {SLUG} --since {since}`"
    )
    log = open(bench.work / "bling-import.log", "wb")  # noqa: SIM115
    started = time.monotonic()
    running_at = None  # when the import took its lease: the process has started
    with log:
        proc = subprocess.Popen(
            [str(BIN / "fidelia"), "bling", "import", "--tenant", SLUG, "--since", str(since)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        while proc.poll() is None and time.monotonic() - started < 3_600:
            if running_at is None:
                with seed.Loader(url) as db:
                    if db.scalar("SELECT status FROM bling_imports") != "pending":
                        running_at = time.monotonic()
            time.sleep(0.05)
        proc.wait(10)
    ended = time.monotonic()
    seconds = ended - (running_at or started)
    with seed.Loader(url) as db:
        status, contacts, seen, earned = db.conn.execute(
            "SELECT status, contacts, orders, earned FROM bling_imports"
        ).fetchone()
        complete = int(db.scalar("SELECT COUNT(*) FROM orders WHERE state = 2"))
    ok = proc.returncode == 0 and status == "done" and seen == orders and complete == orders
    detail = (
        f"exit {proc.returncode}, import {status}: {seen} orders read, {earned} earned, "
        f"{complete} complete of {orders} (log {bench.work / 'bling-import.log'})"
    )
    rate = orders / seconds if seconds else 0.0
    result = {
        "orders": orders,
        "contacts": contacts,
        "earned": earned,
        "seconds": round(seconds, 2),
        "seconds_with_start": round(ended - started, 2),
        "orders_per_s": round(rate, 1),
        "check": bench.check("bling-import", ok, detail),
    }
    bench.say(
        f"bling-import: {orders:,} orders ({earned:,} earned) and {contacts:,} contacts in "
        f"{seconds:.1f} s: {rate:,.0f} orders/s ({ended - started:.1f} s with the process "
        f"start; {result['check']})"
    )
    return result


def _backlog(
    fake: Any,
    company: Any,
    contacts: list[int],
    imported: list[int],
    sizes: Sizes,
    rng: random.Random,
) -> tuple[list[tuple[str, int]], Expected]:
    """Change the fake's orders as a shop's day would, and list the events Bling would
    have sent meanwhile (event, order id), shuffled: they arrive out of order."""
    expected = Expected()
    events: list[tuple[str, int]] = []
    # A tenth of the imported (earned) orders are cancelled, a twentieth deleted; a tenth
    # more are merely touched (an update that changes nothing that counts).
    for order_id in imported[: len(imported) // 10]:
        fake.update_order(company, order_id, situacao=CANCELLED)
        events.append(("order.updated", order_id))
        expected.reversed += 1
    for order_id in imported[len(imported) // 10 : len(imported) * 3 // 20]:
        fake.delete_order(company, order_id)
        events += [("order.updated", order_id), ("order.deleted", order_id)]
        expected.reversed += 1
    for order_id in imported[len(imported) * 3 // 20 : len(imported) // 4]:
        events.append(("order.updated", order_id))
    # New orders until the backlog is full: created, updated (and half of them updated
    # again); 75 % end "Atendido", 15 % open, 10 % cancelled before they earned. One in
    # twenty is a walk-in's (no contact: nobody earns); a fifth of the contacts are new.
    while len(events) < sizes.events:
        roll = rng.random()
        situation = DONE if roll < 0.75 else OPEN if roll < 0.9 else CANCELLED
        walk_in = rng.random() < 0.05
        if walk_in:
            contact = None
        elif rng.random() < 0.2:
            n = len(contacts) + rng.randrange(10**6)
            contact = fake.add_contact(
                company, nome=f"Nova {n}", documento=cpf(n), celular=f"(21) 9{n:08d}"
            )
        else:
            contact = rng.choice(contacts)
        order_id = fake.add_order(company, contact, produtos=_price(rng), situacao=situation)
        events += [("order.created", order_id), ("order.updated", order_id)]
        if rng.random() < 0.5:
            events.append(("order.updated", order_id))
        if situation == DONE and not walk_in:
            expected.earned += 1
    rng.shuffle(events)
    expected.events = len(events)
    return events, expected


def _store(url: str, company_id: str, events: list[tuple[str, int]], fake: Any) -> None:
    """The rows `intake.store` writes for each signed delivery, bulk-loaded."""
    at = datetime.now(UTC)
    company = fake.companies[company_id]

    def rows() -> Any:
        for event, order_id in events:
            order = company.orders.get(order_id)
            data = (
                {k: order[k] for k in ("id", "numero", "total", "contato", "situacao")}
                if order is not None and event != "order.deleted"
                else {"id": order_id}
            )
            event_id = secrets.token_hex(12)
            payload = {
                "eventId": event_id,
                "date": at.isoformat(),
                "version": "v1",
                "event": event,
                "companyId": company_id,
                "data": data,
            }
            yield (
                event_id,
                company_id,
                event,
                str(order_id),
                json.dumps(payload),
                "pending",
                0,
                at,
                at,
            )

    with seed.Loader(url) as db:
        db.insert(
            "bling_events",
            (
                "event_id",
                "company_id",
                "event",
                "resource_id",
                "payload",
                "status",
                "attempts",
                "next_attempt_at",
                "received_at",
            ),
            rows(),
        )
        db.analyze()


def _events(
    bench: Any,
    url: str,
    env: dict[str, str],
    fake: Any,
    company: Any,
    contacts: list[int],
    imported: list[int],
    sizes: Sizes,
    rng: random.Random,
) -> dict[str, Any]:
    started = time.monotonic()
    events, expected = _backlog(fake, company, contacts, imported, sizes, rng)
    _store(url, company.id, events, fake)
    with seed.Loader(url) as db:
        entries_before = int(db.scalar("SELECT COUNT(*) FROM ledger_entries"))
        fetched_before = len(fake.requests)
    bench.say(
        f"bling-events: {len(events):,} events stored in {time.monotonic() - started:.1f} s "
        f"({expected.earned:,} new orders to earn, {expected.reversed:,} to reverse); "
        f"draining with {sizes.workers} `fidelia worker`"
    )
    workers = FideliaServer(env, bench.work, name="bling")
    cpu = 0.0
    try:
        procs = [workers._spawn(["worker"], f"bling-worker-{i}.log") for i in range(sizes.workers)]
        drained, cpu_start = _wait(url, bench, len(events), procs)
        cpu = sum(_cpu(p.pid) for p in procs) - cpu_start
    finally:
        workers.stop()
    with seed.Loader(url) as db:
        statuses = dict(
            db.conn.execute("SELECT status, COUNT(*) FROM bling_events GROUP BY status").fetchall()
        )
        first, last = db.conn.execute(
            "SELECT MIN(processed_at), MAX(processed_at) FROM bling_events"
        ).fetchone()
        earned_new = int(
            db.scalar(
                "SELECT COUNT(DISTINCT source_id) FROM ledger_entries WHERE kind = 'earn' "
                "AND source_type = 'order' AND id > ?",
                entries_before,
            )
        )
        twice = int(
            db.scalar(
                "SELECT COUNT(*) FROM (SELECT source_id, account FROM ledger_entries "
                "WHERE kind = 'earn' AND source_type = 'order' GROUP BY source_id, account "
                "HAVING COUNT(*) > 1) AS t"
            )
        )
        reversed_ = int(
            db.scalar(
                "SELECT COUNT(DISTINCT source_id) FROM ledger_entries "
                "WHERE source_type = 'order-cancel'"
            )
        )
        cancelled = int(db.scalar("SELECT COUNT(*) FROM orders WHERE state = 3"))
    problems = _ledger_problems(url)
    span = (last - first).total_seconds() if first and last else 0.0
    done = statuses.get("done", 0) + statuses.get("ignored", 0)
    rate = done / span if span else 0.0
    ok = (
        drained
        and statuses.get("done", 0) == len(events)
        and earned_new == expected.earned
        and twice == 0
        and reversed_ == expected.reversed
        and not problems
    )
    detail = (
        f"events {statuses}; {earned_new} new orders earned for {expected.earned} expected, "
        f"{twice} earned twice, {reversed_} reversed for {expected.reversed} expected "
        f"({cancelled} orders cancelled in all); ledger: {problems[:3] or 'ok'}"
    )
    result = {
        "events": len(events),
        "workers": sizes.workers,
        "seconds": round(span, 2),
        "events_per_s": round(rate, 1),
        "cpu_ms_per_event": round(1000 * cpu / max(1, done), 2),
        "bling_requests": len(fake.requests) - fetched_before,
        "earned": earned_new,
        "reversed": reversed_,
        "check": bench.check("bling-events", ok, detail),
    }
    bench.say(
        f"bling-events: {len(events):,} events in {span:.1f} s: {rate:,.0f} events/s with "
        f"{sizes.workers} workers, {result['cpu_ms_per_event']:.2f} ms of worker CPU per "
        f"event, {result['bling_requests']:,} requests to the fake ({result['check']})"
    )
    return result


def _wait(url: str, bench: Any, total: int, procs: list[Any]) -> tuple[bool, float]:
    """Until no event is pending (bounded by a generous rate floor); whether it drained, and
    the workers' CPU time when the first events were done (their start-up is not counted)."""
    deadline = time.monotonic() + 120 + total / 20
    last_said = time.monotonic()
    cpu_start: float | None = None
    while time.monotonic() < deadline:
        with seed.Loader(url) as db:
            left = int(db.scalar("SELECT COUNT(*) FROM bling_events WHERE status = 'pending'"))
        if cpu_start is None and left < total:
            cpu_start = sum(_cpu(p.pid) for p in procs)
        if left == 0:
            return True, cpu_start or 0.0
        if any(p.poll() is not None for p in procs):
            bench.say("bling-events: a worker exited; see its log")
            return False, cpu_start or 0.0
        if time.monotonic() - last_said > 30:
            bench.say(f"bling-events: {left:,} events pending")
            last_said = time.monotonic()
        time.sleep(0.2)
    return False, cpu_start or 0.0


def _ledger_problems(url: str) -> list[str]:
    from fidelia.kit.db import Database
    from tests.support.helpers import ledger_invariants

    db = Database(url)
    try:
        return ledger_invariants(db)
    finally:
        db.engine.dispose()


def lines(results: dict[str, Any]) -> list[str]:
    """The figures, for the end of a run's output."""
    found = results.get("bling")
    if not found:
        return []
    out = []
    if "import" in found:
        i = found["import"]
        out.append(
            f"bling import_orders_per_s={i['orders_per_s']:.1f} orders={i['orders']} "
            f"seconds={i['seconds']:.1f} check={'ok' if i['check'] == 'ok' else 'FAILED'}"
        )
    if "events" in found:
        e = found["events"]
        out.append(
            f"bling events_per_s={e['events_per_s']:.1f} events={e['events']} "
            f"workers={e['workers']} cpu_ms_per_event={e['cpu_ms_per_event']:.2f} "
            f"check={'ok' if e['check'] == 'ok' else 'FAILED'}"
        )
    return out


def table(results: dict[str, Any]) -> str:
    """The figures as a Markdown table, for the generated block of BENCHMARKS.md."""
    found = results.get("bling") or {}
    rows = ["| Bling scenario | what | size | rate | CPU | check |", "|---|---|--:|--:|--:|---|"]
    if "import" in found:
        i = found["import"]
        rows.append(
            f"| `bling-import` | `fidelia bling import` against the fake, no pacing "
            f"| {i['orders']:,} orders, {i['contacts']:,} contacts | {i['orders_per_s']:,.1f} "
            f"orders/s | – | {i['check']} |"
        )
    if "events" in found:
        e = found["events"]
        rows.append(
            f"| `bling-events` | a stored backlog drained by {e['workers']} `fidelia worker` "
            f"| {e['events']:,} events | {e['events_per_s']:,.1f} events/s "
            f"| {e['cpu_ms_per_event']:.2f} ms/event | {e['check']} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Only the Bling scenarios: `python bench/bling.py [--quick] [--events N] ...`."""
    import argparse
    import tempfile

    from bench.run import Bench, Config
    from bench.services import GraphSink

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int)
    parser.add_argument("--imported", type=int)
    parser.add_argument("--contacts", type=int)
    parser.add_argument("--workers", type=int)
    args = parser.parse_args(argv)
    config = Config.for_quick() if args.quick else Config(quick=False)
    sizes = Sizes.of(args.quick)
    sizes.events = args.events or sizes.events
    sizes.imported = args.imported or sizes.imported
    sizes.contacts = args.contacts or sizes.contacts
    sizes.workers = args.workers or sizes.workers
    with tempfile.TemporaryDirectory(prefix="fidelia-bling-") as tmp, GraphSink() as sink:
        bench = Bench(config, Path(tmp) / "out", Path(tmp))
        bench.sink = sink
        pg = PostgresServer().start()
        try:
            run(bench, pg, sizes)
        finally:
            if bench.failures:
                bench.keep_logs()
            pg.destroy()
        print(table(bench.results))
        for line in lines(bench.results):
            print(line)
    return 1 if bench.failures else 0


if __name__ == "__main__":
    sys.exit(main())
