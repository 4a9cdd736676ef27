"""The outbox's HTTP client (``messaging/poster.py``) against a real server on loopback that
answers each request with the bytes a test scripts: what it sends (one request, its
headers, its JSON), the three ways a body ends (its length, chunks, the connection's
end), when a connection is kept and when not, TLS verified against a CA the test made,
and the transport failures named as httpx names them."""

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from fidelia.messaging.poster import Poster

OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
HANG = b""  # read the request, answer nothing


@dataclass
class Seen:
    head: list[str]
    body: bytes


@dataclass
class Scripted:
    """Answers the n-th request with ``answers[n]``; a ``None`` closes the connection after
    the answer before it, ``HANG`` answers nothing."""

    answers: list[bytes | None]
    context: ssl.SSLContext | None = None
    seen: list[Seen] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}/v21.0/123/messages?x=1"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        try:
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            data = b""
            while self.answers:
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                head, _, data = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = next(
                    int(line.split(":")[1]) for line in lines if line.startswith("Content-Length")
                )
                while len(data) < length:
                    data += conn.recv(65536)
                self.seen.append(Seen(lines, data[:length]))
                data = data[length:]
                answer = self.answers.pop(0)
                if answer is None:
                    return
                if answer is HANG:
                    conn.recv(1)  # until the client gives up
                    return
                conn.sendall(answer)
                if self.answers and self.answers[0] is None:
                    self.answers.pop(0)
                    return
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def servers() -> Iterator[list[Scripted]]:
    made: list[Scripted] = []
    yield made
    for server in made:
        server.close()


def scripted(servers: list[Scripted], *answers: bytes | None, **kw: object) -> Scripted:
    server = Scripted(list(answers), **kw)  # type: ignore[arg-type]
    servers.append(server)
    return server


def test_one_request_its_headers_and_json_then_the_answer(servers):
    server = scripted(servers, OK)
    poster = Poster(server.url(), {"Authorization": "Bearer t0k"})
    answer = poster.post({"to": "5511999999999", "text": {"body": "Olá, você"}})

    assert (answer.status_code, answer.json(), answer.text) == (200, {"ok": True}, '{"ok":true}')
    (seen,) = server.seen
    assert seen.head[0] == "POST /v21.0/123/messages?x=1 HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in seen.head[1:])
    assert headers["Host"] == f"127.0.0.1:{server.port}"
    assert headers["Authorization"] == "Bearer t0k"
    assert headers["Content-Type"] == "application/json"
    assert int(headers["Content-Length"]) == len(seen.body)
    assert json.loads(seen.body) == {"to": "5511999999999", "text": {"body": "Olá, você"}}


def test_a_chunked_body_and_a_body_up_to_the_end_are_read_whole(servers):
    chunked = (
        b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'9\r\n{"error":\r\n10\r\n{"code":131047}}\r\n0\r\n\r\n'
    )
    to_the_end = b"HTTP/1.1 503 Unavailable\r\nConnection: close\r\n\r\nback soon"
    server = scripted(servers, chunked, OK, to_the_end)
    poster = Poster(server.url(), {})

    first = poster.post({})
    assert (first.status_code, first.json()) == (400, {"error": {"code": 131047}})
    assert poster.post({}).status_code == 200  # the same connection, kept
    last = poster.post({})
    assert (last.status_code, last.text) == (503, "back soon")
    assert server.connections == 1


def test_a_connection_the_server_asks_to_close_is_not_reused(servers):
    """Even where the server leaves it open after saying so."""
    closing = OK.replace(b"Content-Length", b"Connection: close\r\nContent-Length")
    server = scripted(servers, closing, OK)
    poster = Poster(server.url(), {})
    assert poster.post({}).status_code == 200
    assert poster.post({}).status_code == 200
    assert server.connections == 2


def test_no_answer_or_half_of_one_is_a_protocol_error_and_the_next_goes_on_a_new_connection(
    servers,
):
    half = b'HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"ok"'
    server = scripted(servers, None, half, None, OK)
    poster = Poster(server.url(), {})
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        poster.post({"n": 1})
    with pytest.raises(httpx.RemoteProtocolError, match="before the response was complete"):
        poster.post({"n": 2})
    assert poster.post({"n": 3}).status_code == 200
    assert [json.loads(s.body)["n"] for s in server.seen] == [1, 2, 3]  # each sent once
    assert server.connections == 3


def test_an_answer_that_is_not_http_is_a_protocol_error(servers):
    server = scripted(servers, b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    with pytest.raises(httpx.RemoteProtocolError):
        Poster(server.url(), {}).post({})


def test_a_server_that_never_answers_is_a_read_timeout(servers):
    server = scripted(servers, HANG)
    with pytest.raises(httpx.ReadTimeout):
        Poster(server.url(), {}, timeout=0.3).post({})


def test_nobody_listening_is_a_connect_error():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        Poster(f"http://127.0.0.1:{port}/", {}).post({})


def test_a_header_that_would_end_its_line_is_refused_at_each_send_never_sent(servers):
    server = scripted(servers, OK)
    poster = Poster(server.url(), {"Authorization": "Bearer t0k\r\nX-Injected: 1"})
    with pytest.raises(ValueError, match="Invalid header"):
        poster.post({})
    assert server.connections == 0


def test_tls_verified_against_the_trusted_cas(servers, pki, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    server = scripted(servers, OK, OK, context=pki.server)
    poster = Poster(server.url("https"), {})
    assert poster.post({"n": 1}).json() == {"ok": True}
    assert poster.post({"n": 2}).status_code == 200
    assert server.connections == 1
    assert [json.loads(s.body) for s in server.seen] == [{"n": 1}, {"n": 2}]


def test_tls_with_a_certificate_nobody_signed_is_refused_before_the_request(
    servers, pki, monkeypatch
):
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca_file))
    server = scripted(servers, OK, context=pki.rogue)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        Poster(server.url("https"), {}).post({})
    assert server.seen == []
