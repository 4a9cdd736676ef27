"""Real parallel HTTP requests (50 threads) against uvicorn on PostgreSQL: one single-use
voucher raced for through /transaction's usedAssets, and one transactionId retried at
once. ``pytest -s`` shows the counts."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from fidelia.models import LedgerEntry, LoyaltyPayment, Order, Voucher, VoucherUse
from tests.dialects.retail_v1.conftest import (
    ANA,
    add_voucher,
    count,
    headers,
    make_shop,
    register,
)
from tests.support.helpers import LiveServer, ledger_invariants

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
THREADS = 50


def burst(server, api_key, bodies):
    """POST every body to /v1/transaction at once, one thread each; the answers in order."""
    barrier = threading.Barrier(len(bodies))

    def send(body):
        with server.client(headers=headers(api_key)) as http:
            barrier.wait()
            return http.post("/v1/transaction", json=body)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(send, bodies))


def body(transaction_id, member=None):
    data = {
        "transaction": {"transactionId": transaction_id, "totalAmount": 10_000},
        "usedAssets": [{"key": "ONCE-1"}],
    }
    if member:
        data["member"] = member
    return data


def tally(answers):
    return Counter(
        a.status_code if a.status_code == 200 else f"{a.status_code} {a.json()['error']['code']}"
        for a in answers
    )


def test_one_voucher_validates_once(pg, app, db):
    with LiveServer(app) as server:
        shop = make_shop(db)
        with server.client() as http:
            ana = register(http, shop)
        add_voucher(db, shop, "ONCE-1", 2_500, ana["memberId"])
        # Half name the member (her voucher), half are anonymous counter sales.
        bodies = [body(f"T-{i}", {"phoneNumber": ANA} if i % 2 else None) for i in range(THREADS)]
        answers = burst(server, shop.api_key, bodies)
    statuses = tally(answers)
    with db.session(readonly=True) as session:
        voucher = session.query(Voucher).filter_by(code="ONCE-1").one()
        uses = voucher.uses
    print(f"\none voucher x{THREADS}: {dict(statuses)} uses={uses}")
    assert statuses == {200: 1, "409 4091031": THREADS - 1}
    assert uses == 1
    assert count(db, VoucherUse) == 1 and count(db, Order) == 1
    assert ledger_invariants(db) == []


def test_one_transaction_id_records_once(pg, app, db):
    with LiveServer(app) as server:
        shop = make_shop(db)
        with server.client() as http:
            register(http, shop)
        add_voucher(db, shop, "ONCE-1", 2_500)
        answers = burst(server, shop.api_key, [body("T-1", {"phoneNumber": ANA})] * THREADS)
    statuses = tally(answers)
    print(f"\nsame transactionId x{THREADS}: {dict(statuses)}")
    assert statuses == {200: THREADS}
    assert len({a.text for a in answers}) == 1  # every answer is the first one
    assert count(db, Order) == 1 and count(db, VoucherUse) == 1
    assert count(db, LedgerEntry, LedgerEntry.kind == "earn") == 2  # points and credit, once
    assert ledger_invariants(db) == []


def paid_with_points(server, shop):
    """Ana with 400 points who paid 100 of them (R$ 10,00) through /payment; its code."""
    with server.client(headers=headers(shop.api_key)) as http:
        register(http, shop)
        earn = {
            "member": {"phoneNumber": ANA},
            "transaction": {"transactionId": "T-0", "totalAmount": 40_000},
        }
        assert http.post("/v1/transaction", json=earn).status_code == 200
        paid = http.post(
            "/v1/payment",
            json={"member": {"phoneNumber": ANA}, "payment": {"type": "POINTS", "amount": 1_000}},
        )
        assert paid.status_code == 200, paid.text
        return paid.json()["confirmationCode"]


def listing(transaction_id, code):
    return {
        "member": {"phoneNumber": ANA},
        "transaction": {
            "transactionId": transaction_id,
            "totalAmount": 10_000,
            "payments": [
                {"type": "POINTS", "amount": 1_000, "confirmationCode": code},
                {"type": "CASH", "amount": 9_000},
            ],
        },
    }


def points_spent(db):
    with db.session(readonly=True) as session:
        entries = session.query(LedgerEntry).filter_by(source_type="payment").all()
        return sum(-e.amount for e in entries)


def test_a_paid_payment_listed_by_one_sale_sent_at_once_is_charged_once(pg, app, db):
    with LiveServer(app) as server:
        shop = make_shop(db)
        code = paid_with_points(server, shop)
        answers = burst(server, shop.api_key, [listing("T-1", code)] * THREADS)
    statuses = tally(answers)
    print(f"\nsale listing a paid payment x{THREADS}: {dict(statuses)}")
    assert statuses == {200: THREADS}
    assert len({a.text for a in answers}) == 1
    assert count(db, LoyaltyPayment) == 1 and count(db, Order) == 2
    assert points_spent(db) == 100  # charged once, by /payment
    assert ledger_invariants(db) == []


def test_a_paid_payment_listed_by_many_sales_at_once_links_once(pg, app, db):
    with LiveServer(app) as server:
        shop = make_shop(db)
        code = paid_with_points(server, shop)
        answers = burst(
            server, shop.api_key, [listing(f"T-{i}", code) for i in range(1, THREADS + 1)]
        )
    statuses = tally(answers)
    print(f"\none paid payment in {THREADS} sales: {dict(statuses)}")
    assert statuses == {200: 1, "409 4091022": THREADS - 1}
    assert count(db, LoyaltyPayment) == 1 and count(db, Order) == 2
    assert points_spent(db) == 100
    assert ledger_invariants(db) == []
