"""Vouchers (assets): issued to a customer or a campaign, validated at the counter or in
a transaction. A use is taken with a conditional UPDATE (``uses < max_uses``), so under
concurrent attempts a single-use voucher validates exactly once."""

import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound
from fidelia.models import Customer, Tenant, Voucher, VoucherUse

CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{3,39}$")
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud at the counter


class VoucherExpired(DomainError):
    status = 410
    code = "VOUCHER_EXPIRED"


def new_code(prefix: str = "FV") -> str:
    return prefix + "-" + "".join(secrets.choice(ALPHABET) for _ in range(8))


def end_of_day(day: date, timezone: str) -> datetime:
    """A voucher valid "until 2026-12-31" is valid through that day, merchant time."""
    return datetime.combine(day + timedelta(days=1), time(0), ZoneInfo(timezone))


def state_of(voucher: Voucher, at: datetime | None = None) -> str:
    """active | used | expired | scheduled | cancelled."""
    at = at or now()
    if voucher.status == "cancelled":
        return "cancelled"
    if voucher.uses >= voucher.max_uses:
        return "used"
    if voucher.valid_until is not None and at >= voucher.valid_until:
        return "expired"
    if voucher.valid_from is not None and at < voucher.valid_from:
        return "scheduled"
    return "active"


def issue(
    session: Session,
    tenant: Tenant,
    *,
    code: str | None = None,
    customer: Customer | None = None,
    campaign: str | None = None,
    value: int = 0,
    benefit: str = "",
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    max_uses: int = 1,
    kind: str = "voucher",
) -> Voucher:
    if code is not None:
        code = code.strip().upper()
        if not CODE.match(code):
            raise InvalidInput(
                "A voucher code is 4-40 letters, digits and dashes.", code="INVALID_CODE"
            )
    if max_uses < 1:
        raise InvalidInput("A voucher is usable at least once.")
    if value < 0:
        raise InvalidInput("A voucher's value cannot be negative.")
    if valid_from and valid_until and valid_until <= valid_from:
        raise InvalidInput("valid_until must be after valid_from.")
    for _ in range(5):
        voucher = Voucher(
            tenant_id=tenant.id,
            program_id=tenant.program_id,
            customer_id=customer.id if customer else None,
            code=code or new_code(),
            campaign=campaign,
            kind=kind,
            value=value,
            benefit=benefit.strip()[:300],
            valid_from=valid_from,
            valid_until=valid_until,
            max_uses=max_uses,
            created_at=now(),
        )
        try:
            with session.begin_nested():
                session.add(voucher)
                session.flush()
            return voucher
        except IntegrityError as exc:
            if code is not None or campaign is not None:
                raise Conflict(
                    "This voucher code (or this customer's campaign voucher) exists.",
                    code="VOUCHER_EXISTS",
                ) from exc
    raise Conflict("Could not find a free voucher code.", code="VOUCHER_EXISTS")


def find(session: Session, tenant: Tenant, code: str) -> Voucher:
    voucher = session.scalar(
        select(Voucher).where(Voucher.tenant_id == tenant.id, Voucher.code == code.strip().upper())
    )
    if voucher is None:
        raise NotFound("No voucher with this code at this merchant.", code="VOUCHER_NOT_FOUND")
    return voucher


def validate(
    session: Session,
    tenant: Tenant,
    code: str,
    *,
    customer: Customer | None = None,
    reference: str | None = None,
) -> Voucher:
    """Use a voucher once. A voucher issued to a customer only validates for them when the
    caller names a customer; at the counter (no customer given) the code is enough."""
    voucher = find(session, tenant, code)
    state = state_of(voucher)
    if state == "cancelled":
        raise Conflict("This voucher was cancelled.", code="VOUCHER_CANCELLED")
    if state == "expired":
        raise VoucherExpired("This voucher has expired.")
    if state == "scheduled":
        raise Conflict("This voucher is not valid yet.", code="VOUCHER_NOT_YET_VALID")
    if customer is not None and voucher.customer_id not in (None, customer.id):
        raise Forbidden("This voucher belongs to another customer.", code="VOUCHER_NOT_YOURS")
    taken = session.execute(
        update(Voucher)
        .where(
            Voucher.id == voucher.id, Voucher.uses < Voucher.max_uses, Voucher.status == "active"
        )
        .values(uses=Voucher.uses + 1)
        .returning(Voucher.uses)
    ).scalar_one_or_none()
    if taken is None:
        raise Conflict("This voucher was already used.", code="VOUCHER_USED")
    session.add(
        VoucherUse(
            tenant_id=tenant.id, voucher_id=voucher.id, reference=reference, created_at=now()
        )
    )
    session.refresh(voucher)
    return voucher


def release(session: Session, tenant: Tenant, reference: str) -> list[Voucher]:
    """Give back the uses taken under ``reference`` (a cancelled sale: the customer returned
    the goods, so the voucher can be used again). Each use comes back once."""
    given_back = []
    uses = session.scalars(
        select(VoucherUse)
        .where(VoucherUse.tenant_id == tenant.id, VoucherUse.reference == reference)
        .with_for_update()
    ).all()
    for use in uses:
        session.execute(
            update(Voucher)
            .where(Voucher.id == use.voucher_id, Voucher.uses > 0)
            .values(uses=Voucher.uses - 1)
        )
        session.delete(use)
        voucher = session.get_one(Voucher, use.voucher_id)
        session.refresh(voucher)
        given_back.append(voucher)
    session.flush()
    return given_back


@dataclass(frozen=True)
class Page:
    items: list[Voucher]
    total: int


def listing(
    session: Session,
    tenant: Tenant,
    *,
    customer_id: int | None = None,
    page: int = 1,
    per_page: int = 50,
    newest_first: bool = False,
) -> Page:
    query = select(Voucher).where(Voucher.tenant_id == tenant.id)
    if customer_id is not None:
        query = query.where(Voucher.customer_id == customer_id)
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    order = Voucher.id.desc() if newest_first else Voucher.id
    items = session.scalars(query.order_by(order).offset((page - 1) * per_page).limit(per_page))
    return Page(list(items), total)


def of_customer(session: Session, customer: Customer) -> list[Voucher]:
    return list(
        session.scalars(
            select(Voucher).where(Voucher.customer_id == customer.id).order_by(Voucher.id)
        )
    )
