"""What the guide leaves open, as a client written from it (or from the vendor's reference)
plausibly fills it in: the envelope on every endpoint, amounts in cents, identifiers as
numbers, aliases, defaults, and warnings instead of silently dropped fields."""

import pytest
from sqlalchemy import select

from fidelia.models import Consent, Customer, LedgerEntry, LoyaltyPayment, Order
from tests.dialects.retail_v1.conftest import (
    ANA,
    add_deal,
    count,
    details,
    error,
    make_shop,
    ok,
    post,
    register,
    sale,
)

MEMBER = {"phoneNumber": ANA}


def unknown(path):
    return {"path": path, "message": "unknown field ignored"}


def funded(client, db, **kw):
    """A shop and Ana with 400 points and R$ 20,00 of credit."""
    shop = make_shop(db, **kw)
    register(client, shop)
    ok(sale(client, shop, "T-0", 40_000, MEMBER))
    return shop


# -- 1. the envelope, and 6. warnings, on every endpoint -----------------------------------------


def test_every_endpoint_answers_fields_beside_status_and_names_unknown_fields(client, db):
    shop = funded(client, db)
    calls = [
        ("/member/register", {"member": {"phoneNumber": "11 91234-5678", "foo": 1}}, "member"),
        ("/member/update", {"member": {**MEMBER, "foo": 1}, "bar": 2}, "memberId"),
        ("/member/details", {"member": {**MEMBER, "foo": 1}}, "member"),
        ("/member/shortCode", {"member": {**MEMBER, "foo": 1}, "action": "get"}, "shortCode"),
        ("/event", {"member": {**MEMBER, "foo": 1}, "event": {"type": "visit"}}, "eventId"),
        (
            "/payment",
            {"member": {**MEMBER, "foo": 1}, "payment": {"type": "POINTS", "amount": 10}},
            "confirmationCode",
        ),
        (
            "/transaction",
            {
                "member": {**MEMBER, "foo": 1},
                "transaction": {"transactionId": "T-9", "totalAmount": 1},
            },
            "confirmationCode",
        ),
        ("/member/erase", {"member": {"phoneNumber": "11 91234-5678", "foo": 1}}, "erasedOn"),
    ]
    for path, body, field in calls:
        answer = ok(post(client, shop, path, body))
        assert answer[field] == answer["data"][field], path
        assert set(answer["data"]) - {"status"} <= set(answer), path
        expected = [unknown("body.member.foo")]
        if path == "/member/update":
            expected.append(unknown("body.bar"))
        assert sorted(answer["warnings"], key=str) == sorted(expected, key=str), path
    # The envelope's status stays "success" where data has a status of its own.
    paid = ok(post(client, shop, "/payment", {"member": MEMBER, "payment": {"amount": 10}}))
    assert paid["status"] == "success" and paid["data"]["status"] == "done"


def test_nested_unknown_fields_are_named_with_their_path(client, db):
    shop = funded(client, db)
    body = {
        "member": MEMBER,
        "transaction": {
            "transactionId": "T-1",
            "totalAmount": 1000,
            "currency": "BRL",
            "items": [{"code": "A", "netAmount": 1000, "colour": "red"}],
            "payments": [{"type": "CASH", "amount": 1000, "card": "visa"}],
        },
        "usedAssets": [],
        "loyaltyCard": "X",
    }
    answer = ok(post(client, shop, "/transaction", body))
    assert answer["warnings"] == [
        unknown("body.loyaltyCard"),
        unknown("body.transaction.currency"),
        unknown("body.transaction.items[0].colour"),
        unknown("body.transaction.payments[0].card"),
    ]
    twice = ok(
        post(
            client,
            shop,
            "/transaction",
            {
                "transaction": {
                    "transactionId": "T-2",
                    "totalAmount": 5,
                    "items": [{"netAmount": 5, "total": 7}],
                }
            },
        )
    )
    assert twice["warnings"] == [
        {
            "path": "body.transaction.items[0].total",
            "message": "another name for netAmount, given twice; ignored",
        }
    ]


# -- 3. amounts are in cents ---------------------------------------------------------------------


AMOUNT_FIELDS = [
    (
        "/transaction",
        lambda v: {"transaction": {"transactionId": "T-1", "totalAmount": v}},
        "body.transaction.totalAmount",
    ),
    (
        "/transaction",
        lambda v: {
            "transaction": {"transactionId": "T-1", "totalAmount": 100, "totalTaxAmount": v}
        },
        "body.transaction.totalTaxAmount",
    ),
    (
        "/transaction",
        lambda v: {
            "transaction": {"transactionId": "T-1", "totalAmount": 100, "items": [{"amount": v}]}
        },
        "body.transaction.items[0].amount",
    ),
    (
        "/transaction",
        lambda v: {
            "transaction": {"transactionId": "T-1", "totalAmount": 100, "items": [{"unitPrice": v}]}
        },
        "body.transaction.items[0].unitPrice",
    ),
    (
        "/transaction",
        lambda v: {
            "transaction": {
                "transactionId": "T-1",
                "totalAmount": 100,
                "payments": [{"type": "CASH", "amount": v}],
            }
        },
        "body.transaction.payments[0].amount",
    ),
    (
        "/transaction",
        lambda v: {
            "transaction": {
                "transactionId": "T-1",
                "totalAmount": 100,
                "meansOfPayment": [{"type": "CASH", "amount": v}],
            }
        },
        "body.transaction.meansOfPayment[0].amount",
    ),
    (
        "/payment",
        lambda v: {"member": MEMBER, "payment": {"type": "POINTS", "amount": v}},
        "body.payment.amount",
    ),
    (
        "/member/details",
        lambda v: {"member": MEMBER, "transaction": {"transactionId": "P", "totalAmount": v}},
        "body.transaction.totalAmount",
    ),
]


@pytest.mark.parametrize("value", [100.0, 100.5, "100.00", "100,00", "R$ 100", True, False, 1e3])
def test_amounts_in_reais_are_refused_saying_cents(client, db, value):
    shop = funded(client, db)
    for path, body, where in AMOUNT_FIELDS:
        refused = error(post(client, shop, path, body(value)), 400, "4001004", where)
        assert "cents" in refused["message"], (path, refused)
    # Nothing was recorded or charged.
    assert count(db, Order) == 1 and count(db, LoyaltyPayment) == 0


def test_whole_amounts_as_numbers_or_digit_strings(client, db):
    shop = funded(client, db)
    done = ok(
        post(
            client,
            shop,
            "/transaction",
            {"member": MEMBER, "transaction": {"transactionId": "T-1", "totalAmount": "10000"}},
        )
    )
    assert done["totalAmount"] == 10_000 and done["earned"]["points"] == 100


# -- 7. identifiers as numbers ---------------------------------------------------------------------


def test_identifiers_may_be_numbers_but_not_booleans(client, db):
    shop = funded(client, db)
    body = {
        "member": {"phoneNumber": 11987654321},
        "transaction": {
            "transactionId": 1001,
            "totalAmount": 1000,
            "items": [{"lineId": 1, "code": 789, "departmentCode": 5, "netAmount": 1000}],
        },
    }
    done = ok(post(client, shop, "/transaction", body))
    assert done["transactionId"] == "1001" and "warnings" not in done
    # The same sale again with the ids as strings is the same request: replayed.
    again = {
        "member": {"phoneNumber": "11987654321"},
        "transaction": {
            "transactionId": "1001",
            "totalAmount": 1000,
            "items": [{"lineId": "1", "code": "789", "departmentCode": "5", "netAmount": 1000}],
        },
    }
    assert ok(post(client, shop, "/transaction", again)) == done
    assert count(db, Order) == 2
    ok(post(client, shop, "/member/update", {"member": {**MEMBER, "externalId": 4242}}))
    assert details(client, shop, {"externalId": 4242})["member"]["externalId"] == "4242"
    code = done["confirmationCode"]
    for bad in (True, 1.5):
        bad_id = {"transaction": {"transactionId": bad, "totalAmount": 1}}
        error(
            post(client, shop, "/transaction", bad_id),
            400,
            "4000002",
            "body.transaction.transactionId",
        )
    error(
        post(client, shop, "/member/details", {"member": {"externalId": False}}),
        400,
        "4000002",
        "body.member.externalId",
    )
    assert ok(post(client, shop, "/transaction/cancel", {"confirmationCode": code}))["status"]


def test_short_code_as_a_number_keeps_its_zeros(client, db):
    shop = funded(client, db)
    got = ok(post(client, shop, "/member/shortCode", {"member": MEMBER, "action": "get"}))
    code = got["shortCode"]
    verify = {"member": MEMBER, "action": "verify", "shortCode": int(code)}
    assert ok(post(client, shop, "/member/shortCode", verify))["verified"] is True


# -- 5. defaults -----------------------------------------------------------------------------------


def test_short_code_without_action_is_sent(client, db, sms):
    shop = make_shop(db)
    register(client, shop, allowedSMS=True)
    sent = ok(post(client, shop, "/member/shortCode", {"member": MEMBER}))
    assert sent["action"] == "send" and sent["sentVia"] == "sms"


def test_default_payment_type_is_a_merchant_setting(client, db):
    shop = funded(client, db)
    points = ok(post(client, shop, "/payment", {"member": MEMBER, "payment": {"amount": 100}}))
    assert points["type"] == "POINTS" and points["newBalance"] == {"points": 390, "credit": 2_000}
    credit_shop = funded(client, db, slug="credito", retail_default_payment_type="credit")
    credit = ok(
        post(client, credit_shop, "/payment", {"member": MEMBER, "payment": {"amount": 100}})
    )
    assert credit["type"] == "CREDIT" and credit["newBalance"] == {"points": 400, "credit": 1_900}
    # An explicit type always wins; a negative amount is not a refund.
    explicit = {"member": MEMBER, "payment": {"type": "points", "amount": 100}}
    assert ok(post(client, credit_shop, "/payment", explicit))["type"] == "POINTS"
    negative = {"member": MEMBER, "payment": {"amount": -100}}
    error(post(client, shop, "/payment", negative), 400, "4001004", "body.payment.amount")


def test_transaction_cancel_endpoint(client, db):
    shop = funded(client, db)
    done = ok(sale(client, shop, "T-1", 10_000, MEMBER))
    body = {"confirmationCode": done["confirmationCode"]}
    undone = ok(post(client, shop, "/transaction/cancel", body))
    assert undone["status"] == "success" and undone["data"]["status"] == "cancelled"
    assert undone["reversed"] == {"points": 100, "credit": 500}
    again = ok(post(client, shop, "/transaction", {"action": "cancel", **body}))
    assert again["reversed"] == {"points": 0, "credit": 0}
    error(post(client, shop, "/transaction/cancel", {}), 400, "4000002", "body.confirmationCode")


@pytest.mark.parametrize("alias", ["birthday", "birthDate", "birth_date", "dateOfBirth"])
def test_birthday_aliases(client, db, alias):
    shop = make_shop(db)
    member = register(client, shop, **{alias: "1990-05-07"})
    assert member["birthday"] == "1990-05-07"
    bad = post(client, shop, "/member/update", {"member": {**MEMBER, alias: "07/05/1990"}})
    error(bad, 400, "4001003", f"body.member.{alias}")


# -- 6. consents and items by other names ----------------------------------------------------------


@pytest.mark.parametrize(
    "consents",
    [
        {"allowedSMS": True, "gdpr": True, "termsOfUse": True, "allowedEmail": False},
        {"sms": True, "GDPR": "true", "terms": True, "email": False},
        [
            {"type": "allowedSMS", "granted": True},
            {"type": "gdpr", "granted": True},
            {"name": "termsOfUse", "value": True},
            {"type": "allowedEmail", "granted": False},
        ],
        ["allowedSMS", "gdpr", "termsOfUse", {"type": "email", "accepted": False}],
    ],
)
def test_nested_consents_are_recorded(client, db, consents):
    shop = make_shop(db)
    answer = ok(
        post(client, shop, "/member/register", {"member": {**MEMBER, "consents": consents}})
    )
    member = answer["member"]
    assert (member["allowedSMS"], member["gdpr"], member["termsOfUse"]) == (True, True, True)
    assert member["allowedEmail"] is False and "warnings" not in answer
    with db.session(readonly=True) as session:
        rows = {(c.kind, c.granted) for c in session.scalars(select(Consent))}
    assert rows == {("sms", True), ("gdpr", True), ("terms", True), ("email", False)}


def test_unknown_or_contradicting_consents(client, db):
    shop = make_shop(db)
    answer = ok(
        post(
            client,
            shop,
            "/member/register",
            {"member": {**MEMBER, "consents": {"gdpr": True, "pushNotifications": True}}},
        )
    )
    assert answer["warnings"] == [
        {
            "path": "body.member.consents.pushNotifications",
            "message": "unknown consent 'pushNotifications' ignored",
        }
    ]
    for bad in (5, "gdpr", [7]):
        wrong = {"member": {**MEMBER, "consents": bad}}
        path = "body.member.consents" + ("[0]" if bad == [7] else "")
        error(post(client, shop, "/member/update", wrong), 400, "4000002", path)
    clash = {"member": {**MEMBER, "gdpr": True, "consents": {"gdpr": False}}}
    error(post(client, shop, "/member/update", clash), 400, "4000002", "body.member.consents.gdpr")
    with db.session(readonly=True) as session:
        assert [(c.kind, c.granted) for c in session.scalars(select(Consent))] == [("gdpr", True)]


def test_item_aliases_feed_the_deals(client, db):
    shop = funded(client, db)
    add_deal(db, shop, "10% off coffee", "percent", 1_000, item_code="CAFE")
    add_deal(db, shop, "R$ 5 off bakery", "fixed", 500, department_code="PADARIA", min_total=0)
    items = [
        {"lineId": 1, "itemCode": "CAFE", "unitPrice": 1_000, "quantity": 2},
        {"lineId": 2, "sku": "PAO", "department": "PADARIA", "amount": 800},
    ]
    done = ok(sale(client, shop, "T-1", 2_800, MEMBER, items=items))
    assert "warnings" not in done
    assert sorted(d["discountAmount"] for d in done["appliedDeals"]) == [-500, -200]
    assert done["amountToPay"] == 2_100
    with db.session(readonly=True) as session:
        order = session.scalars(select(Order).where(Order.original_id == "T-1")).one()
        assert [i["code"] for i in order.details["items"]] == ["CAFE", "PAO"]


def test_update_applies_new_member_data(client, db):
    shop = make_shop(db)
    register(client, shop, email="ana@example.com")
    body = {
        "member": {"email": "ana@example.com"},
        "newMemberData": {
            "phoneNumber": "11 91234-5678",
            "firstName": "Ana",
            "dateOfBirth": "1990-05-07",
        },
    }
    answer = ok(post(client, shop, "/member/update", body))
    assert answer["member"]["phoneNumber"] == "+5511912345678"
    with db.session(readonly=True) as session:
        customer = session.scalars(select(Customer)).one()
        assert customer.first_name == "Ana" and str(customer.birthday) == "1990-05-07"
    # The old phone no longer finds her; the new one does.
    error(
        post(client, shop, "/member/details", {"member": MEMBER}),
        400,
        "4001012",
        "body.member.phoneNumber",
    )
    assert details(client, shop, {"phoneNumber": "+5511912345678"})["member"]["firstName"] == "Ana"
    taken = {"member": {"email": "ana@example.com"}, "newMemberData": {"email": "ANA@example.com"}}
    assert ok(post(client, shop, "/member/update", taken))["member"]["email"] == "ana@example.com"


def test_visits_and_total_spent_come_from_the_sales(client, db):
    shop = funded(client, db)  # one sale of R$ 400
    ok(sale(client, shop, "T-1", 10_000, MEMBER, payments=[{"type": "POINTS", "amount": 1_000}]))
    cancelled = ok(sale(client, shop, "T-2", 5_000, MEMBER))
    ok(
        post(
            client, shop, "/transaction/cancel", {"confirmationCode": cancelled["confirmationCode"]}
        )
    )
    member = details(client, shop, MEMBER)["member"]
    assert member["visit"] == 2
    assert member["totalSpent"] == 40_000 + 9_000  # money only: not the points, not T-2
    assert count(db, LedgerEntry, LedgerEntry.kind == "earn") >= 4
