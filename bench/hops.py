"""CPU of a thread hop, the way a write transaction makes one (``Resources.run_in_db_slot``):
a slot taken, a function run in a worker thread, its answer back on the event loop.

    python bench/hops.py anyio 8     # starlette's run_in_threadpool (anyio's to_thread)
    python bench/hops.py pool 8      # fidelia.kit.threads.run (a ThreadPoolExecutor)

The second argument is how many callers hop at once (8: a web process under load). Prints
the CPU µs a hop (``time.process_time``) over 20,000 hops on uvloop, as ``fidelia serve``
runs; time the two side by side as whole processes to see past the machine's noise.
"""

import asyncio
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio  # noqa: E402
import uvloop  # noqa: E402
from starlette.concurrency import run_in_threadpool  # noqa: E402

from fidelia.kit import threads  # noqa: E402

HOPS = 20_000


def work() -> int:
    return 1


async def main(way: str, callers: int) -> None:
    slots = anyio.Semaphore(10)
    pool = threads.pool(10, "bench-hop")

    async def hop() -> int:
        async with slots:
            if way == "anyio":
                return await run_in_threadpool(work)
            return await threads.run(pool, work)

    async def caller(count: int) -> None:
        for _ in range(count):
            await hop()

    await asyncio.gather(*(caller(100) for _ in range(callers)))  # threads started
    started = time.process_time()
    await asyncio.gather(*(caller(HOPS // callers) for _ in range(callers)))
    print(f"hops {way} x{callers}: {(time.process_time() - started) / HOPS * 1e6:.1f} µs CPU a hop")


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8))
