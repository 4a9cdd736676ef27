"""Seed 004 vouchers: list, read, and validate (a use taken with a conditional update, so
a single-use voucher validates once, also under concurrent attempts)."""

from typing import Annotated

from fastapi import APIRouter, Query

from fidelia.customers import directory
from fidelia.dialects.rest_v2.auth import Merchant
from fidelia.dialects.rest_v2.common import PagingDep, cpf_identifier, voucher_out
from fidelia.dialects.rest_v2.schemas import ErrorOut, ValidateIn, VoucherOut, VoucherPage
from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.errors import NotFound
from fidelia.kit.ids import MAX_ID
from fidelia.models import Customer
from fidelia.vouchers import service as vouchers

router = APIRouter(tags=["Seed 004: vouchers"])


@router.get("/vouchers", response_model=VoucherPage)
def list_vouchers(
    tenant: Merchant,
    session: ReadSessionDep,
    paging: PagingDep,
    customer_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> VoucherPage:
    """List the merchant's vouchers, optionally one customer's."""
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


@router.post(
    "/vouchers/{code}/validate",
    response_model=VoucherOut,
    responses={
        403: {"model": ErrorOut, "description": "voucher_not_yours"},
        404: {"model": ErrorOut, "description": "voucher_not_found, customer_not_found"},
        409: {
            "model": ErrorOut,
            "description": "voucher_used, voucher_cancelled, voucher_not_yet_valid",
        },
        410: {"model": ErrorOut, "description": "voucher_expired"},
    },
)
def validate_voucher(
    code: str, tenant: Merchant, session: SessionDep, body: ValidateIn | None = None
) -> VoucherOut:
    """Validate (use) a voucher by its code; a single-use voucher validates exactly once."""
    body = body or ValidateIn()
    customer: Customer | None = None
    if body.customer_id is not None:
        customer = directory.get_in_program(session, tenant.program_id, body.customer_id)
    elif body.cpf:
        kind, value = cpf_identifier(body.cpf)
        customer = directory.find_any(session, tenant.program_id, kind, value)
        if customer is None:
            raise NotFound("No customer with this CPF at this merchant.", code="CUSTOMER_NOT_FOUND")
    voucher = vouchers.validate(session, tenant, code, customer=customer, reference=body.reference)
    return voucher_out(tenant, voucher)
