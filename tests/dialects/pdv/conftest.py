"""Seed 001 (POS "PDV") door: fixtures and the small helpers its tests share.

Every test runs on SQLite and on PostgreSQL (the ``database_url`` fixture). Challenge codes
go out through real loopback servers: an HTTP SMS gateway and an SMTP server.
"""

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from fidelia.customers.service import find
from fidelia.kit import clock
from fidelia.kit.db import Database
from fidelia.kit.settings import Settings
from fidelia.ledger.service import CASHBACK, POINTS, Account, balance
from fidelia.models import Tenant
from fidelia.rewards.service import ProductOptions, create_reward
from fidelia.tenants.service import create_tenant, issue_api_key, set_setting
from tests.fakes.sms import FakeSmsGateway
from tests.fakes.smtp import FakeSmtp

ANA = "52998224725"  # valid CPFs
BIA = "11144477735"
PHONE = "11987654321"  # read as +55 11 98765-4321 for a pt_BR merchant

AVAILABLE = "/v1/pvt/POS/rewards/available"
ORDERS = "/v1/pvt/POS/orders"


def redeem_path(reward_id: int) -> str:
    return f"/v1/pvt/POS/rewards/{reward_id}/redeem"


def challenge_path(document: str = ANA, validate: bool = False) -> str:
    return f"/v1/pvt/POS/customers/{document}/" + ("challengevalidate" if validate else "challenge")


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _sms_server() -> Iterator[FakeSmsGateway]:
    fake = FakeSmsGateway()
    yield fake
    fake.close()


@pytest.fixture(scope="session")
def _smtp_server() -> Iterator[FakeSmtp]:
    fake = FakeSmtp()
    yield fake
    fake.close()


@pytest.fixture
def sms(_sms_server: FakeSmsGateway) -> FakeSmsGateway:
    _sms_server.sent.clear()
    return _sms_server


@pytest.fixture
def smtp(_smtp_server: FakeSmtp) -> FakeSmtp:
    _smtp_server.messages.clear()
    return _smtp_server


@pytest.fixture
def settings(settings: Settings, sms: FakeSmsGateway, smtp: FakeSmtp) -> Settings:
    """Real SMS and SMTP channels. The per-credential rate limit is raised so that a test
    can make more than 10 calls a second; test_access checks the documented default."""
    return settings.model_copy(
        update={
            "sms_gateway_url": sms.url,
            "sms_gateway_token": sms.token,
            "smtp_url": smtp.url,
            "rate_limit_pdv": "10000/second",
        }
    )


@pytest.fixture
def frozen() -> Iterator[Any]:
    """``frozen(at)`` freezes fidelia's clock; it is always unfrozen afterwards."""
    yield clock.freeze
    clock.freeze(None)


# -- merchants and their data -------------------------------------------------------------------


@dataclass(frozen=True)
class Merchant:
    id: int
    slug: str
    token: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return basic(self.token, self.api_key)


def basic(token: str, api_key: str) -> dict[str, str]:
    raw = base64.b64encode(f"{token}:{api_key}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def make_merchant(db: Database, slug: str = "loja", **settings: object) -> Merchant:
    """A BRL / pt_BR merchant earning 1 point per R$ 1, each point worth R$ 0.10, 5% cashback;
    ``settings`` go through ``tenant set``."""
    values = {"earn_points_per_unit": "1", "point_value": "0.10", "cashback_percent": "5"}
    values.update({key: str(value) for key, value in settings.items()})
    with db.session() as session:
        tenant = create_tenant(
            session,
            slug=slug,
            name="Loja Centro",
            currency="BRL",
            timezone="America/Sao_Paulo",
            locale="pt_BR",
        )
        for key, value in values.items():
            set_setting(session, slug, key, value)
        key = issue_api_key(session, tenant)
    return Merchant(tenant.id, slug, key.token, key.api_key)


def tenant_set(db: Database, merchant: Merchant, key: str, value: str) -> None:
    with db.session() as session:
        set_setting(session, merchant.slug, key, value)


def new_key(db: Database, merchant: Merchant) -> Merchant:
    """The same merchant with another credential."""
    with db.session() as session:
        key = issue_api_key(session, session.get_one(Tenant, merchant.id))
    return Merchant(merchant.id, merchant.slug, key.token, key.api_key)


def add_reward(
    db: Database,
    merchant: Merchant,
    title: str,
    reward_type: str = "fixed",
    *,
    points: int | None = 100,
    value: str | None = "10.00",
    **options: Any,
) -> int:
    with db.session() as session:
        reward = create_reward(
            session,
            session.get_one(Tenant, merchant.id),
            title=title,
            points=points,
            reward_type=reward_type,
            value=value,
            **options,
        )
        return reward.id


def add_product_reward(
    db: Database,
    merchant: Merchant,
    title: str,
    product_id: str | None = "P001",
    mode: str | None = "fixed",
    value: str | None = "15.00",
    *,
    points: int = 100,
    name: str | None = None,
    max_units: int | None = None,
    **options: Any,
) -> int:
    """A product reward as `fidelia reward create --type product ...` makes it."""
    product = ProductOptions(
        external_product_id=product_id, name=name, mode=mode, value=value, max_units=max_units
    )
    return add_reward(
        db, merchant, title, "product", points=points, value=None, product=product, **options
    )


def wallet(db: Database, merchant: Merchant, document: str = ANA) -> tuple[int, int]:
    """(points, cashback in centavos) of the customer with this CPF."""
    with db.session(readonly=True) as session:
        tenant = session.get_one(Tenant, merchant.id)
        customer = find(session, tenant.program_id, "cpf", document)
        assert customer is not None, f"no customer {document}"
        return (
            balance(session, Account(tenant.program_id, customer.id, POINTS)),
            balance(session, Account(tenant.program_id, customer.id, CASHBACK)),
        )


def count(db: Database, model: Any, *where: Any) -> int:
    with db.session(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# -- calls as a POS makes them --------------------------------------------------------------------


def ok(response: Any) -> Any:
    """The Result of an enveloped success, after checking it reads as one."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["HasError"] is False and body["Severity"] == 0, body
    assert body["CodeName"] is None and body["ErrorMessage"] is None, body
    assert body["Result"] is not None, body
    return body["Result"]


def error(response: Any, status: int, code_name: str) -> dict[str, Any]:
    """An enveloped error, in the shape POS clients read."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {
        "Result",
        "ErrorMessage",
        "ErrorCode",
        "Code",
        "CodeName",
        "Severity",
        "HasWarning",
        "HasError",
    }, body
    assert body["Result"] is None and body["HasError"] is True and body["Severity"] == 2, body
    assert body["CodeName"] == code_name, body
    # As in the vendor's reference: ErrorCode a number, Code text.
    assert body["ErrorMessage"] and type(body["ErrorCode"]) is int, body
    assert body["Code"] == str(body["ErrorCode"]), body
    return dict(body)


def order(
    client: Any,
    merchant: Merchant,
    original_id: str,
    total: str | float,
    *,
    document: str | None = ANA,
    completed: bool = True,
    **fields: Any,
) -> Any:
    """POST /orders; returns the Result. The customer is given by their CPF."""
    body: dict[str, Any] = {
        "OriginalId": original_id,
        "OrderTotal": total,
        "IsCompleted": completed,
    }
    if document is not None:
        body["Customer"] = {"Document": document, **fields.pop("customer", {})}
    body.update(fields)
    return ok(client.post(ORDERS, headers=merchant.headers, json=body))


def available(
    client: Any,
    merchant: Merchant,
    purchase: str | float,
    discount: str | float | None = None,
    customer: str = ANA,
) -> dict[str, Any]:
    body = {"CustomerId": customer, "PurchaseValue": purchase, "DiscountValue": discount}
    response = client.post(AVAILABLE, headers=merchant.headers, json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def reward_in(answer: dict[str, Any], reward_id: int) -> dict[str, Any]:
    (found,) = [r for r in answer["Rewards"] if r["Id"] == reward_id]
    return dict(found)


def redeem(
    client: Any,
    merchant: Merchant,
    reward_id: int,
    key: str,
    customer: str = ANA,
    value: str | float | None = None,
) -> Any:
    body: dict[str, Any] = {"CustomerId": customer, "OriginalKey": key, "RedeemOrigin": 5}
    if value is not None:
        body["Value"] = value
    return client.post(redeem_path(reward_id), headers=merchant.headers, json=body)


def code_in(text: str) -> str:
    found = re.findall(r"\b\d{6}\b", text)
    assert len(found) == 1, text
    return str(found[0])


def challenge(
    client: Any, merchant: Merchant, transaction: str = "T1", document: str = ANA, **body: Any
) -> dict[str, Any]:
    response = client.post(
        challenge_path(document),
        headers=merchant.headers,
        json={"TransactionId": transaction, **body},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def validate(
    client: Any, merchant: Merchant, code: str, transaction: str = "T1", document: str = ANA
) -> bool:
    response = client.post(
        challenge_path(document, validate=True),
        headers=merchant.headers,
        json={"TransactionId": transaction, "Code": code},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["TransactionId"] == transaction
    assert set(body) == {"TransactionId", "Success", "FriendlyErrorMessage"}, body
    return bool(body["Success"])
