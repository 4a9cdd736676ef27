"""Seed 004 sales: a sale is a completed order in the orders engine, so it earns points
and cashback by the merchant's rules, like a POS order. Idempotent on ``external_id`` (the
sale's own id) and on the ``Idempotency-Key`` header (the request's)."""

import uuid
from datetime import UTC
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from fidelia.customers import directory
from fidelia.customers.service import finder, found, identify
from fidelia.dialects.rest_v2 import keys
from fidelia.dialects.rest_v2.auth import Merchant
from fidelia.dialects.rest_v2.common import balance_out, cpf_identifier, money
from fidelia.dialects.rest_v2.schemas import Earned, ErrorOut, SaleIn, SaleOut
from fidelia.idempotency import service as idempotency
from fidelia.kit.errors import Conflict, InvalidInput
from fidelia.kit.money import to_minor
from fidelia.models import Customer, Order, Tenant
from fidelia.orders import service as orders
from fidelia.orders.service import OrderData
from fidelia.state import AppState
from fidelia.vouchers.rules import RuleCache

router = APIRouter(tags=["Seed 004: sales"])

# Orders of this door live in their own namespace of original ids, so a sale's
# external_id can never collide with a POS order's OriginalId at the same merchant.
PREFIX = "v2:"


def customer_ref(body: SaleIn) -> dict[str, Any]:
    """Who the sale is for, normalised (part of the request's fingerprint)."""
    if body.customer_id is None and not body.cpf:
        raise InvalidInput("Give the customer's cpf or customer_id.", code="CUSTOMER_REQUIRED")
    ref: dict[str, Any] = {"customer_id": body.customer_id}
    if body.cpf:
        ref["document"] = list(cpf_identifier(body.cpf))
    return ref


# ``find`` by CPF as one statement built once: the read a sale sends along its claim.
_BY_DOCUMENT = finder()


def document_read(tenant: Tenant, ref: dict[str, Any]) -> idempotency.Along | None:
    """A sale by CPF only: its customer's lookup, to send along the ``external_id``'s
    claim (one round trip for both on PostgreSQL)."""
    if ref["customer_id"] is not None:
        return None
    kind, value = ref["document"]
    return _BY_DOCUMENT, {"program_id": tenant.program_id, "kind": kind, "value": value}


def sale_customer(session: Session, tenant: Tenant, ref: dict[str, Any]) -> Customer:
    """By id (must exist), else by CPF: a CPF seen for the first time enrols its customer,
    as a POS order does."""
    if ref["customer_id"] is not None:
        customer = directory.get_in_program(session, tenant.program_id, ref["customer_id"])
        if "document" in ref:
            kind, value = ref["document"]
            owner = directory.find_any(session, tenant.program_id, kind, value)
            if owner is None or owner.id != customer.id:
                raise Conflict(
                    f"cpf and customer_id name different customers (customer {customer.id}).",
                    code="CUSTOMER_MISMATCH",
                )
        return customer
    kind, value = ref["document"]
    return identify(session, tenant, {kind: value})


def sale_out(
    session: Session,
    tenant: Tenant,
    order: Order,
    external_id: str | None,
    balances: dict[str, int] | None = None,
) -> SaleOut:
    """``balances``: the customer's, as the sale's credits left them (else read)."""
    assert order.customer_id is not None
    if balances is None:
        balances = directory.balances_by_customer(session, tenant.program_id, [order.customer_id])[
            order.customer_id
        ]
    return SaleOut(
        id=order.id,
        external_id=external_id,
        customer_id=order.customer_id,
        sale_amount=money(order.total, tenant.currency),
        currency=tenant.currency,
        earned=Earned(
            points=order.earned_points,
            cashback=money(order.earned_cashback, tenant.currency),
        ),
        balance=balance_out(tenant, balances),
        sold_at=(order.completed_at or order.created_at).astimezone(UTC),
        created_at=order.created_at,
    )


@router.post(
    "/sales",
    response_model=SaleOut,
    status_code=201,
    responses={
        404: {
            "model": ErrorOut,
            "description": "customer_not_found (by customer_id; an unknown cpf enrols them)",
        },
        409: {"model": ErrorOut, "description": "customer_mismatch"},
        422: {
            "model": ErrorOut,
            "description": "invalid_amount, external_id_reused, idempotency_key_reused, ...",
        },
    },
)
async def register_sale(
    body: SaleIn,
    request: Request,
    tenant: Merchant,
    state: AppState,
    idempotency_key: keys.IdempotencyKey = None,
) -> Any:
    """Register a sale by ``cpf`` or ``customer_id``: it earns points and cashback now, and
    answers what it earned and the new balance. The same ``external_id`` or
    ``Idempotency-Key`` replays that answer; a CPF seen for the first time enrols its
    customer."""
    # Async, the transaction in one worker thread (State.in_transaction): one thread hop.
    return await state.in_transaction(
        _register_sale, body, request, tenant, idempotency_key, state.rules
    )


def _register_sale(
    session: Session,
    body: SaleIn,
    request: Request,
    tenant: Tenant,
    idempotency_key: str | None,
    rules: RuleCache,
) -> Any:
    amount = to_minor(body.sale_amount, tenant.currency)
    ref = customer_ref(body)
    external_id = body.external_id.strip() if body.external_id else None
    sold_at = body.sold_at.astimezone(UTC).isoformat() if body.sold_at else None
    # Claimed before anything else: a concurrent duplicate waits here for the first and
    # then replays its answer, so a sale never earns twice.
    keyed = keys.begin(
        session,
        tenant,
        idempotency_key,
        request,
        {"amount": amount, **ref, "external_id": external_id, "sold_at": sold_at},
    )
    if (replay := keyed.replay) is not None:
        return replay
    claim = None
    if external_id:
        try:
            claim = idempotency.claim(
                session,
                tenant.id,
                "v2.sales",
                external_id,
                {"amount": amount, **ref},
                along=document_read(tenant, ref),
            )
        except idempotency.KeyReused as exc:
            raise InvalidInput(exc.message, code="EXTERNAL_ID_REUSED") from exc
        if claim.replay is not None:
            keyed.store(claim.replay, claim.status_code)  # a new key for a known sale
            return keys.replayed(claim.replay, claim.status_code)
    if claim is not None and claim.along is not None:
        customer = found(session, claim.along)  # known by their CPF
    else:
        customer = sale_customer(session, tenant, ref)  # by id, or enrolled by CPF
    recorded = orders.record(
        session,
        tenant,
        OrderData(
            original_id=PREFIX + (external_id or f"auto-{uuid.uuid4().hex}"),
            total=amount,
            customer=customer,
            completed=True,
            placed_at=body.sold_at,
            completed_at=body.sold_at,
            details={"door": "rest_v2"},
            voucher_rules=rules.active(session, tenant),
        ),
    )
    session.flush()
    out = sale_out(session, tenant, recorded.order, external_id, recorded.balances)
    if claim is not None:
        claim.store(out.model_dump(mode="json"), 201)
    return keyed.answer(out, 201)
