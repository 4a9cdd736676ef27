"""The POS redemption by the edge's lane (fidelia/edge.py ``Lane``,
fidelia/dialects/pdv/lanes.py), without FastAPI's layers for its common case: every answer
is the one the framework gives, byte for byte (status, headers, body), whatever the request
(what the lane does not take, a browser's with an ``Origin`` included, is left to the
framework), the effects are the same, and the metrics name the same route."""

import pytest
from sqlalchemy import select

from fidelia.models import LedgerEntry, Redemption
from tests.dialects.pdv.conftest import (
    ANA,
    BIA,
    add_reward,
    basic,
    count,
    make_merchant,
    order,
    redeem_path,
    tenant_set,
    wallet,
)
from tests.support.lanes import answer, closed, counted, json_body, lane_of, served

ROUTE = "/v1/pvt/POS/rewards/{reward_id}/redeem"
# A redemption's own numbers: its row's id, its ledger entry's, its random code.
NEW = ("RewardId", "Id", "PointId", "ExternalCode")
POS = "https://pos.example"
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def framework(settings):
    with closed(settings) as client:
        yield client


def both(client, framework, url, normal=(), **request):
    """The answer through the lane, and the framework's to the same request after it."""
    lane = answer(client, "POST", url, normal=normal, **request)
    return lane, answer(framework, "POST", url, normal=normal, **request)


def rows(db):
    """What the redemptions wrote, without what differs from one write to the next."""
    with db.session(readonly=True) as session:
        redemptions = [
            (r.reward_id, r.customer_id, r.points, r.value, r.status, r.origin)
            for r in session.scalars(select(Redemption).order_by(Redemption.id))
        ]
        debits = [
            (e.account, e.amount, e.kind)
            for e in session.scalars(
                select(LedgerEntry).where(LedgerEntry.kind == "redeem").order_by(LedgerEntry.id)
            )
        ]
    return redemptions, debits


def test_the_lane_is_open_for_requests_without_origin(app):
    lane = lane_of(app, ROUTE)
    assert lane.route.path == ROUTE
    scope = {"type": "http", "method": "POST", "path": "/v1/pvt/POS/rewards/5/redeem"}
    assert lane.matches({**scope, "headers": []}) == {"reward_id": "5"}
    assert lane.matches({**scope, "headers": [(b"origin", POS.encode())]}) is None
    assert lane.matches({**scope, "method": "GET", "headers": []}) is None


def test_the_redemption_by_the_lane_answers_as_the_framework(app, client, framework, db):
    merchant = make_merchant(db)
    tenant_set(db, merchant, "cors_origins", POS)
    reward = add_reward(db, merchant, "R$ 10 de desconto", points=100)
    order(client, merchant, "PDV-1", "250.00")  # 250 points for ANA: two redemptions
    url = redeem_path(reward)
    good = {"CustomerId": ANA, "OriginalKey": "K1", "RedeemOrigin": 5}
    creds = merchant.headers
    json_type = {**creds, **JSON}
    refused = [
        ("no credentials", url, json_body(good)),
        ("bad credentials", url, {**json_body(good), "headers": {**JSON, **basic("ftk_x", "k")}}),
        ("not Basic", url, {**json_body(good), "headers": {**JSON, "Authorization": "Bearer x"}}),
        ("bad Basic", url, {**json_body(good), "headers": {**JSON, "Authorization": "Basic !!"}}),
        ("unknown reward", redeem_path(999), {**json_body(good), "headers": json_type}),
        ("reward id not a number", redeem_path("abc"), {**json_body(good), "headers": json_type}),
        ("reward id zero", redeem_path(0), {**json_body(good), "headers": json_type}),
        ("reward id too large", redeem_path(2**63), {**json_body(good), "headers": json_type}),
        ("unknown customer", url, {**json_body({**good, "CustomerId": BIA}), "headers": json_type}),
        (
            "bad customer id",
            url,
            {**json_body({**good, "CustomerId": "nope"}), "headers": json_type},
        ),  # noqa: E501
        ("no key", url, {**json_body({"CustomerId": ANA}), "headers": json_type}),
        ("empty key", url, {**json_body({**good, "OriginalKey": ""}), "headers": json_type}),
        ("a list", url, {**json_body([good]), "headers": json_type}),
        ("null", url, {**json_body(None), "headers": json_type}),
        ("malformed JSON", url, {"headers": json_type, "content": b"{nope"}),
        ("no body", url, {"headers": creds}),
        ("no content type", url, {"headers": creds, "content": json_body(good)["content"]}),
        ("text", url, {"headers": {**creds, "Content-Type": "text/plain"}, "content": b"K1"}),
        (
            "bad credentials and body",
            url,
            {"headers": {"Authorization": "Basic !!"}, "content": b"["},
        ),  # noqa: E501
    ]
    for name, target, request in refused:
        lane, via = both(client, framework, target, **request)
        assert lane == via, name
        assert lane[0] >= 400, name
    assert rows(db) == ([], []) and wallet(db, merchant)[0] == 250  # nothing written

    # A redemption each way (its own key): the same answer but for its own numbers.
    ok = ("ok", {**json_body(good), "headers": json_type})
    lane = answer(client, "POST", url, normal=NEW, **ok[1])
    second = {**json_body({**good, "OriginalKey": "K2"}), "headers": json_type}
    via = answer(framework, "POST", url, normal=NEW, **second)
    assert lane[0] == via[0] == 200
    assert lane[2].replace(b'"K1"', b'"K2"') == via[2] and lane[1] == via[1]
    (first_way, second_way), (debit_1, debit_2) = rows(db)
    assert first_way == second_way and debit_1 == debit_2  # the same effects
    assert wallet(db, merchant)[0] == 50

    # Each key replays its answer, whichever way it came and goes; no points are left for
    # a third; a key reused for another body is refused; a browser's request (Origin)
    # goes through the framework's CORS either way.
    for name, request in [
        ("replay of the lane's", {**json_body(good), "headers": {**creds, **json_type}}),
        ("replay of the framework's", second),
        (
            "lower-cased replay",
            {**json_body({k.lower(): v for k, v in good.items()}), "headers": json_type},
        ),  # noqa: E501
        ("not enough points", {**json_body({**good, "OriginalKey": "K3"}), "headers": json_type}),
        ("key reused", {**json_body({**good, "Value": "5.00"}), "headers": json_type}),
        ("browser", {**json_body(good), "headers": {**json_type, "Origin": POS}}),
        ("browser elsewhere", {**json_body(good), "headers": {**json_type, "Origin": "https://x"}}),
        ("browser, no credentials", {**json_body(good), "headers": {"Origin": POS}}),
    ]:
        lane, via = both(client, framework, url, **request)
        assert lane == via, name
        cors = ("access-control-allow-origin", POS) in lane[1]
        assert cors == (name in ("browser", "browser, no credentials")), name
    # The reward's id with leading zeros is the same id (a replay of the first), either way.
    lane, via = both(
        client, framework, redeem_path(f"00{reward}"), **json_body(good) | {"headers": json_type}
    )
    assert lane == via and lane[0] == 200
    assert count(db, Redemption) == 2 and wallet(db, merchant)[0] == 50

    # taken: the refusals the route's functions gave (credentials, reward, customer,
    # key), the first redemption and the replays (not the browser's); left: what the
    # model, the path or the content type refuse, and the browser's requests.
    route = lane_of(app, ROUTE)
    assert (route.taken, route.left) == (14, 12)


def test_both_ways_count_under_the_route(client, framework, db):
    merchant = make_merchant(db)
    reward = add_reward(db, merchant, "Brinde", "custom", points=10, value=None)
    order(client, merchant, "PDV-1", "100.00")
    before = counted("pos", ROUTE, "POST", "2xx")
    for way, key in [(client, "A"), (framework, "B")]:
        body = json_body({"CustomerId": ANA, "OriginalKey": key})
        body["headers"].update(merchant.headers)
        assert answer(way, "POST", redeem_path(reward), **body)[0] == 200
    assert counted("pos", ROUTE, "POST", "2xx") == before + 2


def test_the_limit_answers_as_the_framework(settings, db):
    limited = settings.model_copy(update={"rate_limit_pdv": "2/minute"})
    with served(limited, lanes=False) as framework, served(limited, lanes=True) as client:
        merchant = make_merchant(db)
        reward = add_reward(db, merchant, "Brinde", "custom", points=10, value=None)
        body = json_body({"CustomerId": BIA, "OriginalKey": "K"})
        body["headers"].update(merchant.headers)
        answers = [both(client, framework, redeem_path(reward), **body) for _ in range(3)]
    for lane, via in answers:
        assert lane == via
    assert [lane[0] for lane, _ in answers] == [404, 404, 429]
