"""A fake HTTP SMS gateway on 127.0.0.1: records {"to", "text"} posted with the token."""

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.serving import serve


class FakeSmsGateway:
    def __init__(self, token: str = "sms-token") -> None:
        self.token = token
        self.sent: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ok = self.headers.get("Authorization") == f"Bearer {fake.token}"
                if ok:
                    fake.sent.append(json.loads(body))
                self.send_response(202 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sms"
        serve(self.server)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
