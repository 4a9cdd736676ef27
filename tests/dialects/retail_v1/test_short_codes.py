"""/member/shortCode: send (WhatsApp, else SMS, only with consent), get and verify."""

import re
from datetime import timedelta

from sqlalchemy import select

from fidelia.kit import clock
from fidelia.models import OutboxMessage
from tests.dialects.retail_v1.conftest import ANA, count, error, make_shop, ok, post, register

MEMBER = {"phoneNumber": ANA}


def short(client, shop, action, code=None, member=MEMBER):
    body = {"member": member, "action": action}
    if code is not None:
        body["shortCode"] = code
    return post(client, shop, "/member/shortCode", body)


def code_in(text):
    (found,) = re.findall(r"\b\d{6}\b", text)
    return found


def test_send_over_whatsapp_with_consent(client, db, graph, worker, sms):
    shop = make_shop(db)
    register(client, shop, allowedWhatsApp=True, allowedSMS=True)
    sent = ok(short(client, shop, "send"))["data"]
    assert sent["action"] == "send" and sent["sentVia"] == "whatsapp"
    assert sent["shortCode"] is None and sent["expiresOn"].endswith("Z")
    worker.run_once()
    (text,) = graph.texts_to(ANA)
    assert "Loja Centro" in text and "10 minutos" in text
    assert sms.sent == []
    code = code_in(text)
    assert ok(short(client, shop, "verify", code))["data"]["verified"] is True
    used = short(client, shop, "verify", code)  # single use
    error(used, 422, "4221061", "body.shortCode")
    # Delivered codes are not kept readable in the outbox.
    with db.session(readonly=True) as session:
        (row,) = session.scalars(select(OutboxMessage)).all()
        assert code not in str(row.payload)


def test_sms_without_whatsapp_consent_and_wrong_tries(client, db, worker, sms):
    shop = make_shop(db)
    register(client, shop, allowedSMS=True)
    assert ok(short(client, shop, "send"))["data"]["sentVia"] == "sms"
    worker.run_once()
    (message,) = sms.sent
    assert message["to"] == ANA
    code = code_in(message["text"])
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        error(short(client, shop, "verify", wrong), 422, "4221061", "body.shortCode")
    # Five wrong tries end the code, even the right one now fails (and looks the same).
    error(short(client, shop, "verify", code), 422, "4221061", "body.shortCode")
    error(short(client, shop, "verify"), 400, "4000002", "body.shortCode")


def test_no_consent_no_message(client, db):
    shop = make_shop(db)
    register(client, shop, allowedSMS=False)
    error(short(client, shop, "send"), 422, "4221060", "body.member")
    register(client, shop, email="only@example.com", phoneNumber=None)
    mail_only = short(client, shop, "send", member={"email": "only@example.com"})
    error(mail_only, 422, "4221060", "body.member")
    assert count(db, OutboxMessage) == 0
    error(
        short(client, shop, "send", member={"phoneNumber": "+5511900000000"}),
        400,
        "4001012",
        "body.member.phoneNumber",
    )


def test_get_expiry_and_a_new_code_voids_the_old(client, db, frozen):
    shop = make_shop(db)
    register(client, shop)
    start = clock.now()
    frozen(start)
    first = ok(short(client, shop, "get"))["data"]
    assert first["action"] == "get" and re.fullmatch(r"\d{6}", first["shortCode"])
    assert first["sentVia"] is None
    second = ok(short(client, shop, "get"))["data"]["shortCode"]
    if second != first["shortCode"]:
        error(short(client, shop, "verify", first["shortCode"]), 422, "4221061", "body.shortCode")
    frozen(start + timedelta(minutes=11))
    error(short(client, shop, "verify", second), 422, "4221061", "body.shortCode")
    frozen(start + timedelta(minutes=12))
    third = ok(short(client, shop, "get"))["data"]["shortCode"]
    assert ok(short(client, shop, "verify", third))["data"]["verified"] is True


def test_sending_is_limited_per_member(client, db):
    shop = make_shop(db)
    register(client, shop, allowedSMS=True)
    for _ in range(5):
        ok(short(client, shop, "send"))
    error(short(client, shop, "send"), 429, "429", None)
