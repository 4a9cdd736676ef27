"""Races against ``fidelia serve --workers 4`` (four separate web processes, each with its
own connection pool, caches and threads) on PostgreSQL, for the write paths that only had
sequential or single-process tests: POS orders upserted by ``OriginalId``, order cancel,
partial cancel by ``CancelKey``, redemption cancel, retail ``/payment`` and its cancel.
Each test fires real parallel requests (released together by a barrier) and asserts the
invariant on the rows: one order per OriginalId, a cancel reverses once, balances equal
their ledger entries. ``pytest -s`` shows the answers of each burst."""

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from fidelia.kit.db import Database
from fidelia.models import LedgerEntry, LoyaltyPayment, Order, OrderRefund, Redemption
from tests.dialects.pdv.conftest import ANA as CPF
from tests.dialects.pdv.conftest import ORDERS, Merchant, add_reward, make_merchant, redeem_path
from tests.dialects.pdv.conftest import wallet as pos_wallet
from tests.dialects.retail_v1.conftest import ANA, Shop, make_shop
from tests.dialects.retail_v1.conftest import headers as retail_headers
from tests.production.conftest import Processes, fidelia_env
from tests.support.helpers import ledger_invariants

pytestmark = pytest.mark.timeout(300)
N = 40  # requests in each burst
WEB = 4  # fidelia serve --workers


class Served:
    def __init__(self, url: str, db: Database) -> None:
        self.url, self.db = url, db

    def burst(
        self,
        headers: dict[str, str],
        send: Callable[[httpx.Client, int], httpx.Response],
        n: int = N,
    ) -> list[httpx.Response]:
        """``send(client, i)`` for i < n, each on its own connection, all released at once."""
        barrier = threading.Barrier(n)

        def one(i: int) -> httpx.Response:
            with httpx.Client(base_url=self.url, headers=headers, timeout=60) as client:
                barrier.wait()
                return send(client, i)

        with ThreadPoolExecutor(max_workers=n) as pool:
            return list(pool.map(one, range(n)))

    def client(self, headers: dict[str, str]) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def served(pg, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One database and one ``fidelia serve --workers 4`` for the module; each test has a
    merchant of its own."""
    url = pg.copy(prefix="p")
    running = Processes(Path(tmp_path_factory.mktemp("serve")))
    db = Database(url, pool_size=4)
    try:
        yield Served(running.serve(fidelia_env(url), WEB), db)
    finally:
        running.stop()
        db.dispose()
        pg.drop(url)


def tally(answers: list[httpx.Response]) -> Counter[str]:
    """200, or the status with the door's error code."""
    counts: Counter[str] = Counter()
    for answer in answers:
        if answer.status_code == 200:
            counts["200"] += 1
            continue
        body = answer.json()
        code = body.get("CodeName") or (body.get("error") or {}).get("code")
        counts[f"{answer.status_code} {code}"] += 1
    return counts


def count(db: Database, model: type, *where: object) -> int:
    with db.session(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def entries(db: Database, tenant_id: int, kind: str) -> int:
    return count(db, LedgerEntry, LedgerEntry.tenant_id == tenant_id, LedgerEntry.kind == kind)


# -- the POS door -----------------------------------------------------------------------------


def pos_order(original_id: str, total: str, completed: bool = True) -> dict[str, object]:
    return {
        "OriginalId": original_id,
        "OrderTotal": total,
        "IsCompleted": completed,
        "Customer": {"Document": CPF},
    }


def completed_order(served: Served, merchant: Merchant, original_id: str, total: str) -> int:
    with served.client(merchant.headers) as http:
        answer = http.post(ORDERS, json=pos_order(original_id, total))
    assert answer.status_code == 200, answer.text
    return int(answer.json()["Result"]["Id"])


def test_one_order_upserted_at_once_by_original_id(served):
    """A new customer's order sent N times at once (half as pending, half as complete) by
    four processes: one customer, one order, credited once."""
    merchant = make_merchant(served.db, slug="pos-upsert")
    answers = served.burst(
        merchant.headers,
        lambda http, i: http.post(ORDERS, json=pos_order("PDV-RACE", "100.00", i % 2 == 0)),
    )
    seen = tally(answers)
    print(f"\none OriginalId x{N} on {WEB} processes: {dict(seen)}")
    assert seen == {"200": N}
    assert len({a.json()["Result"]["Id"] for a in answers}) == 1
    assert len({a.json()["Result"]["Customer"]["Id"] for a in answers}) == 1
    assert count(served.db, Order, Order.tenant_id == merchant.id) == 1
    assert entries(served.db, merchant.id, "earn") == 2  # points and cashback, once
    assert pos_wallet(served.db, merchant) == (100, 500)
    assert ledger_invariants(served.db) == []


def test_one_order_cancelled_at_once(served):
    merchant = make_merchant(served.db, slug="pos-cancel")
    completed_order(served, merchant, "PDV-C", "100.00")
    answers = served.burst(merchant.headers, lambda http, i: http.post(f"{ORDERS}/PDV-C/cancel"))
    seen = tally(answers)
    print(f"\none order cancelled x{N}: {dict(seen)}")
    assert seen == {"200": N}
    assert all(a.json()["Result"]["isCanceled"] for a in answers)
    assert entries(served.db, merchant.id, "reverse") == 2  # points and cashback, once
    assert pos_wallet(served.db, merchant) == (0, 0)
    assert ledger_invariants(served.db) == []


def partial(http: httpx.Client, ref: str, key: str, value: str) -> httpx.Response:
    return http.post(
        f"/v1/pvt/POS/{ref}/partialcancel", json={"ValueToRefund": value, "CancelKey": key}
    )


def test_one_cancel_key_at_once_refunds_once(served):
    merchant = make_merchant(served.db, slug="pos-key")
    order_id = completed_order(served, merchant, "PDV-K", "100.00")
    answers = served.burst(merchant.headers, lambda http, i: partial(http, "PDV-K", "K-1", "10.00"))
    seen = tally(answers)
    print(f"\none CancelKey x{N}: {dict(seen)}")
    assert seen == {"200": N}
    assert count(served.db, OrderRefund, OrderRefund.order_id == order_id) == 1
    assert pos_wallet(served.db, merchant) == (90, 450)
    assert ledger_invariants(served.db) == []


def test_many_cancel_keys_at_once_never_refund_more_than_the_order(served):
    """N refunds of R$ 10 with different keys on an order of R$ 100: ten pass."""
    merchant = make_merchant(served.db, slug="pos-keys")
    order_id = completed_order(served, merchant, "PDV-M", "100.00")
    answers = served.burst(
        merchant.headers, lambda http, i: partial(http, "PDV-M", f"K-{i}", "10.00")
    )
    seen = tally(answers)
    print(f"\n{N} CancelKeys of R$ 10 on R$ 100: {dict(seen)}")
    assert seen == {"200": 10, "422 RefundExceedsOrderTotal": N - 10}
    with served.db.session(readonly=True) as session:
        order = session.get_one(Order, order_id)
        refunds = session.scalar(
            select(func.sum(OrderRefund.value)).where(OrderRefund.order_id == order_id)
        )
        assert (order.refunded, refunds) == (10_000, 10_000)
        assert (order.reversed_points, order.reversed_cashback) == (100, 500)
    assert pos_wallet(served.db, merchant) == (0, 0)
    assert ledger_invariants(served.db) == []


def test_one_redemption_cancelled_at_once(served):
    merchant = make_merchant(served.db, slug="pos-redeem")
    reward = add_reward(served.db, merchant, "R$ 10", points=100)
    completed_order(served, merchant, "PDV-R", "250.00")
    with served.client(merchant.headers) as http:
        redeemed = http.post(redeem_path(reward), json={"CustomerId": CPF, "OriginalKey": "R-1"})
    assert redeemed.status_code == 200, redeemed.text
    reward_id = redeemed.json()["Result"]["RewardId"]
    assert pos_wallet(served.db, merchant)[0] == 150
    answers = served.burst(
        merchant.headers, lambda http, i: http.delete(f"/v1/pvt/POS/rewards/{reward_id}")
    )
    seen = tally(answers)
    print(f"\none redemption cancelled x{N}: {dict(seen)}")
    assert seen == {"200": N}
    with served.db.session(readonly=True) as session:
        status = session.scalar(
            select(Redemption.status).where(Redemption.tenant_id == merchant.id)
        )
    assert status == "cancelled"
    assert entries(served.db, merchant.id, "reverse") == 1
    assert pos_wallet(served.db, merchant)[0] == 250
    assert ledger_invariants(served.db) == []


# -- the retail door: /payment ------------------------------------------------------------------


def member_with_balance(served: Served, slug: str) -> Shop:
    """A member with 400 points (worth R$ 40) and R$ 20 of credit."""
    shop = make_shop(served.db, slug=slug)
    with served.client(retail_headers(shop.api_key)) as http:
        registered = http.post("/v1/member/register", json={"member": {"phoneNumber": ANA}})
        assert registered.status_code == 200, registered.text
        sold = http.post(
            "/v1/transaction",
            json={
                "member": {"phoneNumber": ANA},
                "transaction": {"transactionId": "T-0", "totalAmount": 40_000},
            },
        )
        assert sold.status_code == 200, sold.text
    return shop


def pay_body(
    amount: int, transaction: str | None = None, kind: str = "POINTS"
) -> dict[str, object]:
    body: dict[str, object] = {
        "member": {"phoneNumber": ANA},
        "payment": {"action": "pay", "type": kind, "amount": amount},
    }
    if transaction:
        body["transaction"] = {"transactionId": transaction}
    return body


def payments_of(served: Served, shop: Shop, status: str | None = None) -> int:
    where = [LoyaltyPayment.tenant_id == shop.id]
    if status:
        where.append(LoyaltyPayment.status == status)
    return count(served.db, LoyaltyPayment, *where)


def test_payments_at_once_never_spend_more_than_the_balance(served):
    """N payments of R$ 10 in points at once against 400 points (R$ 40): four pass."""
    shop = member_with_balance(served, "pay-many")
    answers = served.burst(
        shop.headers, lambda http, i: http.post("/v1/payment", json=pay_body(1_000))
    )
    seen = tally(answers)
    print(f"\n{N} payments of R$ 10 against R$ 40 of points: {dict(seen)}")
    assert seen == {"200": 4, "422 407": N - 4}
    assert payments_of(served, shop) == 4
    assert sorted(
        a.json()["data"]["newBalance"]["points"] for a in answers if a.status_code == 200
    ) == [0, 100, 200, 300]
    assert entries(served.db, shop.id, "redeem") == 4
    assert ledger_invariants(served.db) == []


def test_one_payment_sent_at_once_with_its_transaction_id(served):
    shop = member_with_balance(served, "pay-once")
    answers = served.burst(
        shop.headers, lambda http, i: http.post("/v1/payment", json=pay_body(1_000, "T-PAY"))
    )
    seen = tally(answers)
    print(f"\none payment (transactionId) x{N}: {dict(seen)}")
    assert seen == {"200": N}
    assert len({a.json()["data"]["confirmationCode"] for a in answers}) == 1
    assert payments_of(served, shop) == 1
    assert entries(served.db, shop.id, "redeem") == 1
    assert ledger_invariants(served.db) == []


def test_one_payment_cancelled_at_once(served):
    shop = member_with_balance(served, "pay-cancel")
    with served.client(shop.headers) as http:
        paid = http.post("/v1/payment", json=pay_body(1_050))
    assert paid.status_code == 200, paid.text
    code = paid.json()["data"]["confirmationCode"]
    cancel = {"payment": {"action": "cancel", "confirmationCode": code}}
    answers = served.burst(shop.headers, lambda http, i: http.post("/v1/payment", json=cancel))
    seen = tally(answers)
    print(f"\none payment cancelled x{N}: {dict(seen)}")
    assert seen == {"200": N}
    assert {a.json()["data"]["newBalance"]["points"] for a in answers} == {400}
    assert payments_of(served, shop, "cancelled") == 1
    assert entries(served.db, shop.id, "reverse") == 1
    assert ledger_invariants(served.db) == []
