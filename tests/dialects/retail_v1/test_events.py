"""/event: behavioural events, the earning rules they feed (per local day) and segments."""

from datetime import UTC, datetime, timedelta

from fidelia.models import Event
from tests.dialects.retail_v1.conftest import (
    ANA,
    add_rule,
    count,
    details,
    error,
    make_shop,
    ok,
    post,
    register,
)

MEMBER = {"phoneNumber": ANA}


def visit(client, shop, member=MEMBER, **event):
    return post(client, shop, "/event", {"member": member, "event": {"type": "visit", **event}})


def test_visit_rule_once_a_local_day(client, db, frozen):
    shop = make_shop(db)  # São Paulo, UTC-3
    register(client, shop)
    add_rule(db, shop, "visit", 5, per_day=1)
    frozen(datetime(2026, 5, 7, 12, 0, tzinfo=UTC))
    first = ok(visit(client, shop, subType="store", tags=["morning"], payload={"door": 2}))
    assert first["data"]["type"] == "visit" and first["data"]["pointsEarned"] == 5
    assert first["data"]["eventId"].isdigit()
    # 02:30 UTC on the 8th is still the 7th in São Paulo: no more points today.
    frozen(datetime(2026, 5, 8, 2, 30, tzinfo=UTC))
    assert ok(visit(client, shop))["data"]["pointsEarned"] == 0
    frozen(datetime(2026, 5, 8, 3, 30, tzinfo=UTC))  # 00:30 on the 8th there
    assert ok(visit(client, shop, type="VISIT"))["data"]["pointsEarned"] == 5
    assert details(client, shop, MEMBER)["member"]["balance"]["points"] == 10
    # Events of other types are recorded (segments read them) and earn nothing.
    assert ok(visit(client, shop, type="review"))["data"]["pointsEarned"] == 0
    assert count(db, Event) == 4


def test_event_refusals_and_anonymous(client, db):
    shop = make_shop(db)
    register(client, shop)
    add_rule(db, shop, "signup", 50)
    anonymous = post(client, shop, "/event", {"event": {"type": "signup"}})
    assert ok(anonymous)["data"]["pointsEarned"] == 0
    error(visit(client, shop, type="Not a type!"), 400, "4001005", "body.event.type")
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    error(visit(client, shop, dateTime=future), 400, "4001005", "body.event.dateTime")
    error(visit(client, shop, dateTime="yesterday"), 400, "4000002", "body.event.dateTime")
    unknown = visit(client, shop, member={"externalId": "CRM-404"})
    error(unknown, 400, "4001012", "body.member.externalId")
    error(post(client, shop, "/event", {"member": MEMBER}), 400, "4000002", "body.event")
    assert ok(post(client, shop, "/event", {"member": MEMBER, "event": {"type": "signup"}}))
    assert details(client, shop, MEMBER)["member"]["balance"]["points"] == 50
