"""How each outbox channel reaches the outside world. A sender returns normally on
success, raises ``Permanent`` for an answer that retrying cannot change, and anything
else (timeouts, 5xx, 429) for a retry with backoff."""

from collections.abc import Callable
from typing import Any

import httpx

from fidelia.kit.settings import Settings

Sender = Callable[[dict[str, Any]], None]


class Permanent(Exception):
    """Delivery refused for good (say, a malformed number): retrying will not help."""


class WhatsAppCloud:
    """POST {graph_base}/v{N}/{phone_number_id}/messages with the Bearer token."""

    def __init__(self, settings: Settings) -> None:
        self.url = (
            f"{settings.graph_base()}/v{settings.whatsapp_api_version}"
            f"/{settings.whatsapp_phone_number_id}/messages"
        )
        self.client = httpx.Client(
            timeout=10.0, headers={"Authorization": f"Bearer {settings.whatsapp_token}"}
        )

    def __call__(self, payload: dict[str, Any]) -> None:
        response = self.client.post(self.url, json=payload)
        if response.status_code < 300:
            return
        detail = f"{response.status_code} {response.text[:300]}"
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise Permanent(detail)
        raise RuntimeError(detail)


def senders_for(settings: Settings) -> dict[str, Sender]:
    return {"whatsapp": WhatsAppCloud(settings)}
