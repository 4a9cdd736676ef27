"""Races, on a real server (uvicorn on loopback) with real parallel requests, on SQLite and
PostgreSQL: parallel redemptions (PIN door and POS door), one PIN activated from two numbers
at once, one webhook delivered concurrently, one idempotency key (``OriginalKey``) used
concurrently, with the same payload and with two. The ledger invariants hold and the counts
are printed. tests/test_concurrency.py covers the PIN door's races once each; here they
run in rounds, harder in the long form, next to the POS door's."""

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from fidelia.kit.db import Database
from fidelia.models import Balance, IdempotencyKey, InboundMessage, LedgerEntry, Redemption
from fidelia.rewards.service import create_reward
from fidelia.tenants.service import create_tenant, issue_api_key, set_setting
from tests.reliability.summary import SUMMARY, pick
from tests.support.helpers import (
    LiveServer,
    generate_pin,
    ledger_invariants,
    make_reward,
    make_tenant,
    process_inbound,
    send_whatsapp,
    webhook_body,
)
from tests.support.world import basic
from tests.test_concurrency import activate_text, count, fire, post_webhooks, scalar, tally

CANJEAR = "/api/v1/redimir/canjear"
POS = "/v1/pvt/POS"


@pytest.fixture
def server(app) -> Iterator[LiveServer]:
    with LiveServer(app) as live:
        yield live


def backend(db: Database) -> str:
    return "sqlite" if db.is_sqlite else "postgresql"


class Expect:
    """Collects what went wrong instead of stopping at the first, so the summary counts it."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.problems: list[str] = []

    def that(self, ok: bool, what: str) -> None:
        if not ok:
            self.problems.append(what)

    def invariants(self, db: Database) -> None:
        self.problems.extend(ledger_invariants(db))

    def done(self) -> None:
        SUMMARY.violated(self.where, self.problems)
        assert not self.problems, "\n".join(self.problems)


def record(db: Database, what: str, counts: Counter) -> None:
    SUMMARY.sent(sum(counts.values()))
    SUMMARY.note(f"race [{backend(db)}] {what}: {dict(sorted(counts.items()))}")


def test_parallel_redemptions_pin_door(app, server, db, settings):
    """A balance worth 3 rewards, N parallel redemptions, several rounds: 3 win each time."""
    tenant, key = make_tenant(db, points_per_pin="30")
    reward_id = make_reward(db, tenant, points=10)
    n, rounds = pick(30, 80), pick(2, 5)
    expect = Expect(f"race {backend(db)} canjear")
    total: Counter = Counter()
    for r in range(rounds):
        number = f"+5068800{r:04d}"
        with server.client() as client:
            send_whatsapp(client, settings, number, activate_text(generate_pin(client, key)))
        process_inbound(app)  # store first, then process: the worker credits it
        body = {"whatsapp": number, "id_comercio": tenant.id, "id_promocion": reward_id}
        counts = tally(fire(server, n, lambda client, _, b=body: client.post(CANJEAR, json=b)))
        total += counts
        expect.that(counts == {"200": 3, "422 PUNTOS_INSUFICIENTES": n - 3}, f"round {r}: {counts}")
    record(db, f"{rounds} x {n} POST /redimir/canjear, balance worth 3", total)
    expect.that(count(db, Redemption) == 3 * rounds, "redemptions")
    expect.that(count(db, LedgerEntry, LedgerEntry.kind == "redeem") == 3 * rounds, "debits")
    expect.that(scalar(db, select(func.sum(Balance.amount))) == 0, "balances")
    expect.invariants(db)
    expect.done()


def test_same_pin_from_two_numbers(app, server, db, settings):
    tenant, key = make_tenant(db)
    rounds = pick(8, 40)
    expect = Expect(f"race {backend(db)} same PIN")
    total: Counter = Counter()
    for r in range(rounds):
        with server.client() as client:
            pin = generate_pin(client, key)
        numbers = [f"+50670{r:03d}001", f"+50670{r:03d}002"]
        bodies = [webhook_body(settings, number, activate_text(pin)) for number in numbers]
        counts = tally(fire(server, 2, post_webhooks(settings, bodies)))
        process_inbound(app, workers=2, batch=1)  # two workers racing for the two messages
        total += counts
        expect.that(counts == {"200": 2}, f"round {r}: {counts}")
    credits = count(db, LedgerEntry, LedgerEntry.source_type == "pin")
    record(db, f"{rounds} PINs each sent from 2 numbers at once ({credits} credits)", total)
    expect.that(credits == rounds, f"{credits} credits for {rounds} PINs")
    expect.that(scalar(db, select(func.sum(Balance.amount))) == rounds, "points")
    expect.invariants(db)
    expect.done()


def test_same_webhook_delivered_concurrently(app, server, db, settings):
    tenant, key = make_tenant(db, points_per_pin="3")
    n, rounds = pick(20, 50), pick(2, 5)
    expect = Expect(f"race {backend(db)} same webhook")
    total: Counter = Counter()
    for r in range(rounds):
        with server.client() as client:
            pin = generate_pin(client, key)
        raw = webhook_body(settings, f"+5068880{r:04d}", activate_text(pin), f"wamid.race.{r}")
        responses = fire(server, n, post_webhooks(settings, [raw] * n))
        processed = Counter(x.json()["processed"] for x in responses if x.status_code == 200)
        process_inbound(app, workers=4, batch=1)
        total += tally(responses)
        expect.that(processed == {1: 1, 0: n - 1}, f"round {r}: processed {dict(processed)}")
    record(db, f"{rounds} x the same webhook {n} times at once", total)
    expect.that(count(db, InboundMessage) == rounds, "messages")
    expect.that(count(db, LedgerEntry, LedgerEntry.kind == "earn") == rounds, "credits")
    expect.that(scalar(db, select(func.sum(Balance.amount))) == 3 * rounds, "points")
    expect.invariants(db)
    expect.done()


# -- the POS door ----------------------------------------------------------------------------


def pos_merchant(db: Database) -> tuple[dict[str, str], int]:
    """A merchant earning 1 point per R$ 1 and a reward of 100 points; its Basic header."""
    with db.session() as session:
        tenant = create_tenant(session, slug="loja", name="Loja", currency="BRL", locale="pt_BR")
        set_setting(session, "loja", "earn_points_per_unit", "1")
        reward = create_reward(
            session, tenant, title="R$ 10", points=100, reward_type="fixed", value="10"
        )
        issued = issue_api_key(session, tenant)
        return basic(issued.token, issued.api_key), reward.id


def earn(server: LiveServer, auth: dict[str, str], document: str, total: int) -> None:
    with server.client() as client:
        body = {
            "OriginalId": f"earn-{document}",
            "OrderTotal": total,
            "IsCompleted": True,
            "Customer": {"Document": document},
        }
        response = client.post(f"{POS}/orders", headers=auth, json=body)
        assert response.status_code == 200, response.text


def pos_tally(responses: list[httpx.Response]) -> Counter:
    counts: Counter = Counter()
    for response in responses:
        name = "" if response.status_code == 200 else f" {response.json().get('CodeName')}"
        counts[f"{response.status_code}{name}"] += 1
    return counts


DOCUMENTS = ["52998224725", "11144477735", "39053344705", "71428793860", "98765432100"]


def test_same_original_key_concurrently(server, db):
    """N parallel redemptions with one OriginalKey: one debit, and every answer is the
    first one (replayed), never a 409; the balance could have paid for several."""
    auth, reward_id = pos_merchant(db)
    n, rounds = pick(20, 60), pick(2, 5)
    expect = Expect(f"race {backend(db)} same OriginalKey")
    total: Counter = Counter()
    for r, document in enumerate(DOCUMENTS[:rounds]):
        earn(server, auth, document, 1000)  # worth 10 redemptions
        body = {"CustomerId": document, "OriginalKey": f"K-{r}"}
        path = f"{POS}/rewards/{reward_id}/redeem"
        responses = fire(
            server, n, lambda client, _, p=path, b=body: client.post(p, headers=auth, json=b)
        )
        counts = pos_tally(responses)
        total += counts
        answers = {r.text for r in responses if r.status_code == 200}
        expect.that(counts == {"200": n}, f"key K-{r}: {counts}")
        expect.that(len(answers) == 1, f"key K-{r}: {len(answers)} different answers")
    record(db, f"{rounds} x {n} POST /rewards/{{id}}/redeem with one OriginalKey", total)
    expect.that(count(db, Redemption) == rounds, f"{count(db, Redemption)} redemptions")
    expect.that(count(db, IdempotencyKey) == rounds, "keys")
    debits = count(db, LedgerEntry, LedgerEntry.kind == "redeem")
    expect.that(debits == rounds, f"{debits} debits")
    expect.that(scalar(db, select(func.sum(Balance.amount))) == rounds * 900, "points")
    expect.invariants(db)
    expect.done()


def test_one_original_key_two_payloads_concurrently(server, db):
    """Two payloads race for one key: one payload's requests all get its answer, the
    other's are refused with OriginalKeyReused; one debit."""
    auth, reward_id = pos_merchant(db)
    n = pick(20, 60)
    for document in DOCUMENTS[:2]:
        earn(server, auth, document, 1000)
    path = f"{POS}/rewards/{reward_id}/redeem"

    def send(client: httpx.Client, i: int) -> httpx.Response:
        body: dict[str, Any] = {"CustomerId": DOCUMENTS[i % 2], "OriginalKey": "SHARED"}
        return client.post(path, headers=auth, json=body)

    responses = fire(server, n, send)
    counts = pos_tally(responses)
    record(db, f"{n} POST /rewards/{{id}}/redeem, one OriginalKey, two payloads", counts)
    expect = Expect(f"race {backend(db)} key with two payloads")
    winners = {responses[i].request.content for i in range(n) if responses[i].status_code == 200}
    expect.that(counts == {"200": n // 2, "422 OriginalKeyReused": n // 2}, f"{counts}")
    expect.that(len(winners) == 1, "both payloads got a 200")
    expect.that(count(db, Redemption) == 1, "redemptions")
    expect.that(count(db, LedgerEntry, LedgerEntry.kind == "redeem") == 1, "debits")
    expect.invariants(db)
    expect.done()


def test_parallel_redemptions_pos_door(server, db):
    """Different keys, a balance worth one reward: one redemption, the rest refused."""
    auth, reward_id = pos_merchant(db)
    n = pick(30, 80)
    earn(server, auth, DOCUMENTS[0], 100)
    path = f"{POS}/rewards/{reward_id}/redeem"

    def send(client: httpx.Client, i: int) -> httpx.Response:
        body = {"CustomerId": DOCUMENTS[0], "OriginalKey": f"P-{i}"}
        return client.post(path, headers=auth, json=body)

    counts = pos_tally(fire(server, n, send))
    record(db, f"{n} POST /rewards/{{id}}/redeem, balance worth 1", counts)
    expect = Expect(f"race {backend(db)} POS redemptions")
    expect.that(counts == {"200": 1, "422 InsufficientPoints": n - 1}, f"{counts}")
    expect.that(count(db, Redemption) == 1, f"{count(db, Redemption)} redemptions")
    expect.that(count(db, IdempotencyKey) == 1, "refusals are not stored")
    expect.that(scalar(db, select(func.sum(Balance.amount))) == 0, "points")
    expect.invariants(db)
    expect.done()
