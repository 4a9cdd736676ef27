"""What an order earns (fidelia/orders/earning.py): points per currency unit rounded down,
cashback in basis points, nothing under the minimum, and refunds reversed in proportion."""

from fidelia.models import Tenant
from fidelia.orders.earning import Bonus, bonus_for, proportional


def merchant(currency: str = "USD", minimum: int = 0, milli: int = 1500, bp: int = 250) -> Tenant:
    return Tenant(
        currency=currency,
        min_order_value=minimum,
        earn_milli_points_per_unit=milli,
        cashback_basis_points=bp,
    )


def test_points_per_unit_round_down_and_cashback_is_a_share():
    # 1.5 points per dollar: 33.99 USD -> 50.985 points -> 50; 2.5 % of 3399 -> 84.975 -> 84
    assert bonus_for(merchant(), 3399) == Bonus(50, 84)
    assert bonus_for(merchant(), 100) == Bonus(1, 2)
    assert bonus_for(merchant(), 66) == Bonus(0, 1)


def test_the_currency_exponent_sets_the_unit():
    assert bonus_for(merchant("JPY"), 3399) == Bonus(5098, 84)  # yen have no minor unit
    assert bonus_for(merchant("BHD"), 3399) == Bonus(5, 84)  # three decimals
    assert bonus_for(merchant("JPY", milli=1000, bp=10_000), 1) == Bonus(1, 1)  # one yen


def test_nothing_under_the_minimum_order_value_or_for_nothing():
    assert bonus_for(merchant(minimum=1000), 999) == Bonus(0, 0)
    assert bonus_for(merchant(minimum=1000), 1000) == Bonus(15, 25)
    assert bonus_for(merchant(), 0) == Bonus(0, 0)
    assert bonus_for(merchant(minimum=-5), -100) == Bonus(0, 0)


def test_a_bonus_is_any_when_either_part_is_positive():
    assert Bonus(1, 0).any and Bonus(0, 1).any
    assert not Bonus(0, 0).any and not Bonus(-1, 0).any and not Bonus(0, -1).any


def test_reversals_are_proportional_and_rounded_half_up():
    assert proportional(10, 300, 1000) == 3
    assert proportional(10, 350, 1000) == 4  # 3.5 -> 4
    assert proportional(10, 349, 1000) == 3
    assert proportional(10, 1000, 1000) == 10
    assert proportional(7, 0, 1000) == 0
    assert proportional(10, 0, 0) == 10  # nothing to share: all of it
    assert proportional(10, 5, -1) == 10
    assert proportional(10, 0, 1) == 0  # the smallest order shares too
