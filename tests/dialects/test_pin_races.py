"""Seed 000's PIN generation under real parallel requests (uvicorn, PostgreSQL): its first
try is one autocommit statement from the event loop (``pins.generate_now``), a taken code
goes on in a transaction in a worker thread. Whatever the path, every answered PIN is a
distinct open row of the merchant, with the answer's expiry, and no PIN is written twice."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
from sqlalchemy import select

from fidelia.models import Pin
from fidelia.pins.guard import GuessPolicy
from tests.support.helpers import LiveServer, make_tenant

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
URL = "/api/v1/integraciones/pin/generar"
REQUESTS = 25  # under the door's 30 a minute per key


def test_parallel_pins_are_distinct_open_rows_of_the_merchant(app, db):
    tenant, key = make_tenant(db)
    barrier = threading.Barrier(REQUESTS)

    def generate(_: int) -> tuple[int, dict]:
        with server.client(headers={"X-API-Key": key}) as http:
            barrier.wait()
            response = http.post(URL, json={"monto": 10})
            return response.status_code, response.json()

    with LiveServer(app) as server, ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        answers = list(pool.map(generate, range(REQUESTS)))
    assert [status for status, _ in answers] == [200] * REQUESTS
    codes = [body["pin"] for _, body in answers]
    assert len(set(codes)) == REQUESTS
    policy = GuessPolicy()
    lengths = {policy.length_for(n) for n in range(REQUESTS)}
    assert {len(code) for code in codes} <= lengths
    with db.session(readonly=True) as session:
        rows = {p.code: p for p in session.scalars(select(Pin).where(Pin.tenant_id == tenant.id))}
    assert sorted(rows) == sorted(codes)  # each answer is a row, and nothing more was written
    for _, body in answers:
        pin = rows[body["pin"]]
        assert pin.status == "open" and pin.namespace == "50600000000"
        assert pin.amount == 1000  # minor units of the monto
        shown = datetime.fromisoformat(body["expires_at"])  # local, to the second
        assert abs((shown - pin.expires_at).total_seconds()) < 1
        assert body["expires_in"] == int((pin.expires_at - pin.created_at).total_seconds())
