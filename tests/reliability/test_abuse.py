"""Abuse, as the attack run tried it (issue 10): spends without a proof of presence on every
door, oversize bodies against a real ``fidelia serve`` with its peak memory measured,
out-of-range numbers on every door, and PIN guessing at platform scale. Each scenario adds a
line to the reliability summary; anything that got through is an invariant violation."""

import threading
from pathlib import Path

import httpx
import pytest

from fidelia.kit.migrate import upgrade
from fidelia.kit.settings import Settings
from fidelia.pins.guard import GuessPolicy
from tests.challenges.test_presence import shop, spends, wallet  # noqa: F401  (fixture)
from tests.reliability.harness import Fidelia, environment
from tests.reliability.summary import SUMMARY, pick
from tests.support.postgres import free_port
from tests.test_amounts import BAD, HUGE, TOO_PRECISE
from tests.test_amounts import shop as amount_shop  # noqa: F401  (fixture)


def test_spends_without_proof_are_refused_on_every_door(client, db, shop, database_url):  # noqa: F811
    before = wallet(db)
    results = list(spends(client, shop))
    SUMMARY.sent(len(results))
    SUMMARY.tried(len(results))
    through = [
        f"{door} answered {r.status_code} without a proof of presence"
        for door, r in results
        if r.status_code < 400
    ]
    if wallet(db) != before:
        through.append(f"balances or rows changed: {before} -> {wallet(db)}")
    kind = database_url.split(":")[0]
    SUMMARY.note(
        f"spends without proof ({kind}): {len(results)} tried on "
        f"{', '.join(door for door, _ in results)}; {len(results) - len(through)} refused"
    )
    assert SUMMARY.violated("spend without proof", through) == []


def _rss_peak_kb(pid: int) -> int:
    """The peak resident memory of a process (VmHWM), in KiB: ``fidelia serve`` with one
    web process serves in its own process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_oversize_bodies_cost_the_server_no_memory(database_url, tmp_path):
    """Four clients at once, each sending a 300 MB body (declared, and chunked), to doors
    without and with credentials: every one refused with 413 before it is read, and the
    server's peak memory stays that of an idle process."""
    upgrade(database_url)
    port = free_port()
    server = Fidelia(environment(database_url), port, tmp_path)
    server.start()
    size = pick(300, 300) * 1024 * 1024
    chunk = b"x" * (1024 * 1024)
    statuses: list[int | str] = []  # 413, or how the refusal reached the client
    lock = threading.Lock()

    def stream():
        for _ in range(size // len(chunk)):
            yield chunk

    def attack(path: str, chunked: bool) -> None:
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                if chunked:
                    response = client.post(path, content=stream())
                else:
                    response = client.post(
                        path,
                        content=stream(),
                        headers={"Content-Length": str(size)},
                    )
                status: int | str = response.status_code
        except httpx.HTTPError as exc:  # the server may close the socket mid-upload
            status = type(exc).__name__
        if status == 401 and path == "/webhooks/whatsapp":
            status = "401 unsigned, unread"  # refused before its body is read
        with lock:
            statuses.append(status)

    paths = ["/webhooks/whatsapp", "/v1/member/register", "/v2/auth/token", "/v1/pvt/POS/orders"]
    try:
        idle = _rss_peak_kb(server.procs[0].pid)
        threads = [
            threading.Thread(target=attack, args=(path, chunked))
            for path in paths
            for chunked in (False, True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        peak = _rss_peak_kb(server.procs[0].pid)
        healthy = httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
    finally:
        server.stop()
    SUMMARY.sent(len(statuses))
    SUMMARY.tried(len(statuses))
    SUMMARY.note(
        f"oversize bodies: {len(statuses)} x {size // 2**20} MB at once -> "
        f"{sorted(set(map(str, statuses)))}; "
        f"server peak memory {peak // 1024} MiB (idle {idle // 1024} MiB)"
    )
    refused = (413, "401 unsigned, unread", "RemoteProtocolError", "WriteError", "ReadError")
    problems = [f"an oversize body was answered {s}" for s in statuses if s not in refused]
    if peak - idle > 64 * 1024:
        problems.append(f"peak memory grew by {(peak - idle) // 1024} MiB")
    if not healthy:
        problems.append("the server stopped answering")
    assert SUMMARY.violated("oversize bodies", problems) == []


def test_out_of_range_numbers_are_refused_on_every_door(client, db, amount_shop, database_url):  # noqa: F811
    """Every bad amount on every door that takes one: a 4xx, never a 5xx."""
    import base64

    key, token = amount_shop["key"], amount_shop["token"]
    bearer = client.post("/v2/auth/token", json={"api_key": token, "api_secret": key}).json()[
        "access_token"
    ]
    retail = {
        "x-api-key": key,
        "x-source-type": "POS",
        "x-source-name": "t",
        "x-branch-id": "1",
        "x-pos-id": "1",
    }
    pos = {"Authorization": "Basic " + base64.b64encode(f"{token}:{key}".encode()).decode()}
    calls = []
    for value in BAD + TOO_PRECISE + HUGE:
        calls.append(
            client.post(
                "/v1/pvt/POS/orders",
                headers=pos,
                json={
                    "OriginalId": "X",
                    "OrderTotal": value,
                    "IsCompleted": True,
                    "Customer": {"Document": "52998224725"},
                },
            )
        )
        calls.append(
            client.post(
                "/v2/sales",
                headers={"Authorization": f"Bearer {bearer}"},
                json={"cpf": "52998224725", "sale_amount": value},
            )
        )
        calls.append(
            client.post(
                "/api/v1/integraciones/pin/generar",
                headers={"X-API-Key": key},
                json={"monto": value},
            )
        )
        calls.append(
            client.post(
                "/v1/transaction",
                headers=retail,
                json={
                    "member": {"phoneNumber": "+5511987654321"},
                    "transaction": {"transactionId": "T", "totalAmount": value},
                },
            )
        )
        calls.append(
            client.post(
                "/v1/payment",
                headers=retail,
                json={
                    "member": {"phoneNumber": "+5511987654321"},
                    "payment": {"action": "pay", "type": "POINTS", "amount": value},
                },
            )
        )
    SUMMARY.sent(len(calls))
    SUMMARY.tried(len(calls))
    bad = [
        f"{r.request.url.path} answered {r.status_code}"
        for r in calls
        if not 400 <= r.status_code < 500
    ]
    kind = database_url.split(":")[0]
    SUMMARY.note(
        f"out-of-range and malformed numbers ({kind}): {len(calls)} on 5 doors, "
        f"{len(calls) - len(bad)} refused 4xx"
    )
    assert SUMMARY.violated("out-of-range numbers", bad) == []


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_pin_guessing_at_platform_scale(app, db, settings):
    """The attack report's run against a real server on PostgreSQL, and the expected number
    of PINs guessed per day at the stated attack and loads."""
    from tests.messaging.test_pin_guessing import (
        test_two_hundred_senders_guessing_at_once_are_held_to_the_budget as attack,
    )

    policy = GuessPolicy.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    attack(app, db, settings)
    SUMMARY.sent(1000)
    SUMMARY.tried(1000)
    loads = {40: None, 9_000: None, 60_000: None}
    for open_pins in loads:
        loads[open_pins] = policy.expected_successes_per_day(open_pins)
    figures = ", ".join(f"{n} open: {e:.4f}/day" for n, e in loads.items())
    SUMMARY.note(
        f"PIN guessing: 200 senders x 5 guesses on 40 open PINs -> 0 stolen; expected guessed "
        f"PINs at {policy.guesses_per_day():.0f} guesses/day per bot number: {figures}"
    )
    problems = [f"{n} open PINs: {e:.4f} > 0.01/day" for n, e in loads.items() if e and e > 0.01]
    assert SUMMARY.violated("PIN guessing", problems) == []
