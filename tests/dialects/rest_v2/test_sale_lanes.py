"""The REST v2 sale by the edge's lane (fidelia/edge.py ``Lane``,
fidelia/dialects/rest_v2/lanes.py), without FastAPI's layers for its common case: every
answer is the one the framework gives, byte for byte (status, headers, body), whatever the
request (what the lane does not take is left to the framework), the effects are the same,
and the metrics name the same route. The route is in a router included under ``/v2``: the
lane is built from the route as included, with every router's dependencies."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from fidelia.dialects.rest_v2.lanes import LANES
from fidelia.dialects.rest_v2.sales import register_sale
from fidelia.models import IdempotencyKey, LedgerEntry, Order
from tests.dialects.rest_v2.conftest import ANA, BIA, SALES, make_merchant, token_for, wallet
from tests.support.lanes import answer, closed, counted, json_body, lane_of, served

T0 = datetime(2026, 5, 7, 15, 30, tzinfo=UTC)
JSON = {"Content-Type": "application/json"}
# What differs between the two ways' sales: the order, the customer (each way its own,
# with the same history) and the sale's own id.
NEW = ("id", "customer_id", "external_id")


@pytest.fixture
def framework(settings):
    with closed(settings) as client:
        yield client


def both(client, framework, body, headers):
    """The answer through the lane, and the framework's to the same request after it."""
    lane = answer(client, "POST", SALES, **_request(body, headers))
    return lane, answer(framework, "POST", SALES, **_request(body, headers))


def _request(body, headers):
    content = body if isinstance(body, bytes) else json_body(body)["content"]
    return {"headers": headers or {}, "content": content}


def orders(db, customer):
    """Each sale's order of this customer, but its own ids and times (its external id
    without the way's letter)."""
    with db.session(readonly=True) as session:
        return [
            (
                o.state,
                o.total,
                o.earned_points,
                o.earned_cashback,
                "auto" if "auto-" in o.original_id else o.original_id[5:],
            )
            for o in session.scalars(
                select(Order).where(Order.customer_id == customer).order_by(Order.id)
            )
        ]


def customers(db):
    """The customers who earned, in the order they first did."""
    with db.session(readonly=True) as session:
        entries = session.scalars(select(LedgerEntry).order_by(LedgerEntry.id))
        return list(dict.fromkeys(e.customer_id for e in entries))


def test_the_lane_is_the_route_under_its_prefix(app):
    lane = lane_of(app, SALES)
    assert lane.route.endpoint is register_sale and LANES[register_sale].fast is lane.fast
    assert lane.status == 201


def test_the_sale_by_the_lane_answers_as_the_framework(app, client, framework, db, frozen):
    frozen(T0)
    merchant = make_merchant(db)
    bearer = {"Authorization": f"Bearer {token_for(client, merchant)}", **JSON}
    sale = {"sale_amount": "150.00", "cpf": ANA, "external_id": "A-1"}
    refused = [
        ("no credentials", sale, JSON),
        ("empty bearer", sale, {**JSON, "Authorization": "Bearer "}),
        ("not a bearer", sale, {**JSON, "Authorization": "Basic eDp5"}),
        ("bad token", sale, {**JSON, "Authorization": "Bearer ftk_nope"}),
        ("no customer", {"sale_amount": "10.00"}, bearer),
        ("unknown customer", {"sale_amount": "10.00", "customer_id": 999}, bearer),
        ("bad idempotency key", sale, {**bearer, "Idempotency-Key": "x" * 201}),
        ("empty idempotency key", sale, {**bearer, "Idempotency-Key": " "}),
        ("too many decimals", {**sale, "sale_amount": "1.001"}, bearer),
        ("bad amount", {**sale, "sale_amount": "abc"}, bearer),
        ("bad cpf", {**sale, "cpf": "123"}, bearer),
        ("naive date", {**sale, "sold_at": "2026-05-07T12:00:00"}, bearer),
        ("aliases disagree", {**sale, "document": BIA}, bearer),
        ("a list", [sale], bearer),
        ("null", None, bearer),
        ("malformed JSON", b"{nope", bearer),
        ("no body", b"", bearer),
        ("no content type", sale, {"Authorization": bearer["Authorization"]}),
        ("text", b"150", {**bearer, "Content-Type": "text/plain"}),
    ]
    for name, body, headers in refused:
        lane, via = both(client, framework, body, headers=headers)
        assert lane == via, name
        assert lane[0] >= 400, name
    with db.session(readonly=True) as session:
        assert session.scalars(select(Order)).all() == []  # nothing written

    # Each way its own customer (ANA by the lane, BIA by the framework) with the same
    # history: the same answers but for their numbers, the same effects.
    def mine(**body):
        return {"cpf": ANA, **body}

    def theirs(**body):
        return {
            "cpf": BIA,
            **body,
            **{k: "B" + v[1:] for k, v in body.items() if k == "external_id"},
        }

    steps = [
        ("enrols", {"sale_amount": "150.00", "external_id": "A-1"}, {}),
        ("no external id", {"sale_amount": 49.9}, {}),
        ("dated", {"sale_amount": "10.00", "sold_at": "2026-05-07T12:00:00-03:00"}, {}),
        ("replay by external id", {"sale_amount": "150.00", "external_id": "A-1"}, {}),
        ("external id reused", {"sale_amount": "1.00", "external_id": "A-1"}, {}),
        ("keyed", {"sale_amount": "5.00", "external_id": "A-2"}, {"Idempotency-Key": "A-K"}),
        ("key replayed", {"sale_amount": "5.00", "external_id": "A-2"}, {"Idempotency-Key": "A-K"}),
        ("key reused", {"sale_amount": "6.00"}, {"Idempotency-Key": "A-K"}),
    ]
    for name, body, extra in steps:
        theirs_extra = {k: v.replace("A-", "B-") for k, v in extra.items()}
        lane = answer(
            client, "POST", SALES, normal=NEW, **_request(mine(**body), {**bearer, **extra})
        )
        via = answer(
            framework, "POST", SALES, normal=NEW,
            **_request(theirs(**body), {**bearer, **theirs_extra}),
        )  # fmt: skip
        assert (*lane[:2], lane[2].replace(b"A-", b"B-")) == via, name
    assert wallet(db, merchant, value=ANA) == wallet(db, merchant, value=BIA)
    assert wallet(db, merchant, value=ANA)[0] == 150 + 49 + 10 + 5
    ana, bia = customers(db)
    assert orders(db, ana) == orders(db, bia) != []
    with db.session(readonly=True) as session:
        keys = session.scalars(select(IdempotencyKey.key).order_by(IdempotencyKey.id)).all()
    assert sorted(keys) == sorted(["A-1", "A-2", "A-K", "B-1", "B-2", "B-K"])

    # The other way's answers replay as they were, byte for byte.
    for name, body, headers in [
        (
            "the framework's replayed by the lane",
            theirs(sale_amount="150.00", external_id="A-1"),
            bearer,
        ),  # noqa: E501
        (
            "the lane's key by the framework",
            mine(sale_amount="5.00", external_id="A-2"),
            {**bearer, "Idempotency-Key": "A-K"},
        ),  # noqa: E501
    ]:
        lane, via = both(client, framework, body, headers=headers)
        assert lane == via and lane[0] == 201, name
        assert ("idempotent-replayed", "true") in lane[1], name

    # taken: the refusals the route's functions gave (credentials, customer, key, amount,
    # CPF), each sale and the replays; left: what the model (a date without its offset,
    # two names of the CPF that disagree, not an object) or the content type refuse.
    route = lane_of(app, SALES)
    assert (route.taken, route.left) == (21, 8)


def test_both_ways_count_under_the_route(app, client, framework, db):
    merchant = make_merchant(db)
    bearer = {"Authorization": f"Bearer {token_for(client, merchant)}", **JSON}
    route = "/v2/sales"  # its full template, both ways
    before = counted("rest-v2", route, "POST", "2xx")
    for way in (client, framework):
        assert answer(way, "POST", SALES, **_request({"sale_amount": 1, "cpf": ANA}, bearer))[0]
    assert counted("rest-v2", route, "POST", "2xx") == before + 2


def test_the_limit_answers_as_the_framework(settings, db):
    limited = settings.model_copy(update={"rate_limit_rest_v2": "2/minute"})
    with served(limited, lanes=False) as framework, served(limited, lanes=True) as client:
        merchant = make_merchant(db)
        bearer = {"Authorization": f"Bearer {token_for(client, merchant)}", **JSON}
        body = {"sale_amount": "1.001", "cpf": ANA}  # refused after the limit counts
        answers = [both(client, framework, body, headers=bearer) for _ in range(3)]
    for lane, via in answers:
        assert lane == via
    assert [lane[0] for lane, _ in answers] == [422, 422, 429]
