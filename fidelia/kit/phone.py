"""Phone and WhatsApp numbers: parsed and normalised to E.164 at the door."""

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
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput(f"Unparseable phone number: {raw!r}", code="INVALID_PHONE") from exc
    if not phonenumbers.is_possible_number(number):
        raise InvalidInput(f"Not a possible phone number: {raw!r}", code="INVALID_PHONE")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def region_of(tenant: Localized) -> str | None:
    """Where a phone number without '+' is read: the locale's territory, else the currency's."""
    try:
        territory = Locale.parse(tenant.locale.replace("-", "_")).territory
    except (ValueError, TypeError):
        territory = None
    return territory or CURRENCY_REGION.get(tenant.currency)


def phone_of(tenant: Localized, raw: str) -> str:
    """A merchant's customer's number in E.164 ('11987654321' at a pt_BR merchant -> +55...)."""
    return normalize_e164(raw, None if raw.strip().startswith("+") else region_of(tenant))
