"""Where the rest of Fidelia hears about Bling sales."""

from sqlalchemy.orm import Session

from fidelia.models import Customer, Order, Tenant


def sale_earned(session: Session, tenant: Tenant, customer: Customer, order: Order) -> None:
    """Called once, in the transaction that credited it, when a Bling sale has just earned
    (``order.earned_points`` / ``order.earned_cashback`` are set, ``order.original_id`` is
    ``bling:<Bling order id>``). Not called again for redeliveries, reconciliation or a
    second import of the same sale.

    A placeholder for now: the automatic customer messages (balance, benefit, repurchase)
    will be enqueued here, through the outbox, so they commit or roll back with the sale.
    Must not do I/O itself and must only ``flush()``.
    """
