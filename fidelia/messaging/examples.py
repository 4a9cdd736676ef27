"""The WhatsApp webhook's OpenAPI examples: Meta's verification handshake and one inbound
text message as the Cloud API posts it (the customer sending the PIN of seed 000's QR)."""

from fidelia.kit.errors import Unauthorized
from fidelia.kit.examples import Catalog, Example, Operation, refused, responses
from fidelia.kit.rendering import default_render

WAMID = "wamid.HBgLNTA2ODg4ODc3NzcVAgASGBQzQUI3RkQ5RTdGQjM0RjI1RTVBMAA="
INBOUND = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "102290129340398",
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "50600000000",
                            "phone_number_id": "106540352242922",
                        },
                        "contacts": [{"profile": {"name": "María"}, "wa_id": "50688887777"}],
                        "messages": [
                            {
                                "from": "50688887777",
                                "id": WAMID,
                                "timestamp": "1778189400",
                                "type": "text",
                                "text": {"body": "Quiero activar mi PIN: 432750"},
                            }
                        ],
                    },
                }
            ],
        }
    ],
}

EXAMPLES: Catalog = {
    ("GET", "/webhooks/whatsapp"): Operation(
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": "my-verify-token",
            "hub.challenge": "1158201444",
        },
        responses={
            200: {
                "challenge": Example(
                    "The verify token matches FIDELIA_WHATSAPP_VERIFY_TOKEN: the challenge, echoed",
                    "1158201444",
                )
            },
            403: {"forbidden": Example("Wrong verify token", "forbidden", media="text/plain")},
        },
    ),
    ("POST", "/webhooks/whatsapp"): Operation(
        request={
            "text": Example(
                "One inbound text message; sign the raw body: X-Hub-Signature-256: "
                "sha256=<HMAC-SHA256 of the body with the app secret>",
                INBOUND,
            )
        },
        responses=responses(
            {
                200: {
                    "received": Example(
                        "Stored, answered 200 (the bot replies through the outbox)",
                        {"received": 1, "processed": 1},
                    )
                }
            },
            refused(
                default_render,
                Unauthorized("Invalid or missing X-Hub-Signature-256.", code="INVALID_SIGNATURE"),
                "Unsigned, or signed with another secret: nothing is read",
            ),
        ),
    ),
}
