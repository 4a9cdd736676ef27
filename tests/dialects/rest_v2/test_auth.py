"""POST /v2/auth/token and the Bearer tokens it hands out: the two values in either order and
in every shape clients send, errors that say what is wrong, one live token per credential,
expiry, revocation (of the token and of its API key), tenant isolation, and the rate limits
per credential (and of failures per IP)."""

import base64
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from fastapi.testclient import TestClient

from fidelia.app import create_app
from fidelia.models import AccessToken, Tenant
from fidelia.tenants.service import issue_api_key, revoke_api_key
from tests.dialects.rest_v2.conftest import (
    CUSTOMERS,
    TOKEN,
    Merchant,
    auth,
    count,
    create_customer,
    error,
    make_merchant,
    page,
    token_for,
)

T0 = datetime(2026, 5, 7, 15, 0, tzinfo=UTC)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def db_of(client):
    return client.app.state.fidelia.db


def test_token_shape_and_use(client, shop, frozen):
    frozen(T0)
    response = client.post(TOKEN, json={"api_key": shop.api_key, "api_secret": shop.api_secret})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "expires_at"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert datetime.fromisoformat(body["expires_at"]) == T0 + timedelta(hours=1)
    assert response.headers["Cache-Control"] == "no-store"
    assert page(client.get(CUSTOMERS, headers=bearer(body["access_token"]))) == []
    # Asking again while it is valid answers the same token, with what is left of its life.
    frozen(T0 + timedelta(minutes=10))
    again = client.post(TOKEN, json={"api_key": shop.api_key, "api_secret": shop.api_secret})
    assert again.json()["access_token"] == body["access_token"]
    assert again.json()["expires_in"] == 3000
    assert again.json()["expires_at"] == body["expires_at"]
    # With less than 5 minutes left, a new one; the old one still works until it expires.
    frozen(T0 + timedelta(minutes=55, seconds=1))
    fresh = token_for(client, shop)
    assert fresh != body["access_token"]
    assert client.get(CUSTOMERS, headers=bearer(fresh)).status_code == 200
    assert client.get(CUSTOMERS, headers=bearer(body["access_token"])).status_code == 200
    assert count(db_of(client), AccessToken) == 2


def test_a_token_per_call_mints_one_token(client, db, shop):
    """The vendor's flow invites a token per call: a hundred calls, one live token."""
    tokens = {token_for(client, shop) for _ in range(100)}
    assert len(tokens) == 1
    assert count(db, AccessToken) == 1


def test_the_two_values_in_either_order_and_every_shape(client, db, shop):
    """The guide names api_key / api_secret but not which value is which; OAuth 2 clients
    send client_id / client_secret, form-encoded or as Basic auth."""
    token, secret = shop.api_key, shop.api_secret  # ftk_..., fk_live_...
    basic = base64.b64encode(f"{token}:{secret}".encode()).decode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    answers = [
        client.post(TOKEN, json={"api_key": token, "api_secret": secret}),
        client.post(TOKEN, json={"api_key": secret, "api_secret": token}),  # swapped
        client.post(TOKEN, json={"apiKey": token, "apiSecret": secret}),
        client.post(TOKEN, json={"client_id": token, "client_secret": secret}),
        client.post(
            TOKEN,
            content=urlencode(
                {"grant_type": "client_credentials", "client_id": token, "client_secret": secret}
            ),
            headers=form,
        ),
        client.post(
            TOKEN, content=urlencode({"api_key": secret, "api_secret": token}), headers=form
        ),
        client.post(
            TOKEN,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        ),
        client.post(TOKEN, headers={"Authorization": f"Basic {basic}"}),
        # JSON without a Content-Type header.
        client.post(TOKEN, content=json.dumps({"api_key": token, "api_secret": secret})),
        # The same value under two names of one field is fine.
        client.post(TOKEN, json={"api_key": token, "client_id": token, "api_secret": secret}),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
    assert len({a.json()["access_token"] for a in answers}) == 1
    assert count(db, AccessToken) == 1


def test_bad_credentials_say_what_is_wrong(client, db, shop):
    token, secret = shop.api_key, shop.api_secret
    unknown = client.post(TOKEN, json={"api_key": "ftk_wrong", "api_secret": secret})
    assert "api_key" in error(unknown, 401, "invalid_credentials")
    assert "Unknown or revoked API token" in unknown.json()["error"]["message"]
    assert unknown.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = client.post(TOKEN, json={"api_key": token, "api_secret": "fk_live_wrong"})
    assert "Wrong api_secret" in error(wrong, 401, "invalid_credentials")
    swapped_wrong = client.post(TOKEN, json={"api_key": "fk_live_wrong", "api_secret": token})
    assert "Wrong api_key" in error(swapped_wrong, 401, "invalid_credentials")
    malformed = client.post(TOKEN, json={"api_key": "my-key", "api_secret": secret})
    assert "Malformed api_key" in error(malformed, 401, "invalid_credentials")
    two_tokens = client.post(TOKEN, json={"api_key": token, "api_secret": token})
    message = error(two_tokens, 401, "invalid_credentials")
    assert "both API tokens" in message
    two_keys = client.post(TOKEN, json={"api_key": secret, "api_secret": secret})
    assert "both API keys" in error(two_keys, 401, "invalid_credentials")
    assert count(db, AccessToken) == 0
    # Malformed requests.
    cases = [
        {"api_key": token},
        {"api_key": "", "api_secret": ""},
        {"api_key": 12, "api_secret": secret},
        {"api_key": token, "client_id": "ftk_other", "api_secret": secret},
    ]
    for body in cases:
        error(client.post(TOKEN, json=body), 422, "invalid_request")
    error(
        client.post(TOKEN, content=b"{not json", headers={"Content-Type": "application/json"}),
        422,
        "invalid_request",
    )
    error(client.post(TOKEN, json=[token, secret]), 422, "invalid_request")
    error(
        client.post(
            TOKEN, json={"grant_type": "password", "client_id": token, "client_secret": secret}
        ),
        422,
        "unsupported_grant_type",
    )
    other = base64.b64encode(f"ftk_other:{secret}".encode()).decode()
    mixed = client.post(
        TOKEN,
        json={"client_id": token, "client_secret": secret},
        headers={"Authorization": f"Basic {other}"},
    )
    error(mixed, 422, "invalid_request")
    error(client.post(TOKEN, headers={"Authorization": "Basic !!!"}), 422, "invalid_request")
    error(
        client.post(TOKEN, files={"api_key": (None, token), "api_secret": (None, secret)}),
        422,
        "invalid_request",
    )
    assert count(db, AccessToken) == 0


def test_calls_without_a_valid_token(client, shop):
    missing = client.get(CUSTOMERS)
    error(missing, 401, "unauthorized")
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="fidelia"'
    basic = client.get(CUSTOMERS, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    error(basic, 401, "unauthorized")
    for token in ("nope", shop.api_key, shop.api_secret):  # credentials are not tokens
        wrong = client.get(CUSTOMERS, headers=bearer(token))
        error(wrong, 401, "invalid_token")
        assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]


def test_tokens_expire_after_an_hour(client, shop, frozen):
    frozen(T0)
    token = token_for(client, shop)
    frozen(T0 + timedelta(minutes=59, seconds=59))
    assert client.get(CUSTOMERS, headers=bearer(token)).status_code == 200
    frozen(T0 + timedelta(hours=1))
    expired = client.get(CUSTOMERS, headers=bearer(token))
    error(expired, 401, "invalid_token")
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    # A new token is the cure.
    assert client.get(CUSTOMERS, headers=bearer(token_for(client, shop))).status_code == 200


def test_tokens_die_with_their_api_key(client, db, shop):
    token = token_for(client, shop)
    with db.session() as session:
        second = issue_api_key(session, session.get_one(Tenant, shop.id))
    other = Merchant(shop.id, shop.slug, shop.program_id, second.token, second.api_key)
    other_token = token_for(client, other)
    with db.session() as session:
        revoke_api_key(session, shop.api_secret)
    error(client.get(CUSTOMERS, headers=bearer(token)), 401, "invalid_token")
    error(
        client.post(TOKEN, json={"api_key": shop.api_key, "api_secret": shop.api_secret}),
        401,
        "invalid_credentials",
    )
    # The merchant's other key, and its tokens, live on.
    assert client.get(CUSTOMERS, headers=bearer(other_token)).status_code == 200


def test_revoking_a_token(client, shop):
    first = token_for(client, shop)
    response = client.delete(TOKEN, headers=bearer(first))
    assert response.status_code == 204 and response.content == b""
    error(client.get(CUSTOMERS, headers=bearer(first)), 401, "invalid_token")
    error(client.delete(TOKEN, headers=bearer(first)), 401, "invalid_token")
    # The next token call gets a new token, never the revoked one.
    second = token_for(client, shop)
    assert second != first
    assert client.get(CUSTOMERS, headers=bearer(second)).status_code == 200
    error(client.get(CUSTOMERS, headers=bearer(first)), 401, "invalid_token")


def test_a_token_sees_only_its_merchant(client, db, shop):
    other = make_merchant(db, slug="outra")
    mine = create_customer(client, auth(client, shop))
    theirs = auth(client, other)
    assert page(client.get(CUSTOMERS, headers=theirs), total=0) == []
    error(client.get(f"{CUSTOMERS}/{mine['id']}", headers=theirs), 404, "customer_not_found")


def test_rate_limits_per_credential(settings):
    limited = settings.model_copy(
        update={
            "rate_limit_rest_v2": "5/minute",
            "rate_limit_rest_v2_token": "4/minute",
            "rate_limit_auth_failures": "4/minute",  # any 401 from this IP (kit/auth_failures)
        }
    )
    app = create_app(limited, run_worker=False)
    try:
        with TestClient(app) as client:
            shop = make_merchant(app.state.fidelia.db)
            first, second = token_for(client, shop), token_for(client, shop)
            assert first == second
            # The calls of one credential share its quota: 5 calls in all.
            statuses = [client.get(CUSTOMERS, headers=bearer(first)).status_code for _ in range(5)]
            assert statuses == [200] * 5
            over = client.get(CUSTOMERS, headers=bearer(second))
            error(over, 429, "rate_limited")
            assert 1 <= int(over.headers["Retry-After"]) <= 60
            # Bad tokens are refused before counting, and do not use the quota of others.
            error(client.get(CUSTOMERS, headers=bearer("nope")), 401, "invalid_token")
            # The token endpoint counts per credential: 2 above, 2 more, then refused; another
            # credential from the same client is not held up.
            token_for(client, shop)
            token_for(client, shop)
            creds = {"api_key": shop.api_key, "api_secret": shop.api_secret}
            error(client.post(TOKEN, json=creds), 429, "rate_limited")
            other = make_merchant(app.state.fidelia.db, slug="outra")
            assert token_for(client, other)
            # Failed attempts count per client IP: the bad token above and 3 refused here, then
            # even right credentials are refused from that IP until the window frees a slot.
            wrong = {"api_key": other.api_key, "api_secret": "fk_live_wrong"}
            for _ in range(3):
                error(client.post(TOKEN, json=wrong), 401, "invalid_credentials")
            blocked = client.post(
                TOKEN, json={"api_key": other.api_key, "api_secret": other.api_secret}
            )
            error(blocked, 429, "rate_limited")
    finally:
        app.state.fidelia.db.dispose()
