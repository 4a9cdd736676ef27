"""Seed 002 (retail loyalty) door: fixtures and the small helpers its tests share.

Every test runs on SQLite and on PostgreSQL (the ``database_url`` fixture). Short codes go
out through the outbox to real loopback servers: the fake Graph API and an SMS gateway.
"""

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from fidelia.events.deals import create_deal
from fidelia.events.segments import create_segment
from fidelia.events.service import create_rule
from fidelia.kit import clock
from fidelia.kit.db import Database
from fidelia.kit.settings import Settings
from fidelia.models import Tenant
from fidelia.tenants.service import create_tenant, issue_api_key, set_setting
from fidelia.vouchers.service import issue
from tests.fakes.sms import FakeSmsGateway

ANA = "+5511987654321"
BIA = "+5511912345678"


@pytest.fixture(scope="session")
def _sms_server() -> Iterator[FakeSmsGateway]:
    fake = FakeSmsGateway()
    yield fake
    fake.close()


@pytest.fixture
def sms(_sms_server: FakeSmsGateway) -> FakeSmsGateway:
    _sms_server.sent.clear()
    return _sms_server


@pytest.fixture
def settings(settings: Settings, sms: FakeSmsGateway) -> Settings:
    """A real SMS channel; the per-key limit raised so tests can make many calls a second
    (test_access checks the default)."""
    return settings.model_copy(
        update={
            "sms_gateway_url": sms.url,
            "sms_gateway_token": sms.token,
            "rate_limit_retail": "10000/second",
        }
    )


@pytest.fixture
def frozen() -> Iterator[Any]:
    """``frozen(at)`` freezes fidelia's clock; it is always unfrozen afterwards."""
    yield clock.freeze
    clock.freeze(None)


# -- merchants ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shop:
    id: int
    slug: str
    program_id: int
    api_key: str
    token: str  # with api_key, the POS door's Basic credentials

    @property
    def headers(self) -> dict[str, str]:
        return headers(self.api_key)

    @property
    def pos(self) -> dict[str, str]:
        raw = base64.b64encode(f"{self.token}:{self.api_key}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}


def headers(api_key: str, **extra: str) -> dict[str, str]:
    """The guide's required headers."""
    return {
        "x-api-key": api_key,
        "x-source-type": "POS",
        "x-source-name": "CaixaTeste",
        "x-branch-id": "loja-01",
        "x-pos-id": "pos-3",
        **extra,
    }


def make_shop(db: Database, slug: str = "loja", timezone: str = "America/Sao_Paulo", **kw: Any):
    """A BRL / pt_BR merchant: 1 point per R$ 1, a point worth R$ 0.10, 5 % back as credit."""
    values = {"earn_points_per_unit": "1", "point_value": "0.10", "cashback_percent": "5"}
    values.update({key: str(value) for key, value in kw.items()})
    with db.session() as session:
        tenant = create_tenant(
            session,
            slug=slug,
            name="Loja Centro",
            currency="BRL",
            timezone=timezone,
            locale="pt_BR",
        )
        for key, value in values.items():
            set_setting(session, slug, key, value)
        key = issue_api_key(session, tenant)
    return Shop(tenant.id, slug, tenant.program_id, key.api_key, key.token)


def engine(db: Database, shop: Shop, fn: Any, *args: Any, **kw: Any) -> Any:
    """Run an engine function for the shop (as the CLI does); returns its result's id."""
    with db.session() as session:
        result = fn(session, session.get_one(Tenant, shop.id), *args, **kw)
        return getattr(result, "id", result)


def add_deal(db: Database, shop: Shop, name: str, deal_type: str, value: int, **kw: Any) -> int:
    return int(engine(db, shop, create_deal, name=name, discount_type=deal_type, value=value, **kw))


def add_segment(db: Database, shop: Shop, name: str, rule: dict[str, Any]) -> int:
    return int(engine(db, shop, create_segment, name, rule))


def add_rule(db: Database, shop: Shop, event: str, points: int, per_day: int | None = None):
    return engine(db, shop, create_rule, event, points, per_day)


def add_voucher(
    db: Database, shop: Shop, code: str, value: int = 0, member_id: str | None = None, **kw: Any
) -> str:
    from fidelia.models import Customer

    with db.session() as session:
        customer = session.get(Customer, int(member_id)) if member_id else None
        tenant = session.get_one(Tenant, shop.id)
        return issue(session, tenant, code=code, customer=customer, value=value, **kw).code


def count(db: Database, model: Any, *where: Any) -> int:
    with db.session(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# -- calls as an integrator makes them -------------------------------------------------------------


def post(client: Any, shop: Shop, path: str, body: Any, **extra: str) -> Any:
    return client.post(f"/v1{path}", headers=headers(shop.api_key, **extra), json=body)


def ok(response: Any) -> dict[str, Any]:
    """The body of a success, after checking it reads as one."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success", body
    assert "error" not in body
    return dict(body)


def error(response: Any, status: int, code: str, path: str | None) -> dict[str, Any]:
    """An error, in the guide's shape."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "error"}, body
    assert body["status"] == "error"
    assert set(body["error"]) == {"code", "message", "path"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["path"] == path, body
    assert body["error"]["message"], body
    return dict(body["error"])


def register(client: Any, shop: Shop, **member: Any) -> dict[str, Any]:
    member.setdefault("phoneNumber", ANA)
    body = ok(post(client, shop, "/member/register", {"member": member}))
    return dict(body["data"]["member"])


def details(client: Any, shop: Shop, member: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"member": member}
    hdrs = {k: v for k, v in extra.items() if k.startswith("x_")}
    body.update({k: v for k, v in extra.items() if not k.startswith("x_")})
    wire = {k.replace("_", "-"): v for k, v in hdrs.items()}
    return dict(ok(post(client, shop, "/member/details", body, **wire))["data"])


def sale(
    client: Any,
    shop: Shop,
    transaction_id: str,
    total: int,
    member: dict[str, Any] | None = None,
    **fields: Any,
) -> Any:
    """POST /transaction; returns the response. ``fields`` beyond the transaction's own
    (``usedAssets``, ``appliedDeals``) go at the top level."""
    tx: dict[str, Any] = {
        "transactionId": transaction_id,
        "dateTime": "2026-05-07T15:30:00Z",
        "totalAmount": total,
        "items": fields.pop("items", []),
        "payments": fields.pop("payments", []),
    }
    body: dict[str, Any] = {"transaction": tx, **fields}
    if member is not None:
        body["member"] = member
    return post(client, shop, "/transaction", body)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)
