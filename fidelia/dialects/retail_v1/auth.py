"""The guide's required headers: ``x-api-key`` (the merchant's API key, as `fidelia apikey
create` prints it) and where the call comes from (``x-source-type``, ``x-source-name``,
``x-branch-id``, ``x-pos-id``). Rate limits count per API key, after authentication."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header
from starlette.concurrency import run_in_threadpool

from fidelia.dialects.retail_v1.errors import fail
from fidelia.kit.errors import DomainError, Unauthorized
from fidelia.kit.security import digest
from fidelia.models import Tenant
from fidelia.state import AppState


@dataclass(frozen=True)
class Caller:
    tenant: Tenant
    source_type: str
    source_name: str
    branch_id: str
    pos_id: str

    @property
    def source(self) -> dict[str, Any]:
        """Where a call came from, kept with what it recorded."""
        return {
            "type": self.source_type,
            "name": self.source_name,
            "branchId": self.branch_id,
            "posId": self.pos_id,
        }

    @property
    def consent_source(self) -> str:
        return f"retail:{self.source_type}:{self.branch_id}"[:40]


def _required(value: str, name: str) -> str:
    value = value.strip()
    if not value:
        raise fail(
            DomainError, f"The {name} header is required.", "HEADER_MISSING", f"header.{name}"
        )
    return value[:80]


async def retail_caller(
    state: AppState,
    x_api_key: Annotated[str, Header(alias="x-api-key", description="the merchant's API key")],
    x_source_type: Annotated[
        str, Header(alias="x-source-type", description="origin: POS, Web, Kiosk, ...")
    ],
    x_source_name: Annotated[str, Header(alias="x-source-name", description="client system")],
    x_branch_id: Annotated[str, Header(alias="x-branch-id", description="business unit")],
    x_pos_id: Annotated[str, Header(alias="x-pos-id", description="terminal")],
) -> Caller:
    # Async: with the key in the cache and the counters in memory it costs no thread hop;
    # a cache miss reads in a worker thread.
    key = x_api_key.strip()
    tenant = None
    if key:
        hit, tenant = state.keys.cached(key)
        if not hit:
            tenant = await run_in_threadpool(state.keys.tenant_for, state.db, key)
    if tenant is None:
        raise fail(
            Unauthorized, "Invalid, revoked or missing API key.", "UNAUTHORIZED", "header.x-api-key"
        )
    caller = Caller(
        tenant,
        _required(x_source_type, "x-source-type"),
        _required(x_source_name, "x-source-name"),
        _required(x_branch_id, "x-branch-id"),
        _required(x_pos_id, "x-pos-id"),
    )
    # Counted after authentication (nobody can use up a merchant's quota with bad keys),
    # keyed on the key's digest (the secret itself never reaches the counter store).
    await state.limiter.hit_async(state.settings.rate_limit_retail, "retail", digest(key)[:24])
    return caller


RetailCaller = Annotated[Caller, Depends(retail_caller)]
