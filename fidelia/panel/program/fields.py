"""The Program form, drawn from tenants.setting_help.SETTING_HELP (the catalogue ``tenant set``
uses): every setting is a field with its unit and help text; this file only adds a label,
the group it is shown in, and the kind of input. A setting added to the catalogue appears in
the form by itself (under "Other"); the tests ask for its label and translations."""

from dataclasses import dataclass

from fidelia.panel.i18n import LOCALES, N_, NAMES
from fidelia.tenants.setting_help import SETTING_HELP

GROUPS: list[tuple[str, tuple[str, ...]]] = [
    (N_("Basics"), ("currency", "timezone", "locale")),
    (
        N_("Sale PINs and the WhatsApp bot"),
        (
            "min_purchase",
            "points_per_pin",
            "pin_lifetime_minutes",
            "verification_window_minutes",
            "bot_number",
        ),
    ),
    (
        N_("Points and cashback on orders"),
        (
            "earn_points_per_unit",
            "cashback_percent",
            "min_order_value",
            "point_value",
            "retail_default_payment_type",
        ),
    ),
    (N_("Birthday gift"), ("birthday_gift_value", "birthday_gift_days")),
    (N_("Point of sale"), ("should_validate_customer", "sandbox", "cors_origins")),
    (
        N_("Validity and messages"),
        (
            "points_validity_days",
            "expiry_reminder_days",
            "message_benefit_earned",
            "message_voucher_issued",
            "message_points_expiring",
            "message_come_back",
            "come_back_days",
            "message_cap",
            "message_cap_days",
        ),
    ),
]
OTHER = N_("Other")

LABELS = {
    "currency": N_("Currency"),
    "timezone": N_("Time zone"),
    "locale": N_("Language"),
    "min_purchase": N_("Minimum purchase for a PIN"),
    "bot_number": N_("Own WhatsApp bot number"),
    "pin_lifetime_minutes": N_("PIN lifetime"),
    "points_per_pin": N_("Points per PIN"),
    "verification_window_minutes": N_("Redemption window after a visit"),
    "birthday_gift_days": N_("Birthday gift validity"),
    "earn_points_per_unit": N_("Points per currency unit"),
    "point_value": N_("Value of a point"),
    "cashback_percent": N_("Cashback"),
    "min_order_value": N_("Minimum order"),
    "birthday_gift_value": N_("Birthday gift value"),
    "retail_default_payment_type": N_("Default payment type"),
    "should_validate_customer": N_("Confirm the customer with a code"),
    "sandbox": N_("Test mode"),
    "cors_origins": N_("Browser POS origins"),
    "points_validity_days": N_("Points expire after"),
    "expiry_reminder_days": N_("Expiry reminder"),
    "come_back_days": N_("Come-back message after"),
    "message_cap": N_("Marketing messages at most"),
    "message_cap_days": N_("Marketing cap period"),
    "message_benefit_earned": N_("Message: benefit earned"),
    "message_voucher_issued": N_("Message: voucher issued"),
    "message_points_expiring": N_("Message: points expiring"),
    "message_come_back": N_("Message: come back"),
}
NUMERIC = {
    "min_purchase": "decimal",
    "pin_lifetime_minutes": "numeric",
    "points_per_pin": "numeric",
    "verification_window_minutes": "numeric",
    "birthday_gift_days": "numeric",
    "earn_points_per_unit": "decimal",
    "point_value": "decimal",
    "cashback_percent": "decimal",
    "min_order_value": "decimal",
    "birthday_gift_value": "decimal",
    "bot_number": "tel",
    "points_validity_days": "numeric",
    "expiry_reminder_days": "numeric",
    "come_back_days": "numeric",
    "message_cap": "numeric",
    "message_cap_days": "numeric",
}
YES_NO = [("false", N_("No")), ("true", N_("Yes"))]
CHOICES: dict[str, list[tuple[str, str]]] = {
    "should_validate_customer": YES_NO,
    "sandbox": YES_NO,
    "message_benefit_earned": YES_NO,
    "message_voucher_issued": YES_NO,
    "message_points_expiring": YES_NO,
    "message_come_back": YES_NO,
    "retail_default_payment_type": [("POINTS", N_("Points")), ("CREDIT", N_("Cashback credit"))],
}
DATALISTS = {"currency": "currencies", "timezone": "timezones"}


@dataclass(frozen=True)
class Field:
    key: str
    label: str  # msgid
    unit: str  # msgid (the catalogue's English text)
    help: str  # msgid (the catalogue's English text)
    value: str
    options: list[tuple[str, str]] | None
    inputmode: str | None
    datalist: str | None


@dataclass(frozen=True)
class Group:
    title: str
    fields: list[Field]


def shown(value: object) -> str:
    """A setting's current value as the form shows it (and compares it)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def form_groups(values: dict[str, str]) -> list[Group]:
    """Every setting of the catalogue, grouped, with ``values`` (current or submitted)."""
    placed = {key for _title, keys in GROUPS for key in keys}
    grouped = [(title, [k for k in keys if k in SETTING_HELP]) for title, keys in GROUPS]
    rest = [key for key in SETTING_HELP if key not in placed]
    if rest:
        grouped.append((OTHER, rest))
    groups = []
    for title, keys in grouped:
        fields = []
        for key in keys:
            unit, help_text = SETTING_HELP[key]
            options = CHOICES.get(key)
            if key == "locale":
                options = [(code, NAMES[code]) for code in LOCALES]
                if values.get(key) and values[key] not in LOCALES:
                    options = [(values[key], values[key]), *options]
            fields.append(
                Field(
                    key=key,
                    label=LABELS.get(key, key.replace("_", " ").capitalize()),
                    unit=unit,
                    help=help_text,
                    value=values.get(key, ""),
                    options=options,
                    inputmode=NUMERIC.get(key),
                    datalist=DATALISTS.get(key),
                )
            )
        groups.append(Group(title, fields))
    return groups
