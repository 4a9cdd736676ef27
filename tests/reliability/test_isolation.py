"""Tenant isolation. The authenticated operations are found, not listed: every operation of
the app's OpenAPI schema outside the public ones must answer 401 to wrong credentials
(made up, or merchant A's token with B's key). Then, for each of them, merchant A's valid
credentials are used against merchant B's resources (PINs and their QR, redemptions,
orders, rewards, customers): aimed at a resource of B's, the request is refused (4xx); in
any case the answer reveals nothing of B (no name, document, contact, code or order of B's
that the request did not itself carry), and none of B's rows changes.

Operations with a door-specific case below get it; any other (a new door's) gets a generic
one: B's identifiers in every path parameter and identifier-looking body field.

No call is skipped. The public operations (no merchant credential) are called too, each with
its own case below: wrong signatures or tokens are refused, A's public pages and lookups
reveal nothing of B, and mixing A's and B's identifiers in the public redemption or in the
token exchange is refused; a public operation without a case fails the test. A call aimed
at a PIN code that A happens to share with B is still made (it is A's own then: not
required to be refused, but it must reveal and change nothing of B's).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import or_, select

from fidelia.dialects.pdv.rewards import REDEMPTION_IDS
from fidelia.kit.db import Database
from fidelia.kit.settings import Settings
from fidelia.models import Base, Pin
from fidelia.simulator.routes import cloud_api_payload
from tests.reliability.doors import Credentials, is_public, wrong_credentials
from tests.reliability.summary import SUMMARY
from tests.support.world import Merchant, two_merchants

POS = "/v1/pvt/POS"


@dataclass
class Call:
    method: str
    url: str
    body: Any = None
    refused: bool = True  # aimed at a resource of B's: must be a 4xx
    headers: dict[str, str] | None = None  # instead of A's credentials for the door


Case = Callable[[Merchant, Merchant], list[Call]]


def b_order(b: Merchant) -> str:
    return f"{b.slug}-2"  # pending, with a redemption linked through its coupon


# Door-specific cases, keyed by "METHOD /path/template".
CASES: dict[str, Case] = {
    "POST /api/v1/integraciones/pin/generar": lambda a, b: [
        Call("POST", "/api/v1/integraciones/pin/generar", None, refused=False)
    ],
    "GET /api/v1/integraciones/pin/{pin}/qr.{fmt}": lambda a, b: [
        Call("GET", f"/api/v1/integraciones/pin/{code}/qr.{fmt}")
        for code in (b.open_pin, b.used_pin)
        for fmt in ("svg", "png")
    ],
    "POST /v1/pvt/POS/rewards/available": lambda a, b: [
        Call(
            "POST",
            f"{POS}/rewards/available",
            {"CustomerId": who, "PurchaseValue": 100},
            refused=False,
        )
        for who in (b.document, b.email)
    ],
    "POST /v1/pvt/POS/rewards/{reward_id}/redeem": lambda a, b: [
        # B's reward for B's customer, for A's customer; and A's own reward with B's key:
        # keys are per merchant, so this is A's first use of it (never B's answer replayed).
        *(
            Call(
                "POST",
                f"{POS}/rewards/{reward}/redeem",
                {"CustomerId": who, "OriginalKey": f"iso-{reward}-{who}", "Value": "5.00"},
            )
            for reward in b.rewards.values()
            for who in (b.document, a.document)
        ),
        Call(
            "POST",
            f"{POS}/rewards/{a.rewards['custom']}/redeem",
            {"CustomerId": b.document, "OriginalKey": b.original_key},
        ),
        Call(
            "POST",
            f"{POS}/rewards/{a.rewards['custom']}/redeem",
            {"CustomerId": a.document, "OriginalKey": b.original_key},
            refused=False,
        ),
    ],
    "DELETE /v1/pvt/POS/rewards/{redemption_ref}": lambda a, b: [
        Call("DELETE", f"{POS}/rewards/{ref}")
        for ref in (b.external_code, REDEMPTION_IDS + b.redemption_id)  # the door's id
    ],
    "DELETE /v1/pvt/POS/rewards": lambda a, b: [
        # Not key-1: A used B's key-1 for a redemption of its own (the redeem case).
        Call("DELETE", f"{POS}/rewards?OriginalKey={b.slug}-key-3"),
        Call("DELETE", f"{POS}/rewards", {"OriginalKey": f"{b.slug}-key-2"}),
    ],
    "POST /v1/pvt/POS/customers/{document}/challenge": lambda a, b: [
        Call("POST", f"{POS}/customers/{who}/challenge", {"TransactionId": "T-iso"})
        for who in (b.document, b.email)
    ],
    "POST /v1/pvt/POS/customers/{document}/challengevalidate": lambda a, b: [
        Call(
            "POST",
            f"{POS}/customers/{b.document}/challengevalidate",
            {"TransactionId": "T-1", "Code": "000000"},
        )
    ],
    "POST /v1/pvt/POS/orders": lambda a, b: [
        # B's coupon on A's order: A's order, and B's redemption stays unlinked.
        Call(
            "POST",
            f"{POS}/orders",
            {
                "OriginalId": "iso-1",
                "OrderTotal": 50,
                "Coupon": b.external_code,
                "Customer": {"Document": a.document},
            },
            refused=False,
        ),
        # B's order id: A gets an order of its own with that OriginalId (not the one the
        # cancel cases aim at, which would then be A's own).
        Call(
            "POST",
            f"{POS}/orders",
            {"OriginalId": f"{b.slug}-1", "OrderTotal": 10, "IsCancelledOrReturned": True},
            refused=False,
        ),
    ],
    "POST /v1/pvt/POS/orders/{order_ref}/cancel": lambda a, b: [
        Call("POST", f"{POS}/orders/{ref}/cancel", {})
        for ref in (b_order(b), f"{b.slug}-3", *map(str, b.orders.values()))
    ],
    "POST /v1/pvt/POS/{order_ref}/partialcancel": lambda a, b: [
        Call("POST", f"{POS}/{ref}/partialcancel", {"ValueToRefund": 1, "CancelKey": "iso"})
        for ref in (b_order(b), f"{b.slug}-3", *map(str, b.orders.values()))
    ],
}


BAD_SIGNATURE = "sha256=" + "0" * 64
GRAPH = "/simulator/graph/v{version}/{phone_number_id}/messages"


def public_cases(settings: Settings) -> dict[str, tuple[list[dict[str, str]], Case, int]]:
    """The public operations: (wrong credentials, the case, the status wrong ones get).
    Each is called; a new public operation must be added here."""
    graph_url = GRAPH.format(version="21.0", phone_number_id=settings.whatsapp_phone_number_id)
    graph = {"authorization": f"Bearer {settings.whatsapp_token}"}
    redeem = "/api/v1/redimir/canjear"
    return {
        # A's public page and a lookup of A's customer name nothing of B.
        "GET /api/v1/redimir/comercio/{slug}": (
            [],
            lambda a, b: [Call("GET", f"/api/v1/redimir/comercio/{a.slug}", refused=False)],
            401,
        ),
        "GET /api/v1/redimir/puntos/{wa}": (
            [],
            lambda a, b: [Call("GET", f"/api/v1/redimir/puntos/{a.whatsapp}", refused=False)],
            401,
        ),
        # The public redemption never mixes merchants: B's customer at A, B's reward at A.
        "POST /api/v1/redimir/canjear": (
            [],
            lambda a, b: [
                Call("POST", redeem, {"whatsapp": who, "id_comercio": a.id, "id_promocion": r})
                for who, r in (
                    (b.whatsapp, a.rewards["custom"]),
                    (b.whatsapp, b.rewards["custom"]),
                    (a.whatsapp, b.rewards["custom"]),
                )
            ],
            401,
        ),
        # The token exchange refuses a credential made of A's half and B's half.
        "POST /v2/auth/token": (
            [],
            lambda a, b: [
                Call("POST", "/v2/auth/token", {"api_key": key, "api_secret": secret})
                for key, secret in ((a.token, b.api_key), (b.token, a.api_key))
            ],
            401,
        ),
        # Revoking takes the token itself (A's would end A's own session: wrong ones only).
        "DELETE /v2/auth/token": ([{"Authorization": "Bearer wrong"}], lambda a, b: [], 401),
        "GET /webhooks/whatsapp": (
            [{}],  # the handshake's verify token is the credential: a wrong one is refused
            lambda a, b: [
                Call(
                    "GET",
                    "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
                    headers={},
                )
            ],
            403,
        ),
        # The webhooks: a body about B's customer, wrongly signed, is not read.
        "POST /webhooks/whatsapp": (
            [{"X-Hub-Signature-256": BAD_SIGNATURE}],
            lambda a, b: [
                Call(
                    "POST",
                    "/webhooks/whatsapp",
                    cloud_api_payload(
                        b.whatsapp,
                        "hola",
                        settings.bot_number,
                        settings.whatsapp_phone_number_id,
                        None,
                    ),
                    headers={"X-Hub-Signature-256": BAD_SIGNATURE},
                )
            ],
            401,
        ),
        "POST /webhooks/bling": (
            [{"X-Bling-Signature-256": BAD_SIGNATURE}],
            lambda a, b: [
                Call(
                    "POST",
                    "/webhooks/bling",
                    {"eventId": "iso", "companyId": b.slug, "event": "order.updated"},
                    headers={"X-Bling-Signature-256": BAD_SIGNATURE},
                )
            ],
            401,
        ),
        # The development simulator: A's customer's conversation shows nothing of B.
        "GET /simulator/api/messages": (
            [],
            lambda a, b: [Call("GET", f"/simulator/api/messages?wa={a.whatsapp}", refused=False)],
            401,
        ),
        "POST /simulator/api/send": (
            [],
            lambda a, b: [Call("POST", "/simulator/api/send", {"wa_number": "x", "text": "hola"})],
            401,
        ),
        f"POST {GRAPH}": (
            [{"authorization": "Bearer wrong"}],
            lambda a, b: [
                Call(
                    "POST",
                    graph_url,
                    {"to": a.whatsapp, "text": {"body": "hola"}},
                    refused=False,
                    headers=graph,
                )
            ],
            401,
        ),
        "GET /healthz": ([], lambda a, b: [Call("GET", "/healthz", refused=False)], 401),
    }


def b_values(b: Merchant) -> dict[str, Any]:
    """B's identifiers, by the names parameters and fields give them."""
    return {
        "pin": b.open_pin,
        "fmt": "svg",
        "document": b.document,
        "cpf": b.document,
        "customerid": b.document,
        "customer_id": b.customer_id,
        "reward_id": b.rewards["fixed"],
        "coupon_id": b.rewards["fixed"],
        "redemption_ref": b.external_code,
        "order_ref": b_order(b),
        "code": b.external_code,
        "coupon": b.external_code,
        "originalkey": b.original_key,
        "external_id": b.original_key,
        "email": b.email,
        "phone": b.phone,
        "phonenumber": b.phone,
        "mobile": b.phone,
        "whatsapp": b.whatsapp,
    }


def resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"]
        return resolve(options[0], components) if options else {}
    return schema


def generic_body(schema: dict[str, Any], components: dict[str, Any], b: Merchant) -> Any:
    """A body with B's identifiers in identifier-looking fields, plausible values in the
    other required ones."""
    schema = resolve(schema, components)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        values = b_values(b)
        body = {}
        required = set(schema.get("required", []))
        for name, sub in schema.get("properties", {}).items():
            key = name.lower()
            if key in values:
                body[name] = values[key]
            elif name in required:
                body[name] = generic_body(sub, components, b)
        return body
    if kind == "array":
        return [generic_body(schema.get("items", {}), components, b)]
    if kind == "integer":
        return 1
    if kind == "number":
        return 10
    if kind == "boolean":
        return False
    if "enum" in schema:
        return schema["enum"][0]
    return "x"


def generic_case(path: str, method: str, operation: dict[str, Any], components: dict[str, Any]):
    def case(a: Merchant, b: Merchant) -> list[Call]:
        values = b_values(b)
        url, aimed = path, False
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "path":
                value = values.get(parameter["name"].lower(), "x")
                aimed = aimed or parameter["name"].lower() in values
                url = url.replace("{" + parameter["name"] + "}", str(value))
        body = None
        content = operation.get("requestBody", {}).get("content", {})
        if "application/json" in content:
            body = generic_body(content["application/json"].get("schema", {}), components, b)
        return [Call(method.upper(), url, body, refused=aimed)]

    return case


def rows_of(db: Database, m: Merchant) -> dict[str, list[str]]:
    """Every row of every table that belongs to merchant ``m`` or its program."""
    found: dict[str, list[str]] = {}
    with db.session(readonly=True) as s:
        for table in Base.metadata.sorted_tables:
            conditions = []
            if "tenant_id" in table.c:
                conditions.append(table.c.tenant_id == m.id)
            if "program_id" in table.c:
                conditions.append(table.c.program_id == m.program_id)
            if not conditions:
                continue
            rows = s.execute(select(table).where(or_(*conditions))).all()
            found[table.name] = sorted(repr(tuple(row)) for row in rows)
    return found


def leaks(text: str, b: Merchant, sent: str) -> list[str]:
    return [value for value in b.secrets() if value in text and value not in sent]


@pytest.fixture
def world(client, db, settings) -> tuple[Merchant, Merchant]:
    return two_merchants(client, db, settings)


def test_merchant_a_cannot_reach_merchant_b(app, client, db, world, settings):
    a, b = world
    schema = app.openapi()
    components = schema.get("components", {}).get("schemas", {})
    credentials = Credentials(client, a)
    public = public_cases(settings)
    with db.session(readonly=True) as s:  # a PIN code B shares with A would not be B's alone
        a_pins = set(s.scalars(select(Pin.code).where(Pin.tenant_id == a.id)))
    problems: list[str] = []
    authenticated = 0
    calls = 0
    b_before = rows_of(db, b)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            label = f"{method.upper()} {path}"
            if is_public(path):
                if label not in public:
                    problems.append(f"{label}: a public operation without an isolation case")
                    continue
                wrongs, case, wrong_status = public[label]
            else:
                authenticated += 1
                wrongs, wrong_status = wrong_credentials(path, a, b), 401
                case = CASES.get(label) or generic_case(path, method, operation, components)
            for wrong in wrongs:
                url = generic_case(path, method, operation, components)(a, b)[0].url
                answer = client.request(method.upper(), url, headers=wrong, json={})
                calls += 1
                if answer.status_code != wrong_status:
                    problems.append(f"{label}: wrong credentials answered {answer.status_code}")
            for call in case(a, b):
                refused = call.refused and not any(code in call.url for code in a_pins)
                sent = call.url + json.dumps(call.body)
                headers = call.headers
                if headers is None:
                    headers = credentials.for_path(path, method)
                answer = client.request(call.method, call.url, headers=headers, json=call.body)
                calls += 1
                what = f"{label} as {call.method} {call.url} {call.body or ''}".strip()
                if answer.status_code >= 500:
                    problems.append(f"{what}: {answer.status_code}")
                if refused and not 400 <= answer.status_code < 500:
                    problems.append(f"{what}: not refused ({answer.status_code} {answer.text})")
                leaked = leaks(answer.text, b, sent)
                if leaked:
                    problems.append(f"{what}: reveals {leaked} of B: {answer.text[:300]}")
                b_now = rows_of(db, b)
                changed = [t for t in b_before if b_before[t] != b_now[t]]
                if changed:
                    problems.append(f"{what}: changed B's {changed}")
                    b_before = b_now
    backend = "sqlite" if db.is_sqlite else "postgresql"
    SUMMARY.sent(calls)
    SUMMARY.note(
        f"isolation [{backend}]: {authenticated} authenticated and {len(public)} public "
        f"operations, {calls} requests with wrong credentials or A's against B's resources; "
        "refused, nothing of B revealed or changed"
    )
    SUMMARY.violated(f"isolation {backend}", problems)
    assert not problems, "\n".join(problems)
    assert authenticated >= 10
    unused = set(public) - {f"{m.upper()} {p}" for p, ops in schema["paths"].items() for m in ops}
    assert not unused, f"isolation cases for operations that are gone: {sorted(unused)}"
