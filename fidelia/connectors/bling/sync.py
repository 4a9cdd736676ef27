"""Reading orders from Bling (outside any transaction) and applying them (in one): shared
by webhook events, the import and reconciliation."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fidelia.connectors.bling import sales
from fidelia.connectors.bling.client import Bling, Link, NotConnected, NotFoundAtBling
from fidelia.connectors.bling.sales import Outcome, Prepared
from fidelia.kit.db import Database
from fidelia.models import BlingConnection, Tenant


def link_for(session: Session, tenant_id: int) -> Link:
    connection = session.scalar(
        select(BlingConnection).where(BlingConnection.tenant_id == tenant_id)
    )
    if connection is None or connection.status == "disconnected" or not connection.company_id:
        raise NotConnected("This merchant is not connected to Bling.")
    return Link.of(connection, session.get_one(Tenant, tenant_id))


def fetch_order(bling: Bling, link: Link, order_id: str) -> dict[str, Any] | None:
    try:
        data = bling.get(link, f"/pedidos/vendas/{order_id}").get("data")
    except NotFoundAtBling:
        return None
    return data if isinstance(data, dict) else None


def fetch_contact(bling: Bling, link: Link, contact_id: str) -> dict[str, Any] | None:
    try:
        data = bling.get(link, f"/contatos/{contact_id}").get("data")
    except NotFoundAtBling:
        return None
    return data if isinstance(data, dict) else None


def prepare_detail(db: Database, bling: Bling, link: Link, order_id: str) -> Prepared:
    """The order's current state at Bling, and its contact's record when not known yet
    (deliveries repeat and arrive out of order: only the current state counts)."""
    order = fetch_order(bling, link, order_id)
    prepared = Prepared(order_id, order)
    contact_id = sales.contact_id_of(order or {})
    if contact_id:
        with db.session(readonly=True) as session:
            known = sales.contact_is_known(session, link, contact_id)
        if not known:
            prepared.contact = fetch_contact(bling, link, contact_id)
    return prepared


def prepare_details(
    db: Database, bling: Bling, link: Link, order_ids: list[str]
) -> dict[str, Prepared | Exception]:
    """``prepare_detail`` for several orders: each order fetched once, then the contacts not
    known yet looked up in one query and fetched once each. An order whose fetch failed
    maps to the error (the others go on)."""
    found: dict[str, Prepared | Exception] = {}
    for order_id in order_ids:
        try:
            found[order_id] = Prepared(order_id, fetch_order(bling, link, order_id))
        except Exception as exc:
            found[order_id] = exc
    wanted = {
        contact_id
        for p in found.values()
        if isinstance(p, Prepared) and (contact_id := sales.contact_id_of(p.order or {}))
    }
    if not wanted:
        return found
    with db.session(readonly=True) as session:
        known = sales.known_contacts(session, link, wanted)
    contacts: dict[str, dict[str, Any] | Exception | None] = {}
    for contact_id in sorted(wanted - known):
        try:
            contacts[contact_id] = fetch_contact(bling, link, contact_id)
        except Exception as exc:
            contacts[contact_id] = exc
    for order_id, prepared in found.items():
        if not isinstance(prepared, Prepared):
            continue
        contact = contacts.get(sales.contact_id_of(prepared.order or {}) or "")
        if isinstance(contact, Exception):
            found[order_id] = contact
        else:
            prepared.contact = contact
    return found


def prepare_page(
    db: Database, bling: Bling, link: Link, items: list[dict[str, Any]]
) -> list[Prepared]:
    """A page of the order list: the detail is fetched only for orders about to earn."""
    with db.session(readonly=True) as session:
        tenant = session.get_one(Tenant, link.tenant_id)
        detail = {
            str(item.get("id")): sales.needs_detail(session, tenant, link, item)
            for item in items
            if item.get("id")
        }
    details = prepare_details(db, bling, link, [i for i, wanted in detail.items() if wanted])
    prepared = []
    for item in items:
        order_id = str(item.get("id") or "")
        if not order_id:
            continue
        if detail.get(order_id):
            found = details[order_id]
            if isinstance(found, Exception):
                raise found
            prepared.append(found)
        else:
            prepared.append(Prepared(order_id, item, detailed=False))
    return prepared


def apply_all(session: Session, link: Link, prepared: list[Prepared]) -> list[Outcome]:
    tenant = session.get_one(Tenant, link.tenant_id)
    return [sales.apply(session, tenant, link, p) for p in prepared]
