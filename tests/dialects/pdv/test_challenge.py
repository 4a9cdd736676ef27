"""POST /v1/pvt/POS/customers/{document}/challenge and /challengevalidate: a 6-digit code
by SMS and e-mail, valid 60 minutes, single-use, 5 wrong tries. Bare answers (no envelope)."""

from datetime import timedelta

from sqlalchemy import select

from fidelia.challenges.service import code_digest
from fidelia.kit import clock
from fidelia.models import Challenge, OutboxMessage
from tests.dialects.pdv.conftest import (
    ANA,
    BIA,
    PHONE,
    available,
    challenge,
    challenge_path,
    code_in,
    make_merchant,
    order,
    tenant_set,
    validate,
)

CONTACTS = {"Name": "Ana", "Phone": PHONE, "Email": "ana@example.com"}


def sent_code(worker, sms):
    """Deliver the outbox and read the code from the last SMS."""
    worker.drain()
    assert sms.sent, "no SMS reached the gateway"
    return code_in(sms.sent[-1]["text"])


def test_code_goes_by_sms_and_email(client, db, settings, worker, sms, smtp):
    merchant = make_merchant(db)
    order(client, merchant, "PDV-1", "10.00", customer=CONTACTS)
    answer = challenge(client, merchant, "T1")
    assert answer == {
        "Success": True,
        "FriendlyErrorMessage": None,
        "ShouldInformPhone": False,
        "ShouldInformEmail": False,
        "SentBySMS": True,
        "SentByEmail": True,
        "TransactionId": "T1",
        "ErrorMessage": None,
        "Code": None,  # never echoed outside sandbox mode
    }
    assert sms.sent == [] and smtp.messages == []  # queued in the outbox, not sent inline
    worker.drain()
    (text,) = sms.sent
    assert text["to"] == "+5511987654321"
    code = code_in(text["text"])
    (mail,) = smtp.messages
    assert mail["To"] == "ana@example.com"
    assert code_in(mail.get_payload()) == code

    # The challenge row keeps a keyed digest of the code, never the code itself.
    with db.session(readonly=True) as session:
        row = session.scalars(select(Challenge)).one()
        stored = [str(getattr(row, c.key)) for c in Challenge.__table__.columns]
        assert not any(code in value for value in stored)
        assert row.code_digest == code_digest(settings.secret_key, str(row.id), code)

    # Once delivered, the outbox keeps no readable copy of the code either.
    with db.session(readonly=True) as session:
        payloads = [str(m.payload) for m in session.scalars(select(OutboxMessage))]
    assert payloads and not any(code in payload for payload in payloads)

    assert validate(client, merchant, code) is True


def test_no_contact_on_file_then_the_pos_gives_one(client, db, worker, sms, smtp):
    merchant = make_merchant(db)
    order(client, merchant, "PDV-1", "10.00", document=BIA)
    answer = challenge(client, merchant, "T1", document=BIA)
    assert answer["Success"] is False
    assert answer["ShouldInformPhone"] is True and answer["ShouldInformEmail"] is True
    assert answer["SentBySMS"] is False and answer["SentByEmail"] is False
    assert answer["FriendlyErrorMessage"]
    worker.drain()
    assert sms.sent == [] and smtp.messages == []

    answer = challenge(client, merchant, "T1", document=BIA, Phone="(21) 99876-5432")
    assert answer["Success"] is True and answer["SentBySMS"] is True
    assert answer["ShouldInformPhone"] is False and answer["SentByEmail"] is False
    code = sent_code(worker, sms)
    assert sms.sent[0]["to"] == "+5521998765432"
    assert validate(client, merchant, code, document=BIA) is True
    # The phone is now on file.
    assert available(client, merchant, 10, customer=BIA)["Customer"]["Phone"] == "+5521998765432"

    answer = challenge(client, merchant, "T2", document=BIA, Email="bia@example.com")
    assert answer["SentBySMS"] is True and answer["SentByEmail"] is True
    worker.drain()
    assert [m["To"] for m in smtp.messages] == ["bia@example.com"]


def test_wrong_code_and_five_tries(client, db, worker, sms):
    merchant = make_merchant(db)
    order(client, merchant, "PDV-1", "10.00", customer=CONTACTS)
    challenge(client, merchant, "T1")
    code = sent_code(worker, sms)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        assert validate(client, merchant, wrong) is False
    assert validate(client, merchant, code) is False  # locked, even for the right code

    # A new challenge gives a new code; the earlier one no longer works.
    challenge(client, merchant, "T2")
    first = sent_code(worker, sms)
    challenge(client, merchant, "T2")
    second = sent_code(worker, sms)
    if first != second:
        assert validate(client, merchant, first, "T2") is False
    assert validate(client, merchant, second, "T2") is True
    assert validate(client, merchant, second, "T2") is False  # single use
    assert validate(client, merchant, second, "T-other") is False


def test_code_expires_after_60_minutes(client, db, worker, sms, frozen):
    merchant = make_merchant(db)
    order(client, merchant, "PDV-1", "10.00", customer=CONTACTS)
    start = clock.now()
    frozen(start)
    challenge(client, merchant, "T1")
    early = sent_code(worker, sms)
    challenge(client, merchant, "T2")
    late = sent_code(worker, sms)
    frozen(start + timedelta(minutes=59))
    assert validate(client, merchant, early, "T1") is True
    frozen(start + timedelta(minutes=61))
    assert validate(client, merchant, late, "T2") is False


def test_sandbox_echoes_the_code(client, db, worker, sms):
    merchant = make_merchant(db, sandbox="true")
    order(client, merchant, "PDV-1", "10.00", customer=CONTACTS)
    answer = challenge(client, merchant, "T1")
    assert answer["Code"] == sent_code(worker, sms)
    assert validate(client, merchant, answer["Code"]) is True

    tenant_set(db, merchant, "sandbox", "false")
    assert challenge(client, merchant, "T2")["Code"] is None


def test_challenge_errors_are_bare(client, db):
    merchant = make_merchant(db)
    order(client, merchant, "PDV-1", "10.00", customer=CONTACTS)
    order(client, merchant, "PDV-2", "10.00", document=BIA)

    def post(document, body, validate=False):
        return client.post(challenge_path(document, validate), headers=merchant.headers, json=body)

    cases = [
        (post("39053344705", {"TransactionId": "T"}), 404, "CustomerNotFound"),
        (post("39053344705", {"TransactionId": "T", "Code": "1"}, True), 404, "CustomerNotFound"),
        (post("12345", {"TransactionId": "T"}), 400, "InvalidDocument"),
        (post(ANA, {"TransactionId": True}), 400, "InvalidRequest"),  # never a boolean
        (post(BIA, {"TransactionId": "T", "Phone": "12"}), 400, "InvalidPhone"),
        # Ana's phone cannot become Bia's.
        (post(BIA, {"TransactionId": "T", "Phone": PHONE}), 409, "ContactBelongsToAnotherCustomer"),
        (client.post(challenge_path(ANA), json={"TransactionId": "T"}), 401, "Unauthorized"),
    ]
    for response, status, code_name in cases:
        assert response.status_code == status, response.text
        body = response.json()
        assert body["Success"] is False and body["CodeName"] == code_name, body
        assert body["FriendlyErrorMessage"] and body["ErrorMessage"], body
        assert "Result" not in body and "HasError" not in body, body
        # In a challenge answer Code is the code sent to the customer: never an error number.
        assert body["Code"] is None and type(body["ErrorCode"]) is int, body
        assert body["SentBySMS"] is False and body["SentByEmail"] is False, body
