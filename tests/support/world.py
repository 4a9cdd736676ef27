"""A merchant with a bit of everything, made the way its clients would: orders, redemptions
(one cancelled), a partial refund, a cancelled order that leaves a negative balance, PINs
(one open, one credited through the signed webhook) and a customer who validated a
challenge. Used by the ``fidelia check`` tests and the reliability suite (fuzzing, tenant
isolation), which need real rows of every kind to aim at."""

import base64
from dataclasses import dataclass, field
from typing import Any

from fidelia.dialects.pdv.rewards import REDEMPTION_IDS
from fidelia.kit.db import Database
from fidelia.kit.settings import Settings
from fidelia.models import Tenant
from fidelia.rewards.service import create_reward
from fidelia.tenants.service import create_tenant, issue_api_key, set_setting
from tests.support.helpers import generate_pin, send_whatsapp

POS = "/v1/pvt/POS"


def basic(token: str, api_key: str) -> dict[str, str]:
    raw = base64.b64encode(f"{token}:{api_key}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


@dataclass
class Merchant:
    id: int
    slug: str
    name: str
    program_id: int
    token: str
    api_key: str
    document: str  # the main customer's CPF
    customer_id: int = 0
    customer_name: str = ""
    phone: str = ""
    email: str = ""
    whatsapp: str = ""
    rewards: dict[str, int] = field(default_factory=dict)  # custom, fixed, cashback
    orders: dict[str, int] = field(default_factory=dict)  # OriginalId -> id
    redemption_id: int = 0
    external_code: str = ""
    original_key: str = ""
    open_pin: str = ""
    used_pin: str = ""

    @property
    def pos(self) -> dict[str, str]:
        """HTTP Basic for the POS door."""
        return basic(self.token, self.api_key)

    @property
    def key(self) -> dict[str, str]:
        """X-API-Key for the PIN door."""
        return {"X-API-Key": self.api_key}

    def secrets(self) -> list[str]:
        """Values that identify this merchant's data: none may appear in another merchant's
        answers."""
        values = [
            self.name,
            self.slug,
            self.document,
            self.customer_name,
            self.phone.lstrip("+"),
            self.email,
            self.whatsapp.lstrip("+"),
            self.external_code,
            self.token,
            *self.orders,
        ]
        return [v for v in values if v]


def _ok(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    if "HasError" in body:
        assert body["HasError"] is False, body
    return body


def build_merchant(
    client: Any,
    db: Database,
    settings: Settings,
    *,
    slug: str,
    name: str,
    document: str,
    phone: str,
    email: str,
    whatsapp: str,
    customer_name: str,
) -> Merchant:
    """Settings: 1 point per R$ 1, a point worth R$ 0.10, 5 % cashback, 10 points a PIN."""
    with db.session() as session:
        tenant = create_tenant(
            session,
            slug=slug,
            name=name,
            currency="BRL",
            timezone="America/Sao_Paulo",
            locale="pt_BR",
        )
        for key, value in {
            "earn_points_per_unit": "1",
            "point_value": "0.10",
            "cashback_percent": "5",
            "points_per_pin": "10",
            "sandbox": "true",
        }.items():
            set_setting(session, slug, key, value)
        rewards = {
            "custom": create_reward(session, tenant, title=f"Brinde {name}", points=10).id,
            "fixed": create_reward(
                session, tenant, title=f"R$ 10 {name}", points=100, reward_type="fixed", value="10"
            ).id,
            "cashback": create_reward(
                session, tenant, title=f"Cashback {name}", points=None, reward_type="cashback"
            ).id,
        }
        issued = issue_api_key(session, session.get_one(Tenant, tenant.id))
        merchant = Merchant(
            id=tenant.id,
            slug=slug,
            name=name,
            program_id=tenant.program_id,
            token=issued.token,
            api_key=issued.api_key,
            document=document,
            customer_name=customer_name,
            phone=phone,
            email=email,
            whatsapp=whatsapp,
            rewards=rewards,
        )
    h = merchant.pos
    customer = {"Document": document, "Name": customer_name, "Phone": phone, "Email": email}
    first = _ok(
        client.post(
            f"{POS}/orders",
            headers=h,
            json={
                "OriginalId": f"{slug}-1",
                "OrderTotal": 500,
                "IsCompleted": True,
                "Customer": customer,
            },
        )
    )["Result"]
    merchant.orders[f"{slug}-1"] = first["Id"]
    available = _ok(
        client.post(
            f"{POS}/rewards/available",
            headers=h,
            json={"CustomerId": document, "PurchaseValue": 100},
        )
    )
    merchant.customer_id = available["Customer"]["Id"]
    merchant.original_key = f"{slug}-key-1"
    redeemed = _ok(
        client.post(
            f"{POS}/rewards/{rewards['fixed']}/redeem",
            headers=h,
            json={"CustomerId": document, "OriginalKey": merchant.original_key},
        )
    )["Result"]
    merchant.external_code = redeemed["ExternalCode"]
    # The POS door's redemption ids are REDEMPTION_IDS + the row's id.
    merchant.redemption_id = (
        int(
            _ok(client.delete(f"{POS}/rewards/{merchant.external_code}", headers=h))["Result"]["Id"]
        )
        - REDEMPTION_IDS
    )
    # Redeemed again, kept this time, and used by an order that is still pending.
    again = _ok(
        client.post(
            f"{POS}/rewards/{rewards['fixed']}/redeem",
            headers=h,
            json={"CustomerId": document, "OriginalKey": f"{slug}-key-2"},
        )
    )["Result"]
    pending = _ok(
        client.post(
            f"{POS}/orders",
            headers=h,
            json={
                "OriginalId": f"{slug}-2",
                "OrderTotal": 120,
                "Coupon": again["ExternalCode"],
                "Customer": {"Document": document},
            },
        )
    )["Result"]
    merchant.orders[f"{slug}-2"] = pending["Id"]
    _ok(
        client.post(
            f"{POS}/rewards/{rewards['cashback']}/redeem",
            headers=h,
            json={"CustomerId": document, "OriginalKey": f"{slug}-key-3", "Value": "5.00"},
        )
    )
    _ok(
        client.post(
            f"{POS}/{slug}-1/partialcancel",
            headers=h,
            json={"ValueToRefund": 100, "CancelKey": f"{slug}-refund-1"},
        )
    )
    # The rest of the first order is cancelled after its points were spent: the balance goes
    # negative, and the next order pays that debt first.
    _ok(client.post(f"{POS}/orders/{slug}-1/cancel", headers=h, json={}))
    third = _ok(
        client.post(
            f"{POS}/orders",
            headers=h,
            json={
                "OriginalId": f"{slug}-3",
                "OrderTotal": 400,
                "IsCompleted": True,
                "Customer": {"Document": document},
            },
        )
    )["Result"]
    merchant.orders[f"{slug}-3"] = third["Id"]
    sent = _ok(
        client.post(
            f"{POS}/customers/{document}/challenge", headers=h, json={"TransactionId": "T-1"}
        )
    )
    _ok(
        client.post(
            f"{POS}/customers/{document}/challengevalidate",
            headers=h,
            json={"TransactionId": "T-1", "Code": sent["Code"]},
        )
    )
    merchant.used_pin = generate_pin(client, merchant.api_key)
    send_whatsapp(client, settings, whatsapp, f"Quiero activar mi PIN: {merchant.used_pin}")
    send_whatsapp(client, settings, whatsapp, customer_name)
    merchant.open_pin = generate_pin(client, merchant.api_key)
    return merchant


def two_merchants(client: Any, db: Database, settings: Settings) -> tuple[Merchant, Merchant]:
    a = build_merchant(
        client,
        db,
        settings,
        slug="loja-a",
        name="Loja Alfa",
        document="52998224725",
        phone="11987654321",
        email="ana@alfa.example",
        whatsapp="+5511987650001",
        customer_name="Ana Alfa",
    )
    b = build_merchant(
        client,
        db,
        settings,
        slug="loja-b",
        name="Loja Beta",
        document="11144477735",
        phone="21987654322",
        email="bia@beta.example",
        whatsapp="+5521987650002",
        customer_name="Bia Beta",
    )
    return a, b
