"""Identity challenges at the service level (fidelia/challenges): what a code is stored as,
what it is sent as, when it verifies, how often it may be sent, and which verified code a
spend consumes (only one of this customer at this merchant, verified within 60 minutes, the
newest first). Killing mutmut's mutants of fidelia/challenges (docs/testing.md)."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from fidelia.challenges import presence, short_codes
from fidelia.challenges.service import (
    LIFETIME,
    code_digest,
    consume_verification,
    issue_code,
    start,
    validate,
)
from fidelia.customers.profile import record_consents
from fidelia.customers.service import identify
from fidelia.kit import clock
from fidelia.kit.db import Database
from fidelia.kit.errors import Forbidden, RateLimited
from fidelia.ledger.service import Account, Source, credit
from fidelia.models import Challenge, Customer, CustomerIdentifier, OutboxMessage, Tenant
from tests.support.helpers import make_group, make_tenant

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
KEY = "a-secret-key"
ANA = "+5511987654321"
BIA = "+5511912345678"


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(T0)
    yield
    clock.freeze(None)


def member(db: Database, tenant: Tenant, **identifiers: str) -> int:
    with db.session() as session:
        return identify(session, session.get_one(Tenant, tenant.id), identifiers).id


def issue(db, tenant, customer, transaction="T-1", lifetime=LIFETIME) -> tuple[int, str]:
    with db.session() as session:
        row, code = issue_code(
            session,
            session.get_one(Tenant, tenant.id),
            session.get_one(Customer, customer),
            transaction,
            lifetime,
            KEY,
        )
        return row.id, code


def check(db, tenant, customer, code, transaction="T-1") -> bool:
    with db.session() as session:
        return validate(
            session,
            session.get_one(Tenant, tenant.id),
            session.get_one(Customer, customer),
            transaction,
            code,
            KEY,
        )


def consume(db, tenant, customer) -> None:
    with db.session() as session:
        consume_verification(
            session, session.get_one(Tenant, tenant.id), session.get_one(Customer, customer)
        )


def challenges(db) -> list[Challenge]:
    with db.session(readonly=True) as session:
        return list(session.scalars(select(Challenge).order_by(Challenge.id)))


def outbox(db) -> list[tuple[int | None, str, dict]]:
    with db.session(readonly=True) as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        return [(r.tenant_id, r.channel, r.payload) for r in rows]


def verified(db, tenant, customer, transaction="T-1") -> int:
    challenge, code = issue(db, tenant, customer, transaction)
    assert check(db, tenant, customer, code, transaction)
    return challenge


def test_a_code_is_stored_as_its_keyed_digest_and_sent_to_each_contact(db):
    tenant, _ = make_tenant(db, name="Loja")
    ana = member(db, tenant, phone=ANA)
    with db.session() as session:
        sent = start(
            session,
            session.get_one(Tenant, tenant.id),
            session.get_one(Customer, ana),
            "T-1",
            phone=ANA,
            email="ana@example.com",
            secret_key=KEY,
        )
        challenge, code = sent.challenge.id, sent.code
    [row] = challenges(db)
    assert row.id == challenge and len(code) == 6 and code.isdigit()
    assert (row.tenant_id, row.customer_id, row.transaction_id) == (tenant.id, ana, "T-1")
    assert row.code_digest == code_digest(KEY, str(row.id), code) and code not in row.code_digest
    assert (row.sent_sms, row.sent_email, row.failures) == (True, True, 0)
    assert (row.expires_at, row.verified_at, row.consumed_at) == (T0 + LIFETIME, None, None)
    text = f"Loja: seu código de verificação é {code}. Válido por 60 minutos."
    assert outbox(db) == [
        (tenant.id, "sms", {"to": ANA, "text": text, "secret": True}),
        (
            tenant.id,
            "email",
            {
                "to": "ana@example.com",
                "subject": "Loja: código de verificação",
                "text": text,
                "secret": True,
            },
        ),
    ]
    with db.session() as session:
        start(
            session,
            session.get_one(Tenant, tenant.id),
            session.get_one(Customer, ana),
            "T-2",
            phone=None,
            email="ana@example.com",
            secret_key=KEY,
        )
    assert (challenges(db)[1].sent_sms, challenges(db)[1].sent_email) == (False, True)
    assert [channel for _, channel, _ in outbox(db)] == ["sms", "email", "email"]


def test_the_digest_depends_on_the_key_the_row_and_the_code():
    digest = code_digest(KEY, "7", "123456")
    assert len(digest) == 64 and digest == code_digest(KEY, "7", "123456")
    others = {code_digest("other", "7", "123456"), code_digest(KEY, "8", "123456")}
    others |= {code_digest(KEY, "7", "123457"), code_digest(KEY, "71", "23456")}
    assert digest not in others and len(others) == 4


def test_a_code_verifies_once_with_spaces_around_and_records_when(db):
    tenant, _ = make_tenant(db)
    ana = member(db, tenant, phone=ANA)
    _, code = issue(db, tenant, ana)
    clock.freeze(T0 + timedelta(minutes=3))
    assert check(db, tenant, ana, f" {code} ")
    assert challenges(db)[0].verified_at == T0 + timedelta(minutes=3)
    assert not check(db, tenant, ana, code)  # single use
    assert challenges(db)[0].failures == 0


def test_wrong_codes_are_counted_and_the_fifth_locks_the_code(db):
    tenant, _ = make_tenant(db)
    ana = member(db, tenant, phone=ANA)
    _, code = issue(db, tenant, ana)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for failures in range(1, 5):
        assert not check(db, tenant, ana, wrong)
        assert challenges(db)[0].failures == failures
    assert check(db, tenant, ana, code)  # four wrong tries still leave the right one
    _, code = issue(db, tenant, ana, "T-2")
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(5):
        assert not check(db, tenant, ana, wrong, "T-2")
    assert not check(db, tenant, ana, code, "T-2")  # the fifth locked it
    assert not check(db, tenant, ana, None, "T-2")  # type: ignore[arg-type]
    assert challenges(db)[1].failures == 5 and challenges(db)[1].verified_at is None


@pytest.mark.parametrize(
    ("after", "works"), [(timedelta(minutes=10, seconds=-1), True), (timedelta(minutes=10), False)]
)
def test_a_code_works_until_its_lifetime_ends(db, after, works):
    tenant, _ = make_tenant(db)
    ana = member(db, tenant, phone=ANA)
    _, code = issue(db, tenant, ana, lifetime=timedelta(minutes=10))
    assert challenges(db)[0].expires_at == T0 + timedelta(minutes=10)
    clock.freeze(T0 + after)
    assert check(db, tenant, ana, code) is works


def test_a_code_is_checked_against_the_latest_code_of_its_own_transaction(db):
    cafe, _ = make_tenant(db, slug="cafe")
    bar, _ = make_tenant(db, slug="bar", name="Bar")
    make_group(db, "rede", "Rede", "cafe", "bar")
    ana = member(db, cafe, phone=ANA)
    bia = member(db, cafe, phone=BIA)
    done_id = verified(db, cafe, ana)  # a verified code of the transaction stays as it is
    first_id, first = issue(db, cafe, ana)
    other_id, other = issue(db, cafe, ana, "T-2")
    bia_id, bia_code = issue(db, cafe, bia)
    bar_id, bar_code = issue(db, bar, ana)
    clock.freeze(T0 + timedelta(minutes=1))
    _, latest = issue(db, cafe, ana)
    by_id = {row.id: row for row in challenges(db)}
    assert by_id[first_id].expires_at == T0 + timedelta(minutes=1)  # voided by the new one
    for untouched in (done_id, other_id, bia_id, bar_id):
        assert by_id[untouched].expires_at == T0 + LIFETIME
    assert not check(db, cafe, ana, first)  # voided
    assert not check(db, bar, ana, latest)  # the right code, at another merchant
    assert not check(db, cafe, bia, latest)  # for another customer
    assert not check(db, cafe, ana, latest, "T-2")  # for another transaction
    assert check(db, cafe, ana, latest)
    assert check(db, cafe, ana, other, "T-2")
    assert check(db, bar, ana, bar_code)
    assert check(db, cafe, bia, bia_code)


def test_an_expired_code_keeps_its_expiry_when_a_new_one_is_issued(db):
    tenant, _ = make_tenant(db)
    ana = member(db, tenant, phone=ANA)
    issue(db, tenant, ana, lifetime=timedelta(minutes=5))
    clock.freeze(T0 + timedelta(minutes=6))
    issue(db, tenant, ana)
    assert [row.expires_at for row in challenges(db)] == [
        T0 + timedelta(minutes=5),
        T0 + timedelta(minutes=6) + LIFETIME,
    ]


def test_at_most_five_codes_in_ten_minutes_per_customer_and_merchant(db):
    cafe, _ = make_tenant(db, slug="cafe")
    bar, _ = make_tenant(db, slug="bar", name="Bar")
    make_group(db, "rede", "Rede", "cafe", "bar")
    ana = member(db, cafe, phone=ANA)
    bia = member(db, cafe, phone=BIA)
    for n, minute in enumerate((4, 0, 1, 2, 3)):  # by when they were made, not row order
        clock.freeze(T0 + timedelta(minutes=minute))
        issue(db, cafe, ana, f"T-{n}")
    clock.freeze(T0 + timedelta(minutes=6, seconds=30))
    with pytest.raises(RateLimited) as refused:
        issue(db, cafe, ana, "T-9")
    assert str(refused.value) == (
        "At most 5 codes per 10 minutes for one customer; try again later."
    )
    assert refused.value.retry_after == 211  # the first code leaves the window in 210 s
    assert len(challenges(db)) == 5  # nothing written
    issue(db, bar, ana)  # another merchant, another customer: their own counts
    issue(db, cafe, bia)
    clock.freeze(T0 + timedelta(minutes=10, milliseconds=-500))
    with pytest.raises(RateLimited) as refused:
        issue(db, cafe, ana, "T-9")
    assert refused.value.retry_after == 1  # half a second, said as one
    clock.freeze(T0 + timedelta(minutes=10))  # the first code is out of the window
    issue(db, cafe, ana, "T-10")
    with pytest.raises(RateLimited):
        issue(db, cafe, ana, "T-11")


def test_at_most_twenty_codes_a_day_per_customer_and_merchant(db):
    tenant, _ = make_tenant(db)
    ana = member(db, tenant, phone=ANA)
    codes = []
    for n in range(20):
        clock.freeze(T0 + timedelta(minutes=30 * n))
        codes.append(issue(db, tenant, ana, f"T-{n}")[1])
    assert all(len(code) == 6 and code.isdigit() for code in codes)
    assert max(int(code) for code in codes) >= 1000  # drawn from all of 000000-999999
    at = T0 + timedelta(minutes=30 * 20)
    clock.freeze(at)
    with pytest.raises(RateLimited) as refused:
        issue(db, tenant, ana, "T-20")
    assert str(refused.value) == "At most 20 codes per 1 day(s) for one customer; try again later."
    assert refused.value.retry_after == int((T0 + timedelta(days=1) - at).total_seconds()) + 1
    clock.freeze(T0 + timedelta(days=1))
    issue(db, tenant, ana, "T-20")
    assert len(challenges(db)) == 21


def test_a_spend_needs_a_verified_code_of_this_customer_at_this_merchant(db):
    cafe, _ = make_tenant(db, slug="cafe")
    bar, _ = make_tenant(db, slug="bar", name="Bar")
    make_group(db, "rede", "Rede", "cafe", "bar")
    ana = member(db, cafe, phone=ANA)
    bia = member(db, cafe, phone=BIA)
    issue(db, cafe, ana)  # sent, never verified
    verified(db, bar, ana)  # verified at the other merchant of the group
    verified(db, cafe, bia)  # another customer's
    with pytest.raises(Forbidden) as refused:
        consume(db, cafe, ana)
    assert refused.value.code == "CHALLENGE_REQUIRED" and refused.value.status == 403
    assert str(refused.value) == (
        "This merchant validates customers: run the challenge before redeeming."
    )
    assert [row.consumed_at for row in challenges(db)] == [None, None, None]
    consume(db, bar, ana)  # each is good where it was verified
    consume(db, cafe, bia)
    assert [row.consumed_at for row in challenges(db)] == [None, T0, T0]


@pytest.mark.parametrize(
    ("after", "works"), [(timedelta(minutes=60, seconds=-1), True), (timedelta(minutes=60), False)]
)
def test_a_verification_is_good_for_sixty_minutes(db, after, works):
    tenant, _ = make_tenant(db)
    ana = member(db, tenant, phone=ANA)
    verified(db, tenant, ana)
    clock.freeze(T0 + after)
    if works:
        consume(db, tenant, ana)
        assert challenges(db)[0].consumed_at == T0 + after
    else:
        with pytest.raises(Forbidden):
            consume(db, tenant, ana)
        assert challenges(db)[0].consumed_at is None


def test_each_verified_code_pays_for_one_spend_the_newest_first(db):
    tenant, _ = make_tenant(db)
    ana = member(db, tenant, phone=ANA)
    older = verified(db, tenant, ana, "T-1")
    clock.freeze(T0 + timedelta(minutes=1))
    newer = verified(db, tenant, ana, "T-2")
    clock.freeze(T0 + timedelta(minutes=2))
    consume(db, tenant, ana)
    assert {row.id: row.consumed_at for row in challenges(db)} == {
        older: None,
        newer: T0 + timedelta(minutes=2),
    }
    clock.freeze(T0 + timedelta(minutes=3))
    consume(db, tenant, ana)
    assert {row.id: row.consumed_at for row in challenges(db)} == {
        older: T0 + timedelta(minutes=3),
        newer: T0 + timedelta(minutes=2),
    }
    with pytest.raises(Forbidden):
        consume(db, tenant, ana)


def test_presence_is_consumed_once_per_transaction_and_customer(db):
    tenant, _ = make_tenant(db, should_validate_customer="true")
    ana = member(db, tenant, phone=ANA)
    bia = member(db, tenant, phone=BIA)
    for _ in range(2):
        verified(db, tenant, ana)
    verified(db, tenant, bia)
    with db.session() as session:
        shop = session.get_one(Tenant, tenant.id)
        for who in (ana, ana, bia, bia):  # one code each, however many debits
            presence.require_presence(session, shop, session.get_one(Customer, who))
    assert [row.consumed_at is not None for row in challenges(db)] == [False, True, True]
    with db.session() as session:
        shop = session.get_one(Tenant, tenant.id)
        presence.require_presence(session, shop, session.get_one(Customer, ana))
        session.commit()  # a new transaction needs a new code
        with pytest.raises(Forbidden):
            presence.require_presence(session, shop, session.get_one(Customer, ana))
    with db.session() as session:
        shop = session.get_one(Tenant, tenant.id)
        with pytest.raises(Forbidden):
            presence.require_presence(session, shop, session.get_one(Customer, bia))
    assert all(row.consumed_at is not None for row in challenges(db))


def test_presence_is_forgotten_when_the_transaction_rolls_back(db):
    tenant, _ = make_tenant(db, should_validate_customer="true")
    ana = member(db, tenant, phone=ANA)
    verified(db, tenant, ana)
    with db.session() as session:
        shop = session.get_one(Tenant, tenant.id)
        presence.require_presence(session, shop, session.get_one(Customer, ana))
        session.rollback()  # the consumption is undone, and so is the proof:
        presence.require_presence(session, shop, session.get_one(Customer, ana))  # again
    assert challenges(db)[0].consumed_at == T0


def test_a_merchant_that_does_not_validate_needs_no_code(db):
    tenant, _ = make_tenant(db)
    ana = member(db, tenant, phone=ANA)
    verified(db, tenant, ana)
    with db.session() as session:
        shop = session.get_one(Tenant, tenant.id)
        presence.require_presence(session, shop, session.get_one(Customer, ana))
    assert challenges(db)[0].consumed_at is None


def consent(db, tenant, customer, **given: bool) -> None:
    with db.session() as session:
        record_consents(
            session,
            session.get_one(Tenant, tenant.id),
            session.get_one(Customer, customer),
            given,
            "test",
        )


def send(db, tenant, customer) -> short_codes.ShortCode:
    with db.session() as session:
        return short_codes.send(
            session, session.get_one(Tenant, tenant.id), session.get_one(Customer, customer), KEY
        )


def test_a_short_code_goes_to_whatsapp_first_then_sms_never_without_consent(db):
    tenant, _ = make_tenant(db, name="Loja", locale="pt_BR")
    ana = member(db, tenant, whatsapp=ANA)
    bia = member(db, tenant, phone=BIA)
    for who in (ana, bia):
        with pytest.raises(short_codes.NoChannel) as refused:
            send(db, tenant, who)
        assert (refused.value.status, refused.value.code) == (422, "NO_CHANNEL")
        assert str(refused.value) == (
            "The member has no phone number with WhatsApp or SMS consent to send a code to."
        )
    assert challenges(db) == [] and outbox(db) == []
    consent(db, tenant, ana, sms=True)
    consent(db, tenant, bia, whatsapp=True)
    by_sms = send(db, tenant, ana)  # a WhatsApp number takes an SMS too
    by_whatsapp = send(db, tenant, bia)  # a phone takes a WhatsApp message too
    assert (by_sms.channel, by_whatsapp.channel) == ("sms", "whatsapp")
    assert by_sms.expires_at == T0 + timedelta(minutes=10)
    texts = [
        f"Loja: seu código de acesso é {s.code}. Vale por 10 minutos."
        for s in (by_sms, by_whatsapp)
    ]
    assert outbox(db) == [
        (tenant.id, "sms", {"to": ANA, "text": texts[0], "secret": True}),
        (
            tenant.id,
            "whatsapp",
            {
                "messaging_product": "whatsapp",
                "type": "text",
                "text": {"body": texts[1]},
                "to": BIA.lstrip("+"),
                "secret": True,
            },
        ),
    ]
    assert [row.transaction_id for row in challenges(db)] == [short_codes.PURPOSE] * 2
    consent(db, tenant, ana, whatsapp=True)
    assert send(db, tenant, ana).channel == "whatsapp"
    assert outbox(db)[-1][2]["to"] == ANA.lstrip("+")


def test_a_short_code_prefers_the_whatsapp_number_and_verifies_once(db):
    tenant, _ = make_tenant(db)
    ana = member(db, tenant, phone=ANA)
    with db.session() as session:  # a WhatsApp number besides the phone
        customer = session.get_one(Customer, ana)
        session.add(
            CustomerIdentifier(
                program_id=customer.program_id, customer_id=ana, kind="whatsapp", value=BIA
            )
        )
    consent(db, tenant, ana, whatsapp=True, sms=True)
    with db.session(readonly=True) as session:
        assert short_codes.channel_for(session, session.get_one(Customer, ana)) == (
            "whatsapp",
            BIA,
        )
    consent(db, tenant, ana, whatsapp=False)
    with db.session(readonly=True) as session:
        assert short_codes.channel_for(session, session.get_one(Customer, ana)) == ("sms", ANA)
    with db.session() as session:
        issued = short_codes.issue(
            session, session.get_one(Tenant, tenant.id), session.get_one(Customer, ana), KEY
        )
    assert issued.channel is None and issued.expires_at == T0 + short_codes.LIFETIME
    clock.freeze(T0 + timedelta(minutes=9))
    with db.session() as session:
        shop, who = session.get_one(Tenant, tenant.id), session.get_one(Customer, ana)
        assert short_codes.verify(session, shop, who, issued.code, KEY)
        assert not short_codes.verify(session, shop, who, issued.code, KEY)


def lock_waits(db) -> int:
    with db.session(readonly=True) as session:
        return int(
            session.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            )
            or 0
        )


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_code_being_issued_holds_the_next_one_but_not_an_earning(db):
    """PostgreSQL, several connections: while a code is being issued (the customer's row
    locked FOR NO KEY UPDATE), another code for that customer waits and then counts it, so
    the send limit holds; an earning for the customer (its foreign keys take KEY SHARE) does
    not wait."""
    tenant, _ = make_tenant(db)
    ana = member(db, tenant, phone=ANA)
    for minute in range(4):
        clock.freeze(T0 + timedelta(minutes=minute))
        issue(db, tenant, ana, f"T-{minute}")
    clock.freeze(T0 + timedelta(minutes=5))
    outcome: list[str] = []

    def another() -> None:
        try:
            issue(db, tenant, ana, "T-late")
            outcome.append("issued")
        except RateLimited:
            outcome.append("refused")

    def earning() -> None:
        with db.session() as session:
            who = session.get_one(Customer, ana)
            credit(session, Account(who.program_id, ana), 10, Source(tenant.id, "test", "e"))
        outcome.append("earned")

    with db.session() as session:
        issue_code(
            session,
            session.get_one(Tenant, tenant.id),
            session.get_one(Customer, ana),
            "T-4",
            LIFETIME,
            KEY,
        )  # the fifth, not committed yet
        earner = threading.Thread(target=earning)
        earner.start()
        earner.join(10)
        assert outcome == ["earned"]  # not held by the code being issued
        second = threading.Thread(target=another)
        second.start()
        for _ in range(600):
            if lock_waits(db) or not second.is_alive():
                break
            time.sleep(0.05)
        assert second.is_alive() and outcome == ["earned"]  # waits for the fifth code
    second.join(30)
    assert outcome == ["earned", "refused"]
    assert len(challenges(db)) == 5
