"""A full retail flow, as a POS integration runs it: register -> event -> transaction with a
deal -> details -> pay with points -> cancel the payment."""

from tests.dialects.retail_v1.conftest import (
    ANA,
    add_deal,
    add_rule,
    add_segment,
    add_voucher,
    details,
    make_shop,
    ok,
    post,
    register,
    sale,
)
from tests.support.helpers import ledger_invariants


def test_full_retail_flow(client, db):
    shop = make_shop(db)
    regulars = add_segment(db, shop, "Regulars", {"event_type": "visit", "min_count": 1})
    add_deal(
        db,
        shop,
        "Regulars: 15% off bakery",
        "percent",
        1500,
        segment_id=regulars,
        department_code="PADARIA",
    )
    add_rule(db, shop, "visit", 5, per_day=1)

    # 1. The member joins at the counter.
    member = register(
        client,
        shop,
        email="ana@example.com",
        firstName="Ana",
        termsOfUse=True,
        gdpr=True,
        allowedSMS=True,
    )
    who = {"membershipKey": member["membershipKey"]}  # later calls scan her card
    add_voucher(db, shop, "WELCOME-10", 1_000, member["memberId"], benefit="R$ 10 de boas-vindas")

    # 2. A visit: 5 points, and she is now in the "Regulars" segment.
    visit = ok(post(client, shop, "/event", {"member": who, "event": {"type": "visit"}}))
    assert visit["data"]["pointsEarned"] == 5

    # 3. Before paying, the POS previews her benefits for the basket...
    basket = {
        "transactionId": "POS3-0001",
        "openTime": "2026-05-07T15:20:00Z",
        "totalAmount": 20_000,
        "items": [
            {
                "lineId": "1",
                "code": "PAO",
                "departmentCode": "PADARIA",
                "quantity": 2,
                "grossAmount": 4_000,
                "netAmount": 4_000,
                "action": "sale",
            },
            {
                "lineId": "2",
                "code": "VINHO",
                "departmentCode": "BEBIDAS",
                "quantity": 1,
                "grossAmount": 16_000,
                "netAmount": 16_000,
                "action": "sale",
            },
        ],
    }
    preview = details(
        client, shop, who, x_return_benefits="true", x_return_assets="active", transaction=basket
    )
    assert [(b["name"], b["discountAmount"]) for b in preview["benefits"]] == [
        ("Regulars: 15% off bakery", -600)
    ]
    assert [a["key"] for a in preview["assets"]] == ["WELCOME-10"]

    # ... and submits the sale with the deal and her welcome voucher.
    done = ok(
        sale(
            client,
            shop,
            "POS3-0001",
            20_000,
            who,
            items=basket["items"],
            appliedDeals=[{"key": preview["benefits"][0]["key"]}],
            usedAssets=[{"key": "WELCOME-10"}],
            payments=[{"type": "CASH", "amount": 18_400}],
        )
    )["data"]
    assert done["appliedDeals"][0]["discountAmount"] == -600
    assert done["usedAssets"][0]["discountAmount"] == -1_000
    assert done["totalDiscount"] == -1_600 and done["amountToPay"] == 18_400
    assert done["earned"] == {"points": 184, "credit": 920}
    assert done["newBalance"] == {"points": 189, "credit": 920}

    # 4. Details show the balances and the used voucher among the inactive assets.
    now = details(client, shop, who, x_return_assets="inactive")
    assert now["member"]["balance"] == {"points": 189, "credit": 920}
    assert now["member"]["pointsValue"] == 1_890
    assert [(a["key"], a["status"]) for a in now["assets"]] == [("WELCOME-10", "used")]

    # 5. Next purchase: she pays R$ 15,00 of it with points (150 points).
    paid = ok(
        post(
            client,
            shop,
            "/payment",
            {
                "member": who,
                "payment": {"action": "pay", "type": "POINTS", "amount": 1_500},
                "transaction": {"transactionId": "POS3-0002"},
            },
        )
    )
    assert paid["data"]["points"] == 150
    assert paid["data"]["newBalance"] == {"points": 39, "credit": 920}

    # 6. The sale is voided at the till: the payment is cancelled and the points come back.
    cancel = {
        "member": who,
        "payment": {"action": "cancel", "confirmationCode": paid["confirmationCode"]},
    }
    back = ok(post(client, shop, "/payment", cancel))
    assert back["data"]["status"] == "cancelled"
    assert back["data"]["newBalance"] == {"points": 189, "credit": 920}
    assert ok(post(client, shop, "/payment", cancel))["data"]["newBalance"]["points"] == 189
    assert details(client, shop, {"phoneNumber": ANA})["member"]["balance"]["points"] == 189
    assert ledger_invariants(db) == []
