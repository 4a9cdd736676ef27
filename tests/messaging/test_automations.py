"""Automatic messages after the sale (issue 13): the benefit earned after a POS order, a
retail transaction and a REST v2 sale, as text inside WhatsApp's 24-hour window and as the
merchant's template outside it (or not at all without one); e-mail over a real SMTP server;
the opt-out reply; the marketing frequency cap; the come-back message once per quiet
period and never without consent; the expiry reminder once."""

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from typing import Any

import pytest
from sqlalchemy import select

from fidelia.customers.profile import consents_of, record_consents
from fidelia.customers.service import find
from fidelia.kit import clock
from fidelia.kit.db import Database
from fidelia.kit.settings import Settings
from fidelia.messaging import automations
from fidelia.messaging.channels import senders_for
from fidelia.messaging.templates import COME_BACK, set_template
from fidelia.messaging.worker import Worker
from fidelia.models import ApiKey, Consent, Customer, MessageLog, OutboxMessage, Tenant
from tests.fakes.smtp import FakeSmtp
from tests.support.helpers import generate_pin, make_tenant, send_whatsapp

ANA = "+5511987654321"
T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
SWITCHED_ON = {
    "currency": "BRL",
    "locale": "pt_BR",
    "earn_points_per_unit": "1",
    "message_benefit_earned": "true",
    "message_voucher_issued": "true",
    "message_points_expiring": "true",
    "message_come_back": "true",
}


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    server = FakeSmtp()
    yield server
    server.close()


@pytest.fixture
def settings(settings: Settings, smtp: FakeSmtp) -> Settings:
    return settings.model_copy(
        update={"smtp_url": smtp.url, "smtp_from": "Loja <loja@example.com>"}
    )


@pytest.fixture
def worker(db: Database, settings: Settings) -> Worker:
    return Worker(db, senders_for(settings), batch=50)


@pytest.fixture
def frozen() -> Iterator[Any]:
    clock.freeze(T0)
    yield clock.freeze
    clock.freeze(None)


def shop(db: Database, **settings: str) -> tuple[Tenant, dict[str, str]]:
    tenant, key = make_tenant(db, **{**SWITCHED_ON, **settings})
    with db.session(readonly=True) as session:
        token = session.scalar(select(ApiKey.token).where(ApiKey.tenant_id == tenant.id))
    raw = base64.b64encode(f"{token}:{key}".encode()).decode()
    return tenant, {"Authorization": f"Basic {raw}", "X-API-Key": key}


def pos_order(client: Any, auth: dict[str, str], ref: str, total: int, **customer: str) -> None:
    customer = customer or {"Document": "52998224725", "Phone": ANA}
    response = client.post(
        "/v1/pvt/POS/orders",
        headers=auth,
        json={"OriginalId": ref, "OrderTotal": total, "IsCompleted": True, "Customer": customer},
    )
    assert response.status_code == 200, response.text


def logs(db: Database, event: str | None = None) -> list[MessageLog]:
    with db.session(readonly=True) as session:
        query = select(MessageLog).order_by(MessageLog.id)
        if event:
            query = query.where(MessageLog.event == event)
        return list(session.scalars(query))


def template_sent(graph: Any) -> list[dict[str, Any]]:
    return [m for m in graph.sent if m.get("type") == "template"]


def customer_of(db: Database, tenant: Tenant, kind: str = "phone", value: str = ANA) -> Customer:
    with db.session(readonly=True) as session:
        customer = find(session, tenant.program_id, kind, value)
        assert customer is not None
        return customer


def consent(db: Database, tenant: Tenant, customer: Customer, **given: bool) -> None:
    with db.session() as session:
        record_consents(
            session,
            session.get_one(Tenant, tenant.id),
            session.get_one(Customer, customer.id),
            dict(given),
            "test",
        )


def test_pos_order_text_inside_the_window_template_outside_none_without(
    client, db, settings, graph, worker, frozen
):
    tenant, auth = shop(db)
    send_whatsapp(client, settings, ANA, "oi")  # opens the 24-hour window
    frozen(T0 + timedelta(hours=1))
    pos_order(client, auth, "PDV-1", 150)
    worker.drain()
    assert graph.texts_to(ANA)[-1] == (
        "Café Uno: você ganhou 150 pontos com a sua compra! Seu saldo: 150 pontos."
    )
    # 25 hours after Ana wrote: outside the window, and no template mapped: not on WhatsApp.
    frozen(T0 + timedelta(hours=25))
    before = len(graph.sent)
    pos_order(client, auth, "PDV-2", 50)
    worker.drain()
    assert len(graph.sent) == before
    assert logs(db)[-1].channel is None
    assert logs(db)[-1].skipped == "outside-window-no-template,no-email"
    # With a template mapped, it goes as the template, its parameters in the merchant's order.
    with db.session() as session:
        set_template(
            session,
            session.get_one(Tenant, tenant.id),
            "benefit_earned",
            "beneficio_ganho",
            "pt_BR",
            ["merchant", "earned", "balance"],
        )
    pos_order(client, auth, "PDV-3", 20)
    worker.drain()
    assert template_sent(graph) == [
        {
            "messaging_product": "whatsapp",
            "to": ANA.lstrip("+"),
            "type": "template",
            "template": {
                "name": "beneficio_ganho",
                "language": {"code": "pt_BR"},
                "components": [
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": "Café Uno"},
                            {"type": "text", "text": "20 pontos"},
                            {"type": "text", "text": "220 pontos"},
                        ],
                    }
                ],
            },
        }
    ]
    # A replayed order (the POS sends it again) says nothing twice.
    pos_order(client, auth, "PDV-3", 20)
    assert [row.key for row in logs(db)] == ["order:1", "order:2", "order:3"]
    with db.session(readonly=True) as session:
        statuses = session.scalars(select(OutboxMessage.status)).all()
    assert set(statuses) == {"sent"}


def test_retail_transaction_inside_the_window(client, db, settings, graph, worker, frozen):
    tenant, auth = shop(db, cashback_percent="5")
    key = {
        "x-api-key": auth["X-API-Key"],
        "x-source-type": "POS",
        "x-source-name": "t",
        "x-branch-id": "1",
        "x-pos-id": "1",
    }
    registered = client.post(
        "/v1/member/register", headers=key, json={"member": {"phoneNumber": ANA}}
    )
    assert registered.status_code == 200, registered.text
    send_whatsapp(client, settings, ANA, "oi")
    tx = {
        "transactionId": "T-1",
        "dateTime": "2026-05-04T12:00:00Z",
        "totalAmount": 12_345,
        "items": [],
        "payments": [{"type": "CASH", "amount": 12_345}],
    }
    sold = client.post(
        "/v1/transaction", headers=key, json={"transaction": tx, "member": {"phoneNumber": ANA}}
    )
    assert sold.status_code == 200, sold.text
    worker.drain()
    assert graph.texts_to(ANA)[-1] == (
        "Café Uno: você ganhou 123 pontos + R$ 6,17 com a sua compra! "
        "Seu saldo: 123 pontos + R$ 6,17."
    )
    assert [(row.event, row.channel, row.form) for row in logs(db)] == [
        ("benefit_earned", "whatsapp", "text")
    ]


def test_rest_v2_sale_outside_the_window_goes_as_the_template(client, db, graph, worker):
    tenant, auth = shop(db)
    with db.session() as session:
        set_template(
            session,
            session.get_one(Tenant, tenant.id),
            "benefit_earned",
            "pontos_ganhos",
            "pt_BR",
            ["points"],
        )
    secret = auth["X-API-Key"]
    with db.session(readonly=True) as session:
        public = session.scalar(select(ApiKey.token).where(ApiKey.tenant_id == tenant.id))
    token = client.post("/v2/auth/token", json={"api_key": public, "api_secret": secret})
    assert token.status_code == 200, token.text
    bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    made = client.post(
        "/v2/customers",
        headers=bearer,
        json={"name": "Ana", "phone": "11987654321", "cpf": "52998224725", "password": "s3nh4-b0a"},
    )
    assert made.status_code == 201, made.text
    sold = client.post(
        "/v2/sales", headers=bearer, json={"sale_amount": "42.00", "cpf": "52998224725"}
    )
    assert sold.status_code == 201, sold.text
    worker.drain()
    (sent,) = template_sent(graph)
    assert sent["to"] == ANA.lstrip("+")
    assert sent["template"]["components"][0]["parameters"] == [{"type": "text", "text": "42"}]


def test_e_mail_over_smtp_when_whatsapp_cannot(client, db, worker, smtp):
    tenant, auth = shop(db)
    pos_order(client, auth, "PDV-1", 80, Email="ana@example.com", Document="52998224725")
    worker.drain()
    (mail,) = smtp.messages
    assert mail["To"] == "ana@example.com"
    assert str(make_header(decode_header(mail["Subject"]))) == "Café Uno: novidades do seu saldo"
    assert mail.get_payload(decode=True).decode().strip() == (
        "Café Uno: você ganhou 80 pontos com a sua compra! Seu saldo: 80 pontos."
    )
    assert [(row.channel, row.form) for row in logs(db)] == [("email", "email")]
    # A customer who withdrew e-mail consent gets no transactional e-mail either.
    customer = customer_of(db, tenant, "email", "ana@example.com")
    consent(db, tenant, customer, email=False)
    pos_order(client, auth, "PDV-2", 10, Email="ana@example.com", Document="52998224725")
    worker.drain()
    assert len(smtp.messages) == 1
    assert logs(db)[-1].skipped == "no-whatsapp,email-consent"


def test_opt_out_is_recorded_confirmed_and_honoured(client, db, settings, graph, worker, frozen):
    tenant, auth = shop(db, points_per_pin="10")
    send_whatsapp(
        client, settings, ANA, generate_pin(client, auth["X-API-Key"]), profile_name="Ana"
    )
    ana = customer_of(db, tenant, "whatsapp")
    consent(db, tenant, ana, whatsapp=True)
    send_whatsapp(client, settings, ANA, "  Sair ")
    worker.drain()
    assert graph.texts_to(ANA)[-1] == (
        "Pronto: você não vai mais receber mensagens automáticas nem promoções pelo WhatsApp. "
        "Seus pontos continuam guardados."
    )
    with db.session(readonly=True) as session:
        history = session.scalars(
            select(Consent).where(Consent.customer_id == ana.id).order_by(Consent.id)
        ).all()
        assert [(c.kind, c.granted, c.source) for c in history] == [
            ("whatsapp", True, "test"),
            ("whatsapp", False, "whatsapp-stop"),
        ]
        assert consents_of(session, session.get_one(Customer, ana.id))["whatsapp"][0] is False
    # Neither marketing nor the automatic account messages go to WhatsApp any more.
    frozen(T0 + timedelta(hours=1))
    with db.session() as session:
        me = session.get_one(Customer, ana.id)
        here = session.get_one(Tenant, tenant.id)
        automations.notify(
            session, here, me, COME_BACK, "manual", {"merchant": "x", "balance": "1"}
        )
    pos_order(client, auth, "PDV-1", 30, Phone=ANA)
    sent = len(graph.sent)
    worker.drain()
    assert len(graph.sent) == sent
    assert [row.skipped for row in logs(db)] == ["whatsapp-consent,no-email"] * 2
    # A contact the bot knows nothing about is answered in the word's language.
    send_whatsapp(client, settings, "+50688887777", "BAJA")
    worker.drain()
    assert graph.texts_to("+50688887777")[-1].startswith("Listo: no vas a recibir más")


def test_frequency_cap_and_marketing_only_with_consent(client, db, settings, graph, frozen):
    tenant, auth = shop(db, message_cap="1", message_cap_days="7")
    send_whatsapp(client, settings, ANA, "oi")
    pos_order(client, auth, "PDV-1", 10)
    ana = customer_of(db, tenant)

    def come_back(key: str) -> MessageLog | None:
        with db.session() as session:
            return automations.notify(
                session,
                session.get_one(Tenant, tenant.id),
                session.get_one(Customer, ana.id),
                COME_BACK,
                key,
                {"merchant": "Café Uno", "balance": "10 pontos"},
            )

    first = come_back("p1")
    assert first is not None and first.skipped == "whatsapp-consent,no-email"  # no consent
    consent(db, tenant, ana, whatsapp=True)
    second = come_back("p2")
    assert second is not None and second.channel == "whatsapp"
    frozen(T0 + timedelta(days=3))
    third = come_back("p3")
    assert third is not None and third.skipped == "frequency-cap"
    frozen(T0 + timedelta(days=7, minutes=1))
    send_whatsapp(client, settings, ANA, "oi")  # the window again (no template mapped)
    fourth = come_back("p4")
    assert fourth is not None and fourth.channel == "whatsapp"
    assert come_back("p4") is None  # once per key


def test_come_back_once_per_quiet_period(client, db, settings, graph, worker, frozen):
    tenant, auth = shop(db, come_back_days="30")
    with db.session() as session:
        set_template(
            session,
            session.get_one(Tenant, tenant.id),
            "come_back",
            "volte_logo",
            "pt_BR",
            ["name", "days"],
        )
    pos_order(client, auth, "PDV-1", 10, Phone=ANA, Name="Ana")
    ana = customer_of(db, tenant)
    assert automations.run(db, T0 + timedelta(days=31)) == {"points_expiring": 0, "come_back": 1}
    assert logs(db, "come_back")[-1].skipped == "whatsapp-consent,no-email"  # never without
    assert template_sent(graph) == []
    consent(db, tenant, ana, whatsapp=True)
    assert automations.run(db, T0 + timedelta(days=32))["come_back"] == 0  # decided already
    # A new purchase starts a new quiet period: one more message, after 30 days of it.
    frozen(T0 + timedelta(days=40))
    pos_order(client, auth, "PDV-2", 10, Phone=ANA)
    assert automations.run(db, T0 + timedelta(days=60))["come_back"] == 0
    assert automations.run(db, T0 + timedelta(days=71))["come_back"] == 1
    assert automations.run(db, T0 + timedelta(days=72))["come_back"] == 0
    frozen(T0 + timedelta(days=71))
    worker.drain()
    (sent,) = template_sent(graph)
    assert sent["template"]["name"] == "volte_logo"
    assert sent["template"]["components"][0]["parameters"] == [
        {"type": "text", "text": "Ana"},
        {"type": "text", "text": "31"},
    ]


def test_expiry_reminder_once(client, db, settings, graph, worker, frozen):
    tenant, auth = shop(db, points_validity_days="30", expiry_reminder_days="7")
    send_whatsapp(client, settings, ANA, "oi")
    pos_order(client, auth, "PDV-1", 70)
    assert automations.run(db, T0 + timedelta(days=22))["points_expiring"] == 0  # not yet
    frozen(T0 + timedelta(days=23, hours=1))
    send_whatsapp(client, settings, ANA, "oi de novo")  # the window is open again
    assert automations.run(db)["points_expiring"] == 1
    assert automations.run(db)["points_expiring"] == 0
    assert automations.run(db, T0 + timedelta(days=25))["points_expiring"] == 0
    worker.drain()
    assert (
        graph.texts_to(ANA)[-1]
        == "Café Uno: 70 pontos do seu saldo vencem em 03/06/2026. Use antes!"
    )


def test_switched_off_says_nothing(client, db, settings, graph):
    tenant, auth = shop(db, message_benefit_earned="false")
    send_whatsapp(client, settings, ANA, "oi")
    pos_order(client, auth, "PDV-1", 70)
    assert logs(db) == []
