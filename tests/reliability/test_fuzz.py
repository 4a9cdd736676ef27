"""Bad input: schemathesis fuzzes every operation of the app's own /openapi.json, every door,
with valid credentials (merchant A's key or Basic pair, a signed body for the webhook) so
the requests get past authentication. Schema-conforming and schema-violating inputs alike:

- no answer is a 5xx;
- every answer conforms to the schema: a documented status, content type and body;
- a request answered 4xx wrote nothing (every table's row count, and the state columns that
  refusals could touch, are the same before and after).

The short form is derandomised (the same inputs on every run); the long form explores.
"""

import os
from collections.abc import Callable
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
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

from fidelia.kit.db import Database
from fidelia.kit.security import sign_sha256
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
    """Meta's signature over the exact bytes sent (the body is serialised by the client)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body
        request.headers["X-Hub-Signature-256"] = sign_sha256(raw, self.secret)
        return request


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


def fuzz(operation: Any, strategy: Any, call: Callable[[Any], None]) -> str | None:
    @settings(
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
        return None  # nothing to negate (a GET whose only parameters are free strings)
    except (Exception, BaseExceptionGroup) as exc:  # one operation's failure must not hide
        # the others' (schemathesis reports its failures as a BaseExceptionGroup)
        text = str(exc).strip()
        return f"{operation.label}: {type(exc).__name__}: {text[:3000]}"
    return None


def test_fuzz_every_operation(app, client, db, world, settings):
    a, _b = world
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    signer = Signed(settings.whatsapp_app_secret)
    credentials = Credentials(client, a, settings.whatsapp_token)
    problems: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    tried = 0

    last = snapshot(db)  # the state after the previous request

    def call(case: Any) -> None:
        nonlocal tried, last
        tried += 1
        SUMMARY.tried()
        webhook = case.operation.method.upper() == "POST" and case.path == "/webhooks/whatsapp"
        response = case.call(auth=signer) if webhook else case.call()
        now = snapshot(db)
        before, last = last, now
        case.validate_response(response, checks=CHECKS)
        if 400 <= response.status_code < 500:
            changed = diff(before, now)
            assert not changed, f"answered {response.status_code} but changed {changed}"

    for operation in operations:
        headers = credentials.for_path(operation.path)
        names = {p.name for p in operation.path_parameters}
        real = {k: v for k, v in real_parameters(a).items() if k in names}
        strategies = [
            operation.as_strategy(mode, headers=headers)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        ]
        if real:
            strategies.append(operation.as_strategy(headers=headers, path_parameters=real))
        for strategy in strategies:
            failure = fuzz(operation, strategy, call)
            if failure:
                problems.append(failure)
                break
    backend = "sqlite" if db.is_sqlite else "postgresql"
    SUMMARY.note(
        f"fuzz [{backend}]: {len(operations)} operations, {tried} inputs "
        f"(positive, negative, and on merchant A's own resources), {len(problems)} failing"
    )
    SUMMARY.sent(tried)
    SUMMARY.violated(f"fuzz {backend}", problems)
    assert not problems, "\n\n".join(problems)


def test_every_operation_is_fuzzed(app):
    """The schema lists every route of every door (nothing hidden from the fuzzer)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    labels = {result.ok().label for result in schema.get_all_operations()}
    for prefix in ("/api/v1/", "/v1/pvt/", "/webhooks/", "/simulator/"):
        assert any(prefix in label for label in labels), prefix
    assert len(labels) >= 20, sorted(labels)
