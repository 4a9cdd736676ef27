"""A loyalty payment made through /payment and then listed in the sale's ``payments[]``
(by its confirmationCode, or as the same POINTS/CREDIT line of the same transactionId) is
linked to the sale, never charged again; cancelling the sale refunds it once."""

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


def funded(client, db):
    shop = make_shop(db)
    register(client, shop)
    ok(sale(client, shop, "T-0", 40_000, MEMBER))  # 400 points, R$ 20,00 credit
    return shop


def pay(client, shop, amount, kind="POINTS", member=MEMBER, transaction_id=None):
    body = {"member": member, "payment": {"action": "pay", "type": kind, "amount": amount}}
    if transaction_id:
        body["transaction"] = {"transactionId": transaction_id}
    return ok(post(client, shop, "/payment", body))


def balance(client, shop, member=MEMBER):
    return details(client, shop, member)["member"]["balance"]


def test_listed_by_confirmation_code_is_charged_once(client, db):
    shop = funded(client, db)
    paid = pay(client, shop, 1_000)  # 100 points, no transaction named
    code = paid["confirmationCode"]
    assert balance(client, shop) == {"points": 300, "credit": 2_000}
    lines = [
        {"type": "POINTS", "amount": 1_000, "confirmationCode": code.lower()},
        {"type": "CASH", "amount": 9_000},
    ]
    done = ok(sale(client, shop, "T-1", 10_000, MEMBER, payments=lines))
    assert done["payments"][0] == {
        "type": "POINTS",
        "amount": 1_000,
        "points": 100,
        "confirmationCode": code,
        "linked": True,
    }
    assert done["earned"] == {"points": 90, "credit": 450}  # on the R$ 90 in cash
    assert done["newBalance"] == {"points": 390, "credit": 2_450}
    assert count(db, LoyaltyPayment) == 1
    assert count(db, LedgerEntry, LedgerEntry.source_type == "payment") == 1
    # A replay of the same sale answers the same, charging nothing.
    assert ok(sale(client, shop, "T-1", 10_000, MEMBER, payments=lines)) == done
    # Cancelling the sale refunds the payment once; cancelling the payment after is a no-op.
    undone = ok(
        post(client, shop, "/transaction/cancel", {"confirmationCode": done["confirmationCode"]})
    )
    assert [p["confirmationCode"] for p in undone["refundedPayments"]] == [code]
    assert undone["newBalance"] == {"points": 400, "credit": 2_000}
    cancel = {"payment": {"action": "cancel", "confirmationCode": code}}
    assert ok(post(client, shop, "/payment", cancel))["newBalance"] == {
        "points": 400,
        "credit": 2_000,
    }
    assert (
        count(db, LedgerEntry, LedgerEntry.kind == "reverse", LedgerEntry.source_type == "payment")
        == 1
    )
    assert ledger_invariants(db) == []


def test_matched_by_transaction_kind_and_amount(client, db):
    shop = funded(client, db)
    pay(client, shop, 500, kind="CREDIT", transaction_id="T-1")
    pay(client, shop, 500, kind="CREDIT", transaction_id="T-1")  # replayed: one payment
    assert count(db, LoyaltyPayment) == 1
    lines = [{"type": "CREDIT", "amount": 500}, {"type": "CREDIT", "amount": 300}]
    done = ok(sale(client, shop, "T-1", 2_000, MEMBER, payments=lines))
    assert [p["linked"] for p in done["payments"]] == [True, False]  # the 300 is new
    assert count(db, LoyaltyPayment) == 2
    assert done["newBalance"]["credit"] == 2_000 - 500 - 300 + 60  # 5 % of R$ 12 in money
    assert ledger_invariants(db) == []


def test_what_cannot_be_linked(client, db):
    shop = funded(client, db)
    register(client, shop, phoneNumber=BIA)
    ok(sale(client, shop, "T-B", 10_000, {"phoneNumber": BIA}))
    theirs = pay(client, shop, 100, member={"phoneNumber": BIA})["confirmationCode"]
    mine = pay(client, shop, 1_000, transaction_id="T-A")["confirmationCode"]
    cancelled = pay(client, shop, 200)["confirmationCode"]
    ok(
        post(
            client,
            shop,
            "/payment",
            {"payment": {"action": "cancel", "confirmationCode": cancelled}},
        )
    )

    def listing(code, amount=1_000, kind="POINTS", tx="T-1"):
        line = {"type": kind, "amount": amount, "confirmationCode": code}
        return sale(client, shop, tx, 10_000, MEMBER, payments=[line])

    where = "body.transaction.payments[0].confirmationCode"
    error(listing("LP-NOPE"), 404, "4041020", where)
    error(listing(theirs, amount=100), 404, "4041020", where)
    error(listing(cancelled, amount=200), 409, "4091021", where)
    error(listing(mine), 409, "4091022", where)  # made for T-A
    error(listing(mine, tx="T-A", amount=900), 400, "4001006", where)
    error(listing(mine, tx="T-A", kind="CREDIT"), 400, "4001006", where)
    twice = [{"type": "POINTS", "amount": 1_000, "confirmationCode": mine}] * 2
    error(
        sale(client, shop, "T-A", 10_000, MEMBER, payments=twice),
        400,
        "4001006",
        "body.transaction.payments[1].confirmationCode",
    )
    over = sale(
        client,
        shop,
        "T-A",
        500,
        MEMBER,
        payments=[{"type": "POINTS", "amount": 1_000, "confirmationCode": mine}],
    )
    error(over, 400, "4001007", where)
    # Refusals changed nothing: the right sale still links it.
    assert ok(listing(mine, tx="T-A"))["payments"][0]["linked"] is True
    assert count(db, LoyaltyPayment) == 3
    assert ledger_invariants(db) == []
