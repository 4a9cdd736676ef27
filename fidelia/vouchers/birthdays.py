"""Birthday gifts: on a member's birthday, in the merchant's time zone, a voucher worth
``birthday_gift_value`` valid ``birthday_gift_days``. Runs from the worker (every few
minutes) or `fidelia jobs birthdays` (cron); issuing is idempotent per customer and year
(a unique index), so overlapping runs never give two gifts. Born on 29 February: the gift
comes on 28 February in other years."""

import calendar
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import extract, or_, select
from sqlalchemy.orm import Session

from fidelia.customers.profile import allows
from fidelia.kit.clock import now
from fidelia.kit.db import Database
from fidelia.kit.errors import Conflict
from fidelia.kit.money import format_money
from fidelia.messaging import outbox
from fidelia.messaging.texts import say
from fidelia.models import Customer, CustomerIdentifier, Tenant
from fidelia.vouchers.service import issue


def celebrating(session: Session, tenant: Tenant, today: date) -> list[Customer]:
    days = [today.day]
    if today.month == 2 and today.day == 28 and not calendar.isleap(today.year):
        days.append(29)
    return list(
        session.scalars(
            select(Customer).where(
                Customer.program_id == tenant.program_id,
                Customer.erased_at.is_(None),
                extract("month", Customer.birthday) == today.month,
                or_(*(extract("day", Customer.birthday) == d for d in days)),
            )
        )
    )


def issue_for_tenant(session: Session, tenant: Tenant, at: datetime | None = None) -> int:
    zone = ZoneInfo(tenant.timezone)
    local = (at or now()).astimezone(zone)
    start = datetime.combine(local.date(), time(0), zone)
    issued = 0
    for customer in celebrating(session, tenant, local.date()):
        try:
            voucher = issue(
                session,
                tenant,
                customer=customer,
                campaign=f"birthday-{local.year}",
                kind="birthday",
                value=tenant.birthday_gift_value,
                benefit="Presente de aniversário",
                valid_from=start,
                valid_until=start + timedelta(days=tenant.birthday_gift_days),
            )
        except Conflict:
            continue  # already given this year
        issued += 1
        _notify(session, tenant, customer, voucher.code)
    return issued


def _notify(session: Session, tenant: Tenant, customer: Customer, code: str) -> None:
    """Tell the member over WhatsApp, only where they consented to it."""
    if not allows(session, customer, "whatsapp"):
        return
    number = session.scalar(
        select(CustomerIdentifier.value).where(
            CustomerIdentifier.customer_id == customer.id,
            CustomerIdentifier.kind.in_(("whatsapp", "phone")),
        )
    )
    if number:
        gift = format_money(tenant.birthday_gift_value, tenant.currency, tenant.locale)
        text = say(tenant.locale, "birthday", merchant=tenant.name, gift=gift, code=code)
        outbox.whatsapp_text(
            session, text=text, wa_number=number, wa_user_id=None, tenant_id=tenant.id
        )


def run(db: Database, at: datetime | None = None) -> int:
    """Every merchant with a birthday gift configured; one transaction per merchant."""
    with db.session(readonly=True) as session:
        tenant_ids = list(session.scalars(select(Tenant.id).where(Tenant.birthday_gift_value > 0)))
    issued = 0
    for tenant_id in tenant_ids:
        with db.session() as session:
            issued += issue_for_tenant(session, session.get_one(Tenant, tenant_id), at)
    return issued
