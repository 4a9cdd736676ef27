"""The counter (cashiers and owners), mobile first: a sale PIN with its QR on screen and a
printable slip; a customer looked up by phone or document, their balance and rewards, and a
redemption (with the merchant's proof-of-presence code when it asks for one); a voucher
checked and validated. Every action goes through the same services as the doors."""

import io
from datetime import datetime
from zoneinfo import ZoneInfo

import segno
from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidelia.audit import service as audit
from fidelia.challenges import short_codes
from fidelia.customers import directory, search
from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.errors import DomainError, NotFound
from fidelia.kit.money import to_minor
from fidelia.models import Customer, Pin, Tenant
from fidelia.panel import i18n
from fidelia.panel.auth import CounterDep, Viewer
from fidelia.panel.customers import words
from fidelia.panel.i18n import N_
from fidelia.panel.web import FormDep, FormRejected, page, panel_router, redirect
from fidelia.pins import service as pins
from fidelia.redemptions.service import redeem, wallet_of
from fidelia.rewards import eligibility
from fidelia.rewards.service import active_rewards, get_for_tenant
from fidelia.state import AppState
from fidelia.vouchers import service as vouchers

router = panel_router("/counter")

REASONS = {
    eligibility.OK: N_("Can be redeemed"),
    eligibility.NO_POINTS: N_("Not enough points"),
    eligibility.MIN_VALUE: N_("The purchase is below the reward's minimum"),
    eligibility.NO_CASHBACK: N_("Not enough cashback"),
    eligibility.VALUE_EXCEEDS: N_("The discount is more than the purchase"),
    eligibility.MIN_PERCENT: N_("The discount is more than the share of the purchase allowed"),
    eligibility.NOT_COMBINABLE: N_("Cannot be combined with another discount"),
    eligibility.PRODUCT_LIMIT: N_("Out of stock"),
    eligibility.PRODUCT_MISCONFIGURED: N_("The reward's product is not set up"),
}


def texts_of(viewer: Viewer) -> i18n.Texts:
    return i18n.Texts(viewer.locale, viewer.tenant.timezone if viewer.tenant else "UTC")


def whatsapp_url(namespace: str, code: str) -> str:
    """The same link as the PIN door's (pin_whatsapp.routes.whatsapp_url)."""
    from fidelia.dialects.pin_whatsapp.routes import whatsapp_url as door_url

    return door_url(namespace, code)


def _amount(tenant: Tenant, raw: str | None) -> int | None:
    """Money typed at the counter ('12,50' or '12.50'); None when left blank."""
    text = (raw or "").strip().replace(",", ".")
    return to_minor(text, tenant.currency) if text else None


# -- Sale PIN ---------------------------------------------------------------------------


@router.get("/pin")
def pin_form(request: Request, viewer: CounterDep, session: ReadSessionDep) -> HTMLResponse:
    tenant = viewer.tenant_in(session)
    return page(request, "counter_pin.html", tenant=tenant, errors={}, form={})


@router.post("/pin")
def pin_generate(
    request: Request, viewer: CounterDep, session: SessionDep, state: AppState, form: FormDep
) -> Response:
    tenant = viewer.tenant_in(session)
    texts = texts_of(viewer)
    try:
        amount = _amount(tenant, form.get("amount"))
        namespace = pins.namespace_of(tenant, state.settings.bot_number)
        pin = pins.generate(session, tenant, namespace, amount, state.pin_policy)
    except DomainError as exc:
        message = exc.message
        if exc.code == "BELOW_MINIMUM":
            message = texts.gettext(N_("The purchase is below the minimum of %(amount)s.")) % {
                "amount": texts.money(tenant.min_purchase, tenant.currency)
            }
        raise FormRejected(
            page(
                request,
                "counter_pin.html",
                status=422,
                tenant=tenant,
                errors={"amount": message},
                form=form,
            )
        ) from exc
    audit.record(
        session,
        viewer.actor,
        "pin.generate",
        "pin",
        pin.id,
        tenant_id=tenant.id,
        after={"amount": amount, "points": pin.points},
    )
    return redirect(request, f"/panel/counter/pins/{pin.id}")


def _pin_of(session: Session, tenant_id: int, pin_id: int) -> Pin:
    pin = session.scalar(select(Pin).where(Pin.id == pin_id, Pin.tenant_id == tenant_id))
    if pin is None:
        raise NotFound("No such PIN at this merchant.", code="PIN_NOT_FOUND")
    return pin


@router.get("/pins/{pin_id}")
def pin_slip(
    request: Request, pin_id: int, viewer: CounterDep, session: ReadSessionDep
) -> HTMLResponse:
    tenant = viewer.tenant_in(session)
    pin = _pin_of(session, tenant.id, pin_id)
    local: datetime = pin.expires_at.astimezone(ZoneInfo(tenant.timezone))
    return page(
        request,
        "counter_pin_slip.html",
        tenant=tenant,
        pin=pin,
        link=whatsapp_url(pin.namespace, pin.code),
        expires=texts_of(viewer).datetime(pin.expires_at, zone=True),
        expires_time=local.strftime("%H:%M"),
    )


@router.get("/pins/{pin_id}/qr.svg")
def pin_qr(pin_id: int, viewer: CounterDep, session: ReadSessionDep) -> Response:
    """The PIN's wa.me link as an SVG QR code (served here: no inline image data)."""
    pin = _pin_of(session, viewer.tenant_id, pin_id)
    qr = segno.make(whatsapp_url(pin.namespace, pin.code), error="m", micro=False)
    buffer = io.BytesIO()
    qr.save(buffer, kind="svg", scale=8, border=2, xmldecl=False, svgns=True, title="QR")
    return Response(
        buffer.getvalue(),
        media_type="image/svg+xml",
        headers={"Cache-Control": "private, max-age=3600"},
    )


# -- Customer at the counter ------------------------------------------------------------


@router.get("/customer")
def customer_lookup(
    request: Request, viewer: CounterDep, session: ReadSessionDep, q: str = ""
) -> Response:
    tenant = viewer.tenant_in(session)
    found: list[Customer] = []
    error = None
    if q.strip():
        try:
            found = search.lookup(session, tenant, q[:200])
        except DomainError:
            error = texts_of(viewer).gettext(
                N_("Type the customer's phone number, CPF/CNPJ or e-mail.")
            )
        if len(found) == 1:
            return redirect(request, f"/panel/counter/customers/{found[0].id}")
        if not found and error is None:
            error = texts_of(viewer).gettext(N_("Nobody with this phone number or document."))
    return page(
        request,
        "counter_lookup.html",
        q=q[:200],
        found=found,
        identifiers=directory.identifiers_by_customer(session, [c.id for c in found]),
        error=error,
    )


def _counter_customer(
    request: Request,
    viewer: Viewer,
    session: Session,
    tenant: Tenant,
    customer: Customer,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    sent: str | None = None,
) -> HTMLResponse:
    form = form or {}
    texts = texts_of(viewer)
    purchase = None
    purchase_error = None
    raw_purchase = form.get("purchase") or request.query_params.get("purchase") or ""
    try:
        purchase = _amount(tenant, raw_purchase)
    except DomainError:
        purchase_error = texts.gettext(N_("Type the purchase as an amount of money."))
    wallet = wallet_of(session, customer)
    offers = [
        eligibility.at_counter(tenant, reward, wallet, purchase)
        for reward in active_rewards(session, [tenant.id])
    ]
    return page(
        request,
        "counter_customer.html",
        status=status,
        tenant=tenant,
        customer=customer,
        wallet=wallet,
        offers=offers,
        reasons=REASONS,
        purchase=raw_purchase,
        spendable=wallet.spendable(tenant),
        instructions={
            o.reward.id: words.instruction(texts, o.reward, 0, tenant.currency) for o in offers
        },
        needs_code=tenant.should_validate_customer,
        sent=sent,
        errors={**({"purchase": purchase_error} if purchase_error else {}), **(errors or {})},
        form=form,
        currency=tenant.currency,
    )


@router.get("/customers/{customer_id}")
def counter_customer(
    request: Request, customer_id: int, viewer: CounterDep, session: ReadSessionDep
) -> HTMLResponse:
    tenant = viewer.tenant_in(session)
    customer = directory.get_in_program(session, tenant.program_id, customer_id)
    return _counter_customer(request, viewer, session, tenant, customer)


@router.post("/customers/{customer_id}/code")
def send_code(
    request: Request,
    customer_id: int,
    viewer: CounterDep,
    session: SessionDep,
    state: AppState,
    form: FormDep,
) -> HTMLResponse:
    """Send the customer a code (WhatsApp or SMS, with their consent) to prove presence."""
    tenant = viewer.tenant_in(session)
    customer = directory.get_in_program(session, tenant.program_id, customer_id)
    texts = texts_of(viewer)
    try:
        sent = short_codes.send(session, tenant, customer, state.settings.secret_key)
    except short_codes.NoChannel as exc:
        errors = {
            "code": texts.gettext(
                N_(
                    "The customer has no phone number with WhatsApp or SMS consent: "
                    "a code cannot be sent."
                )
            )
        }
        raise FormRejected(
            _counter_customer(request, viewer, session, tenant, customer, 422, errors, form)
        ) from exc
    channel = {"whatsapp": N_("WhatsApp"), "sms": N_("SMS")}.get(sent.channel or "", N_("SMS"))
    message = texts.gettext(N_("A code was sent by %(channel)s; type it below.")) % {
        "channel": texts.gettext(channel)
    }
    return _counter_customer(request, viewer, session, tenant, customer, form=form, sent=message)


@router.post("/customers/{customer_id}/redeem")
def counter_redeem(
    request: Request,
    customer_id: int,
    viewer: CounterDep,
    session: SessionDep,
    state: AppState,
    form: FormDep,
) -> Response:
    """Redeem one reward (origin 'panel'). At a merchant that validates customers, the code
    the customer received is verified here, in the same transaction as the redemption."""
    tenant = viewer.tenant_in(session)
    customer = directory.get_in_program(session, tenant.program_id, customer_id)
    texts = texts_of(viewer)

    def rejected(field: str, message: str) -> FormRejected:
        page_ = _counter_customer(
            request, viewer, session, tenant, customer, 422, {field: message}, form
        )
        return FormRejected(page_)

    raw_reward = form.get("reward_id", "")
    if not raw_reward.isdigit():
        raise rejected("reward_id", texts.gettext(N_("Choose a reward.")))
    try:
        reward = get_for_tenant(session, tenant.id, int(raw_reward))
    except NotFound as exc:
        raise rejected("reward_id", texts.gettext(N_("Choose a reward."))) from exc
    cash_value = None
    if reward.reward_type == "cashback":
        try:
            cash_value = _amount(tenant, form.get("cash_value"))
        except DomainError:
            cash_value = None
        if not cash_value:
            raise rejected(
                "cash_value", texts.gettext(N_("Type how much cashback to use on this sale."))
            )
    if tenant.should_validate_customer:
        code = form.get("code", "").strip()
        if not code:
            raise rejected("code", texts.gettext(N_("Type the code the customer received.")))
        if not short_codes.verify(session, tenant, customer, code, state.settings.secret_key):
            # Returned, not raised: the failed try is committed (five end the code).
            return _counter_customer(
                request,
                viewer,
                session,
                tenant,
                customer,
                422,
                {"code": texts.gettext(N_("This code is wrong or has expired."))},
                form,
            )
    try:
        done = redeem(session, tenant, customer, reward, origin="panel", cash_value=cash_value)
    except DomainError as exc:
        raise rejected("reward_id", exc.message) from exc
    redemption = done.redemption
    audit.record(
        session,
        viewer.actor,
        "redemption.create",
        "redemption",
        redemption.id,
        tenant_id=tenant.id,
        after={
            "customer": customer.id,
            "reward": reward.id,
            "points": redemption.points,
            "value": redemption.value,
        },
    )
    notice = texts.gettext(N_("Redeemed %(reward)s (%(code)s). %(apply)s")) % {
        "reward": reward.title,
        "code": redemption.external_code,
        "apply": words.instruction(texts, reward, redemption.value, tenant.currency),
    }
    return redirect(request, f"/panel/counter/customers/{customer.id}", notice)


# -- Voucher check ----------------------------------------------------------------------


@router.get("/voucher")
def voucher_check(
    request: Request, viewer: CounterDep, session: ReadSessionDep, code: str = ""
) -> HTMLResponse:
    tenant = viewer.tenant_in(session)
    voucher = None
    error = None
    if code.strip():
        try:
            voucher = vouchers.find(session, tenant, code[:60])
        except NotFound:
            error = texts_of(viewer).gettext(N_("No voucher with this code at this shop."))
    return _voucher_page(request, tenant, code[:60], voucher, error)


def _voucher_page(
    request: Request,
    tenant: Tenant,
    code: str,
    voucher: object,
    error: str | None,
    status: int = 200,
) -> HTMLResponse:
    return page(
        request,
        "counter_voucher.html",
        status=status,
        code=code,
        voucher=voucher,
        state=vouchers.state_of(voucher) if voucher is not None else None,  # type: ignore[arg-type]
        states=words.VOUCHER_STATES,
        error=error,
        currency=tenant.currency,
    )


@router.post("/voucher")
def voucher_validate(
    request: Request, viewer: CounterDep, session: SessionDep, form: FormDep
) -> Response:
    """Use the voucher once (single use under concurrent attempts: vouchers.validate)."""
    tenant = viewer.tenant_in(session)
    code = form.get("code", "").strip()[:60]
    texts = texts_of(viewer)
    try:
        voucher = vouchers.validate(session, tenant, code, reference=f"panel:{viewer.id}")
    except DomainError as exc:
        found = None
        try:
            found = vouchers.find(session, tenant, code) if code else None
        except NotFound:
            pass
        message = (
            texts.gettext(N_("No voucher with this code at this shop."))
            if found is None
            else exc.message
        )
        raise FormRejected(_voucher_page(request, tenant, code, found, message, 422)) from exc
    audit.record(
        session,
        viewer.actor,
        "voucher.validate",
        "voucher",
        voucher.id,
        tenant_id=tenant.id,
        after={"code": voucher.code, "uses": voucher.uses},
    )
    benefit = voucher.benefit or (
        texts.money(voucher.value, tenant.currency) if voucher.value else ""
    )
    notice = texts.gettext(N_("Voucher %(code)s validated. Apply: %(benefit)s")) % {
        "code": voucher.code,
        "benefit": benefit or "—",
    }
    return redirect(request, f"/panel/counter/voucher?code={voucher.code}", notice)
