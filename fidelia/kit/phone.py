"""WhatsApp numbers: parsed and normalised to E.164 at the door."""

import phonenumbers

from fidelia.kit.errors import InvalidInput


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
