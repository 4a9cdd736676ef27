"""SQLite: the webhooks that find the one writer busy are stored together, in one
transaction, by one thread (fidelia/messaging/group_commit.py); each is answered with its
own count once the group has committed, and a message the database refuses fails alone."""

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import anyio
import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from fidelia.kit.db import Database
from fidelia.messaging.bot import Inbound
from fidelia.messaging.group_commit import GroupCommit
from fidelia.models import InboundMessage
from tests.support.helpers import signed_headers, webhook_body

URL = "/webhooks/whatsapp"


@pytest.fixture(autouse=True)
def sqlite_only(database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite's one writer")


@contextmanager
def writer_held(db: Database) -> Iterator[threading.Event]:
    """The writer's place held (as the worker's batch holds it) until the event is set."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.session() as session:
            session.execute(select(1))
            holding.set()
            release.wait(20)

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(10)
    try:
        yield release
    finally:
        release.set()
        thread.join(20)


def stored_ids(db: Database) -> list[str]:
    with db.session(readonly=True) as session:
        return sorted(session.scalars(select(InboundMessage.message_id)))


def wait_for(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_webhooks_that_find_the_writer_busy_are_stored_in_one_transaction(
    client, app, db, settings
):
    group = app.state.fidelia.group_commit
    # Ten messages, and two redeliveries racing their first delivery.
    ids = [f"wamid.group.{n}" for n in range(10)] + ["wamid.group.3", "wamid.group.7"]
    answers: dict[int, tuple[int, dict]] = {}

    def post(n: int) -> None:
        body = webhook_body(settings, "+50688887777", "hola", message_id=ids[n])
        response = client.post(URL, content=body, headers=signed_headers(settings, body))
        answers[n] = (response.status_code, response.json())

    with writer_held(db) as release:
        threads = [threading.Thread(target=post, args=(n,)) for n in range(len(ids))]
        for thread in threads:
            thread.start()
        # Every webhook is waiting for the writer in the group, none in a thread of its own.
        wait_for(lambda: group.waiting == len(ids))
        assert answers == {}  # nobody is answered before the group commits
        before = group.groups
        release.set()
        for thread in threads:
            thread.join(20)
    assert all(status == 200 for status, _ in answers.values()), answers
    assert group.groups - before <= 2  # one transaction (two if one webhook was first alone)
    processed = {n: body["processed"] for n, (_, body) in answers.items()}
    assert sum(processed.values()) == 10
    for first, again in ((3, 10), (7, 11)):  # the same message: counted for one of the two
        assert sorted((processed[first], processed[again])) == [0, 1]
    assert stored_ids(db) == sorted(set(ids))


def test_a_message_the_database_refuses_fails_alone_and_the_group_is_stored(db):
    group = GroupCommit(db, anyio.to_thread.run_sync)

    def message(n: int, text: object = "hola") -> Inbound:
        return Inbound(f"wamid.alone.{n}", "+50688887777", None, text, "50600000000")  # type: ignore[arg-type]

    async def three_at_once(release: threading.Event) -> list[object]:
        stores = [
            asyncio.ensure_future(group.store([message(1)])),
            asyncio.ensure_future(group.store([message(2, text=object())])),  # cannot bind
            asyncio.ensure_future(group.store([message(3), message(4)])),
        ]
        while group.waiting < 3:
            await asyncio.sleep(0.01)
        release.set()
        return await asyncio.gather(*stores, return_exceptions=True)

    with writer_held(db) as release:
        first, refused, both = anyio.run(three_at_once, release)
    assert (first, both) == (1, 2)
    assert isinstance(refused, DBAPIError)
    assert stored_ids(db) == ["wamid.alone.1", "wamid.alone.3", "wamid.alone.4"]
