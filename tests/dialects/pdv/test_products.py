"""Product rewards (RewardType 5) a POS can apply: the merchant configures them with
`fidelia reward create --type product ...` (a real subprocess on the test's database), the
POS reads them in /rewards/available and the redeem answer echoes the product's id."""

import json

from fidelia.models import Redemption, Reward
from tests.dialects.pdv.conftest import (
    ANA,
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
from tests.test_cli import runner

CANCEL = "/v1/pvt/POS/rewards"


def create(fidelia, *args, ok=True):
    result = fidelia(
        "reward", "create", "--tenant", "loja", "--type", "product", *args, "--json", ok=ok
    )
    return json.loads(result.stdout) if ok else result


def test_cli_product_rewards_as_the_pos_sees_them(client, db, database_url, tmp_path):
    merchant = make_merchant(db)
    fidelia = runner(database_url, tmp_path)
    percent = create(
        fidelia,
        "--title", "20% na Camiseta Básica", "--points", "150",
        "--external-product-id", "P001", "--product-name", "Camiseta Básica",
        "--product-discount-mode", "percent", "--product-discount-value", "20",
        "--product-max-units", "2",
    )  # fmt: skip
    assert percent["product"] == {
        "external_product_id": "P001",
        "name": "Camiseta Básica",
        "discount_mode": "percent",
        "max_units": 2,
    }
    fixed = create(
        fidelia,
        "--title", "R$ 10,00 no Boné", "--points", "100", "--external-product-id", "P004",
        "--product-discount-mode", "fixed", "--product-discount-value", "10.00",
    )["id"]  # fmt: skip
    price = create(
        fidelia,
        "--title", "Caneca por R$ 0,01", "--points", "50", "--external-product-id", "P009",
        "--product-discount-mode", "final-price", "--product-discount-value", "0.01",
    )["id"]  # fmt: skip
    gift = create(
        fidelia,
        "--title", "Squeeze de brinde", "--points", "300", "--external-product-id", "P010",
        "--product-discount-mode", "gift", "--stock", "1",
    )["id"]  # fmt: skip
    order(client, merchant, "PDV-1", "400.00")  # 400 points

    answer = available(client, merchant, "129.90")
    seen = reward_in(answer, percent["id"])
    assert {k: v for k, v in seen.items() if k.startswith(("Product", "External"))} == {
        "ExternalProductId": "P001",
        "ProductDisplayName": "Camiseta Básica",
        "ProductDiscountMode": 0,  # percent
        "ProductDiscountValue": 20.0,
        "ProductMaxUnitsPerRedeem": 2,
        "ProductAvailableQuantity": None,  # no stock limit
    }
    assert (seen["RewardType"], seen["CanUse"], seen["CannotUseReason"]) == (5, True, 0)
    assert seen["Value"] == 20.0 and seen["Points"] == 150
    assert "2 unidades de Camiseta Básica" in seen["Requirements"]
    assert reward_in(answer, fixed)["ProductDiscountMode"] == 3  # amount off
    assert reward_in(answer, fixed)["ProductDiscountValue"] == 10.0
    assert reward_in(answer, fixed)["ProductDisplayName"] == "R$ 10,00 no Boné"  # the title
    assert reward_in(answer, price)["ProductDiscountMode"] == 1  # final price
    assert reward_in(answer, price)["ProductDiscountValue"] == 0.01
    assert reward_in(answer, gift)["ProductDiscountMode"] == 2  # free
    assert reward_in(answer, gift)["ProductDiscountValue"] == 0
    assert reward_in(answer, gift)["ProductAvailableQuantity"] == 1
    assert reward_in(answer, gift)["CannotUseReason"] == 0

    # The redeem answer echoes the product to add; a percent discount has no cash value.
    result = ok(redeem(client, merchant, percent["id"], "K1"))
    assert result["ExternalProductId"] == "P001"
    assert result["RewardConfigurationId"] == percent["id"]
    assert result["Point"]["Quantity"] == -150
    assert wallet(db, merchant)[0] == 250
    cancelled = ok(client.delete(f"{CANCEL}/{result['RewardId']}", headers=merchant.headers))
    assert cancelled["CashValue"] == 0 and cancelled["Points"]["Points"] == 150
    assert wallet(db, merchant)[0] == 400
    boné = ok(redeem(client, merchant, fixed, "K2"))
    assert boné["ExternalProductId"] == "P004"
    cancelled = ok(client.delete(f"{CANCEL}/{boné['ExternalCode']}", headers=merchant.headers))
    assert cancelled["CashValue"] == 10.0

    # The last gift: taken, then shown as used up (reason 10) and refused.
    assert ok(redeem(client, merchant, gift, "K3"))["ExternalProductId"] == "P010"
    used_up = reward_in(available(client, merchant, "129.90"), gift)
    assert (used_up["CanUse"], used_up["CannotUseReason"]) == (False, 10)
    assert used_up["ProductAvailableQuantity"] == 0
    error(redeem(client, merchant, gift, "K4"), 409, "RewardOutOfStock")
    assert wallet(db, merchant)[0] == 100
    assert ledger_invariants(db) == []


def test_cli_refuses_product_rewards_a_pos_cannot_apply(db, database_url, tmp_path):
    make_merchant(db)
    fidelia = runner(database_url, tmp_path)
    base = ["--title", "Produto", "--points", "10"]
    refusals = {
        "--external-product-id": [],
        "mode is one of": ["--external-product-id", "P1", "--product-discount-mode", "half"],
        "percentage is more than 0": [
            "--external-product-id", "P1", "--product-discount-mode", "percent",
            "--product-discount-value", "150",
        ],
        "needs its discount": ["--external-product-id", "P1", "--product-discount-mode", "percent"],
        "must be positive": [
            "--external-product-id", "P1", "--product-discount-mode", "fixed",
            "--product-discount-value", "0",
        ],
        "units per redemption": [
            "--external-product-id", "P1", "--product-discount-value", "5",
            "--product-max-units", "0",
        ],
        "gift is free": [
            "--external-product-id", "P1", "--product-discount-mode", "gift",
            "--product-discount-value", "5",
        ],
        "Not an amount": [
            "--external-product-id", "P1", "--product-discount-value", "abc",
        ],
    }  # fmt: skip
    for message, extra in refusals.items():
        result = create(fidelia, *base, *extra, ok=False)
        assert result.returncode == 1, (extra, result.stdout)
        assert message in result.stderr, (extra, result.stderr)
    wrong_type = fidelia(
        "reward", "create", "--tenant", "loja", "--type", "fixed", "--title", "X",
        "--points", "10", "--value", "5", "--external-product-id", "P1", ok=False,
    )  # fmt: skip
    assert wrong_type.returncode == 1 and "only for product rewards" in wrong_type.stderr
    assert count(db, Reward) == 0


def test_a_product_reward_without_the_pos_product_id_is_refused(client, db):
    """Made by another door (REST v2 takes a product reward with only a value)."""
    merchant = make_merchant(db)
    bare = add_reward(db, merchant, "Produto", "product", value="15.00")
    order(client, merchant, "PDV-1", "250.00")
    seen = reward_in(available(client, merchant, 100), bare)
    assert (seen["CanUse"], seen["CannotUseReason"], seen["ExternalProductId"]) == (False, 12, None)
    error(redeem(client, merchant, bare, "K1"), 422, "RewardCannotBeUsed")
    assert count(db, Redemption) == 0 and wallet(db, merchant) == (250, 1250)
    assert available(client, merchant, 100, customer=ANA)["AvailablePoints"] == 250
