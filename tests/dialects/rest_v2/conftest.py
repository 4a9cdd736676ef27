"""Seed 004 (REST v2) door: fixtures and the helpers its tests share.

Every test runs on SQLite and on PostgreSQL (the ``database_url`` fixture). Calls are made
as an integrator makes them: a token from ``POST /v2/auth/token``, then Bearer calls."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from fidelia.customers.directory import find_any
from fidelia.kit import clock
from fidelia.kit.db import Database
from fidelia.kit.settings import Settings
from fidelia.ledger.service import CASHBACK, POINTS, Account, balance
from fidelia.models import Tenant
from fidelia.rewards.service import create_reward
from fidelia.tenants.service import create_tenant, issue_api_key, set_setting

ANA = "52998224725"  # valid CPFs
BIA = "11144477735"
CAIO = "39053344705"
PHONE = "11987654321"  # +55 11 98765-4321 at a pt_BR merchant
E164 = "+5511987654321"

TOKEN = "/v2/auth/token"
CUSTOMERS = "/v2/customers"
SALES = "/v2/sales"
COUPONS = "/v2/coupons"
VOUCHERS = "/v2/vouchers"
CATEGORIES = "/v2/categories"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Limits raised so tests can call freely; test_auth checks them with their defaults."""
    return settings.model_copy(
        update={
            "rate_limit_rest_v2": "100000/second",
            "rate_limit_rest_v2_token": "10000/second",
            "rate_limit_auth_failures": "10000/second",
        }
    )


@pytest.fixture
def frozen() -> Iterator[Any]:
    """``frozen(at)`` freezes fidelia's clock; it is always unfrozen afterwards."""
    yield clock.freeze
    clock.freeze(None)


@dataclass(frozen=True)
class Merchant:
    id: int
    slug: str
    program_id: int
    api_key: str  # seed 004's api_key: the merchant's API token
    api_secret: str  # seed 004's api_secret: the merchant's API key


def make_merchant(db: Database, slug: str = "loja", **settings: object) -> Merchant:
    """A BRL / pt_BR merchant earning 1 point per R$ 1 and 5 % cashback."""
    values = {"earn_points_per_unit": "1", "cashback_percent": "5", "point_value": "0.10"}
    values.update({key: str(value) for key, value in settings.items()})
    with db.session() as session:
        tenant = create_tenant(
            session,
            slug=slug,
            name=f"Loja {slug}",
            currency="BRL",
            timezone="America/Sao_Paulo",
            locale="pt_BR",
        )
        for key, value in values.items():
            set_setting(session, slug, key, value)
        key = issue_api_key(session, tenant)
    return Merchant(tenant.id, slug, tenant.program_id, key.token, key.api_key)


def token_for(client: Any, merchant: Merchant) -> str:
    response = client.post(
        TOKEN, json={"api_key": merchant.api_key, "api_secret": merchant.api_secret}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def auth(client: Any, merchant: Merchant) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(client, merchant)}"}


@pytest.fixture
def shop(db: Database) -> Merchant:
    return make_merchant(db)


@pytest.fixture
def headers(client: Any, shop: Merchant) -> dict[str, str]:
    return auth(client, shop)


def error(response: Any, status: int, code: str) -> str:
    """An error in the door's shape; returns its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body
    return str(body["error"]["message"])


def page(response: Any, **meta: int) -> list[dict[str, Any]]:
    """A page's items, after checking the envelope (and the meta values given)."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"data", "meta"}, body
    assert set(body["meta"]) == {"page", "per_page", "total", "total_pages"}, body
    for key, value in meta.items():
        assert body["meta"][key] == value, body["meta"]
    return list(body["data"])


def create_customer(client: Any, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    body = {"name": "Ana Souza", "phone": PHONE, "cpf": ANA, "password": "s3nha-segura", **body}
    response = client.post(CUSTOMERS, headers=headers, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def sale(client: Any, headers: dict[str, str], amount: Any = "150.00", **body: Any) -> Any:
    body = {"sale_amount": amount, **body}
    if "customer_id" not in body:
        body.setdefault("cpf", ANA)
    return client.post(SALES, headers=headers, json=body)


def add_coupon(db: Database, merchant: Merchant, title: str = "R$ 10 off", **options: Any) -> int:
    options = {"points": 100, "reward_type": "fixed", "value": "10.00", **options}
    with db.session() as session:
        reward = create_reward(
            session, session.get_one(Tenant, merchant.id), title=title, **options
        )
        return reward.id


def wallet(
    db: Database, merchant: Merchant, kind: str = "cpf", value: str = ANA
) -> tuple[int, int]:
    """(points, cashback in centavos) of the customer with this identifier."""
    with db.session(readonly=True) as session:
        customer = find_any(session, merchant.program_id, kind, value)
        assert customer is not None, f"no customer {kind}={value}"
        return (
            balance(session, Account(merchant.program_id, customer.id, POINTS)),
            balance(session, Account(merchant.program_id, customer.id, CASHBACK)),
        )


def count(db: Database, model: Any, *where: Any) -> int:
    with db.session(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)
