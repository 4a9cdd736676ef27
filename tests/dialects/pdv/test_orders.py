"""POST /v1/pvt/POS/orders (upsert by OriginalId), /orders/{id}/cancel and
/{id}/partialcancel: what completed orders earn, and how it is reversed."""

from sqlalchemy import select

from fidelia.models import LedgerEntry, Order, OrderRefund, Redemption
from tests.dialects.pdv.conftest import (
    ANA,
    BIA,
    ORDERS,
    add_reward,
    available,
    count,
    error,
    make_merchant,
    ok,
    order,
    redeem,
    reward_in,
    wallet,
)
from tests.support.helpers import ledger_invariants


def cancel(client, merchant, ref, **body):
    return client.post(f"{ORDERS}/{ref}/cancel", headers=merchant.headers, json=body or None)


def refund(client, merchant, ref, value, key, products=None):
    body = {"ValueToRefund": value, "CancelKey": key}
    if products is not None:
        body["Products"] = [{"OriginalId": p, "ValueToRefund": v} for p, v in products]
    return client.post(f"/v1/pvt/POS/{ref}/partialcancel", headers=merchant.headers, json=body)


def test_upsert_by_original_id(client, db):
    merchant = make_merchant(db)
    assert available(client, merchant, 10)["Customer"] is None
    pending = order(client, merchant, "PDV-1", "100.00", completed=False, customer={"Name": "Ana"})
    assert pending == {
        "Id": pending["Id"],
        "OriginalId": "PDV-1",
        "OrderPlacementDate": None,
        "OrderCompletedDate": None,
        "OrderCancelledDate": None,
        "OrderStatus": None,
        "IsCancelledOrReturned": False,
        "IsCompleted": False,
        "OrderTotal": 100.0,
        "Customer": {
            "Id": pending["Customer"]["Id"],
            "OriginalId": None,
            "Name": "Ana",
            "Email": None,
            "Phone": None,
            "Document": ANA,
            "IsEnrolled": True,
            "CurrentTier": None,
        },
        "UpdatedDate": pending["UpdatedDate"],
        "Coupon": None,
        "State": 1,
        "Origin": 1,
        "EstimatedBonus": {
            "GenerateBonus": True,
            "EstimatedPoints": 100,
            "EstimatedCashback": 5.0,
            "EstimatedCashbackFormatted": "R$ 5,00",
        },
    }
    assert wallet(db, merchant) == (0, 0)  # an estimate, nothing credited yet
    assert available(client, merchant, 10)["Customer"]["Name"] == "Ana"  # created by Document

    done = order(client, merchant, "PDV-1", "250.00", completed=True)
    assert done["Id"] == pending["Id"] and done["OriginalId"] == "PDV-1"
    assert done["State"] == 2 and done["IsCompleted"] is True and done["OrderTotal"] == 250.0
    assert done["OrderCompletedDate"] and done["UpdatedDate"]
    assert done["EstimatedBonus"]["EstimatedPoints"] == 250
    assert done["EstimatedBonus"]["EstimatedCashback"] == 12.5
    assert done["EstimatedBonus"]["EstimatedCashbackFormatted"] == "R$ 12,50"
    assert wallet(db, merchant) == (250, 1250)
    # Sent again (a retry): the same order, credited once.
    assert order(client, merchant, "PDV-1", "250.00")["Id"] == done["Id"]
    assert wallet(db, merchant) == (250, 1250)
    assert count(db, Order) == 1


def test_points_round_down(client, db):
    merchant = make_merchant(db, earn_points_per_unit="1.5")
    bonus = order(client, merchant, "PDV-1", "99.99")["EstimatedBonus"]
    # 99.99 x 1.5 = 149.985 points; 5% of R$ 99,99 = R$ 4,9995.
    assert (bonus["EstimatedPoints"], bonus["EstimatedCashback"]) == (149, 4.99)
    assert bonus["EstimatedCashbackFormatted"] == "R$ 4,99"
    assert wallet(db, merchant) == (149, 499)


def test_customer_created_on_first_order(client, db):
    merchant = make_merchant(db)
    assert available(client, merchant, 10, customer=BIA)["Customer"] is None
    order(
        client,
        merchant,
        "PDV-1",
        "20.00",
        document="111.444.777-35",
        customer={"Name": "Bia", "Email": "Bia@Example.com", "OriginalId": "CLI-9"},
    )
    customer = available(client, merchant, 10, customer=BIA)["Customer"]
    assert customer["Name"] == "Bia" and customer["Document"] == BIA
    assert customer["Email"] == "bia@example.com" and customer["OriginalId"] == "CLI-9"
    assert wallet(db, merchant, BIA) == (20, 100)


def test_below_min_order_value_earns_nothing(client, db):
    merchant = make_merchant(db, min_order_value="50.00")
    small = order(client, merchant, "PDV-1", "49.99")
    assert small["State"] == 2
    assert small["EstimatedBonus"] == {
        "GenerateBonus": False,
        "EstimatedPoints": 0,
        "EstimatedCashback": 0.0,
        "EstimatedCashbackFormatted": "R$ 0,00",
    }
    assert wallet(db, merchant) == (0, 0)
    assert order(client, merchant, "PDV-2", "50.00")["EstimatedBonus"]["EstimatedPoints"] == 50
    assert wallet(db, merchant) == (50, 250)


def test_order_without_customer_is_ignored(client, db):
    merchant = make_merchant(db)
    result = order(client, merchant, "PDV-1", "80.00", document=None)
    assert result["State"] == 4 and result["EstimatedBonus"]["GenerateBonus"] is False
    assert count(db, LedgerEntry) == 0


def test_order_errors(client, db):
    merchant = make_merchant(db)
    cases = [
        ({"OrderTotal": 10}, "InvalidRequest"),
        ({"OriginalId": "X", "OrderTotal": -1}, "InvalidRequest"),
        ({"OriginalId": "X", "OrderTotal": "abc"}, "InvalidRequest"),
        ({"OriginalId": "X", "OrderTotal": 1, "Customer": {"Document": "123"}}, "InvalidDocument"),
        ({"OriginalId": "X", "OrderTotal": 1, "OrderPlacementDate": "ontem"}, "InvalidRequest"),
    ]
    for body, code_name in cases:
        error(client.post(ORDERS, headers=merchant.headers, json=body), 400, code_name)
    assert count(db, Order) == 0


def test_cancel_reverses_everything_and_gives_back_the_reward(client, db):
    merchant = make_merchant(db)
    reward = add_reward(db, merchant, "R$ 10 de desconto", points=100)
    first = order(client, merchant, "PDV-1", "200.00")
    order(client, merchant, "PDV-2", "100.00")
    code = ok(redeem(client, merchant, reward, "K1"))["ExternalCode"]
    order(client, merchant, "PDV-3", "50.00", Coupon=code)
    assert wallet(db, merchant) == (300 - 100 + 50, 1500 + 250)

    body = {"OrderCancelledDate": "2026-05-07T15:30:00-03:00", "OrderStatus": "Cancelado"}
    result = ok(cancel(client, merchant, "PDV-3", **body))
    assert result["isCanceled"] is True and result["Status"] == 3 and result["UpdatedAt"]
    assert "IsCanceled" not in result
    # Its 50 points and R$ 2,50 go, the 100 points of its reward come back.
    assert wallet(db, merchant) == (300, 1500)
    with db.session(readonly=True) as session:
        assert session.scalar(select(Redemption.status)) == "cancelled"
    assert ok(cancel(client, merchant, "PDV-3"))["isCanceled"] is True
    assert wallet(db, merchant) == (300, 1500)  # reversed once

    # By our own numeric id.
    assert ok(cancel(client, merchant, first["Id"]))["isCanceled"] is True
    assert wallet(db, merchant) == (100, 500)
    # By an update flagged IsCancelledOrReturned.
    assert order(client, merchant, "PDV-2", "100.00", IsCancelledOrReturned=True)["State"] == 3
    assert wallet(db, merchant) == (0, 0)
    # A cancelled order does not earn again.
    assert order(client, merchant, "PDV-1", "200.00")["State"] == 3
    assert wallet(db, merchant) == (0, 0)

    error(cancel(client, merchant, "PDV-404"), 404, "OrderNotFound")
    assert ledger_invariants(db) == []


def test_cancel_a_pending_order_gives_back_its_reward(client, db):
    merchant = make_merchant(db)
    reward = add_reward(db, merchant, "R$ 10 de desconto", points=100)
    order(client, merchant, "PDV-1", "150.00")
    code = ok(redeem(client, merchant, reward, "K1"))["ExternalCode"]
    order(client, merchant, "PDV-2", "90.00", Coupon=code, completed=False)
    assert wallet(db, merchant)[0] == 50
    assert ok(cancel(client, merchant, "PDV-2"))["isCanceled"] is True
    assert wallet(db, merchant) == (150, 750)


def test_partial_cancel(client, db):
    merchant = make_merchant(db)
    placed = order(client, merchant, "PDV-1", "200.00")
    assert wallet(db, merchant) == (200, 1000)

    result = ok(refund(client, merchant, "PDV-1", "50.00", "R1"))
    assert result["isCanceled"] is True and result["Status"] == 2 and result["UpdatedAt"]
    assert "RefundErrorDetails" not in result
    assert wallet(db, merchant) == (150, 750)  # a quarter of the order, a quarter of each
    ok(refund(client, merchant, "PDV-1", "50.00", "R1"))  # a retry: reversed once
    assert wallet(db, merchant) == (150, 750)
    error(refund(client, merchant, "PDV-1", "40.00", "R1"), 422, "CancelKeyReused")

    entries, refunds = count(db, LedgerEntry), count(db, OrderRefund)
    mismatch = refund(client, merchant, "PDV-1", "30.00", "R2", [("A", "10.00"), ("B", "10.00")])
    error(mismatch, 422, "RefundProductsMismatch")
    assert (count(db, LedgerEntry), count(db, OrderRefund)) == (entries, refunds)
    assert wallet(db, merchant) == (150, 750)

    products = [("A", "20.00"), ("B", "10.00")]
    ok(refund(client, merchant, placed["Id"], "30.00", "R2", products))  # by our numeric id
    assert wallet(db, merchant) == (120, 600)

    error(refund(client, merchant, "PDV-1", "120.01", "R3"), 422, "RefundExceedsOrderTotal")
    error(refund(client, merchant, "PDV-1", "0", "R3"), 422, "InvalidRefund")
    error(refund(client, merchant, "PDV-404", "1", "R3"), 404, "OrderNotFound")
    assert wallet(db, merchant) == (120, 600)
    ok(refund(client, merchant, "PDV-1", "120.00", "R3"))  # the rest of it
    assert wallet(db, merchant) == (0, 0)
    error(refund(client, merchant, "PDV-1", "0.01", "R4"), 422, "RefundExceedsOrderTotal")

    # Cancelling after partial refunds reverses only what is left (nothing here).
    ok(cancel(client, merchant, "PDV-1"))
    assert wallet(db, merchant) == (0, 0)
    error(refund(client, merchant, "PDV-1", "1.00", "R5"), 409, "OrderCancelled")
    assert ledger_invariants(db) == []


def test_partial_refunds_add_up_without_drift(client, db):
    merchant = make_merchant(db)
    order(client, merchant, "PDV-1", "99.99")  # 99 points, R$ 4,99
    for key in ("R1", "R2", "R3"):
        ok(refund(client, merchant, "PDV-1", "33.33", key))
    assert wallet(db, merchant) == (0, 0)


def test_refund_after_the_points_were_spent_leaves_a_debt(client, db):
    merchant = make_merchant(db)
    everything = add_reward(db, merchant, "Vale R$ 20", points=200, value="20.00")
    small = add_reward(db, merchant, "Brinde", "custom", points=10, value=None)
    order(client, merchant, "PDV-1", "200.00")
    ok(redeem(client, merchant, everything, "K1"))
    assert wallet(db, merchant) == (0, 1000)

    ok(refund(client, merchant, "PDV-1", "50.00", "R1"))
    assert wallet(db, merchant) == (-50, 750)  # the 50 points are owed, not dropped
    answer = available(client, merchant, 100)
    assert answer["AvailablePoints"] == -50
    assert reward_in(answer, small)["CannotUseReason"] == 1
    error(redeem(client, merchant, small, "K2"), 422, "InsufficientPoints")
    # The debt blocks cashback too, although R$ 7,50 sit in the cashback account.
    cashback = add_reward(db, merchant, "Cashback", "cashback", points=None, value="1.00")
    assert available(client, merchant, 100)["AvailableCashback"] == 0
    error(redeem(client, merchant, cashback, "K3", value="5.00"), 422, "InsufficientPoints")

    order(client, merchant, "PDV-2", "55.00")  # earned back, and 5 more
    assert wallet(db, merchant)[0] == 5
    error(redeem(client, merchant, small, "K2"), 422, "InsufficientPoints")
    order(client, merchant, "PDV-3", "5.00")
    assert ok(redeem(client, merchant, small, "K2"))["Point"]["Quantity"] == -10
    assert wallet(db, merchant)[0] == 0
    assert ledger_invariants(db) == []


def test_a_pending_order_is_not_refunded_in_part(client, db):
    merchant = make_merchant(db)
    order(client, merchant, "PDV-1", "100.00", completed=False)
    response = client.post(
        "/v1/pvt/POS/PDV-1/partialcancel",
        headers=merchant.headers,
        json={"ValueToRefund": 10, "CancelKey": "C1"},
    )
    assert response.status_code == 409
    assert response.json()["CodeName"] == "OrderNotComplete"
