"""What the seed 001 routes share: finding customers by document, rendering them."""

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from fidelia.customers.service import find, identify
from fidelia.dialects.pdv.schemas import CustomerOut, OrderCustomerIn
from fidelia.idempotency.service import Along
from fidelia.kit import driver
from fidelia.kit.documents import identify_document, normalize_email
from fidelia.kit.errors import InvalidInput, NotFound
from fidelia.kit.phone import phone_of
from fidelia.models import Customer, CustomerIdentifier, Tenant
from fidelia.redemptions.service import Redeemer, find_redeemer, redeemer_from
from fidelia.redemptions.service import redeemer_read as redemptions_read


def by_document(session: Session, tenant: Tenant, document: str) -> Customer | None:
    kind, value = identify_document(document)
    return find(session, tenant.program_id, kind, value)


def require_customer(session: Session, tenant: Tenant, document: str) -> Customer:
    customer = by_document(session, tenant, document)
    if customer is None:
        raise _no_customer()
    return customer


_IDENTIFIERS = (
    select(CustomerIdentifier.kind, CustomerIdentifier.value)
    .where(CustomerIdentifier.customer_id == bindparam("c"))
    .order_by(CustomerIdentifier.id)
)  # built once: every order's answer renders its customer


def require_redeemer(session: Session, tenant: Tenant, document: str) -> Redeemer:
    """``require_customer`` for a redemption: the customer read with their wallet and
    contact in the same statement (``redemptions.find_redeemer``)."""
    kind, value = identify_document(document)
    redeemer = find_redeemer(session, tenant, kind, value)
    if redeemer is None:
        raise _no_customer()
    return redeemer


def redeemer_read(tenant: Tenant, document: str) -> Along | None:
    """``require_redeemer``'s read, to send along the idempotency claim (``claim(along=)``,
    one round trip on PostgreSQL); None for a document that is no CPF, CNPJ or e-mail (then
    ``require_redeemer`` refuses it after the claim, as without the read)."""
    try:
        kind, value = identify_document(document)
    except InvalidInput:
        return None
    return redemptions_read(tenant, kind, value)


def read_redeemer(session: Session, row: Any) -> Redeemer:
    """The customer of a ``redeemer_read`` row (``Claim.along``), or the 404."""
    redeemer = redeemer_from(session, None if row is None else row._mapping)
    if redeemer is None:
        raise _no_customer()
    return redeemer


def _no_customer() -> NotFound:
    return NotFound("No customer with this document at this merchant.", code="CUSTOMER_NOT_FOUND")


def identifiers_of(session: Session, customer: Customer) -> dict[str, str]:
    rows = driver.execute(session, _IDENTIFIERS, {"c": customer.id})  # PostgreSQL: no SA layer
    found: dict[str, str] = {}
    for kind, value in rows:
        found.setdefault(kind, value)
    return found


def customer_out(session: Session, customer: Customer) -> CustomerOut:
    ids = identifiers_of(session, customer)
    return CustomerOut(
        Id=customer.id,
        OriginalId=ids.get("external"),
        Name=customer.name,
        Email=ids.get("email"),
        Phone=ids.get("phone") or ids.get("whatsapp"),
        Document=ids.get("cpf") or ids.get("cnpj"),
        IsEnrolled=True,
    )


def customer_from_order(
    session: Session, tenant: Tenant, data: OrderCustomerIn | None
) -> Customer | None:
    """The order's customer, created on their first order (validated identifiers only)."""
    if data is None:
        return None
    identifiers: dict[str, str] = {}
    if data.Document:
        kind, value = identify_document(data.Document)
        identifiers[kind] = value
    if data.Email:
        identifiers["email"] = normalize_email(data.Email)
    if data.Phone:
        identifiers["phone"] = phone_of(tenant, data.Phone)
    if data.OriginalId:
        identifiers["external"] = data.OriginalId.strip()
    if not identifiers:
        return None
    return identify(session, tenant, identifiers, name=(data.Name or "").strip() or None)
