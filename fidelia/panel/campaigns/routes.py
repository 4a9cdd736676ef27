"""Vouchers & campaigns: vouchers (issued to a customer named by phone, CPF or e-mail, or
campaign codes without a customer; listed with their status) and the seed-002 campaign
tools — earning rules, segments and deals — listed, created and disabled (or enabled
again) through vouchers.service and events.{service,segments,deals}."""

import re
from datetime import date
from math import ceil
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from fidelia.audit import service as audit
from fidelia.customers.service import by_contact
from fidelia.events import deals as deal_service
from fidelia.events import segments as segment_service
from fidelia.events import service as rule_service
from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.errors import DomainError
from fidelia.kit.money import to_minor
from fidelia.models import Customer, Deal, EarningRule, Segment, Tenant
from fidelia.ops.replica import MayLagSharedSessionDep
from fidelia.panel import i18n
from fidelia.panel.auth import OwnerDep, Viewer
from fidelia.panel.i18n import N_
from fidelia.panel.web import Form, FormDep, FormRejected, page, panel_router, redirect
from fidelia.rewards.service import parse_percent
from fidelia.vouchers import service as vouchers

router = panel_router("/vouchers")
PER_PAGE = 25
TARGETS = [("customer", N_("A customer")), ("campaign", N_("A campaign (no customer)"))]
CONTACTS = [("phone", N_("Phone")), ("cpf", N_("CPF/CNPJ")), ("email", N_("E-mail"))]
STATES = {
    "active": N_("Active"),
    "used": N_("Used"),
    "expired": N_("Expired"),
    "scheduled": N_("Not valid yet"),
    "cancelled": N_("Cancelled"),
}
DEAL_TYPES = [
    ("percent", N_("Percentage off")),
    ("fixed", N_("Amount off")),
    ("points", N_("Bonus points")),
]
WHOLE = re.compile(r"^\d{1,9}$")


def _texts(viewer: Viewer) -> i18n.Texts:
    return i18n.Texts(viewer.locale, viewer.tenant.timezone if viewer.tenant else "UTC")


# -- vouchers ---------------------------------------------------------------------------------


def _vouchers_page(
    request: Request,
    viewer: Viewer,
    session: Session,
    page_number: int = 1,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    texts = _texts(viewer)
    tenant = viewer.tenant_in(session)
    found = vouchers.listing(
        session, tenant, page=max(page_number, 1), per_page=PER_PAGE, newest_first=True
    )
    pages = max(ceil(found.total / PER_PAGE), 1)
    rows = []
    for voucher in found.items:
        customer = session.get(Customer, voucher.customer_id) if voucher.customer_id else None
        rows.append(
            {
                "voucher": voucher,
                "customer": (customer.name or f"#{customer.id}") if customer else None,
                "value": texts.money(voucher.value, tenant.currency) if voucher.value else None,
                "state": vouchers.state_of(voucher),
                "until": texts.datetime(voucher.valid_until) if voucher.valid_until else None,
            }
        )
    blank = {"target": "customer", "contact_kind": "phone", "uses": "1"}
    return page(
        request,
        "vouchers.html",
        status=status,
        rows=rows,
        total=found.total,
        page_number=min(max(page_number, 1), pages),
        pages=pages,
        states=STATES,
        targets=TARGETS,
        contacts=CONTACTS,
        currency=tenant.currency,
        form=values.pop("form", blank),
        errors=values.pop("errors", {}),
        **values,
    )


@router.get("")
def vouchers_list(
    request: Request, viewer: OwnerDep, session: MayLagSharedSessionDep, page_number: int = 1
) -> HTMLResponse:
    return _vouchers_page(request, viewer, session, page_number)


def _issue(
    session: Session, tenant: Tenant, form: Form, errors: dict[str, str], texts: i18n.Texts
) -> Any:
    """The voucher from the form, or None with ``errors`` by field."""
    t = texts.gettext
    customer = None
    if form.get("target", "customer") == "customer":
        try:
            customer = by_contact(
                session, tenant, form.get("contact_kind", "phone"), form.get("contact", "")
            )
        except DomainError as exc:
            errors["contact"] = exc.message
    campaign = form.get("campaign", "").strip() or None
    if campaign is not None and len(campaign) > 80:
        errors["campaign"] = t(N_("A campaign name has at most 80 characters."))
    value = 0
    if form.get("value", "").strip():
        try:
            value = to_minor(form["value"].strip().replace(",", "."), tenant.currency)
        except DomainError as exc:
            errors["value"] = exc.message
    uses = form.get("uses", "1").strip() or "1"
    if not WHOLE.match(uses):
        errors["uses"] = t(N_("A whole number, 1 or more."))
    until = None
    if form.get("valid_until", "").strip():
        try:
            until = vouchers.end_of_day(date.fromisoformat(form["valid_until"]), tenant.timezone)
        except ValueError:
            errors["valid_until"] = t(N_("A date, please (YYYY-MM-DD)."))
    if errors:
        return None
    try:
        return vouchers.issue(
            session,
            tenant,
            code=form.get("code", "").strip() or None,
            customer=customer,
            campaign=campaign,
            value=value,
            benefit=form.get("benefit", ""),
            max_uses=int(uses),
            valid_until=until,
        )
    except DomainError as exc:
        field = "uses" if "usable" in exc.message else "code"
        if "valid" in exc.message:
            field = "valid_until"
        errors[field] = exc.message
        return None


@router.post("")
def create_voucher(
    request: Request, viewer: OwnerDep, session: SessionDep, form: FormDep
) -> Response:
    tenant = viewer.tenant_in(session)
    errors: dict[str, str] = {}
    voucher = _issue(session, tenant, form, errors, _texts(viewer))
    if voucher is None:
        raise FormRejected(
            _vouchers_page(request, viewer, session, 1, 422, form=form, errors=errors)
        )
    audit.record(
        session,
        viewer.actor,
        "voucher.create",
        "voucher",
        voucher.id,
        tenant_id=tenant.id,
        after={
            "code": voucher.code,
            "customer_id": voucher.customer_id,
            "campaign": voucher.campaign,
            "value": voucher.value,
            "benefit": voucher.benefit,
            "uses": voucher.max_uses,
            "valid_until": voucher.valid_until,
        },
    )
    texts = _texts(viewer)
    notice = texts.gettext(N_("Voucher %(code)s created.")) % {"code": voucher.code}
    return redirect(request, "/panel/vouchers", notice)


# -- earning rules, segments, deals ------------------------------------------------------------


def _campaigns_page(
    request: Request, viewer: Viewer, session: Session, status: int = 200, **values: Any
) -> HTMLResponse:
    texts = _texts(viewer)
    tenant = viewer.tenant_in(session)
    segments = segment_service.segments_of(session, tenant)
    names = {s.id: s.name for s in segments}
    deals = []
    for deal in deal_service.deals_of(session, tenant):
        if deal.discount_type == "percent":
            worth = texts.number(parse_percent_text(deal.value)) + "%"
        elif deal.discount_type == "fixed":
            worth = texts.money(deal.value, tenant.currency)
        else:
            worth = texts.ngettext("%(num)d point", "%(num)d points", deal.value) % {
                "num": deal.value
            }
        deals.append(
            {
                "deal": deal,
                "worth": worth,
                "segment": names.get(deal.segment_id) if deal.segment_id else None,
                "min_total": texts.money(deal.min_total, tenant.currency)
                if deal.min_total
                else None,
            }
        )
    return page(
        request,
        "campaigns.html",
        status=status,
        rules=rule_service.rules_of(session, tenant),
        segments=segments,
        active_segments=[("", N_("Everyone"))]
        + [(str(s.id), s.name) for s in segments if s.active],
        deals=deals,
        deal_types=DEAL_TYPES,
        currency=tenant.currency,
        form=values.pop("form", {}),
        errors=values.pop("errors", {}),
        **values,
    )


def parse_percent_text(basis_points: int) -> Any:
    from decimal import Decimal

    return Decimal(basis_points).scaleb(-2)


@router.get("/campaigns")
def campaigns(request: Request, viewer: OwnerDep, session: ReadSessionDep) -> HTMLResponse:
    return _campaigns_page(request, viewer, session)


def _rejected(
    request: Request, viewer: Viewer, session: Session, form: Form, errors: dict[str, str]
) -> FormRejected:
    return FormRejected(_campaigns_page(request, viewer, session, 422, form=form, errors=errors))


def _number(
    form: Form, name: str, errors: dict[str, str], texts: i18n.Texts, required: bool = False
) -> int | None:
    t = texts.gettext
    raw = form.get(name, "").strip()
    if not raw:
        if required:
            errors[name] = t(N_("Required."))
        return None
    if not WHOLE.match(raw):
        errors[name] = t(N_("A whole number, please."))
        return None
    return int(raw)


@router.post("/rules")
def create_rule(request: Request, viewer: OwnerDep, session: SessionDep, form: FormDep) -> Response:
    tenant = viewer.tenant_in(session)
    errors: dict[str, str] = {}
    texts = _texts(viewer)
    points = _number(form, "rule_points", errors, texts, required=True)
    per_day = _number(form, "rule_per_day", errors, texts)
    if not errors:
        try:
            rule = rule_service.create_rule(
                session, tenant, form.get("rule_event", ""), points or 0, per_day
            )
        except DomainError as exc:
            field = "rule_event" if "event type" in exc.message else "rule_points"
            if "max_per_day" in exc.message:
                field = "rule_per_day"
            errors[field] = exc.message
    if errors:
        raise _rejected(request, viewer, session, form, errors)
    audit.record(
        session,
        viewer.actor,
        "rule.create",
        "earning_rule",
        rule.id,
        tenant_id=tenant.id,
        after={"event": rule.event_type, "points": rule.points, "per_day": rule.max_per_day},
    )
    notice = _texts(viewer).gettext(N_("Earning rule created."))
    return redirect(request, "/panel/vouchers/campaigns", notice)


@router.post("/segments")
def create_segment(
    request: Request, viewer: OwnerDep, session: SessionDep, form: FormDep
) -> Response:
    tenant = viewer.tenant_in(session)
    errors: dict[str, str] = {}
    rule: dict[str, Any] = {}
    for key in ("event_type", "tag"):
        text = form.get(f"segment_{key}", "").strip()
        if text:
            rule[key] = text[:40]
    for key in ("min_count", "within_days", "min_points"):
        number = _number(form, f"segment_{key}", errors, _texts(viewer))
        if number is not None:
            rule[key] = number
    if not errors:
        try:
            segment = segment_service.create_segment(
                session, tenant, form.get("segment_name", ""), rule
            )
        except DomainError as exc:
            field = "segment_name" if "name" in exc.message else "segment_event_type"
            errors[field] = exc.message
    if errors:
        raise _rejected(request, viewer, session, form, errors)
    audit.record(
        session,
        viewer.actor,
        "segment.create",
        "segment",
        segment.id,
        tenant_id=tenant.id,
        after={"name": segment.name, "rule": segment.rule},
    )
    notice = _texts(viewer).gettext(N_("Segment created."))
    return redirect(request, "/panel/vouchers/campaigns", notice)


@router.post("/deals")
def create_deal(request: Request, viewer: OwnerDep, session: SessionDep, form: FormDep) -> Response:
    tenant = viewer.tenant_in(session)
    errors: dict[str, str] = {}
    t = _texts(viewer).gettext
    kind = form.get("deal_type", "percent")
    raw = form.get("deal_value", "").strip().replace(",", ".")
    value = 0
    try:
        if kind == "percent":
            value = parse_percent(raw)
        elif kind == "fixed":
            value = to_minor(raw, tenant.currency)
        elif WHOLE.match(raw):
            value = int(raw)
        else:
            errors["deal_value"] = t(N_("Bonus points are a whole number."))
    except DomainError as exc:
        errors["deal_value"] = exc.message
    minimum = 0
    if form.get("deal_min_total", "").strip():
        try:
            minimum = to_minor(form["deal_min_total"].strip().replace(",", "."), tenant.currency)
        except DomainError as exc:
            errors["deal_min_total"] = exc.message
    segment = form.get("deal_segment", "").strip()
    if segment and not segment.isdigit():
        errors["deal_segment"] = t(N_("Choose a segment."))
    if not errors:
        try:
            deal = deal_service.create_deal(
                session,
                tenant,
                name=form.get("deal_name", ""),
                discount_type=kind,
                value=value,
                segment_id=int(segment) if segment else None,
                min_total=minimum,
                item_code=form.get("deal_item", "").strip() or None,
                department_code=form.get("deal_department", "").strip() or None,
            )
        except DomainError as exc:
            field = "deal_value"
            for needle, name in (
                ("name", "deal_name"),
                ("type", "deal_type"),
                ("segment", "deal_segment"),
                ("Segment", "deal_segment"),
                ("minimum", "deal_min_total"),
                ("code", "deal_item"),
            ):
                if needle in exc.message:
                    field = name
                    break
            errors[field] = exc.message
    if errors:
        raise _rejected(request, viewer, session, form, errors)
    audit.record(
        session,
        viewer.actor,
        "deal.create",
        "deal",
        deal.id,
        tenant_id=tenant.id,
        after={
            "name": deal.name,
            "type": deal.discount_type,
            "value": deal.value,
            "segment": deal.segment_id,
            "min_total": deal.min_total,
            "item": deal.item_code,
            "department": deal.department_code,
        },
    )
    notice = _texts(viewer).gettext(N_("Deal created."))
    return redirect(request, "/panel/vouchers/campaigns", notice)


def _switch(
    request: Request,
    viewer: Viewer,
    session: Session,
    kind: str,
    ident: int,
    active: bool,
) -> Response:
    tenant = viewer.tenant_in(session)
    setters: dict[str, tuple[Any, Any, str]] = {
        "rule": (rule_service.set_rule_active, EarningRule, "earning_rule"),
        "segment": (segment_service.set_segment_active, Segment, "segment"),
        "deal": (deal_service.set_deal_active, Deal, "deal"),
    }
    setter, model, target = setters[kind]
    current: Any = session.get(model, ident)
    before = bool(current.active) if current is not None else None
    setter(session, tenant, ident, active)  # another merchant's id: NotFound (404)
    if before != active:
        audit.record(
            session,
            viewer.actor,
            f"{kind}.{'enable' if active else 'disable'}",
            target,
            ident,
            tenant_id=tenant.id,
            before={"active": before},
            after={"active": active},
        )
    texts = _texts(viewer)
    return redirect(
        request,
        "/panel/vouchers/campaigns",
        texts.gettext(N_("Enabled.") if active else N_("Disabled.")),
    )


@router.post("/rules/{rule_id}/disable")
def disable_rule(request: Request, rule_id: int, viewer: OwnerDep, session: SessionDep) -> Response:
    return _switch(request, viewer, session, "rule", rule_id, False)


@router.post("/rules/{rule_id}/enable")
def enable_rule(request: Request, rule_id: int, viewer: OwnerDep, session: SessionDep) -> Response:
    return _switch(request, viewer, session, "rule", rule_id, True)


@router.post("/segments/{segment_id}/disable")
def disable_segment(
    request: Request, segment_id: int, viewer: OwnerDep, session: SessionDep
) -> Response:
    return _switch(request, viewer, session, "segment", segment_id, False)


@router.post("/segments/{segment_id}/enable")
def enable_segment(
    request: Request, segment_id: int, viewer: OwnerDep, session: SessionDep
) -> Response:
    return _switch(request, viewer, session, "segment", segment_id, True)


@router.post("/deals/{deal_id}/disable")
def disable_deal(request: Request, deal_id: int, viewer: OwnerDep, session: SessionDep) -> Response:
    return _switch(request, viewer, session, "deal", deal_id, False)


@router.post("/deals/{deal_id}/enable")
def enable_deal(request: Request, deal_id: int, viewer: OwnerDep, session: SessionDep) -> Response:
    return _switch(request, viewer, session, "deal", deal_id, True)
