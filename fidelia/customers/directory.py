"""A merchant's customer directory: registration, lookup by any identifier, paginated
search, and the batched reads that render pages of customers (identifiers, balances).

A phone number matches both kinds of number on file: 'phone' (given by a POS or an API)
and 'whatsapp' (learnt by the bot), so a customer who earned over WhatsApp is the same
customer when a merchant's system registers them by phone."""

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fidelia.customers.service import find, link_identifier
from fidelia.kit.errors import Conflict, InvalidInput, NotFound
from fidelia.models import Balance, Customer, CustomerIdentifier, Tenant

PHONE_KINDS = ("phone", "whatsapp")


def kinds_for(kind: str) -> tuple[str, ...]:
    return PHONE_KINDS if kind in PHONE_KINDS else (kind,)


def find_any(session: Session, program_id: int, kind: str, value: str) -> Customer | None:
    """Like ``find``, with a phone number matching a WhatsApp number too."""
    for each in kinds_for(kind):
        customer = find(session, program_id, each, value)
        if customer is not None:
            return customer
    return None


def get_in_program(session: Session, program_id: int, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None or customer.program_id != program_id or customer.erased_at is not None:
        raise NotFound(f"No customer {customer_id} at this merchant.", code="CUSTOMER_NOT_FOUND")
    return customer


@dataclass(frozen=True)
class Page:
    items: list[Customer]
    total: int


def search(
    session: Session,
    program_id: int,
    filters: dict[str, str],
    *,
    page: int = 1,
    per_page: int = 20,
) -> Page:
    """Customers having every identifier in ``filters`` (kind -> normalised value), by id."""
    query = select(Customer).where(Customer.program_id == program_id, Customer.erased_at.is_(None))
    for kind, value in filters.items():
        query = query.where(
            Customer.id.in_(
                select(CustomerIdentifier.customer_id).where(
                    CustomerIdentifier.program_id == program_id,
                    CustomerIdentifier.kind.in_(kinds_for(kind)),
                    CustomerIdentifier.value == value,
                )
            )
        )
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    items = session.scalars(
        query.order_by(Customer.id).offset((page - 1) * per_page).limit(per_page)
    )
    return Page(list(items), total)


def identifiers_by_customer(session: Session, ids: list[int]) -> dict[int, dict[str, str]]:
    """customer id -> {kind: value}, the first identifier of each kind (oldest first)."""
    found: dict[int, dict[str, str]] = {i: {} for i in ids}
    if not ids:
        return found
    rows = session.execute(
        select(CustomerIdentifier.customer_id, CustomerIdentifier.kind, CustomerIdentifier.value)
        .where(CustomerIdentifier.customer_id.in_(ids))
        .order_by(CustomerIdentifier.id)
    )
    for customer_id, kind, value in rows:
        found[customer_id].setdefault(kind, value)
    return found


def balances_by_customer(
    session: Session, program_id: int, ids: list[int]
) -> dict[int, dict[str, int]]:
    """customer id -> {account: amount} ('points', 'cashback'); missing accounts are 0."""
    found: dict[int, dict[str, int]] = {i: {} for i in ids}
    if not ids:
        return found
    rows = session.execute(
        select(Balance.customer_id, Balance.account, Balance.amount).where(
            Balance.program_id == program_id, Balance.customer_id.in_(ids)
        )
    )
    for customer_id, account, amount in rows:
        found[customer_id][account] = int(amount)
    return found


def register(
    session: Session,
    tenant: Tenant,
    identifiers: dict[str, str],
    *,
    name: str,
    password_hash: str | None = None,
    birthday: date | None = None,
) -> tuple[Customer, bool]:
    """Register a customer known by ``identifiers`` (kind -> normalised value); returns
    (customer, created).

    Nobody has any of them: a new customer. One customer already has some of them and was
    never registered (no password: they came from the WhatsApp bot, a POS order or a sale):
    that customer is enrolled: the name is taken, the password and birthday set, the other
    identifiers linked. Refused (409) when that customer is already registered, when the
    identifiers belong to different customers, or contradict one on file (another CPF)."""
    name = " ".join(name.split())[:200]
    if not name:
        raise InvalidInput("A customer needs a name.", code="INVALID_NAME")
    owners = {
        kind: find_any(session, tenant.program_id, kind, v) for kind, v in identifiers.items()
    }
    found = {c.id: c for c in owners.values() if c is not None}
    if len(found) > 1:
        raise Conflict(
            "These identifiers belong to different customers: "
            + ", ".join(f"{k} -> {c.id}" for k, c in owners.items() if c is not None)
            + ".",
            code="IDENTIFIERS_CONFLICT",
        )
    if found:
        (customer,) = found.values()
        if customer.password_hash:
            raise Conflict(
                f"Customer {customer.id} is already registered with these identifiers.",
                code="CUSTOMER_EXISTS",
            )
        on_file = identifiers_by_customer(session, [customer.id])[customer.id]
        for kind in identifiers:
            if owners[kind] is None and kind not in PHONE_KINDS and kind in on_file:
                raise Conflict(
                    f"Customer {customer.id} has another {kind} on file.",
                    code="IDENTIFIERS_CONFLICT",
                )
        created = False
    else:
        customer = Customer(program_id=tenant.program_id, tenant_id=tenant.id)
        session.add(customer)
        session.flush()
        created = True
    customer.name = name
    if password_hash is not None:
        customer.password_hash = password_hash
    if birthday is not None:
        customer.birthday = birthday
    for kind, value in identifiers.items():
        if not link_identifier(session, customer, kind, value):
            # Taken by a concurrent registration since we looked: the request is refused
            # and its transaction (with the customer it created) rolled back.
            raise Conflict(
                f"This {kind} was just registered to another customer.", code="CUSTOMER_EXISTS"
            )
    session.flush()
    return customer, created
