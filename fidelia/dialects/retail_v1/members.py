"""Seed 002: members (register, update, details, short login codes, erasure)."""

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Header
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidelia.challenges import short_codes
from fidelia.customers.profile import erase, parse_birthday, record_consents, set_names
from fidelia.customers.service import find, identify, link_identifier, replace_identifier
from fidelia.dialects.retail_v1.auth import Caller, RetailCaller
from fidelia.dialects.retail_v1.common import (
    CONSENTS,
    asset_out,
    member_out,
    require_identifiers,
    require_member,
    utc,
)
from fidelia.dialects.retail_v1.errors import RetailRoute, at, fail, render
from fidelia.dialects.retail_v1.schemas import (
    BenefitOut,
    ConditionsOut,
    DetailsData,
    DetailsRequest,
    DetailsResponse,
    EraseData,
    EraseResponse,
    MemberData,
    MemberProfileIn,
    MemberRequest,
    MemberResponse,
    PageOut,
    RegisterIn,
    ShortCodeData,
    ShortCodeRequest,
    ShortCodeResponse,
    UpdateIn,
)
from fidelia.dialects.retail_v1.transactions import basket_lines
from fidelia.events.deals import open_to
from fidelia.kit.clock import now
from fidelia.kit.deps import AppState, ReadSessionDep, SessionDep
from fidelia.kit.errors import Conflict, DomainError, InvalidInput
from fidelia.models import Customer, Deal, Tenant, Voucher
from fidelia.orders.checkout import Sale, apply_deals, deal_key

router = APIRouter(route_class=RetailRoute)
SHORT_CODE_SENDS = "5/10minutes;20/day"  # per member: messages cost money and annoy


def _profile(session: Session, caller: Caller, customer: Customer, member: MemberProfileIn) -> None:
    """Names, birthday and consents given in ``member`` (absent fields stay as they are)."""
    set_names(customer, member.firstName, member.lastName)
    if member.birthday is not None:
        with at("body.member.birthday"):
            customer.birthday = parse_birthday(member.birthday)
    given = {kind: getattr(member, field) for field, kind in CONSENTS.items()}
    record_consents(session, caller.tenant, customer, given, caller.consent_source)


def _new_membership_key(session: Session, customer: Customer) -> None:
    """A 12-digit key the member can carry as a card or QR code."""
    for _ in range(5):
        key = "".join(secrets.choice("0123456789") for _ in range(12))
        if link_identifier(session, customer, "membership", key):
            return


@router.post("/member/register", response_model=MemberResponse)
def register(body: RegisterIn, caller: RetailCaller, session: SessionDep) -> MemberResponse:
    """Register a member: identifiers, names, birthday and consents (each kept with its time)."""
    tenant = caller.tenant
    given = require_identifiers(tenant, body.member)
    for identifier in given:
        for kind in identifier.kinds:
            if find(session, tenant.program_id, kind, identifier.value) is not None:
                raise fail(
                    Conflict,
                    f"A member with this {identifier.field} is already registered; "
                    "use /member/update.",
                    "MEMBER_EXISTS",
                    identifier.path,
                )
    if body.member.birthday is not None:
        with at("body.member.birthday"):
            parse_birthday(body.member.birthday)  # refused before anything is created
    customer = identify(session, tenant, {g.kinds[0]: g.value for g in given})
    if not any(g.field == "membershipKey" for g in given):
        _new_membership_key(session, customer)
    _profile(session, caller, customer, body.member)
    session.flush()
    return MemberResponse(
        status="success", data=MemberData(member=member_out(session, tenant, customer))
    )


@router.post("/member/update", response_model=MemberResponse)
def update(body: UpdateIn, caller: RetailCaller, session: SessionDep) -> MemberResponse:
    """Update a member found by the first identifier that matches; other identifiers given
    replace the member's (a new e-mail, a new phone), and so do names, birthday, consents."""
    tenant = caller.tenant
    customer = require_member(session, tenant, body.member)
    for identifier in require_identifiers(tenant, body.member):
        owners = {find(session, tenant.program_id, k, identifier.value) for k in identifier.kinds}
        if any(owner is not None and owner.id != customer.id for owner in owners):
            raise fail(
                Conflict,
                f"This {identifier.field} belongs to another member.",
                "CONTACT_TAKEN",
                identifier.path,
            )
        if not replace_identifier(session, customer, identifier.kinds[0], identifier.value):
            raise fail(Conflict, "Taken meanwhile.", "CONTACT_TAKEN", identifier.path)
    _profile(session, caller, customer, body.member)
    session.flush()
    return MemberResponse(
        status="success", data=MemberData(member=member_out(session, tenant, customer))
    )


def _choice(raw: str | None, header: str, allowed: tuple[str, ...]) -> str | None:
    if raw is None or not raw.strip():
        return None
    value = raw.strip().lower()
    if value not in allowed:
        raise fail(
            DomainError,
            f"{header} is one of {', '.join(allowed)}.",
            "BAD_REQUEST",
            f"header.{header}",
        )
    return value


def _assets(
    session: Session, tenant: Tenant, customer: Customer, which: str, page: int, size: int
) -> tuple[list[Voucher], int]:
    """The member's assets at this merchant: active ones first, soonest to expire first."""
    at_time = now()
    vouchers = session.scalars(
        select(Voucher).where(Voucher.customer_id == customer.id, Voucher.tenant_id == tenant.id)
    ).all()
    rows = []
    for voucher in vouchers:
        active = asset_out(voucher, at_time).redeemable
        if which == "all" or (which == "active") == active:
            rows.append((not active, voucher.valid_until is None, voucher.valid_until, voucher))
    rows.sort(key=lambda r: (r[0], r[1], r[2] or at_time, -r[3].id))
    start = (page - 1) * size
    return [r[3] for r in rows[start : start + size]], len(rows)


def _benefits(
    session: Session, tenant: Tenant, customer: Customer, body: DetailsRequest
) -> list[BenefitOut]:
    """With a transaction: the deals its basket gets now (what /transaction will apply);
    without: every deal open to the member, with its conditions."""
    found: list[tuple[Deal, int | None, int]]
    if body.transaction is not None:
        lines = basket_lines(body.transaction)
        sale = Sale(tenant, body.transaction.transactionId, customer, body.transaction.totalAmount)
        sale.lines = lines
        found = [
            (d.applied.deal, -d.discount, d.applied.bonus_points)
            for d in apply_deals(session, sale)
        ]
    else:
        found = [
            (deal, None, deal.value if deal.discount_type == "points" else 0)
            for deal in open_to(session, tenant, customer)
        ]
    return [
        BenefitOut(
            key=deal_key(deal.id),
            name=deal.name,
            type=deal.discount_type,  # type: ignore[arg-type]
            value=deal.value,
            discountAmount=discount,
            bonusPoints=bonus,
            conditions=ConditionsOut(
                minTotal=deal.min_total,
                itemCode=deal.item_code,
                departmentCode=deal.department_code,
            ),
        )
        for deal, discount, bonus in found
    ]


@router.post("/member/details", response_model=DetailsResponse, response_model_exclude_unset=True)
def details(
    body: DetailsRequest,
    caller: RetailCaller,
    session: ReadSessionDep,
    x_return_assets: Annotated[
        str | None, Header(alias="x-return-assets", description="active | inactive | all")
    ] = None,
    x_return_benefits: Annotated[
        str | None, Header(alias="x-return-benefits", description="true: the member's deals")
    ] = None,
) -> DetailsResponse:
    """A member's profile, consents and balances; assets and benefits when the headers ask."""
    tenant = caller.tenant
    which = _choice(x_return_assets, "x-return-assets", ("active", "inactive", "all"))
    benefits = _choice(x_return_benefits, "x-return-benefits", ("true", "false")) == "true"
    customer = require_member(session, tenant, body.member)
    data = DetailsData(member=member_out(session, tenant, customer))
    if which is not None:
        page = body.pagination.page if body.pagination else 1
        size = body.pagination.pageSize if body.pagination else 50
        items, total = _assets(session, tenant, customer, which, page, size)
        data.assets = [asset_out(v) for v in items]
        data.pagination = PageOut(
            page=page, pageSize=size, total=total, hasMore=page * size < total
        )
    if benefits:
        data.benefits = _benefits(session, tenant, customer, body)
    return DetailsResponse(status="success", data=data)


@router.post("/member/shortCode", response_model=ShortCodeResponse)
def short_code(
    body: ShortCodeRequest, caller: RetailCaller, session: SessionDep, state: AppState
) -> Any:
    """Send a short login code (WhatsApp, else SMS, by consent), get one, or verify one."""
    tenant = caller.tenant
    customer = require_member(session, tenant, body.member)
    secret = state.settings.secret_key
    if body.action == "verify":
        if not body.shortCode:
            raise fail(InvalidInput, "shortCode is required.", "BAD_REQUEST", "body.shortCode")
        if not short_codes.verify(session, tenant, customer, body.shortCode, secret):
            # An answer, not an exception: the failed try must be committed and counted.
            return render(
                fail(
                    DomainError,
                    "The code is wrong, expired or already used.",
                    "SHORT_CODE_INVALID",
                    "body.shortCode",
                )
            )
        return ShortCodeResponse(
            status="success", data=ShortCodeData(action="verify", verified=True)
        )
    state.limiter.hit(SHORT_CODE_SENDS, "retail-short-code", str(tenant.id), str(customer.id))
    if body.action == "send":
        with at("body.member"):
            sent = short_codes.send(session, tenant, customer, secret)
        return ShortCodeResponse(
            status="success",
            data=ShortCodeData(
                action="send",
                sentVia=sent.channel,  # type: ignore[arg-type]
                expiresOn=utc(sent.expires_at),
            ),
        )
    issued = short_codes.issue(session, tenant, customer, secret)
    return ShortCodeResponse(
        status="success",
        data=ShortCodeData(action="get", shortCode=issued.code, expiresOn=utc(issued.expires_at)),
    )


@router.post("/member/erase", response_model=EraseResponse)
def erase_member(body: MemberRequest, caller: RetailCaller, session: SessionDep) -> EraseResponse:
    """Erase a member on request (GDPR): personal data removed, the ledger kept, anonymous."""
    customer = require_member(session, caller.tenant, body.member)
    erase(session, caller.tenant, customer)
    session.flush()
    assert customer.erased_at is not None
    return EraseResponse(
        status="success",
        data=EraseData(memberId=str(customer.id), erasedOn=utc(customer.erased_at)),
    )
