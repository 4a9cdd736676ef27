"""A merchant's customer directory: registration, lookup by any identifier, paginated
search, and the batched reads that render pages of customers (identifiers, balances).

A phone number matches both kinds of number on file: 'phone' (given by a POS or an API)
and 'whatsapp' (learnt by the bot), so a customer who earned over WhatsApp is the same
customer when a merchant's system registers them by phone."""

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from fidelia.customers.service import find, link_identifier
from fidelia.kit.errors import Conflict, InvalidInput, NotFound
from fidelia.kit.passwords import hash_password, verify_password
from fidelia.models import Balance, Customer, CustomerIdentifier, Tenant

PHONE_KINDS = ("phone", "whatsapp")
DOCUMENT_KINDS = ("cpf", "cnpj")


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
    customer_id: int | None = None,
    page: int = 1,
    per_page: int = 20,
) -> Page:
    """Customers having every identifier in ``filters`` (kind -> normalised value) (and
    this id, when given), by id."""
    query = select(Customer).where(Customer.program_id == program_id, Customer.erased_at.is_(None))
    if customer_id is not None:
        query = query.where(Customer.id == customer_id)
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


def balance_column(account: str) -> ColumnElement[int]:
    """A customer's balance of ``account`` in their program (0 when never credited), as a
    column of a select of ``Customer`` (a correlated subquery on the balances' key)."""
    amount = (
        select(Balance.amount)
        .where(
            Balance.program_id == Customer.program_id,
            Balance.customer_id == Customer.id,
            Balance.account == account,
        )
        .scalar_subquery()
    )
    return func.coalesce(amount, 0)


# Built once (the pages of customers run them on every view).
_IDENTIFIERS = (
    select(CustomerIdentifier.customer_id, CustomerIdentifier.kind, CustomerIdentifier.value)
    .where(CustomerIdentifier.customer_id.in_(bindparam("ids", expanding=True)))
    .order_by(CustomerIdentifier.id)
)
_BALANCES = select(Balance.customer_id, Balance.account, Balance.amount).where(
    Balance.program_id == bindparam("program_id"),
    Balance.customer_id.in_(bindparam("ids", expanding=True)),
)


def identifiers_by_customer(session: Session, ids: list[int]) -> dict[int, dict[str, str]]:
    """customer id -> {kind: value}, the first identifier of each kind (oldest first)."""
    found: dict[int, dict[str, str]] = {i: {} for i in ids}
    if not ids:
        return found
    for customer_id, kind, value in session.execute(_IDENTIFIERS, {"ids": ids}):
        found[customer_id].setdefault(kind, value)
    return found


def balances_by_customer(
    session: Session, program_id: int, ids: list[int]
) -> dict[int, dict[str, int]]:
    """customer id -> {account: amount} ('points', 'cashback'); missing accounts are 0."""
    found: dict[int, dict[str, int]] = {i: {} for i in ids}
    if not ids:
        return found
    rows = session.execute(_BALANCES, {"program_id": program_id, "ids": ids})
    for customer_id, account, amount in rows:
        found[customer_id][account] = int(amount)
    return found


def _same_name(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def register(
    session: Session,
    tenant: Tenant,
    identifiers: dict[str, str],
    *,
    name: str,
    password: str | None = None,
    birthday: date | None = None,
) -> tuple[Customer, bool]:
    """Register a customer known by ``identifiers`` (kind -> normalised value); returns
    (customer, created).

    Nobody has any of them: a new customer. One customer already has some of them (known
    from the WhatsApp bot, a POS order, a sale, or an earlier registration): a registration
    never changes what is on file. When everything sent either matches it or fills a blank
    (no name yet, a first e-mail, a phone besides the WhatsApp number), the blanks are
    filled and that customer is the answer; when anything differs (another name, birthday,
    password: 409 ``CUSTOMER_EXISTS``; only another identifier of a kind on file: 409
    ``IDENTIFIERS_CONFLICT``), naming the customer and the fields, and nothing is written:
    changes go through ``update``. Identifiers of different customers: 409
    ``IDENTIFIERS_CONFLICT``."""
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
        on_file = identifiers_by_customer(session, [customer.id])[customer.id]
        differ = [
            kind
            for kind in identifiers
            if owners[kind] is None
            and any(k in on_file for k in (DOCUMENT_KINDS if kind in DOCUMENT_KINDS else (kind,)))
        ]
        if customer.name and not _same_name(customer.name, name):
            differ.insert(0, "name")
        if customer.birthday and birthday and customer.birthday != birthday:
            differ.append("birthday")
        if (
            customer.password_hash
            and password
            and not verify_password(customer.password_hash, password)
        ):
            differ.append("password")
        if differ:
            raise Conflict(
                f"Customer {customer.id} already exists with another {', '.join(differ)} on "
                "file; a registration never changes a customer (nothing was written). "
                f"Update customer {customer.id} instead.",
                # Only identifiers differing: the old, more precise code.
                code="CUSTOMER_EXISTS"
                if {"name", "birthday", "password"} & set(differ)
                else "IDENTIFIERS_CONFLICT",
            )
        created = False
    else:
        customer = Customer(program_id=tenant.program_id, tenant_id=tenant.id)
        session.add(customer)
        session.flush()
        created = True
    if not customer.name:
        customer.name = name
    if password is not None and not customer.password_hash:
        customer.password_hash = hash_password(password)
    if birthday is not None and customer.birthday is None:
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


UNSET: Any = object()


def update(
    session: Session,
    customer: Customer,
    *,
    name: str | None = UNSET,
    birthday: date | None = UNSET,
    password: str | None = UNSET,
    identifiers: dict[str, str | None] | None = None,
) -> Customer:
    """Change what is given (UNSET: left as is). ``identifiers`` maps a kind to its new
    value, which replaces the customer's identifiers of that kind (a phone replaces the
    numbers given by a POS or an API, never the WhatsApp number the bot knows), or to None
    to remove them. Refused: a value another customer has (409 ``IDENTIFIERS_CONFLICT``),
    and leaving the customer without any identifier (422 ``IDENTIFIER_REQUIRED``)."""
    if name is not UNSET:
        cleaned = " ".join((name or "").split())[:200]
        if name is not None and not cleaned:
            raise InvalidInput("A customer needs a name.", code="INVALID_NAME")
        customer.name = cleaned or None
    if birthday is not UNSET:
        customer.birthday = birthday
    if password is not UNSET:
        customer.password_hash = hash_password(password) if password is not None else None
    for kind, value in (identifiers or {}).items():
        kinds = DOCUMENT_KINDS if kind in DOCUMENT_KINDS else (kind,)
        if value is None:
            session.execute(
                delete(CustomerIdentifier).where(
                    CustomerIdentifier.customer_id == customer.id,
                    CustomerIdentifier.kind.in_(kinds),
                )
            )
            continue
        owner = find_any(session, customer.program_id, kind, value)
        if owner is not None and owner.id != customer.id:
            raise Conflict(
                f"This {kind} belongs to customer {owner.id}.", code="IDENTIFIERS_CONFLICT"
            )
        if owner is not None:
            continue  # already this customer's (a phone may be their WhatsApp number)
        session.execute(
            delete(CustomerIdentifier).where(
                CustomerIdentifier.customer_id == customer.id,
                CustomerIdentifier.kind.in_(kinds),
            )
        )
        if not link_identifier(session, customer, kind, value):
            raise Conflict(
                f"This {kind} was just registered to another customer.",
                code="IDENTIFIERS_CONFLICT",
            )
    session.flush()
    left = session.scalar(
        select(func.count())
        .select_from(CustomerIdentifier)
        .where(CustomerIdentifier.customer_id == customer.id)
    )
    if not left:
        raise InvalidInput(
            "A customer keeps at least one identifier (phone, cpf, email or external_id).",
            code="IDENTIFIER_REQUIRED",
        )
    return customer
