"""Bad input: schemathesis fuzzes every operation of the app's own /openapi.json, every door,
with valid credentials (merchant A's key or Basic pair, a signed body for either webhook) so
the requests get past authentication. Schema-conforming and schema-violating inputs alike:

- no answer is a 5xx;
- every answer conforms to the schema: a documented status, content type and body;
- a request answered 4xx wrote nothing (every table's row count, and the state columns that
  refusals could touch, are the same before and after).

Nothing is skipped: every operation must get inputs of each kind, and one the fuzzer cannot
generate for fails the test; the only exception is a schema-violating input for an operation
whose schema has nothing to violate (checked, not assumed). Every route the app serves under
a door's prefix is in the schema, and every door has operations under each of its prefixes.

The short form is derandomised (the same inputs on every run); the long form explores.
"""

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from fastapi.routing import iter_route_contexts
from hypothesis import HealthCheck, given
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import func, select

from fidelia.doors import DOORS
from fidelia.kit.db import Database
from fidelia.kit.security import sign_sha256
from fidelia.kit.settings import Settings
from fidelia.models import Balance, Base, Challenge, Order, Pin, Redemption, Reward
from tests.reliability.doors import Credentials
from tests.reliability.summary import LONG, SUMMARY, pick
from tests.support.world import Merchant, two_merchants

# Per operation, per generation mode, per kind of input; FIDELIA_FUZZ_EXAMPLES overrides.
EXAMPLES = int(os.environ.get("FIDELIA_FUZZ_EXAMPLES") or pick(12, 60))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# Routes served outside the API schema, on purpose: HTML pages and forms (the panel, with its
# CSRF tokens, is tested by tests/panel), the API docs, the OAuth browser redirects of the
# Bling connector, and the operations probes. Anything else the app serves must be fuzzed.
NOT_FUZZED = (
    "/panel",
    "/docs",
    "/redoc",
    "/openapi",
    "/connectors/bling/",
    "/readyz",
    "/metrics",
)
NOT_FUZZED_EXACT = {"GET /", "GET /simulator"}  # the home page, the simulator's chat page
# Operations of the platform itself, in no door: the health check and the simulator's API.
PLATFORM = ("/healthz", "/simulator/")
BLING_SECRET = "reliability-bling-secret"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Bling's webhook takes signed bodies only: with its secret set, the fuzzer signs them
    and its inputs reach the body's handling instead of all stopping at the 401. The rate
    limits are off: with them, how many inputs reached the rules and how many stopped at a
    429 depended on how fast the machine ran (tests/reliability/test_abuse.py tests them)."""
    return settings.model_copy(
        update={"bling_client_secret": BLING_SECRET, "rate_limits_enabled": False}
    )


@pytest.fixture
def world(client, db, settings) -> tuple[Merchant, Merchant]:
    return two_merchants(client, db, settings)


def snapshot(db: Database) -> dict[str, Any]:
    """Row counts of every table (in one query), and the columns a refused request could
    still change."""
    tables = Base.metadata.sorted_tables
    counts = select(
        *(select(func.count()).select_from(t).scalar_subquery().label(t.name) for t in tables)
    )
    with db.session(readonly=True) as s:
        state: dict[str, Any] = dict(s.execute(counts).one()._mapping)
        state["balances"] = s.execute(
            select(func.count(), func.coalesce(func.sum(Balance.amount), 0))
        ).one()
        state["pins used"] = s.scalar(select(func.count()).where(Pin.status != "open"))
        state["redemptions"] = s.execute(
            select(
                func.count().filter(Redemption.status == "cancelled"),
                func.coalesce(func.sum(Redemption.order_id), 0),
            )
        ).one()
        state["orders"] = s.execute(
            select(
                func.coalesce(func.sum(Order.state), 0),
                func.coalesce(func.sum(Order.total), 0),
                func.coalesce(func.sum(Order.refunded), 0),
                func.coalesce(func.sum(Order.customer_id), 0),
            )
        ).one()
        state["stock"] = s.scalar(select(func.coalesce(func.sum(Reward.stock), 0)))
        state["challenges"] = s.execute(
            select(
                func.coalesce(func.sum(Challenge.failures), 0),
                func.count(Challenge.verified_at),
                func.count(Challenge.consumed_at),
            )
        ).one()
    return {k: tuple(v) if hasattr(v, "_mapping") else v for k, v in state.items()}


def diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [key for key in before if before[key] != after[key]]


class Signed(requests.auth.AuthBase):
    """A webhook's signature over the exact bytes sent (the body is serialised by the
    client): Meta's or Bling's header, each with its own secret."""

    def __init__(self, header: str, secret: str) -> None:
        self.header, self.secret = header, secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body
        request.headers[self.header] = sign_sha256(raw, self.secret)
        return request


def nothing_to_negate(operation: dict[str, Any]) -> bool:
    """True when no input can violate the operation's schema: no body, and no parameter but
    optional or path ones that take any string (a GET of /comercio/{slug}, /healthz)."""
    if "requestBody" in operation:
        return False
    for parameter in operation.get("parameters", []):
        schema = {k: v for k, v in parameter.get("schema", {}).items() if k != "title"}
        if schema != {"type": "string"}:
            return False
        if parameter.get("required") and parameter["in"] != "path":
            return False
    return True


def real_parameters(a: Merchant) -> dict[str, Any]:
    """Path parameters that name merchant A's own resources, so that fuzzed bodies reach
    the business rules instead of stopping at a 404."""
    return {
        "pin": a.open_pin,
        "fmt": "svg",
        "slug": a.slug,
        "wa": a.whatsapp,
        "document": a.document,
        "reward_id": a.rewards["fixed"],
        "redemption_ref": a.external_code,
        "order_ref": f"{a.slug}-2",
    }


# Query parameters that are a credential: Meta's subscription handshake, with the verify
# token ({settings field}), so that some inputs get past its check.
REAL_QUERY = {
    "GET /webhooks/whatsapp": {
        "hub.mode": "subscribe",
        "hub.verify_token": "{whatsapp_verify_token}",
    },
}


def fuzz(operation: Any, strategy: Any, call: Callable[[Any], None]) -> str | None:
    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not LONG,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        call(case)

    try:
        run()
    except Unsatisfiable:
        return "unsatisfiable"  # the caller decides: a failure unless nothing to negate
    except (Exception, BaseExceptionGroup) as exc:  # one operation's failure must not hide
        # the others' (schemathesis reports its failures as a BaseExceptionGroup)
        return f"{operation.label}: {explain(exc)[:6000]}"
    return None


def explain(exc: BaseException) -> str:
    """The failure with what it wraps: a FlakyFailure (the first call failed, the replay did
    not) says nothing by itself, the first call's failure is among its sub-exceptions."""
    text = f"{type(exc).__name__}: {str(exc).strip()}"
    if isinstance(exc, BaseExceptionGroup):
        text += "".join(f"\n  - {explain(inner)}" for inner in exc.exceptions)
    return text


def server_side(caplog: pytest.LogCaptureFixture, response: Any, seconds: float) -> str:
    """What the server logged at ERROR while it answered this request (with tracebacks):
    a 5xx is reported with its cause and how long it took, not only its status."""
    errors = [
        record.getMessage() + (f"\n{record.exc_text}" if record.exc_text else "")
        for record in caplog.records
        if record.levelno >= logging.ERROR
    ]
    logged = "\n".join(errors)[-3000:] or "nothing logged at ERROR"
    return f"answered {response.status_code} in {seconds:.1f} s; the server logged: {logged}"


def test_fuzz_every_operation(app, client, db, world, settings, caplog):
    a, _b = world
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    raw_paths = app.openapi()["paths"]
    signers = {
        "/webhooks/whatsapp": Signed("X-Hub-Signature-256", settings.whatsapp_app_secret),
        "/webhooks/bling": Signed("X-Bling-Signature-256", BLING_SECRET),
    }
    credentials = Credentials(client, a, settings.whatsapp_token)
    problems: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    tried = 0
    inputs: dict[str, int] = {}  # "METHOD /path kind" -> inputs sent
    not_negatable: list[str] = []
    admitted: set[str] = set()  # operations with at least one input past authentication
    current = ""

    last = snapshot(db)  # the state after the previous request

    def call(case: Any) -> None:
        nonlocal tried, last
        tried += 1
        inputs[current] = inputs.get(current, 0) + 1
        SUMMARY.tried()
        signer = signers.get(case.path) if case.operation.method.upper() == "POST" else None
        caplog.clear()
        started = time.monotonic()
        response = case.call(auth=signer) if signer else case.call()
        seconds = time.monotonic() - started
        assert response.status_code < 500, server_side(caplog, response, seconds)
        if response.status_code not in (401, 403):
            admitted.add(case.operation.label)
        now = snapshot(db)
        before, last = last, now
        case.validate_response(response, checks=CHECKS)
        if 400 <= response.status_code < 500:
            changed = diff(before, now)
            assert not changed, f"answered {response.status_code} but changed {changed}"

    for operation in operations:
        headers = credentials.for_path(operation.path, operation.method)
        names = {p.name for p in operation.path_parameters}
        real = {k: v for k, v in real_parameters(a).items() if k in names}
        query = REAL_QUERY.get(operation.label, {})
        strategies = [
            (mode.value, operation.as_strategy(mode, headers=headers))
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
        if real or query:
            own: dict[str, Any] = {"path_parameters": real} if real else {}
            if query:
                own["query"] = {k: v.format(**settings.model_dump()) for k, v in query.items()}
            strategies.append(("own", operation.as_strategy(headers=headers, **own)))
        for kind, strategy in strategies:
            current = f"{operation.label} {kind}"
            failure = fuzz(operation, strategy, call)
            raw = raw_paths[operation.path][operation.method.lower()]
            if failure == "unsatisfiable" and kind == "negative" and nothing_to_negate(raw):
                not_negatable.append(operation.label)
                continue
            if failure == "unsatisfiable" or (failure is None and not inputs.get(current)):
                failure = f"{current}: the fuzzer generated no input (fix the schema)"
            if failure:
                problems.append(failure)
                break
        if operation.label == "DELETE /v2/auth/token":
            credentials.forget_bearer()  # the fuzzer revoked it: the next operations trade anew
        if operation.label not in admitted:
            problems.append(f"{operation.label}: no input got past authentication")
    backend = "sqlite" if db.is_sqlite else "postgresql"
    SUMMARY.note(
        f"fuzz [{backend}]: {len(operations)} operations, {tried} inputs "
        f"(positive, negative, and on merchant A's own resources), {len(problems)} failing; "
        f"no schema-violating input exists for {len(not_negatable)}: "
        f"{', '.join(sorted(not_negatable)) or 'none'}"
    )
    SUMMARY.sent(tried)
    SUMMARY.violated(f"fuzz {backend}", problems)
    assert not problems, "\n\n".join(problems)
    assert len(operations) == sum(len(ops) for ops in raw_paths.values())
    assert admitted == {operation.label for operation in operations}


def test_every_operation_is_fuzzed(app):
    """Nothing hidden from the fuzzer: every route the app serves is in the schema it fuzzes,
    but for the listed HTML pages and probes; every operation belongs to a door (or is the
    platform's own); every prefix of every door has operations."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    labels = {result.ok().label for result in schema.get_all_operations()}
    served = {
        f"{method} {route.path}"
        for route in iter_route_contexts(app.routes)
        for method in route.methods or ()
        if method not in ("HEAD", "OPTIONS") and route.path != "/openapi.json"
    }
    hidden = {
        label
        for label in served - labels
        if label not in NOT_FUZZED_EXACT
        and not any(label.split(" ", 1)[1].startswith(p) for p in NOT_FUZZED)
    }
    assert not hidden, f"served but not in the fuzzed schema: {sorted(hidden)}"
    assert labels <= served, sorted(labels - served)
    paths = {label.split(" ", 1)[1] for label in labels}
    orphans = {p for p in paths if not any(d.owns(p) for d in DOORS) and not p.startswith(PLATFORM)}
    assert not orphans, f"operations in no door: {sorted(orphans)}"
    for door in DOORS:
        for prefix in door.prefixes:
            owned = [p for p in paths if p.startswith(prefix) and door.owns(p)]
            assert owned, f"door {door.key}: no operation under {prefix}"
    for prefix in PLATFORM:
        assert any(p.startswith(prefix) for p in paths), prefix
