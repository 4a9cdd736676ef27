"""Merchant settings: what `fidelia tenant set` accepts, refuses and converts."""

import pytest

from fidelia.kit.errors import InvalidInput
from fidelia.tenants.service import get_by_slug, set_setting, settings_of
from tests.support.helpers import make_tenant


def setting(db, key, value):
    with db.session() as session:
        set_setting(session, "cafe", key, value)
    with db.session(readonly=True) as session:
        return settings_of(get_by_slug(session, "cafe"))


def test_bot_number_is_a_phone_number_or_none(db):
    make_tenant(db)
    assert setting(db, "bot_number", "+506 0000-0001")["bot_number"] == "50600000001"
    for bad in ("abc", "12", "+1 (555) abc"):
        with pytest.raises(InvalidInput):
            setting(db, "bot_number", bad)
    assert setting(db, "bot_number", "none")["bot_number"] is None


def test_changing_currency_keeps_decimal_amounts(db):
    make_tenant(db, min_purchase="12", point_value="0.10")
    after = setting(db, "currency", "BRL")
    assert after["min_purchase"] == "12.00"
    assert after["point_value"] == "0.10"  # at least the currency's decimals
    setting(db, "min_purchase", "12.50")
    with pytest.raises(InvalidInput):  # JPY has no cents: refused, nothing changed
        setting(db, "currency", "JPY")
    assert setting(db, "locale", "es")["currency"] == "BRL"


def test_rates_and_flags(db):
    make_tenant(db)
    assert setting(db, "earn_points_per_unit", "1.5")["earn_points_per_unit"] == "1.5"
    assert setting(db, "cashback_percent", "2.5")["cashback_percent"] == "2.5"
    assert setting(db, "should_validate_customer", "true")["should_validate_customer"] is True
    assert (
        setting(db, "cors_origins", "https://pos.example, http://localhost:5173")["cors_origins"]
        == "https://pos.example,http://localhost:5173"
    )
    for key, bad in (
        ("earn_points_per_unit", "-1"),
        ("cashback_percent", "abc"),
        ("sandbox", "maybe"),
        ("cors_origins", "pos.example"),
        ("pin_lifetime_minutes", "0"),
        ("nope", "1"),
    ):
        with pytest.raises(InvalidInput):
            setting(db, key, bad)
