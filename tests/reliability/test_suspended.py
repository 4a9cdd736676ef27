"""A suspended merchant is refused by every door. The authenticated operations are found,
not listed (every operation of the app's OpenAPI schema outside the public ones): with the
suspended merchant's own valid credentials (its API key, its Basic pair, a Bearer token
bought before the suspension) each answers 401 or 403 and changes none of its rows. Its
public lookup and redemption answer 404, its open PIN cannot be activated through the bot,
and no new Bearer token is sold. The other merchant is untouched, and after reactivation
the same credentials work again."""

from sqlalchemy import select

from fidelia.models import Pin
from fidelia.tenants.service import reactivate, suspend
from tests.reliability.doors import Credentials, is_public
from tests.reliability.summary import SUMMARY
from tests.reliability.test_isolation import generic_case, rows_of
from tests.support.helpers import send_whatsapp
from tests.support.world import two_merchants


def test_a_suspended_merchant_is_refused_by_every_door(app, client, db, settings):
    a, b = two_merchants(client, db, settings)
    schema = app.openapi()
    components = schema.get("components", {}).get("schemas", {})
    credentials = Credentials(client, a)
    credentials.bearer()  # bought while active: must die with the suspension
    with db.session() as session:
        suspend(session, a.id)
    before = rows_of(db, a)
    problems: list[str] = []
    doors = 0
    for path, operations in schema["paths"].items():
        if is_public(path):
            continue
        for method, operation in operations.items():
            doors += 1
            call = generic_case(path, method, operation, components)(b, a)[0]  # A's own ids
            answer = client.request(
                call.method, call.url, headers=credentials.for_path(path), json=call.body
            )
            if answer.status_code not in (401, 403):
                problems.append(
                    f"{method.upper()} {path}: {answer.status_code} {answer.text[:200]}"
                )
    token = client.post("/v2/auth/token", json={"api_key": a.token, "api_secret": a.api_key})
    if token.status_code != 401:
        problems.append(f"POST /v2/auth/token: {token.status_code}")
    for url in (f"/api/v1/redimir/comercio/{a.slug}",):
        if (answer := client.get(url)).status_code != 404:
            problems.append(f"GET {url}: {answer.status_code}")
    canjear = client.post(
        "/api/v1/redimir/canjear",
        json={"id_comercio": a.id, "whatsapp": a.whatsapp, "id_promocion": a.rewards["custom"]},
    )
    if canjear.status_code != 404:
        problems.append(f"POST /api/v1/redimir/canjear: {canjear.status_code}")
    send_whatsapp(client, settings, "50677770000", f"Quiero activar mi PIN: {a.open_pin}")
    with db.session(readonly=True) as s:
        status = s.scalar(select(Pin.status).where(Pin.tenant_id == a.id, Pin.code == a.open_pin))
    if status != "open":
        problems.append(f"A's open PIN was activated through the bot: {status}")
    changed = [t for t, rows in rows_of(db, a).items() if rows != before[t] and t != "outbox"]
    if changed:
        problems.append(f"the suspended merchant's rows changed: {changed}")
    backend = "sqlite" if db.is_sqlite else "postgresql"
    SUMMARY.note(
        f"suspension [{backend}]: {doors} authenticated operations refused (401/403) with "
        "the suspended merchant's valid credentials; public lookup/redemption 404; PINs dead"
    )
    SUMMARY.violated(f"suspension {backend}", problems)
    assert not problems, "\n".join(problems)
    assert doors >= 10
    # B is untouched; A works again once reactivated.
    assert client.post("/api/v1/integraciones/pin/generar", headers=b.key).status_code == 200
    with db.session() as session:
        reactivate(session, a.id)
    assert client.post("/api/v1/integraciones/pin/generar", headers=a.key).status_code == 200
    assert client.get(f"/api/v1/redimir/comercio/{a.slug}").status_code == 200
    fresh = client.post("/v2/auth/token", json={"api_key": a.token, "api_secret": a.api_key})
    assert fresh.status_code == 200
