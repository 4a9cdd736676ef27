"""Rewards: the merchant's catalogue — list (search, active/disabled, count, pages), create,
edit, disable and enable. Every type (custom, fixed, percent, cashback, product with its POS
fields), points, requirements and stock go through rewards.service (create_reward,
update_reward, set_active), the same validation the CLI uses; the row is changed in place,
so past redemptions keep what they were taken with."""

import re
from dataclasses import replace
from decimal import Decimal
from math import ceil
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from fidelia.audit import service as audit
from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.errors import DomainError, InvalidInput
from fidelia.kit.money import to_minor
from fidelia.models import Reward, Tenant
from fidelia.panel import i18n
from fidelia.panel.auth import OwnerDep, Viewer
from fidelia.panel.i18n import N_
from fidelia.panel.web import Form, FormDep, FormRejected, page, panel_router, redirect
from fidelia.rewards import service as rewards
from fidelia.tenants.service import money_text

router = panel_router("/rewards")
PER_PAGE = 20
TYPES = [
    ("custom", N_("Gift (described in words)")),
    ("fixed", N_("Amount off the purchase")),
    ("percent", N_("Percentage off the purchase")),
    ("cashback", N_("Cashback (the cashier chooses the points)")),
    ("product", N_("Discount on a product (POS)")),
]
TYPE_NAMES = {
    "custom": N_("Gift"),
    "fixed": N_("Amount off"),
    "percent": N_("Percentage off"),
    "cashback": N_("Cashback"),
    "product": N_("Product"),
}
MODES = [
    ("fixed", N_("Amount off the product")),
    ("percent", N_("Percentage off the product")),
    ("final_price", N_("Sold at a final price")),
    ("gift", N_("Free (a gift)")),
]
STATUSES = [("all", N_("All")), ("active", N_("Active")), ("disabled", N_("Disabled"))]
YES_NO = [("yes", N_("Yes")), ("no", N_("No"))]
FIELDS = (
    "title",
    "description",
    "reward_type",
    "points",
    "value",
    "min_purchase",
    "max_share_percent",
    "cumulative",
    "stock",
    "external_product_id",
    "product_name",
    "product_mode",
    "product_max_units",
)
# Which field an engine message is about (the service validates the whole reward at once).
WHERE = (
    ("product id", "external_product_id"),
    ("product name", "product_name"),
    ("discount mode", "product_mode"),
    ("units", "product_max_units"),
    ("Product options", "reward_type"),
    ("title", "title"),
    ("description", "description"),
    ("Reward type", "reward_type"),
    ("point", "points"),
    ("share", "max_share_percent"),
    ("Stock", "stock"),
    ("minimum purchase", "min_purchase"),
)
FLAG = re.compile(r"\s*\(--[a-z-]+(?:[^)]*)\)")


def _texts(viewer: Viewer) -> i18n.Texts:
    return i18n.Texts(viewer.locale, viewer.tenant.timezone if viewer.tenant else "UTC")


def _plain(message: str) -> str:
    """An engine message without the CLI's option names."""
    return FLAG.sub("", message)


def benefit(reward: Reward, currency: str, texts: i18n.Texts) -> str:
    """What the reward gives, in the viewer's words."""
    percent = texts.number(Decimal(reward.value).scaleb(-2)) + "%"
    if reward.reward_type == "percent":
        return texts.gettext(N_("%(percent)s off")) % {"percent": percent}
    if reward.reward_type == "fixed":
        return texts.gettext(N_("%(amount)s off")) % {"amount": texts.money(reward.value, currency)}
    if reward.reward_type == "cashback":
        return texts.gettext(N_("Cashback, from %(amount)s")) % {
            "amount": texts.money(reward.value, currency)
        }
    if reward.reward_type == "product":
        name = reward.product_name or reward.external_product_id or ""
        mode = reward.product_discount_mode or "fixed"
        if mode == "gift":
            what = texts.gettext(N_("free"))
        elif mode == "percent":
            what = texts.gettext(N_("%(percent)s off")) % {"percent": percent}
        elif mode == "final_price":
            what = texts.gettext(N_("for %(amount)s")) % {
                "amount": texts.money(reward.value, currency)
            }
        else:
            what = texts.gettext(N_("%(amount)s off")) % {
                "amount": texts.money(reward.value, currency)
            }
        return f"{name}: {what}"
    return texts.gettext(N_("Gift"))


def _percent_text(basis_points: int) -> str:
    return f"{Decimal(basis_points).scaleb(-2).normalize():f}"


def form_of(reward: Reward, currency: str) -> Form:
    """The form's fields for an existing reward (amounts in currency, percentages in %)."""
    mode = reward.product_discount_mode
    percent = reward.reward_type == "percent" or mode == "percent"
    if percent:
        value = _percent_text(reward.value)
    elif reward.reward_type == "custom" and not reward.value or mode == "gift":
        value = ""
    else:
        value = money_text(reward.value, currency)
    return {
        "title": reward.title,
        "description": reward.description or "",
        "reward_type": reward.reward_type,
        "points": str(reward.points_required),
        "value": value,
        "min_purchase": money_text(reward.min_purchase, currency) if reward.min_purchase else "",
        "max_share_percent": str(reward.max_share_percent or ""),
        "cumulative": "yes" if reward.cumulative else "no",
        "stock": "" if reward.stock is None else str(reward.stock),
        "external_product_id": reward.external_product_id or "",
        "product_name": reward.product_name or "",
        "product_mode": mode or "fixed",
        "product_max_units": str(reward.product_max_units or ""),
    }


def snapshot(reward: Reward) -> dict[str, Any]:
    """What the audit log keeps of a reward (no personal data in it)."""
    return {
        "title": reward.title,
        "description": reward.description,
        "type": reward.reward_type,
        "points": reward.points_required,
        "value": reward.value,
        "min_purchase": reward.min_purchase,
        "max_share_percent": reward.max_share_percent,
        "cumulative": reward.cumulative,
        "stock": reward.stock,
        "external_product_id": reward.external_product_id,
        "product_name": reward.product_name,
        "product_discount_mode": reward.product_discount_mode,
        "product_max_units": reward.product_max_units,
        "active": reward.active,
    }


def _whole(form: Form, name: str, errors: dict[str, str], texts: i18n.Texts) -> int | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    if not re.fullmatch(r"-?\d{1,10}", raw):
        errors[name] = texts.gettext(N_("A whole number, please."))
        return None
    return int(raw)


def arguments(form: Form, texts: i18n.Texts) -> tuple[dict[str, Any], dict[str, str]]:
    """The service's keyword arguments from the form, and the errors of fields that are
    not even numbers (the service checks the rest)."""
    errors: dict[str, str] = {}
    reward_type = form.get("reward_type", "custom").strip()
    points = _whole(form, "points", errors, texts)
    share = _whole(form, "max_share_percent", errors, texts)
    stock = _whole(form, "stock", errors, texts)
    units = _whole(form, "product_max_units", errors, texts)
    value = form.get("value", "").strip().replace(",", ".") or None
    product = rewards.ProductOptions(
        external_product_id=form.get("external_product_id", "").strip() or None,
        name=form.get("product_name", "").strip() or None,
        max_units=units,
    )
    if reward_type == "product":  # the Value field is the product's discount
        mode = form.get("product_mode", "fixed").strip() or "fixed"
        product = replace(product, mode=mode, value=value)
        value = None
    kwargs = {
        "title": form.get("title", ""),
        "description": form.get("description", ""),
        "reward_type": reward_type,
        "points": points,
        "value": value,
        "min_purchase": form.get("min_purchase", "").strip().replace(",", ".") or None,
        "max_share_percent": share,
        "cumulative": form.get("cumulative", "yes") != "no",
        "stock": stock,
        "product": product,
    }
    return kwargs, errors


def _field_of(error: DomainError) -> str:
    for needle, field in WHERE:
        if needle.lower() in error.message.lower():
            return field
    return "value"


def _form_page(
    request: Request,
    viewer: Viewer,
    form: Form,
    errors: dict[str, str],
    reward: Reward | None = None,
    status: int = 200,
) -> HTMLResponse:
    currency = viewer.tenant.currency if viewer.tenant else "USD"
    return page(
        request,
        "reward_form.html",
        status=status,
        form=form,
        errors=errors,
        reward=reward,
        types=TYPES,
        modes=MODES,
        yes_no=YES_NO,
        currency=currency,
    )


def _save(
    request: Request,
    viewer: Viewer,
    session: SessionDep,
    form: Form,
    reward_id: int | None,
) -> Reward:
    """Create or update from the form; a rejected form rolls everything back."""
    texts = _texts(viewer)
    tenant: Tenant = viewer.tenant_in(session)
    current = rewards.reward_of(session, tenant.id, reward_id) if reward_id else None
    kwargs, errors = arguments(form, texts)
    values = {name: form.get(name, "") for name in FIELDS}
    if kwargs["min_purchase"] is not None:
        try:  # amounts are refused with one message: say which field it is about
            to_minor(kwargs["min_purchase"], tenant.currency)
        except InvalidInput as exc:
            errors["min_purchase"] = _plain(exc.message)
    if not errors:
        try:
            if current is None:
                return rewards.create_reward(session, tenant, **kwargs)
            return rewards.update_reward(session, tenant, current.id, **kwargs)
        except InvalidInput as exc:
            errors[_field_of(exc)] = _plain(exc.message)
    raise FormRejected(_form_page(request, viewer, values, errors, current, 422))


@router.get("")
def rewards_list(
    request: Request,
    viewer: OwnerDep,
    session: ReadSessionDep,
    q: str = "",
    status: str = "all",
    page_number: int = 1,
) -> HTMLResponse:
    texts = _texts(viewer)
    status = status if status in rewards.STATUSES else "all"
    tenant = viewer.tenant_in(session)
    found = rewards.search(
        session, tenant, text=q, status=status, page=max(page_number, 1), per_page=PER_PAGE
    )
    pages = max(ceil(found.total / PER_PAGE), 1)
    current = min(max(page_number, 1), pages)

    def link(number: int) -> str:
        query = {k: v for k, v in (("q", q), ("status", status)) if v and v != "all"}
        if number > 1:
            query["page_number"] = str(number)
        return "/panel/rewards" + ("?" + urlencode(query) if query else "")

    rows = [
        {
            "reward": r,
            "kind": TYPE_NAMES.get(r.reward_type, r.reward_type),
            "benefit": benefit(r, tenant.currency, texts),
            "points": texts.number(r.points_required),
            "stock": texts.number(r.stock) if r.stock is not None else None,
            "min_purchase": texts.money(r.min_purchase, tenant.currency)
            if r.min_purchase
            else None,
        }
        for r in found.items
    ]
    return page(
        request,
        "rewards.html",
        rows=rows,
        total=found.total,
        q=q,
        shown=status,
        statuses=STATUSES,
        page_number=current,
        pages=pages,
        previous=link(current - 1) if current > 1 else None,
        following=link(current + 1) if current < pages else None,
    )


@router.get("/new")
async def new_reward(request: Request, viewer: OwnerDep) -> HTMLResponse:
    blank = {name: "" for name in FIELDS}
    blank.update(reward_type="fixed", cumulative="yes", product_mode="fixed")
    return _form_page(request, viewer, blank, {})


@router.post("")
def create(request: Request, viewer: OwnerDep, session: SessionDep, form: FormDep) -> Response:
    reward = _save(request, viewer, session, form, None)
    audit.record(
        session,
        viewer.actor,
        "reward.create",
        "reward",
        reward.id,
        tenant_id=viewer.tenant_id,
        after=snapshot(reward),
    )
    notice = _texts(viewer).gettext(N_("Reward created: customers see it now."))
    return redirect(request, "/panel/rewards", notice)


@router.get("/{reward_id}")
def edit_reward(
    request: Request, reward_id: int, viewer: OwnerDep, session: ReadSessionDep
) -> HTMLResponse:
    tenant = viewer.tenant_in(session)
    reward = rewards.reward_of(session, tenant.id, reward_id)
    return _form_page(request, viewer, form_of(reward, tenant.currency), {}, reward)


@router.post("/{reward_id}")
def update(
    request: Request, reward_id: int, viewer: OwnerDep, session: SessionDep, form: FormDep
) -> Response:
    before = snapshot(rewards.reward_of(session, viewer.tenant_id, reward_id))
    reward = _save(request, viewer, session, form, reward_id)
    after = snapshot(reward)
    changed = [k for k in after if after[k] != before[k]]
    texts = _texts(viewer)
    if changed:
        audit.record(
            session,
            viewer.actor,
            "reward.update",
            "reward",
            reward.id,
            tenant_id=viewer.tenant_id,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
        )
    notice = texts.gettext(N_("Reward saved.") if changed else N_("No changes."))
    return redirect(request, "/panel/rewards", notice)


def _switch(
    request: Request, viewer: Viewer, session: SessionDep, reward_id: int, active: bool
) -> Response:
    tenant = viewer.tenant_in(session)
    before = rewards.reward_of(session, tenant.id, reward_id).active
    reward = rewards.set_active(session, tenant, reward_id, active)
    if before != active:
        audit.record(
            session,
            viewer.actor,
            "reward.enable" if active else "reward.disable",
            "reward",
            reward.id,
            tenant_id=tenant.id,
            before={"active": before},
            after={"active": active},
        )
    texts = _texts(viewer)
    notice = N_("Reward enabled.") if active else N_("Reward disabled: customers no longer see it.")
    return redirect(request, "/panel/rewards", texts.gettext(notice))


@router.post("/{reward_id}/disable")
def disable(request: Request, reward_id: int, viewer: OwnerDep, session: SessionDep) -> Response:
    return _switch(request, viewer, session, reward_id, False)


@router.post("/{reward_id}/enable")
def enable(request: Request, reward_id: int, viewer: OwnerDep, session: SessionDep) -> Response:
    return _switch(request, viewer, session, reward_id, True)
