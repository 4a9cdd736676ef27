"""The POS order by the edge's lane (fidelia/edge.py ``Lane``, fidelia/dialects/pdv/lanes.py),
without FastAPI's layers for its common case: every answer is the one the framework gives,
byte for byte (status, headers, body), whatever the request (what the lane does not take, a
browser's with an ``Origin`` included, is left to the framework), the effects are the
same, and the metrics name the same route."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from fidelia.models import LedgerEntry, Order
from tests.dialects.pdv.conftest import ANA, ORDERS, basic, make_merchant, tenant_set, wallet
from tests.support.lanes import answer, closed, counted, json_body, lane_of, served

POS = "https://pos.example"
JSON = {"Content-Type": "application/json"}
T0 = datetime(2026, 5, 7, 15, 30, tzinfo=UTC)


@pytest.fixture
def framework(settings):
    with closed(settings) as client:
        yield client


def both(client, framework, lane_body, framework_body=None, headers=None, normal=()):
    """The answer through the lane to ``lane_body``, and the framework's to
    ``framework_body`` (the same, unless given) after it."""
    request = {"headers": headers or {}}
    lane = answer(client, "POST", ORDERS, normal=normal, **_with(lane_body, request))
    theirs = lane_body if framework_body is None else framework_body
    return lane, answer(framework, "POST", ORDERS, normal=normal, **_with(theirs, request))


def _with(body, request):
    if isinstance(body, bytes):
        return {**request, "content": body}
    return {**request, "content": json_body(body)["content"]}


def orders(db):
    """What each order holds, but its own id, OriginalId and times."""
    with db.session(readonly=True) as session:
        return [
            (
                o.customer_id,
                o.state,
                o.status_text,
                o.total,
                o.coupon,
                o.earned_points,
                o.earned_cashback,
                o.details,
            )
            for o in session.scalars(select(Order).order_by(Order.id))
        ]


def credits(db, way):
    """The ledger entries of the orders whose OriginalId starts with ``way``."""
    with db.session(readonly=True) as session:
        ids = {
            str(o.id): o.original_id[2:]
            for o in session.scalars(select(Order).where(Order.original_id.startswith(way)))
        }
        return sorted(
            (ids[e.source_id], e.account, e.amount, e.kind)
            for e in session.scalars(select(LedgerEntry).where(LedgerEntry.source_type == "order"))
            if e.source_id in ids
        )


def test_the_order_by_the_lane_answers_as_the_framework(app, client, framework, db, frozen):
    frozen(T0)
    merchant = make_merchant(db)
    tenant_set(db, merchant, "cors_origins", POS)
    json_type = {**merchant.headers, **JSON}
    sale = {
        "OriginalId": "A-1",
        "OrderTotal": "100.00",
        "IsCompleted": True,
        "OrderPlacementDate": "2026-05-07T12:00:00-03:00",
        "Customer": {"Document": ANA, "Name": "Ana"},
        "Products": [{"OriginalId": "P1", "Quantity": 2, "Value": "50.00"}],
        "PaymentMethod": {"Type": "card"},
    }
    refused = [
        ("no credentials", sale, JSON),
        ("bad credentials", sale, {**JSON, **basic("ftk_x", "k")}),
        ("not Basic", sale, {**JSON, "Authorization": "Bearer x"}),
        ("bad date", {**sale, "OrderPlacementDate": "yesterday"}, json_type),
        ("date without offset", {**sale, "OrderCompletedDate": "2026-05-07T12:00:00"}, json_type),
        ("bad document", {**sale, "Customer": {"Document": "123"}}, json_type),
        ("too many decimals", {**sale, "OrderTotal": "10.005"}, json_type),
        ("no total", {"OriginalId": "A-1"}, json_type),
        ("empty id", {**sale, "OriginalId": ""}, json_type),
        ("total not a number", {**sale, "OrderTotal": "abc"}, json_type),
        ("a list", [sale], json_type),
        ("null", None, json_type),
        ("malformed JSON", b"{nope", json_type),
        ("no body", b"", json_type),
        ("no content type", sale, merchant.headers),
        ("text", b"A-1", {**merchant.headers, "Content-Type": "text/plain"}),
        ("browser, no credentials", sale, {**JSON, "Origin": POS}),
    ]
    for name, body, headers in refused:
        lane, via = both(client, framework, body, headers=headers)
        assert lane == via, name
        assert lane[0] >= 400, name
    assert orders(db) == [] and credits(db, "") == []  # nothing written

    # An order each way (its own OriginalId): the same answer but for its own numbers, the
    # same effects; then each one sent again (an update), and completions of pending ones.
    normal = ("Id", "OriginalId")
    steps = [
        ("complete", sale, {**sale, "OriginalId": "B-1"}),
        ("again", sale, {**sale, "OriginalId": "B-1"}),
        ("pending", {**sale, "OriginalId": "A-2", "IsCompleted": False},
         {**sale, "OriginalId": "B-2", "IsCompleted": False}),
        ("completed", {**sale, "OriginalId": "A-2", "OrderStatus": 5},
         {**sale, "OriginalId": "B-2", "OrderStatus": 5}),
        ("cancelled", {**sale, "OriginalId": "A-3", "IsCancelledOrReturned": True},
         {**sale, "OriginalId": "B-3", "IsCancelledOrReturned": True}),
        ("no customer", {"OriginalId": "A-4", "OrderTotal": 5, "IsCompleted": True},
         {"OriginalId": "B-4", "OrderTotal": 5, "IsCompleted": True}),
        ("lower-cased", {k.lower(): v for k, v in {**sale, "OriginalId": "A-5"}.items()},
         {k.lower(): v for k, v in {**sale, "OriginalId": "B-5"}.items()}),
    ]  # fmt: skip
    for name, mine, theirs in steps:
        lane, via = both(client, framework, mine, theirs, headers=json_type, normal=normal)
        assert lane == via, name
    made = orders(db)
    assert made[0::2] == made[1::2] and len(made) == 10  # the same, order by order
    assert credits(db, "A-") == credits(db, "B-") != []
    assert wallet(db, merchant)[0] == 600  # 100 points for each completed order, each way

    # The same order sent again is the same answer, whichever way came first; a browser's
    # request (Origin) goes through the framework's CORS either way.
    for name, headers in [
        ("replayed", json_type),
        ("browser", {**json_type, "Origin": POS}),
        ("browser elsewhere", {**json_type, "Origin": "https://x"}),
    ]:
        lane, via = both(client, framework, {**sale, "OriginalId": "B-1"}, headers=headers)
        assert lane == via, name
        assert (("access-control-allow-origin", POS) in lane[1]) == (name == "browser"), name
    assert len(orders(db)) == 10

    # taken: the refusals the route's functions gave (credentials, dates, document,
    # amount), each order and the replay; left: what the model or the content type refuse.
    lane = lane_of(app, ORDERS)
    assert (lane.taken, lane.left) == (15, 9)


def test_both_ways_count_under_the_route(client, framework, db):
    merchant = make_merchant(db)
    before = counted("pos", ORDERS, "POST", "2xx")
    for way, ref in [(client, "A"), (framework, "B")]:
        body = json_body({"OriginalId": ref, "OrderTotal": 10, "IsCompleted": True})
        body["headers"].update(merchant.headers)
        assert answer(way, "POST", ORDERS, **body)[0] == 200
    assert counted("pos", ORDERS, "POST", "2xx") == before + 2


def test_the_limit_answers_as_the_framework(settings, db):
    limited = settings.model_copy(update={"rate_limit_pdv": "2/minute"})
    with served(limited, lanes=False) as framework, served(limited, lanes=True) as client:
        merchant = make_merchant(db)
        body = {"OriginalId": "A", "OrderTotal": "10.005"}  # refused after the limit counts
        headers = {**merchant.headers, **JSON}
        answers = [both(client, framework, body, headers=headers) for _ in range(3)]
    for lane, via in answers:
        assert lane == via
    assert [lane[0] for lane, _ in answers] == [400, 400, 429]
