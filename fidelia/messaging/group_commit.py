"""SQLite: the webhooks that arrive while the one writer is busy are stored together, by
group commit (issue 14).

A webhook stores its messages in the event loop when the writer's place is free
(``intake.store_if_free``). When it is not (the worker's batch holds it), the webhook used to
wait for it in a thread of its own: under load, thirty threads queued on the lock, each
then ran a transaction of its own, and every one of them had to win the GIL back from the
others several times to finish; the webhooks came to a few hundred a second with half of
the process idle (`BENCHMARKS.md`, *Stop 27: SQLite's webhooks by group commit*). Now the
webhooks that find the writer busy join a group, and ONE thread waits for the writer and
stores the whole group in one transaction; the webhooks arriving meanwhile form the next
group. Each webhook is answered once its group has committed, as before: durable when
answered. A webhook that comes while a group waits joins it rather than taking the writer
before it, so none is overtaken for long.

A group the database refuses as a whole for something one message can cause (a value it
cannot store) is stored again one webhook at a time, so the others are not refused with it;
a refusal of the database itself (locked for ``SQLITE_BUSY_SECONDS``, a disk error) is
every webhook's answer.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.exc import OperationalError

from fidelia.kit.db import Database, WriterBusy
from fidelia.messaging import intake
from fidelia.messaging.bot import Inbound

InThread = Callable[..., Awaitable[Any]]  # ``Resources.run_in_db_slot``


class GroupCommit:
    """The stored messages' way in on SQLite, one per app."""

    def __init__(self, db: Database, in_thread: InThread) -> None:
        self.db = db
        self.in_thread = in_thread
        self._group: list[tuple[Sequence[Inbound], asyncio.Future[int]]] = []
        self._storing: asyncio.Task[None] | None = None
        self._in_flight = 0  # webhooks of the group being stored
        self.groups = 0  # transactions that stored a group (tests, metrics)

    @property
    def waiting(self) -> int:
        """Webhooks waiting for their group to commit."""
        return len(self._group) + self._in_flight

    async def store(self, messages: Sequence[Inbound]) -> int:
        """Store the messages (new ones only) and return how many were new, once they are
        committed."""
        if not self._group:  # nobody waiting for the writer: it may be free right now
            try:
                return intake.store_if_free(self.db, messages)
            except WriterBusy:
                pass
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._group.append((messages, answer))
        if self._storing is None:
            self._storing = asyncio.get_running_loop().create_task(self._store_groups())
        return await answer

    async def _store_groups(self) -> None:
        try:
            while self._group:
                group, self._group = self._group, []
                self._in_flight = len(group)
                await self._store_group(group)
        finally:
            self._in_flight = 0
            self._storing = None

    async def _store_group(
        self, group: list[tuple[Sequence[Inbound], asyncio.Future[int]]]
    ) -> None:
        try:
            counts = await self.in_thread(self._in_one_transaction, [m for m, _ in group])
        except OperationalError as exc:  # the database's own refusal: everyone's answer
            for _, answer in group:
                _settle(answer, error=exc)
        except Exception as exc:
            if len(group) == 1:
                _settle(group[0][1], error=exc)
                return
            for messages, answer in group:  # one message refused: the others are stored
                try:
                    count = await self.in_thread(self._in_one_transaction, [messages])
                except Exception as alone:
                    _settle(answer, error=alone)
                else:
                    _settle(answer, count[0])
        else:
            for (_, answer), count in zip(group, counts, strict=True):
                _settle(answer, count)

    def _in_one_transaction(self, groups: list[Sequence[Inbound]]) -> list[int]:
        with self.db.session() as session:  # waits for the writer, in this one thread
            counts = intake.store_groups(session, groups)
        self.groups += 1
        return counts


def _settle(
    answer: "asyncio.Future[int]", count: int = 0, error: BaseException | None = None
) -> None:
    if answer.done():  # the webhook's client went away: its messages are stored anyway
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(count)
