"""Bling connector (seed 003): a fake Bling on loopback, settings pointing at it, and
helpers to connect a merchant the way a browser would."""

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import func, select

from fidelia.connectors.bling import service
from fidelia.connectors.bling.client import Bling
from fidelia.kit.db import Database
from fidelia.kit.settings import Settings
from fidelia.ledger.service import CASHBACK, POINTS, Account, balance
from fidelia.models import BlingConnection, Tenant
from fidelia.tenants.service import create_tenant, set_setting
from tests.fakes.bling import Company, FakeBling

ANA = "52998224725"  # valid CPFs
BIA = "11144477735"
CNPJ = "11222333000181"
BINDING = "browser-session-0123456789"


@pytest.fixture
def fake() -> Iterator[FakeBling]:
    server = FakeBling()
    yield server
    server.close()


@pytest.fixture
def settings(settings: Settings, fake: FakeBling) -> Settings:
    return settings.model_copy(
        update={
            "bling_client_id": fake.client_id,
            "bling_client_secret": fake.client_secret,
            "bling_api_base": fake.url,
            "bling_authorize_url": f"{fake.url}/oauth/authorize",
            "bling_requests_per_second": 1000.0,  # the pacing test sets its own
        }
    )


@pytest.fixture
def bling(db: Database, settings: Settings) -> Iterator[Bling]:
    client = Bling(db, settings, page_size=5)
    yield client
    client.close()


def make_merchant(db: Database, slug: str = "loja") -> Tenant:
    """A Brazilian shop: 1 point per R$ 1, 5% cashback, R$ 0.05 a point."""
    with db.session() as session:
        create_tenant(session, slug=slug, name="Loja Bling")
        for key, value in {
            "currency": "BRL",
            "locale": "pt_BR",
            "timezone": "America/Sao_Paulo",
            "earn_points_per_unit": "1",
            "cashback_percent": "5",
            "point_value": "0.05",
        }.items():
            set_setting(session, slug, key, value)
        tenant = session.scalar(select(Tenant).where(Tenant.slug == slug))
        assert tenant is not None
        return tenant


def authorize(db: Database, settings: Settings, tenant: Tenant, binding: str = BINDING) -> str:
    """start_connect as the panel would; returns the state Bling will send back."""
    with db.session() as session:
        url = service.start_connect(session, session.get_one(Tenant, tenant.id), binding, settings)
    query = parse_qs(urlparse(url).query)
    assert query["client_id"] == [settings.bling_client_id]
    return query["state"][0]


def callback(client: Any, state: str, code: str, binding: str | None = BINDING) -> Any:
    client.cookies.clear()
    if binding is not None:
        client.cookies.set(service.BINDING_COOKIE, binding, path="/connectors/bling")
    return client.get(
        "/connectors/bling/callback",
        params={"code": code, "state": state},
        follow_redirects=False,
    )


def connect(
    client: Any, db: Database, settings: Settings, fake: FakeBling, tenant: Tenant
) -> Company:
    company = fake.add_company()
    state = authorize(db, settings, tenant)
    answer = callback(client, state, fake.issue_code(company.id))
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/panel/integrations?bling=connected"
    return company


def connection(db: Database, tenant: Tenant) -> BlingConnection | None:
    with db.session(readonly=True) as session:
        return session.scalar(select(BlingConnection).where(BlingConnection.tenant_id == tenant.id))


def wallet(db: Database, tenant: Tenant, customer_id: int) -> tuple[int, int]:
    with db.session(readonly=True) as session:
        program = session.get_one(Tenant, tenant.id).program_id
        return (
            balance(session, Account(program, customer_id, POINTS)),
            balance(session, Account(program, customer_id, CASHBACK)),
        )


def count(db: Database, model: Any) -> int:
    with db.session(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)
