"""``Idempotency-Key`` on every /v2 write (Stripe's semantics, ``idempotency/service``).

The key is claimed first in the request's transaction, so a concurrent duplicate waits for
the first and then replays its answer; the answer is stored in the transaction of its
effect; a replay answers the first status and body with ``Idempotent-Replayed: true``; the
same key for another request (another body, path or method) is 422
``idempotency_key_reused``. Refusals are not stored: after fixing the cause, the same key
can succeed. Keys are per merchant and shared by every /v2 write."""

from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from fidelia.idempotency import service as idempotency
from fidelia.kit.errors import InvalidInput
from fidelia.models import Tenant

M = TypeVar("M", bound=BaseModel)
SCOPE = "v2.idempotency-key"
MAX_KEY = 200

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Any unique string (a UUID): a retry with the same key replays the first "
        "answer instead of doing it again",
    ),
]


@dataclass
class Keyed:
    claim: idempotency.Claim | None = None

    @property
    def replay(self) -> JSONResponse | None:
        """The first answer, when this request's key already has one."""
        if self.claim is None or self.claim.replay is None:
            return None
        return replayed(self.claim.replay, self.claim.status_code)

    def store(self, body: dict[str, Any], status_code: int) -> None:
        if self.claim is not None:
            self.claim.store(body, status_code)

    def answer(self, out: M, status_code: int = 200) -> M:
        """Keep ``out`` as the key's answer (in this transaction) and return it."""
        self.store(out.model_dump(mode="json"), status_code)
        return out


def replayed(body: dict[str, Any], status_code: int) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, headers={"Idempotent-Replayed": "true"})


def begin(
    session: Session, tenant: Tenant, key: str | None, request: Request, payload: Any
) -> Keyed:
    """Claim ``key`` for this request (``payload``: its normalised content); no key, no
    claim."""
    if key is None:
        return Keyed()
    key = key.strip()
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise InvalidInput(
            f"Idempotency-Key is 1 to {MAX_KEY} printable characters.",
            code="INVALID_IDEMPOTENCY_KEY",
        )
    request_id = {"method": request.method, "path": request.url.path, "payload": payload}
    return Keyed(idempotency.claim(session, tenant.id, SCOPE, key, request_id))
