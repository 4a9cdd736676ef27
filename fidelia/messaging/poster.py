"""POST JSON to one URL over one kept-alive connection: the outbox's HTTP senders' client
(WhatsApp's Graph API, SMS gateways; ``messaging/channels.py``).

The outbox worker makes one request a reply, and under load the client was a fifth of the
worker's CPU (issue 14, BENCHMARKS.md): httpx's client cost ~0.28 ms a request, and
``http.client`` ~0.14 ms, most of it its response headers parsed by the ``email`` package
and the request sent in two writes (the headers, then the body). Here the request is one
write of bytes made from a head built once, and the answer is parsed by ``httptools``
(llhttp, uvicorn's parser): ~0.05 ms.

What a client must do, it does: an idle connection is reused while younger than
``KEEPALIVE`` seconds, when the server did not ask to close it and has not closed it (its
socket is not readable), else a new one is opened; a request is sent once, never resent on
a connection that failed; a body is read by its ``Content-Length``, chunked, or up to the
connection's end; TLS verifies the server's certificate and name against certifi's CAs,
as httpx does. Transport failures raise httpx's exceptions (``ConnectError``,
``ReadTimeout``, ``RemoteProtocolError``...), so ``last_error`` reads as with httpx, and
the answer is an ``Answer`` (``httpx.Response``'s names for what the senders read; making
an ``httpx.Response`` cost as much as parsing). With a proxy in the environment
(``HTTPS_PROXY``...), requests go through httpx itself."""

import json
import select
import socket
import ssl
import threading
import time
import urllib.request
from typing import Any
from urllib.parse import ParseResult, urlparse

import httptools
import httpx

_CHUNK = 65536


class Answer:
    """What the server answered, under ``httpx.Response``'s names."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: list[tuple[bytes, bytes]], content: bytes):
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class Poster:
    KEEPALIVE = 5.0

    def __init__(self, url: str, headers: dict[str, str], timeout: float = 10.0) -> None:
        parts = urlparse(url)
        self.secure = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.secure else 80)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout = timeout
        self.url = url
        default_port = self.port == (443 if self.secure else 80)
        sent = {
            "Host": self.host if default_port else f"{self.host}:{self.port}",
            **headers,
            "Content-Type": "application/json",
            "Accept": "*/*",
            "Accept-Encoding": "identity",
            "User-Agent": f"python-httpx/{httpx.__version__}",
        }
        lines = [f"POST {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in sent.items()]
        # A name or value that would end its line (a token pasted with its newline) would
        # let it write headers of its own, and one that is not Latin-1 cannot be sent: each
        # refused at every send (the message retried, the error in its row), as
        # http.client did, not at start.
        self._invalid = next(
            (f"Invalid header {k!r}" for k, v in headers.items() if _breaks_line(k, v)), None
        )
        try:
            self._head = "\r\n".join(lines).encode("latin-1") + b"\r\nContent-Length: "
        except UnicodeEncodeError as exc:
            self._head, self._invalid = b"", self._invalid or f"Invalid header: {exc}"
        self._proxied = httpx.Client(timeout=timeout, headers=headers) if _proxied(parts) else None
        self._context: ssl.SSLContext | None = None
        self._sock: socket.socket | None = None
        self._idle_since = 0.0
        self._lock = threading.Lock()  # one connection: one request on it at a time

    def post(self, body: Any) -> Answer:
        if self._proxied is not None:
            reply = self._proxied.post(self.url, json=body)
            return Answer(reply.status_code, reply.headers.raw, reply.content)
        if self._invalid is not None:
            raise ValueError(self._invalid)
        content = json.dumps(
            body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()
        request = b"%b%d\r\n\r\n%b" % (self._head, len(content), content)
        with self._lock:
            sock = self._connection()
            try:
                sock.sendall(request)
                answer = _read(sock)
            except (OSError, httptools.HttpParserError, _Incomplete) as exc:
                self.close()
                raise _transport_error(exc) from exc
            except BaseException:
                self.close()
                raise
            if answer.keep_alive:
                self._idle_since = time.monotonic()
            else:
                self.close()
        return Answer(answer.status, answer.headers, b"".join(answer.body))

    def _connection(self) -> socket.socket:
        sock = self._sock
        if sock is not None and (
            time.monotonic() - self._idle_since > self.KEEPALIVE or _readable(sock)
        ):
            self.close()
            sock = None
        if sock is None:
            try:
                sock = socket.create_connection((self.host, self.port), self.timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.secure:
                    if self._context is None:
                        self._context = httpx.create_ssl_context()
                    sock = self._context.wrap_socket(sock, server_hostname=self.host)
            except TimeoutError as exc:
                raise httpx.ConnectTimeout(str(exc) or "timed out") from exc
            except OSError as exc:
                raise httpx.ConnectError(str(exc)) from exc
            self._sock = sock
        return sock

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class _Reading:
    """``httptools``' callbacks: the server's answer as it is parsed. The status and
    whether the connection may be kept are read in the callbacks: once ``feed_data`` has
    returned after the message's end, the parser is ready for the next and has forgotten
    them."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.headed = False
        self.done = False
        self.status = 0
        self.keep_alive = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headed = True
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True
        self.keep_alive = self.parser.should_keep_alive()


class _Incomplete(Exception):
    """The server closed the connection before its answer was complete."""


def _read(sock: socket.socket) -> _Reading:
    answer = _Reading()
    while not answer.done:
        data = sock.recv(_CHUNK)
        if not data:
            if answer.headed and _until_closed(answer):
                break  # a body that ends with the connection: complete
            raise _Incomplete(
                "Server disconnected without sending a response."
                if not answer.headers
                else "Server disconnected before the response was complete."
            )
        answer.parser.feed_data(data)
    return answer


def _until_closed(answer: _Reading) -> bool:
    """The answer's body has neither a length nor chunks: it ends with the connection."""
    for name, value in answer.headers:
        lowered = name.lower()
        if lowered == b"content-length" or (
            lowered == b"transfer-encoding" and b"chunked" in value.lower()
        ):
            return False
    return True


def _breaks_line(name: str, value: str) -> bool:
    return any(c in text for text in (name, value) for c in "\r\n\0") or ":" in name


def _proxied(parts: ParseResult) -> bool:
    proxies = urllib.request.getproxies()
    return bool(proxies.get(parts.scheme) or proxies.get("all")) and not (
        urllib.request.proxy_bypass(parts.hostname or "")
    )


def _readable(sock: socket.socket) -> bool:
    """An idle kept-alive connection whose socket is readable was closed by the server (or
    sent something unasked): not to be reused."""
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _transport_error(exc: Exception) -> httpx.TransportError:
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(str(exc) or "timed out")
    if isinstance(exc, _Incomplete | httptools.HttpParserError):  # as httpx says them
        return httpx.RemoteProtocolError(str(exc) or type(exc).__name__)
    return httpx.ReadError(str(exc) or type(exc).__name__)
