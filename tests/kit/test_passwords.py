"""Password digests: argon2id at argon2-cffi's defaults unless a test suite asks for the
cheap profile; a digest verifies by its own parameters whatever the process makes now."""

from argon2 import PasswordHasher, extract_parameters

from fidelia.app import create_app
from fidelia.kit import passwords
from fidelia.kit.settings import Settings

DEFAULTS = PasswordHasher()  # argon2-cffi's: RFC 9106's low-memory profile
FAST = passwords.HASHERS["fast"]


def test_new_digests_follow_the_settings_and_old_ones_still_verify(tmp_path):
    url = f"sqlite:///{tmp_path}/never.db"
    create_app(Settings(_env_file=None, database_url=url))  # type: ignore[call-arg]
    dear = passwords.hash_password("correct horse")
    assert not DEFAULTS.check_needs_rehash(dear)
    assert extract_parameters(dear).memory_cost == 65536

    create_app(Settings(_env_file=None, database_url=url, password_hashing="fast"))  # type: ignore[call-arg]
    cheap = passwords.hash_password("correct horse")
    assert not FAST.check_needs_rehash(cheap) and DEFAULTS.check_needs_rehash(cheap)
    assert not FAST.check_needs_rehash(passwords.dummy_digest())
    # Either digest verifies, whichever profile makes new ones now.
    assert passwords.verify_password(dear, "correct horse")
    assert passwords.verify_password(cheap, "correct horse")
    assert not passwords.verify_password(dear, "wrong horse")
    passwords.configure("argon2id")
    assert passwords.verify_password(cheap, "correct horse")
    assert not DEFAULTS.check_needs_rehash(passwords.dummy_digest())
    passwords.configure("fast")
