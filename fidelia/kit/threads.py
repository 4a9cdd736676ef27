"""The threads blocking database work runs in, handed over as cheaply as asyncio allows.

``starlette.concurrency.run_in_threadpool`` (anyio's ``to_thread.run_sync``) gives each call
to one idle worker through that worker's own queue and ``Condition``: every hop wakes a
sleeping thread, and anyio's bookkeeping (its backend lookup, capacity limiter and cancel
scope) runs on the event loop each time. A ``ThreadPoolExecutor`` shares one queue between
its threads, so a thread that has just finished takes the next call without sleeping; under
a burst of requests that is most hops (issue 14: a write transaction's hop, 84–140 µs of
CPU through anyio, 32–64 µs this way, eight at a time; ``docs/decisions.md``).

What callers relied on is kept: the call runs in a copy of the caller's context (the
request's log fields and merchant, as anyio copies them), and the caller cannot be
cancelled while it runs (a transaction under way ends, commit or rollback, before the
awaiting request gives back its database slot), as ``run_sync`` does by default."""

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import anyio

T = TypeVar("T")


def pool(size: int, name: str) -> ThreadPoolExecutor:
    """``size`` threads, started as calls need them (threads named ``name-N``)."""
    return ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)


async def run(threads: ThreadPoolExecutor, fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` in one of ``threads``, in a copy of the caller's context; the caller
    waits for it to end even if cancelled meanwhile (then the cancellation follows)."""
    context = contextvars.copy_context()
    future = asyncio.get_running_loop().run_in_executor(threads, context.run, fn, *args)
    with anyio.CancelScope(shield=True):
        answer = await future
    return answer
