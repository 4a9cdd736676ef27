"""The vendor's detailed public reference, example by example, sent as published (two
versions of it: one nests the member's fields in ``newMemberData`` and lists a sale's
payments as ``meansOfPayment``, the other writes them flat and as ``payments``). Only the
codes the server issues (confirmation codes) are captured from earlier answers. Each test
asserts the effect (members, balances, ledger), not only the status."""

from sqlalchemy import select

from fidelia.models import Consent, Customer, Event, LedgerEntry, LoyaltyPayment, Order
from tests.dialects.retail_v1.conftest import count, make_shop, ok, post
from tests.support.helpers import ledger_invariants

REGISTER_FLAT = {
    "phoneNumber": "1234567890",
    "email": "member@example.com",
    "firstName": "John",
    "lastName": "Doe",
    "allowedSMS": True,
    "allowedEmail": True,
    "termsOfUse": True,
    "gdpr": True,
    "birthday": "1990-01-01",
}
REGISTER_NESTED = {"newMemberData": dict(REGISTER_FLAT)}
UPDATE_OLDER = {
    "member": {"phoneNumber": "1234567890"},
    "newMemberData": {
        "phoneNumber": "1234567890",
        "email": "member@example.com",
        "firstName": "John",
        "lastName": "Doe",
        "allowedSMS": True,
        "allowedEmail": True,
        "termsOfUse": True,
        "gdpr": True,
        "birthday": "1990-01-01",
    },
}
UPDATE_NEWER = {
    "member": {"phoneNumber": "1234567890"},
    "newMemberData": {
        "email": "updated@example.com",
        "firstName": "UpdatedName",
        "lastName": "UpdatedLast",
        "allowedSMS": False,
        "allowedEmail": True,
        "termsOfUse": True,
        "gdpr": True,
        "birthday": "1992-05-12",
    },
}
PAY_WITH_CREDIT = {
    "member": {"phoneNumber": "5511122233"},
    "payment": {"action": "pay", "amount": 1500},
    "transaction": {
        "transactionId": "TX-LOYALTY-001",
        "dateTime": "2025-06-18T12:00:00Z",
        "totalAmount": 3000,
        "payments": [{"type": "CREDIT", "amount": 1500}, {"type": "CASH", "amount": 1500}],
        "items": [],
        "employee": "Cashier #1",
    },
}
PAY_WITH_POINTS = {
    "member": {"phoneNumber": "5511122233"},
    "payment": {"action": "pay", "amount": 300},
    "transaction": {
        "transactionId": "TX300POINTS-003",
        "dateTime": "2025-06-18T12:15:00Z",
        "totalAmount": 3000,
        "items": [
            {
                "lineId": "1",
                "code": "PRD001",
                "name": "Espresso Machine",
                "departmentCode": "APPLIANCES",
                "departmentName": "Home Appliances",
                "quantity": 1,
                "subtotal": 3000,
                "total": 3000,
                "tags": [],
            }
        ],
        "payments": [{"type": "POINTS", "amount": 300}, {"type": "CASH", "amount": 2700}],
        "employee": "Cashier #3",
    },
}
SALE_OLDER = {
    "member": {"phoneNumber": "1234567890"},
    "transaction": {
        "transactionId": "TX12345",
        "openTime": "2025-05-23T12:00:00Z",
        "totalAmount": 5000,
        "totalTaxAmount": 800,
        "totalGeneralDiscount": 500,
        "orderType": "dineIn",
        "items": [
            {
                "lineId": "1",
                "code": "PLU123",
                "name": "Burger",
                "departmentCode": "FOOD",
                "departmentName": "Main Dishes",
                "quantity": 2,
                "grossAmount": 3000,
                "netAmount": 2500,
                "action": "sale",
                "tags": ["combo"],
            },
            {
                "lineId": "2",
                "code": "PLU124",
                "name": "Fries",
                "departmentCode": "FOOD",
                "departmentName": "Sides",
                "quantity": 1,
                "grossAmount": 2000,
                "netAmount": 1500,
                "action": "sale",
                "tags": [],
            },
        ],
        # Our copy of the page breaks off inside this list: the rest of the bill in cash.
        "meansOfPayment": [{"type": "CASH", "amount": 5000}],
    },
}
DETAILS_OLDER = {
    "member": {"phoneNumber": "530229344"},
    "transaction": {
        "transactionId": "TX-DEMO-01",
        "dateTime": "2025-06-17T18:30:00Z",
        "totalAmount": 1500,
        "items": [
            {
                "lineId": "1",
                "code": "LATTE001",
                "name": "Latte",
                "departmentCode": "DRINKS",
                "departmentName": "Beverages",
                "quantity": 1,
                "subtotal": 1500,
                "total": 1500,
                "tags": [],
            }
        ],
        "payments": [{"type": "CASH", "amount": 1500}],
        "employee": "Demo Cashier",
    },
    "usedAssets": [],
}
EVENT_NEWER = {
    "member": {"phoneNumber": "1234567890"},
    "event": {
        "type": "signup",
        "subType": "web",
        "dateTime": "2025-06-23T13:29:39.487Z",
        "payload": {"campaign": "summer2025", "referrer": "social"},
        "tags": ["web", "referral"],
    },
}
EVENT_OLDER = {
    "member": {"phoneNumber": "1234567890"},
    "event": {
        "type": "string",
        "subType": "string",
        "dateTime": "2025-06-23T13:29:39.487Z",
        "payload": {},
        "tags": ["string"],
    },
}
SHORT_CODE = {"member": {"phoneNumber": "123456789"}, "action": "send"}


def no_warnings(body):
    assert "warnings" not in body, body["warnings"]
    return body


def test_register_flat_and_nested(client, db):
    shop = make_shop(db)
    flat = no_warnings(ok(post(client, shop, "/member/register", REGISTER_FLAT)))
    member = flat["data"]["member"]
    assert flat["member"] == member  # beside status too
    assert (member["phoneNumber"], member["email"]) == ("+551234567890", "member@example.com")
    assert (member["firstName"], member["birthday"]) == ("John", "1990-01-01")
    assert member["allowedSMS"] and member["allowedEmail"] and member["gdpr"]
    other = make_shop(db, slug="other")
    nested = no_warnings(ok(post(client, other, "/member/register", REGISTER_NESTED)))
    assert nested["member"]["lastName"] == "Doe" and nested["member"]["termsOfUse"] is True
    assert count(db, Customer) == 2
    assert count(db, Consent) == 8  # four consents, each recorded for each program


def test_update_older_and_newer(client, db):
    shop = make_shop(db)
    ok(post(client, shop, "/member/register", {"member": {"phoneNumber": "1234567890"}}))
    older = no_warnings(ok(post(client, shop, "/member/update", UPDATE_OLDER)))
    assert older["member"]["email"] == "member@example.com"
    assert older["member"]["birthday"] == "1990-01-01" and older["member"]["gdpr"] is True
    newer = no_warnings(ok(post(client, shop, "/member/update", UPDATE_NEWER)))
    assert newer["message"] == "Member updated successfully"
    assert newer["memberId"] == newer["data"]["memberId"] == older["member"]["memberId"]
    member = newer["data"]["member"]
    assert (member["email"], member["firstName"], member["lastName"]) == (
        "updated@example.com",
        "UpdatedName",
        "UpdatedLast",
    )
    assert (member["birthday"], member["allowedSMS"]) == ("1992-05-12", False)
    # Saved, not just answered: a fresh read and the database agree.
    again = ok(post(client, shop, "/member/details", {"member": {"email": "updated@example.com"}}))
    assert again["member"]["firstName"] == "UpdatedName"
    with db.session(readonly=True) as session:
        customer = session.scalars(select(Customer)).one()
        assert customer.first_name == "UpdatedName" and str(customer.birthday) == "1992-05-12"


def test_payments_as_published(client, db):
    shop = make_shop(db)
    ok(post(client, shop, "/member/register", {"member": {"phoneNumber": "5511122233"}}))
    ok(  # R$ 300: 300 points and R$ 15,00 of credit
        post(
            client,
            shop,
            "/transaction",
            {
                "member": {"phoneNumber": "5511122233"},
                "transaction": {"transactionId": "EARN-1", "totalAmount": 30_000},
            },
        )
    )
    # No payment.type: the transaction it comes with lists CREDIT for this amount.
    credit = no_warnings(ok(post(client, shop, "/payment", PAY_WITH_CREDIT)))
    assert credit["data"]["type"] == "CREDIT" and credit["newBalance"] == {
        "points": 300,
        "credit": 0,
    }
    assert credit["confirmationCode"] == credit["data"]["confirmationCode"]
    points = no_warnings(ok(post(client, shop, "/payment", PAY_WITH_POINTS)))
    assert points["data"]["type"] == "POINTS" and points["data"]["points"] == 30
    assert points["newBalance"] == {"points": 270, "credit": 0}
    # The published cancellation (its code captured), and the Payment object's variant with
    # a negative amount: the balance comes back once.
    cancel = {
        "member": {"phoneNumber": "5511122233"},
        "payment": {"action": "cancel", "confirmationCode": points["confirmationCode"]},
    }
    back = no_warnings(ok(post(client, shop, "/payment", cancel)))
    assert back["newBalance"] == {"points": 300, "credit": 0}
    negative = {
        "payment": {
            "action": "cancel",
            "confirmationCode": credit["confirmationCode"],
            "amount": -1000,
        }
    }
    assert ok(post(client, shop, "/payment", negative))["newBalance"] == {
        "points": 300,
        "credit": 1_500,
    }
    assert ok(post(client, shop, "/payment", cancel))["newBalance"]["points"] == 300
    assert count(db, LedgerEntry, LedgerEntry.kind == "reverse") == 2
    assert ledger_invariants(db) == []


def test_pay_then_submit_the_same_sale_charges_once(client, db):
    """The reference's flow: /payment for TX300POINTS-003, then /transaction for it listing
    the same POINTS line (no confirmation code): linked, not charged again."""
    shop = make_shop(db)
    ok(post(client, shop, "/member/register", {"member": {"phoneNumber": "5511122233"}}))
    ok(
        post(
            client,
            shop,
            "/transaction",
            {
                "member": {"phoneNumber": "5511122233"},
                "transaction": {"transactionId": "EARN-1", "totalAmount": 10_000},
            },
        )
    )
    paid = ok(post(client, shop, "/payment", PAY_WITH_POINTS))
    assert paid["newBalance"]["points"] == 70
    sale = {"member": PAY_WITH_POINTS["member"], "transaction": PAY_WITH_POINTS["transaction"]}
    done = no_warnings(ok(post(client, shop, "/transaction", sale)))
    (loyalty, cash) = done["payments"]
    assert loyalty["confirmationCode"] == paid["confirmationCode"] and loyalty["linked"] is True
    assert cash == {
        "type": "CASH",
        "amount": 2700,
        "points": None,
        "confirmationCode": None,
        "linked": False,
    }
    assert done["earned"] == {"points": 27, "credit": 135}  # on the R$ 27 paid in cash
    assert done["newBalance"] == {"points": 97, "credit": 635}
    assert count(db, LoyaltyPayment) == 1
    # Cancelling the sale gives the points back once, and takes back what it earned.
    undone = ok(
        post(client, shop, "/transaction/cancel", {"confirmationCode": done["confirmationCode"]})
    )
    assert [p["confirmationCode"] for p in undone["refundedPayments"]] == [paid["confirmationCode"]]
    assert undone["newBalance"] == {"points": 100, "credit": 500}
    cancel = {"payment": {"action": "cancel", "confirmationCode": paid["confirmationCode"]}}
    assert ok(post(client, shop, "/payment", cancel))["newBalance"]["points"] == 100
    assert ledger_invariants(db) == []


def test_sale_details_events_and_short_code_as_published(client, db):
    shop = make_shop(db)
    ok(post(client, shop, "/member/register", REGISTER_FLAT))
    sale = no_warnings(ok(post(client, shop, "/transaction", SALE_OLDER)))
    assert sale["earned"] == {"points": 50, "credit": 250}
    with db.session(readonly=True) as session:
        order = session.scalars(select(Order)).one()
        assert order.details["orderType"] == "dineIn"
        assert [p["type"] for p in order.details["payments"]] == ["CASH"]
    # The details example, with the member it names.
    ok(post(client, shop, "/member/register", {"member": {"phoneNumber": "530229344"}}))
    details = ok(post(client, shop, "/member/details", DETAILS_OLDER))
    assert details["member"]["phoneNumber"] == "+55530229344"
    assert details["assets"] == [] and "benefits" not in details
    assert "warnings" not in details  # an empty usedAssets says nothing
    member = ok(post(client, shop, "/member/details", {"member": {"phoneNumber": "1234567890"}}))
    assert (member["member"]["visit"], member["member"]["totalSpent"]) == (1, 5000)
    assert (member["member"]["points"], member["member"]["credit"]) == (50, 250)
    for body in (EVENT_NEWER, EVENT_OLDER):
        event = no_warnings(ok(post(client, shop, "/event", body)))
        assert event["eventId"] == event["data"]["eventId"]
    with db.session(readonly=True) as session:
        types = sorted(e.type for e in session.scalars(select(Event)))
        assert types == ["signup", "string"]
    # 123456789 has no WhatsApp/SMS consent on file: refused, nothing sent (the member
    # exists, the request's shape is right).
    ok(post(client, shop, "/member/register", {"member": {"phoneNumber": "123456789"}}))
    refused = post(client, shop, "/member/shortCode", SHORT_CODE)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "4221060"
