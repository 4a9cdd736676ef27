"""A fake WhatsApp Graph API: a real HTTP server on 127.0.0.1 that records what the bot
sends, checks the Bearer token, and can be told to fail the next N calls.

It can also keep WhatsApp's 24-hour customer-service window (``enforce_window``): a
free-form message (anything but ``type: template``) to a recipient who has not written in
the last 24 hours (``user_wrote``; the time is Fidelia's clock, so tests can freeze it), or
to one whose window a test closed (``close_window``), is refused as Meta refuses it: HTTP
400 with error 131047 "Re-engagement message". Refused bodies are kept in ``refused``.

``stall(after=N)`` answers N more messages, then holds every request (``stalled`` is set)
until ``release()``: a sender caught in the middle of a batch, to be killed there.

``keep_alive=True`` speaks HTTP/1.1 and keeps connections open as Meta does (HTTP/1.0, one
connection a request, otherwise); ``idle_timeout`` closes a kept-alive connection idle that
long; ``connections`` counts the connections accepted, ``drop_next`` closes the connection
of that many next requests without an answer."""

import json
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fidelia.kit import clock
from tests.fakes.serving import serve

WINDOW = timedelta(hours=24)
RE_ENGAGEMENT = {
    "error": {
        "message": "(#131047) Re-engagement message",
        "type": "OAuthException",
        "code": 131047,
        "error_data": {
            "messaging_product": "whatsapp",
            "details": "Message failed to send because more than 24 hours have passed since "
            "the customer last replied to this number.",
        },
        "fbtrace_id": "AfakeTraceId",
    }
}


class FakeGraph:
    def __init__(
        self,
        token: str = "test-token",
        keep_alive: bool = False,
        idle_timeout: float | None = None,
    ) -> None:
        self.token = token
        self.connections = 0
        self.drop_next = 0
        self.sent: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.fail_next: list[int] = []  # statuses to answer before succeeding
        self.echo_in_errors = False  # like a gateway that quotes the request in its error
        self.enforce_window = False  # refuse free-form text outside the 24-hour window
        self.wrote: dict[str, datetime] = {}  # recipient (digits or user id) -> last inbound
        self.closed: set[str] = set()  # recipients whose window is closed on demand
        self.refused: list[dict[str, Any]] = []  # bodies answered with 131047
        self.lock = threading.Lock()
        self.stall_after: int | None = None  # messages answered before holding requests
        self.stalled = threading.Event()  # a request is being held
        self.released = threading.Event()
        self.released.set()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
            timeout = idle_timeout

            def setup(self) -> None:
                with fake.lock:
                    fake.connections += 1
                super().setup()

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with fake.lock:
                    drop, fake.drop_next = fake.drop_next > 0, max(fake.drop_next - 1, 0)
                if drop:
                    self.close_connection = True
                    return
                with fake.lock:
                    hold = fake.stall_after == 0
                    if fake.stall_after:
                        fake.stall_after -= 1
                if hold:
                    fake.stalled.set()
                    fake.released.wait(60)
                with fake.lock:
                    if self.headers.get("Authorization") != f"Bearer {fake.token}":
                        return self._answer(401, {"error": {"message": "bad token", "code": 190}})
                    if fake.fail_next:
                        quoted = body.decode(errors="replace") if fake.echo_in_errors else ""
                        return self._answer(
                            fake.fail_next.pop(0), {"error": {"message": f"injected {quoted}"}}
                        )
                    message = json.loads(body)
                    if fake._outside_window(message):
                        fake.refused.append(message)
                        return self._answer(400, RE_ENGAGEMENT)
                    fake.sent.append(message)
                    fake.paths.append(self.path)
                self._answer(
                    200, {"messaging_product": "whatsapp", "messages": [{"id": "wamid.fake"}]}
                )

            def _answer(self, status: int, data: dict[str, Any]) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = serve(self.server)

    @staticmethod
    def _recipient(message: dict[str, Any]) -> str:
        return str(message.get("to") or message.get("recipient") or "").lstrip("+")

    def _outside_window(self, message: dict[str, Any]) -> bool:
        """Under ``lock``: would Meta refuse this free-form message (131047)?"""
        if message.get("type") == "template":
            return False
        recipient = self._recipient(message)
        if recipient in self.closed:
            return True
        if not self.enforce_window:
            return False
        last = self.wrote.get(recipient)
        return last is None or clock.now() >= last + WINDOW

    def user_wrote(self, recipient: str, at: datetime | None = None) -> None:
        """The user (number or business-scoped id) wrote to the business: opens the window
        for 24 hours from ``at`` (default: Fidelia's clock now), and enforces it."""
        with self.lock:
            self.enforce_window = True
            self.wrote[recipient.lstrip("+")] = at or clock.now()
            self.closed.discard(recipient.lstrip("+"))

    def close_window(self, recipient: str) -> None:
        """On demand: free-form messages to this recipient are refused (131047)."""
        with self.lock:
            self.closed.add(recipient.lstrip("+"))

    def stall(self, after: int) -> None:
        with self.lock:
            self.released.clear()
            self.stalled.clear()
            self.stall_after = after

    def release(self) -> None:
        with self.lock:
            self.stall_after = None
            self.released.set()

    def texts_to(self, number: str) -> list[str]:
        digits = number.lstrip("+")
        with self.lock:
            return [m["text"]["body"] for m in self.sent if m.get("to") == digits]

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
