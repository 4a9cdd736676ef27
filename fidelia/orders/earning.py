"""What an order earns: points per currency unit (rounded down) and cashback as a share
of the amount paid, both only from the merchant's minimum order value up."""

from dataclasses import dataclass

from fidelia.kit.money import exponent
from fidelia.models import Tenant


@dataclass(frozen=True)
class Bonus:
    points: int
    cashback: int  # minor units

    @property
    def any(self) -> bool:
        return self.points > 0 or self.cashback > 0


def bonus_for(tenant: Tenant, total: int) -> Bonus:
    if total <= 0 or total < tenant.min_order_value:
        return Bonus(0, 0)
    unit = 10 ** exponent(tenant.currency)
    points = total * tenant.earn_milli_points_per_unit // (1000 * unit)
    cashback = total * tenant.cashback_basis_points // 10_000
    return Bonus(points, cashback)


def proportional(earned: int, refunded_so_far: int, total: int) -> int:
    """Cumulative reversal after refunding ``refunded_so_far`` of ``total`` (half up):
    taking the difference of two cumulative figures means rounding never drifts."""
    if total <= 0:
        return earned
    return (2 * earned * refunded_so_far + total) // (2 * total)
