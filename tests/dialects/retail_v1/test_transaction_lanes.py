"""The retail transaction by the edge's lane (fidelia/edge.py ``Lane``,
fidelia/dialects/retail_v1/lanes.py), without FastAPI's layers for its common case: every
answer is the one the framework gives, byte for byte (status, headers, body), whatever the
request (what the lane does not take is left to the framework, whose ``RetailRoute``
answers validation errors in the door's format), the effects are the same, and the
metrics name the same route. The route is in a router included under ``/v1``: the lane is
built from the route as included, with every router's dependencies."""

import json

import pytest
from sqlalchemy import select

from fidelia.models import LedgerEntry, Order
from tests.dialects.retail_v1.conftest import ANA, BIA, headers, make_shop, register
from tests.support.lanes import answer, closed, counted, lane_of, served

URL = "/v1/transaction"
JSON = {"Content-Type": "application/json"}
# What differs between the two ways' sales: each its member, and each sale its code.
NEW = ("confirmationCode", "memberId")


@pytest.fixture
def framework(settings):
    with closed(settings) as client:
        yield client


def request(body, hdrs):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {"headers": hdrs, "content": content}


def both(client, framework, body, hdrs):
    """The answer through the lane, and the framework's to the same request after it."""
    lane = answer(client, "POST", URL, **request(body, hdrs))
    return lane, answer(framework, "POST", URL, **request(body, hdrs))


def tx(transaction_id, total=12_345, **fields):
    return {
        "transactionId": transaction_id,
        "dateTime": "2026-05-07T15:30:00Z",
        "totalAmount": total,
        "items": [{"code": "P1", "quantity": 1, "netAmount": total}],
        "payments": fields.pop("payments", [{"type": "CASH", "amount": total}]),
        **fields,
    }


def effects(db, way):
    """The orders and ledger entries of the sales whose id starts with ``way``, but their
    own ids, codes and times."""
    with db.session(readonly=True) as session:
        orders = {
            str(o.id): o
            for o in session.scalars(select(Order).where(Order.original_id.startswith(way)))
        }
        entries = sorted(
            (orders[e.source_id].original_id[1:], e.account, e.amount, e.kind)
            for e in session.scalars(select(LedgerEntry).where(LedgerEntry.source_type == "order"))
            if e.source_id in orders
        )
        return (
            sorted(
                (o.original_id[1:], o.state, o.total, o.earned_points, o.earned_cashback)
                for o in orders.values()
            ),
            entries,
        )


def test_the_transaction_by_the_lane_answers_as_the_framework(app, client, framework, db):
    shop = make_shop(db)
    ok = {**headers(shop.api_key), **JSON}
    register(client, shop, phoneNumber=ANA)
    register(client, shop, phoneNumber=BIA)
    sale = {"member": {"phoneNumber": ANA}, "transaction": tx("A-1")}
    refused = [
        ("no key", sale, {k: v for k, v in ok.items() if k != "x-api-key"}),
        ("empty key", sale, {**ok, "x-api-key": ""}),
        ("bad key", sale, {**ok, "x-api-key": "fk_live_nope"}),
        ("no terminal", sale, {k: v for k, v in ok.items() if k != "x-pos-id"}),
        ("blank terminal", sale, {**ok, "x-pos-id": " "}),
        ("no transaction", {"member": {"phoneNumber": ANA}}, ok),
        ("unknown member", {**sale, "member": {"phoneNumber": "+5511900000000"}}, ok),
        ("bad phone", {**sale, "member": {"phoneNumber": "12"}}, ok),
        (
            "points without member",
            {"transaction": tx("A-9", payments=[{"type": "POINTS", "amount": 100}])},
            ok,
        ),  # noqa: E501
        ("cancel without code", {"action": "cancel"}, ok),
        ("cancel unknown code", {"action": "cancel", "confirmationCode": "TX-NOPE"}, ok),
        ("negative total", {**sale, "transaction": tx("A-1", -5)}, ok),
        ("items not a list", {**sale, "transaction": {**tx("A-1"), "items": 5}}, ok),
        ("unknown action", {**sale, "action": "refund"}, ok),
        ("a list", [sale], ok),
        ("null", None, ok),
        ("malformed JSON", b"{nope", ok),
        ("no body", b"", ok),
        ("no content type", sale, headers(shop.api_key)),
        ("text", b"T-1", {**ok, "Content-Type": "text/plain"}),
        ("no key, bad body", b"[", {k: v for k, v in ok.items() if k != "x-api-key"}),
    ]
    for name, body, hdrs in refused:
        lane, via = both(client, framework, body, hdrs)
        assert lane == via, name
        assert lane[0] >= 400, name
    assert effects(db, "") == ([], [])  # nothing written

    # Each way its own member (ANA by the lane, BIA by the framework) and sale ids: the
    # same answers but for their own codes and ids, the same effects.
    def theirs(body):
        return json.loads(json.dumps(body).replace('"A-', '"B-').replace(ANA, BIA))

    steps = [
        ("earns", sale),
        ("replayed", sale),
        ("id reused", {**sale, "transaction": tx("A-1", 99_999)}),
        ("anonymous", {"transaction": tx("A-2", 5_000)}),
        ("pays with points", {**sale, "transaction": tx("A-3", 2_000, payments=[
            {"type": "POINTS", "amount": 500}, {"type": "CASH", "amount": 1_500}])}),
        ("more points than held", {**sale, "transaction": tx("A-4", 90_000, payments=[
            {"type": "POINTS", "amount": 90_000}])}),
    ]  # fmt: skip
    codes = {}
    for name, body in steps:
        lane = answer(client, "POST", URL, normal=NEW, **request(body, ok))
        via = answer(framework, "POST", URL, normal=NEW, **request(theirs(body), ok))
        assert (*lane[:2], lane[2].replace(b"A-", b"B-")) == via, name
    for way, member, prefix in [(client, ANA, "A-"), (framework, BIA, "B-")]:
        body = {"member": {"phoneNumber": member}, "transaction": tx(prefix + "1")}
        codes[prefix] = answer(way, "POST", URL, **request(body, ok))[2]
    cancels = [
        ("cancels", lambda code: {"action": "cancel", "confirmationCode": code}),
        ("cancels again", lambda code: {"action": "cancel", "confirmationCode": code}),
        ("cancel of another's", lambda code: {"action": "cancel", "confirmationCode": code,
                                              "member": {"phoneNumber": "+5511955555555"}}),
    ]  # fmt: skip
    for name, make in cancels:
        mine, their = (json.loads(codes[p])["data"]["confirmationCode"] for p in ("A-", "B-"))
        lane = answer(client, "POST", URL, normal=NEW, **request(make(mine), ok))
        via = answer(framework, "POST", URL, normal=NEW, **request(make(their), ok))
        assert (*lane[:2], lane[2].replace(b"A-", b"B-")) == via, name
    assert effects(db, "A-") == effects(db, "B-") != ([], [])

    # The other way's sale replays as it was, byte for byte.
    lane, via = both(client, framework, theirs(sale), ok)
    assert lane == via and lane[0] == 200

    # taken: the refusals the route's functions gave (key, blank header, member, phone,
    # transaction, confirmation code), each sale, cancellation and replay; left: a missing
    # header, and what the model or the content type refuse.
    route = lane_of(app, URL)
    assert (route.taken, route.left) == (20, 12)


def test_both_ways_count_under_the_route(app, client, framework, db):
    shop = make_shop(db)
    route = "/v1/transaction"  # its full template, both ways
    before = counted("retail", route, "POST", "2xx")
    for way, key in [(client, "A"), (framework, "B")]:
        body = {"transaction": tx(key)}
        assert answer(way, "POST", URL, **request(body, {**headers(shop.api_key), **JSON}))[0]
    assert counted("retail", route, "POST", "2xx") == before + 2


def test_the_limit_answers_as_the_framework(settings, db):
    limited = settings.model_copy(update={"rate_limit_retail": "2/minute"})
    with served(limited, lanes=False) as framework, served(limited, lanes=True) as client:
        shop = make_shop(db)
        body = {"member": {"phoneNumber": ANA}, "transaction": tx("T")}  # an unknown member
        hdrs = {**headers(shop.api_key), **JSON}
        answers = [both(client, framework, body, hdrs) for _ in range(3)]
    for lane, via in answers:
        assert lane == via
    assert [lane[0] for lane, _ in answers] == [400, 400, 429]
