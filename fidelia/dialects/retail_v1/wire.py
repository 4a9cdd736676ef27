"""How seed 002 reads values the guide leaves untyped, and the one shape of its answers.

- **Amounts** are whole numbers of cents (the currency's minor unit): ``1500`` is R$ 15,00.
  The guide never says so, and a client sending ``15.0`` or ``"15.00"`` meaning reais would
  earn a hundredth of what it should, silently. So a number with a decimal point (or an
  exponent), a decimal string and a boolean are refused with an error saying amounts are in
  cents; a string of digits (``"1500"``) is read as the number.
- **Identifiers** (``transactionId``, ``lineId``, ``externalId``, ``confirmationCode``...)
  are strings; a whole JSON number is taken as its digits. Booleans and fractions are not
  identifiers.
- **Answers** are ``{"status": "success", <the endpoint's fields>, "data": {<the same>}}``:
  the guide shows the fields beside ``status`` (``confirmationCode``), the vendor's detailed
  reference wraps them in ``data``; clients of both read the same answer. Fields of the
  request that the door does not know come back as ``warnings``, never dropped in silence.
"""

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from fastapi.responses import JSONResponse
from pydantic import AliasChoices, BaseModel, BeforeValidator
from pydantic_core import PydanticCustomError

from fidelia.kit.money import MAX_MINOR

AMOUNT_ERROR = "amount_in_cents"
INTEGER = re.compile(r"^[+-]?\d{1,18}$")


def cents(value: Any) -> Any:
    """The door's one reading of an amount: a whole number of cents."""
    if isinstance(value, bool):
        raise PydanticCustomError(
            AMOUNT_ERROR, "amounts are whole numbers of cents; true/false is not an amount"
        )
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) or (isinstance(value, str) and not INTEGER.match(value.strip())):
        raise PydanticCustomError(
            AMOUNT_ERROR,
            "amounts are whole numbers in cents (the currency's minor unit): send 1050 for "
            "10.50, not {value}",
            {"value": repr(value)},
        )
    elif isinstance(value, str):
        number = int(value.strip())
    else:
        raise PydanticCustomError(AMOUNT_ERROR, "amounts are whole numbers of cents")
    if abs(number) > MAX_MINOR:
        raise PydanticCustomError(AMOUNT_ERROR, "amount out of range")
    return number


def identifier(value: Any) -> Any:
    """A string, or a whole JSON number taken as its digits."""
    if isinstance(value, bool) or isinstance(value, float):
        raise PydanticCustomError(
            "identifier",
            "an identifier is a string or a whole number, not {value}",
            {"value": value},
        )
    if isinstance(value, int):
        return str(value)
    return value


def quantity(value: Any) -> Any:
    """Quantities may be fractional (1.5 kg); booleans are not numbers."""
    if isinstance(value, bool):
        raise PydanticCustomError("quantity", "a quantity is a number, not true/false")
    return value


Cents = Annotated[int, BeforeValidator(cents)]
Ident = Annotated[str, BeforeValidator(identifier)]
Quantity = Annotated[float, BeforeValidator(quantity)]


# -- warnings --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldWarning:
    path: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


UNKNOWN = "unknown field ignored"


def unknown_fields(model: Any, path: str = "body") -> list[FieldWarning]:
    """Every key of the request that no field of the door reads, with its wire path."""
    found: list[FieldWarning] = []
    if isinstance(model, list):
        for i, item in enumerate(model):
            found += unknown_fields(item, f"{path}[{i}]")
        return found
    if not isinstance(model, BaseModel):
        return found
    synonyms, nesting = _shape(type(model))
    for key in model.model_extra or {}:
        if key in synonyms:
            found.append(
                FieldWarning(
                    f"{path}.{key}", f"another name for {synonyms[key]}, given twice; ignored"
                )
            )
        else:
            found.append(FieldWarning(f"{path}.{key}", UNKNOWN))
    for name in nesting:
        value = getattr(model, name)
        if isinstance(value, BaseModel | list):
            found += unknown_fields(value, f"{path}.{name}")
    return found


@functools.cache
def _shape(model: type[BaseModel]) -> tuple[dict[str, str], tuple[str, ...]]:
    """A request model's aliases (alias -> field) and the fields that may hold models or
    lists (the others cannot hide an unknown key), worked out once per model."""
    synonyms: dict[str, str] = {}
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            for choice in alias.choices:
                if isinstance(choice, str):
                    synonyms[choice] = name
    nesting = tuple(name for name, info in model.model_fields.items() if _may_nest(info.annotation))
    return synonyms, nesting


def _may_nest(annotation: Any) -> bool:
    """Whether a field of this type may hold a model or a list."""
    if annotation is Any or annotation is list or get_origin(annotation) is list:
        return True
    if isinstance(annotation, type):
        return issubclass(annotation, BaseModel)
    return any(_may_nest(arg) for arg in get_args(annotation))


# -- answers ---------------------------------------------------------------------------------

RESERVED = ("status", "data", "error", "warnings", "message")


def envelope(
    request: BaseModel | None,
    data: BaseModel | Mapping[str, Any],
    *,
    message: str | None = None,
    notes: Iterable[FieldWarning] = (),
) -> dict[str, Any]:
    """The door's one success answer: ``data`` as the vendor's reference nests it, its
    fields again beside ``status`` as the guide shows them (the envelope's ``status``
    wins over a ``status`` inside ``data``), and ``warnings`` for what was not read."""
    payload = data.model_dump(mode="json") if isinstance(data, BaseModel) else dict(data)
    body: dict[str, Any] = {"status": "success"}
    if message:
        body["message"] = message
    body.update({k: v for k, v in payload.items() if k not in RESERVED})
    body["data"] = payload
    warnings = (unknown_fields(request) if request is not None else []) + list(notes)
    if warnings:
        body["warnings"] = [w.as_json() for w in warnings]
    return body


def success(
    request: BaseModel | None,
    data: BaseModel | Mapping[str, Any],
    *,
    message: str | None = None,
    notes: Iterable[FieldWarning] = (),
) -> JSONResponse:
    """``envelope`` as the response."""
    return JSONResponse(envelope(request, data, message=message, notes=notes))
