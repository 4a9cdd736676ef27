"""Meta's webhook goes by the edge's express lane (fidelia/edge.py ``Express``), without
FastAPI's routing and exception layers: every answer is the one the framework gives, byte
for byte (status, headers, body), the log line and the metrics name the same route, and the
message is stored the same."""

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fidelia.app import create_app
from fidelia.models import InboundMessage
from fidelia.ops import metrics
from tests.support.helpers import make_tenant, signed_headers, webhook_body

URL = "/webhooks/whatsapp"


@pytest.fixture
def framework(settings):
    """The same app with the lane closed: the webhook goes through FastAPI's layers."""
    app = create_app(settings, run_worker=False)
    app.state.express.clear()
    with TestClient(app) as client:
        yield client
    app.state.fidelia.db.dispose()


def answers(client, body, headers):
    response = client.post(URL, content=body, headers={**headers, "X-Request-ID": "req-1234567"})
    return response.status_code, sorted(response.headers.items()), response.content


def stored(db):
    with db.session(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(InboundMessage)) or 0)


def requests_counted(status):
    return metrics.REQUESTS.labels("whatsapp", URL, "POST", status)._value.get()


def test_the_lane_answers_as_the_framework(client, framework, db, settings, app):
    assert app.state.express  # the lane is open in the app under test
    make_tenant(db)
    body = webhook_body(settings, "+50688887777", "hola", message_id="wamid.express.1")
    again = webhook_body(settings, "+50688887777", "hola", message_id="wamid.express.1")
    other = webhook_body(settings, "+50688887777", "hola", message_id="wamid.express.2")
    cases = [
        ("no signature", b"{}", {"Content-Type": "application/json"}),
        ("not sha256", b"{}", {"X-Hub-Signature-256": "md5=abc"}),
        ("bad signature", body, {"X-Hub-Signature-256": "sha256=" + "0" * 64}),
        ("malformed JSON", b"{nope", signed_headers(settings, b"{nope")),
        ("not an object", b"[1, 2]", signed_headers(settings, b"[1, 2]")),
        ("wrong shape", b'{"entry": 3}', signed_headers(settings, b'{"entry": 3}')),
        ("empty", b"", signed_headers(settings, b"")),
    ]
    for name, raw, headers in cases:
        assert answers(client, raw, headers) == answers(framework, raw, headers), name
    assert stored(db) == 0

    ok_before = requests_counted("2xx")
    lane = answers(client, body, signed_headers(settings, body))
    assert lane[0] == 200 and json.loads(lane[2]) == {"received": 1, "processed": 1}
    assert stored(db) == 1
    # the framework's way, a new message, then the lane's redelivery: same bytes each pair
    assert answers(framework, other, signed_headers(settings, other)) == lane
    assert stored(db) == 2
    redelivered = answers(client, again, signed_headers(settings, again))
    assert json.loads(redelivered[2]) == {"received": 1, "processed": 0}
    assert answers(framework, again, signed_headers(settings, again)) == redelivered
    assert stored(db) == 2
    # both ways counted under the route's template, as the log line names it
    assert requests_counted("2xx") == ok_before + 4
