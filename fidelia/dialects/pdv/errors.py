"""Seed 001's envelope: ``{Result, ErrorMessage, ErrorCode, Code, CodeName, Severity,
HasWarning, HasError}``. POS clients read an answer as an error when ``HasError`` is true,
``Severity`` is 2, the status is >= 400 or ``Result`` is null; the code from ``CodeName``.
As in the vendor's reference, ``ErrorCode`` is a number and ``Code`` text."""

from typing import Any

from fastapi.responses import JSONResponse

from fidelia.dialects.pdv.schemas import BareError, ErrorEnvelope
from fidelia.kit.errors import DomainError

# engine code -> (HTTP status, numeric Code, CodeName)
CODES: dict[str, tuple[int, int, str]] = {
    "BAD_REQUEST": (400, 1000, "InvalidRequest"),
    "INVALID_INPUT": (400, 1000, "InvalidRequest"),
    "INVALID_AMOUNT": (400, 1000, "InvalidRequest"),
    "INVALID_PHONE": (400, 1017, "InvalidPhone"),
    "INVALID_EMAIL": (400, 1018, "InvalidEmail"),
    "INVALID_DOCUMENT": (400, 1014, "InvalidDocument"),
    "UNAUTHORIZED": (401, 401, "Unauthorized"),
    "CHALLENGE_REQUIRED": (403, 1005, "CustomerValidationRequired"),
    "NOT_FOUND": (404, 404, "NotFound"),
    "METHOD_NOT_ALLOWED": (405, 405, "MethodNotAllowed"),
    "CUSTOMER_NOT_FOUND": (404, 1001, "CustomerNotFound"),
    "REWARD_NOT_FOUND": (404, 1002, "RewardNotFound"),
    "REDEMPTION_NOT_FOUND": (404, 1007, "RedemptionNotFound"),
    "ORDER_NOT_FOUND": (404, 1009, "OrderNotFound"),
    "ORDER_COMPLETE": (409, 1008, "OrderAlreadyComplete"),
    "ORDER_CANCELLED": (409, 1010, "OrderCancelled"),
    "ORDER_NOT_COMPLETE": (409, 1021, "OrderNotComplete"),
    "OUT_OF_STOCK": (409, 1016, "RewardOutOfStock"),
    "CONTACT_TAKEN": (409, 1020, "ContactBelongsToAnotherCustomer"),
    "INSUFFICIENT_POINTS": (422, 1003, "InsufficientPoints"),
    "INSUFFICIENT_CASHBACK": (422, 1004, "InsufficientCashback"),
    "IDEMPOTENCY_KEY_REUSED": (422, 1006, "OriginalKeyReused"),
    "REFUND_MISMATCH": (422, 1011, "RefundProductsMismatch"),
    "REFUND_EXCEEDS_TOTAL": (422, 1012, "RefundExceedsOrderTotal"),
    "CANCEL_KEY_REUSED": (422, 1013, "CancelKeyReused"),
    "INVALID_REFUND": (422, 1019, "InvalidRefund"),
    "REWARD_NOT_USABLE": (422, 1015, "RewardCannotBeUsed"),
    "TOO_MANY_REQUESTS": (429, 429, "TooManyRequests"),
    "PAYLOAD_TOO_LARGE": (413, 413, "PayloadTooLarge"),
    "BALANCE_LIMIT": (422, 1022, "BalanceLimitReached"),
}


def _code(error: DomainError) -> tuple[int, int, str]:
    """The door's (status, code, CodeName); an engine refusal without a row of its own keeps
    its status and gets its name in PascalCase (never a 500 for a client's mistake)."""
    found = CODES.get(error.code)
    if found is not None:
        return found
    if error.status >= 500:
        return 500, 500, "InternalError"
    name = "".join(part.capitalize() for part in error.code.lower().split("_"))
    return error.status, error.status, name


# What the OpenAPI schema declares for every route of the door (malformed input is 400).
STATUSES = (400, 401, 403, 404, 409, 413, 422, 429, 500)
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": "Refused: the envelope with HasError"}
    for status in STATUSES
}
BARE_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": BareError, "description": "Refused (challenge calls answer bare)"}
    for status in STATUSES
}


def envelope(result: Any) -> dict[str, Any]:
    return {
        "Result": result,
        "ErrorMessage": None,
        "ErrorCode": None,
        "Code": None,
        "CodeName": None,
        "Severity": 0,
        "HasWarning": False,
        "HasError": False,
    }


def _headers(error: DomainError) -> dict[str, str]:
    headers = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if error.status == 401:  # RFC 7235: say which scheme the door takes
        headers["WWW-Authenticate"] = 'Basic realm="fidelia POS", charset="UTF-8"'
    return headers


def render(error: DomainError) -> JSONResponse:
    status, code, name = _code(error)
    message = error.message if status < 500 else "Internal error; retry later."
    body = {
        "Result": None,
        "ErrorMessage": message,
        "ErrorCode": code,
        "Code": str(code),
        "CodeName": name,
        "Severity": 2,
        "HasWarning": False,
        "HasError": True,
    }
    return JSONResponse(body, status_code=status, headers=_headers(error))


def render_bare(error: DomainError) -> JSONResponse:
    """The challenge calls answer at the top level, without the envelope."""
    status, code, name = _code(error)
    message = error.message if status < 500 else "Internal error; retry later."
    body = BareError(
        FriendlyErrorMessage=message, ErrorMessage=message, ErrorCode=code, CodeName=name
    ).model_dump()
    return JSONResponse(body, status_code=status, headers=_headers(error))
