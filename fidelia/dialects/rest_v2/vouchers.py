"""Seed 004 vouchers: list, read, and validate (a use taken with a conditional update, so
a single-use voucher validates once, also under concurrent attempts)."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session

from fidelia.customers import directory
from fidelia.dialects.rest_v2 import keys
from fidelia.dialects.rest_v2.auth import Merchant
from fidelia.dialects.rest_v2.common import (
    PagingDep,
    cpf_identifier,
    filters_given,
    one_of,
    only,
    voucher_out,
)
from fidelia.dialects.rest_v2.schemas import ErrorOut, ValidateIn, VoucherOut, VoucherPage
from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.errors import InvalidInput, NotFound
from fidelia.kit.ids import MAX_ID
from fidelia.models import Customer, Tenant
from fidelia.vouchers import service as vouchers

router = APIRouter(tags=["Seed 004: vouchers"])


@router.get("/vouchers", response_model=VoucherPage)
def list_vouchers(
    request: Request,
    tenant: Merchant,
    _known: Annotated[None, only("customer_id", "cpf", "document")],
    session: ReadSessionDep,
    paging: PagingDep,
    customer_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    cpf: Annotated[str | None, Query(description="The customer's CPF (also: document)")] = None,
    document: Annotated[str | None, Query(include_in_schema=False)] = None,
) -> VoucherPage:
    """List the merchant's vouchers, optionally one customer's (by id or CPF)."""
    filters_given(request, "customer_id", "cpf", "document")
    document = one_of(cpf=cpf, document=document)
    if document:
        kind, value = cpf_identifier(document)
        owner = directory.find_any(session, tenant.program_id, kind, value)
        if owner is None or (customer_id is not None and owner.id != customer_id):
            return VoucherPage(data=[], meta=paging.meta(0))
        customer_id = owner.id
    found = vouchers.listing(
        session, tenant, customer_id=customer_id, page=paging.page, per_page=paging.per_page
    )
    return VoucherPage(
        data=[voucher_out(tenant, v) for v in found.items], meta=paging.meta(found.total)
    )


@router.get("/vouchers/{code}", response_model=VoucherOut)
def get_voucher(code: str, tenant: Merchant, session: ReadSessionDep) -> VoucherOut:
    """One voucher and its state, by code."""
    return voucher_out(tenant, vouchers.find(session, tenant, code))


_VALIDATE: dict[str, Any] = {
    "response_model": VoucherOut,
    "responses": {
        403: {"model": ErrorOut, "description": "voucher_not_yours"},
        404: {"model": ErrorOut, "description": "voucher_not_found, customer_not_found"},
        409: {
            "model": ErrorOut,
            "description": "voucher_used, voucher_cancelled, voucher_not_yet_valid",
        },
        410: {"model": ErrorOut, "description": "voucher_expired"},
    },
}


@router.post("/vouchers/{code}/validate", **_VALIDATE)
def validate_voucher(
    code: str,
    request: Request,
    tenant: Merchant,
    session: SessionDep,
    body: ValidateIn | None = None,
    idempotency_key: keys.IdempotencyKey = None,
) -> Any:
    """Validate (use) a voucher by its code; a single-use voucher validates exactly once."""
    body = body or ValidateIn()
    if body.code is not None and body.code.strip().upper() != code.strip().upper():
        raise InvalidInput(
            "The code in the path and the code in the body differ.", code="INVALID_REQUEST"
        )
    return _validate(session, tenant, request, code, body, idempotency_key)


@router.post("/vouchers/validate", summary="Validate Voucher (code in the body)", **_VALIDATE)
def validate_voucher_by_body(
    body: ValidateIn,
    request: Request,
    tenant: Merchant,
    session: SessionDep,
    idempotency_key: keys.IdempotencyKey = None,
) -> Any:
    """Validate (use) the voucher whose ``code`` is in the body; the same as the path form."""
    if not body.code or not body.code.strip():
        raise InvalidInput("Give the voucher's code.", code="CODE_REQUIRED")
    return _validate(session, tenant, request, body.code, body, idempotency_key)


def _validate(
    session: Session,
    tenant: Tenant,
    request: Request,
    code: str,
    body: ValidateIn,
    idempotency_key: str | None,
) -> Any:
    payload = {**body.model_dump(mode="json"), "code": code.strip().upper()}
    keyed = keys.begin(session, tenant, idempotency_key, request, payload)
    if (replay := keyed.replay) is not None:
        return replay
    customer: Customer | None = None
    if body.customer_id is not None:
        customer = directory.get_in_program(session, tenant.program_id, body.customer_id)
    elif body.cpf:
        kind, value = cpf_identifier(body.cpf)
        customer = directory.find_any(session, tenant.program_id, kind, value)
        if customer is None:
            raise NotFound("No customer with this CPF at this merchant.", code="CUSTOMER_NOT_FOUND")
    voucher = vouchers.validate(session, tenant, code, customer=customer, reference=body.reference)
    return keyed.answer(voucher_out(tenant, voucher))
