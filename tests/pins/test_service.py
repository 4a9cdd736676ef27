"""PINs at the service level (fidelia/pins): what a generated PIN holds, how long it is,
which open PINs count and block a code, what an activation answers, what the worker's sweep
expires, and the guessing budget (guard.py). Killing mutmut's mutants of fidelia/pins
(docs/testing.md)."""

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, insert, select, text

from fidelia.kit import clock
from fidelia.kit.db import Database
from fidelia.kit.errors import DomainError, InvalidInput
from fidelia.kit.settings import Settings
from fidelia.models import Pin, PinFailure, Tenant, WhatsAppContact
from fidelia.pins import guard
from fidelia.pins.guard import GuessPolicy, record_failure, refusal
from fidelia.pins.service import (
    Longest,
    activate,
    expire_stale,
    generate,
    generate_now,
    namespace_of,
    open_count,
)
from tests.support.helpers import make_tenant

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
NS = "50600000000"
OTHER = "50611111111"
ROOMY = GuessPolicy(target_per_day=1e9)  # every PIN 4 digits, however many are open


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(T0)
    yield
    clock.freeze(None)


def shop(db: Database, slug: str = "cafe", **columns: object) -> Tenant:
    tenant, _ = make_tenant(db, slug=slug)
    with db.session() as session:
        row = session.get_one(Tenant, tenant.id)
        for name, value in columns.items():
            setattr(row, name, value)
    return tenant


def add(db, tenant, *pins: tuple[str, str, datetime], namespace: str = NS) -> list[int]:
    """(code, status, expires_at) rows, written as they are."""
    with db.session() as session:
        rows = [
            Pin(
                tenant_id=tenant.id,
                namespace=namespace,
                code=code,
                status=status,
                points=1,
                created_at=T0 - timedelta(hours=1),
                expires_at=expires,
            )
            for code, status, expires in pins
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def fill(db, tenant, status: str, expires: datetime, namespace: str = NS) -> None:
    """Every 4-digit code of ``namespace``, in one INSERT."""
    values = [
        {
            "tenant_id": tenant.id,
            "namespace": namespace,
            "code": f"{n:04d}",
            "status": status,
            "points": 1,
            "created_at": T0 - timedelta(hours=1),
            "expires_at": expires,
        }
        for n in range(10**4)
    ]
    with db.session() as session:
        session.execute(insert(Pin), values)


def statuses(db, namespace: str = NS) -> dict[str, int]:
    with db.session(readonly=True) as session:
        found: dict[str, int] = {}
        for status in session.scalars(select(Pin.status).where(Pin.namespace == namespace)):
            found[status] = found.get(status, 0) + 1
        return found


def make(db, tenant, amount=None, policy=None, namespace=NS) -> Pin:
    with db.session() as session:
        pin = generate(session, session.get_one(Tenant, tenant.id), namespace, amount, policy)
        session.flush()
        session.expunge(pin)
        return pin


def use(db, code, namespace=NS):
    with db.session() as session:
        result = activate(session, namespace, code)
        if result.pin is not None:
            session.flush()
            session.expunge(result.pin)
        return result


def test_a_pin_is_open_for_the_merchants_lifetime_with_its_points(db):
    tenant = shop(db, min_purchase=1000, pin_lifetime_minutes=45, points_per_pin=7)
    with pytest.raises(InvalidInput) as refused:
        make(db, tenant, amount=999)
    assert refused.value.code == "BELOW_MINIMUM"
    assert str(refused.value) == "The purchase is below the merchant's minimum."
    for amount in (1000, None):
        pin = make(db, tenant, amount=amount)
        assert (pin.tenant_id, pin.namespace, pin.status, pin.amount) == (
            tenant.id,
            NS,
            "open",
            amount,
        )
        assert (pin.points, pin.created_at, pin.expires_at) == (7, T0, T0 + timedelta(minutes=45))
        assert len(pin.code) == 6 and pin.code.isdigit()  # the default policy, few PINs open
    assert statuses(db) == {"open": 2}


def test_only_the_namespaces_open_unexpired_pins_count(db):
    tenant = shop(db)
    add(db, tenant, ("1111", "open", T0 + timedelta(seconds=1)))
    add(db, tenant, ("2222", "open", T0), ("3333", "used", T0 + timedelta(hours=1)))
    add(db, tenant, ("4444", "expired", T0 + timedelta(hours=1)))
    add(db, tenant, ("1111", "open", T0 + timedelta(hours=1)), namespace=OTHER)
    with db.session(readonly=True) as session:
        assert open_count(session, NS) == 1
        assert open_count(session, "nowhere") == 0
    # 2.5 PINs in 10**4 may be open: 4 digits for the second open PIN, 5 for the third.
    policy = GuessPolicy(target_per_day=2.5e-4 * 1540)
    assert len(make(db, tenant, policy=policy).code) == 4
    assert len(make(db, tenant, policy=policy).code) == 5


def test_a_code_held_by_an_expired_open_pin_is_freed_for_the_new_one(db):
    tenant = shop(db)
    fill(db, tenant, "used", T0)  # every code, used: never touched again
    fill(db, tenant, "open", T0)  # every code, open but expired now: the sweep is late
    fill(db, tenant, "open", T0, namespace=OTHER)
    pin = make(db, tenant, policy=ROOMY)
    assert pin.status == "open" and len(pin.code) == 4
    assert statuses(db) == {"used": 10**4, "open": 10**4, "expired": 1}
    assert statuses(db, OTHER) == {"open": 10**4}
    with db.session(readonly=True) as session:
        freed = session.scalars(select(Pin).where(Pin.status == "expired")).one()
    assert (freed.code, freed.namespace, freed.id != pin.id) == (pin.code, NS, True)


def test_codes_are_drawn_from_the_whole_space(db):
    tenant = shop(db)
    with db.session() as session:
        here = session.get_one(Tenant, tenant.id)
        codes = [generate(session, here, NS, policy=ROOMY).code for _ in range(45)]
    assert len(set(codes)) == 45 and all(len(code) == 4 for code in codes)
    assert max(int(code) for code in codes) >= 1000


def test_a_full_namespace_fails_without_writing(db):
    tenant = shop(db)
    fill(db, tenant, "open", T0 + timedelta(seconds=1))
    with pytest.raises(DomainError) as failed:
        make(db, tenant, policy=ROOMY)
    assert (failed.value.code, failed.value.status) == ("PIN_GENERATION_FAILED", 500)
    assert str(failed.value) == "Could not find a free PIN."
    assert statuses(db) == {"open": 10**4}


def test_an_activation_uses_the_open_pin_once(db):
    tenant = shop(db)
    [pin, other] = add(
        db,
        tenant,
        ("123456", "open", T0 + timedelta(seconds=1)),
        ("777777", "open", T0 + timedelta(hours=1)),
    )
    add(db, tenant, ("654321", "open", T0 + timedelta(hours=1)), namespace=OTHER)
    clock.freeze(T0 + timedelta(milliseconds=500))
    got = use(db, "123456")
    assert got.outcome == "credited" and got.pin is not None
    assert (got.pin.id, got.pin.status, got.pin.used_at) == (
        pin,
        "used",
        T0 + timedelta(milliseconds=500),
    )
    again = use(db, "123456")
    assert again.outcome == "used" and again.pin is not None and again.pin.id == pin
    assert use(db, "654321").outcome == "unknown"  # open, in another namespace
    assert use(db, "999999") == type(got)("unknown")
    assert statuses(db) == {"used": 1, "open": 1} and statuses(db, OTHER) == {"open": 1}
    assert use(db, "777777").pin.id == other  # type: ignore[union-attr]


def test_an_expired_pin_and_a_suspended_merchants_pin_answer_expired(db):
    tenant = shop(db)
    suspended = shop(db, slug="x")  # same defaults, another merchant
    [late] = add(db, tenant, ("111111", "open", T0))  # due now
    [held] = add(db, suspended, ("222222", "open", T0 + timedelta(hours=1)))
    with db.session() as session:
        session.get_one(Tenant, suspended.id).suspended_at = T0
    [fine] = add(db, tenant, ("333333", "open", T0 + timedelta(hours=1)))
    for code, pin in (("111111", late), ("222222", held)):
        got = use(db, code)
        assert got.outcome == "expired" and got.pin is not None and got.pin.id == pin
    assert statuses(db) == {"open": 3}  # neither used
    got = use(db, "333333")  # the other merchants' PINs work meanwhile
    assert got.outcome == "credited" and got.pin is not None and got.pin.id == fine


def test_the_latest_pin_with_the_code_gives_the_answer(db):
    tenant = shop(db)
    add(db, tenant, ("111111", "used", T0), ("111111", "expired", T0))
    add(db, tenant, ("222222", "expired", T0), ("222222", "used", T0))
    assert use(db, "111111").outcome == "expired"
    assert use(db, "222222").outcome == "used"


def test_the_sweep_expires_the_open_pins_that_are_due(db):
    tenant = shop(db)
    due = add(db, tenant, ("1", "open", T0), ("2", "open", T0 - timedelta(days=1)))
    due += add(db, tenant, ("3", "open", T0), namespace=OTHER)
    kept = add(db, tenant, ("4", "open", T0 + timedelta(seconds=1)), ("5", "used", T0))
    with db.session() as session:
        assert expire_stale(session) == 3
    with db.session(readonly=True) as session:
        rows = dict(session.execute(select(Pin.id, Pin.status)).all())
    assert rows == dict.fromkeys(due, "expired") | {kept[0]: "open", kept[1]: "used"}
    with db.session() as session:
        assert expire_stale(session) == 0


def test_the_sweep_expires_at_most_its_limit_at_a_time(db):
    tenant = shop(db)
    with db.session() as session:
        session.execute(
            insert(Pin),
            [
                {
                    "tenant_id": tenant.id,
                    "namespace": NS,
                    "code": str(n),
                    "status": "open",
                    "points": 1,
                    "expires_at": T0,
                }
                for n in range(1003)
            ],
        )
    with db.session() as session:
        assert expire_stale(session, limit=2) == 2
    assert statuses(db) == {"open": 1001, "expired": 2}
    with db.session() as session:
        assert expire_stale(session) == 1000
    with db.session() as session:
        assert expire_stale(session) == 1
    assert statuses(db) == {"expired": 1003}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_sweep_spares_a_pin_activated_while_it_waited(db):
    """PostgreSQL, two connections: the sweep reads a due PIN that an activation still in
    progress has just used; the sweep's UPDATE waits for that row, and once the activation
    commits the PIN stays used (the UPDATE checks again that it is open)."""
    tenant = shop(db)
    [pin] = add(db, tenant, ("123456", "open", T0 + timedelta(seconds=1)))
    swept: list[int] = []

    def sweep() -> None:
        with db.session() as session:
            swept.append(expire_stale(session))

    with db.session() as activation:
        assert activate(activation, NS, "123456").outcome == "credited"  # not committed
        clock.freeze(T0 + timedelta(seconds=1))  # due, as the sweep sees it
        thread = threading.Thread(target=sweep)
        thread.start()
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        for _ in range(600):
            with db.session(readonly=True) as session:
                if session.scalar(text(waiting)) or not thread.is_alive():
                    break
            time.sleep(0.05)
        assert thread.is_alive()  # the sweep waits for the activation's row
    thread.join(30)
    assert swept == [1]  # it read the PIN as due
    with db.session(readonly=True) as session:
        assert session.get_one(Pin, pin).status == "used"


def test_the_namespace_is_the_merchants_own_bot_or_the_platforms(db):
    tenant = shop(db)
    with db.session() as session:
        row = session.get_one(Tenant, tenant.id)
        assert namespace_of(row, NS) == NS
        row.bot_number = OTHER
        assert namespace_of(row, NS) == OTHER


def test_the_guessing_policy_numbers():
    policy = GuessPolicy()
    assert policy.guesses_per_day() == 24 * 60 + 100
    assert policy.open_share() == 0.01 / 1540
    assert [policy.length_for(n) for n in (0, 5, 6, 63, 64, 648, 649)] == [6, 6, 7, 7, 8, 8, 9]
    assert policy.length_for(10**12) == guard.MAX_LENGTH == 10
    assert GuessPolicy(target_per_day=1e9).length_for(10**6) == guard.MIN_LENGTH == 4
    assert policy.capacity() == int(0.01 / 1540 * 10**10) - 1 == 64934
    assert policy.expected_successes_per_day(6) == 1540 * 6 / 10**7
    assert policy.expected_successes_per_day(0) == 0
    exact = GuessPolicy(namespace_limit=0, known_senders=1, target_per_day=0.0005)
    assert exact.open_share() * 10**4 == 5.0  # 5 open PINs fill 4 digits exactly
    assert [exact.length_for(n) for n in (4, 5)] == [4, 5]
    wider = GuessPolicy(namespace_limit=10, namespace_window=timedelta(hours=2), known_senders=1)
    assert wider.guesses_per_day() == 12 * 10 + 1
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, rate_limit_pin_failures="3/minute", pin_namespace_failures="7/day"
    )
    assert GuessPolicy.from_settings(settings) == GuessPolicy(
        sender_limit=3,
        sender_window=timedelta(minutes=1),
        namespace_limit=7,
        namespace_window=timedelta(days=1),
    )


def contact(db, number: str, known_at: Tenant | None = None) -> int:
    with db.session() as session:
        row = WhatsAppContact(wa_number=number, last_tenant_id=known_at.id if known_at else None)
        session.add(row)
        session.flush()
        return row.id


def fail(db, who: int, times: int = 1, namespace: str = NS) -> None:
    with db.session() as session:
        for n in range(times):
            record_failure(session, session.get_one(WhatsAppContact, who), namespace, f"{n:06d}")


def why(db, who: int, policy: GuessPolicy, namespace: str = NS) -> str | None:
    with db.session() as session:
        return refusal(session, policy, session.get_one(WhatsAppContact, who), namespace)


def test_failures_are_recorded_with_the_sender_namespace_code_and_time(db):
    ana = contact(db, "50688887777")
    fail(db, ana)
    with db.session(readonly=True) as session:
        row = session.scalars(select(PinFailure)).one()
    assert (row.contact_id, row.namespace, row.attempted, row.created_at) == (ana, NS, "000000", T0)


def test_a_sender_gets_five_failures_an_hour(db):
    policy = GuessPolicy()
    ana = contact(db, "50688887777")
    bia = contact(db, "50688886666")
    fail(db, ana, 4)
    fail(db, bia, 5)
    assert why(db, ana, policy) is None
    assert why(db, bia, policy) == "too_many"
    fail(db, ana)
    assert why(db, ana, policy) == "too_many"
    clock.freeze(T0 + timedelta(hours=1))  # the first failures leave the window
    assert why(db, ana, policy) is None


def test_past_the_namespace_budget_only_known_senders_without_a_recent_failure_try(db):
    tenant = shop(db)
    policy = GuessPolicy(namespace_limit=3)
    stranger = contact(db, "50688887777")
    known = contact(db, "50688886666", known_at=tenant)
    unlucky = contact(db, "50688885555", known_at=tenant)
    guesser = contact(db, "50688884444")
    fail(db, guesser, 2)
    fail(db, guesser, 3, namespace=OTHER)  # another namespace's budget
    assert [why(db, who, policy) for who in (stranger, known)] == [None, None]
    clock.freeze(T0 - timedelta(hours=2))
    fail(db, unlucky)  # a day ago: still counts for the guarded namespace, not the hour
    clock.freeze(T0)
    assert why(db, unlucky, policy) is None  # two failures this hour: under the budget
    fail(db, guesser)  # three this hour: the namespace is guarded
    assert [why(db, who, policy) for who in (stranger, known, unlucky)] == [
        "guarded",
        None,
        "guarded",
    ]
    assert why(db, stranger, policy, OTHER) == "guarded"  # three there too
    clock.freeze(T0 + timedelta(hours=1))
    assert why(db, stranger, policy) is None


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_sender_being_checked_holds_their_next_try_but_not_their_messages(db):
    """PostgreSQL, several connections: while a sender's try is checked (their row locked
    FOR NO KEY UPDATE), their next try waits for it and then counts its failure; a failure
    row referencing them (a foreign key: KEY SHARE) does not wait."""
    policy = GuessPolicy(sender_limit=3)
    ana = contact(db, "50688887777")
    fail(db, ana)
    outcome: list[str | None] = []

    def next_try() -> None:
        outcome.append(why(db, ana, policy))

    with db.session() as session:
        assert refusal(session, policy, session.get_one(WhatsAppContact, ana), NS) is None
        other = threading.Thread(target=lambda: fail(db, ana, namespace=OTHER))
        other.start()
        other.join(10)
        assert not other.is_alive()  # not held by the check in progress
        second = threading.Thread(target=next_try)
        second.start()
        for _ in range(600):
            with db.session(readonly=True) as reader:
                waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                if reader.scalar(text(waiting)) or not second.is_alive():
                    break
            time.sleep(0.05)
        assert second.is_alive() and outcome == []  # waits for the check in progress
        record_failure(session, session.get_one(WhatsAppContact, ana), NS, "999999")
    second.join(30)
    assert outcome == ["too_many"]  # three failures: the one it waited for counts


def test_a_namespace_seen_at_a_long_length_skips_the_count_a_while(db):
    """PostgreSQL's first try (``generate_now``) with ``Longest``: a counted PIN of one of
    the two longest lengths marks its namespace; until the mark ages, PINs there are made
    at the longest length without counting (even once the namespace emptied: longer is
    always allowed); then a PIN counts again and, shorter, clears the mark."""
    if db.is_sqlite:
        pytest.skip("generate_now is PostgreSQL's")
    tenant = shop(db)
    # 1.5e-8 of the space may be open: 8 digits while none is, 9 from the first on.
    policy = GuessPolicy(target_per_day=1.5e-8 * 1540)
    longest = Longest(seconds=0.3)
    statements: list[str] = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.async_autocommit.sync_engine, "before_cursor_execute", listener)

    def issue() -> tuple[int, bool]:
        statements.clear()
        issued = asyncio.run(generate_now(db, tenant, NS, None, policy, longest))
        assert issued is not None and len(statements) == 1
        return len(issued.code), "count(" in statements[0]

    def empty_the_namespace() -> None:
        with db.session() as session:
            session.execute(text("UPDATE pins SET status = 'used'"))

    try:
        assert issue() == (8, True) and not longest.holds(NS)
        assert issue() == (9, True) and longest.holds(NS)  # the second-longest marks
        assert issue() == (10, False)  # marked: uncounted, the longest length
        empty_the_namespace()
        assert issue() == (10, False)
        assert not longest.holds(OTHER)
        empty_the_namespace()
        time.sleep(0.35)
        assert issue() == (8, True) and not longest.holds(NS)  # counted again: cleared
    finally:
        event.remove(db.async_autocommit.sync_engine, "before_cursor_execute", listener)
    assert statuses(db) == {"used": 4, "open": 1}
