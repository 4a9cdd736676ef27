"""Seed 001: orders (upsert by ``OriginalId``), cancellation and partial cancellation."""

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from sqlalchemy.orm import Session

from fidelia.dialects.pdv.auth import PdvMerchant
from fidelia.dialects.pdv.casing import money_in, money_out
from fidelia.dialects.pdv.common import customer_from_order, customer_out
from fidelia.dialects.pdv.errors import ERRORS, envelope
from fidelia.dialects.pdv.schemas import Envelope, OrderCancelIn, OrderIn, PartialCancelIn
from fidelia.kit.deps import SessionDep
from fidelia.kit.errors import InvalidInput, NotFound
from fidelia.kit.money import format_money
from fidelia.models import Customer, Order, Tenant
from fidelia.models.order import CANCELLED, COMPLETE
from fidelia.orders import service as orders
from fidelia.orders.service import OrderData
from fidelia.state import AppState
from fidelia.vouchers.rules import RuleCache

router = APIRouter(prefix="/v1/pvt/POS", tags=["Seed 001: POS rewards"], responses=ERRORS)


def parse_date(value: str | None, field: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"{field}: not an ISO 8601 date: {value!r}") from exc
    if parsed.tzinfo is None:
        raise InvalidInput(f"{field}: give the UTC offset (e.g. 2026-05-07T15:30:00-03:00).")
    return parsed


def _date(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def order_out(session: Session, tenant: Tenant, order: Order) -> dict[str, Any]:
    """The order as the vendor's reference answers it (the fields Fidelia keeps)."""
    bonus = orders.estimate(tenant, order)
    customer = session.get(Customer, order.customer_id) if order.customer_id else None
    return envelope(
        {
            "Id": order.id,
            "OriginalId": order.original_id,
            "OrderPlacementDate": _date(order.placed_at),
            "OrderCompletedDate": _date(order.completed_at),
            "OrderCancelledDate": _date(order.cancelled_at),
            "OrderStatus": order.status_text,
            "IsCancelledOrReturned": order.state == CANCELLED,
            "IsCompleted": order.state == COMPLETE,
            "OrderTotal": money_out(order.total, tenant.currency),
            "Customer": customer_out(session, customer).model_dump() if customer else None,
            "UpdatedDate": _date(order.updated_at),
            "Coupon": order.coupon,
            "State": order.state,  # 0 initial, 1 pending, 2 complete, 3 cancelled, 4 ignored
            "Origin": 1,  # 1: sent through the API
            "EstimatedBonus": {
                "GenerateBonus": bonus.any,
                "EstimatedPoints": bonus.points,
                "EstimatedCashback": money_out(bonus.cashback, tenant.currency),
                "EstimatedCashbackFormatted": format_money(
                    bonus.cashback, tenant.currency, tenant.locale
                ),
            },
        }
    )


@router.post("/orders", response_model=Envelope)
async def register_order(body: OrderIn, tenant: PdvMerchant, state: AppState) -> dict[str, Any]:
    """Register or update (same ``OriginalId``) an order; complete orders earn points/cashback."""
    # Async, the transaction in one worker thread (State.in_transaction): one thread hop.
    return await state.in_transaction(_register_order, body, tenant, state.rules)


def _register_order(
    session: Session, body: OrderIn, tenant: Tenant, rules: RuleCache
) -> dict[str, Any]:
    data = OrderData(
        original_id=body.OriginalId.strip(),
        total=money_in(body.OrderTotal, tenant.currency),
        customer=customer_from_order(session, tenant, body.Customer),
        completed=body.IsCompleted,
        cancelled=body.IsCancelledOrReturned,
        coupon=(body.Coupon or "").strip() or None,
        status_text=None if body.OrderStatus is None else str(body.OrderStatus),
        placed_at=parse_date(body.OrderPlacementDate, "OrderPlacementDate"),
        completed_at=parse_date(body.OrderCompletedDate, "OrderCompletedDate"),
        details={
            "products": [p.model_dump(mode="json") for p in body.Products or []],
            "payments": body.PaymentMethods or ([body.PaymentMethod] if body.PaymentMethod else []),
            "branch": body.Branch.model_dump(mode="json") if body.Branch else None,
            "salesperson": body.SalesPerson.model_dump(mode="json") if body.SalesPerson else None,
        },
        voucher_rules=rules.active(session, tenant) if body.IsCompleted else None,
    )
    order = orders.upsert(session, tenant, data)
    return order_out(session, tenant, order)


def _order(session: Session, tenant: Tenant, ref: str) -> Order:
    order = orders.find_order(session, tenant, ref)
    if order is None:
        raise NotFound(f"No order {ref!r} at this merchant.", code="ORDER_NOT_FOUND")
    return order


def _state_out(order: Order, canceled: bool) -> dict[str, Any]:
    return envelope(
        {"isCanceled": canceled, "UpdatedAt": order.updated_at.isoformat(), "Status": order.state}
    )


@router.post("/orders/{order_ref}/cancel", response_model=Envelope)
def cancel_order(
    order_ref: str, tenant: PdvMerchant, session: SessionDep, body: OrderCancelIn | None = None
) -> dict[str, Any]:
    """Cancel an order (its ``OriginalId`` or our id): reverses what it earned and its reward."""
    order = _order(session, tenant, order_ref)
    orders.cancel(session, order)
    if body is not None and body.OrderStatus is not None:
        order.status_text = str(body.OrderStatus)
    session.flush()
    return _state_out(order, order.state == CANCELLED)


@router.post("/{order_ref}/partialcancel", response_model=Envelope)
def partial_cancel(
    order_ref: str, body: PartialCancelIn, tenant: PdvMerchant, session: SessionDep
) -> dict[str, Any]:
    """Refund part of an order: points and cashback come back in proportion (per ``CancelKey``)."""
    order = _order(session, tenant, order_ref)
    products = [
        {"original_id": p.OriginalId, "value": money_in(p.ValueToRefund, tenant.currency)}
        for p in body.Products or []
    ]
    orders.partial_cancel(
        session,
        order,
        cancel_key=body.CancelKey,
        value=money_in(body.ValueToRefund, tenant.currency),
        products=products,
    )
    session.flush()
    return _state_out(order, True)
