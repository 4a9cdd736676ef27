"""What the request being served is: its id, and the merchant once a credential names it.

One mutable ``RequestContext`` per request, in a context variable set by the request-log
middleware. It is mutated, never replaced: FastAPI runs plain ``def`` dependencies in worker
threads with a *copy* of the context, so a value set there would never reach the middleware,
but the object both copies point at is the same one.
"""

import functools
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# A client's X-Request-ID is kept when it looks like an id; anything else is replaced (it is
# echoed in the response and written to every log line of the request).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass
class RequestContext:
    request_id: str
    merchant_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


current: ContextVar[RequestContext | None] = ContextVar("fidelia_request", default=None)


def request_id_from(header: str | None) -> str:
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def bind_merchant(merchant_id: int | None) -> None:
    ctx = current.get()
    if ctx is not None and merchant_id is not None:
        ctx.merchant_id = merchant_id


def merchant_of(found: Any) -> int | None:
    """The merchant id in what an authentication step returned: a tenant, a holder of one
    (``.tenant``), a panel viewer (``.tenant``), or a ``(hit, tenant)`` pair."""
    if isinstance(found, tuple):
        for item in found:
            mid = merchant_of(item)
            if mid is not None:
                return mid
        return None
    tenant = getattr(found, "tenant", found)
    if tenant is None or type(tenant).__name__ != "Tenant":
        return None
    value = getattr(tenant, "id", None)
    return value if isinstance(value, int) else None


def binds_merchant(fn: F) -> F:
    """Decorator for the functions that find a request's merchant from its credential: the
    merchant they return is bound to the request's log context (one line at each place)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        found = fn(*args, **kwargs)
        bind_merchant(merchant_of(found))
        return found

    return wrapper  # type: ignore[return-value]
