"""The API docs work offline and door by door: Swagger UI and ReDoc load only files this
server serves, every door has its own OpenAPI document with its real security scheme, and
the home page lists every door."""

import base64
import copy
import json
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import jsonschema_rs
import pytest
from pydantic import BaseModel
from sqlalchemy import func, select

from fidelia.customers.directory import find_any
from fidelia.doors import DOORS
from fidelia.events.deals import create_deal
from fidelia.events.segments import create_segment
from fidelia.events.service import create_rule
from fidelia.kit import clock
from fidelia.kit.examples import Example, Operation, illustrate
from fidelia.kit.settings import Settings
from fidelia.ledger.service import CASHBACK, POINTS, Account, balance
from fidelia.models import Customer, InboundMessage, Tenant
from fidelia.rewards.service import ProductOptions, create_reward
from fidelia.tenants.service import create_tenant, issue_api_key, set_setting
from fidelia.vouchers.service import issue
from tests.support.helpers import send_whatsapp, signed_headers

ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']|url: *'([^']+)'""")


def local_assets(html: str) -> list[str]:
    found = [a or b for a, b in ASSET.findall(html)]
    assert found, html
    return found


@pytest.fixture(params=["sqlite"])
def database_url(request, tmp_path, sqlite_template):  # the docs do not touch the database
    import shutil

    target = tmp_path / "fidelia.db"
    shutil.copy(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.mark.parametrize(
    "page",
    ["/docs", "/redoc", *(f"/docs/{d.key}" for d in DOORS), *(f"/redoc/{d.key}" for d in DOORS)],
)
def test_doc_pages_load_only_what_this_server_serves(client, page):
    response = client.get(page)
    assert response.status_code == 200
    for url in local_assets(response.text):
        assert url.startswith("/"), f"{page} loads {url} from elsewhere"
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    assert "cdn" not in response.text.lower()
    assert "fonts.googleapis" not in response.text


def test_every_operation_belongs_to_one_door_document(client):
    combined = client.get("/openapi.json").json()
    covered: dict[str, str] = {}
    for door in DOORS:
        spec = client.get(f"/openapi/{door.key}.json").json()
        assert spec["paths"], door.key
        for path in spec["paths"]:
            assert path not in covered, (path, covered.get(path), door.key)
            covered[path] = door.key
        # Every schema a door's operations refer to is in that door's document.
        text = str(spec)
        for name in re.findall(r"#/components/schemas/([\w.-]+)", text):
            assert name in spec["components"]["schemas"], (door.key, name)
    outside = [
        p
        for p in combined["paths"]
        if p not in covered and not p.startswith(("/simulator", "/healthz"))
    ]
    assert outside == []


EXPECTED = {
    "pin": ("PinApiKey", {"type": "apiKey", "in": "header", "name": "X-API-Key"}),
    "pos": ("PosBasic", {"type": "http", "scheme": "basic"}),
    "retail": ("RetailApiKey", {"type": "apiKey", "in": "header", "name": "x-api-key"}),
    "rest-v2": ("BearerToken", {"type": "http", "scheme": "bearer"}),
}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_each_door_declares_its_real_security_scheme(client, key):
    name, scheme = EXPECTED[key]
    spec = client.get(f"/openapi/{key}.json").json()
    declared = spec["components"]["securitySchemes"][name]
    assert {k: declared[k] for k in scheme} == scheme
    public = {
        ("get", "/api/v1/redimir/comercio/{slug}"),
        ("get", "/api/v1/redimir/puntos/{wa}"),
        ("post", "/api/v1/redimir/canjear"),
        ("post", "/v2/auth/token"),
    }
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if (method, path) in public:
                assert "security" not in operation, (method, path)
                continue
            assert operation.get("security") == [{name: []}], (method, path)
            headers = [
                p["name"].lower() for p in operation.get("parameters", []) if p["in"] == "header"
            ]
            assert "x-api-key" not in headers, (method, path)  # the scheme carries it
    if key == "retail":  # the other required headers stay documented, required
        params = spec["paths"]["/v1/member/details"]["post"]["parameters"]
        required = {p["name"] for p in params if p.get("required")}
        assert {"x-source-type", "x-source-name", "x-branch-id", "x-pos-id"} <= required


def test_an_unknown_door_is_a_404(client):
    assert client.get("/openapi/nope.json").status_code == 404
    assert client.get("/docs/nope").status_code == 404


def test_home_lists_every_door_with_base_auth_and_docs(client):
    html = client.get("/").text
    for door in DOORS:
        row = re.search(rf'<tr data-door="{re.escape(door.key)}">(.*?)</tr>', html, re.S)
        assert row, door.key
        cells = row.group(1)
        assert door.guide in cells and f"<code>{door.base}</code>" in cells
        for link in (f"/docs/{door.key}", f"/redoc/{door.key}", f"/openapi/{door.key}.json"):
            assert f'href="{link}"' in cells
            assert client.get(link).status_code == 200


# -- examples ---------------------------------------------------------------------------------
# Every operation of every door document carries examples (request body, required
# parameters, success answer), they validate against the operation's own schemas, and the
# request examples, sent to the app, succeed with an answer shaped like the documented one.

SUCCESS = re.compile(r"2\d\d")


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch"):
                yield method.upper(), path, operation


def missing_examples(spec: dict[str, Any]) -> list[str]:
    """What the document's operations lack: an example for each required parameter and for
    each media type of the request body, and one for each success answer with a body (a 204
    has none to give)."""
    missing = []
    for method, path, operation in operations(spec):
        where = f"{method} {path}"
        for param in operation.get("parameters", []):
            if param.get("required") and "example" not in param:
                missing.append(f"{where}: parameter {param['name']}")
        for media, content in operation.get("requestBody", {}).get("content", {}).items():
            if not content.get("examples"):
                missing.append(f"{where}: request {media}")
        successes = {s: r for s, r in operation["responses"].items() if SUCCESS.fullmatch(s)}
        if not successes:
            missing.append(f"{where}: no success response")
        for status, response in successes.items():
            content = response.get("content", {})
            if content and not any(c.get("examples") for c in content.values()):
                missing.append(f"{where}: response {status}")
    return missing


def door_specs(client: Any) -> dict[str, dict[str, Any]]:
    return {door.key: client.get(f"/openapi/{door.key}.json").json() for door in DOORS}


def test_every_operation_of_every_door_has_examples(client):
    for key, spec in door_specs(client).items():
        assert missing_examples(spec) == [], key


def test_an_operation_added_without_examples_is_caught(app, client):
    """The check reads the served document, not a list: a route added to a door with no
    examples is reported (its body and its answer)."""

    class Gift(BaseModel):
        name: str

    @app.post("/v2/gifts", status_code=201)
    def gifts(body: Gift) -> Gift:
        return body

    app.openapi_schema = None  # regenerate with the new route
    spec = client.get("/openapi/rest-v2.json").json()
    assert missing_examples(spec) == [
        "POST /v2/gifts: request application/json",
        "POST /v2/gifts: response 201",
    ]


def closed(node: Any) -> Any:
    """The schema with every object that lists its properties closed to others (unless it
    says otherwise), so an example cannot carry a field the door does not have."""
    if isinstance(node, list):
        return [closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    found = {key: closed(value) for key, value in node.items()}
    if "properties" in found and "additionalProperties" not in found:
        found["additionalProperties"] = False
    return found


def problems(schema: dict[str, Any], components: dict[str, Any], value: Any) -> list[str]:
    root = closed({**schema, "components": components})
    validator = jsonschema_rs.Draft202012Validator(root, validate_formats=True)
    return [f"{list(e.instance_path)}: {e.message}" for e in validator.iter_errors(value)]


def test_every_example_validates_against_its_schema(client):
    checked = 0
    for key, spec in door_specs(client).items():
        components = spec["components"]
        for method, path, operation in operations(spec):
            where = f"{key}: {method} {path}"
            for param in operation.get("parameters", []):
                if "example" in param:
                    found = problems(param["schema"], components, param["example"])
                    assert found == [], (where, param["name"], found)
                    checked += 1
            bodies = [("request", operation.get("requestBody", {}).get("content", {}))]
            bodies += [(s, r.get("content", {})) for s, r in operation["responses"].items()]
            for what, content in bodies:
                for media, typed in content.items():
                    for name, example in typed.get("examples", {}).items():
                        assert example["summary"], (where, what, name)
                        if "schema" not in typed:  # an image: no schema to check against
                            continue
                        found = problems(typed["schema"], components, example["value"])
                        assert found == [], (where, what, media, name, found)
                        checked += 1
    assert checked > 250  # request, success and refusal examples of every door


def test_a_wrong_example_is_caught(client):
    """The validation is not vacuous: a field of the wrong type, or one the schema does not
    have, is reported."""
    spec = client.get("/openapi/pin.json").json()
    schema = spec["paths"]["/api/v1/redimir/canjear"]["post"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    good = {"ok": True, "puntos_restantes": 0, "recompensa": "Café gratis", "mensaje": "ok"}
    assert problems(schema, spec["components"], good) == []
    assert problems(schema, spec["components"], {**good, "puntos_restantes": "0"})
    assert problems(schema, spec["components"], {**good, "puntos": 0})


# -- the examples, sent ---------------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Limits raised: each live test below makes a door's calls back to back."""
    return settings.model_copy(
        update={
            "rate_limit_pdv": "10000/second",
            "rate_limit_retail": "10000/second",
            "rate_limit_rest_v2": "10000/second",
            "rate_limit_rest_v2_token": "10000/second",
        }
    )


def shape_diff(actual: Any, documented: Any, where: str = "") -> list[str]:
    """Where an answer and a documented example differ in shape: keys, and the types of
    what both give (null matches anything; a list is compared by its first items)."""
    if isinstance(actual, dict) and isinstance(documented, dict):
        found = [f"{where}.{k}: not documented" for k in actual.keys() - documented.keys()]
        found += [f"{where}.{k}: not answered" for k in documented.keys() - actual.keys()]
        for key in actual.keys() & documented.keys():
            found += shape_diff(actual[key], documented[key], f"{where}.{key}")
        return found
    if isinstance(actual, list) and isinstance(documented, list):
        return shape_diff(actual[0], documented[0], f"{where}[0]") if actual and documented else []
    if actual is None or documented is None:
        return []
    numbers = (int, float)
    if isinstance(actual, bool) or isinstance(documented, bool):
        same = type(actual) is type(documented)
    elif isinstance(actual, numbers) and isinstance(documented, numbers):
        same = True
    else:
        same = type(actual) is type(documented)
    return [] if same else [f"{where}: {actual!r} answered, {documented!r} documented"]


class TryItOut:
    """A door's document, and calls made as Swagger UI's "Try it out" makes them: the
    parameters' examples, a request body example. ``params`` overrides a parameter and
    ``patch`` a top-level field of the body, for ids only known once created."""

    def __init__(self, client: Any, key: str, headers: dict[str, str] | None = None) -> None:
        self.client = client
        self.spec = client.get(f"/openapi/{key}.json").json()
        self.headers = headers or {}
        self.sent: set[tuple[str, str]] = set()

    def __call__(
        self,
        method: str,
        path: str,
        example: str | None = None,
        *,
        params: dict[str, Any] | None = None,
        patch: dict[str, Any] | None = None,
        sign: Callable[[bytes], dict[str, str]] | None = None,
    ) -> Any:
        operation = self.spec["paths"][path][method.lower()]
        declared = operation.get("parameters", [])
        given = {p["name"]: p["example"] for p in declared if "example" in p}
        given.update(params or {})
        url, query, headers = path, {}, dict(self.headers)
        for param in declared:
            if param["name"] not in given:
                continue
            value = given[param["name"]]
            if param["in"] == "path":
                url = url.replace(f"{{{param['name']}}}", quote(str(value), safe=""))
            elif param["in"] == "query":
                query[param["name"]] = value
            else:
                headers[param["name"]] = str(value)
        body = None
        content = operation.get("requestBody", {}).get("content", {})
        if content:
            examples = content["application/json"]["examples"]
            body = {**examples[example or next(iter(examples))]["value"], **(patch or {})}
        raw = None if body is None else json.dumps(body).encode()
        if raw is not None:
            headers.update(sign(raw) if sign else {"Content-Type": "application/json"})
        response = self.client.request(method, url, params=query, headers=headers, content=raw)
        assert SUCCESS.fullmatch(str(response.status_code)), (method, path, response.text)
        self.sent.add((method, path))
        answered = operation["responses"][str(response.status_code)].get("content", {})
        media = response.headers.get("content-type", "").split(";")[0]
        documented = answered.get(media, {}).get("examples", {})
        if media == "application/json":
            assert documented, (method, path, response.status_code)
            diffs = [shape_diff(response.json(), e["value"]) for e in documented.values()]
            assert [] in diffs, (method, path, diffs)
        return response

    def unsent(self) -> list[tuple[str, str]]:
        return sorted(set((m, p) for m, p, _ in operations(self.spec)) - self.sent)


def test_the_pin_door_examples_succeed(client, db, settings):
    with db.session() as session:
        tenant = create_tenant(
            session,
            slug="cafe-demo",
            name="Café Demo",
            currency="CRC",
            timezone="America/Costa_Rica",
            min_purchase="5000",
        )
        set_setting(session, "cafe-demo", "points_per_pin", "10")
        create_reward(session, tenant, title="Postre gratis", points=20)
        create_reward(session, tenant, title="Desayuno de cortesía", points=40)
        create_reward(session, tenant, title="Café gratis", points=10)  # promotion 3
        key = issue_api_key(session, tenant).api_key
    call = TryItOut(client, "pin", {"X-API-Key": key})
    pin = call("POST", "/api/v1/integraciones/pin/generar").json()["pin"]
    assert call("POST", "/api/v1/integraciones/pin/generar", "sin_monto").json()["pin"] != pin
    qr = call("GET", "/api/v1/integraciones/pin/{pin}/qr.{fmt}", params={"pin": pin})
    assert qr.headers["content-type"] == "image/svg+xml" and b"<svg" in qr.content
    send_whatsapp(client, settings, "+50688887777", f"Quiero activar mi PIN: {pin}")
    assert call("GET", "/api/v1/redimir/comercio/{slug}").json()["promociones"][0]["id"] == 3
    assert call("GET", "/api/v1/redimir/puntos/{wa}").json()["data"][0]["puntos"] == 10
    assert call("POST", "/api/v1/redimir/canjear").json()["puntos_restantes"] == 0
    assert call("GET", "/api/v1/redimir/puntos/{wa}").json()["data"][0]["puntos"] == 0
    assert call.unsent() == []


def test_the_webhook_examples_succeed(client, db, settings):
    call = TryItOut(client, "whatsapp")
    token = {"hub.verify_token": settings.whatsapp_verify_token}  # the deployment's secret
    assert call("GET", "/webhooks/whatsapp", params=token).text == "1158201444"
    stored = call("POST", "/webhooks/whatsapp", sign=lambda raw: signed_headers(settings, raw))
    assert stored.json() == {"received": 1, "processed": 1}
    with db.session(readonly=True) as session:  # the message, stored for the bot
        assert session.scalar(select(func.count()).select_from(InboundMessage)) == 1
    assert call.unsent() == []


def points_of(db: Any, program_id: int, kind: str, value: str) -> tuple[int, int]:
    """(points, cashback in minor units) of the customer with this identifier."""
    with db.session(readonly=True) as session:
        customer = find_any(session, program_id, kind, value)
        assert customer is not None, (kind, value)
        return (
            balance(session, Account(program_id, customer.id, POINTS)),
            balance(session, Account(program_id, customer.id, CASHBACK)),
        )


def brl_merchant(db: Any, slug: str, name: str, **settings: str) -> Tenant:
    """1 point per R$ 1, a point worth R$ 0,10, 5 % cashback (the examples' merchants)."""
    values = {"earn_points_per_unit": "1", "point_value": "0.10", "cashback_percent": "5"}
    with db.session() as session:
        tenant = create_tenant(
            session,
            slug=slug,
            name=name,
            currency="BRL",
            timezone="America/Sao_Paulo",
            locale="pt_BR",
        )
        for key, value in {**values, **settings}.items():
            set_setting(session, slug, key, value)
        return tenant


def test_the_pos_door_examples_succeed(client, db):
    tenant = brl_merchant(db, "loja-centro", "Loja Centro", sandbox="true")
    with db.session() as session:
        tenant = session.get_one(Tenant, tenant.id)
        create_reward(
            session,
            tenant,
            title="R$ 10 de desconto",
            points=100,
            reward_type="fixed",
            value="10.00",
        )
        create_reward(session, tenant, title="Cashback", points=None, reward_type="cashback")
        product = ProductOptions(
            external_product_id="P001",
            name="Camiseta Básica",
            mode="percent",
            value="20",
            max_units=2,
        )
        create_reward(
            session,
            tenant,
            title="20% na Camiseta Básica",
            points=150,
            reward_type="product",
            product=product,
        )
        issued = issue_api_key(session, tenant)
    raw = base64.b64encode(f"{issued.token}:{issued.api_key}".encode()).decode()
    call = TryItOut(client, "pos", {"Authorization": f"Basic {raw}"})
    wallet = lambda: points_of(db, tenant.program_id, "cpf", "52998224725")  # noqa: E731
    B = "/v1/pvt/POS"

    assert call("POST", f"{B}/orders").json()["Result"]["EstimatedBonus"]["EstimatedPoints"] == 250
    assert wallet() == (250, 1250)
    assert call("POST", f"{B}/rewards/available").json()["AvailablePoints"] == 250
    sent = call("POST", f"{B}/customers/{{document}}/challenge").json()
    assert sent["Success"] is True and sent["SentBySMS"] and sent["SentByEmail"]
    checked = call(
        "POST", f"{B}/customers/{{document}}/challengevalidate", patch={"Code": sent["Code"]}
    )
    assert checked.json()["Success"] is True
    redeemed = call("POST", f"{B}/rewards/{{reward_id}}/redeem").json()["Result"]
    assert redeemed["RewardId"] == 1000000001 and wallet() == (150, 1250)
    assert call("DELETE", f"{B}/rewards/{{redemption_ref}}").json()["Result"]["IsCanceled"]
    assert wallet() == (250, 1250)
    assert call("POST", f"{B}/rewards/{{reward_id}}/redeem", "cashback", params={"reward_id": 2})
    assert wallet() == (250, 750)
    # The example's OriginalKey is the first redemption's: cancelled already, answered again.
    again = call("DELETE", f"{B}/rewards").json()["Result"]
    assert again["IsCanceled"] and again["Points"]["EventKey"] == "PDV-1002-R1"
    assert wallet() == (250, 750)
    call("POST", f"{B}/{{order_ref}}/partialcancel")  # R$ 49,90 of R$ 250,00
    assert wallet() == (250 - 50, 750 - 250)
    assert call("POST", f"{B}/orders/{{order_ref}}/cancel").json()["Result"]["Status"] == 3
    # Its earnings are taken back; the R$ 5 of cashback spent meanwhile stays a debt.
    assert wallet() == (0, -500)
    assert call.unsent() == []


def test_the_retail_door_examples_succeed(client, db):
    tenant = brl_merchant(db, "mercado", "Mercado Sol")
    with db.session() as session:
        tenant = session.get_one(Tenant, tenant.id)
        create_rule(session, tenant, "visit", 5, 1)
        regulars = create_segment(
            session, tenant, "Regulars", {"event_type": "visit", "min_count": 1}
        )
        create_deal(
            session,
            tenant,
            name="Regulars: 15% off bakery",
            discount_type="percent",
            value=1500,
            segment_id=regulars.id,
            department_code="PADARIA",
        )
        key = issue_api_key(session, tenant).api_key
    call = TryItOut(client, "retail", {"x-api-key": key})
    wallet = lambda: points_of(db, tenant.program_id, "phone", "+5511987654321")  # noqa: E731

    member = call("POST", "/v1/member/register").json()["member"]
    assert member["phoneNumber"] == "+5511987654321"
    with db.session() as session:
        issue(
            session,
            session.get_one(Tenant, tenant.id),
            code="WELCOME-10",
            value=1000,
            customer=session.get_one(Customer, int(member["memberId"])),
            benefit="R$ 10,00 off",
        )
    assert call("POST", "/v1/member/update").json()["member"]["lastName"] == "Souza Lima"
    assert call("POST", "/v1/event").json()["pointsEarned"] == 5
    details = call("POST", "/v1/member/details").json()
    assert details["benefits"][0]["discountAmount"] == -600
    assert details["assets"][0]["key"] == "WELCOME-10"
    sale = call("POST", "/v1/transaction").json()
    assert (sale["amountToPay"], sale["earned"]) == (18400, {"points": 183, "credit": 917})
    assert wallet() == (183, 917)
    paid = call(
        "POST", "/v1/payment", patch={"member": {"membershipKey": member["membershipKey"]}}
    ).json()
    assert paid["points"] == 100 and wallet() == (83, 917)
    back = {"payment": {"action": "cancel", "confirmationCode": paid["confirmationCode"]}}
    assert call("POST", "/v1/payment", "cancel", patch=back).json()["data"]["status"] == "cancelled"
    assert wallet() == (183, 917)
    assert call("POST", "/v1/member/shortCode").json()["sentVia"] == "whatsapp"
    code = {"confirmationCode": sale["confirmationCode"]}
    cancelled = call("POST", "/v1/transaction/cancel", patch=code).json()
    assert cancelled["releasedAssets"] == ["WELCOME-10"] and wallet() == (5, 0)
    assert call("POST", "/v1/member/erase").json()["memberId"] == member["memberId"]
    assert call.unsent() == []


def test_the_rest_v2_door_examples_succeed(client, db):
    tenant = brl_merchant(db, "loja", "Loja Centro")
    with db.session() as session:
        issued = issue_api_key(session, session.get_one(Tenant, tenant.id))
    call = TryItOut(client, "rest-v2")
    credentials = {"api_key": issued.token, "api_secret": issued.api_key}  # the merchant's own
    token = call("POST", "/v2/auth/token", patch=credentials).json()["access_token"]
    call.headers["Authorization"] = f"Bearer {token}"
    wallet = lambda: points_of(db, tenant.program_id, "cpf", "52998224725")  # noqa: E731

    assert call("POST", "/v2/customers").status_code == 201
    assert call("POST", "/v2/customers").status_code == 200  # the same again: on file
    assert [c["id"] for c in call("GET", "/v2/customers").json()["data"]] == [1]
    assert call("GET", "/v2/customers/{customer_id}").json()["cpf"] == "52998224725"
    assert call("PATCH", "/v2/customers/{customer_id}").json()["email"] == "ana@example.com"
    assert call("PUT", "/v2/customers/{customer_id}").json()["phone"] == "+5511912345678"
    assert call("POST", "/v2/sales").json()["earned"] == {"points": 150, "cashback": "7.50"}
    assert call("POST", "/v2/sales", "by_customer_id").status_code == 201
    assert wallet() == (300, 1500)
    assert call("POST", "/v2/categories").status_code == 201
    assert len(call("GET", "/v2/categories").json()["data"]) == 1
    with db.session() as session:
        merchant = session.get_one(Tenant, tenant.id)
        reward = create_reward(
            session,
            merchant,
            title="R$ 10 de desconto",
            points=100,
            reward_type="fixed",
            value="10.00",
            stock=25,
        )
        reward.category_id = 1
        ana = session.get_one(Customer, 1)
        until = clock.now() + timedelta(days=30)
        issue(session, merchant, code="BEMVINDO10", customer=ana, value=1000, valid_until=until)
        issue(session, merchant, code="PRESENTE25", customer=ana, value=2500, kind="birthday")
    assert call("GET", "/v2/coupons").json()["meta"]["total"] == 1
    assert call("GET", "/v2/coupons/{coupon_id}").json()["stock"] == 25
    assert call("PUT", "/v2/coupons/{coupon_id}/stock").json()["stock"] == 20
    assert call("PATCH", "/v2/coupons/{coupon_id}/stock").json()["stock"] == 19
    assert len(call("GET", "/v2/vouchers").json()["data"]) == 2
    assert call("GET", "/v2/vouchers/{code}").json()["status"] == "active"
    assert call("POST", "/v2/vouchers/{code}/validate").json()["status"] == "used"
    assert call("POST", "/v2/vouchers/validate").json()["code"] == "PRESENTE25"
    assert call("DELETE", "/v2/auth/token").status_code == 204
    assert client.get("/v2/customers", headers=call.headers).status_code == 401  # revoked
    assert call.unsent() == []


def test_an_example_for_what_the_document_lacks_is_refused():
    """Examples cannot fall silently out of date: one for an operation, a parameter, a
    body, a status or a media type the document does not have stops the document."""
    spec = {
        "paths": {
            "/x": {
                "get": {
                    "parameters": [{"name": "a", "in": "query", "schema": {}}],
                    "responses": {"200": {"content": {"application/json": {}}}},
                }
            }
        }
    }
    answer = {200: {"one": Example("One", {"a": 1})}}
    done = illustrate(copy.deepcopy(spec), {("GET", "/x"): Operation({"a": 1}, {}, answer)})
    operation = done["paths"]["/x"]["get"]
    assert operation["parameters"][0]["example"] == 1
    assert operation["responses"]["200"]["content"]["application/json"]["examples"] == {
        "one": {"summary": "One", "value": {"a": 1}}
    }
    stale = [
        {("POST", "/x"): Operation(responses=answer)},
        {("GET", "/y"): Operation(responses=answer)},
        {("GET", "/x"): Operation(params={"b": 1})},
        {("GET", "/x"): Operation(request={"one": Example("One", {})})},
        {("GET", "/x"): Operation(responses={404: answer[200]})},
        {
            ("GET", "/x"): Operation(
                responses={200: {"svg": Example("An image", "<svg/>", "image/svg+xml")}}
            )
        },
    ]
    for catalog in stale:
        with pytest.raises(KeyError):
            illustrate(copy.deepcopy(spec), catalog)
