"""What a point is worth at a merchant (its ``point_value`` setting, kept in thousandths of
a minor unit): the one conversion between points and money, for every rule that needs it
(earning, eligibility, redemptions, loyalty payments)."""

from fidelia.models import Tenant


def points_for_value(tenant: Tenant, value: int) -> int:
    """Points that buy ``value`` minor units at the merchant's point value (rounded up)."""
    if tenant.point_value_milli_minor <= 0:
        return 0
    return -(-value * 1000 // tenant.point_value_milli_minor)


def value_of_points(tenant: Tenant, points: int) -> int:
    return max(points, 0) * tenant.point_value_milli_minor // 1000
