"""Customers: one person in one program, found by any of their identifiers."""

from collections.abc import Collection, Mapping, Sequence
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    case,
    delete,
    select,
    tuple_,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, class_mapper, make_transient_to_detached
from sqlalchemy.orm.util import identity_key

from fidelia.kit import driver
from fidelia.kit.db import any_of, unnested
from fidelia.kit.documents import identify_document, normalize_email
from fidelia.kit.errors import InvalidInput, NotFound
from fidelia.kit.phone import phone_of
from fidelia.models import Customer, CustomerIdentifier, Tenant


def find(session: Session, program_id: int, kind: str, value: str) -> Customer | None:
    # Every door's hot path: a Core row made the customer (``found``), sent on the driver's
    # connection on PostgreSQL (``kit/driver``: no ORM load, no execution layer).
    params = {"program_id": program_id, "kind": kind, "value": value}
    row = driver.execute(session, _FINDER, params).first()
    return found(session, row) if row is not None else None


_FIND_FIRST = (
    select(CustomerIdentifier.kind, CustomerIdentifier.value, Customer)
    .join(Customer, Customer.id == CustomerIdentifier.customer_id)
    .where(
        CustomerIdentifier.program_id == bindparam("program_id"),
        tuple_(CustomerIdentifier.kind, CustomerIdentifier.value).in_(
            bindparam("identifiers", expanding=True)
        ),
    )
)


def find_first(
    session: Session, program_id: int, identifiers: list[tuple[str, str]]
) -> Customer | None:
    """``find`` for each ``(kind, value)`` in turn, the first that names a customer wins,
    in one round trip."""
    if len(identifiers) == 1:
        return find(session, program_id, *identifiers[0])
    rows = session.execute(_FIND_FIRST, {"program_id": program_id, "identifiers": identifiers})
    found = {(kind, value): customer for kind, value, customer in rows}
    return next((found[i] for i in identifiers if i in found), None)


def finder(*extra: ColumnElement[Any]) -> Select[Any]:
    """``find`` as a Core statement (the same bind parameters) with ``extra`` columns of the
    caller's, correlated to ``customers`` (a hot path reads what it needs of the customer in
    the same round trip). Build it once; ``found`` turns a row into the customer."""
    return (
        select(*_customers.c, *extra)
        .join_from(_identifiers, _customers, _customers.c.id == _identifiers.c.customer_id)
        .where(
            _identifiers.c.program_id == bindparam("program_id"),
            _identifiers.c.kind == bindparam("kind"),
            _identifiers.c.value == bindparam("value"),
        )
    )


class FirstFinder:
    """``find_first`` as one Core statement per dialect, built once (``found`` turns its
    row into the customer): the customer of the first candidate ``(kind, value)`` that
    names one. PostgreSQL takes the candidates as two arrays, in their order (one text
    whatever their number); SQLite as an ``IN`` list, ordered by ``kinds`` (candidates of
    distinct kinds, tried in that order)."""

    def __init__(self, kinds: Sequence[str]) -> None:
        wanted = unnested(
            "wanted", kinds=_identifiers.c.kind.type, values=_identifiers.c.value.type
        )
        matched = and_(
            _identifiers.c.program_id == bindparam("program_id"),
            _identifiers.c.kind == wanted.c.kinds,
            _identifiers.c.value == wanted.c["values"],
        )
        rank = case({kind: i for i, kind in enumerate(kinds)}, value=_identifiers.c.kind)
        self.statements: dict[str, Select[Any]] = {
            "postgresql": select(*_customers.c)
            .select_from(wanted)
            .join(_identifiers, matched)
            .join(_customers, _customers.c.id == _identifiers.c.customer_id)
            .order_by(wanted.c.n),
            "sqlite": select(*_customers.c)
            .join_from(_identifiers, _customers, _customers.c.id == _identifiers.c.customer_id)
            .where(
                _identifiers.c.program_id == bindparam("program_id"),
                tuple_(_identifiers.c.kind, _identifiers.c.value).in_(
                    bindparam("identifiers", expanding=True)
                ),
            )
            .order_by(rank),
        }

    def read(
        self, dialect: str, program_id: int, candidates: list[tuple[str, str]]
    ) -> tuple[Select[Any], dict[str, Any]]:
        """The statement for ``dialect`` and its parameters."""
        if dialect == "postgresql":
            kinds = [kind for kind, _ in candidates]
            values = [value for _, value in candidates]
            params = {"program_id": program_id, "kinds": kinds, "values": values}
        else:
            params = {"program_id": program_id, "identifiers": candidates}
        return self.statements[dialect], params


_CUSTOMER_COLUMNS = tuple(c.key for c in Customer.__table__.c)


def found(session: Session, row: Any) -> Customer:
    """A ``finder`` row's customer (its columns by name, or a row with ``_mapping``), in the
    session as if loaded (no ORM load: the row's columns become the object as loaded
    values, not as changes; one the session already holds is returned as it is)."""
    values = cast(Mapping[str, Any], getattr(row, "_mapping", row))  # a row's, by name
    held = session.identity_map.get(identity_key(Customer, values["id"]))
    if held is not None:
        return cast(Customer, held)
    customer = _new_customer()  # no __init__: the name's validator is for changes
    # The columns straight into the object's state, then committed as loaded values by
    # ``make_transient_to_detached`` (a row that exists: adding it writes nothing).
    customer.__dict__.update({key: values[key] for key in _CUSTOMER_COLUMNS})
    make_transient_to_detached(customer)
    session.add(customer)
    return cast(Customer, customer)


_new_customer = class_mapper(Customer).class_manager.new_instance


class Known(NamedTuple):
    id: int
    name: str | None


_identifiers = cast(Table, CustomerIdentifier.__table__)
_customers = cast(Table, Customer.__table__)
_FINDER = finder()  # ``find``'s, built once: every door's hot path finds its customer with it


def _find_many(programs: ColumnElement[bool], identifiers: ColumnElement[bool]) -> Any:
    return (
        select(
            _identifiers.c.program_id,
            _identifiers.c.kind,
            _identifiers.c.value,
            _customers.c.id,
            _customers.c.name,
        )
        .join(_customers, _customers.c.id == _identifiers.c.customer_id)
        .where(programs, identifiers)
    )


# ``find`` for many identifiers in many programs, one statement built once, by dialect:
# PostgreSQL's lists are arrays (one text and five parameters for every batch): the pairs
# as two parallel arrays, and their distinct kinds and values for ``= ANY`` so that the
# ``(kind, value)`` index is searched for them.
_PAIRS = unnested(
    "wanted", pair_kinds=_identifiers.c.kind.type, pair_values=_identifiers.c.value.type
)
_FIND_MANY = {
    "sqlite": _find_many(
        _identifiers.c.program_id.in_(bindparam("programs", expanding=True)),
        tuple_(_identifiers.c.kind, _identifiers.c.value).in_(
            bindparam("identifiers", expanding=True)
        ),
    ),
    "postgresql": _find_many(
        and_(
            any_of(_identifiers.c.program_id, "programs"),
            any_of(_identifiers.c.kind, "kinds"),
            any_of(_identifiers.c.value, "values"),
        ),
        tuple_(_identifiers.c.kind, _identifiers.c.value).in_(
            select(_PAIRS.c.pair_kinds, _PAIRS.c.pair_values)
        ),
    ),
}


def find_many(
    session: Session, programs: Collection[int], identifiers: Collection[tuple[str, str]]
) -> dict[tuple[int, str, str], Known]:
    """Who has each ``(kind, value)`` in each of ``programs``: ``find`` for a batch, keyed
    by ``(program id, kind, value)``."""
    if not programs or not identifiers:
        return {}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        pairs = list(identifiers)
        params: dict[str, Any] = {
            "pair_kinds": [kind for kind, _ in pairs],
            "pair_values": [value for _, value in pairs],
            "kinds": sorted({kind for kind, _ in pairs}),
            "values": sorted({value for _, value in pairs}),
        }
    else:
        params = {"identifiers": list(identifiers)}
    rows = driver.execute(
        session, _FIND_MANY[dialect], {"programs": list(programs), **params}
    ).all()
    return {(r.program_id, r.kind, r.value): Known(r.id, r.name) for r in rows}


CONTACTS = ("phone", "cpf", "email")


def by_contact(session: Session, tenant: Tenant, kind: str, value: str) -> Customer:
    """The merchant's customer named by a phone (or the WhatsApp number the bot knows), a
    CPF/CNPJ or an e-mail, as a person types it; NotFound (CUSTOMER_NOT_FOUND) otherwise."""
    text = (value or "").strip()
    if kind not in CONTACTS or not text:
        raise InvalidInput("Name the customer by phone, CPF or e-mail.")
    if kind == "phone":
        number = phone_of(tenant, text)
        customer = find(session, tenant.program_id, "phone", number) or find(
            session, tenant.program_id, "whatsapp", number
        )
    elif kind == "cpf":
        document_kind, document = identify_document(text)
        customer = find(session, tenant.program_id, document_kind, document)
    else:
        customer = find(session, tenant.program_id, "email", normalize_email(text))
    if customer is None:
        raise NotFound("No such customer at this merchant.", code="CUSTOMER_NOT_FOUND")
    return customer


class _TakenMeanwhile(Exception):
    pass


def identify(
    session: Session, tenant: Tenant, identifiers: dict[str, str], name: str | None = None
) -> Customer:
    """The customer of ``tenant``'s program known by any of ``identifiers``, created if
    none is; identifiers not yet on file are linked to them (a number and a user id)."""
    present = {kind: value for kind, value in identifiers.items() if value}
    customer = None
    found_by = None
    for kind, value in present.items():
        customer = find(session, tenant.program_id, kind, value)
        if customer is not None:
            found_by = kind
            break
    if customer is None and present:
        try:
            with session.begin_nested():
                customer = Customer(program_id=tenant.program_id, tenant_id=tenant.id, name=name)
                session.add(customer)
                session.flush()
                for kind, value in present.items():
                    if not link_identifier(session, customer, kind, value):
                        raise _TakenMeanwhile
            return customer
        except _TakenMeanwhile:
            # Created concurrently by another request (it committed first): theirs is the
            # customer. Ours is undone, so no customer is left without identifiers.
            return identify(session, tenant, identifiers, name)
    if customer is None:
        customer = Customer(program_id=tenant.program_id, tenant_id=tenant.id, name=name)
        session.add(customer)
        session.flush()
    elif name and not customer.name:
        customer.name = name
    for kind, value in present.items():
        if kind != found_by:  # the one it was found by is on file: no need to look again
            link_identifier(session, customer, kind, value)
    return customer


def link_identifier(session: Session, customer: Customer, kind: str, value: str) -> bool:
    """Give ``customer`` this identifier; False when it already belongs to someone else
    in the program (an identifier stays with whoever had it first)."""
    owner = find(session, customer.program_id, kind, value)
    if owner is not None:
        return owner.id == customer.id
    try:
        with session.begin_nested():
            session.add(
                CustomerIdentifier(
                    program_id=customer.program_id, customer_id=customer.id, kind=kind, value=value
                )
            )
        return True
    except IntegrityError:  # linked concurrently
        owner = find(session, customer.program_id, kind, value)
        return owner is not None and owner.id == customer.id


def replace_identifier(session: Session, customer: Customer, kind: str, value: str) -> bool:
    """Make ``value`` the customer's only identifier of ``kind`` (a changed e-mail or
    phone); False, and nothing changed, when it belongs to someone else in the program."""
    owner = find(session, customer.program_id, kind, value)
    if owner is not None:
        return owner.id == customer.id
    session.execute(
        delete(CustomerIdentifier).where(
            CustomerIdentifier.customer_id == customer.id, CustomerIdentifier.kind == kind
        )
    )
    return link_identifier(session, customer, kind, value)
