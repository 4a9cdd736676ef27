"""Customer passwords: argon2id digests (argon2-cffi's defaults, salted per password).
Passwords are never stored, logged or returned; only their digests are kept."""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from fidelia.kit.errors import InvalidInput

MIN_LENGTH = 8
MAX_LENGTH = 128  # argon2 takes any length; a bound keeps hashing cheap to refuse

_hasher = PasswordHasher()


def hash_password(raw: str) -> str:
    if not MIN_LENGTH <= len(raw) <= MAX_LENGTH:
        raise InvalidInput(
            f"A password has {MIN_LENGTH} to {MAX_LENGTH} characters.", code="INVALID_PASSWORD"
        )
    return _hasher.hash(raw)


def verify_password(digest: str | None, raw: str) -> bool:
    if not digest:
        return False
    try:
        return _hasher.verify(digest, raw)
    except (VerificationError, InvalidHashError):
        return False
