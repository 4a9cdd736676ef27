"""Plain helpers for the panel tests: accounts made through the services, and a client
that signs in and sends forms the way a browser does (the CSRF token from the page)."""

import re
from dataclasses import dataclass, field
from typing import Any

from fidelia.customers.service import identify
from fidelia.kit.db import Database
from fidelia.models import OutboxMessage, Tenant
from fidelia.pins.service import generate, namespace_of
from fidelia.tenants.service import create_tenant, issue_api_key
from fidelia.users import service as users

PASSWORD = "correct horse 1"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


@dataclass
class Merchant:
    tenant_id: int
    slug: str
    owner: str
    cashier: str
    cashier_id: int
    invitation_id: int
    invitation_token: str
    api_key: str
    customer_id: int = 0  # a customer of the merchant's program (phone +50688880001)
    pin_id: int = 0  # an open sale PIN of the merchant
    samples: dict[str, str] = field(default_factory=dict)  # path parameter -> an id of its
    message_id: int = 0  # a failed outbox message of the merchant


def make_merchant(db: Database, slug: str, locale: str = "es", records: bool = False) -> Merchant:
    """A merchant with its owner, a cashier, an open invitation and an API key; with
    ``records``, also a customer, an open sale PIN and a failed outbox message (the role
    matrix's path samples; other tests count rows, so they are not there by default)."""
    with db.session() as session:
        tenant = create_tenant(session, slug=slug, name=f"Shop {slug}", locale=locale)
        owner = users.create_user(
            session, email=f"owner@{slug}.test", password=PASSWORD, role="owner", tenant=tenant
        )
        cashier = users.create_user(
            session, email=f"cashier@{slug}.test", password=PASSWORD, role="cashier", tenant=tenant
        )
        invitation, token = users.invite(session, tenant.id, f"new@{slug}.test", owner.id, 72)
        key = issue_api_key(session, tenant)
        merchant = Merchant(
            tenant.id,
            slug,
            owner.email,
            cashier.email,
            cashier.id,
            invitation.id,
            token,
            key.api_key,
            samples={"{key_id}": str(key.id)},
        )
        if records:
            _add_records(session, tenant, merchant)
        return merchant


def _add_records(session: Any, tenant: Tenant, merchant: Merchant) -> None:
    customer = identify(session, tenant, {"phone": "+50688880001"}, name="Ana Sample")
    pin = generate(session, tenant, namespace_of(tenant, "50600000000"))
    message = OutboxMessage(
        tenant_id=tenant.id,
        channel="whatsapp",
        payload={"to": "50688887777", "text": {"body": f"Hola from {merchant.slug}"}},
        status="failed",
        attempts=12,
        last_error="HTTP 500 from the gateway",
    )
    session.add(message)
    session.flush()
    merchant.customer_id, merchant.pin_id, merchant.message_id = customer.id, pin.id, message.id


def add_samples(db: Database, merchant: Merchant) -> None:
    """One reward, earning rule, segment and deal of the merchant, as path samples for the
    role matrix (not made by make_merchant: other tests count these)."""
    with db.session() as session:
        tenant = session.get_one(Tenant, merchant.tenant_id)
        merchant.samples.update(_samples(session, tenant))


def _samples(session: Any, tenant: Tenant) -> dict[str, str]:
    from fidelia.events.deals import create_deal
    from fidelia.events.segments import create_segment
    from fidelia.events.service import create_rule
    from fidelia.rewards.service import create_reward

    segment = create_segment(session, tenant, "Regulars", {"tag": "vip"})
    return {
        "{reward_id}": str(create_reward(session, tenant, title="Sample", points=5).id),
        "{rule_id}": str(create_rule(session, tenant, "visit", 1, None).id),
        "{segment_id}": str(segment.id),
        "{deal_id}": str(
            create_deal(session, tenant, name="Sample", discount_type="points", value=1).id
        ),
    }


def make_operator(db: Database, email: str = "staff@platform.test") -> str:
    with db.session() as session:
        users.create_user(session, email=email, password=PASSWORD, role="operator", tenant=None)
    return email


def tenant_of(db: Database, tenant_id: int) -> Tenant:
    with db.session(readonly=True) as session:
        return session.get_one(Tenant, tenant_id)


def csrf_token(client: Any, path: str = "/panel/login") -> str:
    page = client.get(path)
    found = TOKEN.search(page.text) or META.search(page.text)
    assert found, f"no CSRF token on {path}: {page.status_code}"
    return found.group(1)


def sign_in(client: Any, email: str, password: str = PASSWORD) -> Any:
    token = csrf_token(client)
    answer = client.post(
        "/panel/login",
        data={"csrf_token": token, "email": email, "password": password},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return answer


def post(client: Any, path: str, data: dict[str, str] | None = None, **kw: Any) -> Any:
    """A form POST with the CSRF token of the visitor's cookie."""
    token = csrf_token(client)
    return client.post(path, data={"csrf_token": token, **(data or {})}, **kw)
