"""How each outbox channel reaches the outside world. A sender returns normally on
success (None, or the form that went when it was not the payload's own: ``"template"``
after the 131047 fallback), raises ``Permanent`` for an answer that retrying cannot
change, and anything else (timeouts, 5xx, 429) for a retry with backoff."""

import logging
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlparse

from fidelia.kit.settings import Settings
from fidelia.messaging.poster import Answer, Poster

Sender = Callable[[dict[str, Any]], str | None]


# Answers that retrying cannot change. 401/403 are retried: a rotated or expired token is
# fixed by the operator, and the messages must still go out afterwards.
PERMANENT = {400, 404, 405, 410, 413, 422}


class Permanent(Exception):
    """Delivery refused for good (say, a malformed number): retrying will not help.
    ``reason``: a short code for the automatic message's log (``message_log.skipped``)."""

    reason: str | None = None


class OutsideWindow(Permanent):
    """Meta refused a free-form message outside the 24-hour window (131047) and no template
    was mapped to carry it instead."""

    reason = "outside-window-no-template"


def check(response: Answer) -> None:
    """A 2xx is delivered; a PERMANENT refusal fails for good; anything else is retried."""
    if response.status_code < 300:
        return
    detail = f"{response.status_code} {response.text[:300]}"
    if response.status_code in PERMANENT:
        raise Permanent(detail)
    raise RuntimeError(detail)


class WhatsAppCloud:
    """POST {graph_base}/v{N}/{phone_number_id}/messages with the Bearer token."""

    def __init__(self, settings: Settings) -> None:
        self.url = (
            f"{settings.graph_base()}/v{settings.whatsapp_api_version}"
            f"/{settings.whatsapp_phone_number_id}/messages"
        )
        self.client = Poster(self.url, {"Authorization": f"Bearer {settings.whatsapp_token}"})

    def __call__(self, payload: dict[str, Any]) -> str | None:
        # "secret" marks a code for redaction after delivery, "fallback" the template to
        # send instead of a text that Meta finds outside the 24-hour window, "sent_as" what
        # went: ours, not Meta's.
        body = {key: value for key, value in payload.items() if key not in OURS}
        response = self.client.post(body)
        if not outside_window(response):
            check(response)
            return None
        fallback = payload.get("fallback")
        if fallback is None:
            raise OutsideWindow(
                "Meta refused the text: more than 24 hours since the customer last wrote "
                "(131047), and no WhatsApp template is mapped for this message "
                f"(fidelia message template set): {response.text[:200]}"
            )
        check(self.client.post(fallback))  # once: a template has no window
        return "template"


OURS = ("secret", "fallback", "sent_as")
OUTSIDE_WINDOW = 131047  # "Re-engagement message": more than 24 hours since the user wrote


def outside_window(response: Answer) -> bool:
    if response.status_code != 400:
        return False
    try:
        return int(response.json()["error"]["code"]) == OUTSIDE_WINDOW
    except (ValueError, KeyError, TypeError):
        return False


class SmsGateway:
    """An HTTP SMS gateway: POST {"to": "+55...", "text": "..."} with a Bearer token."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.client = Poster(url, {"Authorization": f"Bearer {token}"})

    def __call__(self, payload: dict[str, Any]) -> None:
        check(self.client.post({"to": payload["to"], "text": payload["text"]}))


class Smtp:
    """E-mail over SMTP: smtp:// (STARTTLS when the server offers it) or smtps://.

    TLS verifies the server's certificate and name against the system's CAs (a private CA:
    point SSL_CERT_FILE at it); smtplib alone would accept any certificate, so a man in the
    middle could read the password. A password never goes in the clear: smtp:// with a
    user and a server that does not offer STARTTLS is refused (and retried)."""

    def __init__(self, url: str, sender: str, context: ssl.SSLContext | None = None) -> None:
        parts = urlparse(url)
        self.secure = parts.scheme == "smtps"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (465 if self.secure else 25)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = sender
        self.context = context or ssl.create_default_context()

    def __call__(self, payload: dict[str, Any]) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = payload["to"]
        message["Subject"] = payload["subject"]
        message.set_content(payload["text"])
        try:
            with self._connect() as smtp:
                smtp.ehlo()  # the server's extensions: has_extn() knows none before EHLO
                if not self.secure and smtp.has_extn("starttls"):
                    smtp.starttls(context=self.context)
                elif not self.secure and self.user:
                    raise RuntimeError(
                        f"{self.host}:{self.port} offers no STARTTLS: the password is not sent "
                        "in the clear (use smtps:// or a server with STARTTLS)"
                    )
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise Permanent(str(exc)) from exc

    def _connect(self) -> smtplib.SMTP:
        if self.secure:
            return smtplib.SMTP_SSL(self.host, self.port, timeout=10, context=self.context)
        return smtplib.SMTP(self.host, self.port, timeout=10)


class LogOnly:
    """Development stand-in when no gateway is configured: the message goes to the log
    (production refuses to start without a real channel)."""

    def __init__(self, channel: str) -> None:
        self.log = logging.getLogger(f"fidelia.{channel}")

    def __call__(self, payload: dict[str, Any]) -> None:
        self.log.warning("not sent (no gateway configured): %s", payload)


def senders_for(settings: Settings) -> dict[str, Sender]:
    return {
        "whatsapp": WhatsAppCloud(settings),
        "sms": (
            SmsGateway(settings.sms_gateway_url, settings.sms_gateway_token)
            if settings.sms_gateway_url
            else LogOnly("sms")
        ),
        "email": Smtp(settings.smtp_url, settings.smtp_from)
        if settings.smtp_url
        else LogOnly("email"),
    }
