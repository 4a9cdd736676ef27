"""The panel's cookies and CSRF tokens, all keyed from FIDELIA_SECRET_KEY.

- ``fidelia_session``: ``{user id, the user's session key, issued at}``, signed (HMAC-SHA256),
  HttpOnly, SameSite=Lax, Secure in production, path /panel. The session key is a column of
  the user: logout and a password change replace it, which ends every cookie issued before.
- ``fidelia_csrf``: a random seed every visitor gets (set by the middleware). Forms carry
  ``csrf_token`` = HMAC(seed), htmx sends it as ``X-CSRF-Token`` (panel.js reads it from the
  page's meta tag). A cross-site page can neither read the seed nor compute the token.
- ``fidelia_notice``: a one-time message shown after a redirect ("Saved."), signed.
"""

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from starlette.responses import Response

from fidelia.kit.settings import Settings

SESSION = "fidelia_session"
CSRF = "fidelia_csrf"
NOTICE = "fidelia_notice"
IMPERSONATE = "fidelia_impersonate"
IMPERSONATION_SECONDS = 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
PATH = "/panel"


class Signer:
    """Signed, URL-safe values for one purpose (a key derived per purpose)."""

    def __init__(self, secret: str, purpose: str) -> None:
        self.key = hmac.new(secret.encode(), f"fidelia-panel:{purpose}".encode(), "sha256").digest()

    def mac(self, data: bytes) -> str:
        raw = hmac.new(self.key, data, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def sign(self, value: Any) -> str:
        data = base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")
        return f"{data}.{self.mac(data.encode())}"

    def unsign(self, text: str | None) -> Any:
        """The value, or None when missing, malformed or not signed by us."""
        if not text or "." not in text:
            return None
        data, _, mac = text.rpartition(".")
        if not hmac.compare_digest(mac, self.mac(data.encode())):
            return None
        try:
            return json.loads(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
        except ValueError:
            return None


class Cookies:
    """Issues and reads the panel's cookies for one app (one secret, one environment)."""

    def __init__(self, settings: Settings) -> None:
        self.secure = settings.env == "production"
        self.max_age = settings.panel_session_hours * 3600
        self.sessions = Signer(settings.secret_key, "session")
        self.csrf = Signer(settings.secret_key, "csrf")
        self.notices = Signer(settings.secret_key, "notice")
        self.impersonations = Signer(settings.secret_key, "impersonate")

    def _set(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=PATH,
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    # -- session --
    def start_session(self, response: Response, user_id: int, session_key: str) -> None:
        value = self.sessions.sign({"u": user_id, "k": session_key, "t": int(time.time())})
        self._set(response, SESSION, value, self.max_age)

    def end_session(self, response: Response) -> None:
        response.delete_cookie(SESSION, path=PATH, secure=self.secure, httponly=True)

    def session_of(self, cookie: str | None) -> tuple[int, str] | None:
        """(user id, session key) of a valid, unexpired session cookie."""
        value = self.sessions.unsign(cookie)
        if not isinstance(value, dict):
            return None
        user, key, issued = value.get("u"), value.get("k"), value.get("t")
        if not (isinstance(user, int) and isinstance(key, str) and isinstance(issued, int)):
            return None
        if not 0 <= time.time() - issued < self.max_age:
            return None
        return user, key

    # -- CSRF --
    def csrf_token(self, seed: str) -> str:
        return self.csrf.mac(seed.encode())

    def csrf_valid(self, seed: str | None, token: str | None) -> bool:
        if not seed or not token:
            return False
        return hmac.compare_digest(self.csrf_token(seed), token)

    def set_csrf_seed(self, response: Response, seed: str) -> None:
        self._set(response, CSRF, seed, None)

    # -- an operator's read-only view of a merchant (support) --
    def start_impersonation(self, response: Response, user_id: int, tenant_id: int) -> None:
        value = self.impersonations.sign({"u": user_id, "m": tenant_id, "t": int(time.time())})
        self._set(response, IMPERSONATE, value, IMPERSONATION_SECONDS)

    def impersonation_of(self, cookie: str | None, user_id: int) -> int | None:
        """The merchant this operator is viewing, for an unexpired cookie issued to them."""
        value = self.impersonations.unsign(cookie)
        if not isinstance(value, dict) or value.get("u") != user_id:
            return None
        tenant_id, issued = value.get("m"), value.get("t")
        if not (isinstance(tenant_id, int) and isinstance(issued, int)):
            return None
        if not 0 <= time.time() - issued < IMPERSONATION_SECONDS:
            return None
        return tenant_id

    def end_impersonation(self, response: Response) -> None:
        response.delete_cookie(IMPERSONATE, path=PATH, secure=self.secure, httponly=True)

    # -- one-time notices --
    def set_notice(self, response: Response, text: str) -> None:
        self._set(response, NOTICE, self.notices.sign(text), 120)

    def notice_of(self, cookie: str | None) -> str | None:
        value = self.notices.unsign(cookie)
        return value if isinstance(value, str) else None

    def clear_notice(self, response: Response) -> None:
        response.delete_cookie(NOTICE, path=PATH, secure=self.secure, httponly=True)
