"""Rewards (promociones): what customers buy with points."""

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Required, TypedDict, Unpack

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from fidelia.kit.errors import Conflict, InvalidInput, NotFound
from fidelia.kit.money import to_minor
from fidelia.models import Reward, Tenant

TYPES = ("custom", "fixed", "percent", "cashback", "product")
PRODUCT_MODES = ("percent", "fixed", "final_price", "gift")


@dataclass(frozen=True)
class ProductOptions:
    """What a POS needs to apply a product reward: its own product id, a name to show,
    how the discount works (``PRODUCT_MODES``), its value (a percentage for percent, a
    currency amount for fixed and final_price, none for gift) and the units per redemption."""

    external_product_id: str | None = None
    name: str | None = None
    mode: str | None = None
    value: str | None = None
    max_units: int | None = None

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.external_product_id, self.name, self.mode))


class RewardInput(TypedDict, total=False):
    """What a merchant gives for a reward (``title`` and ``points`` required): ``value`` is
    currency for fixed, product and cashback (its minimum use, default 1.00), a percentage
    for percent; a product reward takes ``product`` (its ``value`` stands for ``value``)."""

    title: Required[str]
    points: Required[int | None]
    description: str
    reward_type: str
    value: str | None
    min_purchase: str | None
    max_share_percent: int | None
    cumulative: bool
    stock: int | None
    product: ProductOptions | None


def create_reward(session: Session, tenant: Tenant, **given: Unpack[RewardInput]) -> Reward:
    """Cashback rewards cost what the cashier chooses, not ``points``. A product reward
    without a mode discounts a fixed amount."""
    reward = Reward(tenant_id=tenant.id, **_validated(tenant, given))
    session.add(reward)
    session.flush()
    return reward


def update_reward(
    session: Session, tenant: Tenant, reward_id: int, **given: Unpack[RewardInput]
) -> Reward:
    """Change a reward (disabled ones too), validated exactly as ``create_reward``. The row
    is changed in place: past redemptions keep pointing at it and keep the points and value
    they were taken with (stored on each redemption), so only future redemptions see the
    change. Stock is set as given (the conditional updates of redemptions queue on the row)."""
    reward = reward_of(session, tenant.id, reward_id)
    fields = _validated(tenant, given)
    session.execute(
        update(Reward).where(Reward.id == reward.id, Reward.tenant_id == tenant.id).values(**fields)
    )
    session.refresh(reward)
    return reward


def _validated(tenant: Tenant, given: RewardInput) -> dict[str, object]:
    """The reward's columns from what the merchant gave, or InvalidInput."""
    title, points = given["title"], given["points"]
    description = given.get("description", "")
    reward_type = given.get("reward_type", "custom")
    value, min_purchase = given.get("value"), given.get("min_purchase")
    max_share_percent, stock = given.get("max_share_percent"), given.get("stock")
    cumulative, product = given.get("cumulative", True), given.get("product")
    if not title.strip():
        raise InvalidInput("A reward needs a title.")
    if len(title.strip()) > 200:
        raise InvalidInput("A reward's title has at most 200 characters.")
    if len(description.strip()) > 1000:
        raise InvalidInput("A reward's description has at most 1000 characters.")
    if reward_type not in TYPES:
        raise InvalidInput(f"Reward type is one of {', '.join(TYPES)}.")
    if reward_type == "cashback":
        points = points or 0
    elif points is None or points <= 0:
        raise InvalidInput("A reward costs at least one point (--points).")
    if points is None or points < 0:
        raise InvalidInput("Points cannot be negative.")
    if points > 2_000_000_000:
        raise InvalidInput("Too many points.")
    if max_share_percent is not None and not 1 <= max_share_percent <= 100:
        raise InvalidInput("The maximum share of the purchase is a percentage from 1 to 100.")
    if stock is not None and not 0 <= stock <= 2_000_000_000:
        raise InvalidInput("Stock cannot be negative.")
    product = product or ProductOptions()
    if reward_type != "product" and (product.given or product.value or product.max_units):
        raise InvalidInput("Product options are only for product rewards (--type product).")
    mode = None
    if reward_type == "product":
        mode, value = _product_discount(product, value)
    minimum = to_minor(min_purchase, tenant.currency) if min_purchase else 0
    if minimum < 0:
        raise InvalidInput("The minimum purchase cannot be negative.")
    fields: dict[str, object] = {
        "title": title.strip(),
        "description": description.strip(),
        "points_required": points,
        "reward_type": reward_type,
        "value": _value(tenant, reward_type, value, mode),
        "min_purchase": minimum,
        "max_share_percent": max_share_percent,
        "cumulative": cumulative,
        "stock": stock,
        "external_product_id": None,
        "product_name": None,
        "product_discount_mode": None,
        "product_max_units": None,
    }
    if reward_type == "product":
        fields["external_product_id"] = _text(product.external_product_id, 120, "product id")
        fields["product_name"] = _text(product.name, 200, "product name")
        fields["product_discount_mode"] = mode
        fields["product_max_units"] = product.max_units or 1
    return fields


def _text(value: str | None, size: int, what: str) -> str | None:
    text = (value or "").strip()
    if len(text) > size:
        raise InvalidInput(f"The {what} has at most {size} characters.")
    return text or None


def _product_discount(product: ProductOptions, value: str | None) -> tuple[str, str | None]:
    """The product reward's mode and discount value (given once, by either option)."""
    if product.value is not None and value is not None:
        raise InvalidInput("Give the product discount once (--product-discount-value).")
    mode = (product.mode or "fixed").strip().lower().replace("-", "_")
    if mode not in PRODUCT_MODES:
        raise InvalidInput(f"The product discount mode is one of {', '.join(PRODUCT_MODES)}.")
    if product.max_units is not None and not 1 <= product.max_units <= 1000:
        raise InvalidInput("The units per redemption are from 1 to 1000.")
    if product.mode is not None and not (product.external_product_id or "").strip():
        raise InvalidInput("A product reward needs the POS's product id (--external-product-id).")
    value = product.value if product.value is not None else value
    if value is None and mode != "gift":
        raise InvalidInput(
            "A product reward needs its discount (--product-discount-value): the percentage, "
            "the amount off or the final price."
        )
    if mode == "gift":
        if value is not None and Decimal(_number(value)) != 0:
            raise InvalidInput("A gift is free: it takes no discount value.")
        return mode, None
    return mode, value


def _number(value: str) -> Decimal:
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidInput(f"Not a number: {value!r}") from exc
    if not number.is_finite():
        raise InvalidInput(f"Not a number: {value!r}")
    return number


def _value(tenant: Tenant, reward_type: str, value: str | None, mode: str | None = None) -> int:
    if reward_type == "percent" or mode == "percent":
        if value is None:
            raise InvalidInput("A percent reward needs --value (the percentage).")
        basis_points = parse_percent(value)
        if not 0 < basis_points <= 10_000:
            raise InvalidInput("A percentage is more than 0 and at most 100.")
        return basis_points
    if mode == "gift":
        return 0
    if mode == "final_price":
        if value is None:
            raise InvalidInput("A final-price product reward needs the price it sells for.")
        minor = to_minor(value, tenant.currency)
        if minor < 0:
            raise InvalidInput("The final price cannot be negative.")
        return minor
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


def amount_off(reward: Reward) -> int:
    """The discount a redemption is worth in minor units when it is known in advance (a
    fixed discount); 0 when it depends on the purchase or the product's price."""
    if reward.reward_type == "fixed":
        return reward.value
    if reward.reward_type == "product" and reward.product_discount_mode in (None, "fixed"):
        return reward.value
    return 0


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


def active_reward_in(rewards: list[Reward], tenant_id: int, reward_id: int) -> Reward:
    """``get_for_tenant`` over rewards already read (a catalog's active rewards, cached)."""
    for reward in rewards:
        if reward.id == reward_id and reward.tenant_id == tenant_id and reward.active:
            return reward
    raise NotFound(f"No reward {reward_id} at this merchant.", code="REWARD_NOT_FOUND")


def reward_of(session: Session, tenant_id: int, reward_id: int) -> Reward:
    """One of the merchant's rewards, disabled ones too (another merchant's: not found)."""
    reward = session.scalar(
        select(Reward).where(Reward.id == reward_id, Reward.tenant_id == tenant_id)
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


STATUSES = ("all", "active", "disabled")


def search(
    session: Session,
    tenant: Tenant,
    *,
    text: str = "",
    status: str = "all",
    page: int = 1,
    per_page: int = 20,
) -> Page:
    """Every reward the merchant configured (``status``: all, active or disabled), those
    whose title, description, product id or product name contain ``text``, by id."""
    if status not in STATUSES:
        raise InvalidInput(f"status is one of {', '.join(STATUSES)}.")
    query = select(Reward).where(Reward.tenant_id == tenant.id)
    if status != "all":
        query = query.where(Reward.active.is_(status == "active"))
    words = text.strip()[:100]
    if words:
        pattern = (
            "%" + words.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        query = query.where(
            or_(
                *(
                    func.lower(column).like(pattern, escape="\\")
                    for column in (
                        Reward.title,
                        Reward.description,
                        Reward.external_product_id,
                        Reward.product_name,
                    )
                )
            )
        )
    page = max(page, 1)
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
