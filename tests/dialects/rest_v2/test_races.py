"""Real parallel HTTP requests (50 threads) against uvicorn on PostgreSQL: one voucher
validated at once, stock adjusted at once, one sale sent at once (by external_id, and by
Idempotency-Key without one), first sales of a new CPF at once, and one credential asking
for tokens at once. ``pytest -s`` shows the counts."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import String, func, select

from fidelia.models import (
    AccessToken,
    Customer,
    IdempotencyKey,
    LedgerEntry,
    Order,
    Reward,
    Tenant,
    VoucherUse,
)
from fidelia.vouchers.service import issue
from tests.dialects.rest_v2.conftest import (
    ANA,
    BIA,
    COUPONS,
    SALES,
    TOKEN,
    VOUCHERS,
    Merchant,
    add_coupon,
    count,
    create_customer,
    make_merchant,
    token_for,
    wallet,
)
from tests.support.helpers import LiveServer, ledger_invariants

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
THREADS = 50


def burst(
    server: LiveServer,
    token: str,
    calls: list[tuple[str, str, Any]],
    extra: dict[str, str] | None = None,
) -> list[httpx.Response]:
    """Send every (method, path, body) at once, one thread and connection each."""
    barrier = threading.Barrier(len(calls))
    headers = {"Authorization": f"Bearer {token}", **(extra or {})}

    def send(call: tuple[str, str, Any]) -> httpx.Response:
        method, path, body = call
        with server.client(headers=headers) as http:
            barrier.wait()
            return http.request(method, path, json=body)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(send, calls))


def codes(answers: list[httpx.Response]) -> Counter[str]:
    return Counter(
        "ok" if a.status_code < 300 else f"{a.status_code} {a.json()['error']['code']}"
        for a in answers
    )


def start(server: LiveServer, db: Any) -> tuple[Merchant, str]:
    merchant = make_merchant(db)
    with server.client() as http:
        return merchant, token_for(http, merchant)


def test_one_voucher_validated_at_once(pg, app, db):
    with LiveServer(app) as server:
        merchant, token = start(server, db)
        with db.session() as session:
            code = issue(session, session.get_one(Tenant, merchant.id), value=1000).code
        answers = burst(server, token, [("POST", f"{VOUCHERS}/{code}/validate", None)] * THREADS)
    seen = codes(answers)
    print(f"\none voucher x{THREADS}: {dict(seen)}")
    assert seen == {"ok": 1, "409 voucher_used": THREADS - 1}
    (won,) = [a.json() for a in answers if a.status_code == 200]
    assert won["uses"] == 1 and won["status"] == "used"
    assert count(db, VoucherUse) == 1


def test_stock_never_goes_below_zero(pg, app, db):
    with LiveServer(app) as server:
        merchant, token = start(server, db)
        coupon = add_coupon(db, merchant, stock=10)
        path = f"{COUPONS}/{coupon}/stock"
        answers = burst(server, token, [("PATCH", path, {"adjust": -1})] * THREADS)
    seen = codes(answers)
    print(f"\n{THREADS} x adjust -1 on stock 10: {dict(seen)}")
    assert seen == {"ok": 10, "409 insufficient_stock": THREADS - 10}
    # Each success saw its own unit go: the stocks answered are 9, 8, ... 0, once each.
    assert sorted(a.json()["stock"] for a in answers if a.status_code == 200) == list(range(10))
    with db.session(readonly=True) as session:
        assert session.get_one(Reward, coupon).stock == 0


def test_mixed_adjustments_add_up(pg, app, db):
    with LiveServer(app) as server:
        merchant, token = start(server, db)
        coupon = add_coupon(db, merchant, stock=5)
        path = f"{COUPONS}/{coupon}/stock"
        calls = [("PATCH", path, {"adjust": -2})] * 30 + [("PATCH", path, {"adjust": 1})] * 20
        answers = burst(server, token, calls)
    taken = sum(1 for a in answers[:30] if a.status_code == 200)
    added = sum(1 for a in answers[30:] if a.status_code == 200)
    print(f"\n30 x -2, 20 x +1 on stock 5: {dict(codes(answers))}")
    assert added == 20  # additions always go through
    assert {a.status_code for a in answers} <= {200, 409}
    assert all(a.json()["stock"] >= 0 for a in answers if a.status_code == 200)
    with db.session(readonly=True) as session:
        final = session.get_one(Reward, coupon).stock
    assert final == 5 + added - 2 * taken and final >= 0


def test_one_sale_sent_at_once(pg, app, db):
    """The same external_id 50 times at once: one sale, one earning, 50 equal answers."""
    with LiveServer(app) as server:
        merchant, token = start(server, db)
        with server.client(headers={"Authorization": f"Bearer {token}"}) as http:
            create_customer(http, http.headers)
        body = {"cpf": ANA, "sale_amount": "100.00", "external_id": "NF-RACE"}
        answers = burst(server, token, [("POST", SALES, body)] * THREADS)
    print(f"\none sale x{THREADS}: {dict(codes(answers))}")
    assert {a.status_code for a in answers} == {201}
    assert len({a.text for a in answers}) == 1
    assert count(db, Order) == 1
    assert count(db, LedgerEntry) == 2
    assert wallet(db, merchant) == (100, 500)
    assert ledger_invariants(db) == []


def test_first_sales_of_a_new_cpf_at_once(pg, app, db):
    """Different sales of a CPF never seen: one customer is enrolled, and earns them all."""
    with LiveServer(app) as server:
        merchant, token = start(server, db)
        calls = [
            ("POST", SALES, {"cpf": BIA, "sale_amount": "10.00", "external_id": f"NF-{i}"})
            for i in range(THREADS)
        ]
        answers = burst(server, token, calls)
    print(f"\n{THREADS} first sales of one CPF: {dict(codes(answers))}")
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["customer_id"] for a in answers}) == 1
    with db.session(readonly=True) as session:
        customers = list(session.scalars(select(Customer.id)))
    assert len(customers) == 1
    assert wallet(db, merchant, "cpf", BIA) == (10 * THREADS, 50 * THREADS)
    assert ledger_invariants(db) == []


def test_one_sale_with_one_idempotency_key_at_once(pg, app, db):
    """Issue 8: a sale without external_id, sent 30 times at once with one Idempotency-Key
    (a client retrying through a flaky proxy): one sale, one credit, 30 equal answers."""
    n = 30
    with LiveServer(app) as server:
        merchant, token = start(server, db)
        with server.client(headers={"Authorization": f"Bearer {token}"}) as http:
            create_customer(http, http.headers)
        body = {"cpf": ANA, "sale_amount": "100.00"}
        answers = burst(server, token, [("POST", SALES, body)] * n, {"Idempotency-Key": "K-1"})
    print(f"\none sale, one Idempotency-Key x{n}: {dict(codes(answers))}")
    assert {a.status_code for a in answers} == {201}
    assert len({a.text for a in answers}) == 1
    replayed = [a.headers.get("Idempotent-Replayed") for a in answers]
    assert replayed.count("true") == n - 1 and replayed.count(None) == 1
    assert count(db, Order) == 1
    assert count(db, LedgerEntry) == 2  # one credit: points and cashback of one sale
    assert wallet(db, merchant) == (100, 500)
    assert count(db, IdempotencyKey) == 1
    assert ledger_invariants(db) == []


def test_one_validation_with_one_idempotency_key_at_once(pg, app, db):
    with LiveServer(app) as server:
        merchant, token = start(server, db)
        with db.session() as session:
            code = issue(session, session.get_one(Tenant, merchant.id), value=1000).code
        calls = [("POST", f"{VOUCHERS}/validate", {"code": code})] * THREADS
        answers = burst(server, token, calls, {"Idempotency-Key": "V-1"})
    print(f"\none voucher, one Idempotency-Key x{THREADS}: {dict(codes(answers))}")
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert count(db, VoucherUse) == 1


def test_one_credential_asking_for_tokens_at_once(pg, app, db):
    """Through the documented base URL (``/v2/`` + ``/auth/token``) on a real server."""
    merchant = make_merchant(db)
    with LiveServer(app) as server:
        barrier = threading.Barrier(THREADS)
        body = {"api_key": merchant.api_secret, "api_secret": merchant.api_key}  # swapped

        def ask(_: int) -> httpx.Response:
            with server.client() as http:
                barrier.wait()
                return http.post("/v2/" + TOKEN.removeprefix("/v2"), json=body)

        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            answers = list(pool.map(ask, range(THREADS)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.json()["access_token"] for a in answers}) == 1
    assert count(db, AccessToken) == 1


def test_sales_of_one_customer_at_once_answer_their_own_balances(pg, app, db):
    """Issue 14: the balances a sale answers come from its credits: under a burst of one
    customer's sales each answer is the balance its own entries left (a chain 10, 20, ...),
    and the last one is the stored balance."""
    with LiveServer(app) as server:
        merchant, token = start(server, db)
        with server.client(headers={"Authorization": f"Bearer {token}"}) as http:
            create_customer(http, http.headers)
        calls = [
            ("POST", SALES, {"cpf": ANA, "sale_amount": "10.00", "external_id": f"NF-{i}"})
            for i in range(THREADS)
        ]
        answers = burst(server, token, calls)
    assert {a.status_code for a in answers} == {201}
    points = sorted(a.json()["balance"]["points"] for a in answers)
    assert points == [10 * (i + 1) for i in range(THREADS)]
    cashback = sorted(a.json()["balance"]["cashback"] for a in answers)
    assert cashback == sorted(f"{0.5 * (i + 1):.2f}" for i in range(THREADS))
    with db.session(readonly=True) as session:
        after = {
            (order_id, account): balance_after
            for order_id, account, balance_after in session.execute(
                select(Order.id, LedgerEntry.account, LedgerEntry.balance_after).join(
                    LedgerEntry, LedgerEntry.source_id == func.cast(Order.id, String)
                )
            )
        }
    for answer in answers:
        body = answer.json()
        assert body["balance"]["points"] == after[(body["id"], "points")]
        assert body["balance"]["cashback"] == f"{after[(body['id'], 'cashback')] / 100:.2f}"
    assert wallet(db, merchant) == (10 * THREADS, 50 * THREADS)
    assert ledger_invariants(db) == []
