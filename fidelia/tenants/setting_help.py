"""Every merchant setting, in the order forms show them: (unit, help). `tenant set --help`
and the panel's Program form are drawn from it; tenants.service validates and stores the
values. Plain data with no imports, so the ``fidelia`` command can build its help without
loading the service, the tables or SQLAlchemy."""

SETTING_HELP: dict[str, tuple[str, str]] = {
    "currency": ("ISO 4217 code", "Currency of every amount (BRL, USD, CRC, ...)."),
    "timezone": ("IANA zone", "Time zone for expiry times, birthdays and reports."),
    "locale": ("es | pt | en (e.g. pt_BR)", "Language of the bot's replies and messages."),
    "min_purchase": ("currency", "Smallest purchase that earns a sale PIN (seed 000)."),
    "bot_number": ("phone, international", "The merchant's own WhatsApp bot number, or none."),
    "pin_lifetime_minutes": ("minutes", "How long a sale PIN can be activated."),
    "points_per_pin": ("points", "Points a customer earns for each activated PIN."),
    "verification_window_minutes": (
        "minutes",
        "After a visit (PIN), how long public redemption is open to that customer.",
    ),
    "birthday_gift_days": ("days", "How long a birthday gift voucher stays valid."),
    "earn_points_per_unit": ("points per currency unit", "Points per unit spent on orders."),
    "point_value": ("currency per point", "What a point is worth in cashback rewards/payments."),
    "cashback_percent": ("%", "Share of each order given back as cashback."),
    "min_order_value": ("currency", "Smallest order that earns points or cashback."),
    "birthday_gift_value": ("currency", "Value of the birthday gift voucher (0: none)."),
    "retail_default_payment_type": (
        "POINTS | CREDIT",
        "What a retail /payment without a type spends (seed 002).",
    ),
    "should_validate_customer": (
        "true | false",
        "Require a code sent to the customer before spending points at the POS.",
    ),
    "sandbox": ("true | false", "Test mode: challenge codes are echoed in the answer."),
    "cors_origins": (
        "origins, comma-separated",
        "Browser POS origins allowed to call the POS door (https://pos.example).",
    ),
    "points_validity_days": (
        "days (0: never)",
        "Points and cashback earned from now on expire this long after they are earned.",
    ),
    "expiry_reminder_days": (
        "days (0: no reminder)",
        "Remind customers this many days before their points expire.",
    ),
    "come_back_days": ("days", "Send the come-back message after this long without a purchase."),
    "message_cap": (
        "messages (0: no cap)",
        "At most this many marketing messages per customer in message_cap_days.",
    ),
    "message_cap_days": ("days", "The period of the marketing frequency cap."),
    "message_benefit_earned": (
        "true | false",
        "After a sale: what the customer earned and their balance (transactional).",
    ),
    "message_voucher_issued": (
        "true | false",
        "When a voucher rule gives the customer a voucher: its code (transactional).",
    ),
    "message_points_expiring": (
        "true | false",
        "expiry_reminder_days before points expire: how many and when (transactional).",
    ),
    "message_come_back": (
        "true | false",
        "After come_back_days without a purchase (marketing: consent and cap apply).",
    ),
}
