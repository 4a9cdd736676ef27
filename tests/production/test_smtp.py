"""E-mail codes over SMTP as production sends them, against real servers (aiosmtpd on
loopback) that require what production's do: ``user:pass`` AUTH only over TLS, reached by
STARTTLS (smtp://) or TLS from the first byte (smtps://). Certificates are made here, by
a CA of the test's own (``cryptography``). The sender verifies the certificate: one not
signed by a trusted CA is refused before the password is sent, and so is a server that
offers AUTH without STARTTLS."""

import smtplib
import ssl
from collections.abc import Iterator

import pytest

from fidelia.kit.db import Database
from fidelia.kit.migrate import upgrade
from fidelia.messaging import outbox
from fidelia.messaging.channels import Smtp
from fidelia.models import OutboxMessage
from tests.fakes.smtp import FakeSmtp
from tests.production.conftest import Processes, fidelia_env, wait_for

USER, PASSWORD = "fidelia@loja.example", "s3cret:with/odd@chars"
QUOTED = "fidelia%40loja.example:s3cret%3Awith%2Fodd%40chars"  # as it is written in the URL
CODE = {"to": "ana@example.com", "subject": "Seu código", "text": "Código: 123456"}


@pytest.fixture
def servers() -> Iterator[list[FakeSmtp]]:
    made: list[FakeSmtp] = []
    yield made
    for server in made:
        server.close()


def server(servers: list[FakeSmtp], **kw: object) -> FakeSmtp:
    made = FakeSmtp(login=(USER, PASSWORD), **kw)  # type: ignore[arg-type]
    servers.append(made)
    return made


def with_login(url: str, login: str = QUOTED) -> str:
    scheme, rest = url.split("://")
    return f"{scheme}://{login}@{rest}"


@pytest.mark.parametrize("tls", ["starttls", "smtps"])
def test_auth_over_tls_delivers(pki, servers, tls):
    smtp = server(servers, tls=tls, context=pki.server)
    Smtp(with_login(smtp.url), "Fidelia <no-reply@loja.example>", pki.client)(CODE)
    (message,) = smtp.messages
    assert message["To"] == "ana@example.com" and "123456" in message.get_payload()
    assert smtp.sessions == [{"login": USER, "tls": True}]
    assert smtp.auth_attempts == [(USER, PASSWORD)]  # the URL's escapes undone


@pytest.mark.parametrize("tls", ["starttls", "smtps"])
def test_a_wrong_password_is_retried_not_delivered(pki, servers, tls):
    smtp = server(servers, tls=tls, context=pki.server)
    with pytest.raises(smtplib.SMTPAuthenticationError):  # not Permanent: the worker retries
        Smtp(with_login(smtp.url, "fidelia%40loja.example:wrong"), "x@y.z", pki.client)(CODE)
    assert smtp.messages == []


def test_without_auth_a_server_that_requires_it_refuses(pki, servers):
    smtp = server(servers, tls="starttls", context=pki.server)
    with pytest.raises(smtplib.SMTPException):
        Smtp(smtp.url, "x@y.z", pki.client)(CODE)
    assert smtp.messages == []


@pytest.mark.parametrize("tls", ["starttls", "smtps"])
def test_an_untrusted_certificate_is_refused_before_the_password(pki, servers, tls):
    """A server (or a man in the middle) with a certificate no trusted CA signed: the
    default context of the sender (the system's CAs) refuses it; so does one trusting only
    the test CA. The password never reaches it."""
    smtp = server(servers, tls=tls, context=pki.rogue)
    for sender in (
        Smtp(with_login(smtp.url), "x@y.z"),
        Smtp(with_login(smtp.url), "x@y.z", pki.client),
    ):
        with pytest.raises(ssl.SSLCertVerificationError):
            sender(CODE)
    assert smtp.auth_attempts == [] and smtp.messages == []


def test_no_password_in_the_clear(servers):
    """smtp:// with a user, and a server that offers AUTH but no STARTTLS: refused."""
    smtp = server(servers, auth_in_clear=True)
    with pytest.raises(RuntimeError, match="offers no STARTTLS"):
        Smtp(with_login(smtp.url), "x@y.z")(CODE)
    assert smtp.auth_attempts == [] and smtp.messages == []


def test_the_worker_process_sends_over_smtps_with_auth(pki, servers, tmp_path):
    """``fidelia worker`` with its real default (the system's CAs, here the test CA through
    SSL_CERT_FILE, as an operator with a private CA sets it) delivers an e-mail code."""
    smtp = server(servers, tls="smtps", context=pki.server)
    url = f"sqlite:///{tmp_path}/fidelia.db"
    upgrade(url)
    db = Database(url, pool_size=1)
    try:
        with db.session() as session:
            outbox.enqueue(session, "email", dict(CODE))
        env = fidelia_env(
            url, FIDELIA_SMTP_URL=with_login(smtp.url), SSL_CERT_FILE=str(pki.ca_file)
        )
        running = Processes(tmp_path)
        try:
            running.spawn(env, "worker")
            wait_for(lambda: smtp.messages, 60, "the e-mail at the SMTP server", every=0.2)
        finally:
            running.stop()
        with db.session(readonly=True) as session:
            (row,) = session.query(OutboxMessage).all()
            assert (row.status, row.attempts) == ("sent", 1)
        assert smtp.sessions == [{"login": USER, "tls": True}]
    finally:
        db.dispose()
