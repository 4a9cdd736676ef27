"""Names folded for searching: accents and case removed, spaces collapsed, so that
'  José  ÁLVAREZ' and 'jose alv' compare by prefix in any database (customers.name_key)."""

import unicodedata

MAX = 200


def fold(name: str | None) -> str | None:
    """'José Álvarez' -> 'jose alvarez'; None or blank -> None."""
    if not name:
        return None
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    folded = " ".join(plain.casefold().split())[:MAX]
    return folded or None


def prefix_bounds(prefix: str) -> tuple[str, str]:
    """[low, high) such that low <= key < high exactly when key starts with ``prefix``
    (binary order: SQLite's default, PostgreSQL's "C" collation)."""
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)
