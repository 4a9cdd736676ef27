"""Seed 002: sales (``/transaction``), loyalty payments (``/payment``) and behavioural
events (``/event``)."""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from fidelia.dialects.retail_v1.auth import Caller, RetailCaller
from fidelia.dialects.retail_v1.common import (
    balance_of,
    member_read,
    optional_member,
    require_member,
)
from fidelia.dialects.retail_v1.errors import RetailRoute, at, fail
from fidelia.dialects.retail_v1.schemas import (
    AppliedDealOut,
    BalanceOut,
    CancelData,
    CancelRequest,
    EarnedOut,
    EventData,
    EventRequest,
    EventResponse,
    PaymentData,
    PaymentOut,
    PaymentRequest,
    PaymentResponse,
    TransactionContextIn,
    TransactionData,
    TransactionRequest,
    TransactionResponse,
    UsedAssetOut,
)
from fidelia.dialects.retail_v1.wire import envelope, success
from fidelia.events import service as events
from fidelia.events.deals import DealCache, Line
from fidelia.idempotency.service import claim, forget
from fidelia.kit.deps import SessionDep
from fidelia.kit.errors import InvalidInput, NotFound
from fidelia.ledger.service import CASHBACK, POINTS
from fidelia.models import Customer, LoyaltyPayment
from fidelia.orders import checkout
from fidelia.payments import service as payments
from fidelia.state import AppState
from fidelia.vouchers.rules import RuleCache

router = APIRouter(route_class=RetailRoute)
LOYALTY = {"POINTS": "points", "CREDIT": "credit"}
TRANSACTION_SCOPE = "retail.transaction"
PAYMENT_SCOPE = "retail.payment"


def basket_lines(transaction: TransactionContextIn) -> list[Line]:
    """The basket as deals see it: each line's code, department and what it costs (its
    net amount, else gross, else unit price x quantity), whichever names the client used."""
    return [
        Line(code=item.code, department=item.departmentCode, amount=item.line_amount())
        for item in transaction.items
    ]


def as_utc(moment: datetime | None) -> datetime | None:
    """The guide's dates are UTC: one without an offset is read as UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def payment_key(transaction_id: str, kind: str, amount: int) -> str:
    return f"{transaction_id}:{kind}:{amount}"


def payment_out(payment: LoyaltyPayment, linked: bool = False) -> PaymentOut:
    return PaymentOut(
        type=payment.kind.upper(),
        amount=payment.amount,
        points=payment.units if payment.kind == "points" else None,
        confirmationCode=payment.confirmation_code,
        linked=linked,
    )


def forget_payment(session: Session, payment: LoyaltyPayment) -> None:
    """A cancelled payment frees its idempotency key: paying again is a new payment."""
    if payment.reference:
        key = payment_key(payment.reference, payment.kind, payment.amount)
        forget(session, payment.tenant_id, PAYMENT_SCOPE, key)


# -- /transaction ------------------------------------------------------------------------------


def _submit(
    session: Session,
    caller: Caller,
    body: TransactionRequest,
    customer: Customer | None,
    rules: RuleCache,
    deals: DealCache,
) -> dict[str, Any]:
    tenant = caller.tenant
    tx = body.transaction
    assert tx is not None
    with at("body.transaction.transactionId"):
        sale = checkout.open_sale(
            session, tenant, tx.transactionId, customer, tx.totalAmount, basket_lines(tx)
        )
    only = {d.key.strip().upper() for d in body.appliedDeals} if body.appliedDeals else None
    checkout.apply_deals(session, sale, only, deals.active(session, tenant))
    for i, asset in enumerate(body.usedAssets or []):
        with at(f"body.usedAssets[{i}].key"):
            checkout.use_voucher(session, sale, asset.key)
    recorded = []
    for j, line in enumerate(tx.payments):
        kind = LOYALTY.get(line.type.strip().upper())
        if kind is None:
            recorded.append(PaymentOut(type=line.type.strip().upper(), amount=line.amount))
            continue
        if customer is None:
            raise fail(
                InvalidInput,
                "Paying with points or credit needs the member.",
                "MEMBER_REQUIRED",
                "body.member",
            )
        where = f"body.transaction.payments[{j}]"
        with at(f"{where}.confirmationCode" if line.confirmationCode else f"{where}.amount"):
            # A payment made before through /payment is linked, never charged twice.
            linked = checkout.link_payment(session, sale, kind, line.amount, line.confirmationCode)
        if linked is not None:
            recorded.append(payment_out(linked, linked=True))
            continue
        with at(f"{where}.amount"):
            recorded.append(payment_out(checkout.pay(session, sale, kind, line.amount)))
    receipt = checkout.close(
        session,
        sale,
        placed_at=as_utc(tx.openTime),
        completed_at=as_utc(tx.dateTime),
        details={
            "door": "retail_v1",
            "source": caller.source,
            "items": [item.model_dump(mode="json") for item in tx.items],
            "payments": [line.model_dump(mode="json") for line in tx.payments],
            "totalTaxAmount": tx.totalTaxAmount,
            "totalGeneralDiscount": tx.totalGeneralDiscount,
            "orderType": tx.orderType,
            "employee": tx.employee,
            "tags": tx.tags,
        },
        voucher_rules=rules.active(session, tenant),
    )
    data = TransactionData(
        transactionId=tx.transactionId,
        confirmationCode=receipt.confirmation_code,
        status="completed",
        memberId=str(customer.id) if customer else None,
        totalAmount=tx.totalAmount,
        totalDiscount=-sale.discount,
        amountToPay=sale.to_pay,
        appliedDeals=[
            AppliedDealOut(
                key=checkout.deal_key(d.applied.deal.id),
                name=d.applied.deal.name,
                type=d.applied.deal.discount_type,  # type: ignore[arg-type]
                discountAmount=-d.discount,
                bonusPoints=d.applied.bonus_points,
            )
            for d in sale.deals
        ],
        usedAssets=[
            UsedAssetOut(
                key=v.voucher.code,
                name=v.voucher.benefit or "Voucher",
                discountAmount=-v.discount,
                benefit=v.voucher.benefit,
                usesLeft=max(v.voucher.max_uses - v.voucher.uses, 0),
            )
            for v in sale.vouchers
        ],
        payments=recorded,
        earned=EarnedOut(points=receipt.earned_points, credit=receipt.earned_credit),
        newBalance=new_balance(session, customer, receipt.balances),
    )
    return envelope(body, data)


def new_balance(
    session: Session, customer: Customer | None, balances: dict[str, int] | None
) -> BalanceOut | None:
    """The member's balances after the sale: as its credits told them, else read."""
    if customer is None:
        return None
    if balances is None:
        return balance_of(session, customer)
    return BalanceOut(points=balances[POINTS], credit=balances[CASHBACK])


def _cancel(session: Session, caller: Caller, body: TransactionRequest | CancelRequest) -> Any:
    tenant = caller.tenant
    if not body.confirmationCode:
        raise fail(
            InvalidInput,
            "confirmationCode is required to cancel a transaction.",
            "BAD_REQUEST",
            "body.confirmationCode",
        )
    with at("body.confirmationCode"):
        order = checkout.find_sale(session, tenant, body.confirmationCode)
    member = optional_member(session, tenant, body.member)
    if member is not None and order.customer_id != member.id:
        raise fail(
            NotFound,
            "No transaction with this confirmation code for this member.",
            "TRANSACTION_NOT_FOUND",
            "body.confirmationCode",
        )
    reversal = checkout.cancel(session, tenant, order)
    for payment in reversal.payments:
        forget_payment(session, payment)
    customer = session.get(Customer, order.customer_id) if order.customer_id else None
    code = order.details["confirmation_code"]
    data = CancelData(
        transactionId=order.original_id,
        confirmationCode=code,
        status="cancelled",
        reversed=EarnedOut(points=reversal.points, credit=reversal.credit),
        refundedPayments=[payment_out(p) for p in reversal.payments],
        releasedAssets=[v.code for v in reversal.vouchers],
        newBalance=balance_of(session, customer) if customer else None,
    )
    return success(body, data)


@router.post("/transaction", response_model=TransactionResponse)
async def transaction(body: TransactionRequest, caller: RetailCaller, state: AppState) -> Any:
    """Submit a sale (idempotent on transactionId): deals, assets, loyalty payments and
    earnings in one go; or cancel one by its confirmation code (undone once)."""
    # Async, the transaction in one worker thread (State.in_transaction): one thread hop.
    return await state.in_transaction(_transaction, body, caller, state.rules, state.deals)


def _transaction(
    session: Session, body: TransactionRequest, caller: Caller, rules: RuleCache, deals: DealCache
) -> Any:
    if body.action == "cancel":
        return _cancel(session, caller, body)
    if body.transaction is None:
        raise fail(InvalidInput, "transaction is required.", "BAD_REQUEST", "body.transaction")
    # The member is looked up with the claim (one round trip on PostgreSQL).
    read = member_read(session, caller.tenant, body.member)
    with at("body.transaction.transactionId"):
        keyed = claim(
            session,
            caller.tenant.id,
            TRANSACTION_SCOPE,
            body.transaction.transactionId,
            body.model_dump(mode="json", exclude={"action"}),
            along=read.along if read is not None else None,
        )
    if keyed.replay is not None:
        return JSONResponse(keyed.replay)
    customer: Customer | None = None
    if read is not None:
        customer = read.member(session, keyed.along)
    else:
        customer = optional_member(session, caller.tenant, body.member)
    answer = _submit(session, caller, body, customer, rules, deals)
    keyed.store(answer)
    return JSONResponse(answer)


@router.post("/transaction/cancel", response_model=TransactionResponse)
def cancel_transaction(body: CancelRequest, caller: RetailCaller, session: SessionDep) -> Any:
    """Cancel a sale by its confirmation code (the cancel action's body; undone once)."""
    return _cancel(session, caller, body)


# -- /payment ----------------------------------------------------------------------------------


def _payment_data(session: Session, payment: LoyaltyPayment) -> PaymentData:
    customer = session.get_one(Customer, payment.customer_id)
    return PaymentData(
        confirmationCode=payment.confirmation_code,
        type=payment.kind.upper(),  # type: ignore[arg-type]
        amount=payment.amount,
        points=payment.units if payment.kind == "points" else 0,
        status=payment.status,  # type: ignore[arg-type]
        transactionId=payment.reference,
        newBalance=balance_of(session, customer),
    )


def payment_kind(caller: Caller, body: PaymentRequest) -> str:
    """POINTS or CREDIT: as asked; else the one loyalty line of the transaction sent along
    for this amount (the vendor's reference lists it there); else the merchant's
    ``retail_default_payment_type``."""
    asked = body.payment
    if asked.type is not None:
        kind = LOYALTY.get(asked.type.strip().upper())
        if kind is None:
            raise fail(
                InvalidInput,
                "payment.type is POINTS or CREDIT.",
                "INVALID_PAYMENT",
                "body.payment.type",
            )
        return kind
    lines = body.transaction.payments if body.transaction else []
    listed = {
        LOYALTY[line.type.strip().upper()]
        for line in lines
        if line.type.strip().upper() in LOYALTY and line.amount == asked.amount
    }
    if len(listed) == 1:
        return listed.pop()
    return LOYALTY[caller.tenant.retail_default_payment_type]


@router.post("/payment", response_model=PaymentResponse)
def payment(body: PaymentRequest, caller: RetailCaller, session: SessionDep) -> Any:
    """Pay part of a bill with points or stored credit (``type`` omitted: see
    ``retail_default_payment_type``), or cancel such a payment (once)."""
    tenant = caller.tenant
    asked = body.payment
    if asked.action == "cancel":
        if not asked.confirmationCode:
            raise fail(
                InvalidInput,
                "confirmationCode is required to cancel a payment.",
                "BAD_REQUEST",
                "body.payment.confirmationCode",
            )
        member = optional_member(session, tenant, body.member)
        with at("body.payment.confirmationCode"):
            done = payments.cancel(session, tenant, asked.confirmationCode)
            if member is not None and done.customer_id != member.id:
                # Refused after the fact: raising rolls the cancellation back.
                raise NotFound("No payment with this confirmation code.", code="PAYMENT_NOT_FOUND")
        forget_payment(session, done)
        return success(body, _payment_data(session, done))
    if asked.amount is None:
        raise fail(
            InvalidInput, "payment.amount is required.", "BAD_REQUEST", "body.payment.amount"
        )
    if asked.amount <= 0:
        raise fail(
            InvalidInput,
            "payment.amount is positive (cents); to give a payment back, cancel it with "
            "its confirmationCode.",
            "INVALID_AMOUNT",
            "body.payment.amount",
        )
    kind = payment_kind(caller, body)
    customer = require_member(session, tenant, body.member)
    reference = body.transaction.transactionId if body.transaction else None
    keyed = None
    if reference:
        with at("body.transaction.transactionId"):
            keyed = claim(
                session,
                tenant.id,
                PAYMENT_SCOPE,
                payment_key(reference, kind, asked.amount),
                {"member": customer.id, "kind": kind, "amount": asked.amount},
            )
        if keyed.replay is not None:
            return JSONResponse(keyed.replay)
    with at("body.payment.amount"):
        done = payments.pay(session, tenant, customer, kind, asked.amount, reference=reference)
    answer = envelope(body, _payment_data(session, done))
    if keyed is not None:
        keyed.store(answer)
    return JSONResponse(answer)


# -- /event ------------------------------------------------------------------------------------


@router.post("/event", response_model=EventResponse)
def event(body: EventRequest, caller: RetailCaller, session: SessionDep) -> Any:
    """Record a behavioural event (visit, signup, referral, review, custom); earning rules
    and segments feed on it."""
    tenant = caller.tenant
    customer = optional_member(session, tenant, body.member)
    bad_type = not events.TYPE.match(body.event.type.strip().lower())
    payload: dict[str, Any] = {**(body.event.payload or {}), "source": caller.source}
    if body.transaction is not None:
        payload["transaction"] = body.transaction.model_dump(mode="json", exclude_none=True)
    with at("body.event.type" if bad_type else "body.event.dateTime"):
        recorded = events.record(
            session,
            tenant,
            customer,
            type=body.event.type,
            sub_type=body.event.subType,
            occurred_at=as_utc(body.event.dateTime),
            payload=payload,
            tags=body.event.tags,
        )
    data = EventData(eventId=str(recorded.id), type=recorded.type, pointsEarned=recorded.points)
    return success(body, data)
