"""The Bling connector's service functions, for the panel's Bling card, the CLI and the
callback route: connect, status, situations, import, preview, disconnect.

Functions that call Bling take a ``Bling`` client (``client.Bling(db, settings)``); those
that may refresh a token do it in their own transaction, so call them with a read-only
session (or none), never inside a write transaction on SQLite.
"""

import hmac
import secrets
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from fidelia.connectors.bling import imports, sales, sync
from fidelia.connectors.bling.client import (
    Bling,
    BlingError,
    InvalidGrant,
    Link,
    NotConnected,
)
from fidelia.connectors.bling.sales import Prepared
from fidelia.customers.service import find
from fidelia.kit.clock import now
from fidelia.kit.db import Database
from fidelia.kit.errors import Conflict, DomainError, InvalidInput, NotFound
from fidelia.kit.security import digest
from fidelia.kit.settings import Settings
from fidelia.models import (
    BlingConnection,
    BlingEvent,
    BlingImport,
    BlingOAuthState,
    Order,
    Tenant,
)
from fidelia.models.order import CANCELLED, COMPLETE
from fidelia.orders.earning import bonus_for

STATE_LIFETIME = timedelta(minutes=10)
BINDING_COOKIE = "fidelia_bling_binding"
CALLBACK_PATH = "/connectors/bling/callback"
# Bling's built-in sales situations: "Atendido" (done) and "Cancelado". Custom situations
# inherit from one of them (``idHerdado``) and are chosen with it by default.
DEFAULT_EARNING = [9]
DEFAULT_CANCELLED = [12]


class StateRefused(DomainError):
    status = 400
    code = "BLING_STATE_REFUSED"


class NotConfigured(Conflict):
    code = "BLING_NOT_CONFIGURED"


def redirect_uri(settings: Settings) -> str:
    return settings.public_url.rstrip("/") + CALLBACK_PATH


def authorize_url(settings: Settings, state: str) -> str:
    query = urlencode(
        {"response_type": "code", "client_id": settings.bling_client_id, "state": state}
    )
    return f"{settings.bling_authorize_url}?{query}"


def start_connect(
    session: Session, tenant: Tenant, browser_binding: str, settings: Settings
) -> str:
    """Bling's authorize URL for this merchant, with a fresh single-use ``state`` valid 10
    minutes and bound to ``browser_binding`` (e.g. the panel session id). The caller must
    also give the same browser the cookie ``fidelia_bling_binding`` = ``browser_binding``
    (Path=/connectors/bling, HttpOnly, Secure, SameSite=Lax: the callback is a top-level
    navigation back from Bling, which Lax cookies survive): the callback refuses a state
    presented by any other browser."""
    if not settings.bling_client_id or not settings.bling_client_secret:
        raise NotConfigured("Set FIDELIA_BLING_CLIENT_ID and FIDELIA_BLING_CLIENT_SECRET.")
    if not browser_binding or len(browser_binding) < 16:
        raise InvalidInput("The browser binding must be a random value of 16+ characters.")
    state = secrets.token_urlsafe(32)
    session.add(
        BlingOAuthState(
            tenant_id=tenant.id,
            state_digest=digest(state),
            binding_digest=digest(browser_binding),
            expires_at=now() + STATE_LIFETIME,
        )
    )
    session.flush()
    return authorize_url(settings, state)


def begin_url(settings: Settings, authorize: str, binding: str) -> str:
    """For operators (``fidelia bling connect``): a Fidelia link that sets the binding
    cookie in the browser that opens it and sends that browser on to Bling."""
    state = authorize.split("state=", 1)[1]
    query = urlencode({"state": state, "binding": binding})
    return settings.public_url.rstrip("/") + f"/connectors/bling/begin?{query}"


def check_begin(session: Session, state: str, binding: str) -> None:
    row = session.scalar(
        select(BlingOAuthState).where(BlingOAuthState.state_digest == digest(state))
    )
    if (
        row is None
        or row.used_at is not None
        or row.expires_at < now()
        or not hmac.compare_digest(row.binding_digest, digest(binding or ""))
    ):
        raise StateRefused("This connection link is unknown, used or expired.")


def _consume_state(db: Database, state: str, binding: str | None) -> int:
    """The merchant the state was issued for; the state is burnt whatever follows."""
    problem = None
    with db.session() as session:
        row = session.scalar(
            select(BlingOAuthState)
            .where(BlingOAuthState.state_digest == digest(state or ""))
            .with_for_update()
        )
        if row is None:
            raise StateRefused("Unknown state: start the connection again from the panel.")
        if row.used_at is not None:
            raise StateRefused("This state was already used: start the connection again.")
        row.used_at = now()
        if row.expires_at < now():
            problem = "This state expired (10 minutes): start the connection again."
        elif not binding or not hmac.compare_digest(row.binding_digest, digest(binding)):
            problem = "This connection was started in another browser: start it again here."
        tenant_id = row.tenant_id
    if problem:
        raise StateRefused(problem)
    return tenant_id


def sales_situations_with(bling: Bling, get: Any) -> list[dict[str, Any]]:
    """Bling's situations of the sales module (``/situacoes/modulos`` → the module named
    "Vendas" → ``/situacoes/modulos/{id}``)."""
    modules = get("/situacoes/modulos").get("data") or []
    module = next(
        (
            m
            for m in modules
            if isinstance(m, dict)
            and (
                str(m.get("nome", "")).lower() == "vendas"
                or "venda" in str(m.get("descricao", "")).lower()
            )
        ),
        None,
    )
    if module is None:
        return []
    found = get(f"/situacoes/modulos/{module['id']}").get("data") or []
    return [s for s in found if isinstance(s, dict) and s.get("id") is not None]


def default_choice(situations: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """ "Atendido" earns, "Cancelado" reverses, and custom situations inheriting either."""

    def pick(names: set[str], fallback: list[int]) -> list[int]:
        base = {int(s["id"]) for s in situations if str(s.get("nome", "")).strip().lower() in names}
        base |= set(fallback) if not situations else set()
        heirs = {int(s["id"]) for s in situations if int(s.get("idHerdado") or 0) in base}
        return sorted(base | heirs) or fallback

    return pick({"atendido"}, DEFAULT_EARNING), pick({"cancelado"}, DEFAULT_CANCELLED)


def complete_connect(db: Database, bling: Bling, code: str, state: str, binding: str | None) -> int:
    """The OAuth callback: check the state, trade the single-use code for tokens, read the
    company, store the connection and queue the first import. Returns the tenant id."""
    tenant_id = _consume_state(db, state, binding)
    if not code:
        raise StateRefused("Bling sent no authorization code.")
    try:
        answer = bling.exchange_code(code)
    except InvalidGrant as exc:
        raise StateRefused(f"Bling refused the authorization code: {exc.message}") from exc
    except BlingError as exc:
        raise DomainError(
            f"Bling could not be reached: {exc}", code="BLING_UNAVAILABLE", status=502
        ) from exc
    token = str(answer["access_token"])
    company = bling.company(token)
    company_id = str(company.get("id") or "")
    if not company_id:
        raise DomainError(
            "Bling did not say which company this is.", code="BLING_NO_COMPANY", status=502
        )

    def get(path: str) -> dict[str, Any]:
        response = bling.call_with(token, "oauth", path)
        return response.json() if response.status_code == 200 else {}

    try:
        earning, cancelled = default_choice(sales_situations_with(bling, get))
    except (BlingError, ValueError):
        earning, cancelled = DEFAULT_EARNING, DEFAULT_CANCELLED
    with db.session() as session:
        tenant = session.get_one(Tenant, tenant_id)
        taken = session.scalar(
            select(BlingConnection).where(
                BlingConnection.company_id == company_id, BlingConnection.tenant_id != tenant_id
            )
        )
        if taken is not None:
            raise Conflict(
                "This Bling company is already connected to another merchant.",
                code="BLING_COMPANY_TAKEN",
            )
        connection = session.scalar(
            select(BlingConnection).where(BlingConnection.tenant_id == tenant_id).with_for_update()
        )
        if connection is None:
            connection = BlingConnection(tenant_id=tenant_id, token_version=0)
            session.add(connection)
        first = connection.company_id != company_id or connection.status != "connected"
        connection.company_id = company_id
        connection.company_name = str(company.get("nome") or "")[:200] or None
        connection.status = "connected"
        connection.last_error = None
        bling.store_tokens(connection, answer)
        if first:
            connection.connected_at = now()
            connection.reconciled_until = now()
        if not connection.earning_situations:
            connection.earning_situations = earning
            connection.cancelled_situations = cancelled
        session.flush()
        # Events refused while the connection was broken get another chance.
        session.execute(
            update(BlingEvent)
            .where(BlingEvent.company_id == company_id, BlingEvent.status == "failed")
            .values(status="pending", attempts=0, next_attempt_at=now())
        )
        if first:
            since = now().date() - timedelta(days=bling.settings.bling_import_days)
            try:
                with session.begin_nested():
                    imports.start_import(session, tenant, since)
            except Conflict:
                pass  # an unfinished import resumes as it is
    return tenant_id


def disconnect(session: Session, tenant: Tenant, bling: Bling) -> dict[str, Any]:
    """Revoke the tokens at Bling (best effort) and delete them; webhooks of the company
    are ignored from now on. Returns what was revoked."""
    connection = session.scalar(
        select(BlingConnection).where(BlingConnection.tenant_id == tenant.id).with_for_update()
    )
    if connection is None or connection.status == "disconnected":
        raise NotConnected("This merchant is not connected to Bling.")
    revoked = {"access_token": False, "refresh_token": False}
    for field in ("refresh_token", "access_token"):
        sealed = getattr(connection, field)
        if sealed:
            try:
                revoked[field] = bling.revoke(bling.box.open(sealed))
            except ValueError:
                revoked[field] = False
    connection.access_token = connection.refresh_token = None
    connection.access_expires_at = None
    connection.token_version += 1
    connection.status = "disconnected"
    connection.company_id = None
    session.execute(
        update(BlingImport)
        .where(BlingImport.tenant_id == tenant.id, BlingImport.status.in_(imports.ACTIVE))
        .values(status="failed", last_error="disconnected", locked_until=None)
    )
    return {"disconnected": True, "revoked": revoked}


def status(session: Session, tenant: Tenant) -> dict[str, Any]:
    """What the Bling card shows."""
    connection = session.scalar(
        select(BlingConnection).where(BlingConnection.tenant_id == tenant.id)
    )
    job = session.scalar(
        select(BlingImport)
        .where(BlingImport.tenant_id == tenant.id)
        .order_by(BlingImport.id.desc())
    )
    if connection is None:
        return {"status": "not_connected", "import": imports.progress(job) if job else None}

    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "status": connection.status,
        "company_id": connection.company_id,
        "company_name": connection.company_name,
        "connected_since": iso(connection.connected_at),
        "last_sync_at": iso(connection.last_sync_at),
        "last_error": connection.last_error,
        "last_error_at": iso(connection.last_error_at),
        "reconciled_until": iso(connection.reconciled_until),
        "earning_situations": connection.earning_situations,
        "cancelled_situations": connection.cancelled_situations,
        "import": imports.progress(job) if job else None,
    }


def _link(db: Database, tenant_id: int) -> Link:
    with db.session(readonly=True) as session:
        return sync.link_for(session, tenant_id)


def sales_situations(db: Database, bling: Bling, tenant: Tenant) -> list[dict[str, Any]]:
    """Bling's sales situations with the merchant's current choice: ``[{id, nome, earns,
    cancels, idHerdado}]`` (calls Bling)."""
    link = _link(db, tenant.id)
    found = sales_situations_with(bling, lambda path: bling.get(link, path))
    return [
        {
            "id": int(s["id"]),
            "nome": s.get("nome"),
            "idHerdado": s.get("idHerdado"),
            "earns": int(s["id"]) in link.earning,
            "cancels": int(s["id"]) in link.cancelled,
        }
        for s in found
    ]


def set_situations(
    session: Session, tenant: Tenant, earning: list[int], cancelled: list[int]
) -> dict[str, Any]:
    """The merchant's choice: which situations mean "sale done" and which "cancelled"."""
    if not earning:
        raise InvalidInput("Choose at least one situation that means the sale is done.")
    if set(earning) & set(cancelled):
        raise InvalidInput("A situation cannot both earn and cancel.")
    connection = session.scalar(
        select(BlingConnection).where(BlingConnection.tenant_id == tenant.id)
    )
    if connection is None:
        raise NotConnected("This merchant is not connected to Bling.")
    connection.earning_situations = sorted({int(s) for s in earning})
    connection.cancelled_situations = sorted({int(s) for s in cancelled})
    return {
        "earning_situations": connection.earning_situations,
        "cancelled_situations": connection.cancelled_situations,
    }


def start_import(session: Session, tenant: Tenant, since: date) -> dict[str, Any]:
    """Queue (or find the unfinished) import since ``since``; the worker runs it."""
    connection = session.scalar(
        select(BlingConnection).where(BlingConnection.tenant_id == tenant.id)
    )
    if connection is None or connection.status != "connected":
        raise NotConnected("This merchant is not connected to Bling.")
    return imports.progress(imports.start_import(session, tenant, since))


def preview_order(db: Database, bling: Bling, tenant: Tenant, order_id: str) -> dict[str, Any]:
    """ "Test a reference sale": what Fidelia would do with this Bling order, writing
    nothing — the customer (found, or would be created), the value that counts, what it
    would earn, and whether its situation counts. Calls Bling (the order, its contact)."""
    if not str(order_id).strip().isdigit():
        raise InvalidInput("A Bling order id is a number.")
    link = _link(db, tenant.id)
    order = sync.fetch_order(bling, link, str(order_id).strip())
    if order is None:
        raise NotFound(
            f"Bling has no order {order_id} for this company.", code="BLING_ORDER_NOT_FOUND"
        )
    contact_id = sales.contact_id_of(order)
    contact = sync.fetch_contact(bling, link, contact_id) if contact_id else None
    with db.session(readonly=True) as session:
        tenant = session.get_one(Tenant, tenant.id)
        identifiers = sales.contact_identifiers(tenant, contact or {})
        customer = sales.known_contact(session, link, contact_id) if contact_id else None
        for kind, known in identifiers.items():
            if customer is not None:
                break
            customer = find(session, tenant.program_id, kind, known)
            if customer is None and kind == "phone":
                customer = find(session, tenant.program_id, "whatsapp", known)
        situation = sales.situation_of(order)
        value = sales.paid_value(order, tenant.currency)
        bonus = bonus_for(tenant, value)
        ours = session.scalar(
            select(Order).where(
                Order.tenant_id == tenant.id,
                Order.original_id == sales.original_id(order_id),
            )
        )
        earns = situation in link.earning
        if customer is None and not identifiers:
            outcome = "no customer: the contact has no CPF/CNPJ, mobile or e-mail"
        elif ours is not None and ours.state == COMPLETE:
            outcome = "already earned"
        elif ours is not None and ours.state == CANCELLED:
            outcome = "closed (cancelled or deleted)"
        elif earns:
            outcome = "would earn now"
        elif situation in link.cancelled:
            outcome = "cancelled: earns nothing"
        else:
            outcome = "would earn when it reaches a situation that counts"
        return {
            "order": {
                "id": str(order.get("id")),
                "numero": order.get("numero"),
                "situacao": situation,
                "total": order.get("total"),
                "totalProdutos": order.get("totalProdutos"),
            },
            "customer": {
                "found": customer is not None,
                "would_be_created": customer is None and bool(identifiers),
                "id": customer.id if customer is not None else None,
                "name": (customer.name if customer is not None else None)
                or (contact or {}).get("nome"),
                "identifiers": identifiers,
            },
            "value": value,
            "currency": tenant.currency,
            "points": bonus.points if (customer is not None or identifiers) else 0,
            "cashback": bonus.cashback if (customer is not None or identifiers) else 0,
            "situation_counts": earns,
            "situation_cancels": situation in link.cancelled,
            "outcome": outcome,
        }


__all__ = [
    "BINDING_COOKIE",
    "Prepared",
    "complete_connect",
    "disconnect",
    "preview_order",
    "sales_situations",
    "set_situations",
    "start_connect",
    "start_import",
    "status",
]
