"""Seed 000's OpenAPI examples: the guide's own (Café Demo, slug ``cafe-demo``, promotion 3
"Café gratis" for 10 points, WhatsApp +506 8888 7777) as Fidelia answers them today. A
merchant in Costa Rica: amounts in colones, times at -06:00. PINs are six digits by
default (their length follows how many are open, see ``pins/guard.py``)."""

from fidelia.dialects.pin_whatsapp.errors import render
from fidelia.kit.errors import (
    Forbidden,
    InsufficientPoints,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthorized,
)
from fidelia.kit.examples import Catalog, Example, Operation, refused, responses

PIN = "432750"
BASE = "https://fidelia.example/api/v1/integraciones/pin"

UNAUTHORIZED = refused(
    render,
    Unauthorized("API key inválida, revocada o ausente."),
    "X-API-Key missing, unknown or revoked",
)
RATE_LIMITED = refused(
    render,
    RateLimited("Rate limit of 30 per 1 minute exceeded.", retry_after=42),
    "Over the guide's 30 calls a minute (see Retry-After)",
)

EXAMPLES: Catalog = {
    ("POST", "/api/v1/integraciones/pin/generar"): Operation(
        request={
            "monto": Example(
                "With the invoice total (checked against the merchant's minimum)",
                {"monto": 12500},
            ),
            "sin_monto": Example("No amount: the guide's call, no minimum checked", {}),
        },
        responses=responses(
            {
                200: {
                    "pin": Example(
                        "A PIN to print as a QR on the invoice",
                        {
                            "ok": True,
                            "pin": PIN,
                            "expires_at": "2026-05-07T15:30:00-06:00",
                            "expires_in": 1800,
                            "id_comercio": 1,
                            "whatsapp_url": "https://wa.me/50600000000"
                            f"?text=Quiero+activar+mi+PIN:+{PIN}",
                            "qr_svg_url": f"{BASE}/{PIN}/qr.svg",
                            "qr_png_url": f"{BASE}/{PIN}/qr.png",
                        },
                    )
                }
            },
            UNAUTHORIZED,
            refused(
                render,
                InvalidInput("The purchase is below the merchant's minimum.", code="BELOW_MINIMUM"),
                "monto below the merchant's minimum: no PIN",
            ),
            RATE_LIMITED,
        ),
    ),
    ("GET", "/api/v1/integraciones/pin/{pin}/qr.{fmt}"): Operation(
        params={"pin": PIN, "fmt": "svg"},
        responses=responses(
            {
                200: {
                    "svg": Example(
                        "qr.svg (shortened; qr.png is the same code as a PNG image)",
                        '<?xml version="1.0" encoding="utf-8"?>\n<svg '
                        'xmlns="http://www.w3.org/2000/svg" width="222" height="222" '
                        'class="segno"><path transform="scale(6)" class="qrline" '
                        'stroke="#000" d="M2 2.5h7m2 0h1m1 0h1..."/></svg>',
                        media="image/svg+xml",
                    )
                }
            },
            UNAUTHORIZED,
            refused(
                render,
                NotFound("PIN desconocido para este comercio.", code="PIN_NOT_FOUND"),
                "No such PIN at this merchant",
            ),
        ),
    ),
    ("GET", "/api/v1/redimir/comercio/{slug}"): Operation(
        params={"slug": "cafe-demo"},
        responses=responses(
            {
                200: {
                    "comercio": Example(
                        "The merchant and its active rewards, cheapest first",
                        {
                            "ok": True,
                            "comercio": {"id": 1, "nombre": "Café Demo", "slug": "cafe-demo"},
                            "promociones": [
                                {
                                    "id": 3,
                                    "titulo": "Café gratis",
                                    "descripcion": "Un café americano de cortesía",
                                    "puntos_requeridos": 10,
                                },
                                {
                                    "id": 1,
                                    "titulo": "Postre gratis",
                                    "descripcion": "Un postre del día",
                                    "puntos_requeridos": 20,
                                },
                            ],
                        },
                    )
                }
            },
            refused(
                render,
                NotFound("No merchant 'cafe-dem'.", code="TENANT_NOT_FOUND"),
                "Unknown slug",
            ),
            RATE_LIMITED,
        ),
    ),
    ("GET", "/api/v1/redimir/puntos/{wa}"): Operation(
        params={"wa": "+50688887777"},
        responses=responses(
            {
                200: {
                    "puntos": Example(
                        "Points at every merchant where the number has them",
                        {
                            "ok": True,
                            "total": 1,
                            "data": [
                                {
                                    "tipo": "individual",
                                    "nombre": "Café Demo",
                                    "id_comercio": 1,
                                    "comercios": [1],
                                    "puntos": 10,
                                    "proxima_recompensa": {
                                        "titulo": "Café gratis",
                                        "puntos_requeridos": 10,
                                        "puntos_faltantes": 0,
                                    },
                                }
                            ],
                        },
                    )
                }
            },
            refused(
                render,
                NotFound("Este WhatsApp no tiene puntos registrados.", code="CUSTOMER_NOT_FOUND"),
                "The number has no points anywhere",
            ),
            RATE_LIMITED,
        ),
    ),
    ("POST", "/api/v1/redimir/canjear"): Operation(
        request={
            "canje": Example(
                "Redeem promotion 3 for the customer at merchant 1",
                {"whatsapp": "+50688887777", "id_comercio": 1, "id_promocion": 3},
            )
        },
        responses=responses(
            {
                200: {
                    "canje": Example(
                        "Redeemed: apply the benefit on the invoice",
                        {
                            "ok": True,
                            "puntos_restantes": 0,
                            "recompensa": "Café gratis",
                            "mensaje": "¡Canje exitoso! Aplicá el beneficio en la factura.",
                        },
                    )
                }
            },
            refused(
                render,
                Forbidden(
                    "No accreditation at this merchant within the verification window.",
                    code="VERIFICATION_REQUIRED",
                ),
                "No PIN activated at this merchant in the last 30 minutes",
            ),
            refused(
                render,
                InsufficientPoints("Not enough points."),
                "Not enough points for this reward",
            ),
            refused(
                render,
                NotFound("No reward 9 at this merchant.", code="REWARD_NOT_FOUND"),
                "No such promotion at this merchant",
            ),
            RATE_LIMITED,
        ),
    ),
}
