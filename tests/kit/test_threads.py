"""The database threads (``kit/threads.py``): what callers of ``run_in_db_slot`` relied on
from anyio's ``to_thread`` holds: the caller's context, the call's own exceptions, one
thread a slot, and a cancelled caller still waiting for the call it started."""

import asyncio
import contextvars
import threading
import time

import pytest

from fidelia.kit import threads
from fidelia.kit.deps import Resources
from fidelia.kit.settings import Settings
from tests.support.helpers import returned_when_cancelled

WHO = contextvars.ContextVar("who", default="nobody")


def test_a_call_runs_in_a_pool_thread_with_the_callers_context() -> None:
    pool = threads.pool(2, "test-db")

    def seen() -> tuple[str, str]:
        WHO.set("changed in the thread")  # a copy: the caller's stays as it was
        return threading.current_thread().name, WHO.get()

    async def call() -> tuple[tuple[str, str], str]:
        WHO.set("merchant 7")
        answer = await threads.run(pool, lambda: (threading.current_thread().name, WHO.get()))
        await threads.run(pool, seen)
        return answer, WHO.get()

    (name, who), after = asyncio.run(call())
    assert name.startswith("test-db") and name != threading.current_thread().name
    assert who == "merchant 7" and after == "merchant 7"
    pool.shutdown()


def test_the_calls_exception_reaches_the_caller() -> None:
    pool = threads.pool(1, "test-db")

    def fails(amount: int) -> None:
        raise ValueError(f"no {amount}")

    with pytest.raises(ValueError, match="no 3"):
        asyncio.run(threads.run(pool, fails, 3))
    pool.shutdown()


def test_a_cancelled_caller_waits_for_its_call_to_end() -> None:
    """A transaction under way is never left running while its request is gone: the caller
    gives its slot back only once the call has ended; the cancellation then comes at its
    next checkpoint (as with anyio's ``to_thread.run_sync``)."""
    pool = threads.pool(1, "test-db")
    ended: list[float] = []

    def transaction() -> None:
        time.sleep(0.3)
        ended.append(time.monotonic())

    back = returned_when_cancelled(lambda: threads.run(pool, transaction))
    assert ended and ended[0] <= back
    pool.shutdown()


def test_database_work_has_one_thread_a_slot(tmp_path) -> None:
    """Up to as many calls at once as there are slots, each in a thread of its own: none
    waits for a thread while holding a slot."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{tmp_path}/threads.db",
        database_pool_size=3,
    )
    resources = Resources(settings)
    inside = threading.Barrier(3, timeout=5)  # all three at once, or it breaks
    names: set[str] = set()

    def work() -> None:
        inside.wait()
        names.add(threading.current_thread().name)

    async def burst() -> None:
        await asyncio.gather(*(resources.run_in_db_slot(work) for _ in range(3)))

    asyncio.run(burst())
    assert len(names) == 3 and all(name.startswith("fidelia-db") for name in names)
    resources.db.dispose()
