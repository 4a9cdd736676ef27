"""/transaction: earning, deals, used assets, loyalty payments, idempotency, cancellation,
and the sale as the POS door sees it."""

from datetime import timedelta

from fidelia.kit import clock
from fidelia.models import LoyaltyPayment, Order, Voucher, VoucherUse
from tests.dialects.retail_v1.conftest import (
    ANA,
    BIA,
    add_deal,
    add_voucher,
    count,
    details,
    error,
    make_shop,
    ok,
    post,
    register,
    sale,
)
from tests.support.helpers import ledger_invariants, sent

MEMBER = {"phoneNumber": ANA}


def balance(client, shop, member=MEMBER):
    return details(client, shop, member)["member"]["balance"]


def test_sale_earns_and_replays(client, db):
    shop = make_shop(db)
    ana = register(client, shop)
    first = sale(client, shop, "T-1", 12_345, MEMBER, payments=[{"type": "CASH", "amount": 12_345}])
    body = ok(first)
    data = body["data"]
    assert body["confirmationCode"] == data["confirmationCode"]
    assert data["confirmationCode"].startswith("TX-")
    assert data == {
        "transactionId": "T-1",
        "confirmationCode": data["confirmationCode"],
        "status": "completed",
        "memberId": ana["memberId"],
        "totalAmount": 12_345,
        "totalDiscount": 0,
        "amountToPay": 12_345,
        "appliedDeals": [],
        "usedAssets": [],
        "payments": [
            {
                "type": "CASH",
                "amount": 12_345,
                "points": None,
                "confirmationCode": None,
                "linked": False,
            }
        ],
        "earned": {"points": 123, "credit": 617},  # 1 point per R$ 1 (down), 5 % (down)
        "newBalance": {"points": 123, "credit": 617},
    }
    # A retry (a timeout on the POS) replays the first answer and earns nothing more.
    again = sale(client, shop, "T-1", 12_345, MEMBER, payments=[{"type": "CASH", "amount": 12_345}])
    assert again.status_code == 200 and again.json() == body
    assert balance(client, shop) == {"points": 123, "credit": 617}
    # The same id with another body is refused.
    other = sale(client, shop, "T-1", 99_999, MEMBER)
    error(other, 422, "4221042", "body.transaction.transactionId")
    assert count(db, Order) == 1
    assert ledger_invariants(db) == []


def test_anonymous_sale_and_unknown_member(client, db):
    shop = make_shop(db)
    add_deal(db, shop, "5% off", "percent", 500)
    add_deal(db, shop, "Bonus", "points", 10)  # points need a member
    data = ok(sale(client, shop, "T-1", 10_000))["data"]
    assert data["memberId"] is None and data["newBalance"] is None
    assert data["earned"] == {"points": 0, "credit": 0}
    assert [(d["name"], d["discountAmount"]) for d in data["appliedDeals"]] == [("5% off", -500)]
    assert data["totalDiscount"] == -500 and data["amountToPay"] == 9_500
    unknown = sale(client, shop, "T-2", 10_000, {"email": "who@example.com"})
    error(unknown, 400, "4001012", "body.member.email")
    # A refused sale can be retried with the same id once the cause is fixed.
    register(client, shop, email="who@example.com")
    assert ok(sale(client, shop, "T-2", 10_000, {"email": "who@example.com"}))


def test_deals_only_those_the_pos_applied(client, db):
    shop = make_shop(db)
    register(client, shop)
    add_deal(db, shop, "10% off", "percent", 1000)
    add_deal(db, shop, "R$ 50 off", "fixed", 5_000, min_total=20_000)
    add_deal(db, shop, "Bakery 20%", "percent", 2000, department_code="PADARIA")
    items = [
        {"code": "PAO", "departmentCode": "PADARIA", "netAmount": 3_000},
        {"code": "LEITE", "departmentCode": "LATICINIOS", "netAmount": 7_000},
    ]
    data = ok(sale(client, shop, "T-1", 10_000, MEMBER, items=items))["data"]
    assert [(d["key"], d["discountAmount"]) for d in data["appliedDeals"]] == [
        ("DEAL-1", -1_000),
        ("DEAL-3", -600),
    ]
    assert data["amountToPay"] == 8_400 and data["earned"]["points"] == 84
    chosen = ok(
        sale(client, shop, "T-2", 10_000, MEMBER, items=items, appliedDeals=[{"key": "deal-3"}])
    )["data"]
    assert [d["key"] for d in chosen["appliedDeals"]] == ["DEAL-3"]
    # Discounts never take the bill below zero.
    add_deal(db, shop, "R$ 200 off", "fixed", 20_000)
    small = ok(sale(client, shop, "T-3", 1_000, MEMBER))["data"]
    assert small["totalDiscount"] == -1_000 and small["amountToPay"] == 0
    assert small["earned"] == {"points": 0, "credit": 0}


def test_used_assets(client, db, frozen):
    shop = make_shop(db)
    start = clock.now()
    frozen(start)
    ana = register(client, shop)
    bia = register(client, shop, phoneNumber=BIA)
    add_voucher(db, shop, "ANA-15", 1_500, ana["memberId"], benefit="R$ 15")
    add_voucher(db, shop, "BIA-10", 1_000, bia["memberId"])
    add_voucher(db, shop, "PROMO-5", 500, max_uses=2)
    add_voucher(db, shop, "OLD-1", 500, valid_until=start + timedelta(minutes=1))
    add_voucher(db, shop, "LATER-1", 500, valid_from=start + timedelta(days=1))
    frozen(start + timedelta(minutes=5))
    used = ok(
        sale(
            client, shop, "T-1", 10_000, MEMBER, usedAssets=[{"key": "ana-15"}, {"code": "PROMO-5"}]
        )
    )["data"]
    assert used["usedAssets"] == [
        {
            "key": "ANA-15",
            "name": "R$ 15",
            "discountAmount": -1_500,
            "benefit": "R$ 15",
            "usesLeft": 0,
        },
        {"key": "PROMO-5", "name": "Voucher", "discountAmount": -500, "benefit": "", "usesLeft": 1},
    ]
    assert used["amountToPay"] == 8_000 and used["earned"]["points"] == 80

    def refused(i, key, status, code, member=MEMBER):
        assets = [{"key": "PROMO-5"}] * i + [{"key": key}]
        response = sale(client, shop, f"T-{key}", 10_000, member, usedAssets=assets)
        error(response, status, code, f"body.usedAssets[{i}].key")

    refused(0, "ANA-15", 409, "4091031")  # used
    refused(0, "NOPE-1", 404, "4041030")
    refused(0, "OLD-1", 410, "4101032")
    refused(0, "LATER-1", 409, "4091033")
    refused(1, "BIA-10", 403, "4031035")  # Bia's, and the first asset's use is undone too
    with db.session(readonly=True) as session:
        promo = session.query(Voucher).filter_by(code="PROMO-5").one()
        assert promo.uses == 1
    # At the counter without a member, the code is enough (even a member's voucher).
    anonymous = ok(sale(client, shop, "T-2", 3_000, usedAssets=[{"key": "BIA-10"}]))["data"]
    assert anonymous["usedAssets"][0]["discountAmount"] == -1_000
    assert count(db, VoucherUse) == 3


def test_loyalty_payments_in_a_sale(client, db):
    shop = make_shop(db)
    register(client, shop)
    ok(sale(client, shop, "T-0", 100_000, MEMBER))  # 1000 points, R$ 50,00 credit
    pay = [
        {"type": "POINTS", "amount": 2_000},  # R$ 20 = 200 points
        {"type": "credit", "amount": 1_000},
        {"type": "CASH", "amount": 7_000},
    ]
    data = ok(sale(client, shop, "T-1", 10_000, MEMBER, payments=pay))["data"]
    points_payment, credit_payment, cash = data["payments"]
    assert points_payment["type"] == "POINTS" and points_payment["points"] == 200
    assert points_payment["confirmationCode"].startswith("LP-")
    assert credit_payment["type"] == "CREDIT" and credit_payment["points"] is None
    assert cash == {
        "type": "CASH",
        "amount": 7_000,
        "points": None,
        "confirmationCode": None,
        "linked": False,
    }
    assert data["earned"] == {"points": 70, "credit": 350}  # only what was paid with money
    assert data["newBalance"] == {"points": 1000 - 200 + 70, "credit": 5_000 - 1_000 + 350}
    too_much = sale(
        client, shop, "T-2", 1_000_000, MEMBER, payments=[{"type": "POINTS", "amount": 900_000}]
    )
    error(too_much, 422, "407", "body.transaction.payments[0].amount")
    over = sale(client, shop, "T-3", 1_000, MEMBER, payments=[{"type": "CREDIT", "amount": 1_001}])
    error(over, 400, "4001007", "body.transaction.payments[0].amount")
    anonymous = sale(client, shop, "T-4", 1_000, payments=[{"type": "POINTS", "amount": 100}])
    error(anonymous, 400, "4001010", "body.member")
    assert count(db, Order) == 2 and count(db, LoyaltyPayment) == 2
    assert ledger_invariants(db) == []


def test_cancel_a_sale(client, db):
    shop = make_shop(db)
    register(client, shop)
    register(client, shop, phoneNumber=BIA)
    add_deal(db, shop, "Bonus 25", "points", 25)
    ok(sale(client, shop, "T-0", 50_000, MEMBER))  # 500 + 25 points, R$ 25 credit
    before = balance(client, shop)
    voucher = add_voucher(db, shop, "GIFT-1", 1_000)
    body = ok(
        sale(
            client,
            shop,
            "T-1",
            21_000,
            MEMBER,
            usedAssets=[{"key": voucher}],
            payments=[{"type": "POINTS", "amount": 1_000}, {"type": "CASH", "amount": 19_000}],
        )
    )
    code = body["confirmationCode"]
    assert body["data"]["earned"] == {"points": 190 + 25, "credit": 950}
    wrong_member = post(
        client,
        shop,
        "/transaction",
        {"action": "cancel", "confirmationCode": code, "member": {"phoneNumber": BIA}},
    )
    error(wrong_member, 404, "4041040", "body.confirmationCode")
    cancelled = ok(
        post(client, shop, "/transaction", {"action": "cancel", "confirmationCode": code})
    )
    assert cancelled["confirmationCode"] == code
    data = cancelled["data"]
    assert data["status"] == "cancelled" and data["transactionId"] == "T-1"
    assert data["reversed"] == {"points": 215, "credit": 950}
    assert [p["points"] for p in data["refundedPayments"]] == [100]
    assert data["releasedAssets"] == ["GIFT-1"]
    assert data["newBalance"] == before
    # Once: cancelling again changes nothing.
    again = ok(
        post(client, shop, "/transaction", {"action": "cancel", "confirmationCode": code.lower()})
    )
    assert again["data"]["reversed"] == {"points": 0, "credit": 0}
    assert again["data"]["refundedPayments"] == [] and again["data"]["newBalance"] == before
    # The voucher can be used again; a replay of the submission still answers the first time.
    ok(sale(client, shop, "T-2", 5_000, usedAssets=[{"key": "GIFT-1"}]))
    for bad in ("TX-1-XXXXXX", "TX-999-ABCDEF", "nonsense"):
        missing = post(client, shop, "/transaction", {"action": "cancel", "confirmationCode": bad})
        error(missing, 404, "4041040", "body.confirmationCode")
    no_code = post(client, shop, "/transaction", {"action": "cancel"})
    error(no_code, 400, "4000002", "body.confirmationCode")
    assert ledger_invariants(db) == []


def test_the_pos_door_sees_the_sale(client, db):
    shop = make_shop(db)
    register(client, shop)
    ok(sale(client, shop, "T-1", 20_000, MEMBER))
    refund = client.post(
        "/v1/pvt/POS/T-1/partialcancel",
        headers=shop.pos,
        json={"ValueToRefund": 50.00, "CancelKey": "R-1"},
    )
    assert refund.status_code == 200, refund.text
    assert balance(client, shop) == {"points": 150, "credit": 750}
    # A POS-door order's id cannot be reused for a retail sale.
    pos = client.post(
        "/v1/pvt/POS/orders",
        headers=shop.pos,
        json={"OriginalId": "PDV-9", "OrderTotal": 10, "IsCompleted": True},
    )
    assert pos.status_code == 200, pos.text
    reused = sale(client, shop, "PDV-9", 1_000, MEMBER)
    error(reused, 409, "4091041", "body.transaction.transactionId")
    assert ledger_invariants(db) == []


def test_cancelling_through_the_pos_door_undoes_the_whole_sale(client, db):
    """One engine: the POS door's cancel of a retail sale gives back its loyalty payment,
    releases its voucher and takes back its deal bonus, exactly as the retail cancel does."""
    shop = make_shop(db)
    register(client, shop)
    add_deal(db, shop, "Bonus 25", "points", 25)
    ok(sale(client, shop, "T-0", 50_000, MEMBER))
    before = balance(client, shop)
    voucher = add_voucher(db, shop, "GIFT-2", 1_000)
    ok(
        sale(
            client,
            shop,
            "T-1",
            21_000,
            MEMBER,
            usedAssets=[{"key": voucher}],
            payments=[{"type": "POINTS", "amount": 1_000}, {"type": "CASH", "amount": 19_000}],
        )
    )
    response = client.post("/v1/pvt/POS/orders/T-1/cancel", headers=shop.pos, json={})
    assert response.status_code == 200, response.text
    assert response.json()["Result"]["isCanceled"] is True
    assert balance(client, shop) == before
    ok(sale(client, shop, "T-2", 5_000, usedAssets=[{"key": "GIFT-2"}]))  # usable again
    assert ledger_invariants(db) == []


def test_a_sale_answers_the_stored_balances_from_its_credits(client, db):
    """Issue 14: the new balance comes from the sale's credits (PostgreSQL: no balance read
    of its own), payments in the sale included; a sale that earns nothing reads it."""
    shop = make_shop(db)
    register(client, shop)
    ok(sale(client, shop, "T-1", 12_345, MEMBER, payments=[{"type": "CASH", "amount": 12_345}]))
    paid = [{"type": "CREDIT", "amount": 500}, {"type": "CASH", "amount": 500}]
    answer, statements = sent(db, lambda: sale(client, shop, "T-2", 1_000, MEMBER, payments=paid))
    second = ok(answer)["data"]
    assert second["earned"] == {"points": 5, "credit": 25}
    assert second["newBalance"] == {"points": 128, "credit": 617 - 500 + 25}
    assert balance(client, shop) == second["newBalance"]
    if db.engine.dialect.name == "postgresql":
        assert not [s for s in statements if s.startswith("SELECT balances")]
    third = ok(sale(client, shop, "T-3", 100, MEMBER, payments=[{"type": "CREDIT", "amount": 100}]))
    assert third["data"]["earned"] == {"points": 0, "credit": 0}
    assert third["data"]["newBalance"] == {"points": 128, "credit": 42}
    assert balance(client, shop) == third["data"]["newBalance"]
    assert ledger_invariants(db) == []
