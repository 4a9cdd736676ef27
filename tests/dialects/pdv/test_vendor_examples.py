"""The vendor's published examples, sent as published.

Sources (public, read through the search tool): the API reference pages of
developers.bonifiq.com.br for the POS endpoints (``/api-reference/pos/...``: rewards/available,
redeem, DELETE rewards/{id}, challenge, challengevalidate, orders, orders/{id}/cancel,
{id}/partialcancel) and the cookbook of the public mocked PDV, github.com/bonifiq/
pdv-bonifiqintegration-example (``docs/cookbook.md``). Each request body is the published
one; only what must be captured or must be real data is adjusted, and says so: the
customer's document (the examples' ``12345678900`` and ``<string>`` are no valid CPF), ids
the previous answer gave (``RewardId``, ``ExternalCode``, the challenge code), and contact
fields whose ``<string>`` placeholder would be refused as an e-mail or phone. Every answer
must carry at least the fields of the published answer, in the envelope."""

from sqlalchemy import select

from fidelia.models import OrderRefund, Redemption
from tests.dialects.pdv.conftest import (
    ANA,
    AVAILABLE,
    ORDERS,
    add_product_reward,
    add_reward,
    challenge_path,
    count,
    make_merchant,
    order,
    redeem_path,
    wallet,
)
from tests.support.helpers import ledger_invariants

ENVELOPE = {"ErrorMessage", "ErrorCode", "Result", "HasError"}
REF_AVAILABLE_BODY = {
    "CustomerId": "<string>",
    "PurchaseValue": 123,
    "DiscountValue": 123,
    "Products": [
        {
            "OriginalId": 530648963003,
            "Title": "CAMISA ML SLIM VICHY MELANGE 13 2601 001 - VERDE ESCURO - 3",
            "IsActive": True,
            "ProductPrice": 499.9,
            "ProductDiscountPrice": 50.5,
            "ProductBrand": {"OriginalId": "Vichy", "Name": "VC0112"},
            "ProductCategory": {"OriginalId": "CA123", "Name": "Camisas", "ParentCategory": None},
        }
    ],
}
REF_AVAILABLE_ANSWER = {
    "Customer",
    "Rewards",
    "HasRestrictedItems",
    "RestrictedValue",
    "EligibleValue",
    "HasRewards",
    "ShouldValidateCustomer",
    "ShouldValidateCustomerSignup",
    "AvailablePoints",
    "CashbackEnabled",
    "AvailableCashback",
    "MaxCashbackForCurrentPurchase",
}
REF_CUSTOMER = {
    "Id",
    "OriginalId",
    "Name",
    "Email",
    "Phone",
    "Document",
    "IsEnrolled",
    "CurrentTier",
}
REF_REWARD = {
    "Id",
    "Title",
    "RewardType",
    "Value",
    "CanSelectValue",
    "IsCashback",
    "Requirements",
    "AvailableCashback",
    "MaxCashbackForCurrentPurchase",
    "CanUse",
    "Points",
    "RewardCanBeCumulative",
}
REF_REDEEM_BODY = {
    "CustomerId": "<string>",
    "Value": 123,
    "Points": 123,
    "OriginalKey": "<string>",
    "Metadatas": [{"Name": "<string>", "Value": "<string>"}],
    "RedeemOrigin": 0,
    "Branch": {"OriginalId": "<string>", "Name": "<string>"},
    "SalesPerson": {"OriginalId": "<string>", "Name": "<string>"},
    "ForceGenerateCoupon": True,
}
REF_REDEEM_ANSWER = {"RewardId", "Point", "ExternalCode", "OriginalKey", "Coupon"}
REF_CANCEL_REWARD_ANSWER = {
    "Id",
    "Customer",
    "ExternalCode",
    "CashValue",
    "IsCanceled",
    "RedeemDate",
    "Points",
}
REF_ORDER_BODY = {
    "OriginalId": "<string>",
    "OrderPlacementDate": "2023-11-07T05:31:56Z",
    "OrderCompletedDate": "2023-11-07T05:31:56Z",
    "OrderCancelledDate": "2023-11-07T05:31:56Z",
    "OrderStatus": "<string>",
    "IsCancelledOrReturned": False,  # published as true with IsCompleted true: one state here
    "IsCompleted": True,
    "OrderTotal": 123,
    "Customer": {
        "OriginalId": "<string>",
        "Name": "<string>",
        "Email": "ana@example.com",  # "<string>": not an e-mail
        "Phone": "11987654321",  # "<string>": not a phone
        "BirthdayDate": "2023-11-07T05:31:56Z",
        "SignupDate": "2023-11-07T05:31:56Z",
        "Document": ANA,  # "<string>": not a CPF
        "IsEnrolled": True,
    },
    "Products": [
        {
            "OriginalId": "<string>",
            "Title": "<string>",
            "Url": "<string>",
            "ImageUrl": "<string>",
            "IsActive": True,
            "ProductPrice": 123,
            "ProductBrand": {"OriginalId": "<string>", "Name": "<string>"},
        }
    ],
    "UpdatedDate": "2023-11-07T05:31:56Z",
    "Coupon": "<string>",
    "Metadatas": [{"Name": "<string>", "Value": "<string>"}],
    "PaymentMethod": {"OriginalId": "<string>", "Name": "<string>"},
    "Branch": {"OriginalId": "<string>", "Name": "<string>"},
    "SalesPerson": {"OriginalId": "<string>", "Name": "<string>"},
    "ExternalCoupon": "<string>",
}
REF_ORDER_ANSWER = {
    "Id",
    "OriginalId",
    "OrderPlacementDate",
    "OrderCompletedDate",
    "OrderCancelledDate",
    "OrderStatus",
    "IsCancelledOrReturned",
    "IsCompleted",
    "OrderTotal",
    "Customer",
    "EstimatedBonus",
}


def enveloped(response):
    assert response.status_code == 200, response.text
    body = response.json()
    assert ENVELOPE <= set(body) and body["HasError"] is False, body
    return body["Result"]


def test_reference_examples(client, db, worker, sms):
    merchant = make_merchant(db, sandbox="true")
    fixed = add_reward(db, merchant, "R$50,00 de desconto", points=100, value="50.00")
    cashback = add_reward(db, merchant, "Cashback", "cashback", points=None, value="1.00")
    contacts = {"Name": "Ana", "Phone": "11987654321", "Email": "ana@example.com"}
    order(client, merchant, "PDV-0", "1000.00", customer=contacts)  # 1000 points, R$ 50
    h = merchant.headers

    # POST /rewards/available, the reference's body with Products (OriginalId a number).
    body = REF_AVAILABLE_BODY | {"CustomerId": ANA}
    answer = client.post(AVAILABLE, headers=h, json=body)
    assert answer.status_code == 200, answer.text
    answer = answer.json()
    assert REF_AVAILABLE_ANSWER <= set(answer)
    assert REF_CUSTOMER <= set(answer["Customer"])
    assert all(REF_REWARD <= set(r) for r in answer["Rewards"])
    assert answer["AvailablePoints"] == 1000 and answer["EligibleValue"] == 123.0
    assert answer["HasRestrictedItems"] is False and answer["RestrictedValue"] == 0

    # challenge + challengevalidate: the reference's body; the contacts on file win over
    # the placeholders (which are only used when the customer has none).
    sent = client.post(
        challenge_path(),
        headers=h,
        json={"TransactionId": "<string>", "Phone": "<string>", "Email": "<string>"},
    )
    assert sent.status_code == 200, sent.text
    assert set(sent.json()) >= {
        "Success",
        "FriendlyErrorMessage",
        "ShouldInformPhone",
        "ShouldInformEmail",
        "SentBySMS",
        "SentByEmail",
        "TransactionId",
        "ErrorMessage",
        "Code",
    }
    assert sent.json()["Success"] is True and sent.json()["TransactionId"] == "<string>"
    checked = client.post(
        challenge_path(validate=True),
        headers=h,
        json={"TransactionId": "<string>", "Code": sent.json()["Code"]},  # the code sent
    )
    assert checked.json() == {
        "TransactionId": "<string>",
        "Success": True,
        "FriendlyErrorMessage": None,
    }

    # POST /rewards/{id}/redeem, the reference's body, on a discount and on cashback.
    redeemed = enveloped(
        client.post(redeem_path(fixed), headers=h, json=REF_REDEEM_BODY | {"CustomerId": ANA})
    )
    assert REF_REDEEM_ANSWER <= set(redeemed) and {"PointId", "Quantity", "Metadatas"} <= set(
        redeemed["Point"]
    )
    assert redeemed["Point"]["Quantity"] == -100 and redeemed["OriginalKey"] == "<string>"
    assert redeemed["Point"]["Metadatas"] == [{"Name": "<string>", "Value": "<string>"}]
    assert wallet(db, merchant) == (900, 5000)
    cash = REF_REDEEM_BODY | {"CustomerId": ANA, "OriginalKey": "<string>-2"}
    cash_answer = enveloped(client.post(redeem_path(cashback), headers=h, json=cash))
    assert wallet(db, merchant) == (170, 0)  # Value 123: R$ 50 of cashback + 730 points

    # DELETE /rewards/{id} with the RewardId the redeem answered.
    cancelled = enveloped(
        client.delete(f"/v1/pvt/POS/rewards/{cash_answer['RewardId']}", headers=h)
    )
    assert REF_CANCEL_REWARD_ANSWER <= set(cancelled)
    assert {"Id", "Points", "Type", "EventKey"} <= set(cancelled["Points"])
    assert cancelled["IsCanceled"] is True and cancelled["CashValue"] == 123.0
    assert wallet(db, merchant) == (900, 5000)

    # POST /orders, the reference's body (Coupon "<string>" is no ExternalCode: kept as text).
    placed = enveloped(client.post(ORDERS, headers=h, json=REF_ORDER_BODY))
    assert REF_ORDER_ANSWER <= set(placed)
    assert placed["IsCompleted"] is True and placed["OrderTotal"] == 123.0
    assert placed["OrderStatus"] == "<string>" and placed["Coupon"] == "<string>"
    assert wallet(db, merchant) == (900 + 123, 5000 + 615)

    # POST /{orderId}/partialcancel, then /orders/{orderId}/cancel: the reference's bodies.
    partial = enveloped(
        client.post(
            "/v1/pvt/POS/<string>/partialcancel",
            headers=h,
            json={"ValueToRefund": 23, "CancelKey": "<string>"},
        )
    )
    assert {"isCanceled", "UpdatedAt"} <= set(partial)
    assert count(db, OrderRefund) == 1
    whole = enveloped(
        client.post(
            "/v1/pvt/POS/orders/<string>/cancel",
            headers=h,
            json={"OrderCancelledDate": "2023-11-07T05:31:56Z", "OrderStatus": "<string>"},
        )
    )
    assert {"isCanceled", "UpdatedAt", "Status"} <= set(whole)
    assert whole["isCanceled"] is True and whole["Status"] == 3
    assert wallet(db, merchant) == (900, 5000)
    assert ledger_invariants(db) == []


def test_mocked_pdv_cookbook(client, db):
    """docs/cookbook.md of the public mocked PDV: its curl bodies, in its order."""
    merchant = make_merchant(db)
    product = add_product_reward(
        db, merchant, "20% na Camiseta Básica", "P001", "percent", "20",
        points=150, name="Camiseta Básica", max_units=2,
    )  # fmt: skip
    discount = add_reward(db, merchant, "R$ 10 de desconto", points=100)
    order(client, merchant, "PDV-0", "1500.00", customer={"Name": "Maria Silva"})
    h = merchant.headers

    lookup = {
        "CustomerId": ANA,  # "12345678900"
        "PurchaseValue": 129.90,
        "DiscountValue": 0,
        "Products": [
            {
                "OriginalId": "P001",
                "LineId": "P001",
                "Title": "Camiseta Básica",
                "Quantity": 1,
                "ProductPrice": 49.90,
                "ProductDiscountPrice": 39.90,
                "IsActive": True,
            }
        ],
    }
    answer = client.post(AVAILABLE, headers=h, json=lookup).json()
    assert answer["ShouldValidateCustomer"] is False and answer["AvailablePoints"] == 1500
    (shown,) = [r for r in answer["Rewards"] if r["Id"] == product]
    # The cookbook's "Resposta relevante" (its own mock gives 2 units per redemption too).
    published = {
        "RewardType": 5,
        "CanUse": True,
        "CannotUseReason": 0,
        "ExternalProductId": "P001",
        "ProductDisplayName": "Camiseta Básica",
        "ProductDiscountMode": 0,
        "ProductDiscountValue": 20,
        "ProductMaxUnitsPerRedeem": 2,
    }
    assert {k: shown[k] for k in published} == published

    # "Resgatar qualquer recompensa" and "Brinde ou desconto em produto".
    any_reward = {"CustomerId": ANA, "OriginalKey": "PDV-REWARD-1-123", "RedeemOrigin": 5}
    first = enveloped(client.post(redeem_path(discount), headers=h, json=any_reward))
    on_product = {"CustomerId": ANA, "OriginalKey": "PDV-REWARD-5-123", "RedeemOrigin": 5}
    second = enveloped(client.post(redeem_path(product), headers=h, json=on_product))
    assert second["ExternalProductId"] == "P001" and second["OriginalKey"] == "PDV-REWARD-5-123"
    assert first["ExternalProductId"] is None
    assert wallet(db, merchant)[0] == 1500 - 100 - 150

    # The integration matrix: the compensation of a redeem is DELETE /POS/rewards/{RewardId}.
    enveloped(client.delete(f"/v1/pvt/POS/rewards/{second['RewardId']}", headers=h))
    assert wallet(db, merchant)[0] == 1500 - 100
    assert {r.original_key: r.status for r in _redemptions(db)} == {
        "PDV-REWARD-1-123": "done",
        "PDV-REWARD-5-123": "cancelled",
    }

    # "Registrar pedido" with the redeem's ExternalCode, then "Cancelamento parcial".
    sale = {
        "OriginalId": "PDV-ORDER-123",
        "OrderTotal": 119.90,
        "Coupon": first["ExternalCode"],  # "EXTERNAL-CODE-DO-REDEEM"
        "IsCompleted": True,
        "Customer": {
            "OriginalId": "12345678900",
            "Name": "Maria Silva",
            "Document": ANA,  # "12345678900"
            "IsEnrolled": True,
        },
        "Products": [
            {"OriginalId": "P002", "Title": "Calça Jeans", "ProductPrice": 119.90, "IsActive": True}
        ],
        "PaymentMethods": [{"OriginalId": "DINHEIRO", "Name": "Dinheiro", "PaidAmount": 119.90}],
    }
    placed = enveloped(client.post(ORDERS, headers=h, json=sale))
    assert (
        placed["Coupon"] == first["ExternalCode"]
        and placed["EstimatedBonus"]["EstimatedPoints"] == 119
    )
    assert wallet(db, merchant)[0] == 1400 + 119
    refund = {
        "ValueToRefund": 25.90,
        "CancelKey": "PDV-PARTIAL-123",
        "Products": [{"OriginalId": "P002", "ValueToRefund": 25.90}],
    }
    enveloped(client.post("/v1/pvt/POS/PDV-ORDER-123/partialcancel", headers=h, json=refund))
    assert wallet(db, merchant)[0] == 1400 + 119 - 26  # round(119 x 25.90 / 119.90)
    assert ledger_invariants(db) == []


def _redemptions(db):
    with db.session(readonly=True) as session:
        return list(session.scalars(select(Redemption)))
