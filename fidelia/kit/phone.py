"""Phone and WhatsApp numbers: parsed and normalised to E.164 at the door."""

from functools import lru_cache
from typing import Protocol

import phonenumbers
from babel import Locale

from fidelia.kit.errors import InvalidInput


class Localized(Protocol):
    """Whatever tells a number's default country: a merchant (its locale and currency)."""

    locale: str
    currency: str


CURRENCY_REGION = {"BRL": "BR", "CRC": "CR", "MXN": "MX", "ARS": "AR", "COP": "CO", "CLP": "CL"}


def normalize_e164(raw: str, default_region: str | None = None) -> str:
    """'+506 8888-7777', '50688887777' or '%2B50688887777' (decoded) -> '+50688887777'."""
    text = (raw or "").strip()
    if not text:
        raise InvalidInput("A WhatsApp number is required.", code="INVALID_PHONE")
    if not text.startswith("+") and default_region is None:
        text = "+" + text.lstrip("0")
    try:
        e164 = _e164(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(f"Unparseable phone number: {raw!r}", code="INVALID_PHONE") from exc
    if e164 is None:
        raise InvalidInput(f"Not a possible phone number: {raw!r}", code="INVALID_PHONE")
    return e164


@lru_cache(maxsize=8192)
def _e164(text: str, default_region: str | None) -> str | None:
    """``text`` in E.164, None when it cannot be a number; a parse error is raised (and,
    as ``lru_cache`` does with exceptions, not kept). Kept per text: phonenumbers' parse,
    check and format cost 30-50 µs, most of a balance lookup's own work (issue 14), and
    the numbers asked about are the same customers' again and again."""
    number = phonenumbers.parse(text, default_region)
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def region_of(tenant: Localized) -> str | None:
    """Where a phone number without '+' is read: the locale's territory, else the currency's."""
    return _region(tenant.locale, tenant.currency)


@lru_cache(maxsize=256)
def _region(locale: str, currency: str) -> str | None:
    try:
        territory = Locale.parse(locale.replace("-", "_")).territory
    except (ValueError, TypeError):
        territory = None
    return territory or CURRENCY_REGION.get(currency)


def phone_of(tenant: Localized, raw: str) -> str:
    """A merchant's customer's number in E.164 ('11987654321' at a pt_BR merchant -> +55...)."""
    return normalize_e164(raw, None if raw.strip().startswith("+") else region_of(tenant))
