"""A fake WhatsApp Graph API: a real HTTP server on 127.0.0.1 that records what the bot
sends, checks the Bearer token, and can be told to fail the next N calls."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeGraph:
    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self.sent: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.fail_next: list[int] = []  # statuses to answer before succeeding
        self.echo_in_errors = False  # like a gateway that quotes the request in its error
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with fake.lock:
                    if self.headers.get("Authorization") != f"Bearer {fake.token}":
                        return self._answer(401, {"error": {"message": "bad token", "code": 190}})
                    if fake.fail_next:
                        quoted = body.decode(errors="replace") if fake.echo_in_errors else ""
                        return self._answer(
                            fake.fail_next.pop(0), {"error": {"message": f"injected {quoted}"}}
                        )
                    fake.sent.append(json.loads(body))
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
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def texts_to(self, number: str) -> list[str]:
        digits = number.lstrip("+")
        with self.lock:
            return [m["text"]["body"] for m in self.sent if m.get("to") == digits]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
