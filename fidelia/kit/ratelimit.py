"""Rate limits with the ``limits`` library: counters in memory by default, in Redis
when ``FIDELIA_REDIS_URL`` is set so every web process shares them."""

import logging
import math
import time

from limits import RateLimitItem, parse_many, storage, strategies
from starlette.concurrency import run_in_threadpool

from fidelia.kit.errors import RateLimited

log = logging.getLogger("fidelia.ratelimit")


class RateLimiter:
    def __init__(self, redis_url: str = "", enabled: bool = True) -> None:
        self.enabled = enabled
        uri = redis_url if redis_url else "memory://"
        self.in_memory = not redis_url
        self.storage = storage.storage_from_string(uri)
        self.strategy = strategies.MovingWindowRateLimiter(self.storage)
        self._parsed: dict[str, list[RateLimitItem]] = {}

    def _items(self, spec: str) -> list[RateLimitItem]:
        items = self._parsed.get(spec)
        if items is None:
            items = self._parsed[spec] = parse_many(spec)
        return items

    def hit(self, spec: str, *key: str) -> None:
        """Count one request against every limit in ``spec`` ("10/second;300/minute");
        raise RateLimited with the seconds until the tightest window frees a slot."""
        if not self.enabled:
            return
        try:
            for item in self._items(spec):
                if not self.strategy.hit(item, *key):
                    stats = self.strategy.get_window_stats(item, *key)
                    retry = max(1, math.ceil(stats.reset_time - time.time()))
                    raise RateLimited(f"Rate limit of {item} exceeded.", retry_after=retry)
        except RateLimited:
            raise
        except Exception:  # a counter store outage must not take the API down
            log.exception("rate limit storage unavailable; request allowed")

    def check(self, spec: str, *key: str) -> None:
        """Raise RateLimited when a limit in ``spec`` is already used up, without counting
        this request (for limits that count only failures)."""
        if not self.enabled:
            return
        try:
            for item in self._items(spec):
                if not self.strategy.test(item, *key):
                    stats = self.strategy.get_window_stats(item, *key)
                    retry = max(1, math.ceil(stats.reset_time - time.time()))
                    raise RateLimited(f"Rate limit of {item} exceeded.", retry_after=retry)
        except RateLimited:
            raise
        except Exception:  # a counter store outage must not take the API down
            log.exception("rate limit storage unavailable; request allowed")

    async def hit_async(self, spec: str, *key: str) -> None:
        """``hit`` for async dependencies: in memory it is a few microseconds, done in
        place; with Redis it is a network round trip, done in a worker thread."""
        if self.in_memory:
            self.hit(spec, *key)
        else:
            await run_in_threadpool(self.hit, spec, *key)

    def reset(self) -> None:
        self.storage.reset()
