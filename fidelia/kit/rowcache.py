"""A merchant's rows kept a few seconds in memory (``FIDELIA_TENANT_CACHE_SECONDS``), so a
hot path does not read them on every request: the voucher rules and the deals a sale
checks. Generic on purpose: the kit knows no domain, each owner says what to read."""

from collections.abc import Callable
from time import monotonic
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session


class Keyed(Protocol):
    id: Any


T = TypeVar("T")
K = TypeVar("K", bound=Keyed)

MAX_ENTRIES = 10_000  # merchants kept before the cache starts over


class PerMerchantRows(Generic[K, T]):
    """The rows ``read(session, merchant)`` returns, kept ``ttl`` seconds per merchant: a
    row created, changed or switched off counts from at most ``ttl`` seconds later. A miss
    reads in the caller's session and keeps *copies* of the rows (no session's objects,
    safe to share between requests' threads); the caller gets the session's own rows on
    a miss. ``ttl`` 0: no cache."""

    def __init__(self, ttl: float, model: type[T], read: Callable[[Session, K], list[T]]) -> None:
        self.ttl = ttl
        self.model = model
        self.read = read
        self._entries: dict[Any, tuple[float, list[T]]] = {}

    def active(self, session: Session, merchant: K) -> list[T]:
        hit = self._entries.get(merchant.id)
        if hit is not None and monotonic() - hit[0] < self.ttl:
            return hit[1]
        found = self.read(session, merchant)
        if self.ttl > 0:
            if len(self._entries) > MAX_ENTRIES:
                self._entries.clear()
            columns = sa_inspect(self.model).column_attrs
            twins = [self.model(**{c.key: getattr(r, c.key) for c in columns}) for r in found]
            self._entries[merchant.id] = (monotonic(), twins)
        return found
