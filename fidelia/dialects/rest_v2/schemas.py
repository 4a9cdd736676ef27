"""Seed 004's request and response bodies (snake_case JSON). Money goes out as decimal
strings in the merchant's currency ("7.50"), never as floats; it comes in as a decimal
string or a JSON number."""

import json
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from fidelia.kit.ids import MAX_ID
from fidelia.kit.money import RawAmount


class Body(BaseModel):
    # Extra keys are ignored: an integrator's "additional data" never breaks a call.
    model_config = ConfigDict(extra="ignore")

    # Other names a client plausibly sends for a field (canonical -> aliases).
    ALIASES: ClassVar[dict[str, tuple[str, ...]]] = {}

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        return merge_aliases(data, cls.ALIASES)


def merge_aliases(data: Any, aliases: dict[str, tuple[str, ...]]) -> Any:
    """Move each alias to its canonical name; two names of one field with different values
    are refused rather than one silently winning."""
    if not isinstance(data, dict) or not aliases:
        return data
    out = dict(data)
    for canonical, names in aliases.items():
        given = [(name, out.pop(name)) for name in (canonical, *names) if name in out]
        if not given:
            continue
        if len({json.dumps(value, sort_keys=True, default=str) for _, value in given}) > 1:
            raise ValueError(" and ".join(name for name, _ in given) + " disagree; send one")
        out[canonical] = given[0][1]
    return out


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, str):
        return value.strip()
    return value


def _text_id(value: Any) -> Any:
    """Where the guide gives no type: a string, or a whole JSON number taken as its digits."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not an identifier")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        raise ValueError("an identifier is a string or a whole number")
    return value


def _document(value: Any) -> Any:
    """A CPF sent as a JSON number has lost its leading zeros: 11 digits back (14 for a
    CNPJ)."""
    value = _text_id(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 14:
        return value.zfill(11 if len(value) <= 11 else 14)
    return value


# A database id: a JSON number or a string of digits; never a boolean.
IdNumber = Annotated[int, BeforeValidator(_no_bool), Field(ge=1, le=MAX_ID)]
# A whole number (stock, adjustments): a JSON number or a string of digits; never a boolean.
Whole = Annotated[int, BeforeValidator(_no_bool)]
TextId = Annotated[str, BeforeValidator(_text_id)]
Document = Annotated[str, BeforeValidator(_document)]
Amount = RawAmount  # judged by kit.money.to_minor against the currency (invalid_amount)

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
    """Documentation of the token request (read by ``auth.token_request``)."""

    api_key: str = Field(
        min_length=1,
        max_length=200,
        description="The merchant's API token (ftk_...); the two values may come in either "
        "order. Also accepted: apiKey, client_id (or HTTP Basic auth).",
    )
    api_secret: str = Field(
        min_length=1,
        max_length=200,
        description="The merchant's API key (fk_live_...). Also accepted: apiSecret, "
        "client_secret.",
    )


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


PHONE_ALIASES = ("phone_number", "cellphone", "mobile")
DOCUMENT_ALIASES = ("document", "cpf_cnpj")
BIRTHDAY_ALIASES = ("birth_date", "birthdate", "date_of_birth")


class CustomerFields(Body):
    ALIASES = {
        "phone": PHONE_ALIASES,
        "cpf": DOCUMENT_ALIASES,
        "birthday": BIRTHDAY_ALIASES,
    }

    phone: TextId | None = Field(
        default=None,
        max_length=40,
        description="E.164 (+5511987654321), or national in the merchant's country "
        "(also: phone_number, cellphone, mobile)",
    )
    password: str | None = Field(
        default=None,
        min_length=8,
        max_length=128,
        json_schema_extra={"format": "password", "writeOnly": True},
        description="Stored as an argon2id digest; never returned",
    )
    email: str | None = Field(default=None, max_length=200)
    cpf: Document | None = Field(
        default=None,
        max_length=20,
        description="11 digits, punctuation allowed, or a number (also: document, cpf_cnpj)",
    )
    birthday: date | None = Field(
        default=None, description="YYYY-MM-DD (also: birth_date, birthdate, date_of_birth)"
    )
    external_id: TextId | None = Field(
        default=None,
        min_length=1,
        max_length=120,
        description="Your system's id for the customer (string or number)",
    )


class CustomerIn(CustomerFields):
    name: str = Field(min_length=1, max_length=200)


class CustomerPatch(CustomerFields):
    """Only the fields sent change; null removes a value (not the last identifier)."""

    name: str | None = Field(default=None, min_length=1, max_length=200)


class CustomerOut(BaseModel):
    id: int
    name: str | None
    cpf: str | None
    phone: str | None
    email: str | None
    external_id: str | None
    birthday: date | None
    birth_date: date | None = Field(description="The same date as birthday")
    balance: Balance
    created_at: datetime


class CustomerPage(BaseModel):
    data: list[CustomerOut]
    meta: Meta


# -- sales -------------------------------------------------------------------------------------


class SaleIn(Body):
    ALIASES = {"cpf": DOCUMENT_ALIASES}

    sale_amount: Amount = Field(
        description="Amount paid, decimal in the merchant's currency", examples=["150.00"]
    )
    cpf: Document | None = Field(
        default=None, max_length=20, description="The customer's CPF (or customer_id)"
    )
    customer_id: IdNumber | None = Field(default=None, description="A number or a string")
    external_id: TextId | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Your sale's id (string or number): the same id again replays the first answer",
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
    ALIASES = {"stock": ("quantity",), "adjust": ("delta",)}

    stock: Whole | None = Field(
        default=None, ge=0, description="Set the units left (null: no limit; also: quantity)"
    )
    adjust: Whole | None = Field(
        default=None,
        description="Or add (negative: take) units; refused rather than going below zero "
        "(also: delta)",
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
    ALIASES = {"code": ("voucher_code", "voucher"), "cpf": DOCUMENT_ALIASES}

    code: TextId | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The voucher's code, for POST /v2/vouchers/validate (also: voucher_code)",
    )
    customer_id: IdNumber | None = Field(
        default=None,
        description="Validate for this customer (a customer's voucher is theirs only)",
    )
    cpf: Document | None = Field(default=None, max_length=20)
    reference: TextId | None = Field(
        default=None, max_length=120, description="Your sale or till reference"
    )
