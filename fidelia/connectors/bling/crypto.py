"""Secrets at rest (Bling's tokens): Fernet with rotatable keys.

``FIDELIA_ENCRYPTION_KEYS`` holds comma-separated Fernet keys: the first encrypts, every
one decrypts (MultiFernet). Rotation: put a new key first, restart, run
``fidelia bling rotate-keys`` (re-encrypts every stored token with the first key), then
remove the old key. Without the setting (development only; production refuses to start
with a Bling client configured and no keys) one key is derived from FIDELIA_SECRET_KEY.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from fidelia.kit.settings import Settings


def generate_key() -> str:
    return Fernet.generate_key().decode()


def _derived(secret_key: str) -> bytes:
    return base64.urlsafe_b64encode(
        hashlib.sha256(b"fidelia-at-rest:" + secret_key.encode()).digest()
    )


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._fernet = MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])

    @classmethod
    def from_settings(cls, settings: Settings) -> "SecretBox":
        keys = [k.strip() for k in settings.encryption_keys.split(",") if k.strip()]
        if not keys:
            keys = [_derived(settings.secret_key).decode()]
        return cls(keys)

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise ValueError(
                "a stored secret cannot be decrypted with the configured keys"
            ) from exc

    def rotate(self, sealed: str) -> str:
        """Re-encrypt with the first key (readable by any configured key)."""
        return self._fernet.rotate(sealed.encode()).decode()
