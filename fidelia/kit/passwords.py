"""Passwords (the panel's users, REST v2 customers): argon2id digests, salted per password.
Passwords are never stored, logged or returned; only their digests are kept.

How dear a new digest is (``FIDELIA_PASSWORD_HASHING``, set for the process by ``configure``,
as the log format is): ``argon2id``, argon2-cffi's defaults (RFC 9106's low-memory profile,
~0.15 s a digest on the bench machine), or ``fast``, the cheapest argon2id there is, for
test suites that make hundreds of users (Django's docs advise the same); production refuses
it (``kit/settings.py``). A digest carries its own parameters: verifying one costs what it
cost to make, whatever the process is configured with now."""

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from fidelia.kit.errors import InvalidInput

MIN_LENGTH = 8
MAX_LENGTH = 128  # argon2 takes any length; a bound keeps hashing cheap to refuse

HASHERS = {
    "argon2id": PasswordHasher(),
    "fast": PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
}
_hasher = HASHERS["argon2id"]


def configure(profile: str) -> None:
    """New digests from now on in this process use ``profile`` (a key of ``HASHERS``)."""
    global _hasher
    _hasher = HASHERS[profile]


def hash_password(raw: str) -> str:
    if not MIN_LENGTH <= len(raw) <= MAX_LENGTH:
        raise InvalidInput(
            f"A password has {MIN_LENGTH} to {MAX_LENGTH} characters.", code="INVALID_PASSWORD"
        )
    return _hasher.hash(raw)


@cache
def _dummy(hasher: PasswordHasher) -> str:
    return hasher.hash("not-a-real-password")


def dummy_digest() -> str:
    """A digest made as new ones are now, to verify against when the account is unknown:
    a refusal then takes as long as for a known account."""
    return _dummy(_hasher)


def verify_password(digest: str | None, raw: str) -> bool:
    if not digest:
        return False
    try:
        return _hasher.verify(digest, raw)
    except (VerificationError, InvalidHashError):
        return False
