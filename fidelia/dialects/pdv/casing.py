"""Seed 001 bodies are PascalCase, and POS clients may lower-case them: keys are matched
case-insensitively to the declared fields. Unknown keys are ignored.

Where the guide gives no type, an identifier may come as a JSON string or a number
(``"CustomerId": 52998224725``, ``"OriginalId": 530648963003``): ``WireId`` reads both as
text. A boolean is never read as a number or an identifier (``true`` is not 1)."""

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema, model_validator

from fidelia.kit.money import DecimalIn, exponent, to_minor


def _id_text(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("an identifier, not a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("an identifier is text or a whole number")
        return str(int(value))
    return value  # strings go on; anything else is refused as "not a string"


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a number, not a boolean")
    return value


WireId = Annotated[
    str,
    BeforeValidator(_id_text),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
]
Amount = DecimalIn  # kit.money's one strict reading of amounts
Count = Annotated[int, BeforeValidator(_not_bool)]


class PdvModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _match_keys_case_insensitively(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = {name.lower(): name for name in cls.model_fields}
        return {fields.get(str(key).lower(), key): value for key, value in data.items()}


def money_in(value: Decimal | None, currency: str) -> int:
    """A decimal amount from the POS (``"10.00"``, ``250.5``) in minor units; more decimals
    than the currency has is refused, never rounded (``10.005`` is no amount in BRL)."""
    return 0 if value is None else to_minor(value, currency)


def money_out(minor: int, currency: str) -> float:
    return float(Decimal(minor).scaleb(-exponent(currency)))
