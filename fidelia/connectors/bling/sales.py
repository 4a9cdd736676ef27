"""Bling orders and contacts mapped onto the engine: the customer from the order's contact,
the value that counts, and the order upserted through the orders service.

Decisions (docs/bling.md): an order earns once, when Bling shows it in one of the
merchant's "sale done" situations, with products minus discounts (freight and other costs
excluded); while it has not earned, edits change the value it will earn. In a "cancelled"
situation, or deleted, after it earned: the orders service reverses it once (spent points
leave a negative balance, a debt). Cancelled or deleted before it earned: nothing was
given, and an order deleted is closed for good.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from fidelia.connectors.bling import hooks
from fidelia.connectors.bling.client import Link
from fidelia.customers.service import find, identify, link_identifier
from fidelia.kit.documents import identify_document, normalize_email
from fidelia.kit.errors import InvalidInput
from fidelia.kit.money import decimal_of, exponent
from fidelia.kit.phone import phone_of
from fidelia.models import Customer, CustomerIdentifier, Order, Tenant
from fidelia.models.order import CANCELLED, COMPLETE
from fidelia.orders import service as orders
from fidelia.orders.service import OrderData

CONTACT_KIND = "bling"  # identifier kind: "<companyId>:<contactId>"


def original_id(order_id: Any) -> str:
    return f"bling:{order_id}"


def contact_key(link: Link, contact_id: Any) -> str:
    return f"{link.company_id}:{contact_id}"


def _decimal(raw: Any) -> Decimal:
    try:
        return decimal_of(raw if raw is not None else 0)
    except ValueError:
        return Decimal(0)


def paid_value(order: dict[str, Any], currency: str) -> int:
    """What counts, in minor units: ``totalProdutos`` less the order's discount (``desconto``
    in currency, or a percentage), never below zero. Freight (``transporte.frete``) and
    other costs (``outrasDespesas``) do not count (seed 001's OrderTotal)."""
    products = _decimal(order.get("totalProdutos"))
    raw = order.get("desconto")
    discount_info: dict[str, Any] = raw if isinstance(raw, dict) else {}
    discount = _decimal(discount_info.get("valor"))
    if str(discount_info.get("unidade") or "").upper().startswith("PERC"):
        discount = products * discount / 100
    value = max(products - discount, Decimal(0))
    return int((value.scaleb(exponent(currency))).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def situation_of(order: dict[str, Any]) -> int | None:
    situation = order.get("situacao")
    if isinstance(situation, dict) and situation.get("id") is not None:
        try:
            return int(situation["id"])
        except (TypeError, ValueError):
            return None
    return None


def contact_id_of(order: dict[str, Any]) -> str | None:
    contact = order.get("contato")
    if isinstance(contact, dict) and contact.get("id"):
        return str(contact["id"])
    return None


def contact_identifiers(tenant: Tenant, contact: dict[str, Any]) -> dict[str, str]:
    """CPF/CNPJ (check digits verified), mobile (E.164 in the merchant's country) and
    e-mail; an invalid one is left out, not fatal (a typo in the ERP must not stop sales)."""
    found: dict[str, str] = {}
    document = str(contact.get("numeroDocumento") or "").strip()
    if document and "@" not in document:
        try:
            kind, value = identify_document(document)
            found[kind] = value
        except InvalidInput:
            pass
    mobile = str(contact.get("celular") or "").strip()
    if mobile:
        try:
            found["phone"] = phone_of(tenant, mobile)
        except InvalidInput:
            pass
    email = str(contact.get("email") or "").strip()
    if email:
        try:
            found["email"] = normalize_email(email)
        except InvalidInput:
            pass
    return found


def known_contact(session: Session, link: Link, contact_id: str) -> Customer | None:
    return find(session, link.program_id, CONTACT_KIND, contact_key(link, contact_id))


def contact_is_known(session: Session, link: Link, contact_id: str) -> bool:
    return (
        session.scalar(
            select(CustomerIdentifier.id).where(
                CustomerIdentifier.program_id == link.program_id,
                CustomerIdentifier.kind == CONTACT_KIND,
                CustomerIdentifier.value == contact_key(link, contact_id),
            )
        )
        is not None
    )


def known_contacts(session: Session, link: Link, contact_ids: set[str]) -> set[str]:
    """Which of these contacts are linked to a customer already."""
    keys = {contact_key(link, c): c for c in contact_ids}
    found = session.scalars(
        select(CustomerIdentifier.value).where(
            CustomerIdentifier.program_id == link.program_id,
            CustomerIdentifier.kind == CONTACT_KIND,
            CustomerIdentifier.value.in_(sorted(keys)),
        )
    )
    return {keys[value] for value in found}


def customer_from_contact(
    session: Session, tenant: Tenant, link: Link, contact: dict[str, Any]
) -> Customer | None:
    """The person behind a Bling contact, found by the contact itself, their CPF/CNPJ,
    e-mail or mobile (also as a WhatsApp number the bot knows), created when new. A contact
    with none of those (Bling's "Consumidor Final", a walk-in) is nobody: None."""
    identifiers = contact_identifiers(tenant, contact)
    if not identifiers or not contact.get("id"):
        return None
    name = str(contact.get("nome") or "").strip()[:200] or None
    customer = known_contact(session, link, str(contact["id"]))
    if customer is None and "phone" in identifiers:
        customer = find(session, tenant.program_id, "whatsapp", identifiers["phone"])
    if customer is None:
        customer = identify(session, tenant, identifiers, name=name)
    else:
        for kind, value in identifiers.items():
            link_identifier(session, customer, kind, value)
        if name and not customer.name:
            customer.name = name
    birthday = _birthday(contact)
    if birthday is not None and customer.birthday is None:
        customer.birthday = birthday
    link_identifier(session, customer, CONTACT_KIND, contact_key(link, contact["id"]))
    return customer


def _birthday(contact: dict[str, Any]) -> date | None:
    extra = contact.get("dadosAdicionais")
    raw = extra.get("dataNascimento") if isinstance(extra, dict) else None
    try:
        born = date.fromisoformat(str(raw)) if raw else None
    except ValueError:
        return None
    return born if born and 1900 < born.year else None


def _placed_at(tenant: Tenant, raw: Any) -> datetime | None:
    try:
        day = date.fromisoformat(str(raw)[:10]) if raw else None
    except ValueError:
        return None
    if day is None or day.year < 1900:
        return None
    try:
        zone = ZoneInfo(tenant.timezone)
    except Exception:
        zone = ZoneInfo("UTC")
    return datetime.combine(day, time(), zone)


@dataclass
class Prepared:
    """One order as fetched from Bling (None: it no longer exists there) and, when its
    contact was not known yet, the contact's record."""

    order_id: str
    order: dict[str, Any] | None
    contact: dict[str, Any] | None = None
    detailed: bool = True  # the order's detail (not a list item): its value is exact
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    state: str  # earned | reversed | pending | closed | unknown | unchanged
    order: Order | None = None
    customer: Customer | None = None


def resolve_customer(
    session: Session, tenant: Tenant, link: Link, prepared: Prepared
) -> Customer | None:
    if prepared.contact:
        return customer_from_contact(session, tenant, link, prepared.contact)
    contact_id = contact_id_of(prepared.order or {})
    return known_contact(session, link, contact_id) if contact_id else None


def apply(session: Session, tenant: Tenant, link: Link, prepared: Prepared) -> Outcome:
    """Bring our copy of the order to what Bling shows now (idempotent: applying the same
    state again changes nothing, whatever the order events arrived in)."""
    existing = session.scalar(
        select(Order)
        .where(Order.tenant_id == tenant.id, Order.original_id == original_id(prepared.order_id))
        .with_for_update()
    )
    if prepared.order is None:  # deleted at Bling
        if existing is None or existing.state == CANCELLED:
            return Outcome("unknown" if existing is None else "unchanged", existing)
        was_complete = existing.state == COMPLETE
        orders.cancel(session, existing)
        existing.status_text = "deleted"
        return Outcome("reversed" if was_complete else "closed", existing)
    situation = situation_of(prepared.order)
    customer = resolve_customer(session, tenant, link, prepared)
    earns = situation in link.earning
    cancels = situation in link.cancelled
    before = existing.state if existing is not None else None
    if before in (COMPLETE, CANCELLED) and not (before == COMPLETE and cancels):
        return Outcome("unchanged", existing, customer)  # final, or earned and still valid
    if earns and not prepared.detailed:
        raise ValueError("an order that earns is applied from its detail, not a list item")
    data = OrderData(
        original_id=original_id(prepared.order_id),
        total=paid_value(prepared.order, tenant.currency),
        customer=customer,
        completed=earns,
        cancelled=cancels and before == COMPLETE,
        status_text=f"situacao:{situation}" if situation is not None else None,
        placed_at=_placed_at(tenant, prepared.order.get("data")),
        details={
            "source": "bling",
            "company": link.company_id,
            "numero": prepared.order.get("numero"),
            "numeroLoja": prepared.order.get("numeroLoja"),
            "situacao": situation,
            "contato": contact_id_of(prepared.order),
        },
    )
    order = orders.upsert(session, tenant, data)
    if before == COMPLETE and order.state == CANCELLED:
        return Outcome("reversed", order, customer)
    if before != COMPLETE and order.state == COMPLETE:
        if customer is not None:
            hooks.sale_earned(session, tenant, customer, order)
        return Outcome("earned", order, customer)
    return Outcome("pending", order, customer)


def needs_detail(session: Session, tenant: Tenant, link: Link, item: dict[str, Any]) -> bool:
    """A list item is enough unless the order is about to earn (its exact value is only in
    the detail): in a "sale done" situation and not yet complete or cancelled here."""
    if situation_of(item) not in link.earning:
        return False
    state = session.scalar(
        select(Order.state).where(
            Order.tenant_id == tenant.id, Order.original_id == original_id(item.get("id"))
        )
    )
    return state not in (COMPLETE, CANCELLED)
