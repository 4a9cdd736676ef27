"""/payment: paying with points or stored credit, and cancelling (the balance comes back once)."""

from sqlalchemy import select

from fidelia.models import LedgerEntry, LoyaltyPayment
from tests.dialects.retail_v1.conftest import (
    ANA,
    BIA,
    count,
    details,
    error,
    make_shop,
    ok,
    post,
    register,
    sale,
)
from tests.support.helpers import ledger_invariants

MEMBER = {"phoneNumber": ANA}


def redeem_debits(db):
    """The amounts of the payments' ledger debits, oldest first."""
    with db.session(readonly=True) as session:
        return list(
            session.scalars(
                select(LedgerEntry.amount)
                .where(LedgerEntry.source_type == "payment", LedgerEntry.kind == "redeem")
                .order_by(LedgerEntry.id)
            )
        )


def pay(client, shop, amount, kind="POINTS", member=MEMBER, transaction=None):
    body = {"member": member, "payment": {"action": "pay", "type": kind, "amount": amount}}
    if transaction:
        body["transaction"] = {"transactionId": transaction}
    return post(client, shop, "/payment", body)


def cancel(client, shop, code, member=None):
    body = {"payment": {"action": "cancel", "confirmationCode": code}}
    if member:
        body["member"] = member
    return post(client, shop, "/payment", body)


def test_pay_and_cancel_once(client, db):
    shop = make_shop(db)
    register(client, shop)
    ok(sale(client, shop, "T-0", 40_000, MEMBER))  # 400 points, R$ 20,00 credit
    paid = ok(pay(client, shop, 1_050))  # R$ 10,50 at R$ 0,10 a point: 105 points
    code = paid["confirmationCode"]
    assert paid["data"] == {
        "confirmationCode": code,
        "type": "POINTS",
        "amount": 1_050,
        "points": 105,
        "status": "done",
        "transactionId": None,
        "newBalance": {"points": 295, "credit": 2_000},
    }
    credit = ok(pay(client, shop, 500, kind="credit"))["data"]
    assert credit["points"] == 0 and credit["newBalance"] == {"points": 295, "credit": 1_500}
    back = ok(cancel(client, shop, code))["data"]
    assert back["status"] == "cancelled" and back["newBalance"] == {"points": 400, "credit": 1_500}
    again = ok(cancel(client, shop, code.lower()))["data"]
    assert again["status"] == "cancelled" and again["newBalance"]["points"] == 400
    assert count(db, LedgerEntry, LedgerEntry.kind == "reverse") == 1
    assert ledger_invariants(db) == []


def test_refusals(client, db):
    shop = make_shop(db)
    register(client, shop)
    register(client, shop, phoneNumber=BIA)
    ok(sale(client, shop, "T-0", 10_000, MEMBER))  # 100 points (R$ 10), R$ 5 credit
    short = pay(client, shop, 600, kind="CREDIT")
    body = error(short, 422, "407", "body.payment.amount")
    assert body["message"] == "Insufficient credit balance."
    error(pay(client, shop, 1_001), 422, "407", "body.payment.amount")
    error(pay(client, shop, 0), 400, "4001004", "body.payment.amount")
    error(pay(client, shop, 100, member=None), 400, "4001010", "body.member")
    unknown = pay(client, shop, 100, member={"email": "x@example.com"})
    error(unknown, 400, "4001012", "body.member.email")
    bad_type = post(
        client, shop, "/payment", {"member": MEMBER, "payment": {"type": "CASH", "amount": 1}}
    )
    error(bad_type, 400, "4001006", "body.payment.type")
    error(cancel(client, shop, "LP-NOPE"), 404, "4041020", "body.payment.confirmationCode")
    no_code = post(client, shop, "/payment", {"payment": {"action": "cancel"}})
    error(no_code, 400, "4000002", "body.payment.confirmationCode")
    # Someone else's payment cannot be cancelled by naming another member.
    code = ok(pay(client, shop, 100))["confirmationCode"]
    other = cancel(client, shop, code, member={"phoneNumber": BIA})
    error(other, 404, "4041020", "body.payment.confirmationCode")
    assert details(client, shop, MEMBER)["member"]["balance"]["points"] == 90
    # A merchant without a point value takes no points as payment.
    plain = make_shop(db, slug="plain", point_value="0")
    register(client, plain)
    ok(sale(client, plain, "T-0", 10_000, MEMBER))
    error(pay(client, plain, 100), 400, "4001006", "body.payment.amount")
    assert ledger_invariants(db) == []


def test_idempotent_with_a_transaction_id(client, db):
    shop = make_shop(db)
    register(client, shop)
    ok(sale(client, shop, "T-0", 10_000, MEMBER))
    first = pay(client, shop, 300, transaction="T-9")
    retry = pay(client, shop, 300, transaction="T-9")
    assert ok(first) == ok(retry)
    assert ok(first)["data"]["transactionId"] == "T-9"
    assert count(db, LoyaltyPayment) == 1
    # The retry debited nothing: one debit of 30 points, the balance 100 - 30.
    assert redeem_debits(db) == [-30]
    assert ok(first)["data"]["newBalance"]["points"] == 70
    # Another amount in the same transaction is another payment.
    ok(pay(client, shop, 200, transaction="T-9"))
    assert count(db, LoyaltyPayment) == 2
    assert redeem_debits(db) == [-30, -20]
    # Once cancelled, the same call pays again (never replays a cancelled payment).
    ok(cancel(client, shop, ok(first)["confirmationCode"]))
    fresh = ok(pay(client, shop, 300, transaction="T-9"))
    assert fresh["confirmationCode"] != ok(first)["confirmationCode"]
    assert fresh["data"]["newBalance"]["points"] == 100 - 30 - 20
    # Cancelling the sale T-9 gives back every loyalty payment made for it... were it a
    # sale; a payment's transactionId is only a reference until then.
    assert ledger_invariants(db) == []
