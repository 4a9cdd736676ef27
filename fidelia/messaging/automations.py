"""Automatic messages after the sale, each switched on by the merchant (docs/messages.md).

- ``after_sale`` runs in the transaction of a sale that earned (POS order, retail
  transaction, REST v2 sale, ERP sale): vouchers by rule, then "benefit earned" and
  "voucher issued" messages, written to the outbox with the state they report.
- ``run`` is the worker's (and `fidelia jobs messages`') sweep: "points expiring"
  reminders and "come back" messages.

Every message decided is one ``message_log`` row keyed (merchant, event, key): an order, a
voucher, a customer and expiry day, a customer and quiet period. The row is inserted with
ON CONFLICT DO NOTHING first, so each message happens once however often the sale is
replayed or however many workers sweep. The row says which channel carried it, or why
nothing was sent.

Channel: WhatsApp first. Inside the 24-hour window (the contact wrote to the bot less than
24 hours ago, minus a margin for the outbox's delay) as plain text; outside it only as the
approved template the merchant mapped to the event, else not on WhatsApp. Then e-mail, if
WhatsApp could not carry it. Marketing needs consent and is capped per customer.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.db import Database, insert_for
from fidelia.kit.money import format_money
from fidelia.ledger.service import CASHBACK, POINTS, Account, balance
from fidelia.messaging import consent, outbox, templates
from fidelia.messaging.templates import (
    BENEFIT_EARNED,
    COME_BACK,
    MARKETING,
    POINTS_EXPIRING,
    VOUCHER_ISSUED,
)
from fidelia.messaging.texts import unit
from fidelia.models import (
    Customer,
    CustomerIdentifier,
    InboundMessage,
    LedgerEntry,
    MessageLog,
    Order,
    OutboxMessage,
    Tenant,
    Voucher,
    VoucherRule,
    WhatsAppContact,
)
from fidelia.models.order import COMPLETE
from fidelia.vouchers import rules

WINDOW = timedelta(hours=24)
# The outbox delivers a little later than we decide: a text decided at 23h59 would reach
# Meta outside the window (error 131047). Texts go only while this much of it is left.
WINDOW_MARGIN = timedelta(minutes=30)
# Meta allows about one message every 6 s to the same user (131056): a customer's
# automatic WhatsApp messages are spaced at least this far apart.
PAIR_GAP = timedelta(seconds=6)
# Come-back: customers quiet for come_back_days, but not longer than this beyond it, so
# switching it on does not message everyone who left years ago.
CATCH_UP = timedelta(days=7)


# -- after the sale -------------------------------------------------------------------------


def after_sale(
    session: Session,
    tenant: Tenant,
    customer: Customer | None,
    order: Order,
    voucher_rules: list[VoucherRule] | None = None,
) -> list[Voucher]:
    """Everything that follows a sale that earned, in its transaction: vouchers by rule,
    then the messages. Idempotent per order (a replay or a second call does nothing new).
    ``customer`` None: the order's; ``voucher_rules``: the merchant's active ones when the
    caller has them (cached), else read. Returns the vouchers issued now."""
    if order.state != COMPLETE or order.customer_id is None:
        return []
    if customer is None or customer.id != order.customer_id:
        customer = session.get_one(Customer, order.customer_id)
    session.flush()  # the sale's own rows count (sessions do not autoflush)
    issued = rules.evaluate(session, tenant, customer, order, voucher_rules)
    # What the sale earned (and the balances) only for a message the merchant switched on.
    points, cashback = earned_by(session, order) if tenant.message_benefit_earned else (0, 0)
    if points > 0 or cashback > 0:
        values = _common(session, tenant, customer)
        values.update(
            earned=amounts(tenant, points, cashback),
            points=str(points),
            cashback=format_money(cashback, tenant.currency, tenant.locale),
        )
        notify(session, tenant, customer, BENEFIT_EARNED, f"order:{order.id}", values)
    for voucher in issued if tenant.message_voucher_issued else []:
        values = _common(session, tenant, customer)
        until = _day(tenant, voucher.valid_until) if voucher.valid_until else ""
        values.update(
            code=voucher.code,
            value=format_money(voucher.value, tenant.currency, tenant.locale)
            if voucher.value
            else voucher.benefit,
            valid_until=until,
            until=templates.say(tenant.locale, "until", date=until) if until else "",
        )
        notify(session, tenant, customer, VOUCHER_ISSUED, f"voucher:{voucher.id}", values)
    return issued


def earned_by(session: Session, order: Order) -> tuple[int, int]:
    """(points, cashback) the order earned, with the deals' bonus points of its sale."""
    rows = session.execute(
        select(LedgerEntry.account, func.sum(LedgerEntry.amount))
        .where(
            LedgerEntry.program_id == order.program_id,
            LedgerEntry.kind == "earn",
            or_(
                (LedgerEntry.source_type == "order") & (LedgerEntry.source_id == str(order.id)),
                (LedgerEntry.source_type == "deal")
                & LedgerEntry.source_id.startswith(f"{order.id}:"),
            ),
        )
        .group_by(LedgerEntry.account)
    )
    sums = {account: int(total) for account, total in rows}
    return sums.get(POINTS, 0), sums.get(CASHBACK, 0)


# -- deciding and sending one message ---------------------------------------------------------


@dataclass(frozen=True)
class Route:
    channel: str | None
    form: str | None
    payload: dict[str, Any] | None
    skipped: str | None = None


def notify(
    session: Session,
    tenant: Tenant,
    customer: Customer,
    event: str,
    key: str,
    values: dict[str, str],
) -> MessageLog | None:
    """Decide and queue one automatic message, once per (merchant, event, key). None when
    the merchant has it switched off or it was already decided."""
    if not getattr(tenant, f"message_{event}"):
        return None
    marketing = event in MARKETING
    if marketing:
        # One customer's marketing is decided one at a time, so two workers cannot both
        # pass the frequency cap.
        session.execute(select(Customer.id).where(Customer.id == customer.id).with_for_update())
    at = now()
    row_id = session.execute(
        insert_for(session)(MessageLog)
        .values(
            tenant_id=tenant.id,
            customer_id=customer.id,
            event=event,
            key=key[:120],
            marketing=marketing,
            created_at=at,
        )
        .on_conflict_do_nothing(index_elements=["tenant_id", "event", "key"])
        .returning(MessageLog.id)
    ).scalar_one_or_none()
    if row_id is None:
        return None
    row = session.get_one(MessageLog, row_id)
    route = _route(session, tenant, customer, event, values, marketing, at)
    if route.payload is None or route.channel is None:
        row.skipped = route.skipped
        session.flush()
        return row
    message = outbox.enqueue(session, route.channel, route.payload, tenant.id)
    scheduled = at
    if route.channel == "whatsapp":
        last = session.scalar(
            select(func.max(MessageLog.scheduled_at)).where(
                MessageLog.customer_id == customer.id, MessageLog.channel == "whatsapp"
            )
        )
        if last is not None and last + PAIR_GAP > scheduled:
            scheduled = last + PAIR_GAP
    message.next_attempt_at = scheduled
    session.flush()
    row.channel, row.form, row.outbox_id, row.scheduled_at = (
        route.channel,
        route.form,
        message.id,
        scheduled,
    )
    session.flush()
    return row


def _route(
    session: Session,
    tenant: Tenant,
    customer: Customer,
    event: str,
    values: dict[str, str],
    marketing: bool,
    at: datetime,
) -> Route:
    if customer.erased_at is not None:
        return Route(None, None, None, "erased")
    if marketing and tenant.message_cap > 0:
        sent = session.scalar(
            select(func.count(MessageLog.id)).where(
                MessageLog.customer_id == customer.id,
                MessageLog.marketing.is_(True),
                MessageLog.channel.is_not(None),
                MessageLog.created_at > at - timedelta(days=tenant.message_cap_days),
            )
        )
        if (sent or 0) >= tenant.message_cap:
            return Route(None, None, None, "frequency-cap")
    ids = _identifiers(session, customer)
    text = templates.say(tenant.locale, event, **values)
    reasons = []
    number = ids.get("whatsapp") or ids.get("phone")
    user_id = ids.get("wa_user")
    if not (number or user_id):
        reasons.append("no-whatsapp")
    elif not consent.permits(session, customer, "whatsapp", marketing) or consent.stopped(
        session, customer, number, user_id
    ):
        reasons.append("whatsapp-consent")
    else:
        template = templates.template_for(session, tenant.id, event)
        to: dict[str, Any] = {"to": number.lstrip("+")} if number else {"recipient": user_id}
        base = {"messaging_product": "whatsapp", **to}
        shaped = (
            {**base, "type": "template", "template": templates.template_body(template, values)}
            if template is not None
            else None
        )
        if _in_window(session, number, user_id, at):
            payload: dict[str, Any] = {**base, "type": "text", "text": {"body": text}}
            if shaped is not None:  # should Meta still say 131047, the template goes
                payload["fallback"] = shaped
            return Route("whatsapp", "text", payload)
        if shaped is not None:
            return Route("whatsapp", "template", shaped)
        reasons.append("outside-window-no-template")
    email = ids.get("email")
    if not email:
        reasons.append("no-email")
    elif not consent.permits(session, customer, "email", marketing):
        reasons.append("email-consent")
    else:
        subject = templates.say(tenant.locale, "subject", merchant=tenant.name)
        return Route("email", "email", {"to": email, "subject": subject, "text": text})
    return Route(None, None, None, ",".join(reasons)[:40])


def delivered_as(
    session: Session, outbox_id: int, *, form: str | None = None, skipped: str | None = None
) -> None:
    """What the channel found at delivery, on the message's log row (the outbox worker):
    the form that really went (``template``: Meta refused the text with 131047 and the
    mapped template went instead), or why nothing went after all."""
    values: dict[str, Any] = {"form": form} if form else {"skipped": skipped}
    session.execute(update(MessageLog).where(MessageLog.outbox_id == outbox_id).values(**values))


def _identifiers(session: Session, customer: Customer) -> dict[str, str]:
    rows = session.execute(
        select(CustomerIdentifier.kind, CustomerIdentifier.value)
        .where(
            CustomerIdentifier.customer_id == customer.id,
            CustomerIdentifier.kind.in_(("whatsapp", "wa_user", "phone", "email")),
        )
        .order_by(CustomerIdentifier.id)
    )
    found: dict[str, str] = {}
    for kind, value in rows:
        found.setdefault(kind, value)
    return found


def last_inbound(session: Session, number: str | None, user_id: str | None) -> datetime | None:
    """When this WhatsApp user last wrote to the bot (which opens the 24-hour window)."""
    conditions = []
    if number:
        conditions.append(WhatsAppContact.wa_number == number)
    if user_id:
        conditions.append(WhatsAppContact.wa_user_id == user_id)
    if not conditions:
        return None
    return session.scalar(
        select(func.max(InboundMessage.received_at))
        .join(WhatsAppContact, WhatsAppContact.id == InboundMessage.contact_id)
        .where(or_(*conditions))
    )


def _in_window(session: Session, number: str | None, user_id: str | None, at: datetime) -> bool:
    last = last_inbound(session, number, user_id)
    return last is not None and at < last + WINDOW - WINDOW_MARGIN


# -- values ---------------------------------------------------------------------------------


def amounts(tenant: Tenant, points: int, cashback: int) -> str:
    """'50 pontos + R$ 2,50' (what is non-zero; '0 pontos' when nothing is)."""
    parts = []
    if points:
        parts.append(f"{points} {unit(tenant.locale, points)}")
    if cashback:
        parts.append(format_money(cashback, tenant.currency, tenant.locale))
    return " + ".join(parts) or f"0 {unit(tenant.locale, 0)}"


def _common(session: Session, tenant: Tenant, customer: Customer) -> dict[str, str]:
    points = balance(session, Account(customer.program_id, customer.id, POINTS))
    cashback = balance(session, Account(customer.program_id, customer.id, CASHBACK))
    return {
        "merchant": tenant.name,
        "name": customer.first_name or customer.name or "",
        "balance": amounts(tenant, max(points, 0), max(cashback, 0)),
    }


def _local_day(tenant: Tenant, moment: datetime | None) -> date:
    assert moment is not None
    return moment.astimezone(ZoneInfo(tenant.timezone)).date()


def _day(tenant: Tenant, moment: datetime) -> str:
    return format_date(_local_day(tenant, moment), "short", locale=tenant.locale)


# -- the sweep --------------------------------------------------------------------------------


def remind_expiring(session: Session, tenant: Tenant, at: datetime) -> int:
    """Points expiring within ``expiry_reminder_days``: one reminder per customer and
    expiry day (every lot of that day in one message)."""
    lots = session.execute(
        select(
            LedgerEntry.customer_id,
            LedgerEntry.account,
            LedgerEntry.expires_at,
            LedgerEntry.remaining,
        ).where(
            LedgerEntry.tenant_id == tenant.id,
            LedgerEntry.remaining > 0,
            LedgerEntry.amount > 0,
            LedgerEntry.expires_at > at,
            LedgerEntry.expires_at <= at + timedelta(days=tenant.expiry_reminder_days),
        )
    )
    due: dict[tuple[int, date], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for customer_id, account, expires_at, remaining in lots:
        due[(customer_id, _local_day(tenant, expires_at))][account] += int(remaining or 0)
    sent = 0
    for (customer_id, day), held in sorted(due.items()):
        customer = session.get_one(Customer, customer_id)
        values = _common(session, tenant, customer)
        values.update(
            expiring=amounts(tenant, held.get(POINTS, 0), held.get(CASHBACK, 0)),
            date=format_date(day, "short", locale=tenant.locale),
        )
        key = f"{customer_id}:{day.isoformat()}"
        if notify(session, tenant, customer, POINTS_EXPIRING, key, values) is not None:
            sent += 1
    return sent


def come_back(session: Session, tenant: Tenant, at: datetime) -> int:
    """Customers with no purchase (no earning) here for ``come_back_days``: once per quiet
    period (a new purchase starts a new one)."""
    quiet_since = at - timedelta(days=tenant.come_back_days)
    last = func.max(LedgerEntry.created_at)
    rows = session.execute(
        select(LedgerEntry.customer_id, last)
        .where(LedgerEntry.tenant_id == tenant.id, LedgerEntry.kind == "earn")
        .group_by(LedgerEntry.customer_id)
        .having(last <= quiet_since, last > quiet_since - CATCH_UP)
    ).all()
    sent = 0
    for customer_id, last_at in rows:
        customer = session.get_one(Customer, customer_id)
        values = _common(session, tenant, customer)
        values["days"] = str((at - last_at).days)
        key = f"{customer_id}:{last_at.isoformat(timespec='seconds')}"
        if notify(session, tenant, customer, COME_BACK, key, values) is not None:
            sent += 1
    return sent


def run(db: Database, at: datetime | None = None) -> dict[str, int]:
    """Reminders and come-back messages for every merchant that switched them on; one
    transaction per merchant and job. Idempotent: what was decided is never decided again."""
    at = at or now()
    counts = {POINTS_EXPIRING: 0, COME_BACK: 0}
    with db.session(readonly=True) as session:
        reminding = list(
            session.scalars(
                select(Tenant.id).where(
                    Tenant.message_points_expiring.is_(True), Tenant.expiry_reminder_days > 0
                )
            )
        )
        calling = list(session.scalars(select(Tenant.id).where(Tenant.message_come_back.is_(True))))
    for tenant_id in reminding:
        with db.session() as session:
            tenant = session.get_one(Tenant, tenant_id)
            counts[POINTS_EXPIRING] += remind_expiring(session, tenant, at)
    for tenant_id in calling:
        with db.session() as session:
            counts[COME_BACK] += come_back(session, session.get_one(Tenant, tenant_id), at)
    return counts


def pending_for(session: Session, customer: Customer) -> list[OutboxMessage]:
    """The outbox rows of a customer's automatic messages (tests, support)."""
    return list(
        session.scalars(
            select(OutboxMessage)
            .join(MessageLog, MessageLog.outbox_id == OutboxMessage.id)
            .where(MessageLog.customer_id == customer.id)
            .order_by(OutboxMessage.id)
        )
    )
