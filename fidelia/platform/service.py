"""The operator console's figures: every merchant with its numbers, the merchant groups,
and the platform's health (PIN namespaces, webhook intake, the worker's heartbeat; the
outbox's figures are in messaging/deliveries.py)."""

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.models import (
    ApiKey,
    BlingEvent,
    Customer,
    DailyRollup,
    InboundMessage,
    Pin,
    Program,
    Tenant,
)
from fidelia.ops import heartbeat as heartbeat_of
from fidelia.pins.guard import GuessPolicy


@dataclass(frozen=True)
class MerchantRow:
    id: int
    slug: str
    name: str
    currency: str
    created_at: datetime
    suspended_at: datetime | None
    bot_number: str | None
    group: str | None  # the group's slug, when it shares a balance
    customers: int
    active_keys: int
    points_issued_30d: int
    member_sales_30d: int  # minor units


def merchants(session: Session, search: str = "") -> list[MerchantRow]:
    since = date.today() - timedelta(days=30)  # a platform-wide view: UTC days suffice
    customers = dict(
        session.execute(select(Customer.tenant_id, func.count()).group_by(Customer.tenant_id)).all()
    )
    keys = dict(
        session.execute(
            select(ApiKey.tenant_id, func.count())
            .where(ApiKey.revoked_at.is_(None))
            .group_by(ApiKey.tenant_id)
        ).all()
    )
    recent = {
        tenant_id: (int(points or 0), int(sales or 0))
        for tenant_id, points, sales in session.execute(
            select(
                DailyRollup.tenant_id,
                func.sum(DailyRollup.points_issued),
                func.sum(DailyRollup.member_sales),
            )
            .where(DailyRollup.day >= since)
            .group_by(DailyRollup.tenant_id)
        )
    }
    query = (
        select(Tenant, Program.kind, Program.slug)
        .join(Program, Program.id == Tenant.program_id)
        .order_by(Tenant.slug)
    )
    if search.strip():
        like = f"%{search.strip().lower()}%"
        query = query.where(func.lower(Tenant.slug).like(like) | func.lower(Tenant.name).like(like))
    rows = []
    for tenant, kind, group_slug in session.execute(query):
        points, sales = recent.get(tenant.id, (0, 0))
        rows.append(
            MerchantRow(
                id=tenant.id,
                slug=tenant.slug,
                name=tenant.name,
                currency=tenant.currency,
                created_at=tenant.created_at,
                suspended_at=tenant.suspended_at,
                bot_number=tenant.bot_number,
                group=group_slug if kind == "group" else None,
                customers=int(customers.get(tenant.id, 0)),
                active_keys=int(keys.get(tenant.id, 0)),
                points_issued_30d=points,
                member_sales_30d=sales,
            )
        )
    return rows


@dataclass(frozen=True)
class GroupRow:
    id: int
    slug: str | None
    name: str
    members: list[str]


def groups(session: Session) -> list[GroupRow]:
    found: dict[int, GroupRow] = {}
    for program, tenant_slug in session.execute(
        select(Program, Tenant.slug)
        .join(Tenant, Tenant.program_id == Program.id)
        .where(Program.kind == "group")
        .order_by(Program.slug, Tenant.slug)
    ):
        row = found.setdefault(program.id, GroupRow(program.id, program.slug, program.name, []))
        row.members.append(tenant_slug)
    return list(found.values())


@dataclass(frozen=True)
class Namespace:
    number: str
    merchants: int
    open_pins: int
    pin_length: int  # the length a PIN generated now gets
    share: float  # open PINs / codes of that length


def namespaces(session: Session, default_number: str, policy: GuessPolicy) -> list[Namespace]:
    """Each bot number's fill: merchants on it, open PINs, the current PIN length."""
    merchants_on = Counter(
        number or default_number for number in session.scalars(select(Tenant.bot_number))
    )
    open_pins = dict(
        session.execute(
            select(Pin.namespace, func.count())
            .where(Pin.status == "open", Pin.expires_at > now())
            .group_by(Pin.namespace)
        ).all()
    )
    result = []
    for number in sorted(set(merchants_on) | set(open_pins)):
        count = int(open_pins.get(number, 0))
        length = policy.length_for(count)
        result.append(
            Namespace(number, merchants_on.get(number, 0), count, length, count / 10**length)
        )
    return result


def webhook_intake(session: Session, minutes: int = 60) -> list[tuple[datetime, int, int]]:
    """(minute, WhatsApp messages, Bling events) received, for each of the last minutes."""
    end = now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=minutes)
    whatsapp = Counter(
        moment.replace(second=0, microsecond=0)
        for moment in session.scalars(
            select(InboundMessage.received_at).where(InboundMessage.received_at >= start)
        )
    )
    bling = Counter(
        moment.replace(second=0, microsecond=0)
        for moment in session.scalars(
            select(BlingEvent.received_at).where(BlingEvent.received_at >= start)
        )
    )
    return [
        (start + timedelta(minutes=n), whatsapp.get(m, 0), bling.get(m, 0))
        for n in range(minutes)
        for m in [start + timedelta(minutes=n)]
    ]


def heartbeat(session: Session) -> datetime | None:
    """The worker's last round (fidelia/ops/heartbeat.py: the one heartbeat /readyz reads)."""
    return heartbeat_of.newest(session)
