"""Deals: automatic promotions applied to a transaction when its member is in the deal's
segment (or any member, without one) and the basket meets the deal's conditions."""

from dataclasses import dataclass, field

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from fidelia.events.segments import member_in
from fidelia.kit.clock import now
from fidelia.kit.errors import InvalidInput, NotFound
from fidelia.kit.rowcache import PerMerchantRows
from fidelia.models import Customer, Deal, Segment, Tenant

TYPES = ("percent", "fixed", "points")


@dataclass(frozen=True)
class Line:
    code: str | None
    department: str | None
    amount: int  # net, minor units


@dataclass(frozen=True)
class Basket:
    total: int
    lines: list[Line] = field(default_factory=list)


@dataclass(frozen=True)
class Applied:
    deal: Deal
    discount: int  # minor units (positive; the retail door shows it negative)
    bonus_points: int


def create_deal(
    session: Session,
    tenant: Tenant,
    *,
    name: str,
    discount_type: str,
    value: int,
    segment_id: int | None = None,
    min_total: int = 0,
    item_code: str | None = None,
    department_code: str | None = None,
) -> Deal:
    if not name.strip() or len(name.strip()) > 120:
        raise InvalidInput("A deal needs a name (at most 120 characters).")
    if discount_type not in TYPES:
        raise InvalidInput(f"A deal's type is one of {', '.join(TYPES)}.")
    if min_total < 0:
        raise InvalidInput("A deal's minimum total cannot be negative.")
    for code in (item_code, department_code):
        if code is not None and len(code) > 80:
            raise InvalidInput("An item or department code has at most 80 characters.")
    if value <= 0 or (discount_type == "percent" and value > 10_000):
        raise InvalidInput("A deal's value is positive (a percentage at most 100).")
    if segment_id is not None:
        segment = session.get(Segment, segment_id)
        if segment is None or segment.tenant_id != tenant.id:
            raise InvalidInput(f"No segment {segment_id} at this merchant.")
        if not segment.active:
            raise InvalidInput(f"Segment {segment_id} is disabled.")
    deal = Deal(
        tenant_id=tenant.id,
        name=name.strip(),
        discount_type=discount_type,
        value=value,
        segment_id=segment_id,
        min_total=min_total,
        item_code=item_code,
        department_code=department_code,
    )
    session.add(deal)
    session.flush()
    return deal


def deals_of(session: Session, tenant: Tenant) -> list[Deal]:
    """The merchant's deals, disabled ones too, by id."""
    return list(session.scalars(select(Deal).where(Deal.tenant_id == tenant.id).order_by(Deal.id)))


def set_deal_active(session: Session, tenant: Tenant, deal_id: int, active: bool) -> Deal:
    """Disable (or enable again) a deal: a disabled deal applies to no transaction."""
    deal = session.scalar(select(Deal).where(Deal.id == deal_id, Deal.tenant_id == tenant.id))
    if deal is None:
        raise NotFound(f"No deal {deal_id} at this merchant.", code="DEAL_NOT_FOUND")
    deal.active = active
    session.flush()
    return deal


def _eligible_amount(deal: Deal, basket: Basket) -> int | None:
    """The part of the basket the deal acts on; None when the basket does not qualify."""
    if basket.total < deal.min_total:
        return None
    if deal.item_code is None and deal.department_code is None:
        return basket.total
    matching = [
        line
        for line in basket.lines
        if (deal.item_code is None or line.code == deal.item_code)
        and (deal.department_code is None or line.department == deal.department_code)
    ]
    return sum(line.amount for line in matching) if matching else None


_ACTIVE = (
    select(Deal).where(Deal.tenant_id == bindparam("t"), Deal.active.is_(True)).order_by(Deal.id)
)  # built once: every retail sale reads these (or finds them in DealCache)


def active_deals(session: Session, tenant: Tenant) -> list[Deal]:
    return list(session.scalars(_ACTIVE, {"t": tenant.id}))


class DealCache(PerMerchantRows[Tenant, Deal]):
    """A merchant's active deals (``State.deals``), kept ``ttl`` seconds, like the voucher
    rules' ``RuleCache``: a deal created, changed or switched off counts for the sales from
    at most ``ttl`` seconds later (its dates and segment are still checked per sale)."""

    def __init__(self, ttl: float) -> None:
        super().__init__(ttl, Deal, active_deals)


def open_to(
    session: Session, tenant: Tenant, customer: Customer | None, active: list[Deal] | None = None
) -> list[Deal]:
    """Deals in force now for this member (their segment, or none), whatever the basket.
    ``active``: the merchant's active deals when the caller has them (``DealCache``)."""
    at = now()
    deals = active_deals(session, tenant) if active is None else active
    found = []
    for deal in deals:
        if (deal.valid_from and at < deal.valid_from) or (
            deal.valid_until and at >= deal.valid_until
        ):
            continue
        if deal.segment_id is not None:
            segment = session.get(Segment, deal.segment_id)
            if customer is None or segment is None or not member_in(session, segment, customer):
                continue
        found.append(deal)
    return found


def applicable(
    session: Session,
    tenant: Tenant,
    customer: Customer | None,
    basket: Basket,
    active: list[Deal] | None = None,
) -> list[Applied]:
    applied = []
    for deal in open_to(session, tenant, customer, active):
        amount = _eligible_amount(deal, basket)
        if amount is None:
            continue
        if deal.discount_type == "percent":
            applied.append(Applied(deal, amount * deal.value // 10_000, 0))
        elif deal.discount_type == "fixed":
            applied.append(Applied(deal, min(deal.value, amount), 0))
        elif customer is not None:
            applied.append(Applied(deal, 0, deal.value))
    return applied
