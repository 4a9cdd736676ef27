"""POST /v1/pvt/POS/rewards/available: every configured reward, usable or not, and why."""

from tests.dialects.pdv.conftest import (
    ANA,
    AVAILABLE,
    BIA,
    add_product_reward,
    add_reward,
    available,
    error,
    make_merchant,
    order,
    reward_in,
)


def catalogue(db, merchant):
    """One reward of each type, plus one failing each rule; ids by a short name."""
    return {
        "fixed": add_reward(db, merchant, "R$ 10 de desconto", "fixed", min_purchase="50"),
        "percent": add_reward(
            db, merchant, "10% de desconto", "percent", points=200, value="10", cumulative=False
        ),
        "cashback": add_reward(
            db, merchant, "Cashback", "cashback", points=None, value="1.00", max_share_percent=10
        ),
        "custom": add_reward(db, merchant, "Brinde", "custom", points=50, value=None),
        "product": add_product_reward(db, merchant, "R$ 15 na camiseta", name="Camiseta"),
        # Made by another door without the POS's product id: a POS cannot apply it.
        "bare_product": add_reward(db, merchant, "Produto", "product", value="15.00"),
        "expensive": add_reward(db, merchant, "Vale R$ 10 VIP", "fixed", points=1000),
        "half": add_reward(db, merchant, "Metade", "percent", value="50", max_share_percent=30),
        "big_cashback": add_reward(
            db,
            merchant,
            "Cashback VIP",
            "cashback",
            points=None,
            value="30.00",
            max_share_percent=10,
        ),
    }


def test_unknown_customer_sees_every_reward_unusable(client, db):
    merchant = make_merchant(db)
    ids = catalogue(db, merchant)
    answer = available(client, merchant, 200, customer=BIA)
    assert answer["Customer"] is None
    assert sorted(r["Id"] for r in answer["Rewards"]) == sorted(ids.values())
    assert {(r["CanUse"], r["CannotUseReason"]) for r in answer["Rewards"]} == {(False, 4)}
    assert answer["HasRewards"] is False
    assert answer["AvailablePoints"] == 0
    assert answer["AvailableCashback"] == 0
    assert answer["MaxCashbackForCurrentPurchase"] == 0
    assert answer["ShouldValidateCustomer"] is False


def test_reward_types_and_reasons(client, db):
    merchant = make_merchant(db)
    ids = catalogue(db, merchant)
    order(client, merchant, "PDV-1", "250.00", customer={"Name": "Ana", "Phone": "11987654321"})
    # 250 points (worth R$ 25,00) and R$ 12,50 of cashback: R$ 37,50 to spend.
    answer = available(client, merchant, "200.00")
    assert answer["Customer"] == {
        "Id": answer["Customer"]["Id"],
        "OriginalId": None,
        "Name": "Ana",
        "Email": None,
        "Phone": "+5511987654321",
        "Document": ANA,
        "IsEnrolled": True,
        "CurrentTier": None,
    }
    assert answer["AvailablePoints"] == 250
    assert answer["AvailableCashback"] == 37.5
    assert answer["CashbackEnabled"] is True
    assert answer["HasRewards"] is True
    assert answer["MaxCashbackForCurrentPurchase"] == 20.0  # 10% of R$ 200

    def seen(name):
        reward = reward_in(answer, ids[name])
        return reward["RewardType"], reward["CanUse"], reward["CannotUseReason"]

    assert seen("fixed") == (1, True, 0)
    assert seen("percent") == (0, True, 0)
    assert seen("cashback") == (3, True, 0)
    assert seen("custom") == (4, True, 0)
    assert seen("product") == (5, True, 0)
    assert seen("bare_product") == (5, False, 12)
    assert seen("expensive") == (1, False, 1)  # 1000 points needed
    assert seen("half") == (0, False, 6)  # 50% > the 30% share allowed
    assert seen("big_cashback") == (3, False, 3)  # at most R$ 20 usable, minimum R$ 30

    fixed = reward_in(answer, ids["fixed"])
    assert fixed["Value"] == 10.0 and fixed["Points"] == 100
    assert fixed["IsCashback"] is False and fixed["CanSelectValue"] is False
    assert "Compra mínima de R$ 50,00" in fixed["Requirements"]
    assert reward_in(answer, ids["percent"])["Value"] == 10.0
    assert reward_in(answer, ids["percent"])["RewardCanBeCumulative"] is False
    product = reward_in(answer, ids["product"])
    assert product["Value"] == 15.0 and product["ExternalProductId"] == "P001"
    assert product["ProductDisplayName"] == "Camiseta"
    assert product["ProductDiscountMode"] == 3 and product["ProductDiscountValue"] == 15.0
    assert product["ProductMaxUnitsPerRedeem"] == 1
    assert product["ProductAvailableQuantity"] is None
    assert fixed["ExternalProductId"] is None and fixed["ProductDiscountMode"] is None
    cashback = reward_in(answer, ids["cashback"])
    assert cashback["IsCashback"] is True and cashback["CanSelectValue"] is True
    assert cashback["AvailableCashback"] == 37.5
    assert cashback["MaxCashbackForCurrentPurchase"] == 20.0

    def reason(name, purchase, discount=None):
        offer = reward_in(available(client, merchant, purchase, discount), ids[name])
        assert offer["CanUse"] is (offer["CannotUseReason"] == 0)
        return offer["CannotUseReason"]

    assert reason("fixed", "40.00") == 2  # below its minimum purchase of R$ 50
    # A product reward's discount is on a line the POS adds: the purchase so far does not
    # bound it (a fixed discount on the purchase does).
    assert reason("product", "12.00") == 0
    assert reason("fixed", "55.00", discount="50.00") == 5  # R$ 10 off the R$ 5 left
    assert reason("percent", "200.00", discount="5.00") == 8  # not combinable
    assert reason("fixed", "200.00", discount="5.00") == 0  # combinable
    assert reason("percent", "200.00", discount=0) == 0  # a zero discount is no discount


def test_max_cashback_is_bounded(client, db):
    merchant = make_merchant(db)
    free = add_reward(db, merchant, "Cashback livre", "cashback", points=None, value="1.00")
    share = add_reward(
        db, merchant, "Cashback 10%", "cashback", points=None, value="1.00", max_share_percent=10
    )
    order(client, merchant, "PDV-1", "250.00")  # R$ 37,50 to spend

    def caps(purchase, discount=None):
        answer = available(client, merchant, purchase, discount)
        return (
            reward_in(answer, free)["MaxCashbackForCurrentPurchase"],
            reward_in(answer, share)["MaxCashbackForCurrentPurchase"],
            answer["MaxCashbackForCurrentPurchase"],
        )

    assert caps("1000.00") == (37.5, 37.5, 37.5)  # by what the customer has
    assert caps("200.00") == (37.5, 20.0, 37.5)  # by the reward's share of the purchase
    assert caps("30.00", "5.00")[0] == 25.0  # by the purchase minus other discounts
    assert caps("30.00", "30.00")[0] == 0


def test_keys_are_matched_case_insensitively(client, db):
    merchant = make_merchant(db)
    catalogue(db, merchant)
    order(client, merchant, "PDV-1", "250.00")
    pascal = {"CustomerId": ANA, "PurchaseValue": 200, "DiscountValue": 5}
    lower = {"customerid": ANA, "purchasevalue": 200, "discountvalue": 5}
    camel = {"customerId": ANA, "purchaseValue": 200, "discountValue": 5}
    answers = [
        client.post(AVAILABLE, headers=merchant.headers, json=body).json()
        for body in (pascal, lower, camel)
    ]
    assert answers[0]["Customer"]["Document"] == ANA
    assert answers[0] == answers[1] == answers[2]
    # The discount was read from the lower-cased key: the non-cumulative reward is refused.
    assert 8 in {r["CannotUseReason"] for r in answers[1]["Rewards"]}


def test_customer_by_email(client, db):
    merchant = make_merchant(db)
    order(client, merchant, "PDV-1", "100.00", customer={"Email": "Ana@Example.com"})
    answer = available(client, merchant, 50, customer="ana@example.com")
    assert answer["Customer"]["Document"] == ANA
    assert answer["Customer"]["Email"] == "ana@example.com"
    assert answer["AvailablePoints"] == 100


def test_invalid_document(client, db):
    merchant = make_merchant(db)
    for bad in ("52998224724", "123", "ana@", ""):
        response = client.post(
            AVAILABLE, headers=merchant.headers, json={"CustomerId": bad, "PurchaseValue": 10}
        )
        error(response, 400, "InvalidDocument")
    missing = client.post(AVAILABLE, headers=merchant.headers, json={"PurchaseValue": 10})
    error(missing, 400, "InvalidRequest")
