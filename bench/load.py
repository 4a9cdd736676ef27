"""Drive load with wrk (C, event-driven: it leaves the CPU to the server under test).

wrk cannot make each request distinct on its own, and the credit path needs a fresh PIN
and message id per webhook, so every request is built here beforehand (signed bodies
included) and replayed by ``replay.lua``: one file per wrk thread, at full speed or
paced to a target rate (for latency at half of the peak rate).
"""

import json
import random
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.seed import NAMESPACE, Customer, Merchant, PoolPin
from fidelia.kit.security import sign_sha256
from fidelia.simulator.routes import cloud_api_payload

SCRIPT = Path(__file__).with_name("replay.lua")
PHONE_NUMBER_ID = "100000000000001"


@dataclass(frozen=True)
class LoadResult:
    requests: int  # completed responses
    seconds: float
    errors: int  # non-2xx/3xx answers, socket errors and timeouts
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    sent: int  # distinct requests taken from the file (replayed mode: at most its size)
    exhausted: bool
    error_sample: str = ""  # the first error answer: status and body
    # CPU time of Fidelia's web processes and of its outbox worker per answered request
    # (less sensitive than requests/s to whatever else the machine is running)
    web_cpu_ms: float | None = None
    worker_cpu_ms: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rps": round(self.rps, 1),
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "errors": self.errors,
            "p50_ms": round(self.p50_ms, 2),
            "p90_ms": round(self.p90_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "max_ms": round(self.max_ms, 2),
            "mean_ms": round(self.mean_ms, 2),
            "exhausted": self.exhausted,
            "web_cpu_ms": None if self.web_cpu_ms is None else round(self.web_cpu_ms, 2),
            "worker_cpu_ms": None if self.worker_cpu_ms is None else round(self.worker_cpu_ms, 2),
            **({"error_sample": self.error_sample} if self.error_sample else {}),
        }


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk not found: run scripts/ensure-services.sh wrk (make bench does)")
    return path


def http_request(
    method: str, path: str, host: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def webhook_requests(pool: list[PoolPin], host: str, secret: str, tag: str) -> list[bytes]:
    """One signed Cloud API webhook per pool PIN, sent by the customer it was made for."""
    out = []
    for k, pin in enumerate(pool):
        payload: dict[str, Any] = cloud_api_payload(
            pin.customer.number,
            f"Quiero activar mi PIN: {pin.code}",
            NAMESPACE,
            PHONE_NUMBER_ID,
            f"Cliente {pin.customer.id}",
        )
        payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = f"wamid.bench.{tag}.{k}"
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_sha256(body, secret),
        }
        out.append(http_request("POST", "/webhooks/whatsapp", host, headers, body))
    return out


def pin_requests(merchants: list[Merchant], host: str, n: int, rng: random.Random) -> list[bytes]:
    """POS calls to generate a PIN, spread over the merchants' API keys."""
    return [
        http_request(
            "POST",
            "/api/v1/integraciones/pin/generar",
            host,
            {"X-API-Key": rng.choice(merchants).api_key},
        )
        for _ in range(n)
    ]


def lookup_requests(
    customers: list[Customer], host: str, n: int, rng: random.Random
) -> list[bytes]:
    return [
        http_request(
            "GET",
            "/api/v1/redimir/puntos/" + rng.choice(customers).number.replace("+", "%2B"),
            host,
        )
        for _ in range(n)
    ]


def redeem_requests(
    customers: list[Customer],
    rewards: dict[int, int],
    host: str,
    n: int,
    rng: random.Random,
) -> list[bytes]:
    """Redemptions of each merchant's 10-point reward, spread over its customers."""
    out = []
    for _ in range(n):
        c = rng.choice(customers)
        body = json.dumps(
            {"whatsapp": c.number, "id_comercio": c.tenant_id, "id_promocion": rewards[c.tenant_id]}
        ).encode()
        headers = {"Content-Type": "application/json"}
        out.append(http_request("POST", "/api/v1/redimir/canjear", host, headers, body))
    return out


def write_requests(prefix: Path, requests: list[bytes], threads: int) -> None:
    for t in range(threads):
        with open(f"{prefix}.{t}", "wb") as f:
            for request in requests[t::threads]:
                f.write(request + b"\0")


def run_wrk(
    url: str,
    prefix: Path,
    *,
    mode: str,
    seconds: float,
    connections: int,
    threads: int,
    rate: float = 0.0,
) -> LoadResult:
    """wrk against ``url`` replaying ``prefix.<thread>``; ``rate`` > 0 paces the whole
    run to about that many requests a second."""
    interval = threads * 1000.0 / rate if rate > 0 else 0.0
    cmd = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(SCRIPT),
        url,
        "--",
        str(prefix),
        mode,
        f"{interval:.4f}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    match = re.search(r"^BENCH_JSON (.*)$", out.stdout, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk gave no result:\n{out.stdout}\n{out.stderr}")
    r = json.loads(match.group(1))
    errors = sum(
        r[k] for k in ("status_errors", "connect_errors", "read_errors", "write_errors", "timeouts")
    )
    return LoadResult(
        requests=r["requests"],
        seconds=r["duration_us"] / 1e6,
        errors=errors,
        p50_ms=r["p50_us"] / 1000,
        p90_ms=r["p90_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        max_ms=r["max_us"] / 1000,
        mean_ms=r["mean_us"] / 1000,
        sent=r["sent"],
        exhausted=r["exhausted_threads"] > 0,
        error_sample=" | ".join(re.findall(r"^BENCH_ERROR (.*)$", out.stdout, re.MULTILINE)),
    )


def panel_cookie(base_url: str, email: str, password: str) -> str:
    """Sign in to the panel as a browser would (the CSRF token from the login page) and
    return the Cookie header of the session. Cookies are read off Set-Cookie by hand: in
    production they are Secure, which an http client keeps to itself over plain http."""
    import httpx

    jar: dict[str, str] = {}

    def keep(response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            jar[name.strip()] = rest.split(";", 1)[0]

    def cookie() -> str:
        return "; ".join(f"{k}={v}" for k, v in jar.items())

    with httpx.Client(base_url=base_url, timeout=30) as http:
        page = http.get("/panel/login")
        keep(page)
        found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        if found is None:
            raise RuntimeError(f"no CSRF token on the login page: {page.status_code}")
        answer = http.post(
            "/panel/login",
            data={"csrf_token": found.group(1), "email": email, "password": password},
            headers={"Cookie": cookie()},
        )
        keep(answer)
        if answer.status_code != 303 or "fidelia_session" not in jar:
            raise RuntimeError(f"panel sign-in failed: {answer.status_code}")
    return cookie()


def panel_search_requests(
    customers: list[Customer], host: str, cookie: str, n: int, rng: random.Random
) -> list[bytes]:
    """The owner's customer search: half by the start of a name ('cliente 12'...: a prefix
    shared by up to a few hundred customers, a page of 25 shown), half by phone number."""
    out = []
    for _ in range(n):
        c = rng.choice(customers)
        if rng.random() < 0.5:
            query = f"cliente+{str(c.id)[: rng.randint(1, len(str(c.id)))]}"
        else:
            query = c.number.replace("+", "%2B")
        out.append(http_request("GET", f"/panel/customers?q={query}", host, {"Cookie": cookie}))
    return out


def panel_customer_requests(
    customers: list[Customer], host: str, cookie: str, n: int, rng: random.Random
) -> list[bytes]:
    """The owner's customer page (identifiers, consents, balances, the newest page of the
    ledger, redemptions, orders, vouchers) of random customers."""
    return [
        http_request(
            "GET", f"/panel/customers/{rng.choice(customers).id}", host, {"Cookie": cookie}
        )
        for _ in range(n)
    ]


# -- the POS and retail doors (issue 14): each request unique (idempotency keys, order ids) --


def _basic(merchant: Merchant) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{merchant.token}:{merchant.api_key}".encode()).decode()


def _json(method: str, path: str, host: str, headers: dict[str, str], data: Any) -> bytes:
    body = json.dumps(data, separators=(",", ":")).encode()
    return http_request(method, path, host, {"Content-Type": "application/json", **headers}, body)


def _each(
    customers: list[Customer], n: int, rng: random.Random, make: Callable[[Customer, str], bytes]
) -> list[bytes]:
    """``n`` requests for random customers, each with a key of its own (``bench-TAG-k``),
    so the measured run makes new rows instead of replaying."""
    tag = rng.randrange(10**9)
    return [make(rng.choice(customers), f"bench-{tag}-{k}") for k in range(n)]


def pos_redeem_requests(
    customers: list[Customer], merchants: dict[int, Merchant], host: str, n: int, rng: random.Random
) -> list[bytes]:
    """Seed 001: redeem the merchant's 10-point reward by CPF, a fresh OriginalKey each."""
    from bench.seed import cpf_of

    def make(c: Customer, key: str) -> bytes:
        m = merchants[c.tenant_id]
        path = f"/v1/pvt/POS/rewards/{m.reward_id}/redeem"
        body = {"CustomerId": cpf_of(c.id), "OriginalKey": key}
        return _json("POST", path, host, {"Authorization": _basic(m)}, body)

    return _each(customers, n, rng, make)


def pos_order_requests(
    customers: list[Customer], merchants: dict[int, Merchant], host: str, n: int, rng: random.Random
) -> list[bytes]:
    """Seed 001: a completed order of a known customer (by CPF), a fresh OriginalId each."""
    from bench.seed import cpf_of

    def make(c: Customer, key: str) -> bytes:
        body = {
            "OriginalId": key,
            "OrderTotal": 25.5,
            "IsCompleted": True,
            "Customer": {"Document": cpf_of(c.id)},
        }
        auth = {"Authorization": _basic(merchants[c.tenant_id])}
        return _json("POST", "/v1/pvt/POS/orders", host, auth, body)

    return _each(customers, n, rng, make)


def retail_requests(
    customers: list[Customer], merchants: dict[int, Merchant], host: str, n: int, rng: random.Random
) -> list[bytes]:
    """Seed 002: a sale of a member (by phone) paid in cash, a fresh transactionId each."""

    def make(c: Customer, key: str) -> bytes:
        headers = {
            "x-api-key": merchants[c.tenant_id].api_key,
            "x-source-type": "POS",
            "x-source-name": "bench",
            "x-branch-id": "B1",
            "x-pos-id": "P1",
        }
        basket = {
            "transactionId": key,
            "dateTime": "2026-05-07T15:30:00Z",
            "totalAmount": 2550,
            "items": [
                {"lineId": "1", "code": "PAO", "name": "Pão", "quantity": 1, "netAmount": 2550}
            ],
            "payments": [{"type": "CASH", "amount": 2550}],
        }
        body = {"member": {"phoneNumber": c.number}, "transaction": basket}
        return _json("POST", "/v1/transaction", host, headers, body)

    return _each(customers, n, rng, make)


def v2_sale_requests(
    customers: list[Customer], tokens: dict[int, str], host: str, n: int, rng: random.Random
) -> list[bytes]:
    """Seed 004: a sale by CPF with a fresh external_id each (``tokens``: merchant -> access
    token from POST /v2/auth/token)."""
    from bench.seed import cpf_of

    def make(c: Customer, key: str) -> bytes:
        auth = {"Authorization": f"Bearer {tokens[c.tenant_id]}"}
        body = {"sale_amount": "25.50", "cpf": cpf_of(c.id), "external_id": key}
        return _json("POST", "/v2/sales", host, auth, body)

    return _each(customers, n, rng, make)
