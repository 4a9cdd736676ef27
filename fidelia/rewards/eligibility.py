"""Which rewards a customer can use on this purchase, and why not (seed 001's
``CanUse`` / ``CannotUseReason``). Every configured reward is evaluated."""

from dataclasses import dataclass

from fidelia.kit.money import MAX_MINOR
from fidelia.models import Reward, Tenant
from fidelia.tenants.point_value import value_of_points

# CannotUseReason
OK, NO_POINTS, MIN_VALUE, NO_CASHBACK, NO_CUSTOMER = 0, 1, 2, 3, 4
VALUE_EXCEEDS, MIN_PERCENT, NOT_ENROLLED, NOT_COMBINABLE = 5, 6, 7, 8
NO_PRODUCT, PRODUCT_LIMIT, PRODUCT_CHECKOUT_ONLY, PRODUCT_MISCONFIGURED = 9, 10, 11, 12


@dataclass(frozen=True)
class Wallet:
    points: int
    cashback: int  # minor units in the cashback account

    @property
    def in_debt(self) -> bool:
        return self.points < 0 or self.cashback < 0

    def spendable(self, tenant: Tenant) -> int:
        """Money a cashback reward can use: the cashback account plus points at their value
        (nothing while either account is negative: a debt blocks redemptions)."""
        if self.in_debt:
            return 0
        return self.cashback + value_of_points(tenant, self.points)


@dataclass(frozen=True)
class Offer:
    reward: Reward
    reason: int
    max_cashback: int  # for cashback rewards, minor units

    @property
    def can_use(self) -> bool:
        return self.reason == OK


def max_cashback(
    tenant: Tenant, reward: Reward, wallet: Wallet, purchase: int, discount: int
) -> int:
    cap = min(wallet.spendable(tenant), max(purchase - discount, 0))
    if reward.max_share_percent is not None:
        cap = min(cap, purchase * reward.max_share_percent // 100)
    return max(cap, 0)


def reward_value(reward: Reward, purchase: int) -> int:
    """The discount a reward gives on ``purchase``, in minor units."""
    if reward.reward_type == "percent":
        return purchase * reward.value // 10_000
    return reward.value


def evaluate(
    tenant: Tenant,
    reward: Reward,
    wallet: Wallet | None,
    purchase: int,
    discount: int,
) -> Offer:
    if wallet is None:
        return Offer(reward, NO_CUSTOMER, 0)
    cap = (
        max_cashback(tenant, reward, wallet, purchase, discount)
        if reward.reward_type == "cashback"
        else 0
    )
    if reward.reward_type == "product":
        # The POS adds the product as a line of its own, at its own price: the purchase
        # so far does not bound the discount, so only these rules apply.
        if not reward.external_product_id:
            return Offer(reward, PRODUCT_MISCONFIGURED, 0)
        if reward.stock is not None and reward.stock <= 0:
            return Offer(reward, PRODUCT_LIMIT, 0)
    if discount > 0 and not reward.cumulative:
        return Offer(reward, NOT_COMBINABLE, cap)
    if purchase < reward.min_purchase:
        return Offer(reward, MIN_VALUE, cap)
    if reward.reward_type == "cashback":
        minimum = max(reward.value, 1)
        return Offer(reward, OK if cap >= minimum else NO_CASHBACK, cap)
    if reward.reward_type != "product":
        value = reward_value(reward, purchase)
        share = reward.max_share_percent
        if share is not None and value * 100 > purchase * share:
            return Offer(reward, MIN_PERCENT, 0)
        if reward.reward_type == "fixed" and value > purchase - discount:
            return Offer(reward, VALUE_EXCEEDS, 0)
    if wallet.points < reward.points_required or wallet.in_debt:
        return Offer(reward, NO_POINTS, 0)
    return Offer(reward, OK, 0)


def at_counter(tenant: Tenant, reward: Reward, wallet: Wallet, purchase: int | None) -> Offer:
    """The panel's counter: the purchase is known when the cashier typed it; otherwise only
    what the customer holds is checked (the purchase's own rules are the POS's to apply),
    as if the purchase were big enough for any reward."""
    return evaluate(tenant, reward, wallet, MAX_MINOR if purchase is None else purchase, 0)
