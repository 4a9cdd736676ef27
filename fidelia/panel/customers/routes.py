"""Customers (owner): search by phone, CPF/CNPJ, e-mail or name; a customer's page with
identifiers, consents, balances, ledger history, redemptions, orders and vouchers; manual
adjustments (ledger/adjustments.adjust); GDPR erasure after a confirmation step."""

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from fidelia.audit import service as audit
from fidelia.customers import directory, history, profile, search
from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.errors import DomainError
from fidelia.kit.money import to_minor
from fidelia.ledger.adjustments import adjust, reasons_by_entry
from fidelia.models import Tenant
from fidelia.ops.replica import MayLagSharedSessionDep
from fidelia.panel import i18n
from fidelia.panel.auth import OwnerDep, Viewer
from fidelia.panel.customers import words
from fidelia.panel.i18n import N_
from fidelia.panel.web import FormDep, FormRejected, page, panel_router, redirect
from fidelia.vouchers import service as vouchers

router = panel_router("/customers")

ACCOUNT_OPTIONS = [("points", N_("Points")), ("cashback", N_("Cashback"))]
DIRECTION_OPTIONS = [("credit", N_("Credit (add)")), ("debit", N_("Debit (take away)"))]
CONSENT_LABELS = {
    "sms": N_("SMS"),
    "email": N_("E-mail"),
    "whatsapp": N_("WhatsApp"),
    "terms": N_("Terms"),
    "gdpr": N_("Data processing"),
}
IDENTIFIER_LABELS = {
    "whatsapp": N_("WhatsApp"),
    "phone": N_("Phone"),
    "wa_user": N_("WhatsApp user id"),
    "cpf": N_("CPF"),
    "cnpj": N_("CNPJ"),
    "email": N_("E-mail"),
    "external": N_("External id"),
    "membership": N_("Membership key"),
}


def texts_of(viewer: Viewer) -> i18n.Texts:
    return i18n.Texts(viewer.locale, viewer.tenant.timezone if viewer.tenant else "UTC")


def _page_number(raw: str | None) -> int:
    try:
        return max(1, int(raw or 1))
    except ValueError:
        return 1


@router.get("")
def customers(
    request: Request, viewer: OwnerDep, session: MayLagSharedSessionDep, q: str = ""
) -> HTMLResponse:
    tenant = viewer.tenant_in(session)
    number = _page_number(request.query_params.get("page"))
    found = search.search(session, tenant, q[:200], number)
    ids = [c.id for c in found.items]
    return page(
        request,
        "customers.html",
        q=q[:200],
        results=found,
        identifiers=directory.identifiers_by_customer(session, ids),
        balances=found.balances,
        currency=tenant.currency,
    )


def _customer_page(
    request: Request,
    viewer: Viewer,
    session: Session,
    tenant: Tenant,
    card: profile.Card,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
) -> HTMLResponse:
    customer = card.customer
    before_raw = request.query_params.get("before")
    before = int(before_raw) if before_raw and before_raw.isdigit() else None
    entries = history.ledger_page(session, customer, before)
    texts = texts_of(viewer)
    return page(
        request,
        "customer.html",
        status=status,
        customer=customer,
        identifiers=sorted(card.identifiers.items()),
        identifier_labels=IDENTIFIER_LABELS,
        consents=card.consents,
        consent_labels=CONSENT_LABELS,
        wallet=card.wallet,
        entries=entries,
        before=before,
        explained={e.id: words.explain(texts, e) for e in entries.entries},
        shown={
            e.id: words.amount(texts, e.account, e.amount, tenant.currency) for e in entries.entries
        },
        adjustments=reasons_by_entry(session, entries.entries),
        redemptions=history.redemptions_of(session, tenant, customer)
        if card.has_redemptions
        else [],
        orders=history.orders_of(session, tenant, customer) if card.has_orders else [],
        vouchers=history.vouchers_of(session, tenant, customer) if card.has_vouchers else [],
        voucher_state=vouchers.state_of,
        words=words,
        currency=tenant.currency,
        account_options=ACCOUNT_OPTIONS,
        direction_options=DIRECTION_OPTIONS,
        errors=errors or {},
        form=form or {},
    )


@router.get("/{customer_id}")
def customer_page(
    request: Request, customer_id: int, viewer: OwnerDep, session: MayLagSharedSessionDep
) -> HTMLResponse:
    tenant = viewer.tenant_in(session)
    card = profile.card(session, tenant, customer_id)
    return _customer_page(request, viewer, session, tenant, card)


def parse_adjustment(tenant: Tenant, form: dict[str, str]) -> tuple[str, int]:
    """(account, signed amount) from the form; the panel's own messages, translated."""
    account = form.get("account", "")
    if account not in ("points", "cashback"):
        raise FormError("account", N_("Choose points or cashback."))
    raw = form.get("amount", "").strip()
    if account == "points":
        if not raw.isdigit() or int(raw) <= 0:
            raise FormError("amount", N_("Points are a whole number above zero."))
        value = int(raw)
    else:
        try:
            value = to_minor(raw.replace(",", "."), tenant.currency)
        except DomainError as exc:
            raise FormError("amount", N_("Type an amount of money above zero.")) from exc
        if value <= 0:
            raise FormError("amount", N_("Type an amount of money above zero."))
    direction = form.get("direction", "")
    if direction not in ("credit", "debit"):
        raise FormError("direction", N_("Choose credit or debit."))
    if not form.get("reason", "").strip():
        raise FormError("reason", N_("Say why: the reason is kept with the adjustment."))
    return account, value if direction == "credit" else -value


class FormError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@router.post("/{customer_id}/adjust")
def adjust_balance(
    request: Request, customer_id: int, viewer: OwnerDep, session: SessionDep, form: FormDep
) -> Response:
    tenant = viewer.tenant_in(session)
    customer = directory.get_in_program(session, tenant.program_id, customer_id)
    texts = texts_of(viewer)
    try:
        account, amount = parse_adjustment(tenant, form)
        row, entry = adjust(
            session, tenant, customer, account, amount, form.get("reason", ""), viewer.actor
        )
    except FormError as exc:
        errors = {exc.field: texts.gettext(exc.message)}
        card = profile.card(session, tenant, customer.id)
        raise FormRejected(
            _customer_page(request, viewer, session, tenant, card, 422, errors, form)
        ) from exc
    except DomainError as exc:
        field = "reason" if "REASON" in exc.code else "amount"
        card = profile.card(session, tenant, customer.id)
        raise FormRejected(
            _customer_page(request, viewer, session, tenant, card, 422, {field: exc.message}, form)
        ) from exc
    audit.record(
        session,
        viewer.actor,
        "ledger.adjust",
        "customer",
        customer.id,
        tenant_id=tenant.id,
        after={
            "adjustment": row.id,
            "account": account,
            "amount": amount,
            "balance_after": entry.balance_after,
        },
    )
    notice = texts.gettext(N_("Adjustment saved: %(amount)s.")) % {
        "amount": words.amount(texts, account, amount, tenant.currency)
    }
    return redirect(request, f"/panel/customers/{customer.id}", notice)


@router.get("/{customer_id}/erase")
def erase_confirm(
    request: Request, customer_id: int, viewer: OwnerDep, session: ReadSessionDep
) -> HTMLResponse:
    tenant = viewer.tenant_in(session)
    customer = directory.get_in_program(session, tenant.program_id, customer_id)
    return page(request, "customer_erase.html", customer=customer, errors={})


@router.post("/{customer_id}/erase")
def erase(
    request: Request, customer_id: int, viewer: OwnerDep, session: SessionDep, form: FormDep
) -> Response:
    """Only with the confirmation box ticked. The audit keeps the fact and the id only."""
    tenant = viewer.tenant_in(session)
    customer = directory.get_in_program(session, tenant.program_id, customer_id)
    texts = texts_of(viewer)
    if form.get("confirm") != "yes":
        errors = {"confirm": texts.gettext(N_("Tick the box to confirm the erasure."))}
        raise FormRejected(
            page(request, "customer_erase.html", status=422, customer=customer, errors=errors)
        )
    profile.erase(session, tenant, customer)
    audit.record(
        session, viewer.actor, "customer.erase", "customer", customer.id, tenant_id=tenant.id
    )
    notice = texts.gettext(N_("Customer #%(id)s was erased.")) % {"id": customer.id}
    return redirect(request, "/panel/customers", notice)
