"""Real parallel HTTP requests (50 threads) against uvicorn on PostgreSQL: the idempotency
key and the ledger's conditional debit under contention. ``pytest -s`` shows the counts."""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from fidelia.models import LedgerEntry, Redemption
from tests.dialects.pdv.conftest import (
    ORDERS,
    add_reward,
    count,
    make_merchant,
    redeem_path,
    wallet,
)
from tests.support.helpers import LiveServer, ledger_invariants

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
THREADS = 50


def burst(server, headers, requests):
    """POST every (path, body) at once, one thread each; the answers in order."""
    barrier = threading.Barrier(len(requests))

    def send(request):
        path, body = request
        with server.client(headers=headers) as http:
            barrier.wait()
            return http.post(path, json=body)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(send, requests))


def setup(server, db, total):
    merchant = make_merchant(db)
    reward = add_reward(db, merchant, "R$ 10 de desconto", points=100)
    with server.client(headers=merchant.headers) as http:
        body = {
            "OriginalId": "PDV-1",
            "OrderTotal": total,
            "IsCompleted": True,
            "Customer": {"Document": "52998224725"},
        }
        assert http.post(ORDERS, json=body).status_code == 200
    return merchant, reward


def test_same_original_key_debits_once(pg, app, db):
    with LiveServer(app) as server:
        merchant, reward = setup(server, db, "250.00")
        body = {"CustomerId": "52998224725", "OriginalKey": "PDV-2-K", "RedeemOrigin": 5}
        answers = burst(server, merchant.headers, [(redeem_path(reward), body)] * THREADS)
    statuses = Counter(a.status_code for a in answers)
    codes = Counter(a.json()["Result"]["ExternalCode"] for a in answers if a.status_code == 200)
    redemptions = count(db, Redemption)
    debits = count(db, LedgerEntry, LedgerEntry.kind == "redeem")
    print(
        f"\nsame key x{THREADS}: statuses={dict(statuses)} external codes={len(codes)} "
        f"redemptions={redemptions} debits={debits} points={wallet(db, merchant)[0]}"
    )
    assert statuses == {200: THREADS}
    assert len(codes) == 1
    assert len({a.text for a in answers}) == 1  # every answer is the first one
    assert redemptions == 1 and debits == 1
    assert wallet(db, merchant)[0] == 150
    assert ledger_invariants(db) == []


def test_different_keys_over_a_balance_for_one(pg, app, db):
    with LiveServer(app) as server:
        merchant, reward = setup(server, db, "100.00")  # exactly 100 points
        requests = [
            (redeem_path(reward), {"CustomerId": "52998224725", "OriginalKey": f"K-{i}"})
            for i in range(THREADS)
        ]
        answers = burst(server, merchant.headers, requests)
    statuses = Counter(a.status_code for a in answers)
    refusals = Counter(a.json()["CodeName"] for a in answers if a.status_code != 200)
    with db.session(readonly=True) as session:
        after = list(session.scalars(select(LedgerEntry.balance_after)))
    redemptions = count(db, Redemption)
    print(
        f"\ndifferent keys x{THREADS}: statuses={dict(statuses)} refusals={dict(refusals)} "
        f"redemptions={redemptions} points={wallet(db, merchant)[0]} "
        f"lowest balance_after={min(after)}"
    )
    assert statuses == {200: 1, 422: THREADS - 1}
    assert refusals == {"InsufficientPoints": THREADS - 1}
    assert redemptions == 1
    assert wallet(db, merchant)[0] == 0
    assert min(after) >= 0
    assert ledger_invariants(db) == []


def test_concurrent_redeem_and_cancel_pairs_cancel_their_own(pg, app, db):
    """Issue 8, under load: every sale redeems the same reward at once; half of them then
    cancel with the RewardId they were answered. Each cancel must cancel exactly its own
    redemption: the cancelled set is the cancelling sales' set, and the points add up."""
    with LiveServer(app) as server:
        merchant, reward = setup(server, db, f"{THREADS * 100}.00")
        barrier = threading.Barrier(THREADS)

        def sale(i):
            body = {"CustomerId": "52998224725", "OriginalKey": f"SALE-{i}", "RedeemOrigin": 5}
            with server.client(headers=merchant.headers) as http:
                barrier.wait()
                redeemed = http.post(redeem_path(reward), json=body)
                assert redeemed.status_code == 200, redeemed.text
                result = redeemed.json()["Result"]
                if i % 2:
                    return result, None
                cancelled = http.delete(f"/v1/pvt/POS/rewards/{result['RewardId']}")
                assert cancelled.status_code == 200, cancelled.text
                return result, cancelled.json()["Result"]

        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            outcomes = list(pool.map(sale, range(THREADS)))
    for result, cancelled in outcomes:
        if cancelled is not None:
            assert cancelled["IsCanceled"] is True
            assert cancelled["ExternalCode"] == result["ExternalCode"]
            assert cancelled["RewardId"] == result["RewardId"]
    with db.session(readonly=True) as session:
        status = dict(session.execute(select(Redemption.original_key, Redemption.status)).all())
    expected = {f"SALE-{i}": "done" if i % 2 else "cancelled" for i in range(THREADS)}
    reversals = count(db, LedgerEntry, LedgerEntry.kind == "reverse")
    print(
        f"\nredeem+cancel x{THREADS}: cancelled={list(status.values()).count('cancelled')} "
        f"reversals={reversals} points={wallet(db, merchant)[0]}"
    )
    assert status == expected
    assert len({r["RewardId"] for r, _ in outcomes}) == THREADS
    assert reversals == THREADS // 2
    assert wallet(db, merchant)[0] == THREADS * 100 - (THREADS // 2) * 100
    assert ledger_invariants(db) == []
