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
from fidelia.tenants.service import revoke_api_key
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
