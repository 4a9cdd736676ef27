"""Sales in through Bling's webhook: checked before it is read, stored once per eventId,
processed by the worker against the order's current state at Bling, whatever order the
deliveries arrive in; cancellation and deletion reverse once (a debt when spent)."""

from sqlalchemy import select

from fidelia.connectors.bling import intake
from fidelia.connectors.bling.jobs import BlingJobs
from fidelia.customers.service import find
from fidelia.ledger.service import POINTS, Account, Source, debit
from fidelia.messaging.channels import senders_for
from fidelia.messaging.worker import Worker
from fidelia.models import BlingEvent, CustomerIdentifier, LedgerEntry, Order, Tenant
from fidelia.models.order import CANCELLED, COMPLETE, PENDING
from tests.connectors.bling.conftest import ANA, connect, count, make_merchant, wallet
from tests.support.helpers import ledger_invariants


def setup(client, db, settings, fake):
    tenant = make_merchant(db)
    company = connect(client, db, settings, fake, tenant)
    contact = fake.add_contact(
        company,
        "Ana Souza",
        documento="529.982.247-25",
        celular="(11) 98765-4321",
        email="Ana@Example.com",
    )
    return tenant, company, contact


def order_of(db, tenant, bling_id):
    with db.session(readonly=True) as session:
        return session.scalar(
            select(Order).where(
                Order.tenant_id == tenant.id, Order.original_id == f"bling:{bling_id}"
            )
        )


def customer_id(db, tenant):
    with db.session(readonly=True) as session:
        program = session.get_one(Tenant, tenant.id).program_id
        return find(session, program, "cpf", ANA).id


def test_bad_or_missing_signature_is_401_and_nothing_stored(client, db, settings, fake):
    tenant, company, contact = setup(client, db, settings, fake)
    order = fake.add_order(company, contact, situacao=9)
    body = fake.event_body(company, "order.created", order)
    for headers in (
        {},
        {"X-Bling-Signature-256": "sha256=" + "0" * 64},
        {"X-Bling-Signature-256": fake.sign(body + b" ")},
        {"X-Bling-Signature-256": fake.sign(body).removeprefix("sha256=")},
    ):
        answer = client.post("/webhooks/bling", content=body, headers=headers)
        assert answer.status_code == 401, headers
        assert answer.json()["error"]["code"] == "INVALID_SIGNATURE"
    assert count(db, BlingEvent) == 0
    # Signed, but not JSON: 400, nothing stored.
    junk = b"{not json"
    answer = client.post(
        "/webhooks/bling", content=junk, headers={"X-Bling-Signature-256": fake.sign(junk)}
    )
    assert answer.status_code == 400 and count(db, BlingEvent) == 0


def test_sale_earns_once_with_products_minus_discount(client, db, settings, fake, bling):
    tenant, company, contact = setup(client, db, settings, fake)
    order = fake.add_order(
        company, contact, produtos="120.00", desconto="20.00", frete="15.00", situacao=9
    )
    first = fake.send_webhook(client, company, "order.created", order, event_id="evt-1")
    assert first.status_code == 200 and first.json() == {"received": True, "duplicate": False}
    again = fake.send_webhook(client, company, "order.created", order, event_id="evt-1")
    assert again.json() == {"received": True, "duplicate": True}
    fake.send_webhook(client, company, "order.updated", order, event_id="evt-2")
    assert count(db, BlingEvent) == 2
    assert intake.process_due(db, bling) == 2
    stored = order_of(db, tenant, order)
    assert stored.state == COMPLETE and stored.total == 10000  # R$ 120 - 20; freight excluded
    assert (stored.earned_points, stored.earned_cashback) == (100, 500)
    assert wallet(db, tenant, customer_id(db, tenant)) == (100, 500)
    with db.session(readonly=True) as session:
        kinds = {
            i.kind: i.value
            for i in session.scalars(
                select(CustomerIdentifier).where(
                    CustomerIdentifier.customer_id == stored.customer_id
                )
            )
        }
        events = session.scalars(select(BlingEvent)).all()
    assert kinds["cpf"] == ANA and kinds["phone"] == "+5511987654321"
    assert kinds["email"] == "ana@example.com" and kinds["bling"] == f"{company.id}:{contact}"
    assert {e.status for e in events} == {"done"}
    assert count(db, LedgerEntry) == 2 and ledger_invariants(db) == []


def test_the_worker_processes_stored_events(client, db, settings, fake):
    tenant, company, contact = setup(client, db, settings, fake)
    order = fake.add_order(company, contact, produtos="50.00", situacao=9)
    fake.send_webhook(client, company, "order.created", order)
    jobs = BlingJobs(db, settings)
    worker = Worker(db, senders_for(settings), jobs=jobs)
    try:
        worker.drain()
    finally:
        jobs.close()
    assert order_of(db, tenant, order).state == COMPLETE
    assert wallet(db, tenant, customer_id(db, tenant)) == (50, 250)


def test_out_of_order_and_edits_before_earning(client, db, settings, fake, bling):
    tenant, company, contact = setup(client, db, settings, fake)
    order = fake.add_order(company, contact, produtos="80.00", situacao=6)
    created = fake.event_body(company, "order.created", order)  # captured while open
    fake.send_webhook(client, company, "order.created", order)
    intake.process_due(db, bling)
    assert order_of(db, tenant, order).state == PENDING
    fake.update_order(company, order, produtos="90.00")  # edited before it earned
    fake.update_order(company, order, situacao=9)
    fake.send_webhook(client, company, "order.updated", order)
    intake.process_due(db, bling)
    assert order_of(db, tenant, order).total == 9000
    # The old "created" delivery arrives late: the current state is fetched, nothing changes.
    client.post(
        "/webhooks/bling",
        content=created.replace(b'"eventId": "', b'"eventId": "late-'),
        headers={
            "X-Bling-Signature-256": fake.sign(
                created.replace(b'"eventId": "', b'"eventId": "late-')
            )
        },
    )
    intake.process_due(db, bling)
    stored = order_of(db, tenant, order)
    assert stored.state == COMPLETE and stored.earned_points == 90
    assert wallet(db, tenant, customer_id(db, tenant)) == (90, 450)
    assert count(db, LedgerEntry) == 2


def test_cancelled_after_earning_reverses_once_leaving_a_debt(client, db, settings, fake, bling):
    tenant, company, contact = setup(client, db, settings, fake)
    order = fake.add_order(company, contact, produtos="100.00", situacao=9)
    fake.send_webhook(client, company, "order.created", order)
    intake.process_due(db, bling)
    who = customer_id(db, tenant)
    with db.session() as session:  # the customer spends 60 of the 100 points
        program = session.get_one(Tenant, tenant.id).program_id
        debit(session, Account(program, who, POINTS), 60, Source(tenant.id, "redemption", "r1"))
    fake.update_order(company, order, situacao=12)
    for _ in range(2):
        fake.send_webhook(client, company, "order.updated", order)
    intake.process_due(db, bling)
    assert order_of(db, tenant, order).state == CANCELLED
    assert wallet(db, tenant, who) == (-60, 0)  # the debt: spent points stay owed
    fake.update_order(company, order, situacao=9)  # reopened at Bling: final here
    fake.send_webhook(client, company, "order.updated", order)
    intake.process_due(db, bling)
    assert wallet(db, tenant, who) == (-60, 0)


def test_deleted_after_earning_reverses_once(client, db, settings, fake, bling):
    tenant, company, contact = setup(client, db, settings, fake)
    order = fake.add_order(company, contact, produtos="40.00", situacao=50001)  # inherits Atendido
    fake.send_webhook(client, company, "order.created", order)
    intake.process_due(db, bling)
    assert wallet(db, tenant, customer_id(db, tenant)) == (40, 200)
    fake.delete_order(company, order)
    fake.send_webhook(client, company, "order.deleted", order)
    fake.send_webhook(client, company, "order.updated", order)  # a stale update after it
    intake.process_due(db, bling)
    stored = order_of(db, tenant, order)
    assert stored.state == CANCELLED and stored.status_text == "deleted"
    assert wallet(db, tenant, customer_id(db, tenant)) == (0, 0)
    assert count(db, LedgerEntry) == 4 and ledger_invariants(db) == []


def test_unknown_company_and_other_events_are_ignored(client, db, settings, fake, bling):
    tenant, company, contact = setup(client, db, settings, fake)
    stranger = fake.add_company("other-co", "Outra")
    order = fake.add_order(stranger, None, situacao=9)
    fake.send_webhook(client, stranger, "order.created", order)
    body = fake.event_body(company, "product.updated", 1)
    client.post("/webhooks/bling", content=body, headers={"X-Bling-Signature-256": fake.sign(body)})
    intake.process_due(db, bling)
    with db.session(readonly=True) as session:
        assert {e.status for e in session.scalars(select(BlingEvent))} == {"ignored"}
    assert count(db, Order) == 0


def test_a_failing_fetch_is_retried_not_lost(client, db, settings, fake, bling):
    tenant, company, contact = setup(client, db, settings, fake)
    order = fake.add_order(company, contact, situacao=9)
    fake.fail_next.append((f"/pedidos/vendas/{order}", 503))
    fake.send_webhook(client, company, "order.created", order)
    intake.process_due(db, bling)
    with db.session() as session:
        event = session.scalars(select(BlingEvent)).one()
        assert event.status == "pending" and event.attempts == 1 and "503" in event.last_error
        event.next_attempt_at = event.received_at  # due again now
    intake.process_due(db, bling)
    assert order_of(db, tenant, order).state == COMPLETE
