"""How each outbox channel reaches the outside world. A sender returns normally on
success (None, or the form that went when it was not the payload's own: ``"template"``
after the 131047 fallback), raises ``Permanent`` for an answer that retrying cannot
change, and anything else (timeouts, 5xx, 429) for a retry with backoff."""

import http.client
import json
import logging
import select
import smtplib
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any
from urllib.parse import unquote, urlparse

import httpx

from fidelia.kit.settings import Settings

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


def check(response: httpx.Response) -> None:
    """A 2xx is delivered; a PERMANENT refusal fails for good; anything else is retried."""
    if response.status_code < 300:
        return
    detail = f"{response.status_code} {response.text[:300]}"
    if response.status_code in PERMANENT:
        raise Permanent(detail)
    raise RuntimeError(detail)


class Poster:
    """POSTs JSON to one URL over one kept-alive connection (issue 14: httpx's client cost
    ~0.28 ms of CPU a request, five times ``http.client``'s, and the outbox worker makes
    one per reply). Like httpx's pool: an idle connection is reused while younger than
    ``KEEPALIVE`` seconds and not closed by the server (its socket is not readable), else a
    new one is opened; a request is sent once, never resent on a connection that failed.
    Transport failures raise httpx's exceptions (``ConnectError``, ``ReadTimeout``...), so
    ``last_error`` reads as before. TLS verifies against certifi's CAs, as httpx did. With a
    proxy in the environment (``HTTPS_PROXY``...), requests go through httpx as before."""

    KEEPALIVE = 5.0

    def __init__(self, url: str, headers: dict[str, str], timeout: float = 10.0) -> None:
        parts = urlparse(url)
        self.secure = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.secure else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout = timeout
        self.headers = {
            **headers,
            "Content-Type": "application/json",
            "Accept": "*/*",
            "User-Agent": f"python-httpx/{httpx.__version__}",
        }
        self.url = url
        self._proxied = httpx.Client(timeout=timeout, headers=headers) if _proxied(url) else None
        self._context: ssl.SSLContext | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._idle_since = 0.0
        self._lock = threading.Lock()  # one connection: one request on it at a time

    def post(self, body: Any) -> httpx.Response:
        if self._proxied is not None:
            return self._proxied.post(self.url, json=body)
        content = json.dumps(
            body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()
        with self._lock:
            conn = self._connection()
            try:
                conn.request("POST", self.path, body=content, headers=self.headers)
                answer = conn.getresponse()
                data = answer.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise _transport_error(exc) from exc
            except BaseException:
                self.close()
                raise
            if answer.will_close:
                self.close()
            else:
                self._idle_since = time.monotonic()
        return httpx.Response(
            answer.status, headers=answer.getheaders(), content=data, request=_REQUEST
        )

    def _connection(self) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is not None and (
            time.monotonic() - self._idle_since > self.KEEPALIVE or _readable(conn.sock)
        ):
            self.close()
            conn = None
        if conn is None:
            if self.secure:
                if self._context is None:
                    self._context = httpx.create_ssl_context()
                conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=self.timeout, context=self._context
                )
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                conn.connect()
            except TimeoutError as exc:
                conn.close()
                raise httpx.ConnectTimeout(str(exc) or "timed out") from exc
            except OSError as exc:
                conn.close()
                raise httpx.ConnectError(str(exc)) from exc
            self._conn = conn
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


_REQUEST = httpx.Request("POST", "http://sender.invalid/")  # for raise_for_status & co.


def _proxied(url: str) -> bool:
    proxies = urllib.request.getproxies()
    host = urlparse(url).hostname or ""
    return bool(proxies.get(urlparse(url).scheme) or proxies.get("all")) and not (
        urllib.request.proxy_bypass(host)
    )


def _readable(sock: socket.socket | None) -> bool:
    """An idle kept-alive connection whose socket is readable was closed by the server (or
    sent something unasked): not to be reused."""
    if sock is None:
        return True
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _transport_error(exc: OSError | http.client.HTTPException) -> httpx.TransportError:
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(str(exc) or "timed out")
    if isinstance(exc, http.client.HTTPException):  # RemoteDisconnected: as httpx says it
        return httpx.RemoteProtocolError(str(exc) or type(exc).__name__)
    return httpx.ReadError(str(exc) or type(exc).__name__)


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


def outside_window(response: httpx.Response) -> bool:
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
