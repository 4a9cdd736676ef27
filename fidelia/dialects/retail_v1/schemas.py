"""Seed 002's request and response bodies (camelCase on the wire, as the guide writes them).

Money is in the currency's smallest unit (cents); charges are positive and discounts
negative; dates are ISO 8601, answered in UTC (``2026-05-07T15:30:00Z``). Unknown keys in a
request are ignored, so integrators can send the guide's full objects.
"""

from datetime import date, datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class In(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- requests ----------------------------------------------------------------------------------


class MemberIn(In):
    """Who the member is: at least one identifier. Looked up in this order; the first that
    matches wins (a phone number also finds the member the WhatsApp bot knows by it)."""

    phoneNumber: str | None = Field(
        default=None, max_length=40, description="E.164, or national in the merchant's country"
    )
    email: str | None = Field(default=None, max_length=200)
    membershipKey: str | None = Field(default=None, max_length=100, description="card / app key")
    externalId: str | None = Field(default=None, max_length=100, description="your own member id")


class MemberProfileIn(MemberIn):
    firstName: str | None = Field(default=None, max_length=100)
    lastName: str | None = Field(default=None, max_length=100)
    birthday: str | None = Field(default=None, description="YYYY-MM-DD")
    allowedSMS: bool | None = Field(default=None, description="consent to SMS messages")
    allowedEmail: bool | None = Field(default=None, description="consent to e-mail messages")
    allowedWhatsApp: bool | None = Field(
        default=None, description="consent to WhatsApp messages (beyond the guide)"
    )
    termsOfUse: bool | None = Field(default=None, description="accepted the program's terms")
    gdpr: bool | None = Field(default=None, description="consent to processing personal data")


class RegisterIn(In):
    member: MemberProfileIn


class UpdateIn(In):
    member: MemberProfileIn


class ItemIn(In):
    lineId: str | None = None
    code: str | None = Field(default=None, max_length=80)
    name: str | None = Field(default=None, max_length=200)
    departmentCode: str | None = Field(default=None, max_length=80)
    departmentName: str | None = Field(default=None, max_length=200)
    quantity: float | None = None
    grossAmount: int | None = Field(default=None, description="minor units, before item discounts")
    netAmount: int | None = Field(default=None, description="minor units, what the line costs")
    action: str | None = Field(default=None, description="e.g. sale")
    tags: list[str] | None = None


class PaymentLineIn(In):
    type: str = Field(
        max_length=20, description="POINTS and CREDIT are loyalty payments; CASH etc. recorded"
    )
    amount: int = Field(description="minor units")


class TransactionIn(In):
    transactionId: str = Field(min_length=1, max_length=100, description="idempotency key")
    openTime: datetime | None = None
    dateTime: datetime | None = None
    totalAmount: int = Field(
        ge=0, description="minor units, after your own discounts, before loyalty benefits"
    )
    totalTaxAmount: int | None = None
    totalGeneralDiscount: int | None = Field(
        default=None, description="your own discount (negative)"
    )
    items: list[ItemIn] = Field(default_factory=list)
    payments: list[PaymentLineIn] = Field(default_factory=list)


class KeyIn(In):
    key: str = Field(
        min_length=1, max_length=60, validation_alias=AliasChoices("key", "code", "id")
    )


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
    confirmationCode: str | None = Field(default=None, max_length=40, description="to cancel")


class PaymentIn(In):
    action: Literal["pay", "cancel"] = "pay"
    type: Literal["POINTS", "CREDIT", "points", "credit"] | None = None
    amount: int | None = Field(default=None, description="minor units to pay")
    confirmationCode: str | None = Field(default=None, max_length=40, description="to cancel")


class TransactionRefIn(In):
    transactionId: str | None = Field(default=None, max_length=100)


class PaymentRequest(In):
    member: MemberIn | None = Field(default=None, description="required to pay")
    payment: PaymentIn
    transaction: TransactionRefIn | None = Field(
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


class PageIn(In):
    page: int = Field(default=1, ge=1)
    pageSize: int = Field(default=50, ge=1, le=100)


class DetailsRequest(In):
    member: MemberIn
    transaction: TransactionIn | None = Field(
        default=None, description="with x-return-benefits: the deals this basket would get"
    )
    pagination: PageIn | None = Field(default=None, description="of the assets")


class ShortCodeRequest(In):
    member: MemberIn
    action: Literal["send", "get", "verify"]
    shortCode: str | None = Field(
        default=None, max_length=12, validation_alias=AliasChoices("shortCode", "code")
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


class MemberData(BaseModel):
    member: MemberOut


class MemberResponse(BaseModel):
    status: Literal["success"]
    data: MemberData


class DetailsData(BaseModel):
    member: MemberOut
    assets: list[AssetOut] | None = Field(default=None, description="with x-return-assets")
    pagination: PageOut | None = Field(default=None, description="of the assets")
    benefits: list[BenefitOut] | None = Field(
        default=None, description="with x-return-benefits: true"
    )


class DetailsResponse(BaseModel):
    status: Literal["success"]
    data: DetailsData


class ShortCodeData(BaseModel):
    action: Literal["send", "get", "verify"]
    sentVia: Literal["whatsapp", "sms"] | None = None
    shortCode: str | None = Field(default=None, description="only for action get")
    expiresOn: datetime | None = None
    verified: bool | None = None


class ShortCodeResponse(BaseModel):
    status: Literal["success"]
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


class TransactionResponse(BaseModel):
    status: Literal["success"]
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


class PaymentResponse(BaseModel):
    status: Literal["success"]
    confirmationCode: str
    data: PaymentData


class EventData(BaseModel):
    eventId: str
    type: str
    pointsEarned: int


class EventResponse(BaseModel):
    status: Literal["success"]
    data: EventData


class EraseData(BaseModel):
    memberId: str
    erasedOn: datetime


class EraseResponse(BaseModel):
    status: Literal["success"]
    data: EraseData


class ErrorBody(BaseModel):
    code: str = Field(description="see the README's error table")
    message: str
    path: str | None = Field(description="header.x-..., body.member.phoneNumber, ...")


class ErrorResponse(BaseModel):
    status: Literal["error"]
    error: ErrorBody
