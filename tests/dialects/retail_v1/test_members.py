"""/member/register, /member/update, /member/details and /member/erase."""

from datetime import timedelta

from sqlalchemy import select

from fidelia.kit import clock
from fidelia.models import Consent, Customer, CustomerIdentifier
from tests.dialects.retail_v1.conftest import (
    ANA,
    BIA,
    add_deal,
    add_segment,
    add_voucher,
    count,
    details,
    error,
    make_shop,
    ok,
    post,
    register,
    sale,
)
from tests.support.helpers import generate_pin, ledger_invariants, send_whatsapp

EMPTY_PAGE = {"page": 1, "pageSize": 50, "total": 0, "hasMore": False}


def test_register_and_details(client, db):
    shop = make_shop(db)
    member = register(
        client,
        shop,
        phoneNumber="11 98765-4321",  # national, read in the merchant's country
        email="Ana@Example.com",
        externalId="CRM-1",
        firstName="Ana",
        lastName="Souza",
        birthday="1990-05-07",
        allowedSMS=True,
        allowedEmail=False,
        termsOfUse=True,
        gdpr=True,
    )
    assert member["phoneNumber"] == ANA
    assert member["email"] == "ana@example.com"
    assert member["externalId"] == "CRM-1"
    assert len(member["membershipKey"]) == 12 and member["membershipKey"].isdigit()
    assert (member["firstName"], member["lastName"], member["birthday"]) == (
        "Ana",
        "Souza",
        "1990-05-07",
    )
    assert (member["allowedSMS"], member["allowedEmail"], member["allowedWhatsApp"]) == (
        True,
        False,
        False,
    )
    assert member["termsOfUse"] is True and member["gdpr"] is True
    consents = {c["type"]: c for c in member["consents"]}
    assert set(consents) == {"allowedSMS", "allowedEmail", "termsOfUse", "gdpr"}
    assert consents["allowedEmail"]["granted"] is False
    assert consents["gdpr"]["updatedOn"].endswith("Z")
    assert member["createdOn"].endswith("Z")
    assert member["balance"] == {"points": 0, "credit": 0}
    assert member["pointsValue"] == 0
    assert (member["status"], member["points"], member["credit"]) == ("active", 0, 0)
    assert (member["visit"], member["totalSpent"]) == (0, 0)
    # Any identifier finds the same member, with the same answer; active assets by default.
    for key in ("phoneNumber", "email", "membershipKey", "externalId"):
        data = details(client, shop, {key: member[key]})
        assert data == {"member": member, "assets": [], "pagination": EMPTY_PAGE}, key
    assert details(client, shop, {"email": member["email"]}, x_return_assets="false") == {
        "member": member
    }


def test_register_refusals(client, db):
    shop = make_shop(db)
    register(client, shop, email="ana@example.com")
    again = post(client, shop, "/member/register", {"member": {"phoneNumber": ANA}})
    error(again, 409, "4091013", "body.member.phoneNumber")
    by_mail = post(
        client,
        shop,
        "/member/register",
        {"member": {"phoneNumber": BIA, "email": "ANA@example.com"}},
    )
    error(by_mail, 409, "4091013", "body.member.email")
    birthday = post(
        client, shop, "/member/register", {"member": {"phoneNumber": BIA, "birthday": "07/05/1990"}}
    )
    error(birthday, 400, "4001003", "body.member.birthday")
    future = post(
        client, shop, "/member/register", {"member": {"phoneNumber": BIA, "birthday": "2999-01-01"}}
    )
    error(future, 400, "4001003", "body.member.birthday")
    nothing = post(client, shop, "/member/register", {"member": {"firstName": "Bia"}})
    error(nothing, 400, "4001010", "body.member")
    bad = post(client, shop, "/member/register", {"member": {"phoneNumber": "+55 11"}})
    error(bad, 400, "1001", "body.member.phoneNumber")
    assert count(db, Customer) == 1  # refusals leave nothing behind


def test_update_profile_identifiers_and_consents(client, db, frozen):
    shop = make_shop(db)
    start = clock.now()
    frozen(start)
    ana = register(client, shop, email="ana@example.com", allowedSMS=True, firstName="Ana")
    register(client, shop, phoneNumber=BIA, email="bia@example.com")
    frozen(start + timedelta(days=3))
    body = {
        "member": {
            "phoneNumber": ANA,
            "email": "ana.souza@example.com",
            "lastName": "Souza",
            "allowedSMS": False,
            "allowedWhatsApp": True,
        }
    }
    updated = ok(post(client, shop, "/member/update", body))["data"]["member"]
    assert updated["memberId"] == ana["memberId"]
    assert updated["email"] == "ana.souza@example.com"
    assert (updated["firstName"], updated["lastName"]) == ("Ana", "Souza")
    assert updated["allowedSMS"] is False and updated["allowedWhatsApp"] is True
    consents = {c["type"]: c for c in updated["consents"]}
    assert (
        consents["allowedSMS"]["updatedOn"]
        != {c["type"]: c for c in ana["consents"]}["allowedSMS"]["updatedOn"]
    )
    # The old e-mail no longer finds her; the history of consents is kept.
    old = post(client, shop, "/member/details", {"member": {"email": "ana@example.com"}})
    error(old, 400, "4001012", "body.member.email")
    assert count(db, Consent, Consent.customer_id == int(ana["memberId"])) == 3
    # Someone else's e-mail, or an unknown member, is refused.
    taken = {"member": {"phoneNumber": ANA, "email": "bia@example.com"}}
    error(post(client, shop, "/member/update", taken), 409, "4091014", "body.member.email")
    unknown = {"member": {"phoneNumber": "+5511900001111", "firstName": "X"}}
    error(post(client, shop, "/member/update", unknown), 400, "4001012", "body.member.phoneNumber")


def test_same_person_across_doors(client, db, settings):
    """The bot's customer (known by 'whatsapp') is the member found by phone here, with the
    same points; a member registered here is the POS door's customer by e-mail."""
    shop = make_shop(db, points_per_pin=7)
    send_whatsapp(
        client, settings, ANA, f"Quiero activar mi PIN: {generate_pin(client, shop.api_key)}"
    )
    send_whatsapp(client, settings, ANA, "Ana")
    member = details(client, shop, {"phoneNumber": ANA})["member"]
    assert member["balance"]["points"] == 7
    assert member["phoneNumber"] == ANA
    error(
        post(client, shop, "/member/register", {"member": {"phoneNumber": ANA}}),
        409,
        "4091013",
        "body.member.phoneNumber",
    )
    body = {"member": {"phoneNumber": ANA, "email": "ana@example.com", "firstName": "Ana"}}
    ok(post(client, shop, "/member/update", body))
    assert count(db, Customer) == 1
    # The POS door sees the same customer and balance, by the e-mail given here.
    pos = client.post(
        "/v1/pvt/POS/rewards/available",
        headers=shop.pos,
        json={"CustomerId": "ana@example.com", "PurchaseValue": 10},
    )
    assert pos.status_code == 200, pos.text
    assert pos.json()["Customer"]["Id"] == int(member["memberId"])
    assert pos.json()["AvailablePoints"] == 7


def test_assets_in_details(client, db, frozen):
    shop = make_shop(db)
    start = clock.now()
    frozen(start)
    ana = register(client, shop)
    member_id = ana["memberId"]
    soon = add_voucher(
        db, shop, "SOON-1", 500, member_id, valid_until=start + timedelta(days=2), benefit="R$ 5"
    )
    later = add_voucher(db, shop, "LATER-1", 1000, member_id, valid_until=start + timedelta(days=9))
    forever = add_voucher(db, shop, "FOREVER", 0, member_id, benefit="Café grátis", max_uses=3)
    add_voucher(db, shop, "USED-1", 200, member_id)
    add_voucher(db, shop, "OLD-1", 200, member_id, valid_until=start + timedelta(hours=1))
    add_voucher(db, shop, "NEXT-1", 200, member_id, valid_from=start + timedelta(days=1))
    add_voucher(db, shop, "SOMEONE", 200)  # a campaign code: not her asset
    ok(sale(client, shop, "T-USE", 5000, {"phoneNumber": ANA}, usedAssets=[{"key": "used-1"}]))
    frozen(start + timedelta(hours=2))
    member = {"phoneNumber": ANA}
    active = details(client, shop, member, x_return_assets="active")
    # No header, or "true": the active ones (the vendor's reference's default).
    assert details(client, shop, member) == active
    assert details(client, shop, member, x_return_assets="true") == active
    assert "assets" not in details(client, shop, member, x_return_assets="none")
    assert [a["key"] for a in active["assets"]] == [soon, later, forever]
    assert active["pagination"] == {"page": 1, "pageSize": 50, "total": 3, "hasMore": False}
    first = active["assets"][0]
    assert first == {
        "key": "SOON-1",
        "name": "R$ 5",
        "type": "voucher",
        "status": "active",
        "redeemable": True,
        "value": 500,
        "benefit": "R$ 5",
        "campaign": None,
        "validFrom": None,
        "validUntil": (start + timedelta(days=2)).replace(microsecond=0).isoformat()[:19] + "Z",
        "usesLeft": 1,
        "maxUses": 1,
    }
    assert active["assets"][2]["usesLeft"] == 3
    inactive = details(client, shop, member, x_return_assets="INACTIVE")
    assert {a["key"]: a["status"] for a in inactive["assets"]} == {
        "USED-1": "used",
        "OLD-1": "expired",
        "NEXT-1": "scheduled",
    }
    every = details(
        client, shop, member, x_return_assets="all", pagination={"page": 2, "pageSize": 4}
    )
    assert len(every["assets"]) == 2
    assert every["pagination"] == {"page": 2, "pageSize": 4, "total": 6, "hasMore": False}
    wrong = post(client, shop, "/member/details", {"member": member}, **{"x-return-assets": "x"})
    error(wrong, 400, "4000002", "header.x-return-assets")


def test_benefits_preview_matches_the_sale(client, db):
    shop = make_shop(db)
    register(client, shop)
    register(client, shop, phoneNumber=BIA)
    vip = add_segment(db, shop, "VIP", {"event_type": "visit", "min_count": 1})
    add_deal(db, shop, "10% off", "percent", 1000)
    add_deal(db, shop, "Coffee R$ 3", "fixed", 300, item_code="CAFE", segment_id=vip)
    add_deal(db, shop, "Bonus 50", "points", 50, min_total=10_000)
    ok(post(client, shop, "/event", {"member": {"phoneNumber": ANA}, "event": {"type": "visit"}}))
    open_deals = details(client, shop, {"phoneNumber": ANA}, x_return_benefits="true")["benefits"]
    assert [(b["name"], b["discountAmount"]) for b in open_deals] == [
        ("10% off", None),
        ("Coffee R$ 3", None),
        ("Bonus 50", None),
    ]
    assert open_deals[1]["conditions"] == {
        "minTotal": 0,
        "itemCode": "CAFE",
        "departmentCode": None,
    }
    # Bia is not in the segment: no coffee deal for her.
    bia = details(client, shop, {"phoneNumber": BIA}, x_return_benefits="true")["benefits"]
    assert [b["name"] for b in bia] == ["10% off", "Bonus 50"]
    basket = {
        "transactionId": "T-1",
        "totalAmount": 12_000,
        "items": [{"code": "CAFE", "netAmount": 800}, {"code": "PAO", "netAmount": 11_200}],
    }
    preview = details(
        client, shop, {"phoneNumber": ANA}, x_return_benefits="true", transaction=basket
    )["benefits"]
    assert [(b["key"], b["discountAmount"], b["bonusPoints"]) for b in preview] == [
        ("DEAL-1", -1200, 0),
        ("DEAL-2", -300, 0),
        ("DEAL-3", 0, 50),
    ]
    done = ok(sale(client, shop, "T-1", 12_000, {"phoneNumber": ANA}, items=basket["items"]))
    assert [
        (d["key"], d["discountAmount"], d["bonusPoints"]) for d in done["data"]["appliedDeals"]
    ] == [(b["key"], b["discountAmount"], b["bonusPoints"]) for b in preview]


def test_erase(client, db):
    shop = make_shop(db)
    ana = register(client, shop, email="ana@example.com", birthday="1990-05-07", firstName="Ana")
    ok(sale(client, shop, "T-1", 10_000, {"phoneNumber": ANA}))
    erased = ok(post(client, shop, "/member/erase", {"member": {"email": "ana@example.com"}}))
    assert erased["data"]["memberId"] == ana["memberId"]
    assert erased["data"]["erasedOn"].endswith("Z")
    gone = post(client, shop, "/member/details", {"member": {"phoneNumber": ANA}})
    error(gone, 400, "4001012", "body.member.phoneNumber")
    twice = post(client, shop, "/member/erase", {"member": {"email": "ana@example.com"}})
    error(twice, 400, "4001012", "body.member.email")
    with db.session(readonly=True) as session:
        customer = session.get_one(Customer, int(ana["memberId"]))
        assert customer.name is None and customer.birthday is None and customer.erased_at
        assert not session.scalars(
            select(CustomerIdentifier).where(CustomerIdentifier.customer_id == customer.id)
        ).all()
    assert ledger_invariants(db) == []
    # The phone is free again: registering it makes a new member.
    assert register(client, shop)["memberId"] != ana["memberId"]
