"""Rewards (promociones): what customers buy with points."""

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from fidelia.kit.errors import Conflict, InvalidInput, NotFound
from fidelia.kit.money import to_minor
from fidelia.models import Reward, Tenant

TYPES = ("custom", "fixed", "percent", "cashback", "product")


def create_reward(
    session: Session,
    tenant: Tenant,
    *,
    title: str,
    points: int | None,
    description: str = "",
    reward_type: str = "custom",
    value: str | None = None,
    min_purchase: str | None = None,
    max_share_percent: int | None = None,
    cumulative: bool = True,
    stock: int | None = None,
) -> Reward:
    """``value``: currency for fixed, product and cashback (its minimum use, default 1.00),
    a percentage for percent. Cashback rewards cost what the cashier chooses, not ``points``."""
    if not title.strip():
        raise InvalidInput("A reward needs a title.")
    if reward_type not in TYPES:
        raise InvalidInput(f"Reward type is one of {', '.join(TYPES)}.")
    if reward_type == "cashback":
        points = points or 0
    elif points is None or points <= 0:
        raise InvalidInput("A reward costs at least one point (--points).")
    if points is None or points < 0:
        raise InvalidInput("Points cannot be negative.")
    if max_share_percent is not None and not 1 <= max_share_percent <= 100:
        raise InvalidInput("The maximum share of the purchase is a percentage from 1 to 100.")
    if stock is not None and stock < 0:
        raise InvalidInput("Stock cannot be negative.")
    reward = Reward(
        tenant_id=tenant.id,
        title=title.strip(),
        description=description.strip(),
        points_required=points,
        reward_type=reward_type,
        value=_value(tenant, reward_type, value),
        min_purchase=to_minor(min_purchase, tenant.currency) if min_purchase else 0,
        max_share_percent=max_share_percent,
        cumulative=cumulative,
        stock=stock,
    )
    session.add(reward)
    session.flush()
    return reward


def _value(tenant: Tenant, reward_type: str, value: str | None) -> int:
    if reward_type == "percent":
        if value is None:
            raise InvalidInput("A percent reward needs --value (the percentage).")
        basis_points = parse_percent(value)
        if not 0 < basis_points <= 10_000:
            raise InvalidInput("A percentage is more than 0 and at most 100.")
        return basis_points
    if reward_type in ("fixed", "product"):
        if value is None:
            raise InvalidInput(f"A {reward_type} reward needs --value (the discount).")
        minor = to_minor(value, tenant.currency)
        if minor <= 0:
            raise InvalidInput("The discount must be positive.")
        return minor
    if reward_type == "cashback":
        return to_minor(value or "1", tenant.currency)
    return to_minor(value, tenant.currency) if value else 0


def parse_percent(value: str) -> int:
    """'12.5' -> 1250 basis points (at most two decimals)."""
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidInput(f"Not a percentage: {value!r}") from exc
    scaled = number.scaleb(2)
    if not number.is_finite() or scaled != scaled.to_integral_value():
        raise InvalidInput(f"A percentage has at most two decimals: {value!r}")
    return int(scaled)


def active_rewards(session: Session, tenant_ids: list[int]) -> list[Reward]:
    return list(
        session.scalars(
            select(Reward)
            .where(Reward.tenant_id.in_(tenant_ids), Reward.active.is_(True))
            .order_by(Reward.points_required, Reward.id)
        )
    )


def get_for_tenant(session: Session, tenant_id: int, reward_id: int) -> Reward:
    reward = session.scalar(
        select(Reward).where(Reward.id == reward_id, Reward.tenant_id == tenant_id, Reward.active)
    )
    if reward is None:
        raise NotFound(f"No reward {reward_id} at this merchant.", code="REWARD_NOT_FOUND")
    return reward


def next_reward(rewards: list[Reward], points: int) -> tuple[Reward, int] | None:
    """What to show next: the most valuable reward the balance already covers (0 missing),
    else the cheapest one with the points still missing. None without rewards."""
    affordable = [r for r in rewards if r.points_required <= points]
    if affordable:
        return max(affordable, key=lambda r: (r.points_required, -r.id)), 0
    if rewards:
        cheapest = min(rewards, key=lambda r: (r.points_required, r.id))
        return cheapest, cheapest.points_required - points
    return None


@dataclass(frozen=True)
class Page:
    items: list[Reward]
    total: int


def listing(
    session: Session,
    tenant: Tenant,
    *,
    category_id: int | None = None,
    in_stock: bool | None = None,
    page: int = 1,
    per_page: int = 20,
) -> Page:
    """The merchant's active rewards by id; ``in_stock``: only those that can still be
    taken (no stock limit, or units left), or only the sold-out ones."""
    query = select(Reward).where(Reward.tenant_id == tenant.id, Reward.active.is_(True))
    if category_id is not None:
        query = query.where(Reward.category_id == category_id)
    if in_stock is True:
        query = query.where(or_(Reward.stock.is_(None), Reward.stock > 0))
    elif in_stock is False:
        query = query.where(Reward.stock == 0)
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    items = session.scalars(query.order_by(Reward.id).offset((page - 1) * per_page).limit(per_page))
    return Page(list(items), total)


def set_stock(session: Session, reward: Reward, stock: int | None) -> int | None:
    """Set the units left (None: no limit)."""
    if stock is not None and stock < 0:
        raise InvalidInput("Stock cannot be negative.", code="INVALID_STOCK")
    session.execute(update(Reward).where(Reward.id == reward.id).values(stock=stock))
    session.refresh(reward)
    return reward.stock


def adjust_stock(session: Session, reward: Reward, change: int) -> int:
    """Add ``change`` units (negative: take them) with a conditional update, so concurrent
    adjustments queue on the row and one that would go below zero is refused, not applied."""
    if reward.stock is None:
        raise Conflict(
            "This reward has no stock limit; set one with a stock value first.",
            code="STOCK_NOT_TRACKED",
        )
    after = session.execute(
        update(Reward)
        .where(Reward.id == reward.id, Reward.stock.is_not(None), Reward.stock + change >= 0)
        .values(stock=Reward.stock + change)
        .returning(Reward.stock)
    ).scalar_one_or_none()
    if after is None:
        session.refresh(reward)
        raise Conflict(
            f"Not enough stock: {reward.stock} left, adjustment {change}.", code="OUT_OF_STOCK"
        )
    session.refresh(reward)
    return int(after)


def all_rewards(session: Session, tenant: Tenant) -> list[Reward]:
    """Every reward the merchant configured, disabled ones too, by id."""
    return list(
        session.scalars(select(Reward).where(Reward.tenant_id == tenant.id).order_by(Reward.id))
    )


def set_active(session: Session, tenant: Tenant, reward_id: int, active: bool) -> Reward:
    """Disable (or enable again) a reward: a disabled reward is no longer offered or
    redeemable; past redemptions keep pointing at it."""
    reward = session.scalar(
        select(Reward).where(Reward.id == reward_id, Reward.tenant_id == tenant.id)
    )
    if reward is None:
        raise NotFound("No such reward at this merchant.", code="REWARD_NOT_FOUND")
    reward.active = active
    session.flush()
    return reward
