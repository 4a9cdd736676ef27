"""Money is integer minor units plus the tenant's ISO 4217 currency."""

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Any

from babel.numbers import format_currency, get_currency_precision
from pydantic import BeforeValidator, WithJsonSchema

from fidelia.kit.errors import InvalidInput

# The largest amount accepted anywhere, in minor units (10^15: ten trillion reais): far above
# any sale, small enough for a float (money_out) and a BIGINT, and for Decimal arithmetic.
MAX_MINOR = 10**15


def exponent(currency: str) -> int:
    return int(get_currency_precision(currency))


def too_large(value: Decimal, currency: str) -> bool:
    """Compared before scaling, so '1E+999999' is refused instead of overflowing Decimal."""
    return value.adjusted() > 15 or value.scaleb(exponent(currency)) > MAX_MINOR


# The one grammar of an amount written as text, on every door: ASCII digits, optionally a
# point and more digits. No sign, exponent, thousands separator, underscore, space, or
# digits of other scripts ("1_000", "１０", "1e3", " 10.00 ", ".5" are all refused).
DECIMAL_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def decimal_of(raw: Any) -> Decimal:
    """An amount as a JSON integer, a JSON number, or a decimal string; ValueError for
    anything else (booleans are not numbers). Used before any door's own checks."""
    if isinstance(raw, bool):
        raise ValueError("an amount is a number or a decimal string, not a boolean")
    if isinstance(raw, Decimal):
        value = raw
    elif isinstance(raw, int):
        value = Decimal(raw)
    elif isinstance(raw, float):
        value = Decimal(repr(raw))  # the shortest text that reads back as this number
    elif isinstance(raw, str):
        if len(raw) > 40 or not DECIMAL_TEXT.fullmatch(raw):
            raise ValueError(f"not a plain decimal amount: {raw[:40]!r} (digits and a point)")
        value = Decimal(raw)
    else:
        raise ValueError("an amount is a number or a decimal string")
    if not value.is_finite():
        raise ValueError("an amount is a finite number")
    return value


# A pydantic field for decimal amounts: the strict reading above, documented as such.
DecimalIn = Annotated[
    Decimal,
    BeforeValidator(decimal_of),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"},
            ]
        }
    ),
]


def _not_bool(raw: Any) -> Any:
    if isinstance(raw, bool):
        raise ValueError("an amount is a number or a decimal string, not a boolean")
    return raw


# An amount kept as sent, for a door whose own code reports a bad amount (seed 000's
# MONTO_INVALIDO, seed 004's invalid_amount): ``to_minor`` judges it.
RawAmount = Annotated[
    str | int | float,
    BeforeValidator(_not_bool),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?$"},
            ]
        }
    ),
]


def to_minor(amount: str | int | float | Decimal, currency: str) -> int:
    """'10.00' in BRL -> 1000. Refuses anything ``decimal_of`` refuses, negatives, and more
    decimals than the currency has (never rounded)."""
    try:
        value = decimal_of(amount)
    except (ValueError, InvalidOperation) as exc:
        raise InvalidInput(f"Not an amount: {str(amount)[:40]!r}", code="INVALID_AMOUNT") from exc
    if value < 0 or too_large(value, currency):
        raise InvalidInput(f"Not a valid amount: {amount!r}", code="INVALID_AMOUNT")
    scaled = value.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise InvalidInput(f"Too many decimals for {currency}: {amount!r}", code="INVALID_AMOUNT")
    return int(scaled)


def from_minor(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-exponent(currency))


@lru_cache(maxsize=4096)  # Babel's formatting costs more than a POS order's other fields
def format_money(minor: int, currency: str, locale: str) -> str:
    """1199 BRL in pt_BR -> 'R$ 11,99'."""
    text = format_currency(from_minor(minor, currency), currency, locale=locale)
    return str(text).replace("\xa0", " ")
