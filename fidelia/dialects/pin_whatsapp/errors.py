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
    "CHALLENGE_REQUIRED": (403, "VERIFICACION_REQUERIDA"),
    "INSUFFICIENT_POINTS": (422, "PUNTOS_INSUFICIENTES"),
    "BELOW_MINIMUM": (422, "MONTO_MINIMO_NO_ALCANZADO"),
    "INVALID_PHONE": (400, "WHATSAPP_INVALIDO"),
    "INVALID_AMOUNT": (400, "MONTO_INVALIDO"),
    "INVALID_INPUT": (400, "SOLICITUD_INVALIDA"),
    "BAD_REQUEST": (400, "SOLICITUD_INVALIDA"),
    "NOT_FOUND": (404, "NOT_FOUND"),
    "METHOD_NOT_ALLOWED": (405, "METHOD_NOT_ALLOWED"),
    "PAYLOAD_TOO_LARGE": (413, "PAYLOAD_TOO_LARGE"),
    "PIN_GENERATION_FAILED": (500, "PIN_GENERATION_FAILED"),
}

# The guide is in Spanish: these messages are what a cashier may see.
MENSAJES = {
    "UNAUTHORIZED": "API key inválida, revocada o ausente.",
    "TOO_MANY_REQUESTS": "Demasiadas solicitudes. Reintentá más tarde.",
    "COMERCIO_NOT_FOUND": "Comercio no encontrado.",
    "CLIENTE_NOT_FOUND": "Este WhatsApp no tiene puntos registrados.",
    "PROMOCION_NOT_FOUND": "Promoción no encontrada en este comercio.",
    "VERIFICACION_REQUERIDA": "El cliente debe activar un PIN en este comercio antes de canjear.",
    "PUNTOS_INSUFICIENTES": "El cliente no tiene puntos suficientes para esta recompensa.",
    "MONTO_MINIMO_NO_ALCANZADO": "El monto no alcanza el mínimo del comercio para generar un PIN.",
    "WHATSAPP_INVALIDO": "Número de WhatsApp inválido (use el código de país, + como %2B).",
    "PIN_GENERATION_FAILED": "No se pudo generar el PIN. Reintentá.",
    "INTERNAL_ERROR": "Error interno del servidor. Reintentá en 30 s.",
}


# Engine refusals that share a codigo with another but need their own words.
MENSAJES_BY_CODE = {
    "CHALLENGE_REQUIRED": "Este comercio valida al cliente: pedile que escriba «código» al "
    "WhatsApp del comercio y enviá el código que recibe en «codigo».",
}


def render(error: DomainError) -> JSONResponse:
    fallback = (error.status, error.code) if error.status < 500 else (500, "INTERNAL_ERROR")
    status, codigo = CODES.get(error.code, fallback)
    message = MENSAJES_BY_CODE.get(error.code) or MENSAJES.get(codigo, error.message)
    headers = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(
        {"ok": False, "codigo": codigo, "mensaje": message}, status_code=status, headers=headers
    )
