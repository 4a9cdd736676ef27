"""Money is integer minor units plus the tenant's ISO 4217 currency."""

from decimal import Decimal, InvalidOperation

from babel.numbers import format_currency, get_currency_precision

from fidelia.kit.errors import InvalidInput

# The largest amount accepted anywhere, in minor units (10^15: ten trillion reais): far above
# any sale, small enough for a float (money_out) and a BIGINT, and for Decimal arithmetic.
MAX_MINOR = 10**15


def exponent(currency: str) -> int:
    return int(get_currency_precision(currency))


def too_large(value: Decimal, currency: str) -> bool:
    """Compared before scaling, so '1E+999999' is refused instead of overflowing Decimal."""
    return value.adjusted() > 15 or value.scaleb(exponent(currency)) > MAX_MINOR


def to_minor(amount: str | int | float | Decimal, currency: str) -> int:
    """'10.00' in BRL -> 1000. Refuses negatives, NaN and more decimals than the currency has."""
    try:
        value = Decimal(str(amount))
    except InvalidOperation as exc:
        raise InvalidInput(f"Not an amount: {amount!r}", code="INVALID_AMOUNT") from exc
    if not value.is_finite() or value < 0 or too_large(value, currency):
        raise InvalidInput(f"Not a valid amount: {amount!r}", code="INVALID_AMOUNT")
    scaled = value.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise InvalidInput(f"Too many decimals for {currency}: {amount!r}", code="INVALID_AMOUNT")
    return int(scaled)


def from_minor(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-exponent(currency))


def format_money(minor: int, currency: str, locale: str) -> str:
    """1199 BRL in pt_BR -> 'R$ 11,99'."""
    text = format_currency(from_minor(minor, currency), currency, locale=locale)
    return str(text).replace("\xa0", " ")
