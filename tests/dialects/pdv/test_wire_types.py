"""Identifiers the guide gives no type for come as JSON strings or numbers (POS clients
send both: the vendor's own example has ``"OriginalId": 530648963003``); a boolean is never
taken for a number or an identifier, and is refused in the door's envelope."""

from fidelia.models import Order, OrderRefund, Redemption
from tests.dialects.pdv.conftest import (
    ANA,
    AVAILABLE,
    ORDERS,
    add_reward,
    challenge_path,
    count,
    error,
    make_merchant,
    ok,
    redeem_path,
    wallet,
)

CPF = int(ANA)  # 52998224725


def test_identifiers_as_numbers(client, db, worker):
    merchant = make_merchant(db, sandbox="true")
    reward = add_reward(db, merchant, "R$ 10 de desconto", points=100)
    headers = merchant.headers
    placed = ok(
        client.post(
            ORDERS,
            headers=headers,
            json={
                "OriginalId": 12345,
                "OrderTotal": 250,
                "IsCompleted": True,
                "OrderStatus": 3,
                "Customer": {"Document": CPF, "Phone": 11987654321, "OriginalId": 777},
                "Products": [{"OriginalId": 530648963003, "ProductPrice": 250, "Quantity": 1}],
            },
        )
    )
    assert placed["OriginalId"] == "12345" and placed["OrderStatus"] == "3"
    assert placed["Customer"]["OriginalId"] == "777"
    assert placed["Customer"]["Phone"] == "+5511987654321"
    assert wallet(db, merchant) == (250, 1250)

    lookup = client.post(AVAILABLE, headers=headers, json={"CustomerId": CPF, "PurchaseValue": 100})
    assert lookup.json()["AvailablePoints"] == 250

    sent = client.post(challenge_path(), headers=headers, json={"TransactionId": 20260101})
    assert sent.json()["TransactionId"] == "20260101" and sent.json()["Success"] is True
    code = sent.json()["Code"]
    validated = client.post(
        challenge_path(validate=True),
        headers=headers,
        json={"TransactionId": 20260101, "Code": int(code) if code[0] != "0" else code},
    )
    assert validated.json() == {
        "TransactionId": "20260101",
        "Success": True,
        "FriendlyErrorMessage": None,
    }

    body = {"CustomerId": CPF, "OriginalKey": 987654}
    first = ok(client.post(redeem_path(reward), headers=headers, json=body))
    assert first["OriginalKey"] == "987654"
    # The same key as text is the same request: replayed, not a second debit.
    again = client.post(
        redeem_path(reward), headers=headers, json={"CustomerId": ANA, "OriginalKey": "987654"}
    )
    assert ok(again) == first
    assert count(db, Redemption) == 1 and wallet(db, merchant)[0] == 150
    cancelled = ok(
        client.request(
            "DELETE", "/v1/pvt/POS/rewards", headers=headers, json={"OriginalKey": 987654}
        )
    )
    assert cancelled["IsCanceled"] is True and wallet(db, merchant)[0] == 250

    refund = {
        "ValueToRefund": 50,
        "CancelKey": 1,
        "Products": [{"OriginalId": 530648963003, "ValueToRefund": 50}],
    }
    ok(client.post("/v1/pvt/POS/12345/partialcancel", headers=headers, json=refund))
    assert count(db, OrderRefund) == 1 and wallet(db, merchant) == (200, 1000)
    ok(client.post("/v1/pvt/POS/12345/partialcancel", headers=headers, json=refund))  # replayed
    assert wallet(db, merchant) == (200, 1000)


def test_booleans_are_refused(client, db, worker):
    merchant = make_merchant(db)
    reward = add_reward(db, merchant, "R$ 10 de desconto", points=100)
    cashback = add_reward(db, merchant, "Cashback", "cashback", points=None, value="1.00")
    headers = merchant.headers
    placed = {
        "OriginalId": "PDV-1",
        "OrderTotal": 250,
        "IsCompleted": True,
        "Customer": {"Document": ANA},
    }
    ok(client.post(ORDERS, headers=headers, json=placed))
    before = wallet(db, merchant)
    enveloped = [
        (AVAILABLE, {"CustomerId": True, "PurchaseValue": 10}),
        (AVAILABLE, {"CustomerId": ANA, "PurchaseValue": True}),
        (AVAILABLE, {"CustomerId": ANA, "PurchaseValue": 10, "DiscountValue": False}),
        (AVAILABLE, {"CustomerId": ANA, "Products": [{"OriginalId": True}]}),
        (AVAILABLE, {"CustomerId": ANA, "Products": [{"OriginalId": "P", "Quantity": True}]}),
        (AVAILABLE, {"CustomerId": 12.5, "PurchaseValue": 10}),  # not a whole number
        (redeem_path(reward), {"CustomerId": ANA, "OriginalKey": True}),
        (redeem_path(reward), {"CustomerId": True, "OriginalKey": "K"}),
        (redeem_path(reward), {"CustomerId": ANA, "OriginalKey": "K", "RedeemOrigin": True}),
        (redeem_path(cashback), {"CustomerId": ANA, "OriginalKey": "K", "Value": True}),
        (redeem_path(cashback), {"CustomerId": ANA, "OriginalKey": "K", "Points": True}),
        (ORDERS, {"OriginalId": True, "OrderTotal": 10}),
        (ORDERS, {"OriginalId": "PDV-2", "OrderTotal": True}),
        (ORDERS, {"OriginalId": "PDV-2", "OrderTotal": 10, "Coupon": True}),
        (ORDERS, {"OriginalId": "PDV-2", "OrderTotal": 10, "OrderStatus": False}),
        (ORDERS, {"OriginalId": "PDV-2", "OrderTotal": 10, "Customer": {"Document": True}}),
        ("/v1/pvt/POS/PDV-1/partialcancel", {"ValueToRefund": True, "CancelKey": "C"}),
        ("/v1/pvt/POS/PDV-1/partialcancel", {"ValueToRefund": 5, "CancelKey": True}),
    ]
    for path, body in enveloped:
        error(client.post(path, headers=headers, json=body), 400, "InvalidRequest")
    by_key = client.request(
        "DELETE", "/v1/pvt/POS/rewards", headers=headers, json={"OriginalKey": True}
    )
    error(by_key, 400, "InvalidRequest")
    for path, body in [
        (challenge_path(), {"TransactionId": True}),
        (challenge_path(validate=True), {"TransactionId": "T", "Code": True}),
        (challenge_path(validate=True), {"TransactionId": False, "Code": "123456"}),
    ]:
        refused = client.post(path, headers=headers, json=body)
        assert refused.status_code == 400, refused.text
        assert refused.json()["CodeName"] == "InvalidRequest" and refused.json()["Success"] is False
    assert wallet(db, merchant) == before
    assert count(db, Redemption) == 0 and count(db, Order) == 1 and count(db, OrderRefund) == 0
