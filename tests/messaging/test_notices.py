"""Spend notices: whenever points or credit are spent, at any door, a customer the bot knows
gets a WhatsApp message saying what was redeemed where and what is left (the alarm that
tells them someone else spent their points). Customers the bot does not know get none."""

import base64

from sqlalchemy import select

from fidelia.models import ApiKey, OutboxMessage, Reward
from tests.support.helpers import generate_pin, make_reward, make_tenant, send_whatsapp

ANA = "+50688887777"
RETAIL = {"x-source-type": "POS", "x-source-name": "t", "x-branch-id": "1", "x-pos-id": "1"}


def test_a_redemption_at_the_counter_is_announced(client, db, settings, graph, worker):
    tenant, key = make_tenant(db, points_per_pin="15")
    reward = make_reward(db, tenant, points=10, title="Café gratis")
    send_whatsapp(client, settings, ANA, generate_pin(client, key), profile_name="Ana")
    response = client.post(
        "/api/v1/redimir/canjear",
        json={"whatsapp": ANA, "id_comercio": tenant.id, "id_promocion": reward},
    )
    assert response.status_code == 200, response.text
    worker.drain()
    assert graph.texts_to(ANA)[-1] == (
        "Café Uno: se usaron 10 puntos de tu saldo en «Café gratis». Te queda: 5 puntos. "
        "Si no fuiste vos, avisale al comercio."
    )


def test_a_loyalty_payment_is_announced_with_the_credit_left(client, db, settings, graph, worker):
    tenant, key = make_tenant(
        db, currency="BRL", locale="pt_BR", points_per_pin="100", point_value="0.10"
    )
    send_whatsapp(client, settings, ANA, generate_pin(client, key), profile_name="Ana")
    paid = client.post(
        "/v1/payment",
        headers={"x-api-key": key, **RETAIL},
        json={
            "member": {"phoneNumber": ANA},
            "payment": {"action": "pay", "type": "POINTS", "amount": 500},
        },
    )
    assert paid.status_code == 200, paid.text
    worker.drain()
    assert graph.texts_to(ANA)[-1] == (
        "Café Uno: foram usados 50 pontos do seu saldo em «o pagamento de uma compra». "
        "Saldo restante: 50 pontos. Se não foi você, avise a loja."
    )


def test_a_customer_the_bot_does_not_know_gets_nothing(client, db):
    tenant, key = make_tenant(db, currency="BRL", earn_points_per_unit="1")
    make_reward(db, tenant, points=10, title="Desconto")
    with db.session(readonly=True) as session:
        token = session.scalar(select(ApiKey.token).where(ApiKey.tenant_id == tenant.id))
    pos = {"Authorization": "Basic " + base64.b64encode(f"{token}:{key}".encode()).decode()}
    order = client.post(
        "/v1/pvt/POS/orders",
        headers=pos,
        json={
            "OriginalId": "PDV-1",
            "OrderTotal": 100,
            "IsCompleted": True,
            "Customer": {"Document": "52998224725", "Phone": "+5511987654321"},
        },
    )
    assert order.status_code == 200, order.text
    with db.session(readonly=True) as session:
        reward = session.scalar(select(Reward.id))
    redeemed = client.post(
        f"/v1/pvt/POS/rewards/{reward}/redeem",
        headers=pos,
        json={"CustomerId": "52998224725", "OriginalKey": "k"},
    )
    assert redeemed.status_code == 200, redeemed.text
    with db.session(readonly=True) as session:
        assert session.scalars(select(OutboxMessage)).all() == []
