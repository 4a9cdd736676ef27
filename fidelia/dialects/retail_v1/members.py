"""Seed 002: members (register, update, details, short login codes, erasure)."""

import secrets
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Header
from sqlalchemy import select
from sqlalchemy.orm import Session

from fidelia.challenges import short_codes
from fidelia.customers.profile import erase, parse_birthday, record_consents, set_names
from fidelia.customers.service import find, identify, link_identifier, replace_identifier
from fidelia.dialects.retail_v1.auth import Caller, RetailCaller
from fidelia.dialects.retail_v1.common import (
    ASSET_CHOICES,
    Profile,
    asset_out,
    consent_choices,
    given_identifiers,
    member_out,
    merge_profile,
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
    MemberRequest,
    MemberResponse,
    PageOut,
    RegisterIn,
    ShortCodeData,
    ShortCodeRequest,
    ShortCodeResponse,
    UpdateData,
    UpdateIn,
    UpdateResponse,
)
from fidelia.dialects.retail_v1.transactions import basket_lines
from fidelia.dialects.retail_v1.wire import FieldWarning, success
from fidelia.events.deals import open_to
from fidelia.kit.clock import now
from fidelia.kit.deps import ReadSessionDep, SessionDep
from fidelia.kit.errors import Conflict, DomainError, InvalidInput
from fidelia.models import Customer, Deal, Tenant, Voucher
from fidelia.orders.checkout import Sale, apply_deals, deal_key
from fidelia.state import AppState

router = APIRouter(route_class=RetailRoute)
BENEFIT_CHOICES = {"": "false", "true": "true", "yes": "true", "1": "true"} | {
    v: "false" for v in ("false", "no", "0")
}


def _apply_profile(
    session: Session, caller: Caller, customer: Customer, profile: Profile
) -> list[FieldWarning]:
    """Names, birthday and consents given (absent fields stay as they are); the warnings
    about consents it did not know."""
    member = profile.member
    set_names(customer, member.firstName, member.lastName)
    if member.birthday is not None:
        with at(profile.paths["birthday"]):
            customer.birthday = parse_birthday(member.birthday)
    given, notes = consent_choices(profile)
    record_consents(session, caller.tenant, customer, given, caller.consent_source)
    return notes


def _new_membership_key(session: Session, customer: Customer) -> None:
    """A 12-digit key the member can carry as a card or QR code."""
    for _ in range(5):
        key = "".join(secrets.choice("0123456789") for _ in range(12))
        if link_identifier(session, customer, "membership", key):
            return


@router.post("/member/register", response_model=MemberResponse)
def register(body: RegisterIn, caller: RetailCaller, session: SessionDep) -> Any:
    """Register a member: identifiers, names, birthday and consents (each kept with its time).
    The fields may come under ``member``, flat, or under ``newMemberData``."""
    tenant = caller.tenant
    profile = merge_profile(
        ("body", body), ("body.member", body.member), ("body.newMemberData", body.newMemberData)
    )
    given = require_identifiers(tenant, profile.member, profile.paths)
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
    if profile.member.birthday is not None:
        with at(profile.paths["birthday"]):
            parse_birthday(profile.member.birthday)  # refused before anything is created
    consent_choices(profile)  # likewise
    customer = identify(session, tenant, {g.kinds[0]: g.value for g in given})
    if not any(g.field == "membershipKey" for g in given):
        _new_membership_key(session, customer)
    notes = _apply_profile(session, caller, customer, profile)
    session.flush()
    return success(body, MemberData(member=member_out(session, tenant, customer)), notes=notes)


@router.post("/member/update", response_model=UpdateResponse)
def update(body: UpdateIn, caller: RetailCaller, session: SessionDep) -> Any:
    """Update a member found by the first identifier of ``member`` that matches; what
    ``newMemberData`` (or ``member`` itself) gives replaces the member's: identifiers (a new
    e-mail, a new phone), names, birthday, consents."""
    tenant = caller.tenant
    customer = require_member(session, tenant, body.member)
    profile = merge_profile(
        ("body.member", body.member), ("body.newMemberData", body.newMemberData)
    )
    for identifier in given_identifiers(tenant, profile.member, profile.paths):
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
    notes = _apply_profile(session, caller, customer, profile)
    session.flush()
    data = UpdateData(memberId=str(customer.id), member=member_out(session, tenant, customer))
    return success(body, data, message="Member updated successfully", notes=notes)


def _choice(raw: str | None, header: str, allowed: Mapping[str, str | None]) -> str | None:
    value = raw.strip().lower() if raw is not None else ""
    if value not in allowed:
        raise fail(
            DomainError,
            f"{header} is one of {', '.join(allowed)}.",
            "BAD_REQUEST",
            f"header.{header}",
        )
    return allowed[value]


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


@router.post("/member/details", response_model=DetailsResponse)
def details(
    body: DetailsRequest,
    caller: RetailCaller,
    session: ReadSessionDep,
    x_return_assets: Annotated[
        str | None,
        Header(
            alias="x-return-assets",
            description="active (the default; also true) | inactive | all | false (none)",
        ),
    ] = None,
    x_return_benefits: Annotated[
        str | None, Header(alias="x-return-benefits", description="true: the member's deals")
    ] = None,
) -> Any:
    """A member's profile, consents and balances, their active assets (``x-return-assets``
    chooses which), and benefits when ``x-return-benefits: true``."""
    tenant = caller.tenant
    which = _choice(x_return_assets, "x-return-assets", {"": "active", **ASSET_CHOICES})
    benefits = _choice(x_return_benefits, "x-return-benefits", BENEFIT_CHOICES) == "true"
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
    notes = []
    if body.usedAssets:
        notes.append(
            FieldWarning(
                "body.usedAssets",
                "not used by /member/details: assets are redeemed by /transaction",
            )
        )
    return success(body, data.model_dump(mode="json", exclude_unset=True), notes=notes)


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
        code = body.shortCode.strip()
        # A code sent as a JSON number lost its leading zeros: codes have six digits.
        code = code.zfill(6) if code.isdigit() else code
        if not short_codes.verify(session, tenant, customer, code, secret):
            # An answer, not an exception: the failed try must be committed and counted.
            return render(
                fail(
                    DomainError,
                    "The code is wrong, expired or already used.",
                    "SHORT_CODE_INVALID",
                    "body.shortCode",
                )
            )
        return success(body, ShortCodeData(action="verify", verified=True))
    # Sends are limited per member in the database (challenges.service.SEND_LIMITS).
    if body.action == "send":
        with at("body.member"):
            sent = short_codes.send(session, tenant, customer, secret)
        data = ShortCodeData(
            action="send",
            sentVia=sent.channel,  # type: ignore[arg-type]
            expiresOn=utc(sent.expires_at),
        )
        return success(body, data)
    issued = short_codes.issue(session, tenant, customer, secret)
    data = ShortCodeData(action="get", shortCode=issued.code, expiresOn=utc(issued.expires_at))
    return success(body, data)


@router.post("/member/erase", response_model=EraseResponse)
def erase_member(body: MemberRequest, caller: RetailCaller, session: SessionDep) -> Any:
    """Erase a member on request (GDPR): personal data removed, the ledger kept, anonymous."""
    customer = require_member(session, caller.tenant, body.member)
    erase(session, caller.tenant, customer)
    session.flush()
    assert customer.erased_at is not None
    data = EraseData(memberId=str(customer.id), erasedOn=utc(customer.erased_at))
    return success(body, data)
