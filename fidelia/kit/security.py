"""Secrets: API keys (shown once, stored as a SHA-256 digest: they are long random
strings, so a slow hash buys nothing), and webhook signatures."""

import hashlib
import hmac
import secrets


def new_secret(prefix: str, nbytes: int = 24) -> str:
    return f"{prefix}_{secrets.token_urlsafe(nbytes)}"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def sign_sha256(body: bytes, key: str) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def verify_sha256(body: bytes, key: str, header: str | None) -> bool:
    """Constant-time check of an ``X-Hub-Signature-256: sha256=<hex>`` header."""
    if not header:
        return False
    return hmac.compare_digest(sign_sha256(body, key), header.strip())
