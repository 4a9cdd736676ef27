"""Seed 001's request and response bodies (PascalCase on the wire)."""

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from fidelia.dialects.pdv.casing import PdvModel


class ProductIn(PdvModel):
    OriginalId: str | None = None
    Name: str | None = None
    Quantity: Decimal | None = None
    Value: Decimal | None = None
    ValueToRefund: Decimal | None = None


class AvailableIn(PdvModel):
    CustomerId: str = Field(description="CPF/CNPJ digits or e-mail")
    PurchaseValue: Decimal = Decimal(0)
    DiscountValue: Decimal | None = None
    Products: list[ProductIn] | None = None


class CustomerOut(BaseModel):
    Id: int
    OriginalId: str | None
    Name: str | None
    Email: str | None
    Phone: str | None
    Document: str | None
    IsEnrolled: bool


class RewardOut(BaseModel):
    Id: int
    Title: str
    RewardType: int = Field(description="0 percent, 1 fixed, 3 cashback, 4 custom, 5 product")
    Value: float
    CanSelectValue: bool
    IsCashback: bool
    Requirements: str
    AvailableCashback: float
    MaxCashbackForCurrentPurchase: float
    CanUse: bool
    CannotUseReason: int = Field(
        description="0 ok, 1 points, 2 minimum value, 3 cashback, 4 no customer, "
        "5 value exceeds purchase, 6 minimum purchase percent, 7 not enrolled, 8 not combinable"
    )
    Points: int
    RewardCanBeCumulative: bool


class AvailableOut(BaseModel):
    Customer: CustomerOut | None
    Rewards: list[RewardOut]
    HasRewards: bool
    ShouldValidateCustomer: bool
    AvailablePoints: int
    CashbackEnabled: bool
    AvailableCashback: float
    MaxCashbackForCurrentPurchase: float


class ChallengeIn(PdvModel):
    TransactionId: str = Field(min_length=1, max_length=120)
    Phone: str | None = None
    Email: str | None = None


class ChallengeOut(BaseModel):
    Success: bool
    FriendlyErrorMessage: str | None = None
    ShouldInformPhone: bool = False
    ShouldInformEmail: bool = False
    SentBySMS: bool = False
    SentByEmail: bool = False
    TransactionId: str
    ErrorMessage: str | None = None
    Code: str | None = None  # echoed only for merchants in sandbox mode


class ChallengeValidateIn(PdvModel):
    TransactionId: str = Field(min_length=1, max_length=120)
    Code: str = Field(min_length=1, max_length=12)


class ChallengeValidateOut(BaseModel):
    TransactionId: str
    Success: bool
    FriendlyErrorMessage: str | None = None


class NamedRef(PdvModel):
    OriginalId: str | None = None
    Name: str | None = None


class Metadata(PdvModel):
    Name: str
    Value: Any = None


class RedeemIn(PdvModel):
    CustomerId: str
    OriginalKey: str = Field(min_length=1, max_length=200)
    RedeemOrigin: int | None = 5
    Value: Decimal | None = None
    Points: int | None = None
    Metadatas: list[Metadata] | None = None
    Branch: NamedRef | None = None
    SalesPerson: NamedRef | None = None


class CancelByKeyIn(PdvModel):
    OriginalKey: str | None = None


class OrderCustomerIn(PdvModel):
    OriginalId: str | None = None
    Name: str | None = None
    Email: str | None = None
    Phone: str | None = None
    BirthdayDate: str | None = None
    Document: str | None = None


class OrderIn(PdvModel):
    OriginalId: str = Field(min_length=1, max_length=120)
    OrderPlacementDate: str | None = None
    OrderCompletedDate: str | None = None
    OrderStatus: str | int | None = None
    IsCancelledOrReturned: bool = False
    IsCompleted: bool = False
    OrderTotal: Decimal
    Coupon: str | None = None
    Customer: OrderCustomerIn | None = None
    Products: list[ProductIn] | None = None
    PaymentMethods: list[dict[str, Any]] | None = None
    Branch: NamedRef | None = None
    SalesPerson: NamedRef | None = None


class OrderCancelIn(PdvModel):
    OrderCancelledDate: str | None = None
    OrderStatus: str | int | None = None


class RefundProductIn(PdvModel):
    OriginalId: str
    ValueToRefund: Decimal


class PartialCancelIn(PdvModel):
    ValueToRefund: Decimal
    CancelKey: str = Field(min_length=1, max_length=200)
    Products: list[RefundProductIn] | None = None


class Envelope(BaseModel):
    Result: Any
    ErrorMessage: str | None
    ErrorCode: str | None
    Code: int | None
    CodeName: str | None
    Severity: int
    HasWarning: bool
    HasError: bool


class ErrorEnvelope(BaseModel):
    """Every refusal of the enveloped calls: ``Result`` null, ``HasError`` true, Severity 2."""

    Result: None = None
    ErrorMessage: str
    ErrorCode: str
    Code: int
    CodeName: str = Field(description="PascalCase: CustomerNotFound, InsufficientPoints, ...")
    Severity: int = 2
    HasWarning: bool = False
    HasError: bool = True


class BareError(BaseModel):
    """Refusals of the challenge calls, which answer without the envelope."""

    Success: bool = False
    FriendlyErrorMessage: str
    ErrorMessage: str
    Code: int
    CodeName: str
