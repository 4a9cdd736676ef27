"""A retail sale at the counter (seed 002's ``/transaction``), step by step: open it, apply
the deals the member and basket qualify for, use vouchers, take part of the bill in points
or credit, then close it. Closing records an order whose ``original_id`` is the transaction
id, so earning, cancellation and the POS door's view of the sale stay one.

The caller (a door) runs the steps in order inside one transaction, so a refusal at any
step (a used voucher, too few points) undoes the whole sale. Locks are always taken in the
same order (member row, voucher, balances; a transaction id already recorded ends the sale
at its first step), so concurrent sales cannot deadlock, and a single-use voucher is taken
once however many sales race for it.
"""

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from fidelia.events.deals import Applied, Basket, Line, applicable
from fidelia.kit import driver
from fidelia.kit.errors import Conflict, InvalidInput, NotFound
from fidelia.ledger.service import POINTS, Account, Source, credit
from fidelia.messaging import automations
from fidelia.models import Customer, Deal, LoyaltyPayment, Order, Tenant, Voucher, VoucherRule
from fidelia.models.order import CANCELLED
from fidelia.orders import service as orders
from fidelia.orders.service import voucher_reference
from fidelia.payments import service as payments
from fidelia.vouchers import service as vouchers

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def deal_key(deal_id: int) -> str:
    """How a deal is named on the wire (``appliedDeals[].key``)."""
    return f"DEAL-{deal_id}"


@dataclass
class UsedVoucher:
    voucher: Voucher
    discount: int  # minor units actually taken off the bill (positive)


@dataclass
class AppliedDeal:
    applied: Applied
    discount: int  # minor units actually taken off the bill (positive)


@dataclass
class Sale:
    tenant: Tenant
    transaction_id: str
    customer: Customer | None
    total: int  # minor units, after the POS's own discounts, before loyalty benefits
    lines: list[Line] = field(default_factory=list)
    deals: list[AppliedDeal] = field(default_factory=list)
    vouchers: list[UsedVoucher] = field(default_factory=list)
    payments: list[LoyaltyPayment] = field(default_factory=list)
    # Its order's id, taken from the sequence when the sale opened (PostgreSQL): the order
    # is then written with its confirmation code (which names it) in one statement.
    order_id: int | None = None

    @property
    def discount(self) -> int:
        return sum(d.discount for d in self.deals) + sum(v.discount for v in self.vouchers)

    @property
    def to_pay(self) -> int:
        """What the customer owes after the loyalty discounts."""
        return max(self.total - self.discount, 0)

    @property
    def paid_with_loyalty(self) -> int:
        return sum(p.amount for p in self.payments)

    @property
    def bonus_points(self) -> int:
        return sum(d.applied.bonus_points for d in self.deals)


@dataclass
class Receipt:
    sale: Sale
    order: Order
    confirmation_code: str
    earned_points: int  # the order's points plus the deals' bonus points
    earned_credit: int
    # The member's balances after the sale, as its last credit told them; None: read them.
    balances: dict[str, int] | None = None


@dataclass
class Reversal:
    order: Order
    points: int  # taken back now (0 when the sale was already cancelled)
    credit: int
    payments: list[LoyaltyPayment]  # loyalty payments given back now
    vouchers: list[Voucher]  # vouchers usable again
    already: bool


_EXISTING = select(Order.id).where(
    Order.tenant_id == bindparam("t"), Order.original_id == bindparam("o")
)
# The order's id to be, taken from its sequence with the check (PostgreSQL).
_NEXT_ID = func.nextval(func.pg_get_serial_sequence("orders", "id")).label("order_id")


def _opening(customer: bool, postgres: bool) -> Any:
    """``open_sale``'s one statement, built once: the check that the transaction id is no
    order yet; with a member, their row locked in it; on PostgreSQL, the order's id."""
    columns = [_EXISTING.scalar_subquery().label("existing")]
    if postgres:
        columns.append(_NEXT_ID)
    if not customer:
        return select(*columns)
    return (
        select(Customer.id, *columns)
        .where(Customer.id == bindparam("c"))
        .with_for_update(of=Customer)
    )


_OPENING = {(c, pg): _opening(c, pg) for c in (False, True) for pg in (False, True)}


def open_sale(
    session: Session,
    tenant: Tenant,
    transaction_id: str,
    customer: Customer | None,
    total: int,
    lines: list[Line],
) -> Sale:
    """Start a sale; refused when the transaction id is already an order at this merchant
    (say, one the POS door reported)."""
    if total < 0:
        raise InvalidInput("A sale's total cannot be negative.", code="INVALID_AMOUNT")
    # One member's sales run one at a time (the member's row locked here, and held until
    # the sale ends): their balances are always locked in the same order, and a burst of
    # sales cannot interleave payments and earnings. The check that the transaction id is
    # no order yet rides on the same statement (an existing one ends the sale at once).
    postgres = session.get_bind().dialect.name == "postgresql"
    params: dict[str, Any] = {"t": tenant.id, "o": transaction_id}
    if customer is not None:
        params["c"] = customer.id
    row = driver.execute(session, _OPENING[(customer is not None, postgres)], params).one()
    if row.existing is not None:
        raise Conflict(
            "This transactionId is already recorded at this merchant.",
            code="TRANSACTION_EXISTS",
        )
    order_id = row.order_id if postgres else None
    return Sale(tenant, transaction_id, customer, total, lines, order_id=order_id)


def apply_deals(
    session: Session, sale: Sale, only: set[str] | None = None, active: list[Deal] | None = None
) -> list[AppliedDeal]:
    """The deals this member and basket qualify for (``only``: just these keys, the ones the
    POS showed from a preview), each capped at what is left of the bill. ``active``: the
    merchant's active deals when the caller has them (``DealCache``), else read."""
    basket = Basket(sale.total, sale.lines)
    for found in applicable(session, sale.tenant, sale.customer, basket, active):
        if only is not None and deal_key(found.deal.id) not in only:
            continue
        sale.deals.append(AppliedDeal(found, min(found.discount, sale.to_pay)))
    return sale.deals


def use_voucher(session: Session, sale: Sale, code: str) -> UsedVoucher:
    """Take one use of a voucher (a conditional update: never more often than allowed);
    its value comes off the bill, capped at what is left."""
    voucher = vouchers.validate(
        session,
        sale.tenant,
        code,
        customer=sale.customer,
        reference=voucher_reference(sale.transaction_id),
    )
    used = UsedVoucher(voucher, min(voucher.value, sale.to_pay))
    sale.vouchers.append(used)
    return used


def pay(session: Session, sale: Sale, kind: str, amount: int) -> LoyaltyPayment:
    """Part of the bill in points or stored credit (a loyalty payment of the member)."""
    if sale.customer is None:
        raise InvalidInput("Paying with points or credit needs the member.", code="MEMBER_REQUIRED")
    if amount > 0 and sale.paid_with_loyalty + amount > sale.to_pay:
        raise InvalidInput(
            "Loyalty payments exceed what is left to pay.", code="PAYMENT_EXCEEDS_TOTAL"
        )
    payment = payments.pay(
        session, sale.tenant, sale.customer, kind, amount, reference=sale.transaction_id
    )
    sale.payments.append(payment)
    return payment


def link_payment(
    session: Session,
    sale: Sale,
    kind: str,
    amount: int,
    confirmation_code: str | None = None,
) -> LoyaltyPayment | None:
    """A loyalty payment the member already made for this bill (through the payment call)
    becomes part of the sale instead of being charged again: the one named by its
    confirmation code, else an unlinked one made for this transaction id with the same kind
    and amount. None when there is none to link (the caller then charges)."""
    if sale.customer is None:
        raise InvalidInput("Paying with points or credit needs the member.", code="MEMBER_REQUIRED")
    taken = {p.id for p in sale.payments}
    query = select(LoyaltyPayment).where(LoyaltyPayment.tenant_id == sale.tenant.id)
    if confirmation_code is not None:
        query = query.where(LoyaltyPayment.confirmation_code == confirmation_code.strip().upper())
    else:
        query = query.where(
            LoyaltyPayment.customer_id == sale.customer.id,
            LoyaltyPayment.reference == sale.transaction_id,
            LoyaltyPayment.kind == kind,
            LoyaltyPayment.amount == amount,
            LoyaltyPayment.status == "done",
        )
    # Locked: two sales listing one payment take it one after the other.
    candidates = [
        p
        for p in session.scalars(query.order_by(LoyaltyPayment.id).with_for_update())
        if p.id not in taken
    ]
    if confirmation_code is None:
        if not candidates:
            return None
        payment = candidates[0]
    else:
        if not candidates and session.scalar(query) is not None:
            raise InvalidInput(
                "This payment is listed twice in the transaction.", code="INVALID_PAYMENT"
            )
        if not candidates or candidates[0].customer_id != sale.customer.id:
            raise NotFound("No payment with this confirmation code.", code="PAYMENT_NOT_FOUND")
        payment = candidates[0]
        if payment.status != "done":
            raise Conflict("This payment was cancelled.", code="PAYMENT_CANCELLED")
        if payment.reference not in (None, sale.transaction_id):
            raise Conflict(
                f"This payment was made for transaction {payment.reference!r}.",
                code="PAYMENT_LINKED",
            )
        if payment.kind != kind or payment.amount != amount:
            raise InvalidInput(
                f"The payment {payment.confirmation_code} was {payment.amount} in "
                f"{payment.kind.upper()}, not {amount} in {kind.upper()}.",
                code="INVALID_PAYMENT",
            )
    if sale.paid_with_loyalty + payment.amount > sale.to_pay:
        raise InvalidInput(
            "Loyalty payments exceed what is left to pay.", code="PAYMENT_EXCEEDS_TOTAL"
        )
    payment.reference = sale.transaction_id
    sale.payments.append(payment)
    return payment


def close(
    session: Session,
    sale: Sale,
    *,
    placed_at: datetime | None = None,
    completed_at: datetime | None = None,
    details: dict[str, Any] | None = None,
    voucher_rules: list[VoucherRule] | None = None,
) -> Receipt:
    """Record the sale as a complete order: what was paid with money earns (points per
    currency unit and cashback), plus the deals' bonus points. ``voucher_rules``: the
    merchant's active ones when the caller has them (cached), else read."""
    earning_base = max(sale.to_pay - sale.paid_with_loyalty, 0)
    details = details or {}
    code = None
    if sale.order_id is not None:  # the order written with its code (no UPDATE after)
        code = confirmation_code(sale.order_id)
        details = {**details, "confirmation_code": code}
    recorded = orders.record(
        session,
        sale.tenant,
        orders.OrderData(
            original_id=sale.transaction_id,
            total=earning_base,
            customer=sale.customer,
            completed=True,
            placed_at=placed_at,
            completed_at=completed_at,
            details=details,
            after_sale=False,  # below, once the deals' bonus points are in
            customer_locked=True,  # by open_sale
            id=sale.order_id,
        ),
    )
    order, balances = recorded.order, recorded.balances
    bonus = 0
    if sale.customer is not None:
        for deal in sale.deals:
            points = deal.applied.bonus_points
            if points > 0:
                balances = credit(
                    session,
                    Account(sale.customer.program_id, sale.customer.id, POINTS),
                    points,
                    Source(sale.tenant.id, "deal", f"{order.id}:{deal.applied.deal.id}"),
                    wallet=True,
                ).wallet
                bonus += points
    if code is None or order.id != sale.order_id:
        # SQLite (no id before the insert), or the transaction id was an order already
        # (another door's, recorded meanwhile): the code names the order's own id.
        code = confirmation_code(order.id)
        order.details = {**order.details, "confirmation_code": code}
    session.flush()
    automations.after_sale(session, sale.tenant, sale.customer, order, voucher_rules)
    return Receipt(sale, order, code, order.earned_points + bonus, order.earned_cashback, balances)


def confirmation_code(order_id: int) -> str:
    """A sale's confirmation code: ``TX-<order id>-<random>``."""
    return f"TX-{order_id}-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(6))


def find_sale(session: Session, tenant: Tenant, confirmation_code: str) -> Order:
    """The order of a sale by its confirmation code (``TX-<order id>-<random>``)."""
    code = confirmation_code.strip().upper()
    parts = code.split("-")
    order = None
    if len(parts) == 3 and parts[0] == "TX" and parts[1].isdigit():
        order = session.scalar(
            select(Order)
            .where(Order.tenant_id == tenant.id, Order.id == int(parts[1]))
            .with_for_update()
        )
    if order is None or (order.details or {}).get("confirmation_code") != code:
        raise NotFound("No transaction with this confirmation code.", code="TRANSACTION_NOT_FOUND")
    return order


def cancel(session: Session, tenant: Tenant, order: Order) -> Reversal:
    """Undo a sale once (see ``orders.cancel``, which every door's cancellation runs)."""
    if order.state == CANCELLED:
        return Reversal(order, 0, 0, [], [], already=True)
    undone = orders.cancel(session, order)
    session.flush()
    return Reversal(
        order, undone.points, undone.cashback, undone.payments, undone.vouchers, already=False
    )
