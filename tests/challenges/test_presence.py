"""One spending rule on every door (challenges/presence.py): at a merchant that validates
customers, points or credit leave a balance only with a code the customer received and that
was verified, consumed in the same transaction as the debit. Spends without that proof are
refused on every door and write nothing; each door's own proof lets one spend through."""

import base64

import pytest
from sqlalchemy import func, select

from fidelia.ledger.service import CASHBACK, POINTS
from fidelia.models import Balance, LedgerEntry, LoyaltyPayment, Order, Redemption
from tests.support.helpers import generate_pin, make_reward, make_tenant, send_whatsapp

ANA = "+5511987654321"
EMAIL = "ana@example.com"
RETAIL = {"x-source-type": "POS", "x-source-name": "test", "x-branch-id": "1", "x-pos-id": "1"}


@pytest.fixture
def shop(client, db, settings, graph, worker):
    """A merchant that validates customers, and Ana with 200 points and R$ 10 of credit:
    100 points from a PIN on WhatsApp, 100 points and 10 % back from a retail sale."""
    tenant, key = make_tenant(
        db,
        slug="loja",
        currency="BRL",
        locale="pt_BR",
        points_per_pin="100",
        earn_points_per_unit="1",
        point_value="0.10",
        cashback_percent="10",
        should_validate_customer="true",
        sandbox="true",
    )
    reward = make_reward(db, tenant, points=50, title="Pão de queijo")
    with db.session(readonly=True) as session:
        from fidelia.models import ApiKey

        token = session.scalar(select(ApiKey.token).where(ApiKey.tenant_id == tenant.id))
    send_whatsapp(client, settings, ANA, generate_pin(client, key))
    worker.drain()
    retail = {"x-api-key": key, **RETAIL}
    sale = client.post(
        "/v1/transaction",
        headers=retail,
        json={
            "member": {"phoneNumber": ANA},
            "transaction": {"transactionId": "T-0", "totalAmount": 10000},
        },
    )
    assert sale.status_code == 200, sale.text
    update = client.post(
        "/v1/member/update",
        headers=retail,
        json={"member": {"phoneNumber": ANA}, "newMemberData": {"email": EMAIL}},
    )
    assert update.status_code == 200, update.text
    basic = base64.b64encode(f"{token}:{key}".encode()).decode()
    return {
        "tenant": tenant,
        "reward": reward,
        "retail": retail,
        "pos": {"Authorization": f"Basic {basic}"},
    }


def wallet(db):
    with db.session(readonly=True) as session:
        rows = dict(session.execute(select(Balance.account, Balance.amount)).all())
        counts = [
            session.scalar(select(func.count()).select_from(m))
            for m in (LedgerEntry, Redemption, LoyaltyPayment, Order)
        ]
    return rows.get(POINTS, 0), rows.get(CASHBACK, 0), counts


def short_code(client, shop):
    got = client.post(
        "/v1/member/shortCode",
        headers=shop["retail"],
        json={"member": {"phoneNumber": ANA}, "action": "get"},
    )
    assert got.status_code == 200, got.text
    code = got.json()["data"]["shortCode"]
    verified = client.post(
        "/v1/member/shortCode",
        headers=shop["retail"],
        json={"member": {"phoneNumber": ANA}, "action": "verify", "shortCode": code},
    )
    assert verified.status_code == 200, verified.text


def spends(client, shop):
    """One spend per door, none carrying a proof; (door, response)."""
    tenant = shop["tenant"]
    yield (
        "seed 000 canjear",
        client.post(
            "/api/v1/redimir/canjear",
            json={"whatsapp": ANA, "id_comercio": tenant.id, "id_promocion": shop["reward"]},
        ),
    )
    yield (
        "seed 001 redeem",
        client.post(
            f"/v1/pvt/POS/rewards/{shop['reward']}/redeem",
            headers=shop["pos"],
            json={"CustomerId": EMAIL, "OriginalKey": "k-1"},
        ),
    )
    yield (
        "seed 002 payment",
        client.post(
            "/v1/payment",
            headers=shop["retail"],
            json={
                "member": {"phoneNumber": ANA},
                "payment": {"action": "pay", "type": "POINTS", "amount": 500},
            },
        ),
    )
    yield (
        "seed 002 transaction",
        client.post(
            "/v1/transaction",
            headers=shop["retail"],
            json={
                "member": {"phoneNumber": ANA},
                "transaction": {
                    "transactionId": "T-1",
                    "totalAmount": 2000,
                    "payments": [{"type": "CREDIT", "amount": 500}],
                },
            },
        ),
    )


def test_no_door_spends_without_a_proof_of_presence(client, db, shop):
    before = wallet(db)
    assert before[:2] == (200, 1000)
    for door, response in spends(client, shop):
        assert response.status_code == 403, (door, response.status_code, response.text)
    assert wallet(db) == before  # nothing written anywhere


def test_seed_000_the_code_the_bot_gives_lets_one_redemption_through(
    client, db, shop, settings, graph, worker
):
    send_whatsapp(client, settings, ANA, "código")
    worker.drain()
    text = graph.texts_to(ANA)[-1]
    assert "código para resgatar" in text
    code = text.split(" é ")[1][:6]
    body = {
        "whatsapp": ANA,
        "id_comercio": shop["tenant"].id,
        "id_promocion": shop["reward"],
        "codigo": code,
    }
    first = client.post("/api/v1/redimir/canjear", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["puntos_restantes"] == 150
    again = client.post("/api/v1/redimir/canjear", json=body)
    assert again.status_code == 403
    assert again.json()["codigo"] == "VERIFICACION_REQUERIDA"
    wrong = client.post("/api/v1/redimir/canjear", json={**body, "codigo": "000000"})
    assert wrong.status_code == 403
    assert wallet(db)[0] == 150


def test_seed_001_the_challenge_lets_one_redemption_through(client, db, shop):
    pos = shop["pos"]
    sent = client.post(
        f"/v1/pvt/POS/customers/{EMAIL}/challenge", headers=pos, json={"TransactionId": "T-9"}
    )
    assert sent.status_code == 200, sent.text
    code = sent.json()["Code"]
    ok = client.post(
        f"/v1/pvt/POS/customers/{EMAIL}/challengevalidate",
        headers=pos,
        json={"TransactionId": "T-9", "Code": code},
    )
    assert ok.status_code == 200 and ok.json()["Success"] is True, ok.text
    path = f"/v1/pvt/POS/rewards/{shop['reward']}/redeem"
    first = client.post(path, headers=pos, json={"CustomerId": EMAIL, "OriginalKey": "a"})
    assert first.status_code == 200, first.text
    second = client.post(path, headers=pos, json={"CustomerId": EMAIL, "OriginalKey": "b"})
    assert second.status_code == 403
    assert wallet(db)[0] == 150


def test_seed_002_a_verified_short_code_covers_one_sale_with_both_balances(client, db, shop):
    retail = shop["retail"]
    short_code(client, shop)
    sale = client.post(
        "/v1/transaction",
        headers=retail,
        json={
            "member": {"phoneNumber": ANA},
            "transaction": {
                "transactionId": "T-2",
                "totalAmount": 2000,
                "payments": [
                    {"type": "POINTS", "amount": 500},
                    {"type": "CREDIT", "amount": 500},
                ],
            },
        },
    )
    assert sale.status_code == 200, sale.text
    points, credit, _ = wallet(db)
    assert (points, credit) == (200 - 50 + 10, 1000 - 500 + 100)  # paid, then earned on R$ 10
    pay = client.post(
        "/v1/payment",
        headers=retail,
        json={
            "member": {"phoneNumber": ANA},
            "payment": {"action": "pay", "type": "POINTS", "amount": 100},
        },
    )
    assert pay.status_code == 403  # the code was used by the sale
    short_code(client, shop)
    pay = client.post(
        "/v1/payment",
        headers=retail,
        json={
            "member": {"phoneNumber": ANA},
            "payment": {"action": "pay", "type": "POINTS", "amount": 100},
        },
    )
    assert pay.status_code == 200, pay.text
