"""The Bling webhook's OpenAPI examples: one order event as Bling posts it."""

from fidelia.kit.errors import Unauthorized
from fidelia.kit.examples import Catalog, Example, Operation, refused, responses
from fidelia.kit.rendering import default_render

EVENT = {
    "eventId": "01945027-150f-7a5a-b4d3-2c8e0b6f7c11",
    "date": "2026-05-07T15:30:00Z",
    "version": "v1",
    "event": "order.updated",
    "companyId": "436c56a5679921f5f13a3d6433561773",
    "data": {
        "id": 12345678,
        "numero": 123,
        "total": 115.0,
        "contato": {"id": 12345678},
        "situacao": {"id": 9, "valor": 1},
    },
}

EXAMPLES: Catalog = {
    ("POST", "/webhooks/bling"): Operation(
        request={
            "order": Example(
                "An order changed at Bling; signed: X-Bling-Signature-256: "
                "sha256=<HMAC-SHA256 of the raw body with the client secret>",
                EVENT,
            )
        },
        responses=responses(
            {
                200: {
                    "stored": Example(
                        "Stored; the worker fetches the order and applies it",
                        {"received": True, "duplicate": False},
                    ),
                    "repeat": Example(
                        "This eventId was stored before: nothing more is done",
                        {"received": True, "duplicate": True},
                    ),
                }
            },
            refused(
                default_render,
                Unauthorized("Invalid or missing X-Bling-Signature-256.", code="INVALID_SIGNATURE"),
                "Unsigned, or signed with another secret: nothing is read or stored",
            ),
        ),
    ),
}
