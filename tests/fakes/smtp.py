"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it receives.

By default a plain server, as a development relay is. With ``tls`` ("starttls": STARTTLS
required before anything else; "smtps": TLS from the first byte) and ``login`` (user,
password), it is a server as production's are: AUTH required, and only over TLS unless
``auth_in_clear``. Each message is kept with the login that sent it and whether the
session was encrypted; every AUTH attempt is kept too."""

import logging
import ssl
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.postgres import free_port

# aiosmtpd logs every connection at INFO from its own thread, past pytest's capture when
# the suite runs in several processes; its warnings and errors still show.
logging.getLogger("mail.log").setLevel(logging.WARNING)


class _Keep:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.sessions: list[dict[str, Any]] = []  # per message: login, tls

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        login = session.auth_data
        self.sessions.append(
            {
                "login": login.decode() if isinstance(login, bytes) else login,
                "tls": server.transport.get_extra_info("ssl_object") is not None,
            }
        )
        return "250 OK"


class FakeSmtp:
    def __init__(
        self,
        *,
        tls: str | None = None,
        context: ssl.SSLContext | None = None,
        login: tuple[str, str] | None = None,
        auth_in_clear: bool = False,
    ) -> None:
        self.handler = _Keep()
        self.port = free_port()
        self.auth_attempts: list[tuple[str, str]] = []
        kwargs: dict[str, Any] = {}
        if login is not None:
            kwargs.update(
                authenticator=self._authenticator(login),
                auth_required=True,
                # Implicit TLS (smtps) is TLS too, though aiosmtpd only counts STARTTLS.
                auth_require_tls=not auth_in_clear and tls != "smtps",
            )
        if tls == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        elif tls == "smtps":
            kwargs.update(ssl_context=context)
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            server_hostname="localhost",
            **kwargs,
        )
        self.controller.start()
        scheme = "smtps" if tls == "smtps" else "smtp"
        self.url = f"{scheme}://127.0.0.1:{self.port}"

    def _authenticator(self, login: tuple[str, str]) -> Any:
        def check(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
            if not isinstance(data, LoginPassword):
                return AuthResult(success=False, handled=False)
            given = (data.login.decode(), data.password.decode())
            self.auth_attempts.append(given)
            if given != login:
                return AuthResult(success=False, handled=False)  # aiosmtpd answers 535
            return AuthResult(success=True, auth_data=data.login)

        return check

    @property
    def messages(self) -> list[Message]:
        return self.handler.messages

    @property
    def sessions(self) -> list[dict[str, Any]]:
        return self.handler.sessions

    def close(self) -> None:
        self.controller.stop()
