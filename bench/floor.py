"""The floor: the least code that does each hot path's statements, for `make bench` to put
beside Fidelia (issue 14). Same tables (Fidelia's schema, migrated, in a copy of the seeded
database), same requests from wrk, same server (uvicorn, 2 workers, uvloop, httptools),
no ORM, no dependency injection, no validation beyond what the statements need.

    FLOOR_DATABASE_URL=postgresql://... FLOOR_APP_SECRET=... \
        uvicorn bench.floor:app --workers 2 --port 8001

Each path is one transaction of plain SQL on psycopg's async connections (asyncpg is not
in the project's venv), statements prepared by the server from their first use, and what
a merchant's data is (API keys, program, rewards) cached per process like Fidelia caches
it. What a path does, per request:

- credit (``POST /webhooks/whatsapp``): HMAC check, dedupe row, PIN activation (its
  customer found in the same statement), balance upsert, ledger entry, outbox row.
- PIN generation: key from the cache, one ``INSERT ... ON CONFLICT DO NOTHING``.
- lookup: one query (identifier, customer, merchant, balance); next reward from the cache.
- public redemption: customer, last earning (the recent-visit rule), conditional balance
  debit, redemption row, ledger entry.
- POS redeem (seed 001): the idempotency row, customer by CPF, conditional debit,
  redemption, ledger entry, the stored answer.
- POS order, retail transaction, `/v2` sale (seeds 001, 002, 004): the idempotency row
  (retail, `/v2`), customer by identifier, the order row, balance upsert, ledger entry.

Answers carry the fields the doors answer, not their every detail: the floor measures what
the database and the web stack cost, not the wire formats.
"""

import asyncio
import hashlib
import hmac
import json
import os
import random
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from fastapi import FastAPI, Request, Response

URL = os.environ.get("FLOOR_DATABASE_URL", "")
APP_SECRET = os.environ.get("FLOOR_APP_SECRET", "").encode()
POOL_SIZE = int(os.environ.get("FLOOR_POOL_SIZE", "10"))
PIN_RE = re.compile(r"\b(\d{6,8})\b")


class Pool:
    """A fixed set of connections per process (autocommit: a transaction is explicit)."""

    def __init__(self, url: str, size: int) -> None:
        self.url, self.size, self.made = url, size, 0
        self.idle: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self.idle.empty() and self.made < self.size:
            self.made += 1
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, prepare_threshold=0
            )
        else:
            conn = await self.idle.get()
        try:
            async with conn.transaction():
                yield conn
        finally:
            self.idle.put_nowait(conn)


pool = Pool(URL, POOL_SIZE)
app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
# Per process, loaded on first use (merchant data changes a few times a day).
TENANTS: dict[int, tuple[int, str, int]] = {}  # id -> (program_id, name, window minutes)
KEYS: dict[str, int] = {}  # API key (or "token:key") -> tenant id
REWARDS: dict[int, list[tuple[int, str, int]]] = {}  # tenant -> [(id, title, points)]


def ok(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status, media_type="application/json")


def now() -> datetime:
    return datetime.now(UTC)


async def tenant(conn: psycopg.AsyncConnection[Any], tenant_id: int) -> tuple[int, str, int]:
    found = TENANTS.get(tenant_id)
    if found is None:
        cur = await conn.execute(
            "SELECT program_id, name, verification_window_minutes FROM tenants WHERE id = %s",
            (tenant_id,),
        )
        row = await cur.fetchone()
        if row is None:
            raise LookupError(tenant_id)
        found = TENANTS[tenant_id] = (row[0], row[1], row[2])
    return found


async def rewards(conn: psycopg.AsyncConnection[Any], tenant_id: int) -> list[Any]:
    found = REWARDS.get(tenant_id)
    if found is None:
        cur = await conn.execute(
            "SELECT id, title, points_required FROM rewards WHERE tenant_id = %s AND active "
            "ORDER BY points_required",
            (tenant_id,),
        )
        found = REWARDS[tenant_id] = [tuple(r) for r in await cur.fetchall()]
    return found


async def by_key(conn: psycopg.AsyncConnection[Any], secret: str) -> int | None:
    found = KEYS.get(secret)
    if found is None:
        cur = await conn.execute(
            "SELECT tenant_id FROM api_keys WHERE secret_digest = %s AND revoked_at IS NULL",
            (hashlib.sha256(secret.encode()).hexdigest(),),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        found = KEYS[secret] = row[0]
    return found


async def customer_by(
    conn: psycopg.AsyncConnection[Any], program_id: int, kind: str, value: str
) -> int | None:
    cur = await conn.execute(
        "SELECT customer_id FROM customer_identifiers WHERE program_id = %s AND kind = %s "
        "AND value = %s",
        (program_id, kind, value),
    )
    row = await cur.fetchone()
    return None if row is None else int(row[0])


async def earn(
    conn: psycopg.AsyncConnection[Any],
    program_id: int,
    tenant_id: int,
    customer_id: int,
    points: int,
    source_type: str,
    source_id: str,
    at: datetime,
) -> int:
    """Balance upsert and ledger entry; returns the balance after."""
    cur = await conn.execute(
        "INSERT INTO balances (program_id, customer_id, account, amount) "
        "VALUES (%s, %s, 'points', %s) ON CONFLICT (program_id, customer_id, account) "
        "DO UPDATE SET amount = balances.amount + excluded.amount RETURNING amount",
        (program_id, customer_id, points),
    )
    after = (await cur.fetchone())[0]  # type: ignore[index]
    await conn.execute(
        "INSERT INTO ledger_entries (program_id, tenant_id, customer_id, account, kind, amount, "
        "balance_after, source_type, source_id, remaining, created_at) "
        "VALUES (%s, %s, %s, 'points', 'earn', %s, %s, %s, %s, %s, %s)",
        (program_id, tenant_id, customer_id, points, after, source_type, source_id, points, at),
    )
    return int(after)


async def spend(
    conn: psycopg.AsyncConnection[Any],
    program_id: int,
    tenant_id: int,
    customer_id: int,
    reward_id: int,
    points: int,
    origin: str,
    original_key: str | None,
    at: datetime,
) -> tuple[int, int, int] | None:
    """Conditional debit, redemption row, ledger entry: (redemption id, entry id, left),
    or None when the points are not there."""
    cur = await conn.execute(
        "UPDATE balances SET amount = amount - %s WHERE program_id = %s AND customer_id = %s "
        "AND account = 'points' AND amount >= %s RETURNING amount",
        (points, program_id, customer_id, points),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    left = int(row[0])
    cur = await conn.execute(
        "INSERT INTO redemptions (program_id, tenant_id, customer_id, reward_id, points, value, "
        "status, origin, external_code, created_at, original_key) "
        "VALUES (%s, %s, %s, %s, %s, 0, 'done', %s, %s, %s, %s) RETURNING id",
        (program_id, tenant_id, customer_id, reward_id, points, origin)
        + (secrets.token_hex(8).upper(), at, original_key),
    )
    redemption = (await cur.fetchone())[0]  # type: ignore[index]
    cur = await conn.execute(
        "INSERT INTO ledger_entries (program_id, tenant_id, customer_id, account, kind, amount, "
        "balance_after, source_type, source_id, created_at) "
        "VALUES (%s, %s, %s, 'points', 'spend', %s, %s, 'redemption', %s, %s) RETURNING id",
        (program_id, tenant_id, customer_id, -points, left, str(redemption), at),
    )
    entry = (await cur.fetchone())[0]  # type: ignore[index]
    return int(redemption), int(entry), left


# -- seed 000 and the WhatsApp webhook --------------------------------------------------------


@app.post("/webhooks/whatsapp")
async def webhook(request: Request) -> Response:
    body = await request.body()
    sent = request.headers.get("x-hub-signature-256", "")
    expected = "sha256=" + hmac.new(APP_SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(sent, expected):
        return ok({"error": "bad signature"}, 401)
    value = json.loads(body)["entry"][0]["changes"][0]["value"]
    namespace = value["metadata"]["display_phone_number"]
    for message in value.get("messages", []):
        number = "+" + message["from"]
        text = message.get("text", {}).get("body", "")
        found = PIN_RE.search(text)
        at = now()
        async with pool.tx() as conn:
            cur = await conn.execute(
                "INSERT INTO inbound_messages (message_id, wa_number, bot_number, body, status, "
                "received_at, processed_at) VALUES (%s, %s, %s, %s, 'done', %s, %s) "
                "ON CONFLICT (message_id) DO NOTHING RETURNING message_id",
                (message["id"], number, namespace, text, at, at),
            )
            if await cur.fetchone() is None or found is None:
                continue  # a repeat, or not a PIN: the floor answers nothing
            cur = await conn.execute(
                "UPDATE pins SET status = 'used', used_at = %s, customer_id = ("
                " SELECT ci.customer_id FROM customer_identifiers ci JOIN tenants t"
                " ON t.program_id = ci.program_id WHERE t.id = pins.tenant_id"
                " AND ci.kind = 'whatsapp' AND ci.value = %s) "
                "WHERE namespace = %s AND code = %s AND status = 'open' AND expires_at > %s "
                "RETURNING id, tenant_id, points, customer_id",
                (at, number, namespace, found.group(1), at),
            )
            pin = await cur.fetchone()
            if pin is None or pin[3] is None:
                continue  # unknown PIN or sender: Fidelia replies; the floor's data has none
            pin_id, tenant_id, points, customer_id = pin
            program_id = (await tenant(conn, tenant_id))[0]
            after = await earn(
                conn, program_id, tenant_id, customer_id, points, "pin", str(pin_id), at
            )
            payload = {
                "messaging_product": "whatsapp",
                "to": message["from"],
                "type": "text",
                "text": {"body": f"Sumaste {points} puntos. Tu saldo: {after} puntos."},
            }
            await conn.execute(
                "INSERT INTO outbox (tenant_id, channel, payload, status, attempts, "
                "next_attempt_at, created_at) VALUES (%s, 'whatsapp', %s, 'pending', 0, %s, %s)",
                (tenant_id, json.dumps(payload), at, at),
            )
    return ok({"ok": True})


@app.post("/api/v1/integraciones/pin/generar")
async def generar(request: Request) -> Response:
    at = now()
    async with pool.tx() as conn:
        tenant_id = await by_key(conn, request.headers.get("x-api-key", ""))
        if tenant_id is None:
            return ok({"error": "UNAUTHORIZED"}, 401)
        while True:
            code = f"{random.randrange(10**7, 10**8)}"
            cur = await conn.execute(
                "INSERT INTO pins (tenant_id, namespace, code, status, points, created_at, "
                "expires_at) VALUES (%s, '50600000000', %s, 'open', 10, %s, %s) "
                "ON CONFLICT (namespace, code) WHERE status = 'open' DO NOTHING RETURNING id",
                (tenant_id, code, at, at + timedelta(minutes=30)),
            )
            if await cur.fetchone() is not None:
                break
    return ok(
        {
            "pin": code,
            "expires_at": (at + timedelta(minutes=30)).isoformat(timespec="seconds"),
            "expires_in": 1800,
            "id_comercio": tenant_id,
            "whatsapp_url": f"https://wa.me/50600000000?text=Quiero+activar+mi+PIN:+{code}",
        }
    )


@app.get("/api/v1/redimir/puntos/{wa}")
async def puntos(wa: str) -> Response:
    async with pool.tx() as conn:
        cur = await conn.execute(
            "SELECT c.tenant_id, t.name, COALESCE(b.amount, 0) FROM customer_identifiers ci "
            "JOIN customers c ON c.id = ci.customer_id JOIN tenants t ON t.id = c.tenant_id "
            "LEFT JOIN balances b ON b.program_id = ci.program_id AND b.customer_id = c.id "
            "AND b.account = 'points' WHERE ci.kind = 'whatsapp' AND ci.value = %s",
            (wa,),
        )
        rows = await cur.fetchall()
        data = []
        for tenant_id, name, points in rows:
            nxt = next((r for r in await rewards(conn, tenant_id) if r[2] > points), None)
            data.append(
                {
                    "tipo": "individual",
                    "nombre": name,
                    "id_comercio": tenant_id,
                    "comercios": [tenant_id],
                    "puntos": points,
                    "proxima_recompensa": None
                    if nxt is None
                    else {
                        "titulo": nxt[1],
                        "puntos_requeridos": nxt[2],
                        "puntos_faltantes": nxt[2] - points,
                    },
                }
            )
    if not data:
        return ok({"error": "CUSTOMER_NOT_FOUND"}, 404)
    return ok({"total": len(data), "data": data})


@app.post("/api/v1/redimir/canjear")
async def canjear(request: Request) -> Response:
    body = json.loads(await request.body())
    tenant_id, reward_id = int(body["id_comercio"]), int(body["id_promocion"])
    at = now()
    async with pool.tx() as conn:
        program_id, _, window = await tenant(conn, tenant_id)
        reward = next((r for r in await rewards(conn, tenant_id) if r[0] == reward_id), None)
        customer_id = await customer_by(conn, program_id, "whatsapp", body["whatsapp"])
        if reward is None or customer_id is None:
            return ok({"error": "NOT_FOUND"}, 404)
        cur = await conn.execute(
            "SELECT MAX(created_at) FROM ledger_entries WHERE tenant_id = %s AND customer_id = %s "
            "AND kind = 'earn'",
            (tenant_id, customer_id),
        )
        last = (await cur.fetchone())[0]  # type: ignore[index]
        if last is None or at - last > timedelta(minutes=window):
            return ok({"error": "VERIFICATION_REQUIRED"}, 403)
        done = await spend(
            conn, program_id, tenant_id, customer_id, reward_id, reward[2], "pin", None, at
        )
    if done is None:
        return ok({"error": "INSUFFICIENT_POINTS"}, 422)
    return ok({"puntos_restantes": done[2], "recompensa": reward[1], "mensaje": "Canje hecho."})


# -- seed 001 (POS), seed 002 (retail), seed 004 (/v2) ---------------------------------------


async def by_token(conn: psycopg.AsyncConnection[Any], bearer: str) -> int | None:
    """A /v2 access token's merchant (cached like API keys)."""
    found = KEYS.get("bearer:" + bearer)
    if found is None:
        cur = await conn.execute(
            "SELECT tenant_id FROM access_tokens WHERE digest = %s AND revoked_at IS NULL "
            "AND expires_at > %s",
            (hashlib.sha256(bearer.encode()).hexdigest(), now()),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        found = KEYS["bearer:" + bearer] = row[0]
    return found


def basic_secret(request: Request) -> str:
    import base64

    raw = request.headers.get("authorization", "")[6:]
    return base64.b64decode(raw).decode().partition(":")[2]


async def claim(
    conn: psycopg.AsyncConnection[Any], tenant_id: int, scope: str, key: str, body: bytes, at: Any
) -> tuple[int | None, Any]:
    """The idempotency row: (its id, None) when new, (None, the stored answer) on a repeat."""
    cur = await conn.execute(
        "INSERT INTO idempotency_keys (tenant_id, scope, key, request_hash, status_code, "
        "created_at) VALUES (%s, %s, %s, %s, 200, %s) "
        "ON CONFLICT (tenant_id, scope, key) DO NOTHING RETURNING id",
        (tenant_id, scope, key, hashlib.sha256(body).hexdigest(), at),
    )
    row = await cur.fetchone()
    if row is not None:
        return int(row[0]), None
    cur = await conn.execute(
        "SELECT response FROM idempotency_keys WHERE tenant_id = %s AND scope = %s AND key = %s",
        (tenant_id, scope, key),
    )
    return None, (await cur.fetchone())[0]  # type: ignore[index]


async def keep(conn: psycopg.AsyncConnection[Any], claim_id: int, answer: Any) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET response = %s WHERE id = %s", (json.dumps(answer), claim_id)
    )


async def order(
    conn: psycopg.AsyncConnection[Any],
    program_id: int,
    tenant_id: int,
    customer_id: int,
    original_id: str,
    total: int,
    at: datetime,
) -> tuple[int, int, int]:
    """A completed order earning 1 point per currency unit: (order id, points, balance).
    Upserted by its original id, as Fidelia does: an order sent again (wrk cycles through
    its requests) earns nothing more and answers with the order it already is."""
    points = total // 100
    cur = await conn.execute(
        "INSERT INTO orders (tenant_id, program_id, customer_id, original_id, state, total, "
        "earned_points, earned_cashback, refunded, reversed_points, reversed_cashback, details, "
        "completed_at, created_at, updated_at) "
        "VALUES (%s, %s, %s, %s, 2, %s, %s, 0, 0, 0, 0, '{}', %s, %s, %s) "
        "ON CONFLICT (tenant_id, original_id) DO NOTHING RETURNING id",
        (tenant_id, program_id, customer_id, original_id, total, points, at, at, at),
    )
    row = await cur.fetchone()
    if row is None:
        cur = await conn.execute(
            "SELECT id, earned_points FROM orders WHERE tenant_id = %s AND original_id = %s",
            (tenant_id, original_id),
        )
        known = await cur.fetchone()
        return int(known[0]), int(known[1]), 0  # type: ignore[index]
    order_id = row[0]
    after = await earn(conn, program_id, tenant_id, customer_id, points, "order", str(order_id), at)
    return int(order_id), points, after


@app.post("/v1/pvt/POS/rewards/{reward_id}/redeem")
async def pos_redeem(reward_id: int, request: Request) -> Response:
    raw = await request.body()
    body = json.loads(raw)
    at = now()
    async with pool.tx() as conn:
        tenant_id = await by_key(conn, basic_secret(request))
        if tenant_id is None:
            return ok({"Success": False}, 401)
        claim_id, replay = await claim(conn, tenant_id, "pdv.redeem", body["OriginalKey"], raw, at)
        if claim_id is None:
            return ok(replay)
        program_id = (await tenant(conn, tenant_id))[0]
        reward = next((r for r in await rewards(conn, tenant_id) if r[0] == reward_id), None)
        customer_id = await customer_by(conn, program_id, "cpf", body["CustomerId"])
        if reward is None or customer_id is None:
            return ok({"Success": False}, 404)
        done = await spend(
            conn, program_id, tenant_id, customer_id, reward_id, reward[2], "pdv",
            body["OriginalKey"], at,
        )  # fmt: skip
        if done is None:
            return ok({"Success": False}, 422)
        answer = {
            "Success": True,
            "Result": {
                "RewardId": 1_000_000_000 + done[0],
                "RewardConfigurationId": reward_id,
                "Point": {"PointId": done[1], "Quantity": -reward[2]},
                "OriginalKey": body["OriginalKey"],
            },
        }
        await keep(conn, claim_id, answer)
    return ok(answer)


@app.post("/v1/pvt/POS/orders")
async def pos_order(request: Request) -> Response:
    body = json.loads(await request.body())
    at = now()
    async with pool.tx() as conn:
        tenant_id = await by_key(conn, basic_secret(request))
        if tenant_id is None:
            return ok({"Success": False}, 401)
        program_id = (await tenant(conn, tenant_id))[0]
        customer_id = await customer_by(conn, program_id, "cpf", body["Customer"]["Document"])
        if customer_id is None:
            return ok({"Success": False}, 404)
        total = round(float(body["OrderTotal"]) * 100)
        order_id, points, _ = await order(
            conn, program_id, tenant_id, customer_id, body["OriginalId"], total, at
        )
    return ok(
        {
            "Success": True,
            "Result": {
                "Id": order_id,
                "OriginalId": body["OriginalId"],
                "OrderTotal": total / 100,
                "IsCompleted": True,
                "EstimatedBonus": {"GenerateBonus": points > 0, "EstimatedPoints": points},
            },
        }
    )


@app.post("/v1/transaction")
async def retail_transaction(request: Request) -> Response:
    raw = await request.body()
    body = json.loads(raw)
    sale = body["transaction"]
    at = now()
    async with pool.tx() as conn:
        tenant_id = await by_key(conn, request.headers.get("x-api-key", ""))
        if tenant_id is None:
            return ok({"success": False}, 401)
        key = sale["transactionId"]
        claim_id, replay = await claim(conn, tenant_id, "retail.transaction", key, raw, at)
        if claim_id is None:
            return ok(replay)
        program_id = (await tenant(conn, tenant_id))[0]
        cur = await conn.execute(
            "SELECT customer_id FROM customer_identifiers WHERE program_id = %s "
            "AND kind IN ('phone', 'whatsapp') AND value = %s ORDER BY kind LIMIT 1",
            (program_id, body["member"]["phoneNumber"]),
        )
        row = await cur.fetchone()
        if row is None:
            return ok({"success": False}, 400)
        order_id, points, after = await order(
            conn, program_id, tenant_id, row[0], "retail:" + key, int(sale["totalAmount"]), at
        )
        answer = {
            "success": True,
            "data": {
                "transactionId": key,
                "confirmationCode": f"R{order_id}",
                "earned": {"points": points, "credit": 0},
                "newBalance": {"points": after},
            },
        }
        await keep(conn, claim_id, answer)
    return ok(answer)


@app.post("/v2/sales")
async def v2_sale(request: Request) -> Response:
    raw = await request.body()
    body = json.loads(raw)
    at = now()
    async with pool.tx() as conn:
        tenant_id = await by_token(conn, request.headers.get("authorization", "")[7:])
        if tenant_id is None:
            return ok({"error": "INVALID_TOKEN"}, 401)
        key = body["external_id"]
        claim_id, replay = await claim(conn, tenant_id, "v2.sales", key, raw, at)
        if claim_id is None:
            return ok(replay, 201)
        program_id = (await tenant(conn, tenant_id))[0]
        customer_id = await customer_by(conn, program_id, "cpf", body["cpf"])
        if customer_id is None:
            return ok({"error": "customer_not_found"}, 404)
        total = round(float(body["sale_amount"]) * 100)
        order_id, points, after = await order(
            conn, program_id, tenant_id, customer_id, "v2:" + key, total, at
        )
        answer = {
            "id": order_id,
            "external_id": key,
            "customer_id": customer_id,
            "sale_amount": body["sale_amount"],
            "earned": {"points": points, "cashback": "0.00"},
            "balance": {"points": after},
            "created_at": at.isoformat(),
        }
        await keep(conn, claim_id, answer)
    return ok(answer, 201)
