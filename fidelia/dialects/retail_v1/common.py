"""What the seed 002 routes share: reading the member object, finding the member, and
rendering members, balances and assets."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from fidelia.customers.profile import consents_of
from fidelia.customers.service import FirstFinder, find_first, found
from fidelia.dialects.retail_v1.errors import at, fail
from fidelia.dialects.retail_v1.schemas import (
    PROFILE_FIELDS,
    AssetOut,
    BalanceOut,
    ConsentOut,
    MemberIn,
    MemberOut,
    MemberProfileIn,
)
from fidelia.dialects.retail_v1.wire import FieldWarning
from fidelia.idempotency.service import Along
from fidelia.kit.documents import normalize_email
from fidelia.kit.errors import DomainError, InvalidInput
from fidelia.kit.phone import phone_of
from fidelia.models import Customer, CustomerIdentifier, Tenant, Voucher
from fidelia.orders.service import spending
from fidelia.redemptions.service import wallet_of
from fidelia.tenants.point_value import value_of_points
from fidelia.vouchers.service import state_of

# wire field -> identifier kinds it is looked up by (the first is the one it is stored as)
IDENTIFIERS: dict[str, tuple[str, ...]] = {
    "phoneNumber": ("phone", "whatsapp"),
    "email": ("email",),
    "membershipKey": ("membership",),
    "externalId": ("external",),
}
# wire consent field -> engine consent kind
CONSENTS = {
    "allowedSMS": "sms",
    "allowedEmail": "email",
    "allowedWhatsApp": "whatsapp",
    "termsOfUse": "terms",
    "gdpr": "gdpr",
}


@dataclass(frozen=True)
class Given:
    """An identifier from the request, normalised: the wire field, its path, the value."""

    field: str
    path: str
    value: str

    @property
    def kinds(self) -> tuple[str, ...]:
        return IDENTIFIERS[self.field]


def given_identifiers(
    tenant: Tenant, member: MemberIn, path: str | Mapping[str, str] = "body.member"
) -> list[Given]:
    """The identifiers in ``member``, validated and normalised, in lookup order. ``path``
    is where ``member`` sits in the body, or (a merged profile) where each field came from."""
    found = []
    for field in IDENTIFIERS:
        raw = getattr(member, field)
        if raw is None or not str(raw).strip():
            continue
        where = (
            path.get(field, f"body.member.{field}")
            if isinstance(path, Mapping)
            else f"{path}.{field}"
        )
        with at(where):
            if field == "phoneNumber":
                value = phone_of(tenant, raw)
            elif field == "email":
                value = normalize_email(raw)
            else:
                value = raw.strip()
        found.append(Given(field, where, value))
    return found


def require_identifiers(
    tenant: Tenant, member: MemberIn, path: str | Mapping[str, str] = "body.member"
) -> list[Given]:
    found = given_identifiers(tenant, member, path)
    if not found:
        raise fail(
            InvalidInput,
            "Identify the member with phoneNumber, email, membershipKey or externalId.",
            "MEMBER_REQUIRED",
            path if isinstance(path, str) else path.get("", "body.member"),
        )
    return found


def lookup(session: Session, tenant: Tenant, given: list[Given]) -> Customer | None:
    """The first identifier, in lookup order, that names a member of this program."""
    candidates = [(kind, identifier.value) for identifier in given for kind in identifier.kinds]
    return find_first(session, tenant.program_id, candidates)


def require_member(
    session: Session, tenant: Tenant, member: MemberIn | None, path: str = "body.member"
) -> Customer:
    if member is None:
        raise fail(InvalidInput, "The member is required.", "MEMBER_REQUIRED", path)
    given = require_identifiers(tenant, member, path)
    customer = lookup(session, tenant, given)
    if customer is None:
        raise _not_found(given)
    return customer


def _not_found(given: list[Given]) -> DomainError:
    return fail(
        InvalidInput,
        "Cannot find any member with the given identifier.",
        "MEMBER_NOT_FOUND",
        given[0].path,
    )


def optional_member(
    session: Session, tenant: Tenant, member: MemberIn | None, path: str = "body.member"
) -> Customer | None:
    """No member object (or an empty one) is an anonymous call; an unknown member is not."""
    if member is None or not given_identifiers(tenant, member, path):
        return None
    return require_member(session, tenant, member, path)


# ``lookup`` as one statement built once: the first identifier, in lookup order, that
# names a member (each wire field's kinds are its own, so the order is the kinds').
_FIRST_MEMBER = FirstFinder([kind for kinds in IDENTIFIERS.values() for kind in kinds])


@dataclass(frozen=True)
class MemberRead:
    """``optional_member``'s lookup as a read to send along an idempotency claim
    (``claim(along=)``: one round trip for both on PostgreSQL)."""

    given: list[Given]
    along: Along

    def member(self, session: Session, row: Row[Any] | None) -> Customer:
        """The member of the read's row (``Claim.along``), or the same refusal as
        ``require_member``'s."""
        if row is None:
            raise _not_found(self.given)
        return found(session, row)


def member_read(
    session: Session, tenant: Tenant, member: MemberIn | None, path: str = "body.member"
) -> MemberRead | None:
    """None without a member (or an empty one), or with an identifier that does not
    validate: ``optional_member`` then finds or refuses them after the claim, as without
    the read."""
    if member is None:
        return None
    try:
        given = given_identifiers(tenant, member, path)
    except DomainError:
        return None
    if not given:
        return None
    candidates = [(kind, identifier.value) for identifier in given for kind in identifier.kinds]
    dialect = session.get_bind().dialect.name
    return MemberRead(given, _FIRST_MEMBER.read(dialect, tenant.program_id, candidates))


def utc(moment: datetime) -> datetime:
    """ISO 8601 UTC to the second, as the door answers every date."""
    return moment.astimezone(UTC).replace(microsecond=0)


def utc_or_none(moment: datetime | None) -> datetime | None:
    return utc(moment) if moment is not None else None


def balance_of(session: Session, customer: Customer) -> BalanceOut:
    wallet = wallet_of(session, customer)  # both balances, one round trip
    return BalanceOut(points=wallet.points, credit=wallet.cashback)


def member_out(session: Session, tenant: Tenant, customer: Customer) -> MemberOut:
    ids: dict[str, str] = {}
    for kind, value in session.execute(
        select(CustomerIdentifier.kind, CustomerIdentifier.value)
        .where(CustomerIdentifier.customer_id == customer.id)
        .order_by(CustomerIdentifier.id)
    ):
        ids.setdefault(kind, value)
    consents = consents_of(session, customer)
    wallet = balance_of(session, customer)
    spent = spending(session, tenant.id, customer.id)
    granted = {field: bool(consents.get(kind, (False,))[0]) for field, kind in CONSENTS.items()}
    return MemberOut(
        memberId=str(customer.id),
        phoneNumber=ids.get("phone") or ids.get("whatsapp"),
        email=ids.get("email"),
        membershipKey=ids.get("membership"),
        externalId=ids.get("external"),
        firstName=customer.first_name,
        lastName=customer.last_name,
        birthday=customer.birthday,
        allowedSMS=granted["allowedSMS"],
        allowedEmail=granted["allowedEmail"],
        allowedWhatsApp=granted["allowedWhatsApp"],
        termsOfUse=granted["termsOfUse"],
        gdpr=granted["gdpr"],
        consents=[
            ConsentOut(type=field, granted=consents[kind][0], updatedOn=utc(consents[kind][1]))
            for field, kind in CONSENTS.items()
            if kind in consents
        ],
        createdOn=utc(customer.created_at),
        balance=wallet,
        pointsValue=value_of_points(tenant, wallet.points),
        status="active",
        points=wallet.points,
        credit=wallet.credit,
        visit=spent.visits,
        totalSpent=spent.spent,
    )


def asset_out(voucher: Voucher, at_time: datetime | None = None) -> AssetOut:
    state = state_of(voucher, at_time)
    kind: Literal["voucher", "birthday"] = "birthday" if voucher.kind == "birthday" else "voucher"
    return AssetOut(
        key=voucher.code,
        name=voucher.benefit or ("Birthday gift" if kind == "birthday" else "Voucher"),
        type=kind,
        status=state,  # type: ignore[arg-type]
        redeemable=state == "active",
        value=voucher.value,
        benefit=voucher.benefit,
        campaign=voucher.campaign,
        validFrom=utc_or_none(voucher.valid_from),
        validUntil=utc_or_none(voucher.valid_until),
        usesLeft=max(voucher.max_uses - voucher.uses, 0),
        maxUses=voucher.max_uses,
    )


# -- profiles: one member's fields gathered from the shapes clients send ---------------------


@dataclass
class Profile:
    """The member's fields, merged from every place a request put them, later places
    winning; ``paths`` says where each came from (errors name it)."""

    member: MemberProfileIn
    paths: dict[str, str]


def merge_profile(*sources: tuple[str, MemberProfileIn | None]) -> Profile:
    values: dict[str, Any] = {}
    paths: dict[str, str] = {}
    first: str | None = None
    for path, source in sources:
        if source is None:
            continue
        for field in (*IDENTIFIERS, *PROFILE_FIELDS):
            value = getattr(source, field)
            if value is not None:
                values[field] = value
                paths[field] = f"{path}.{source.wire_name(field)}"
                first = path if first is None else first
    paths[""] = first or "body.member"
    return Profile(MemberProfileIn.model_validate(values), paths)


# consent name on the wire (lower case, letters only) -> engine consent kind
CONSENT_NAMES = {
    "allowedsms": "sms",
    "sms": "sms",
    "allowsms": "sms",
    "smsoptin": "sms",
    "allowedemail": "email",
    "email": "email",
    "allowemail": "email",
    "emailoptin": "email",
    "allowedwhatsapp": "whatsapp",
    "whatsapp": "whatsapp",
    "allowwhatsapp": "whatsapp",
    "whatsappoptin": "whatsapp",
    "termsofuse": "terms",
    "terms": "terms",
    "tos": "terms",
    "termsandconditions": "terms",
    "gdpr": "gdpr",
    "lgpd": "gdpr",
    "privacy": "gdpr",
    "dataprocessing": "gdpr",
}
CONSENT_NAME_KEYS = ("type", "name", "kind", "consent", "channel", "id")
CONSENT_VALUE_KEYS = ("granted", "value", "accepted", "allowed", "given", "optIn", "enabled")
TRUE_WORDS, FALSE_WORDS = ("true", "yes", "1", "granted"), ("false", "no", "0", "denied")


def _flag(raw: Any, path: str) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return raw.strip().lower() in TRUE_WORDS
    raise fail(InvalidInput, f"{path}: a consent is true or false.", "BAD_REQUEST", path)


def consent_choices(profile: Profile) -> tuple[dict[str, bool | None], list[FieldWarning]]:
    """The consents a request gives: the flat booleans (``allowedSMS``...) and a nested
    ``consents`` object or list; the same consent given twice differently is refused."""
    member = profile.member
    chosen: dict[str, bool | None] = {kind: getattr(member, f) for f, kind in CONSENTS.items()}
    where = {kind: profile.paths.get(f, "") for f, kind in CONSENTS.items()}
    notes: list[FieldWarning] = []
    raw = member.consents
    base = profile.paths.get("consents", "body.member.consents")
    entries: list[tuple[str, Any, Any]] = []  # (path, name, value)
    if raw is not None and not isinstance(raw, dict | list):
        raise fail(InvalidInput, f"{base}: consents are an object or a list.", "BAD_REQUEST", base)
    if isinstance(raw, dict):
        entries = [(f"{base}.{name}", name, value) for name, value in raw.items()]
    elif isinstance(raw, list):
        for i, entry in enumerate(raw):
            path = f"{base}[{i}]"
            if isinstance(entry, str):
                entries.append((path, entry, True))
            elif isinstance(entry, dict):
                name = next((entry[k] for k in CONSENT_NAME_KEYS if k in entry), None)
                value = next((entry[k] for k in CONSENT_VALUE_KEYS if k in entry), True)
                for key in entry:
                    if key not in CONSENT_NAME_KEYS + CONSENT_VALUE_KEYS:
                        notes.append(FieldWarning(f"{path}.{key}", "unknown field ignored"))
                entries.append((path, name, value))
            else:
                raise fail(
                    InvalidInput, f"{path}: a consent is a name or an object.", "BAD_REQUEST", path
                )
    for path, name, value in entries:
        if isinstance(value, dict):  # {"sms": {"granted": true, "date": ...}}
            value = next((value[k] for k in CONSENT_VALUE_KEYS if k in value), True)
        kind = CONSENT_NAMES.get("".join(c for c in str(name).lower() if c.isalpha()))
        if kind is None:
            notes.append(FieldWarning(path, f"unknown consent {name!r} ignored"))
            continue
        granted = _flag(value, path)
        if chosen.get(kind) is not None and chosen[kind] != granted:
            raise fail(
                InvalidInput,
                f"{path} contradicts {where[kind] or 'another consent given'}.",
                "BAD_REQUEST",
                path,
            )
        chosen[kind] = granted
        where[kind] = path
    return chosen, notes


ASSET_CHOICES = {
    "active": "active",
    "true": "active",
    "yes": "active",
    "1": "active",
    "inactive": "inactive",
    "all": "all",
    "false": None,
    "no": None,
    "0": None,
    "none": None,
}
