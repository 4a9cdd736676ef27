"""PIN guessing at platform scale: how many tries an attacker gets, and how long PINs must be
for those tries to find (almost) nothing.

A guess succeeds with probability ``open PINs / 10**length``. So the defence has two parts:

1. **Bounded tries.** Failed activations are counted in the database (every process sees
   them): at most ``sender_limit`` per sender per ``sender_window`` (the sender's row is
   locked while it is checked, so concurrent messages from one number cannot overshoot), and
   at most ``namespace_limit`` per bot number (namespace) per ``namespace_window``. Past the
   namespace budget the namespace is *guarded*: only senders who activated a PIN before and
   have not failed in the last day may try (one guess a day each); first-time senders are
   asked to try again later. An attacker with any number of fresh WhatsApp numbers therefore
   gets at most ``namespace_limit`` guesses per window, plus one a day per number that once
   activated a real PIN (we plan for ``known_senders`` such numbers).
2. **Length from the open share.** PINs get longer as the namespace fills, so that the open
   share of the space stays below ``target_per_day / guesses_per_day``: the expected number of
   successful guesses per day stays at or under ``target_per_day`` (0.01) up to the capacity
   of the longest PIN.

Every failed activation gets the same reply (unknown, used or expired alike): the reply must
not tell a guesser which codes exist.
"""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from limits import parse as parse_limit
from sqlalchemy import ColumnElement, Table, bindparam, func, null, select, union_all
from sqlalchemy.orm import Session

from fidelia.kit import driver
from fidelia.kit.clock import now
from fidelia.kit.db import any_of
from fidelia.kit.settings import Settings
from fidelia.models import PinFailure, WhatsAppContact

MIN_LENGTH = 4
MAX_LENGTH = 10
DAY = timedelta(days=1)


@dataclass(frozen=True)
class GuessPolicy:
    sender_limit: int = 5
    sender_window: timedelta = timedelta(hours=1)
    namespace_limit: int = 60
    namespace_window: timedelta = timedelta(hours=1)
    known_senders: int = 100  # numbers that once activated a PIN, in the attacker's hands
    target_per_day: float = 0.01

    @classmethod
    def from_settings(cls, settings: Settings) -> "GuessPolicy":
        sender = parse_limit(settings.rate_limit_pin_failures)
        namespace = parse_limit(settings.pin_namespace_failures)
        return cls(
            sender_limit=sender.amount,
            sender_window=timedelta(seconds=sender.get_expiry()),
            namespace_limit=namespace.amount,
            namespace_window=timedelta(seconds=namespace.get_expiry()),
        )

    def guesses_per_day(self) -> float:
        """The most failed activations one namespace accepts in a day under attack."""
        return (DAY / self.namespace_window) * self.namespace_limit + self.known_senders

    def open_share(self) -> float:
        """The largest share of the PIN space that may be open."""
        return self.target_per_day / self.guesses_per_day()

    def length_for(self, open_pins: int) -> int:
        """The shortest length whose space keeps ``open_pins + 1`` under the open share."""
        share = self.open_share()
        length = MIN_LENGTH
        while length < MAX_LENGTH and open_pins + 1 > share * 10**length:
            length += 1
        return length

    def capacity(self) -> int:
        """Open PINs a namespace holds at the longest length within the target."""
        return int(self.open_share() * 10**MAX_LENGTH) - 1

    def expected_successes_per_day(self, open_pins: int) -> float:
        return self.guesses_per_day() * open_pins / 10 ** self.length_for(open_pins)


def _failures(session: Session, since: timedelta, **where: object) -> int:
    query = (
        select(func.count()).select_from(PinFailure).where(PinFailure.created_at > now() - since)
    )
    for column, value in where.items():
        query = query.where(getattr(PinFailure, column) == value)
    return int(session.scalar(query) or 0)


def refusal(
    session: Session, policy: GuessPolicy, contact: WhatsAppContact, namespace: str
) -> str | None:
    """Why this sender may not try a PIN in ``namespace`` now (``too_many`` or ``guarded``),
    or None. Locks the sender's row first, so the count is exact under concurrency: FOR NO
    KEY UPDATE, which the foreign-key locks of the sender's other messages (KEY SHARE, taken
    when their inbound row is stored) do not conflict with, so they queue without deadlock."""
    session.execute(
        select(WhatsAppContact.id)
        .where(WhatsAppContact.id == contact.id)
        .with_for_update(key_share=True)
    )
    mine = _failures(session, policy.sender_window, contact_id=contact.id)
    if mine >= policy.sender_limit:
        return "too_many"
    if _failures(session, policy.namespace_window, namespace=namespace) < policy.namespace_limit:
        return None
    known = contact.last_tenant_id is not None  # activated a PIN before
    if known and _failures(session, DAY, contact_id=contact.id) == 0:
        return None
    return "guarded"


_failed = cast(Table, PinFailure.__table__)


def _counts(contacts: ColumnElement[bool], namespaces: ColumnElement[bool]) -> Any:
    """Both counts ``refusal`` starts with, for many senders and namespaces, in one
    statement (``contacts`` and ``namespaces``: the dialect's list conditions)."""
    return union_all(
        select(_failed.c.contact_id, null().label("namespace"), func.count())
        .where(contacts, _failed.c.created_at > bindparam("sender_since"))
        .group_by(_failed.c.contact_id),
        select(null(), _failed.c.namespace, func.count())
        .where(namespaces, _failed.c.created_at > bindparam("namespace_since"))
        .group_by(_failed.c.namespace),
    )


# By dialect: PostgreSQL's lists are arrays (``kit/db.any_of``), one text for every batch.
_COUNTS = {
    "sqlite": _counts(
        _failed.c.contact_id.in_(bindparam("contacts", expanding=True)),
        _failed.c.namespace.in_(bindparam("namespaces", expanding=True)),
    ),
    "postgresql": _counts(
        any_of(_failed.c.contact_id, "contacts"), any_of(_failed.c.namespace, "namespaces")
    ),
}


def failure_counts(
    session: Session, policy: GuessPolicy, contacts: Collection[int], namespaces: Collection[str]
) -> tuple[dict[int, int], dict[str, int]]:
    """The failures ``refusal`` counts first, for many senders and namespaces at once: per
    sender in ``sender_window`` and per namespace in ``namespace_window``. The caller holds
    the senders' row locks (as ``refusal`` takes them) so the counts stay exact."""
    at = now()
    rows = driver.execute(
        session,
        _COUNTS[session.get_bind().dialect.name],
        {
            "contacts": list(contacts),
            "sender_since": at - policy.sender_window,
            "namespaces": list(namespaces),
            "namespace_since": at - policy.namespace_window,
        },
    ).all()
    mine = {int(contact): int(n) for contact, _, n in rows if contact is not None}
    theirs = {str(namespace): int(n) for contact, namespace, n in rows if contact is None}
    return mine, theirs


def record_failure(session: Session, contact: WhatsAppContact, namespace: str, code: str) -> None:
    session.add(
        PinFailure(contact_id=contact.id, namespace=namespace, attempted=code, created_at=now())
    )
