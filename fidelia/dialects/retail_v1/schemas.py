"""Seed 002's request and response bodies (camelCase on the wire, as the guide writes them).

Money is in the currency's smallest unit (cents; see ``wire``); charges are positive and
discounts negative; dates are ISO 8601, answered in UTC (``2026-05-07T15:30:00Z``). Names
the vendor's detailed reference or plausible clients use for the same thing are accepted
as aliases (``newMemberData``, ``meansOfPayment``, ``itemCode``, ``birthDate``...); any
other key is answered in ``warnings`` (see ``wire.unknown_fields``).
"""

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    model_validator,
)

from fidelia.dialects.retail_v1.wire import Cents, Ident, Quantity


def aliases(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class In(BaseModel):
    # Unknown keys are kept (not dropped) so the answer can name them in ``warnings``.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


# -- requests ----------------------------------------------------------------------------------


class MemberIn(In):
    """Who the member is: at least one identifier. Looked up in this order; the first that
    matches wins (a phone number also finds the member the WhatsApp bot knows by it)."""

    phoneNumber: Ident | None = Field(
        default=None, max_length=40, description="E.164, or national in the merchant's country"
    )
    email: str | None = Field(default=None, max_length=200)
    membershipKey: Ident | None = Field(default=None, max_length=100, description="card / app key")
    externalId: Ident | None = Field(default=None, max_length=100, description="your own member id")


PROFILE_FIELDS = (
    "firstName",
    "lastName",
    "birthday",
    "allowedSMS",
    "allowedEmail",
    "allowedWhatsApp",
    "termsOfUse",
    "gdpr",
    "consents",
)


class MemberProfileIn(MemberIn):
    # The keys the client sent, for ``wire_name`` (only a profile's errors name aliases:
    # remembering them is a Python call per model, kept off the other bodies).
    _given: frozenset[str] = PrivateAttr(default=frozenset())

    @model_validator(mode="wrap")
    @classmethod
    def _remember_keys(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        model = handler(data)
        if isinstance(data, dict):
            model._given = frozenset(data)
        return model

    def wire_name(self, field: str) -> str:
        """The name the client used for ``field`` (one of its aliases), for error paths."""
        alias = type(self).model_fields[field].validation_alias
        if isinstance(alias, AliasChoices):
            for choice in alias.choices:
                if isinstance(choice, str) and choice in self._given:
                    return choice
        return field

    firstName: str | None = Field(
        default=None, max_length=100, validation_alias=aliases("firstName", "first_name")
    )
    lastName: str | None = Field(
        default=None, max_length=100, validation_alias=aliases("lastName", "last_name")
    )
    birthday: str | None = Field(
        default=None,
        max_length=40,
        description="YYYY-MM-DD (also read as birthDate, birth_date, dateOfBirth)",
        validation_alias=aliases("birthday", "birthDate", "birth_date", "dateOfBirth"),
    )
    allowedSMS: bool | None = Field(default=None, description="consent to SMS messages")
    allowedEmail: bool | None = Field(default=None, description="consent to e-mail messages")
    allowedWhatsApp: bool | None = Field(
        default=None, description="consent to WhatsApp messages (beyond the guide)"
    )
    termsOfUse: bool | None = Field(default=None, description="accepted the program's terms")
    gdpr: bool | None = Field(default=None, description="consent to processing personal data")
    consents: Any = Field(
        default=None,
        description='the same consents nested: {"allowedSMS": true, "gdpr": true}, or a list '
        '[{"type": "allowedSMS", "granted": true}] or ["allowedSMS", "gdpr"] (granted)',
    )


class RegisterIn(MemberProfileIn):
    """The member's fields under ``member`` (the guide), flat at the top level (one version
    of the vendor's reference) or under ``newMemberData`` (the other)."""

    member: MemberProfileIn | None = None
    newMemberData: MemberProfileIn | None = None


class UpdateIn(In):
    """``member`` finds the member; ``newMemberData`` (the vendor's reference) holds what
    changes. Profile fields inside ``member`` change it too (the guide's shape)."""

    member: MemberProfileIn
    newMemberData: MemberProfileIn | None = None


class ItemIn(In):
    lineId: Ident | None = Field(default=None, max_length=100)
    code: Ident | None = Field(
        default=None,
        max_length=80,
        validation_alias=aliases("code", "itemCode", "sku", "productCode", "plu"),
    )
    name: str | None = Field(
        default=None, max_length=200, validation_alias=aliases("name", "itemName", "description")
    )
    departmentCode: Ident | None = Field(
        default=None,
        max_length=80,
        validation_alias=aliases("departmentCode", "department", "categoryCode"),
    )
    departmentName: str | None = Field(
        default=None, max_length=200, validation_alias=aliases("departmentName", "categoryName")
    )
    quantity: Quantity | None = Field(default=None, ge=0, le=1e9)
    unitPrice: Cents | None = Field(
        default=None, description="cents, one unit", validation_alias=aliases("unitPrice", "price")
    )
    grossAmount: Cents | None = Field(
        default=None,
        description="cents, before item discounts (also read as subtotal)",
        validation_alias=aliases("grossAmount", "subtotal"),
    )
    netAmount: Cents | None = Field(
        default=None,
        description="cents, what the line costs (also read as total, amount)",
        validation_alias=aliases("netAmount", "total", "amount", "lineTotal"),
    )
    action: str | None = Field(default=None, max_length=40, description="e.g. sale")
    tags: list[str] | None = None

    def line_amount(self) -> int:
        """What the line costs: its net amount, else its gross amount, else unit price x
        quantity (rounded to the cent)."""
        if self.netAmount is not None:
            return self.netAmount
        if self.grossAmount is not None:
            return self.grossAmount
        if self.unitPrice is not None:
            units = Decimal(str(self.quantity if self.quantity is not None else 1))
            return int((self.unitPrice * units).quantize(Decimal(1), ROUND_HALF_UP))
        return 0


class PaymentLineIn(In):
    type: str = Field(
        max_length=20,
        description="POINTS and CREDIT are loyalty payments; CASH etc. recorded",
        validation_alias=aliases("type", "method", "paymentType"),
    )
    amount: Cents = Field(description="cents")
    confirmationCode: Ident | None = Field(
        default=None,
        max_length=40,
        description="a loyalty payment already made through /payment: linked, not charged again",
    )


class TransactionContextIn(In):
    """A transaction as /payment, /member/details and /event may carry it (all optional)."""

    transactionId: Ident | None = Field(default=None, max_length=100)
    openTime: datetime | None = None
    dateTime: datetime | None = None
    totalAmount: Cents | None = Field(default=None, ge=0)
    totalTaxAmount: Cents | None = None
    totalGeneralDiscount: Cents | None = Field(default=None, description="your own discount")
    orderType: str | None = Field(default=None, max_length=40, description="dineIn, delivery...")
    employee: Ident | None = Field(default=None, max_length=100)
    tags: list[str] | None = None
    items: list[ItemIn] = Field(default_factory=list)
    payments: list[PaymentLineIn] = Field(
        default_factory=list, validation_alias=aliases("payments", "meansOfPayment")
    )


class TransactionIn(TransactionContextIn):
    transactionId: Ident = Field(min_length=1, max_length=100, description="idempotency key")
    totalAmount: Cents = Field(
        ge=0, description="cents, after your own discounts, before loyalty benefits"
    )


class KeyIn(In):
    key: Ident = Field(
        min_length=1,
        max_length=60,
        validation_alias=aliases("key", "code", "id", "assetKey", "sourceId"),
    )
    name: str | None = Field(default=None, max_length=200)
    type: str | None = Field(default=None, max_length=40)
    reason: str | None = Field(default=None, max_length=200)
    amount: Cents | None = Field(default=None, description="cents, as your POS saw it")


class TransactionRequest(In):
    """Submit a sale (``action`` omitted or "submit": ``transaction`` required), or cancel
    one (``action: "cancel"`` with the ``confirmationCode`` its submission answered)."""

    action: Literal["submit", "cancel"] = "submit"
    member: MemberIn | None = None
    transaction: TransactionIn | None = None
    usedAssets: list[KeyIn] | None = Field(default=None, description="asset keys to redeem")
    appliedDeals: list[KeyIn] | None = Field(
        default=None, description="only these deals (keys from a benefits preview); omitted: all"
    )
    confirmationCode: Ident | None = Field(default=None, max_length=40, description="to cancel")


class CancelRequest(In):
    """``/transaction/cancel``: the cancel action's body (``action`` may be left out)."""

    action: Literal["cancel"] = "cancel"
    member: MemberIn | None = None
    confirmationCode: Ident | None = Field(default=None, max_length=40)


class PaymentIn(In):
    action: Literal["pay", "cancel"] = "pay"
    type: str | None = Field(
        default=None,
        max_length=20,
        description="POINTS or CREDIT; omitted: the transaction's loyalty line, else the "
        "merchant's retail_default_payment_type",
    )
    amount: Cents | None = Field(
        default=None, description="cents to pay (a cancellation's amount is not needed)"
    )
    confirmationCode: Ident | None = Field(default=None, max_length=40, description="to cancel")


class PaymentRequest(In):
    member: MemberIn | None = Field(default=None, description="required to pay")
    payment: PaymentIn
    transaction: TransactionContextIn | None = Field(
        default=None, description="with a transactionId, paying is idempotent"
    )


class EventIn(In):
    type: str = Field(min_length=1, max_length=40, description="visit, signup, referral, ...")
    subType: str | None = Field(default=None, max_length=40)
    dateTime: datetime | None = None
    payload: dict[str, Any] | None = None
    tags: list[str] | None = None


class EventRequest(In):
    member: MemberIn | None = None
    event: EventIn
    transaction: TransactionContextIn | None = Field(
        default=None, description="context, kept with the event"
    )


class PageIn(In):
    page: int = Field(default=1, ge=1, le=1_000_000)
    pageSize: int = Field(default=50, ge=1, le=100)


class DetailsRequest(In):
    member: MemberIn
    transaction: TransactionIn | None = Field(
        default=None, description="with x-return-benefits: the deals this basket would get"
    )
    usedAssets: list[KeyIn] | None = Field(
        default=None, description="not used by a preview (a warning says so when given)"
    )
    pagination: PageIn | None = Field(default=None, description="of the assets")


class ShortCodeRequest(In):
    member: MemberIn
    action: Literal["send", "get", "verify"] = Field(
        default="send", description="omitted: send (the guide names no default)"
    )
    shortCode: Ident | None = Field(
        default=None, max_length=12, validation_alias=aliases("shortCode", "code")
    )


class MemberRequest(In):
    member: MemberIn


# -- responses ---------------------------------------------------------------------------------


class BalanceOut(BaseModel):
    points: int
    credit: int = Field(description="stored credit (cashback), minor units")


class ConsentOut(BaseModel):
    type: str = Field(description="allowedSMS, allowedEmail, allowedWhatsApp, termsOfUse, gdpr")
    granted: bool
    updatedOn: datetime = Field(description="when it was given or withdrawn")


class MemberOut(BaseModel):
    memberId: str
    phoneNumber: str | None
    email: str | None
    membershipKey: str | None
    externalId: str | None
    firstName: str | None
    lastName: str | None
    birthday: date | None
    allowedSMS: bool
    allowedEmail: bool
    allowedWhatsApp: bool
    termsOfUse: bool
    gdpr: bool
    consents: list[ConsentOut]
    createdOn: datetime
    balance: BalanceOut
    pointsValue: int = Field(description="what the points are worth, minor units")
    status: Literal["active"] = Field(description="an erased member is not found at all")
    points: int = Field(description="the points balance (as balance.points)")
    credit: int = Field(description="the stored credit, cents (as balance.credit)")
    visit: int = Field(description="completed purchases at this merchant (cancelled ones not)")
    totalSpent: int = Field(
        description="cents paid with money in those purchases (loyalty payments and refunds not)"
    )


class AssetOut(BaseModel):
    key: str = Field(description="the code: send it back in usedAssets[].key")
    name: str
    type: Literal["voucher", "birthday"]
    status: Literal["active", "used", "expired", "scheduled", "cancelled"]
    redeemable: bool
    value: int = Field(description="minor units off the bill (0: a described benefit)")
    benefit: str
    campaign: str | None
    validFrom: datetime | None
    validUntil: datetime | None
    usesLeft: int
    maxUses: int


class ConditionsOut(BaseModel):
    minTotal: int
    itemCode: str | None
    departmentCode: str | None


class BenefitOut(BaseModel):
    key: str = Field(description="send it back in appliedDeals[].key")
    name: str
    type: Literal["percent", "fixed", "points"]
    value: int = Field(description="basis points, minor units, or bonus points")
    discountAmount: int | None = Field(
        description="negative, minor units, for the given transaction (null without one)"
    )
    bonusPoints: int
    conditions: ConditionsOut


class PageOut(BaseModel):
    page: int
    pageSize: int
    total: int
    hasMore: bool


class WarningOut(BaseModel):
    path: str = Field(description="body.member.foo: a field of the request the door did not read")
    message: str


class Envelope(BaseModel):
    """Every success: ``status``, the fields of ``data`` again beside it (as the guide shows
    ``confirmationCode``), ``data`` (as the vendor's reference nests them), and
    ``warnings`` naming request fields that were not read."""

    model_config = ConfigDict(extra="allow")
    status: Literal["success"]
    message: str | None = None
    warnings: list[WarningOut] | None = None


class MemberData(BaseModel):
    member: MemberOut


class MemberResponse(Envelope):
    data: MemberData


class UpdateData(BaseModel):
    memberId: str
    member: MemberOut


class UpdateResponse(Envelope):
    data: UpdateData


class DetailsData(BaseModel):
    member: MemberOut
    assets: list[AssetOut] | None = Field(default=None, description="with x-return-assets")
    pagination: PageOut | None = Field(default=None, description="of the assets")
    benefits: list[BenefitOut] | None = Field(
        default=None, description="with x-return-benefits: true"
    )


class DetailsResponse(Envelope):
    data: DetailsData


class ShortCodeData(BaseModel):
    action: Literal["send", "get", "verify"]
    sentVia: Literal["whatsapp", "sms"] | None = None
    shortCode: str | None = Field(default=None, description="only for action get")
    expiresOn: datetime | None = None
    verified: bool | None = None


class ShortCodeResponse(Envelope):
    data: ShortCodeData


class AppliedDealOut(BaseModel):
    key: str
    name: str
    type: Literal["percent", "fixed", "points"]
    discountAmount: int = Field(description="negative, minor units")
    bonusPoints: int


class UsedAssetOut(BaseModel):
    key: str
    name: str
    discountAmount: int = Field(description="negative, minor units")
    benefit: str
    usesLeft: int


class PaymentOut(BaseModel):
    type: str
    amount: int
    points: int | None = Field(default=None, description="points taken, for a POINTS payment")
    confirmationCode: str | None = Field(
        default=None, description="loyalty payments: to cancel one"
    )
    linked: bool = Field(
        default=False, description="a payment made before through /payment, now this sale's"
    )


class EarnedOut(BaseModel):
    points: int
    credit: int


class TransactionData(BaseModel):
    transactionId: str
    confirmationCode: str
    status: Literal["completed", "cancelled"]
    memberId: str | None
    totalAmount: int
    totalDiscount: int = Field(description="deals and assets, negative")
    amountToPay: int = Field(description="totalAmount + totalDiscount")
    appliedDeals: list[AppliedDealOut]
    usedAssets: list[UsedAssetOut]
    payments: list[PaymentOut]
    earned: EarnedOut
    newBalance: BalanceOut | None


class CancelData(BaseModel):
    transactionId: str
    confirmationCode: str
    status: Literal["cancelled"]
    reversed: EarnedOut = Field(description="earnings taken back by this call")
    refundedPayments: list[PaymentOut]
    releasedAssets: list[str] = Field(description="asset keys usable again")
    newBalance: BalanceOut | None


class TransactionResponse(Envelope):
    confirmationCode: str
    data: TransactionData | CancelData


class PaymentData(BaseModel):
    confirmationCode: str
    type: Literal["POINTS", "CREDIT"]
    amount: int
    points: int = Field(description="points taken (POINTS) or 0")
    status: Literal["done", "cancelled"]
    transactionId: str | None
    newBalance: BalanceOut


class PaymentResponse(Envelope):
    confirmationCode: str
    data: PaymentData


class EventData(BaseModel):
    eventId: str
    type: str
    pointsEarned: int


class EventResponse(Envelope):
    data: EventData


class EraseData(BaseModel):
    memberId: str
    erasedOn: datetime


class EraseResponse(Envelope):
    data: EraseData


class ErrorBody(BaseModel):
    code: str = Field(description="see the README's error table")
    message: str
    path: str | None = Field(description="header.x-..., body.member.phoneNumber, ...")


class ErrorResponse(BaseModel):
    status: Literal["error"]
    error: ErrorBody
