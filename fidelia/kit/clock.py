"""The one place that reads the time, so tests can freeze it."""

from datetime import UTC, datetime

_frozen: datetime | None = None


def now() -> datetime:
    return _frozen if _frozen is not None else datetime.now(UTC)


def freeze(at: datetime | None) -> None:
    """Freeze the clock at ``at`` (aware datetime), or unfreeze with None."""
    global _frozen
    _frozen = at
