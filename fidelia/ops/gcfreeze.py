"""What a long-running process built at startup, kept out of the garbage collector's way.

A web process holds some 230,000 objects once its app is built (modules, routes, models,
SQLAlchemy's mappers, compiled statements), all alive until it exits. CPython's oldest
generation is collected when enough new objects have survived into it, and that collection
walks every object of the generation: 100–140 ms measured here, during which the process
answers nothing (four such pauses over 22,000 lookups, the longest 138 ms: issue 14's p99 at
half of peak). ``freeze`` collects once, then moves everything alive into the permanent
generation, which no collection walks; objects made later are collected as before.

For the serving processes only (``fidelia serve``'s, ``fidelia worker``): frozen objects
that become garbage in cycles later are never freed, which a process that builds apps over
and over (the tests) would pile up."""

import gc


def freeze() -> int:
    """Collect, then freeze what is alive; returns how many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
