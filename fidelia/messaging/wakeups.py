"""The workers' wake-up for messages the webhook stores from the event loop, coalesced.

Every stored message used to carry its own ``NOTIFY fidelia_work`` (``intake.store_now``).
Under load that is one NOTIFY per webhook, each waking the LISTENing worker: ~0.05 ms of
PostgreSQL's CPU and ~0.1 ms of the worker's per message (issue 14, BENCHMARKS.md), while
one wake-up per batch is all the worker needs. Here a process sends at most one NOTIFY per
``window``, and never leaves a stored message without one after its commit:

- the first message after a quiet ``window`` carries the NOTIFY in its own statement, as
  before (``carry``): at low rates nothing changes, not even a round trip;
- a message stored within the window after it does not; once its insert has committed it
  makes sure one NOTIFY is due (``after``): a timer at the end of the window, shared by
  every message stored meanwhile, sends ``pg_notify`` on its own, after their commits.

A message stored in a window waits at most ``window`` longer for its worker (the target:
100 ms at p99 from stored to credited). A NOTIFY that fails to go is logged: the workers
also poll (``fidelia worker``, every 0.5 s). One ``Wakeups`` per database, used from the
event loop(s) of one process; a timer left on a loop that has closed (tests run an app on
several) is dropped."""

import asyncio
import logging
import time
from typing import Any

from sqlalchemy import func, select

from fidelia.kit.db import Database, rows_now
from fidelia.messaging.outbox import CHANNEL

log = logging.getLogger("fidelia.intake")
WINDOW_SECONDS = 0.01
_NOTIFY = select(func.pg_notify(CHANNEL, ""))


class Wakeups:
    def __init__(self, db: Database, window: float = WINDOW_SECONDS) -> None:
        self.db = db
        self.window = window
        self._last = -float("inf")  # when the last NOTIFY went (or was carried)
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sending: set[asyncio.Task[Any]] = set()  # referenced until done

    def carry(self) -> bool:
        """Whether the message about to be stored carries the NOTIFY itself (then counted
        as sent): none went for a whole window and none is due."""
        at = time.monotonic()
        if self._due() or at - self._last < self.window:
            return False
        self._last = at
        return True

    def after(self) -> None:
        """A message has been stored (committed) without carrying the NOTIFY: one is sent
        at the end of the window, after its commit, unless one is already due then."""
        if self._due():
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last + self.window - time.monotonic())
        self._loop = loop
        self._timer = loop.call_later(delay, self._fire)

    def _due(self) -> bool:
        loop = self._loop
        if self._timer is None or loop is None:
            return False
        if loop.is_closed() or self._timer.cancelled():
            self._timer = None  # it will never fire
            return False
        return True

    def _fire(self) -> None:
        self._timer = None
        self._last = time.monotonic()
        task = asyncio.ensure_future(self._send())
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self) -> None:
        try:
            await rows_now(self.db, _NOTIFY, {})  # one statement in autocommit
        except Exception:
            log.warning("could not wake the workers (NOTIFY); they poll", exc_info=True)
