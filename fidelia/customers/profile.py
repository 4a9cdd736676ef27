"""Members' profiles, consents and erasure.

Consents are an append-only history (kind, granted, when, where from); the latest row per
kind is the answer. Erasure removes personal data and keeps the ledger consistent and
anonymous: the customer row stays (its balances and entries still add up), without a name,
identifiers, birthday or password, and with every consent withdrawn.
"""

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    String,
    bindparam,
    cast,
    delete,
    exists,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.selectable import CompoundSelect, Exists

from fidelia.customers.directory import balance_column
from fidelia.kit.clock import now
from fidelia.kit.errors import InvalidInput, NotFound
from fidelia.models import (
    Adjustment,
    Consent,
    Customer,
    CustomerIdentifier,
    Event,
    Order,
    OutboxMessage,
    Redemption,
    Tenant,
    Voucher,
)
from fidelia.models.base import UTCDateTime
from fidelia.rewards.eligibility import Wallet

CONSENTS = ("sms", "email", "whatsapp", "terms", "gdpr")


def set_names(customer: Customer, first: str | None, last: str | None) -> None:
    if first is not None:
        customer.first_name = first.strip()[:100] or None
    if last is not None:
        customer.last_name = last.strip()[:100] or None
    full = " ".join(p for p in (customer.first_name, customer.last_name) if p)
    if full:
        customer.name = full


def parse_birthday(raw: str | None) -> date | None:
    if raw is None or raw == "":
        return None
    try:
        birthday = date.fromisoformat(raw[:10])
    except ValueError as exc:
        raise InvalidInput(
            f"birthday: not a date (YYYY-MM-DD): {raw!r}", code="INVALID_DATE"
        ) from exc
    if not date(1900, 1, 1) <= birthday <= now().date():
        raise InvalidInput(f"birthday: out of range: {raw!r}", code="INVALID_DATE")
    return birthday


_CONSENTS = (
    select(Consent.kind, Consent.granted, Consent.at)
    .where(Consent.customer_id == bindparam("customer_id"))
    .order_by(Consent.id)
)


def consents_of(session: Session, customer: Customer) -> dict[str, tuple[bool, datetime]]:
    """kind -> (granted, when): the latest answer of each kind on file."""
    current: dict[str, tuple[bool, datetime]] = {}
    for kind, granted, at in session.execute(_CONSENTS, {"customer_id": customer.id}):
        current[kind] = (granted, at)
    return current


@dataclass(frozen=True)
class Card:
    """What the panel shows at the top of a customer's page, and which of the page's
    lists of this merchant have anything (the empty ones need no query)."""

    customer: Customer
    wallet: Wallet  # both balances in their program (0 when never credited)
    identifiers: dict[str, str]  # kind -> value, the first of each kind (oldest)
    consents: dict[str, tuple[bool, datetime]]  # as ``consents_of``
    has_redemptions: bool = True
    has_orders: bool = True
    has_vouchers: bool = True


def _has(model: type[Redemption] | type[Order] | type[Voucher]) -> Exists:
    return exists().where(
        model.tenant_id == bindparam("tenant_id"), model.customer_id == Customer.id
    )


# Built once. The customer with both balances and whether they have redemptions, orders
# and vouchers at the merchant; then their consents and identifiers in one round trip (the
# consents' branch first: its column types read the rows).
_CARD = select(
    Customer,
    balance_column("points"),
    balance_column("cashback"),
    _has(Redemption),
    _has(Order),
    _has(Voucher),
).where(Customer.id == bindparam("customer_id"))
_ON_FILE: CompoundSelect = union_all(
    select(
        literal_column("0").label("part"),
        Consent.kind,
        cast(null(), String).label("value"),
        Consent.granted,
        Consent.at,
        Consent.id,
    ).where(Consent.customer_id == bindparam("customer_id")),
    select(
        literal_column("1"),
        CustomerIdentifier.kind,
        CustomerIdentifier.value,
        cast(null(), Boolean),
        cast(null(), UTCDateTime),
        CustomerIdentifier.id,
    ).where(CustomerIdentifier.customer_id == bindparam("customer_id")),
).order_by("part", "id")


def card(session: Session, tenant: Tenant, customer_id: int) -> Card:
    """A customer of the merchant's program (not erased) with balances, identifiers and
    consents, in two statements; 404 ``CUSTOMER_NOT_FOUND`` otherwise, as
    ``directory.get_in_program``."""
    row = session.execute(_CARD, {"customer_id": customer_id, "tenant_id": tenant.id}).first()
    if row is None or row[0].program_id != tenant.program_id or row[0].erased_at is not None:
        raise NotFound(f"No customer {customer_id} at this merchant.", code="CUSTOMER_NOT_FOUND")
    customer, points, cashback, redemptions, orders, vouchers = row
    identifiers: dict[str, str] = {}
    consents: dict[str, tuple[bool, datetime]] = {}
    for part, kind, value, granted, at, _id in session.execute(
        _ON_FILE, {"customer_id": customer_id}
    ):
        if part == 0:
            consents[kind] = (granted, at)
        else:
            identifiers.setdefault(kind, value)
    wallet = Wallet(int(points), int(cashback))
    return Card(
        customer, wallet, identifiers, consents, bool(redemptions), bool(orders), bool(vouchers)
    )


def record_consents(
    session: Session, tenant: Tenant, customer: Customer, given: dict[str, bool | None], source: str
) -> None:
    """Write a row for each consent whose answer changes (given once, kept with its time)."""
    current = consents_of(session, customer)
    for kind, granted in given.items():
        if granted is None:
            continue
        if kind not in CONSENTS:
            raise InvalidInput(f"Unknown consent {kind!r}.")
        if kind not in current or current[kind][0] != granted:
            session.add(
                Consent(
                    tenant_id=tenant.id,
                    customer_id=customer.id,
                    kind=kind,
                    granted=granted,
                    source=source,
                    at=now(),
                )
            )
    session.flush()


def allows(session: Session, customer: Customer, kind: str) -> bool:
    """May we send this member a message on this channel? Only with consent on file."""
    if customer.erased_at is not None:
        return False
    answer = consents_of(session, customer).get(kind)
    return bool(answer and answer[0])


def erase(session: Session, tenant: Tenant, customer: Customer) -> None:
    """Remove a member's personal data for good; balances and ledger stay, anonymous."""
    if customer.erased_at is not None:
        return
    values = set(
        session.scalars(
            select(CustomerIdentifier.value).where(CustomerIdentifier.customer_id == customer.id)
        )
    )
    session.execute(delete(CustomerIdentifier).where(CustomerIdentifier.customer_id == customer.id))
    customer.name = customer.first_name = customer.last_name = None
    customer.birthday = None
    customer.password_hash = None
    customer.erased_at = now()
    record_consents(session, tenant, customer, {kind: False for kind in CONSENTS}, "erasure")
    # Reasons of manual adjustments are free text about them (the amounts stay).
    session.execute(
        update(Adjustment).where(Adjustment.customer_id == customer.id).values(reason="")
    )
    for event in session.scalars(select(Event).where(Event.customer_id == customer.id)):
        event.payload, event.tags = {}, []
    # Messages already queued or sent to them keep their address in the payload: scrub it.
    for message in session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.tenant_id == tenant.id, OutboxMessage.channel.in_(("sms", "email"))
        )
    ):
        to = str(message.payload.get("to", ""))
        if to in values or to.lstrip("+") in {v.lstrip("+") for v in values}:
            message.payload = {"erased": True}
            if message.status == "pending":
                message.status = "failed"
                message.last_error = "recipient erased"
