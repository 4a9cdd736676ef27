"""Vouchers by rule: "a R$ 10 voucher every R$ 200 spent", "a gift after the 5th purchase".

A rule counts the customer's completed sales at the merchant from the rule's creation on
(net of partial refunds). When a sale takes the count past one or more thresholds, one
voucher per threshold is issued, with the campaign ``rule-<id>-<n>``: the vouchers'
unique (customer, campaign) index makes each threshold give once, even when two sales of
the customer race (their sales also run one at a time: the order service locks the
customer row before it credits). A refund that drops the count below a threshold takes
nothing back, and crossing it again gives nothing more. The ERP never sees these vouchers:
they are validated by hand at the counter (panel, `fidelia voucher validate`).
"""

from datetime import timedelta

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.errors import Conflict, InvalidInput
from fidelia.kit.rowcache import PerMerchantRows
from fidelia.models import Customer, Order, Tenant, Voucher, VoucherRule
from fidelia.models.order import COMPLETE
from fidelia.vouchers.service import issue

KINDS = ("spend", "purchases")
# A sale never issues more than this many vouchers of one rule (a huge sale against a tiny
# threshold would otherwise flood the customer); the thresholds skipped are not owed.
MAX_PER_SALE = 10


def create_rule(
    session: Session,
    tenant: Tenant,
    *,
    kind: str,
    threshold: int,
    value: int,
    benefit: str = "",
    valid_days: int = 30,
    repeat: bool = True,
) -> VoucherRule:
    if kind not in KINDS:
        raise InvalidInput(f"A voucher rule counts {' or '.join(KINDS)}.")
    if threshold <= 0:
        raise InvalidInput("A voucher rule's threshold must be positive.")
    if value < 0:
        raise InvalidInput("A voucher's value cannot be negative.")
    if value == 0 and not benefit.strip():
        raise InvalidInput("Give the voucher a value or a benefit in words.")
    if not 0 <= valid_days <= 3650:
        raise InvalidInput("valid_days is between 0 (no end) and 3650.")
    rule = VoucherRule(
        tenant_id=tenant.id,
        kind=kind,
        threshold=threshold,
        value=value,
        benefit=benefit.strip()[:300],
        valid_days=valid_days,
        repeat=repeat,
        active=True,
        created_at=now(),
    )
    session.add(rule)
    session.flush()
    return rule


_RULES = select(VoucherRule).where(VoucherRule.tenant_id == bindparam("t")).order_by(VoucherRule.id)
_ACTIVE_RULES = _RULES.where(VoucherRule.active.is_(True))  # every sale reads these


def rules_of(session: Session, tenant: Tenant, active_only: bool = False) -> list[VoucherRule]:
    query = _ACTIVE_RULES if active_only else _RULES
    return list(session.scalars(query, {"t": tenant.id}))


def active_rules(session: Session, tenant: Tenant) -> list[VoucherRule]:
    return rules_of(session, tenant, active_only=True)


class RuleCache(PerMerchantRows[Tenant, VoucherRule]):
    """A merchant's active rules (``State.rules``), kept ``ttl`` seconds like every
    merchant setting, so a sale does not read them every time: a rule created, changed or
    switched off counts for the sales from at most ``ttl`` seconds later."""

    def __init__(self, ttl: float) -> None:
        super().__init__(ttl, VoucherRule, active_rules)


def evaluate(
    session: Session,
    tenant: Tenant,
    customer: Customer,
    order: Order,
    active: list[VoucherRule] | None = None,
) -> list[Voucher]:
    """Issue the vouchers this completed sale earned; the ones issued now are returned.
    ``active``: the merchant's active rules when the caller has them (``RuleCache``)."""
    issued: list[Voucher] = []
    if order.state != COMPLETE:
        return issued
    if active is None:
        active = rules_of(session, tenant, active_only=True)
    for rule in active:
        if order.created_at < rule.created_at:
            continue  # a sale opened before the rule existed does not count
        visits, spent = session.execute(
            select(
                func.count(Order.id), func.coalesce(func.sum(Order.total - Order.refunded), 0)
            ).where(
                Order.tenant_id == tenant.id,
                Order.customer_id == customer.id,
                Order.state == COMPLETE,
                Order.created_at >= rule.created_at,
            )
        ).one()
        after = int(spent) if rule.kind == "spend" else int(visits)
        before = after - (order.total - order.refunded if rule.kind == "spend" else 1)
        first = max(before, 0) // rule.threshold + 1
        last = after // rule.threshold
        if not rule.repeat:
            last = min(last, 1)
        for n in range(first, min(last, first + MAX_PER_SALE - 1) + 1):
            try:
                voucher = issue(
                    session,
                    tenant,
                    customer=customer,
                    campaign=f"rule-{rule.id}-{n}",
                    kind="rule",
                    value=rule.value,
                    benefit=rule.benefit,
                    valid_from=now(),
                    valid_until=now() + timedelta(days=rule.valid_days)
                    if rule.valid_days
                    else None,
                    max_uses=1,
                )
            except Conflict:
                continue  # this threshold already gave its voucher
            issued.append(voucher)
    return issued
