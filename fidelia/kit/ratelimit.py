"""Rate limits with the ``limits`` library: counters in memory by default, in Redis
when ``FIDELIA_REDIS_URL`` is set so every web process shares them."""

import logging
import math
import threading
import time

from limits import RateLimitItem, parse_many, storage, strategies
from redis.backoff import NoBackoff
from redis.retry import Retry
from starlette.concurrency import run_in_threadpool

from fidelia.kit.errors import RateLimited

log = logging.getLogger("fidelia.ratelimit")
REDIS_TIMEOUT = 0.5  # seconds
OUTAGE_LOG_SECONDS = 10.0


class _MemoryStorage(storage.MemoryStorage):
    """``limits``' memory storage, but its expired entries are swept at most once a second
    by a request passing by, not by a new thread that every counter update starts once the
    previous one (10 ms) has ended: under load that was a thread started every few
    requests, which cost more than the check itself. Expired entries never decide an
    answer (each check compares timestamps); the sweep only frees memory."""

    SWEEP_SECONDS = 1.0

    def __init__(self, uri: str | None = None, **options: str) -> None:
        self._swept_at = time.monotonic()
        self._sweeping = threading.Lock()
        super().__init__(uri, **options)  # type: ignore[arg-type]

    def _MemoryStorage__schedule_expiry(self) -> None:  # replaces the parent's private one
        at = time.monotonic()
        if at - self._swept_at < self.SWEEP_SECONDS or not self._sweeping.acquire(False):
            return
        try:
            self._swept_at = at
            self._MemoryStorage__expire_events()  # type: ignore[attr-defined]
        finally:
            self._sweeping.release()


class RateLimiter:
    def __init__(self, redis_url: str = "", enabled: bool = True) -> None:
        self.enabled = enabled
        self.in_memory = not redis_url
        if redis_url:
            # A Redis that stops answering (restarting, paused, cut off) costs a request at
            # most REDIS_TIMEOUT, then the request is allowed. No retries: redis-py's default
            # retries a refused connection with backoff for up to ~20 s, inside the request,
            # so one Redis restart stalled every request of the process (threads and
            # database slots all waiting) long after Redis was back.
            self.storage = storage.storage_from_string(
                redis_url,
                socket_timeout=REDIS_TIMEOUT,
                socket_connect_timeout=REDIS_TIMEOUT,
                retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type]  # passed on to redis-py
            )
        else:
            self.storage = _MemoryStorage()
        self.strategy = strategies.MovingWindowRateLimiter(self.storage)
        self._parsed: dict[str, list[RateLimitItem]] = {}

    _said_at = -OUTAGE_LOG_SECONDS

    def _outage(self, exc: Exception) -> None:
        """One log line per OUTAGE_LOG_SECONDS, not one per request: during an outage every
        request fails here, and a traceback each (rendered under the logging lock) queued
        all of them behind the log handler for seconds."""
        at = time.monotonic()
        if at - self._said_at < OUTAGE_LOG_SECONDS:
            return
        self._said_at = at
        log.error(
            "rate limit storage unavailable; requests allowed (%s: %s)",
            type(exc).__name__,
            exc,
        )

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
        except Exception as exc:  # a counter store outage must not take the API down
            self._outage(exc)

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
        except Exception as exc:  # a counter store outage must not take the API down
            self._outage(exc)

    async def hit_async(self, spec: str, *key: str) -> None:
        """``hit`` for async dependencies: in memory it is a few microseconds, done in
        place; with Redis it is a network round trip, done in a worker thread."""
        if self.in_memory:
            self.hit(spec, *key)
        else:
            await run_in_threadpool(self.hit, spec, *key)

    def reset(self) -> None:
        self.storage.reset()
