"""The documented default rate limits of each door, unchanged (the door tests raise them so
they can make many calls a second): retail ``/v1`` 10/s, 300/min per API key; REST v2 20/s,
600/min per credential, and the same for its token endpoint; 30 failed authentications a
minute per client IP, then 429 on every door. The PIN door's 30/minute and the POS door's
defaults are checked in tests/dialects/test_rate_limits.py and pdv/test_access.py.

Like the POS door's check: the first calls of the per-second budget pass, and a burst is
then refused by the per-second limit on a fast machine or the per-minute one on a slow one
(no assertion on elapsed time)."""

from collections.abc import Callable

import httpx

from fidelia.kit.settings import Settings
from tests.dialects.pdv.conftest import AVAILABLE, basic
from tests.dialects.rest_v2 import conftest as rest
from tests.dialects.retail_v1.conftest import ANA, make_shop

DEFAULTS = Settings.model_fields


def first_refusal(call: Callable[[], httpx.Response], passing: int, budget: int) -> httpx.Response:
    """``passing`` calls answered 200, then at most ``budget`` more until one is not."""
    statuses = [call().status_code for _ in range(passing)]
    assert statuses == [200] * passing
    for _ in range(budget - passing + 1):
        answer = call()
        if answer.status_code != 200:
            return answer
    raise AssertionError(f"{budget + 1} calls and no refusal")


def retry_after(answer: httpx.Response) -> int:
    assert answer.status_code == 429, answer.text
    seconds = int(answer.headers["Retry-After"])
    assert 1 <= seconds <= 60
    return seconds


def test_retail_door_default(client, db):
    assert DEFAULTS["rate_limit_retail"].default == "10/second;300/minute;10000/hour"
    shop = make_shop(db)
    other = make_shop(db, slug="outra")
    member = {"member": {"phoneNumber": ANA}}
    registered = client.post("/v1/member/register", headers=shop.headers, json=member)
    assert registered.status_code == 200, registered.text  # the first call of the budget

    def details() -> httpx.Response:
        return client.post("/v1/member/details", headers=shop.headers, json=member)

    over = first_refusal(details, 9, 299)
    retry_after(over)
    body = over.json()
    assert body["status"] == "error" and body["error"]["code"] == "429"
    # Per API key: another merchant's key still answers.
    other_call = client.post("/v1/member/register", headers=other.headers, json=member)
    assert other_call.status_code == 200, other_call.text


def test_rest_v2_default(client, db):
    assert DEFAULTS["rate_limit_rest_v2"].default == "20/second;600/minute;20000/hour"
    shop = rest.make_merchant(db)
    bearer = rest.auth(client, shop)
    over = first_refusal(lambda: client.get(rest.CUSTOMERS, headers=bearer), 20, 600)
    retry_after(over)
    assert over.json()["error"]["code"] == "rate_limited"
    other = rest.make_merchant(db, slug="outra")
    assert client.get(rest.CUSTOMERS, headers=rest.auth(client, other)).status_code == 200


def test_rest_v2_token_default(client, db):
    assert DEFAULTS["rate_limit_rest_v2_token"].default == "20/second;600/minute;20000/hour"
    shop = rest.make_merchant(db)
    creds = {"api_key": shop.api_key, "api_secret": shop.api_secret}
    over = first_refusal(lambda: client.post(rest.TOKEN, json=creds), 20, 600)
    retry_after(over)
    assert over.json()["error"]["code"] == "rate_limited"


def test_failed_authentications_default_closes_every_door(client, db):
    """30 401s from one address in a minute; the 31st call, to any door, gets 429 (even
    with good credentials)."""
    assert DEFAULTS["rate_limit_auth_failures"].default == "30/minute"
    shop = make_shop(db)
    bad = basic("ftk_nope", "nope")
    lookup = {"CustomerId": "52998224725"}
    statuses = [client.post(AVAILABLE, headers=bad, json=lookup).status_code for _ in range(30)]
    assert statuses == [401] * 30
    for answer in (
        client.post(AVAILABLE, headers=bad, json=lookup),
        client.post(
            "/v1/member/details", headers=shop.headers, json={"member": {"phoneNumber": ANA}}
        ),
        client.post("/api/v1/integraciones/pin/generar", headers={"X-API-Key": shop.api_key}),
        client.get(rest.CUSTOMERS, headers={"Authorization": "Bearer nope"}),
    ):
        retry_after(answer)
