"""Seed 004's request and response bodies (snake_case JSON). Money goes out as decimal
strings in the merchant's currency ("7.50"), never as floats; it comes in as a decimal
string or a JSON number."""

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from fidelia.kit.ids import MAX_ID


class Body(BaseModel):
    # Extra keys are ignored: an integrator's "additional data" never breaks a call.
    model_config = ConfigDict(extra="ignore")


Amount = Decimal | str  # validated against the currency by the door (invalid_amount)

# -- errors and pages ----------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="snake_case, stable: switch on this", examples=["not_found"])
    message: str = Field(description="For people; may change")


class ErrorOut(BaseModel):
    error: ErrorDetail


class Meta(BaseModel):
    page: int
    per_page: int
    total: int
    total_pages: int


# -- auth -------------------------------------------------------------------------------------


class TokenIn(Body):
    api_key: str = Field(min_length=1, max_length=200, description="The merchant's API token")
    api_secret: str = Field(min_length=1, max_length=200, description="The merchant's API key")


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until the token expires")
    expires_at: datetime


# -- customers --------------------------------------------------------------------------------


class Balance(BaseModel):
    points: int
    cashback: str = Field(
        description="Decimal amount in the merchant's currency", examples=["7.50"]
    )
    currency: str = Field(examples=["BRL"])


class CustomerIn(Body):
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(
        default=None,
        max_length=40,
        description="E.164 (+5511987654321), or national in the merchant's country",
    )
    password: str | None = Field(
        default=None,
        min_length=8,
        max_length=128,
        json_schema_extra={"format": "password", "writeOnly": True},
        description="Stored as an argon2id digest; never returned",
    )
    email: str | None = Field(default=None, max_length=200)
    cpf: str | None = Field(
        default=None, max_length=20, description="11 digits, punctuation allowed"
    )
    birthday: date | None = None
    external_id: str | None = Field(
        default=None, min_length=1, max_length=120, description="Your system's id for the customer"
    )


class CustomerOut(BaseModel):
    id: int
    name: str | None
    cpf: str | None
    phone: str | None
    email: str | None
    external_id: str | None
    birthday: date | None
    balance: Balance
    created_at: datetime


class CustomerPage(BaseModel):
    data: list[CustomerOut]
    meta: Meta


# -- sales -------------------------------------------------------------------------------------


class SaleIn(Body):
    sale_amount: Amount = Field(
        description="Amount paid, decimal in the merchant's currency", examples=["150.00"]
    )
    cpf: str | None = Field(
        default=None, max_length=20, description="The customer's CPF (or customer_id)"
    )
    customer_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    external_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Your sale's id: the same id again replays the first answer",
    )
    sold_at: AwareDatetime | None = Field(default=None, description="ISO 8601 with its UTC offset")


class Earned(BaseModel):
    points: int
    cashback: str = Field(examples=["7.50"])


class SaleOut(BaseModel):
    id: int
    external_id: str | None
    customer_id: int
    sale_amount: str = Field(examples=["150.00"])
    currency: str
    status: Literal["completed"] = "completed"
    earned: Earned
    balance: Balance
    sold_at: datetime
    created_at: datetime


# -- coupons and categories --------------------------------------------------------------


class CouponOut(BaseModel):
    id: int
    title: str
    description: str
    type: str = Field(description="custom, fixed, percent, cashback or product")
    points_required: int
    value: str = Field(
        description="Currency amount (fixed, product, cashback), a percentage (percent)"
    )
    min_purchase: str
    stock: int | None = Field(description="Units left; null: no stock limit")
    category_id: int | None
    created_at: datetime


class CouponPage(BaseModel):
    data: list[CouponOut]
    meta: Meta


class StockIn(Body):
    stock: int | None = Field(default=None, ge=0, description="Set the units left (null: no limit)")
    adjust: int | None = Field(
        default=None,
        description="Or add (negative: take) units; refused rather than going below zero",
    )


class CategoryIn(Body):
    name: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=500)


class CategoryOut(BaseModel):
    id: int
    name: str
    description: str
    created_at: datetime


class CategoryPage(BaseModel):
    data: list[CategoryOut]
    meta: Meta


# -- vouchers -----------------------------------------------------------------------------------


class VoucherOut(BaseModel):
    id: int
    code: str
    customer_id: int | None
    campaign: str | None
    kind: str = Field(description="voucher or birthday")
    value: str
    currency: str
    benefit: str
    valid_from: datetime | None
    valid_until: datetime | None
    max_uses: int
    uses: int
    status: str = Field(description="active, used, expired, scheduled or cancelled")
    created_at: datetime


class VoucherPage(BaseModel):
    data: list[VoucherOut]
    meta: Meta


class ValidateIn(Body):
    customer_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="Validate for this customer (a customer's voucher is theirs only)",
    )
    cpf: str | None = Field(default=None, max_length=20)
    reference: str | None = Field(
        default=None, max_length=120, description="Your sale or till reference"
    )
