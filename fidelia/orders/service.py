"""Orders reported by a POS: upserted by their ``OriginalId``; completion earns points and
cashback, cancellation reverses all of it, a partial cancellation reverses in proportion.

Reversals are debits that may take a balance below zero (the points were already spent):
a negative balance is never dropped; it blocks redemptions until earned back.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import manager_of_class

from fidelia.kit import driver
from fidelia.kit.clock import now
from fidelia.kit.db import insert_for
from fidelia.kit.errors import Conflict, InvalidInput
from fidelia.kit.ids import as_id
from fidelia.ledger.service import CASHBACK, POINTS, Account, Source, credit, debit
from fidelia.messaging import automations
from fidelia.models import (
    Customer,
    LedgerEntry,
    LoyaltyPayment,
    Order,
    OrderRefund,
    Redemption,
    Tenant,
    Voucher,
    VoucherRule,
)
from fidelia.models.order import CANCELLED, COMPLETE, IGNORED, INITIAL, PENDING
from fidelia.orders.earning import Bonus, bonus_for, proportional
from fidelia.payments import service as payments
from fidelia.redemptions import service as redemptions
from fidelia.vouchers import service as vouchers


@dataclass
class OrderData:
    original_id: str
    total: int
    customer: Customer | None
    completed: bool = False
    cancelled: bool = False
    coupon: str | None = None
    status_text: str | None = None
    placed_at: datetime | None = None
    completed_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)
    after_sale: bool = True  # False: the caller runs automations.after_sale itself
    # The merchant's active voucher rules when the caller has them (State.rules); None: read.
    voucher_rules: list[VoucherRule] | None = None
    # The caller holds ``customer``'s row lock already (a retail sale's ``open_sale``).
    customer_locked: bool = False
    # The new order's id, taken from the table's sequence by the caller (PostgreSQL: a
    # retail sale's ``open_sale``), so ``details`` can name it; None: the sequence's next.
    id: int | None = None


def _locked(session: Session, tenant: Tenant, original_id: str) -> Order | None:
    return session.scalar(
        select(Order)
        .where(Order.tenant_id == tenant.id, Order.original_id == original_id)
        .with_for_update()
    )


# A customer's row lock, built once: their sales complete one at a time.
LOCK_CUSTOMER = select(Customer.id).where(Customer.id == bindparam("c")).with_for_update()


def find_order(session: Session, tenant: Tenant, ref: str) -> Order | None:
    """By the POS's own ``OriginalId``, else by our numeric id (both are accepted in paths)."""
    order = _locked(session, tenant, ref)
    number = as_id(ref)
    if order is None and number is not None:
        order = session.scalar(
            select(Order).where(Order.tenant_id == tenant.id, Order.id == number).with_for_update()
        )
    return order


_orders = cast(Table, Order.__table__)
_customers = cast(Table, Customer.__table__)
_NEW_ORDER: dict[tuple[str, bool, bool], Any] = {}  # per dialect, lock and id given: built once


def _new_order(session: Session, lock: bool, with_id: bool = False) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING`` the order; ``lock`` (PostgreSQL):
    the statement also takes its customer's row lock, after the insert and only when it
    inserted (a known order is locked first, then its customer, as before), so a new
    complete order is written at once, its customer with it. The foreign key's own lock
    on the customer (``KEY SHARE``, by a trigger at the statement's end) then comes after
    that ``FOR UPDATE``: two first sales of one customer queue on it instead of
    deadlocking. ``with_id``: the row's id is a parameter (``OrderData.id``)."""
    dialect = session.get_bind().dialect.name
    lock = lock and dialect == "postgresql"
    stmt = _NEW_ORDER.get((dialect, lock, with_id))
    if stmt is not None:
        return stmt
    insert = insert_for(session)(_orders).on_conflict_do_nothing(
        index_elements=["tenant_id", "original_id"]
    )
    if lock:
        values = {
            c.name: bindparam(c.name, type_=c.type) for c in _orders.c if c.name != "id" or with_id
        }
        added = insert.values(values).returning(*_orders.c).cte("added")
        locked = (
            select(_customers.c.id)
            .where(_customers.c.id == added.c.customer_id)
            .with_for_update()
            .scalar_subquery()
            .label("locked")
        )
        stmt = select(*added.c, locked)
    else:
        stmt = insert.returning(*_orders.c)
    _NEW_ORDER[(dialect, lock, with_id)] = stmt
    return stmt


_ORDER_COLUMNS = frozenset(c.name for c in _orders.c)


def _insert_new(
    session: Session, tenant: Tenant, data: OrderData, bonus: Bonus | None
) -> Order | None:
    """The order as a new row with what the POS sent, in one round trip (``INSERT ... ON
    CONFLICT DO NOTHING RETURNING``; the new row is ours, locked until we commit); None
    when the merchant already has an order with this ``original_id``. A concurrent insert
    of the same one waits for ours to end, then finds it. ``bonus``: a complete sale of
    ``data.customer``, written complete with what it earns (its credits follow), its
    customer locked by the same statement unless the caller holds that lock."""
    at = now()
    customer = data.customer if bonus is not None else None
    row = {
        "tenant_id": tenant.id,
        "program_id": tenant.program_id,
        "original_id": data.original_id,
        "total": data.total,
        # The customer only with the lock in this statement (or held by the caller): else
        # its foreign key would lock the customer row (KEY SHARE) before ``_complete``
        # locks it FOR UPDATE, and two first sales of one customer would deadlock. An
        # order not completed now gets it in ``upsert``, written after that lock.
        "customer_id": customer.id if customer is not None else None,
        "coupon": data.coupon,
        "status_text": data.status_text,
        "placed_at": data.placed_at,
        "details": data.details,
        "state": COMPLETE if bonus is not None else INITIAL,
        "earned_points": bonus.points if bonus is not None else 0,
        "earned_cashback": bonus.cashback if bonus is not None else 0,
        "refunded": 0,
        "reversed_points": 0,
        "reversed_cashback": 0,
        "completed_at": (data.completed_at or at) if bonus is not None else None,
        "cancelled_at": None,
        "created_at": at,
        "updated_at": at,
    }
    if data.id is not None:
        row["id"] = data.id
    lock = bonus is not None and not data.customer_locked
    # On the driver's connection (PostgreSQL): SQLAlchemy's execution layer cost more
    # CPU than the statement.
    stmt = _new_order(session, lock, data.id is not None)
    inserted = driver.execute(session, stmt, row).first()
    if inserted is None:
        return None
    # The row as the session's Order, as if loaded (Core, not the ORM's bulk insert): the
    # columns straight into the object's state (no constructor, no attribute events), then
    # committed as loaded values by ``make_transient_to_detached`` (as ``customers.found``).
    mapping = inserted._mapping
    order = _new_order_object()
    order.__dict__.update({name: mapping[name] for name in _ORDER_COLUMNS})
    make_transient_to_detached(order)
    session.add(order)
    return cast(Order, order)


_new_order_object = manager_of_class(Order).new_instance  # no mapper configuration at import


@dataclass
class Recorded:
    """An order as ``record`` left it, and the customer's balances after it when its
    credits could tell them exactly (``ledger.credit``'s ``wallet``); else None (read
    them)."""

    order: Order
    balances: dict[str, int] | None = None


def upsert(session: Session, tenant: Tenant, data: OrderData) -> Order:
    return record(session, tenant, data).order


def record(session: Session, tenant: Tenant, data: OrderData) -> Recorded:
    """``upsert``, with the balances the sale left when it completed now."""
    completing = data.completed and not data.cancelled and data.customer is not None
    bonus = bonus_for(tenant, data.total) if completing else None
    order = _insert_new(session, tenant, data, bonus)
    if order is not None and bonus is not None:
        # New and complete already (its customer locked): the coupon, then the credits.
        _link_coupon(session, order)
        done = Recorded(order, _earn(session, tenant, order, bonus))
        if data.after_sale:
            automations.after_sale(session, tenant, data.customer, order, data.voucher_rules)
        return done
    if order is None:
        order = _locked(session, tenant, data.original_id)
        assert order is not None
    if order.state in (COMPLETE, CANCELLED):
        # A complete order changes only by cancellation (use partialcancel for returns).
        if data.cancelled and order.state == COMPLETE:
            cancel(session, order)
        return Recorded(order)
    order.total = data.total
    order.customer_id = data.customer.id if data.customer else order.customer_id
    order.coupon = data.coupon
    order.status_text = data.status_text
    order.placed_at = data.placed_at or order.placed_at
    order.details = data.details
    _link_coupon(session, order)
    done = Recorded(order)
    if data.cancelled:
        cancel(session, order)
    elif data.completed:
        held = data.customer.id if data.customer_locked and data.customer else None
        done.balances = _complete(session, tenant, order, data.completed_at, locked=held)
        if data.after_sale:
            automations.after_sale(session, tenant, data.customer, order, data.voucher_rules)
    else:
        order.state = PENDING if order.customer_id else IGNORED
    return done


def estimate(tenant: Tenant, order: Order) -> Bonus:
    if order.state == COMPLETE:
        return Bonus(order.earned_points, order.earned_cashback)
    if order.customer_id is None or order.state == CANCELLED:
        return Bonus(0, 0)
    return bonus_for(tenant, order.total)


def _link_coupon(session: Session, order: Order) -> None:
    if not order.coupon:
        return
    redemption = session.scalar(
        select(Redemption).where(
            Redemption.tenant_id == order.tenant_id,
            Redemption.external_code == order.coupon,
            Redemption.status == "done",
        )
    )
    if redemption is not None and redemption.order_id in (None, order.id):
        redemption.order_id = order.id
        order.customer_id = order.customer_id or redemption.customer_id


def _complete(
    session: Session, tenant: Tenant, order: Order, at: datetime | None, locked: int | None = None
) -> dict[str, int] | None:
    """``locked``: the customer whose row lock the caller holds already. Returns the
    balances the credits left (``_earn``)."""
    if order.customer_id is None:
        order.state = IGNORED
        return None
    # One member's sales complete one at a time (as a retail sale's do): vouchers by rule
    # then count every earlier sale, and the lock order stays customer, then balances.
    if order.customer_id != locked:
        session.execute(LOCK_CUSTOMER, {"c": order.customer_id})
    bonus = bonus_for(tenant, order.total)
    balances = _earn(session, tenant, order, bonus)
    order.earned_points, order.earned_cashback = bonus.points, bonus.cashback
    order.state = COMPLETE
    order.completed_at = at or now()
    return balances


def _earn(session: Session, tenant: Tenant, order: Order, bonus: Bonus) -> dict[str, int] | None:
    """The order's credits (its customer locked); the customer's balances after them as
    the last credit told them (None: no credit, SQLite, or a concurrent change: read
    them). The last credit's statement sees the ones before it."""
    assert order.customer_id is not None
    source = Source(tenant.id, "order", str(order.id))
    balances = None
    for account, amount in ((POINTS, bonus.points), (CASHBACK, bonus.cashback)):
        if amount:
            acct = Account(order.program_id, order.customer_id, account)
            balances = credit(session, acct, amount, source, tenant=tenant, wallet=True).wallet
    return balances


def voucher_reference(original_id: str) -> str:
    """How the vouchers a sale used are marked, so its cancellation can release them."""
    return f"retail:{original_id}"


@dataclass
class Undone:
    """What a cancellation gave back or took back, for the door's answer."""

    points: int = 0  # earnings (and deal bonuses) taken back
    cashback: int = 0
    payments: list[LoyaltyPayment] = field(default_factory=list)  # refunded
    vouchers: list[Voucher] = field(default_factory=list)  # usable again


def cancel(session: Session, order: Order) -> Undone:
    """Undo a sale once, whichever door reported it: what it earned (what partial refunds
    have not already taken back, and deal bonuses) is taken back, the reward it used and
    its loyalty payments are given back, and its vouchers can be used again."""
    undone = Undone()
    if order.state == CANCELLED:
        return undone
    undone.points, undone.cashback = _reverse(
        session, order, order.earned_points, order.earned_cashback, "order-cancel", str(order.id)
    )
    undone.points += _reverse_deal_bonuses(session, order)
    for redemption in session.scalars(
        select(Redemption).where(Redemption.order_id == order.id, Redemption.status == "done")
    ):
        redemptions.cancel(session, redemption, even_if_complete=True)
    tenant = session.get_one(Tenant, order.tenant_id)
    for payment in session.scalars(
        select(LoyaltyPayment).where(
            LoyaltyPayment.tenant_id == order.tenant_id,
            LoyaltyPayment.reference == order.original_id,
            LoyaltyPayment.status == "done",
        )
    ).all():
        undone.payments.append(payments.cancel(session, tenant, payment.confirmation_code))
    undone.vouchers = vouchers.release(session, tenant, voucher_reference(order.original_id))
    order.state = CANCELLED
    order.cancelled_at = now()
    return undone


def _reverse_deal_bonuses(session: Session, order: Order) -> int:
    if order.customer_id is None:
        return 0
    taken = 0
    bonuses = session.scalars(
        select(LedgerEntry).where(
            LedgerEntry.program_id == order.program_id,
            LedgerEntry.source_type == "deal",
            LedgerEntry.source_id.startswith(f"{order.id}:"),
            LedgerEntry.kind == "earn",
        )
    ).all()
    for entry in bonuses:
        debit(
            session,
            Account(entry.program_id, entry.customer_id, entry.account),
            entry.amount,
            Source(order.tenant_id, "deal", entry.source_id),
            kind="reverse",
            allow_negative=True,
        )
        taken += entry.amount
    return taken


def _reverse(
    session: Session,
    order: Order,
    points_target: int,
    cashback_target: int,
    source_type: str,
    source_id: str,
) -> tuple[int, int]:
    """Bring the reversed totals up to the targets; returns what this call reversed."""
    points = points_target - order.reversed_points
    cashback = cashback_target - order.reversed_cashback
    if order.customer_id is not None:
        source = Source(order.tenant_id, source_type, source_id)
        for account, amount in ((POINTS, points), (CASHBACK, cashback)):
            if amount > 0:
                acct = Account(order.program_id, order.customer_id, account)
                debit(session, acct, amount, source, kind="reverse", allow_negative=True)
    order.reversed_points += max(points, 0)
    order.reversed_cashback += max(cashback, 0)
    return max(points, 0), max(cashback, 0)


def partial_cancel(
    session: Session, order: Order, *, cancel_key: str, value: int, products: list[dict[str, Any]]
) -> OrderRefund:
    """Refund ``value`` of the order; idempotent on ``cancel_key`` (another value → refused)."""
    existing = session.scalar(
        select(OrderRefund).where(
            OrderRefund.order_id == order.id, OrderRefund.cancel_key == cancel_key
        )
    )
    if existing is not None:
        if existing.value != value or existing.products != products:
            raise Conflict(
                "This CancelKey was already used with another refund.", code="CANCEL_KEY_REUSED"
            )
        return existing
    if value <= 0:
        raise InvalidInput("ValueToRefund must be positive.", code="INVALID_REFUND")
    if products and sum(int(p["value"]) for p in products) != value:
        raise InvalidInput(
            "The products' ValueToRefund must add up to ValueToRefund.", code="REFUND_MISMATCH"
        )
    if order.state == CANCELLED:
        raise Conflict("The order is cancelled.", code="ORDER_CANCELLED")
    if order.state != COMPLETE:
        raise Conflict(
            "Only a complete order is refunded in part; update a pending order's OrderTotal.",
            code="ORDER_NOT_COMPLETE",
        )
    if order.refunded + value > order.total:
        raise InvalidInput(
            "The refund exceeds what is left of the order.", code="REFUND_EXCEEDS_TOTAL"
        )
    refund = OrderRefund(
        tenant_id=order.tenant_id,
        order_id=order.id,
        cancel_key=cancel_key,
        value=value,
        products=products,
        created_at=now(),
    )
    session.add(refund)
    session.flush()
    order.refunded += value
    points, cashback = _reverse(
        session,
        order,
        proportional(order.earned_points, order.refunded, order.total),
        proportional(order.earned_cashback, order.refunded, order.total),
        "refund",
        str(refund.id),
    )
    refund.points, refund.cashback = points, cashback
    session.flush()  # the order's refunded total: reads after this in the transaction see it
    return refund


@dataclass(frozen=True)
class Spending:
    visits: int  # completed sales
    spent: int  # minor units paid with money, less partial refunds


def spending(session: Session, tenant_id: int, customer_id: int) -> Spending:
    """A member's completed, not cancelled, sales at one merchant and what they paid."""
    row = session.execute(
        select(
            func.count(Order.id), func.coalesce(func.sum(Order.total - Order.refunded), 0)
        ).where(
            Order.tenant_id == tenant_id,
            Order.customer_id == customer_id,
            Order.state == COMPLETE,
        )
    ).one()
    return Spending(int(row[0]), int(row[1]))
