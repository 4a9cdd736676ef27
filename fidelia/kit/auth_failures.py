"""Failed authentications are limited per client IP, on every door.

Applied by the app's edge middleware (``fidelia/edge.py``): every 401 answered to an address
counts against ``FIDELIA_RATE_LIMIT_AUTH_FAILURES``; once the address has used it up, its
requests are answered 429 (in the door's format, with ``Retry-After``) before any credential
is looked at, until the window frees a slot. The client IP is the peer's, or the one a
trusted proxy forwarded (``FIDELIA_TRUSTED_PROXIES``, applied before)."""

from starlette.types import Scope

from fidelia.kit.errors import RateLimited
from fidelia.kit.ratelimit import RateLimiter

SCOPE = "auth-failures"


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


class AuthFailureLimit:
    def __init__(self, limiter: RateLimiter, spec: str) -> None:
        self.limiter = limiter
        self.spec = spec

    def refusal(self, ip: str) -> RateLimited | None:
        """The 429 for an address that has used up its failures, else None."""
        try:
            self.limiter.check(self.spec, SCOPE, ip)
        except RateLimited as exc:
            return RateLimited(
                "Too many failed authentications from this address; try again later.",
                retry_after=exc.retry_after,
            )
        return None

    def answered(self, status: int, ip: str) -> None:
        """Count a 401 answered to ``ip``."""
        if status == 401:
            try:
                self.limiter.hit(self.spec, SCOPE, ip)
            except RateLimited:
                pass  # this one is answered already; the next request is refused
