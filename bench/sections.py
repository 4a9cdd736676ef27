"""Where a path's CPU goes, section by section, timed in place: ``bench/hotpath.py`` with
chosen functions wrapped so that each call adds the CPU its thread spent in it.

    python bench/sections.py pos-order --db postgresql --direct -n 2000
    python bench/sections.py lookup --db postgresql --direct -n 4000 \\
        --section fidelia.dialects.pin_whatsapp.routes:_saldo

Every argument but ``--section`` is ``bench/hotpath.py``'s; run it one request at a time
(no ``--in-flight``): a section's time is the thread's CPU from its call to its return, so
with requests interleaved it would take in the others' work. A sampling profiler cannot
follow the doors' transactions, which run in SQLAlchemy's greenlets: their stacks come out
cut in pieces. Prints, after hotpath's line, each section's µs a request (and calls a
request), over the measured requests and the warm-up alike; the sections nest, so they do
not add up. Without ``--section``, the sections of the edge, the POS order's lane and the
database layer (``SECTIONS``).

A section is ``module:attribute`` or ``module:Class.method``, wrapped where callers look it
up: a function a module imported by name is wrapped in that module (``--section
fidelia.dialects.pdv.lanes:model_body``), not where it is defined.
"""

import atexit
import functools
import importlib
import inspect
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SECTIONS = (
    "fidelia.edge:Edge.__call__",
    "fidelia.edge:Lane.__call__",
    "fidelia.edge:serialize_response",
    "fidelia.ops.web:RequestLog.record",
    "fidelia.dialects.pdv.lanes:model_body",
    "fidelia.dialects.pdv.lanes:pdv_merchant",
    "fidelia.dialects.pdv.lanes:register_order",
    "fidelia.kit.db:Database.on_loop",
    "fidelia.kit.db:_in_transaction",
    "fidelia.dialects.pdv.orders:_register_order",
    "fidelia.dialects.pdv.orders:customer_from_order",
    "fidelia.dialects.pdv.orders:order_out",
    "fidelia.orders.service:upsert",
    "fidelia.orders.service:_insert_new",
    "fidelia.orders.service:_earn",
    "fidelia.kit.driver:execute",
    "fidelia.kit.db:rows_now",
)
_spent: dict[str, list[float]] = {}  # section -> [CPU seconds, calls]


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    spent = _spent.setdefault(name, [0.0, 0])
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def waited(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return await fn(*args, **kwargs)
            finally:
                spent[0] += time.thread_time() - started
                spent[1] += 1

        return waited

    @functools.wraps(fn)
    def called(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[0] += time.thread_time() - started
            spent[1] += 1

    return called


def wrap(section: str) -> None:
    """Wrap ``module:attribute`` (or ``module:Class.method``) where it is looked up."""
    module_name, _, path = section.partition(":")
    owner: Any = importlib.import_module(module_name)
    *outer, attribute = path.split(".")
    for name in outer:
        owner = getattr(owner, name)
    setattr(owner, attribute, _timed(path, getattr(owner, attribute)))


def report() -> None:
    requests = _spent.get("Edge.__call__", [0.0, 0])[1] or max(c for _, c in _spent.values())
    for name, (seconds, calls) in sorted(_spent.items(), key=lambda kv: -kv[1][0]):
        if calls:
            print(
                f"section {name}: {seconds / max(requests, 1) * 1e6:.1f} µs a request "
                f"({calls / max(requests, 1):.2f} calls)",
                flush=True,
            )


def main() -> int:
    args, sections = [], []
    given = iter(sys.argv[1:])
    for arg in given:
        if arg == "--section":
            sections.append(next(given))
        elif arg.startswith("--section="):
            sections.append(arg.split("=", 1)[1])
        else:
            args.append(arg)
    if "--in-flight" in args:
        print("sections.py: one request at a time (no --in-flight)", file=sys.stderr)
        return 2
    for section in sections or SECTIONS:
        wrap(section)  # before the app is built: the lanes keep the functions they call
    from bench import hotpath

    atexit.register(report)
    sys.argv = ["hotpath.py", *args]
    return hotpath.main()


if __name__ == "__main__":
    sys.exit(main())
