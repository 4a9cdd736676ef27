"""Customers (owner): search by phone, document, e-mail and name prefix; the customer page;
manual adjustments through the ledger (who, why, never below zero, audited); erasure after
its confirmation step. Effects are read back from the database."""

import re

from sqlalchemy import select

from fidelia.customers import profile
from fidelia.customers.service import identify
from fidelia.ledger.service import Account, Source, credit
from fidelia.models import Adjustment, AuditEntry, Balance, Customer, LedgerEntry, Tenant
from fidelia.ops.check import check_database
from tests.panel.support import make_merchant, post, sign_in

CPF = "52998224725"


def add_customer(db, tenant_id, name, points=0, **identifiers):
    with db.session() as session:
        tenant = session.get_one(Tenant, tenant_id)
        customer = identify(session, tenant, identifiers, name=name)
        if points:
            acct = Account(tenant.program_id, customer.id, "points")
            credit(session, acct, points, Source(tenant.id, "event", f"t-{customer.id}"))
        return customer.id


def rows(page_text):
    return [int(x) for x in re.findall(r'data-customer="(\d+)"', page_text)]


def balance(db, customer_id, account="points"):
    with db.session(readonly=True) as session:
        found = session.scalar(
            select(Balance.amount).where(
                Balance.customer_id == customer_id, Balance.account == account
            )
        )
        return int(found or 0)


def test_search_by_phone_document_email_and_name(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    b = make_merchant(db, "shop-b", locale="en")
    jose = add_customer(db, a.tenant_id, "José Álvarez", phone="+50688881111", cpf=CPF)
    joana = add_customer(db, a.tenant_id, "Joana Silva", email="joana@example.com")
    add_customer(db, b.tenant_id, "José Other", phone="+50688882222")  # another program
    with db.session() as session:
        session.get_one(Tenant, a.tenant_id).currency = "CRC"  # phones read in Costa Rica
    sign_in(client, a.owner)
    search = lambda q: rows(client.get("/panel/customers", params={"q": q}).text)  # noqa: E731
    assert search("8888 1111") == [jose]  # read as a phone number in the shop's region
    assert search("+506 8888-1111") == [jose]
    assert search("529.982.247-25") == [jose]  # a CPF, check digits verified
    assert search("Joana@Example.com") == [joana]
    assert search("jose") == [jose]  # accents and case folded
    assert search("JOSÉ ÁL") == [jose]
    assert search("jo") == [jose, joana] or search("jo") == [joana, jose]
    assert search("silva") == []  # a prefix of the whole name only
    assert search("+50688882222") == []  # shop B's customer
    assert set(search("")) == {jose, joana}


def test_search_pages_without_counting(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    with db.session() as session:
        tenant = session.get_one(Tenant, a.tenant_id)
        for n in range(30):
            session.add(
                Customer(program_id=tenant.program_id, tenant_id=tenant.id, name=f"Zé {n:02d}")
            )
    sign_in(client, a.owner)
    first = client.get("/panel/customers", params={"q": "ze"})
    assert len(rows(first.text)) == 25 and 'rel="next"' in first.text
    second = client.get("/panel/customers", params={"q": "ze", "page": "2"})
    assert len(rows(second.text)) == 5 and 'rel="next"' not in second.text
    assert not set(rows(first.text)) & set(rows(second.text))


def test_customer_page_shows_identifiers_consents_balances_and_history(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    cid = add_customer(db, a.tenant_id, "Ana Lima", points=40, phone="+50688883333")
    with db.session() as session:
        tenant = session.get_one(Tenant, a.tenant_id)
        customer = session.get_one(Customer, cid)
        profile.record_consents(session, tenant, customer, {"whatsapp": True}, "test")
    sign_in(client, a.owner)
    page = client.get(f"/panel/customers/{cid}")
    assert page.status_code == 200
    assert "Ana Lima" in page.text and "+50688883333" in page.text
    assert "WhatsApp: <strong>yes</strong>" in page.text
    assert re.search(r'data-balance="points">.*?<strong>40</strong>', page.text, re.S)
    assert "Earned: an event (birthday, sign-up, campaign)" in page.text


def test_another_merchants_customer_is_not_found(client, db):
    a = make_merchant(db, "shop-a", locale="en", records=True)
    b = make_merchant(db, "shop-b", locale="en")
    sign_in(client, b.owner)
    assert client.get(f"/panel/customers/{a.customer_id}").status_code == 404
    answer = post(
        client,
        f"/panel/customers/{a.customer_id}/adjust",
        {"account": "points", "direction": "credit", "amount": "5", "reason": "x"},
    )
    assert answer.status_code == 404
    assert (
        post(client, f"/panel/customers/{a.customer_id}/erase", {"confirm": "yes"}).status_code
        == 404
    )
    assert balance(db, a.customer_id) == 0


def test_adjustments_credit_and_debit_with_who_and_why(client, db, database_url):
    a = make_merchant(db, "shop-a", locale="en")
    cid = add_customer(db, a.tenant_id, "Ana Lima", points=10, phone="+50688883333")
    sign_in(client, a.owner)
    url = f"/panel/customers/{cid}/adjust"
    done = post(
        client,
        url,
        {"account": "points", "direction": "credit", "amount": "25", "reason": "Lost receipt"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert balance(db, cid) == 35
    page = client.get(f"/panel/customers/{cid}")
    assert "Adjustment saved: +25 points." in page.text
    assert "Adjusted by hand: a manual adjustment" in page.text and "Lost receipt" in page.text
    # A debit beyond the balance is refused, nothing written.
    over = post(
        client, url, {"account": "points", "direction": "debit", "amount": "36", "reason": "oops"}
    )
    assert over.status_code == 422 and "below zero" in over.text
    assert balance(db, cid) == 35
    # No reason: refused next to the field.
    blank = post(client, url, {"account": "points", "direction": "debit", "amount": "5"})
    assert blank.status_code == 422 and 'id="e-reason"' in blank.text
    # Cashback in the merchant's money.
    post(
        client,
        url,
        {"account": "cashback", "direction": "credit", "amount": "2.50", "reason": "Goodwill"},
    )
    post(
        client,
        url,
        {"account": "points", "direction": "debit", "amount": "5", "reason": "Duplicate"},
    )
    assert balance(db, cid) == 30 and balance(db, cid, "cashback") == 250
    with db.session(readonly=True) as session:
        adjustments = session.scalars(select(Adjustment).order_by(Adjustment.id)).all()
        assert [(x.account, x.amount, x.reason) for x in adjustments] == [
            ("points", 25, "Lost receipt"),
            ("cashback", 250, "Goodwill"),
            ("points", -5, "Duplicate"),
        ]
        assert {x.actor_label for x in adjustments} == {a.owner} and all(
            x.user_id for x in adjustments
        )
        entries = session.scalars(
            select(LedgerEntry).where(LedgerEntry.kind == "adjust").order_by(LedgerEntry.id)
        ).all()
        assert [(e.source_type, e.source_id, e.amount) for e in entries] == [
            ("adjustment", str(x.id), x.amount) for x in adjustments
        ]
        audits = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "ledger.adjust")
        ).all()
        assert [x.after["amount"] for x in audits] == [25, 250, -5]
        assert all("reason" not in (x.after or {}) for x in audits)  # free text stays out
    assert check_database(database_url).ok


def test_erasure_needs_its_confirmation_and_keeps_only_the_id_in_the_audit(client, db):
    a = make_merchant(db, "shop-a", locale="en")
    cid = add_customer(db, a.tenant_id, "Ana Lima", points=10, phone="+50688883333")
    sign_in(client, a.owner)
    post(
        client,
        f"/panel/customers/{cid}/adjust",
        {"account": "points", "direction": "credit", "amount": "1", "reason": "Ana's birthday"},
    )
    confirm = client.get(f"/panel/customers/{cid}/erase")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    refused = post(client, f"/panel/customers/{cid}/erase", {})
    assert refused.status_code == 422 and 'id="e-confirm"' in refused.text
    with db.session(readonly=True) as session:
        assert session.get_one(Customer, cid).erased_at is None
    done = post(client, f"/panel/customers/{cid}/erase", {"confirm": "yes"}, follow_redirects=False)
    assert done.status_code == 303
    with db.session(readonly=True) as session:
        customer = session.get_one(Customer, cid)
        assert (
            customer.erased_at is not None and customer.name is None and customer.name_key is None
        )
        assert session.scalar(select(Adjustment.reason)) == ""
        (entry,) = session.scalars(select(AuditEntry).where(AuditEntry.action == "customer.erase"))
        assert entry.target_id == str(cid) and entry.before is None and entry.after is None
    assert balance(db, cid) == 11  # the books stay
    assert client.get(f"/panel/customers/{cid}").status_code == 404
    assert cid not in rows(client.get("/panel/customers").text)
