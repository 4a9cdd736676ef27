"""Seed 002's error format: ``{"status": "error", "error": {"code", "message", "path"}}``.

Codes the guide publishes keep their value ("4001012" member not found, "407" insufficient
balance, "1001" invalid phone number, "500"). The others follow the published seven-digit
form: the HTTP status, then four digits for the case. ``path`` names what was wrong the
way the guide does: ``header.x-api-key``, ``body.member.phoneNumber``,
``body.usedAssets[0].key``; null when no one field is to blame.
"""

from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from fidelia.dialects.retail_v1.wire import AMOUNT_ERROR
from fidelia.kit.errors import DomainError, Unauthorized

# engine code -> (HTTP status, the door's code, what it means: the README's table)
CODES: dict[str, tuple[int, str, str]] = {
    "HEADER_MISSING": (400, "4000001", "a required header is missing or empty"),
    "BAD_REQUEST": (400, "4000002", "malformed body: not JSON, wrong type, missing field"),
    "INVALID_INPUT": (400, "4000002", "malformed body: not JSON, wrong type, missing field"),
    "INVALID_PHONE": (400, "1001", "invalid phone number"),
    "INVALID_EMAIL": (400, "4001002", "invalid e-mail address"),
    "INVALID_DATE": (400, "4001003", "invalid date (birthday, dateTime)"),
    "INVALID_AMOUNT": (400, "4001004", "invalid amount (amounts are whole numbers of cents)"),
    "INVALID_EVENT": (400, "4001005", "invalid event type or time"),
    "INVALID_PAYMENT": (400, "4001006", "payment type not POINTS/CREDIT, or no point value"),
    "PAYMENT_EXCEEDS_TOTAL": (400, "4001007", "loyalty payments exceed what is left to pay"),
    "MEMBER_REQUIRED": (400, "4001010", "no member identifier given (or needed here)"),
    "MEMBER_NOT_FOUND": (400, "4001012", "member not found"),
    "UNAUTHORIZED": (401, "4010001", "x-api-key missing, unknown or revoked"),
    "VOUCHER_NOT_YOURS": (403, "4031035", "the asset belongs to another member"),
    "NOT_FOUND": (404, "404", "no such endpoint"),
    "PAYMENT_NOT_FOUND": (404, "4041020", "no payment with this confirmation code"),
    "VOUCHER_NOT_FOUND": (404, "4041030", "no asset with this key"),
    "TRANSACTION_NOT_FOUND": (404, "4041040", "no transaction with this confirmation code"),
    "METHOD_NOT_ALLOWED": (405, "405", "the door takes POST only"),
    "PAYMENT_CANCELLED": (409, "4091021", "the listed loyalty payment was cancelled"),
    "PAYMENT_LINKED": (409, "4091022", "the listed loyalty payment belongs to another transaction"),
    "MEMBER_EXISTS": (409, "4091013", "a member with this identifier is already registered"),
    "CONTACT_TAKEN": (409, "4091014", "the identifier belongs to another member"),
    "VOUCHER_USED": (409, "4091031", "the asset was already used"),
    "VOUCHER_NOT_YET_VALID": (409, "4091033", "the asset is not valid yet"),
    "VOUCHER_CANCELLED": (409, "4091034", "the asset was cancelled"),
    "TRANSACTION_EXISTS": (409, "4091041", "the transactionId was recorded by another door"),
    "VOUCHER_EXPIRED": (410, "4101032", "the asset has expired"),
    "PAYLOAD_TOO_LARGE": (413, "4130001", "request body over the size limit"),
    "INSUFFICIENT_BALANCE": (422, "407", "insufficient points or credit balance"),
    "INSUFFICIENT_POINTS": (422, "407", "insufficient points or credit balance"),
    "IDEMPOTENCY_KEY_REUSED": (422, "4221042", "transactionId reused with another body"),
    "BALANCE_LIMIT": (422, "4221070", "the balance would pass the ledger's cap"),
    "NO_CHANNEL": (422, "4221060", "no consented WhatsApp/SMS number to send a code to"),
    "SHORT_CODE_INVALID": (422, "4221061", "wrong, expired or used short code"),
    "TOO_MANY_REQUESTS": (429, "429", "rate limit exceeded (see Retry-After)"),
}
INTERNAL = (500, "500", "internal error; safe to retry with the same transactionId")


def render(error: DomainError) -> JSONResponse:
    found = CODES.get(error.code)
    if found is None:  # an engine refusal without a code of its own: keep its status
        found = (error.status, f"{error.status}0000", "") if error.status < 500 else INTERNAL
    status, code, _ = found
    message = error.message if status < 500 else "Internal error."
    body = {
        "status": "error",
        "error": {"code": code, "message": message, "path": getattr(error, "path", None)},
    }
    retry_after = getattr(error, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(body, status_code=status, headers=headers)


def fail(error_class: type[DomainError], message: str, code: str, path: str | None) -> DomainError:
    """An engine error carrying the door's ``path``."""
    error = error_class(message, code=code)
    error.path = path  # type: ignore[attr-defined]
    return error


@contextmanager
def at(path: str) -> Iterator[None]:
    """Errors raised inside name ``path`` as the field to blame (unless they name one)."""
    try:
        yield
    except DomainError as error:
        # A limit reached (429) is no field's fault.
        if getattr(error, "path", None) is None and error.status != 429:
            error.path = path  # type: ignore[attr-defined]
        raise


def wire_path(loc: tuple[Any, ...]) -> str:
    """('body', 'transaction', 'items', 0, 'netAmount') -> 'body.transaction.items[0].netAmount'."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def from_validation(exc: RequestValidationError) -> DomainError:
    """FastAPI's validation failure as the door's error: the first problem, with its path.
    Header problems come first (they are checked in the auth dependency)."""
    errors = list(exc.errors())
    first = next((e for e in errors if e.get("loc", ("",))[0] == "header"), errors[0])
    loc = tuple(first.get("loc", ()))
    path = wire_path(loc)
    if loc[:1] == ("header",):
        name = str(loc[1]) if len(loc) > 1 else "?"
        if name == "x-api-key":
            return fail(Unauthorized, "The x-api-key header is required.", "UNAUTHORIZED", path)
        return fail(DomainError, f"The {name} header is required.", "HEADER_MISSING", path)
    if first.get("type") == "json_invalid":
        return fail(DomainError, "The body is not valid JSON.", "BAD_REQUEST", "body")
    where = wire_path(loc[1:]) if loc[:1] == ("body",) else path
    message = f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    code = "INVALID_AMOUNT" if first.get("type") == AMOUNT_ERROR else "BAD_REQUEST"
    return fail(DomainError, message, code, path or "body")


class RetailRoute(APIRoute):
    """Validation failures of this door come out as its own error, with the field's path."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise from_validation(exc) from None

        return handle
