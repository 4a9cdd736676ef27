"""Seed 001's request and response bodies (PascalCase on the wire)."""

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from fidelia.dialects.pdv.casing import Amount, Count, PdvModel, WireId


class ProductIn(PdvModel):
    """A product line as the guide's and the vendor's examples send it (``OriginalId`` may
    be a number); kept with the order, not used for rules."""

    OriginalId: WireId | None = None
    LineId: WireId | None = None
    Name: str | None = None
    Title: str | None = None
    IsActive: bool | None = None
    Quantity: Amount | None = None
    Value: Amount | None = None
    ProductPrice: Amount | None = None
    ProductDiscountPrice: Amount | None = None
    ValueToRefund: Amount | None = None


class AvailableIn(PdvModel):
    CustomerId: WireId = Field(description="CPF/CNPJ digits or e-mail (string or number)")
    PurchaseValue: Amount = Decimal(0)
    DiscountValue: Amount | None = None
    Products: list[ProductIn] | None = None


class CustomerOut(BaseModel):
    Id: int
    OriginalId: str | None
    Name: str | None
    Email: str | None
    Phone: str | None
    Document: str | None
    IsEnrolled: bool
    CurrentTier: dict[str, Any] | None = None  # Fidelia has no tiers


class RewardOut(BaseModel):
    Id: int = Field(description="The reward configuration's id: what /rewards/{id}/redeem takes")
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
    ExternalProductId: str | None = Field(
        None, description="Product rewards (5): the POS's id of the product to add"
    )
    ProductDisplayName: str | None = None
    ProductDiscountMode: int | None = Field(
        None, description="0 percent off, 1 fixed final price, 2 free gift, 3 amount off"
    )
    ProductDiscountValue: float | None = Field(
        None, description="The percentage (mode 0), the price (1) or the amount off (3); 0 for 2"
    )
    ProductMaxUnitsPerRedeem: int | None = None
    ProductAvailableQuantity: int | None = Field(
        None, description="Units left when the reward has a stock; null when unlimited"
    )


class AvailableOut(BaseModel):
    Customer: CustomerOut | None
    Rewards: list[RewardOut]
    HasRewards: bool
    ShouldValidateCustomer: bool
    AvailablePoints: int
    CashbackEnabled: bool
    AvailableCashback: float
    MaxCashbackForCurrentPurchase: float
    ShouldValidateCustomerSignup: bool = False
    HasRestrictedItems: bool = False
    RestrictedValue: float = 0
    EligibleValue: float = 0


class ChallengeIn(PdvModel):
    TransactionId: WireId | None = Field(
        None, max_length=120, description="Echoed back; made up by Fidelia when absent"
    )
    Phone: WireId | None = None
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
    TransactionId: WireId = Field(min_length=1, max_length=120)
    Code: WireId = Field(min_length=1, max_length=12)


class ChallengeValidateOut(BaseModel):
    TransactionId: str
    Success: bool
    FriendlyErrorMessage: str | None = None


class NamedRef(PdvModel):
    OriginalId: WireId | None = None
    Name: str | None = None


class Metadata(PdvModel):
    Name: str
    Value: Any = None


class RedeemIn(PdvModel):
    CustomerId: WireId
    OriginalKey: WireId = Field(min_length=1, max_length=200)
    RedeemOrigin: Count | None = 5
    Value: Amount | None = Field(None, description="Cashback rewards: the amount to use")
    Points: Count | None = Field(
        None, description="Cashback rewards: the amount to use in points, when Value is absent"
    )
    Metadatas: list[Metadata] | None = None
    Branch: NamedRef | None = None
    SalesPerson: NamedRef | None = None


class CancelByKeyIn(PdvModel):
    OriginalKey: WireId | None = None


class OrderCustomerIn(PdvModel):
    OriginalId: WireId | None = None
    Name: str | None = None
    Email: str | None = None
    Phone: WireId | None = None
    BirthdayDate: str | None = None
    Document: WireId | None = None


class OrderIn(PdvModel):
    OriginalId: WireId = Field(min_length=1, max_length=120)
    OrderPlacementDate: str | None = None
    OrderCompletedDate: str | None = None
    OrderStatus: WireId | None = None
    IsCancelledOrReturned: bool = False
    IsCompleted: bool = False
    OrderTotal: Amount
    Coupon: WireId | None = None
    Customer: OrderCustomerIn | None = None
    Products: list[ProductIn] | None = None
    PaymentMethods: list[dict[str, Any]] | None = None
    PaymentMethod: dict[str, Any] | None = None  # the vendor's reference sends one
    Branch: NamedRef | None = None
    SalesPerson: NamedRef | None = None


class OrderCancelIn(PdvModel):
    OrderCancelledDate: str | None = None
    OrderStatus: WireId | None = None


class RefundProductIn(PdvModel):
    OriginalId: WireId
    ValueToRefund: Amount


class PartialCancelIn(PdvModel):
    ValueToRefund: Amount
    CancelKey: WireId = Field(min_length=1, max_length=200)
    Products: list[RefundProductIn] | None = None


class Envelope(BaseModel):
    Result: Any
    ErrorMessage: str | None
    ErrorCode: int | None
    Code: str | None
    CodeName: str | None
    Severity: int
    HasWarning: bool
    HasError: bool


class ErrorEnvelope(BaseModel):
    """Every refusal of the enveloped calls: ``Result`` null, ``HasError`` true, Severity 2."""

    Result: None = None
    ErrorMessage: str
    ErrorCode: int = Field(description="Numeric: 1001, 1003, ... (401, 404, 429 for those)")
    Code: str = Field(description="The same number as text")
    CodeName: str = Field(description="PascalCase: CustomerNotFound, InsufficientPoints, ...")
    Severity: int = 2
    HasWarning: bool = False
    HasError: bool = True


class BareError(BaseModel):
    """Refusals of the challenge calls, which answer without the envelope, in the shape of
    their answers. ``Code`` stays null: in a challenge answer it is the code sent to the
    customer, so the error's number is in ``ErrorCode``."""

    Success: bool = False
    FriendlyErrorMessage: str
    ErrorMessage: str
    ErrorCode: int
    CodeName: str
    TransactionId: str | None = None
    ShouldInformPhone: bool = False
    ShouldInformEmail: bool = False
    SentBySMS: bool = False
    SentByEmail: bool = False
    Code: None = None
