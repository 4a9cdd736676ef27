"""The integration guide's flows, end to end, as a POS runs them."""

from sqlalchemy import select

from fidelia.models import Order, Redemption
from tests.dialects.pdv.conftest import (
    ORDERS,
    PHONE,
    add_reward,
    available,
    challenge,
    code_in,
    error,
    make_merchant,
    ok,
    order,
    redeem,
    reward_in,
    validate,
    wallet,
)
from tests.support.helpers import ledger_invariants


def linked_order(db, external_code):
    """The OriginalId of the order a redemption is linked to, and the redemption's status."""
    with db.session(readonly=True) as session:
        row = session.execute(
            select(Order.original_id, Redemption.status)
            .select_from(Redemption)
            .outerjoin(Order, Order.id == Redemption.order_id)
            .where(Redemption.external_code == external_code)
        ).one()
        return tuple(row)


def test_lookup_challenge_redeem_then_order_with_the_coupon(client, db, worker, sms):
    merchant = make_merchant(db, should_validate_customer="true")
    ten_off = add_reward(db, merchant, "R$ 10 de desconto", points=100, min_purchase="50")
    order(client, merchant, "PDV-1", "150.00", customer={"Name": "Ana", "Phone": PHONE})

    # 1. Lookup for a R$ 120 sale.
    lookup = available(client, merchant, "120.00")
    assert reward_in(lookup, ten_off)["CanUse"] is True
    assert lookup["ShouldValidateCustomer"] is True
    # 2. Challenge: the customer reads the code from the SMS.
    assert challenge(client, merchant, "SALE-2")["SentBySMS"] is True
    worker.drain()
    assert validate(client, merchant, code_in(sms.sent[-1]["text"]), "SALE-2") is True
    # 3. Redeem; the POS applies the R$ 10 itself.
    key = f"{ten_off}-52998224725-PDV-2-10.00"
    redeemed = ok(redeem(client, merchant, ten_off, key))
    assert redeemed["Point"]["Quantity"] == -100 and redeemed["OriginalKey"] == key
    # 4. The order: R$ 110 paid, the ExternalCode as its Coupon.
    placed = order(client, merchant, "PDV-2", "110.00", Coupon=redeemed["ExternalCode"])
    assert placed["State"] == 2 and placed["EstimatedBonus"]["EstimatedPoints"] == 110
    assert linked_order(db, redeemed["ExternalCode"]) == ("PDV-2", "done")
    assert wallet(db, merchant) == (150 - 100 + 110, 750 + 550)
    error(
        client.delete(f"/v1/pvt/POS/rewards/{redeemed['ExternalCode']}", headers=merchant.headers),
        409,
        "OrderAlreadyComplete",
    )
    assert ledger_invariants(db) == []


def test_cashback_with_a_chosen_value(client, db):
    merchant = make_merchant(db)
    cashback = add_reward(
        db, merchant, "Cashback", "cashback", points=None, value="1.00", max_share_percent=10
    )
    order(client, merchant, "PDV-1", "400.00")  # 400 points (R$ 40) + R$ 20 cashback
    lookup = available(client, merchant, "100.00")
    offer = reward_in(lookup, cashback)
    assert offer["CanUse"] is True and offer["CanSelectValue"] is True
    assert offer["AvailableCashback"] == 60.0
    assert offer["MaxCashbackForCurrentPurchase"] == 10.0  # 10% of R$ 100
    # The cashier picks R$ 8 of the R$ 10 allowed.
    redeemed = ok(redeem(client, merchant, cashback, "CB-PDV-2-8.00", value="8.00"))
    assert wallet(db, merchant) == (400, 1200)  # all of it from the cashback account
    order(client, merchant, "PDV-2", "92.00", Coupon=redeemed["ExternalCode"])
    assert linked_order(db, redeemed["ExternalCode"]) == ("PDV-2", "done")
    assert wallet(db, merchant) == (400 + 92, 1200 + 460)
    assert ledger_invariants(db) == []


def test_cancel_before_the_sale_completes(client, db):
    merchant = make_merchant(db)
    reward = add_reward(db, merchant, "R$ 10 de desconto", points=100)
    order(client, merchant, "PDV-1", "150.00")
    redeemed = ok(redeem(client, merchant, reward, "K-PDV-2"))
    order(client, merchant, "PDV-2", "90.00", Coupon=redeemed["ExternalCode"], completed=False)
    assert wallet(db, merchant)[0] == 50
    # The customer gives up: the reward is cancelled, then the sale.
    cancelled = ok(
        client.delete(
            "/v1/pvt/POS/rewards", params={"OriginalKey": "K-PDV-2"}, headers=merchant.headers
        )
    )
    assert cancelled["IsCanceled"] is True
    assert wallet(db, merchant)[0] == 150
    gone = ok(client.post(f"{ORDERS}/PDV-2/cancel", headers=merchant.headers, json={}))
    assert gone["isCanceled"] is True
    assert wallet(db, merchant) == (150, 750)  # nothing given back twice
    assert linked_order(db, redeemed["ExternalCode"]) == ("PDV-2", "cancelled")
    assert ledger_invariants(db) == []


def test_partial_refund_after_the_points_were_spent(client, db):
    merchant = make_merchant(db)
    voucher = add_reward(db, merchant, "Vale R$ 20", points=200, value="20.00")
    order(client, merchant, "PDV-1", "200.00")
    redeemed = ok(redeem(client, merchant, voucher, "K-PDV-2"))
    order(client, merchant, "PDV-2", "30.00", Coupon=redeemed["ExternalCode"])
    assert wallet(db, merchant) == (30, 1150)
    # An item of PDV-1 comes back: R$ 80 of R$ 200, so 80 points and R$ 4.
    result = ok(
        client.post(
            "/v1/pvt/POS/PDV-1/partialcancel",
            headers=merchant.headers,
            json={
                "ValueToRefund": "80.00",
                "CancelKey": "DEV-1",
                "Products": [{"OriginalId": "SKU-7", "ValueToRefund": "80.00"}],
            },
        )
    )
    assert "RefundErrorDetails" not in result
    assert wallet(db, merchant) == (-50, 750)
    lookup = available(client, merchant, "100.00")
    assert lookup["AvailablePoints"] == -50
    assert reward_in(lookup, voucher)["CanUse"] is False
    error(redeem(client, merchant, voucher, "K-PDV-3"), 422, "InsufficientPoints")
    order(client, merchant, "PDV-3", "250.00")
    assert wallet(db, merchant)[0] == 200
    assert ok(redeem(client, merchant, voucher, "K-PDV-3"))["Point"]["Quantity"] == -200
