"""Small plain helpers for test data and for talking to the app like its clients do."""

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import event, func, select

from fidelia.kit.db import Database
from fidelia.kit.security import sign_sha256
from fidelia.kit.settings import Settings
from fidelia.models import Balance, LedgerEntry, Tenant
from fidelia.rewards.service import create_reward
from fidelia.simulator.routes import cloud_api_payload
from fidelia.tenants.service import create_group, create_tenant, issue_api_key, set_setting


def make_tenant(
    db: Database, slug: str = "cafe", name: str = "Café Uno", **settings: str
) -> tuple[Tenant, str]:
    """A merchant with an API key; ``settings`` go through ``tenant set``."""
    with db.session() as session:
        tenant = create_tenant(session, slug=slug, name=name)
        for key, value in settings.items():
            set_setting(session, slug, key, str(value))
        issued = issue_api_key(session, tenant)
    return tenant, issued.api_key


def make_reward(db: Database, tenant: Tenant, points: int = 10, title: str = "Café gratis") -> int:
    with db.session() as session:
        reward = create_reward(
            session, session.get_one(Tenant, tenant.id), title=title, points=points
        )
        return reward.id


def make_group(db: Database, slug: str, name: str, *tenant_slugs: str) -> int:
    with db.session() as session:
        return create_group(session, slug=slug, name=name, tenant_slugs=list(tenant_slugs)).id


def webhook_body(
    settings: Settings,
    number: str | None,
    text: str,
    message_id: str | None = None,
    user_id: str | None = None,
    profile_name: str | None = None,
) -> bytes:
    payload: dict[str, Any] = cloud_api_payload(
        number or "+10000000000",
        text,
        settings.bot_number,
        settings.whatsapp_phone_number_id,
        profile_name,
    )
    value = payload["entry"][0]["changes"][0]["value"]
    message = value["messages"][0]
    message["id"] = message_id or f"wamid.test.{secrets.token_hex(8)}"
    if user_id:
        value["contacts"][0]["user_id"] = user_id
    if number is None:
        del message["from"]
        del value["contacts"][0]["wa_id"]
    return json.dumps(payload).encode()


def signed_headers(settings: Settings, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign_sha256(body, settings.whatsapp_app_secret),
    }


def process_inbound(app: Any, workers: int = 1, batch: int = 200) -> int:
    """What the worker does with stored WhatsApp messages (messaging/intake.py), until none
    is pending; ``app`` is the FastAPI app or a TestClient of it. With ``workers`` > 1,
    that many workers take small batches at once (races between workers). Returns how many
    messages were taken."""
    from concurrent.futures import ThreadPoolExecutor

    from fidelia.messaging import intake

    state = getattr(app, "app", app).state.fidelia

    def drain() -> int:
        total = 0
        while taken := intake.process_batch(state.db, state.bot, batch):
            total += taken
        return total

    if workers == 1:
        return drain()
    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(lambda _: drain(), range(workers)))


def send_whatsapp(client: Any, settings: Settings, number: str | None, text: str, **kw: Any) -> Any:
    """Deliver a message as Meta does, then let the worker process it (store first, then
    process): the bot's effects are there when this returns; its replies are in the outbox."""
    body = webhook_body(settings, number, text, **kw)
    response = client.post(
        "/webhooks/whatsapp", content=body, headers=signed_headers(settings, body)
    )
    assert response.status_code == 200, response.text
    if hasattr(client, "app"):  # a TestClient: its app's worker processes it now
        process_inbound(client)
    return response


def generate_pin(client: Any, api_key: str, **body: Any) -> str:
    response = client.post(
        "/api/v1/integraciones/pin/generar", headers={"X-API-Key": api_key}, json=body or None
    )
    assert response.status_code == 200, response.text
    return str(response.json()["pin"])


def ledger_invariants(db: Database) -> list[str]:
    """Every balance equals the sum of its entries, and each entry's balance_after chains."""
    problems = []
    with db.session(readonly=True) as session:
        sums = {
            (p, c, a): int(total)
            for p, c, a, total in session.execute(
                select(
                    LedgerEntry.program_id,
                    LedgerEntry.customer_id,
                    LedgerEntry.account,
                    func.sum(LedgerEntry.amount),
                ).group_by(LedgerEntry.program_id, LedgerEntry.customer_id, LedgerEntry.account)
            )
        }
        for bal in session.scalars(select(Balance)):
            key = (bal.program_id, bal.customer_id, bal.account)
            if sums.pop(key, 0) != bal.amount:
                problems.append(f"balance {key} = {bal.amount} but entries sum to something else")
            if bal.amount < 0:
                problems.append(f"balance {key} is negative: {bal.amount}")
        problems.extend(f"entries without a balance: {key}" for key in sums)
    return problems


class LiveServer:
    """The app served by uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app: FastAPI) -> None:
        self.config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", proxy_headers=False
        )
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        deadline = time.time() + 15
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("live server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kw)


def make_shop(db: Database, slug: str = "cafe", **columns: object) -> Tenant:
    """A merchant (``make_tenant``) with these columns set, detached for reading."""
    tenant, _ = make_tenant(db, slug=slug, name=slug.title())
    with db.session() as session:
        row = session.get_one(Tenant, tenant.id)
        for name, value in columns.items():
            setattr(row, name, value)
        session.flush()
        session.expunge(row)
        return row


def engines(db: Database) -> list[Any]:
    """The engines ``db``'s transactions run on: the sync one and, on PostgreSQL, the async
    one's (the doors' writes on the event loop, ``Database.on_loop``)."""
    return [db.engine] if db.is_sqlite else [db.engine, db.async_engine.sync_engine]


def sent(db: Database, call: Any) -> tuple[Any, list[str]]:
    """``call()``'s result and the statements it sent on ``db``'s engines, through SQLAlchemy
    or on the driver's connection (``kit/driver.py``), whitespace folded."""
    return _recorded(db, call, by_driver_only=False)


def sent_by_driver(db: Database, call: Any) -> tuple[Any, list[str]]:
    """``sent``, only the statements sent on the driver's own connection (``kit/driver``:
    no SQLAlchemy execution context)."""
    return _recorded(db, call, by_driver_only=True)


def _recorded(db: Database, call: Any, by_driver_only: bool) -> tuple[Any, list[str]]:
    statements: list[str] = []

    def listen(*args: Any) -> None:
        # args[4]: the execution context, which SQLAlchemy's own path always has.
        if not by_driver_only or args[4] is None:
            statements.append(" ".join(args[2].split()))

    for engine in engines(db):
        event.listen(engine, "before_cursor_execute", listen)
    try:
        return call(), statements
    finally:
        for engine in engines(db):
            event.remove(engine, "before_cursor_execute", listen)


def returned_when_cancelled(call: Callable[[], Awaitable[object]], after: float = 0.05) -> float:
    """``call()`` awaited under a deadline of ``after`` seconds that passes while it runs:
    the moment the await returned (0.0 when the cancellation cut it short). Fails if the
    cancellation never came (it comes at the caller's next checkpoint)."""

    async def request() -> float:
        back = 0.0
        with anyio.move_on_after(after):
            await call()
            back = time.monotonic()
            await anyio.sleep(0)
            raise AssertionError("not cancelled")
        return back

    return asyncio.run(request())
