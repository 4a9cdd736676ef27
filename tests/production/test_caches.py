"""The default caches, unchanged, in the production shape: ``fidelia serve --workers 2``
on PostgreSQL with ``FIDELIA_TENANT_CACHE_SECONDS`` unset. An API key every process has
cached is revoked (as ``fidelia apikey revoke`` does); once the documented time has passed
(README: "within FIDELIA_TENANT_CACHE_SECONDS (2 s)", docs/panel.md: "doors refuse the key
within FIDELIA_TENANT_CACHE_SECONDS"), every door that caches keys refuses it, in every
process. The test waits that long, and no longer. REST v2's Bearer tokens are cached the
same way (docs/decisions.md, issue 14): a token of the revoked key is refused by then too."""

import re
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from fidelia.kit.db import Database
from fidelia.kit.settings import Settings
from fidelia.tenants.service import revoke_api_key, suspend
from tests.dialects.pdv.conftest import AVAILABLE, make_merchant
from tests.dialects.rest_v2.conftest import CUSTOMERS, TOKEN
from tests.dialects.retail_v1.conftest import headers as retail_headers
from tests.production.conftest import fidelia_env

pytestmark = pytest.mark.timeout(180)
README = Path(__file__).resolve().parents[2] / "README.md"
CALLS = 24  # each on a new connection, so every web process answers some


def documented_seconds() -> float:
    match = re.search(
        r"within `FIDELIA_TENANT_CACHE_SECONDS` \((\d+(?:\.\d+)?) s\)", README.read_text()
    )
    assert match, "README no longer says how soon a running server sees a change"
    seconds = float(match.group(1))
    assert Settings.model_fields["tenant_cache_seconds"].default == seconds
    return seconds


def statuses(
    url: str, method: str, path: str, headers: dict[str, str], body: object
) -> Counter[int]:
    barrier = threading.Barrier(CALLS)

    def one(_: int) -> int:
        with httpx.Client(base_url=url, timeout=30) as http:
            barrier.wait()
            return http.request(method, path, headers=headers, json=body).status_code

    with ThreadPoolExecutor(CALLS) as pool:
        return Counter(pool.map(one, range(CALLS)))


def test_a_revoked_key_is_refused_within_the_documented_time(pg_url, processes):
    seconds = documented_seconds()
    db = Database(pg_url, pool_size=2)
    try:
        merchant = make_merchant(db, slug="cache")
        url = processes.serve(fidelia_env(pg_url), 2)
        with httpx.Client(base_url=url) as http:
            creds = {"api_key": merchant.token, "api_secret": merchant.api_key}
            token = http.post(TOKEN, json=creds).json()["access_token"]
        doors = {
            "pos": ("POST", AVAILABLE, merchant.headers, {"CustomerId": "52998224725"}),
            "retail": (
                "POST",
                "/v1/member/details",
                retail_headers(merchant.api_key),
                {"member": {"phoneNumber": "+5511987654321"}},
            ),
            "pin": (
                "POST",
                "/api/v1/integraciones/pin/generar",
                {"X-API-Key": merchant.api_key},
                None,
            ),
            "rest_v2": ("GET", CUSTOMERS, {"Authorization": f"Bearer {token}"}, None),
        }
        before = {door: statuses(url, *call) for door, call in doors.items()}  # caches warm
        with db.session() as session:
            revoke_api_key(session, merchant.api_key)
        revoked_at = time.monotonic()
        time.sleep(max(0.0, revoked_at + seconds - time.monotonic()))
        after = {door: statuses(url, *call) for door, call in doors.items()}
    finally:
        db.dispose()
    print(f"\nbefore: {before}\nafter {seconds} s: {after}")
    assert before["pos"] == before["rest_v2"] == {200: CALLS}
    assert set(before["retail"]) <= {200, 400, 404} and 401 not in before["retail"]
    assert before["pin"] == {200: CALLS}
    assert after == {door: {401: CALLS} for door in ("pos", "retail", "pin", "rest_v2")}


def test_public_redemption_sees_a_suspension_within_the_documented_time(pg_url, processes):
    """Seed 000's public redemption names the merchant by id; the merchant comes from a
    cache (``State.merchants``, issue 14) kept as long as the keys: a suspended merchant
    answers 404 COMERCIO_NOT_FOUND in every process once the documented time has passed."""
    seconds = documented_seconds()
    db = Database(pg_url, pool_size=2)
    try:
        merchant = make_merchant(db, slug="cache-public")
        url = processes.serve(fidelia_env(pg_url), 2)
        body = {"whatsapp": "+5491155550000", "id_comercio": merchant.id, "id_promocion": 1}

        def codes() -> Counter[str]:
            barrier = threading.Barrier(CALLS)

            def one(_: int) -> str:
                with httpx.Client(base_url=url, timeout=30) as http:
                    barrier.wait()
                    answer = http.post("/api/v1/redimir/canjear", json=body)
                    return f"{answer.status_code} {answer.json().get('codigo')}"

            with ThreadPoolExecutor(CALLS) as pool:
                return Counter(pool.map(one, range(CALLS)))

        before = codes()  # caches warm: an unknown customer of a known merchant
        with db.session() as session:
            suspend(session, merchant.id)
        suspended_at = time.monotonic()
        time.sleep(max(0.0, suspended_at + seconds - time.monotonic()))
        after = codes()
    finally:
        db.dispose()
    print(f"\nbefore: {before}\nafter {seconds} s: {after}")
    assert before == {"404 CLIENTE_NOT_FOUND": CALLS}
    assert after == {"404 COMERCIO_NOT_FOUND": CALLS}
