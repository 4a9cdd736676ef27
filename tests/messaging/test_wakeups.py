"""The webhooks' NOTIFY to the workers, coalesced (``messaging/wakeups.py``), on PostgreSQL:
at most one per window after the first, and never a stored message without a NOTIFY sent
after its commit, which is what a LISTENing worker relies on to take it."""

import asyncio
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import func, select

from fidelia.kit.db import Database
from fidelia.messaging import intake
from fidelia.messaging.bot import Inbound
from fidelia.messaging.wakeups import Wakeups
from fidelia.models import InboundMessage


class Listener:
    """A worker's LISTEN connection in a thread: when each NOTIFY arrived."""

    def __init__(self, url: str) -> None:
        self.heard: list[float] = []
        self._stop = threading.Event()
        self._conn = psycopg.connect(url, autocommit=True)
        self._conn.execute(f"LISTEN {intake.CHANNEL}")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for _ in self._conn.notifies(timeout=0.05):
                self.heard.append(time.monotonic())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._conn.close()


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    database = Database(pg_url)
    yield database
    database.dispose()


@pytest.fixture
def listener(db: Database) -> Iterator[Listener]:
    heard = Listener(db.url)
    yield heard
    heard.close()


def message(n: int) -> Inbound:
    return Inbound(f"wamid.wake-{n}", "+50688887777", None, "hola", "50600000000")


async def store(db: Database, wakeups: Wakeups | None, first: int, count: int) -> list[float]:
    """Store ``count`` messages one after the other; when each store returned."""
    returned = []
    for n in range(first, first + count):
        assert await intake.store_now(db, [message(n)], wakeups) == 1
        returned.append(time.monotonic())
    return returned


def pending(db: Database) -> int:
    with db.session(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(InboundMessage)) or 0)


def test_messages_stored_within_a_window_share_one_notify_sent_after_the_last(db, listener):
    wakeups = Wakeups(db, window=1.0)

    async def burst() -> list[float]:
        returned = await store(db, wakeups, 0, 12)
        await asyncio.sleep(1.5)  # the window's end, and its NOTIFY
        return returned

    started = time.monotonic()
    returned = asyncio.run(burst())
    assert returned[-1] - started < 1.0, "the burst must fit in one window"
    assert pending(db) == 12
    # The first carried its NOTIFY; the eleven after it share one, sent once the last of
    # them had committed, at the window's end.
    assert len(listener.heard) == 2, listener.heard
    assert listener.heard[0] <= returned[0] + 0.5
    assert listener.heard[1] > returned[-1] and listener.heard[1] >= started + 0.9


def test_after_a_quiet_window_a_message_carries_its_own_notify_at_once(db, listener):
    wakeups = Wakeups(db, window=1.0)

    async def two_apart() -> list[float]:
        first = await store(db, wakeups, 0, 1)
        await asyncio.sleep(1.1)
        return first + await store(db, wakeups, 1, 1)

    returned = asyncio.run(two_apart())
    time.sleep(0.2)
    # Each heard with its own commit (a NOTIFY may be heard before the store returns), not
    # a window later.
    assert len(listener.heard) == 2, listener.heard
    assert all(abs(h - r) < 0.5 for h, r in zip(listener.heard, returned, strict=True))


def test_without_wakeups_every_message_carries_its_notify(db, listener):
    asyncio.run(store(db, None, 0, 5))
    time.sleep(0.2)
    assert len(listener.heard) == 5


def test_a_timer_left_on_a_closed_loop_does_not_hold_back_the_next_notify(db, listener):
    """An app served by one event loop, then another (tests, a restarted server): the
    NOTIFY due on the first never goes, and must not stop the second from sending its own."""
    wakeups = Wakeups(db, window=1.0)
    asyncio.run(store(db, wakeups, 0, 2))  # the second's NOTIFY due when this loop is gone
    time.sleep(1.2)
    assert len(listener.heard) == 1  # the first message's, carried

    async def later() -> list[float]:
        returned = await store(db, wakeups, 2, 1)
        await asyncio.sleep(0.2)
        return returned

    returned = asyncio.run(later())
    assert len(listener.heard) == 2 and abs(listener.heard[1] - returned[0]) < 0.5
