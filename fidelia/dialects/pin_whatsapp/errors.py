"""Seed 000's error format: ``{"ok": false, "codigo": "...", "mensaje": "..."}``."""

from fastapi.responses import JSONResponse

from fidelia.kit.errors import DomainError

# engine code -> (HTTP status, the door's codigo)
CODES: dict[str, tuple[int, str]] = {
    "UNAUTHORIZED": (401, "UNAUTHORIZED"),
    "TOO_MANY_REQUESTS": (429, "TOO_MANY_REQUESTS"),
    "TENANT_NOT_FOUND": (404, "COMERCIO_NOT_FOUND"),
    "CUSTOMER_NOT_FOUND": (404, "CLIENTE_NOT_FOUND"),
    "REWARD_NOT_FOUND": (404, "PROMOCION_NOT_FOUND"),
    "PIN_NOT_FOUND": (404, "PIN_NOT_FOUND"),
    "VERIFICATION_REQUIRED": (403, "VERIFICACION_REQUERIDA"),
    "INSUFFICIENT_POINTS": (422, "PUNTOS_INSUFICIENTES"),
    "BELOW_MINIMUM": (422, "MONTO_MINIMO_NO_ALCANZADO"),
    "INVALID_PHONE": (400, "WHATSAPP_INVALIDO"),
    "INVALID_AMOUNT": (400, "MONTO_INVALIDO"),
    "INVALID_INPUT": (400, "SOLICITUD_INVALIDA"),
    "BAD_REQUEST": (400, "SOLICITUD_INVALIDA"),
    "NOT_FOUND": (404, "NOT_FOUND"),
    "METHOD_NOT_ALLOWED": (405, "METHOD_NOT_ALLOWED"),
    "PIN_GENERATION_FAILED": (500, "PIN_GENERATION_FAILED"),
}


def render(error: DomainError) -> JSONResponse:
    status, codigo = CODES.get(error.code, (500, "INTERNAL_ERROR"))
    message = error.message if status < 500 or codigo != "INTERNAL_ERROR" else "Error interno."
    headers = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(
        {"ok": False, "codigo": codigo, "mensaje": message}, status_code=status, headers=headers
    )
