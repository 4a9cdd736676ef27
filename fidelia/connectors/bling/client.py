"""Bling's HTTP API, as one merchant's connection sees it.

- Every call is paced to Bling's limit (3 requests/s per company, FIDELIA_BLING_REQUESTS_PER_
  SECOND) in this process, and a 429 is retried after ``Retry-After`` (else a growing pause).
- The access token is refreshed shortly before it expires, and once on a 401. Refresh
  tokens rotate (the old one dies when used), so two processes must never both refresh:
  the refresh runs under a row lock on the connection (``SELECT ... FOR UPDATE``; on SQLite
  the write lock of ``BEGIN IMMEDIATE``), and whoever gets the lock second re-reads the row
  and uses the token the first one stored (``token_version`` changed) instead of refreshing.
- A refresh Bling refuses for good (``invalid_grant``) marks the connection ``broken`` with
  the error, for the panel to show; the merchant must connect again.
"""

import base64
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from fidelia.connectors.bling.crypto import SecretBox
from fidelia.kit.clock import now
from fidelia.kit.db import Database
from fidelia.kit.errors import Conflict
from fidelia.kit.settings import Settings
from fidelia.models import BlingConnection, Tenant

log = logging.getLogger("fidelia.bling")
REFRESH_MARGIN = timedelta(minutes=5)  # refresh this long before the access token expires
MAX_TRIES = 6  # per call, when Bling answers 429
PAGE_SIZE = 100  # Bling's largest `limite`
TOKEN_CACHE_SECONDS = 60.0  # how long the worker and the CLI keep an access token in memory


class BlingError(Exception):
    """Bling answered something other than success (``status`` 0: no answer at all)."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(f"Bling {status or 'unreachable'} {kind}: {message}")
        self.status, self.kind, self.message = status, kind, message


class Transient(BlingError):
    """Worth retrying later: network, 5xx, 429 beyond our retries."""


class NotFoundAtBling(BlingError):
    pass


class InvalidGrant(BlingError):
    """The code or refresh token was refused (used, expired or revoked)."""


class AuthLost(BlingError):
    """The connection is broken (its refresh token was refused): connect again."""


class NotConnected(Conflict):
    code = "BLING_NOT_CONNECTED"


@dataclass(frozen=True)
class Link:
    """What a sync needs of a connection, read once (no session is kept open)."""

    id: int
    tenant_id: int
    program_id: int
    company_id: str
    earning: frozenset[int]
    cancelled: frozenset[int]

    @classmethod
    def of(cls, connection: BlingConnection, tenant: Tenant) -> "Link":
        return cls(
            connection.id,
            tenant.id,
            tenant.program_id,
            connection.company_id or "",
            frozenset(int(s) for s in connection.earning_situations or []),
            frozenset(int(s) for s in connection.cancelled_situations or []),
        )


class Pacer:
    """At most ``rate`` calls a second per key in this process (thread-safe), with a 10%
    margin: calls that leave evenly spaced can still arrive bunched up."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.1 / rate if rate > 0 else 0.0
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, key: str) -> None:
        with self._lock:
            at = time.monotonic()
            slot = max(at, self._next.get(key, 0.0))
            self._next[key] = slot + self.interval
        if slot > at:
            time.sleep(slot - at)


_pacers: dict[float, Pacer] = {}
_pacers_lock = threading.Lock()


def pacer_for(rate: float) -> Pacer:
    """One pacer per rate for the whole process, shared by every client object."""
    with _pacers_lock:
        return _pacers.setdefault(rate, Pacer(rate))


def _error(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "HTTP", response.text[:200]
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        kind = str(error.get("type") or "error")
        message = str(error.get("description") or error.get("message") or "")
        return kind, message[:500]
    if isinstance(error, str):  # plain OAuth form
        return error, str(body.get("error_description") or "")[:500]
    return "HTTP", response.text[:200]


def _retry_after(response: httpx.Response, attempt: int) -> float:
    raw = response.headers.get("Retry-After", "")
    try:
        return min(max(float(raw), 0.0), 60.0)
    except ValueError:
        return min(0.5 * 2**attempt, 30.0)


class Bling:
    """Bling's API for every connection of this installation (one Bling app)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        page_size: int = PAGE_SIZE,
        token_cache_seconds: float = 0.0,
    ) -> None:
        self.db = db
        # The worker keeps each connection's access token in memory this long (not past
        # its refresh margin) instead of reading and decrypting it for every call; a
        # token refreshed meanwhile by another process costs one 401 and the re-read.
        self.token_cache_seconds = token_cache_seconds
        self._tokens: dict[int, tuple[str, int, datetime, float]] = {}
        self.settings = settings
        self.base = settings.bling_api_base.rstrip("/")
        self.box = SecretBox.from_settings(settings)
        self.page_size = page_size
        self.pacer = pacer_for(settings.bling_requests_per_second)
        self.http = httpx.Client(timeout=20)

    def close(self) -> None:
        self.http.close()

    # -- transport ---------------------------------------------------------------------

    def _send(self, key: str, method: str, url: str, **kw: Any) -> httpx.Response:
        for attempt in range(MAX_TRIES):
            self.pacer.wait(key)
            try:
                response = self.http.request(method, url, **kw)
            except httpx.HTTPError as exc:
                raise Transient(0, type(exc).__name__, str(exc)) from exc
            if response.status_code != 429:
                return response
            pause = _retry_after(response, attempt)
            log.info("Bling 429 on %s; retrying in %.1fs", url, pause)
            time.sleep(pause)
        raise Transient(429, "TOO_MANY_REQUESTS", f"still limited after {MAX_TRIES} tries")

    def _basic(self) -> dict[str, str]:
        pair = f"{self.settings.bling_client_id}:{self.settings.bling_client_secret}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}

    def token_request(self, form: dict[str, str]) -> dict[str, Any]:
        """POST /oauth/token (Basic client_id:client_secret, form body)."""
        response = self._send(
            "oauth",
            "POST",
            f"{self.base}/oauth/token",
            data=form,
            headers={**self._basic(), "Accept": "application/json"},
        )
        if response.status_code >= 500:
            raise Transient(response.status_code, *_error(response))
        if response.status_code != 200:
            kind, message = _error(response)
            if response.status_code in (400, 401) and kind in ("invalid_grant", "invalid_token"):
                raise InvalidGrant(response.status_code, kind, message)
            raise BlingError(response.status_code, kind, message)
        answer: dict[str, Any] = response.json()
        if not answer.get("access_token"):
            raise BlingError(200, "invalid_response", "no access_token in the answer")
        return answer

    def exchange_code(self, code: str) -> dict[str, Any]:
        return self.token_request({"grant_type": "authorization_code", "code": code})

    def revoke(self, token: str) -> bool:
        """Best effort: True when Bling confirmed (the spec lists no revoke endpoint; Bling's
        developer guide documents POST /oauth/revoke with the token in a form body)."""
        try:
            response = self._send(
                "oauth",
                "POST",
                f"{self.base}/oauth/revoke",
                data={"token": token},
                headers=self._basic(),
            )
        except BlingError as exc:
            log.warning("revoking a Bling token failed: %s", exc)
            return False
        return response.status_code in (200, 204)

    def call_with(self, token: str, key: str, path: str, params: Any = None) -> httpx.Response:
        return self._send(
            key,
            "GET",
            f"{self.base}{path}",
            params=params,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )

    # -- tokens ------------------------------------------------------------------------

    def store_tokens(self, connection: BlingConnection, answer: dict[str, Any]) -> None:
        connection.access_token = self.box.seal(str(answer["access_token"]))
        if answer.get("refresh_token"):
            connection.refresh_token = self.box.seal(str(answer["refresh_token"]))
        lifetime = int(answer.get("expires_in") or 21600)
        connection.access_expires_at = now() + timedelta(seconds=lifetime)
        connection.token_version = (connection.token_version or 0) + 1

    def access_token(self, connection_id: int) -> tuple[str, int]:
        """A usable access token and its version, refreshed first when it is about to expire."""
        cached = self._tokens.get(connection_id)
        if cached is not None:
            token, version, until, read_at = cached
            if time.monotonic() - read_at < self.token_cache_seconds and (
                until - REFRESH_MARGIN > now()
            ):
                return token, version
            del self._tokens[connection_id]
        with self.db.session(readonly=True) as session:
            connection = session.get(BlingConnection, connection_id)
            if connection is None or connection.status == "disconnected":
                raise NotConnected("This merchant is not connected to Bling.")
            if connection.status == "broken":
                raise AuthLost(401, "broken", connection.last_error or "connect again")
            expires = connection.access_expires_at
            if connection.access_token and expires and expires - REFRESH_MARGIN > now():
                token = self.box.open(connection.access_token)
                if self.token_cache_seconds > 0:
                    self._tokens[connection_id] = (
                        token,
                        connection.token_version,
                        expires,
                        time.monotonic(),
                    )
                return token, connection.token_version
            version = connection.token_version
        return self.refresh(connection_id, version, forced=False)

    def refresh(self, connection_id: int, seen_version: int, *, forced: bool) -> tuple[str, int]:
        """Refresh under the row lock; skipped when another process already did."""
        self._tokens.pop(connection_id, None)
        failure: InvalidGrant | None = None
        with self.db.session() as session:
            connection = session.scalar(
                select(BlingConnection).where(BlingConnection.id == connection_id).with_for_update()
            )
            if connection is None or connection.status == "disconnected":
                raise NotConnected("This merchant is not connected to Bling.")
            if connection.status == "broken":
                raise AuthLost(401, "broken", connection.last_error or "connect again")
            expires = connection.access_expires_at
            fresh = bool(expires and expires - REFRESH_MARGIN > now())
            if connection.access_token and (
                connection.token_version != seen_version or (fresh and not forced)
            ):
                return self.box.open(connection.access_token), connection.token_version
            if not connection.refresh_token:
                raise NotConnected("This merchant's Bling connection has no refresh token.")
            try:
                answer = self.token_request(
                    {
                        "grant_type": "refresh_token",
                        "refresh_token": self.box.open(connection.refresh_token),
                    }
                )
            except InvalidGrant as exc:
                failure = exc
                connection.status = "broken"
                connection.last_error = (
                    f"Bling refused the refresh token ({exc.kind}: {exc.message}); connect again."
                )
                connection.last_error_at = now()
            else:
                self.store_tokens(connection, answer)
                log.info("refreshed the Bling token of connection %s", connection_id)
                return self.box.open(connection.access_token or ""), connection.token_version
        assert failure is not None
        raise AuthLost(failure.status, failure.kind, failure.message)

    # -- the API -----------------------------------------------------------------------

    def get(self, link: Link, path: str, params: Any = None) -> dict[str, Any]:
        """GET a path of the API as this connection: paced, 429 retried, 401 refreshed once."""
        token, version = self.access_token(link.id)
        key = link.company_id or str(link.id)
        response = self.call_with(token, key, path, params)
        if response.status_code == 401:
            token, version = self.refresh(link.id, version, forced=True)
            response = self.call_with(token, key, path, params)
        if response.status_code == 404:
            raise NotFoundAtBling(404, *_error(response))
        if response.status_code >= 500:
            raise Transient(response.status_code, *_error(response))
        if response.status_code != 200:
            raise BlingError(response.status_code, *_error(response))
        body: dict[str, Any] = response.json()
        return body

    def pages(
        self, link: Link, path: str, params: dict[str, Any], start: int = 1
    ) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        """(page number, its items) from ``start`` on; a short page is the last."""
        page = start
        while True:
            body = self.get(link, path, {**params, "pagina": page, "limite": self.page_size})
            items = [i for i in body.get("data") or [] if isinstance(i, dict)]
            yield page, items
            if len(items) < self.page_size:
                return
            page += 1

    def company(self, token: str) -> dict[str, Any]:
        """GET /empresas/me/dados-basicos with a token not stored yet (at connect)."""
        response = self.call_with(token, "oauth", "/empresas/me/dados-basicos")
        if response.status_code != 200:
            raise BlingError(response.status_code, *_error(response))
        data: dict[str, Any] = response.json().get("data") or {}
        return data
