"""One error hierarchy for the engine. Services raise these; each door renders them
in its own wire format (its exception handler maps ``code`` to the door's code)."""


class DomainError(Exception):
    status = 400
    code = "BAD_REQUEST"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class InvalidInput(DomainError):
    status = 422
    code = "INVALID_INPUT"


class Unauthorized(DomainError):
    status = 401
    code = "UNAUTHORIZED"


class Forbidden(DomainError):
    status = 403
    code = "FORBIDDEN"


class NotFound(DomainError):
    status = 404
    code = "NOT_FOUND"


class Conflict(DomainError):
    status = 409
    code = "CONFLICT"


class InsufficientPoints(DomainError):
    status = 422
    code = "INSUFFICIENT_POINTS"


class BalanceLimit(DomainError):
    """A credit that would take a balance past the ledger's cap (``ledger.MAX_BALANCE``)."""

    status = 422
    code = "BALANCE_LIMIT"


class RateLimited(DomainError):
    status = 429
    code = "TOO_MANY_REQUESTS"

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(DomainError):
    """The database does not answer (restarting, failing over, out of connections): nothing
    was written; the same request may be sent again shortly."""

    status = 503
    code = "UNAVAILABLE"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after
