"""The panel's customer search: one box for a phone number, a CPF/CNPJ, an e-mail or a name,
fast with hundreds of thousands of customers per program.

What was typed is read the way the doors read it: an e-mail, a CPF/CNPJ (check digits
verified, ``kit/documents``) and a phone number (E.164 in the merchant's region,
``kit/phone``; a phone matches WhatsApp numbers too) are exact lookups of
``customer_identifiers (program_id, kind, value)`` (its unique index). Digits that make both
a valid CPF and a possible phone number (11 digits in Brazil) look up both. Anything with
letters is a name: a prefix of the folded name (accents and case removed, ``kit/names``),
a range scan of the index ``customers (program_id, name_key)`` (an empty query lists the
newest first from ``(program_id, id)``). That column has binary
collation ("C" on PostgreSQL, SQLite's default), so ``key >= 'ana' AND key < 'anb'`` is
exactly "starts with 'ana'" on both databases and uses the index with any query plan (a
LIKE with a bound pattern would not, on PostgreSQL). Only prefixes of the whole name are
matched ('ana s' finds 'Ana Silva'; 'silva' does not): a trigram index would match inside
names but exists on PostgreSQL only.

Pages are fetched one row past the page size to know whether there is a next one, never
with a COUNT over the program."""

import re
from dataclasses import dataclass, field

from sqlalchemy import Select, and_, bindparam, or_, select
from sqlalchemy.orm import Session

from fidelia.customers.directory import PHONE_KINDS, balance_column
from fidelia.kit.documents import identify_document
from fidelia.kit.errors import InvalidInput
from fidelia.kit.names import fold, prefix_bounds
from fidelia.kit.phone import phone_of
from fidelia.models import Customer, CustomerIdentifier, Tenant

PER_PAGE = 25
MAX_PAGE = 400  # deeper than anyone pages by hand; a search narrows it instead
LETTERS = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class Reading:
    """How a query was read: 'all', 'name' or 'identifiers' ((kind, value) pairs)."""

    mode: str
    pairs: tuple[tuple[str, str], ...] = ()
    name: str | None = None


@dataclass(frozen=True)
class Results:
    reading: Reading
    items: list[Customer]
    page: int
    has_next: bool
    # customer id -> {"points": n, "cashback": n}, read with the page (same statement)
    balances: dict[int, dict[str, int]] = field(default_factory=dict)


def read_query(tenant: Tenant, query: str) -> Reading:
    text = " ".join((query or "").split())
    if not text:
        return Reading("all")
    if "@" in text:
        try:
            kind, value = identify_document(text)
        except InvalidInput:
            return Reading("identifiers")  # not an e-mail address: nobody has it
        return Reading("identifiers", ((kind, value),))
    if LETTERS.search(text):
        return Reading("name", name=fold(text))
    pairs: list[tuple[str, str]] = []
    try:
        pairs.append(identify_document(text))
    except InvalidInput:
        pass
    try:
        number = phone_of(tenant, text)
    except InvalidInput:
        number = None
    if number:
        pairs.extend((kind, number) for kind in PHONE_KINDS)
    return Reading("identifiers", tuple(pairs))


# The customers with both balances (what the list shows), one statement per page.
_LISTED = select(Customer, balance_column("points"), balance_column("cashback")).where(
    Customer.program_id == bindparam("program_id"), Customer.erased_at.is_(None)
)
# Built once each (building and keying a select cost about as much CPU as running it).
_NEWEST = _LISTED.order_by(Customer.id.desc()).offset(bindparam("offset")).limit(bindparam("limit"))
_BY_NAME = (
    _LISTED.where(Customer.name_key >= bindparam("low"), Customer.name_key < bindparam("high"))
    .order_by(Customer.name_key, Customer.id)
    .offset(bindparam("offset"))
    .limit(bindparam("limit"))
)
_BY_IDENTIFIERS: dict[int, Select[Customer, int, int]] = {}  # by the number of (kind, value)


def _by_identifiers(pairs: int) -> Select[Customer, int, int]:
    """Customers holding any of ``pairs`` identifiers (exact (kind, value) matches on the
    unique index ``(program_id, kind, value)``), in one statement."""
    if pairs not in _BY_IDENTIFIERS:
        holders = select(CustomerIdentifier.customer_id).where(
            CustomerIdentifier.program_id == bindparam("program_id"),
            or_(
                *(
                    and_(
                        CustomerIdentifier.kind == bindparam(f"kind{k}"),
                        CustomerIdentifier.value == bindparam(f"value{k}"),
                    )
                    for k in range(pairs)
                )
            ),
        )
        _BY_IDENTIFIERS[pairs] = (
            _LISTED.where(Customer.id.in_(holders))
            .order_by(Customer.id)
            .offset(bindparam("offset"))
            .limit(bindparam("limit"))
        )
    return _BY_IDENTIFIERS[pairs]


def search(
    session: Session, tenant: Tenant, query: str, page: int = 1, per_page: int = PER_PAGE
) -> Results:
    """A page of the merchant's program's customers (erased ones never show) matching
    ``query``: newest first when it is empty, by name for a name, else exact matches."""
    page = min(max(page, 1), MAX_PAGE)
    reading = read_query(tenant, query)
    params: dict[str, object] = {
        "program_id": tenant.program_id,
        "offset": (page - 1) * per_page,
        "limit": per_page + 1,
    }
    stmt: Select[Customer, int, int]
    if reading.mode == "all":
        stmt = _NEWEST
    elif reading.mode == "name":
        params["low"], params["high"] = prefix_bounds(reading.name or "")
        stmt = _BY_NAME
    else:
        if not reading.pairs:
            return Results(reading, [], 1, False)
        for k, (kind, value) in enumerate(reading.pairs):
            params[f"kind{k}"], params[f"value{k}"] = kind, value
        stmt = _by_identifiers(len(reading.pairs))
    rows = list(session.execute(stmt, params))
    shown = rows[:per_page]
    return Results(
        reading,
        [customer for customer, _points, _cashback in shown],
        page,
        len(rows) > per_page,
        {c.id: {"points": int(p), "cashback": int(cb)} for c, p, cb in shown},
    )


def lookup(session: Session, tenant: Tenant, query: str) -> list[Customer]:
    """The counter's lookup: a phone number or a document only (exact matches)."""
    reading = read_query(tenant, query)
    if reading.mode != "identifiers":
        raise InvalidInput(
            "Type the customer's phone number, CPF/CNPJ or e-mail.", code="INVALID_LOOKUP"
        )
    return search(session, tenant, query, per_page=10).items
