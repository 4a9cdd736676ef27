"""The WhatsApp bot's conversation. A stored inbound message is processed by the worker
(messaging/intake.py): its ``done`` mark, the PIN, the credit and the reply (an outbox row)
commit together."""

import re
from collections import Counter
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote_plus

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fidelia.challenges import short_codes
from fidelia.customers.service import find_many, identify
from fidelia.customers.standing import CatalogCache, Standing, standing_in, standings
from fidelia.kit import driver
from fidelia.kit.db import any_of
from fidelia.kit.settings import Settings
from fidelia.ledger.service import Account, Credit, Source, credit, credit_many, expiry_after
from fidelia.messaging import consent, outbox, templates
from fidelia.messaging.texts import BALANCE_WORDS, CODE_WORDS, GREETINGS, say, unit
from fidelia.models import (
    Customer,
    CustomerIdentifier,
    Tenant,
    WhatsAppContact,
)
from fidelia.pins import guard
from fidelia.pins import service as pins
from fidelia.pins.guard import GuessPolicy

_contacts = cast(Table, WhatsAppContact.__table__)
_tenants = cast(Table, Tenant.__table__)
# The batch's senders, locked as ``guard.refusal`` locks one, in one order for every worker.
# By dialect: PostgreSQL's lists are arrays (``kit/db.any_of``), one text for every batch.
_CONTACT_COLUMNS = (
    _contacts.c.id,
    _contacts.c.wa_number,
    _contacts.c.wa_user_id,
    _contacts.c.name,
    _contacts.c.last_tenant_id,
)
_LOCK_CONTACTS = {
    dialect: select(*_CONTACT_COLUMNS)
    .where(or_(numbers, users))
    .order_by(_contacts.c.id)
    .with_for_update(key_share=True)
    for dialect, numbers, users in (
        (
            "sqlite",
            _contacts.c.wa_number.in_(bindparam("numbers", expanding=True)),
            _contacts.c.wa_user_id.in_(bindparam("users", expanding=True)),
        ),
        (
            "postgresql",
            any_of(_contacts.c.wa_number, "numbers"),
            any_of(_contacts.c.wa_user_id, "users"),
        ),
    )
}
_MOVE_CONTACTS = (
    update(_contacts)
    .where(_contacts.c.id == bindparam("contact"))
    .values(last_tenant_id=bindparam("tenant"))
)
_TENANTS = {
    dialect: select(
        _tenants.c.id,
        _tenants.c.program_id,
        _tenants.c.name,
        _tenants.c.locale,
        _tenants.c.points_validity_days,
    ).where(ids)
    for dialect, ids in (
        ("sqlite", _tenants.c.id.in_(bindparam("ids", expanding=True))),
        ("postgresql", any_of(_tenants.c.id, "ids")),
    )
}


class _Undo(Exception):
    """Roll a savepoint back (``Bot._activate``)."""


PIN_AFTER_WORD = re.compile(r"pin\D{0,5}?(\d{4,10})(?!\d)", re.IGNORECASE)
BARE_PIN = re.compile(r"(?<!\d)(\d{4,10})(?!\d)")
NAME_MAX = 80


@dataclass(frozen=True)
class Inbound:
    message_id: str
    wa_number: str | None  # E.164 with '+'
    wa_user_id: str | None
    text: str
    bot_number: str  # the namespace the PIN lives in
    profile_name: str | None = None


def find_pin_code(text: str) -> str | None:
    """The PIN in the documented text, an edited one, a percent-encoded one, or bare digits."""
    decoded = unquote_plus(text)
    match = PIN_AFTER_WORD.search(decoded)
    if match:
        return match.group(1)
    found = BARE_PIN.findall(decoded)
    return found[-1] if found else None


def _join(*parts: str) -> str:
    return " ".join(part for part in parts if part)


def is_chatter(text: str) -> bool:
    """Greetings and keywords are not names: while waiting for a name, they get their
    usual answer and the bot keeps waiting."""
    words = unquote_plus(text).strip().lower().strip("¿?¡!. ")
    return words in BALANCE_WORDS or words in GREETINGS or words in CODE_WORDS


class Bot:
    def __init__(self, settings: Settings, catalogs: CatalogCache | None = None) -> None:
        self.settings = settings
        self.catalogs = catalogs
        self.policy = GuessPolicy.from_settings(settings)

    def process(self, session: Session, msg: Inbound) -> int:
        """Handle one stored message (messaging/intake.py decides it runs once); returns the
        sender's contact id. Credits, replies and state changes go into ``session``."""
        contact = self._contact(session, msg)
        if not contact.name and msg.profile_name:
            # WhatsApp sends the sender's profile name: the name the bot would ask for.
            self._adopt_name(session, contact, msg.profile_name)
        code = find_pin_code(msg.text)
        if (word := consent.stop_word(msg.text)) is not None:
            self._opt_out(session, contact, word)
        elif code is not None:
            self._pin(session, msg, contact, code)
        elif contact.state == "awaiting_name" and not is_chatter(msg.text):
            self._name(session, contact, msg.text)
        elif unquote_plus(msg.text).strip().lower().strip("¿?¡!. ") in BALANCE_WORDS:
            self._balances(session, contact)
        elif unquote_plus(msg.text).strip().lower().strip("¿?¡!. ") in CODE_WORDS:
            self._redeem_code(session, contact)
        else:
            self._reply(session, contact, say(self._locale(session, contact), "help"))
        return contact.id

    # -- a batch of plain PIN credits, set-based ------------------------------------------

    def credit_batch(self, session: Session, messages: Sequence[Inbound]) -> dict[str, int]:
        """Credit the plain PIN credits among ``messages`` (in sender order) with a few
        set-based statements; returns the sender's contact id of each message handled, by
        message id. Every other message is left to ``process``, one at a time in the same
        order, and gets the answer it would get if the whole batch went that way, because
        nothing handled here depends on it:

        - a contact's messages are handled only if all of them in the batch are PINs (no
          stop word) sent from the contact's own number and user id (nothing to link), and
          the contact has a name: the messages, their replies and their order are the ones
          ``process`` gives;
        - a PIN that appears twice in the batch is left to ``process``, in order;
        - the guessing limits must let every one of them try whatever the rest of the
          batch does: the sender under their limit, and the namespace's failures plus every
          PIN the batch sends to it within the namespace's budget;
        - all of a contact's PINs activate, or none of their messages is handled here.

        (Two contacts only meet in one customer if another door linked both of their
        identifiers to it; then their two credits in one batch may be booked in the other
        order, each still exact.) The senders' contacts are locked first, in id order (the
        lock ``guard.refusal`` takes). Raises what a statement raises: the caller rolls
        this step back and takes the batch one message at a time."""
        pins_of: dict[int, tuple[str, str]] = {}  # message index -> (namespace, code)
        for k, msg in enumerate(messages):
            if consent.stop_word(msg.text) is None:
                code = find_pin_code(msg.text)
                if code is not None:
                    pins_of[k] = (msg.bot_number, code)
        uses = Counter(pins_of.values())
        if not any(uses[pin] == 1 for pin in pins_of.values()):
            return {}
        dialect = session.get_bind().dialect.name
        contacts = driver.execute(
            session,
            _LOCK_CONTACTS[dialect],
            {
                "numbers": sorted({m.wa_number for m in messages if m.wa_number}),
                "users": sorted({m.wa_user_id for m in messages if m.wa_user_id}),
            },
        ).all()
        by_number = {c.wa_number: c for c in contacts if c.wa_number}
        by_user = {c.wa_user_id: c for c in contacts if c.wa_user_id}
        groups: dict[int, list[int]] = {}  # contact id -> its messages (indexes), in order
        refused: set[int] = set()
        for k, msg in enumerate(messages):
            found = {
                c.id: c
                for c in (by_number.get(msg.wa_number), by_user.get(msg.wa_user_id))
                if c is not None
            }
            pin = pins_of.get(k)
            plain = (
                len(found) == 1
                and pin is not None
                and uses[pin] == 1
                and all(
                    c.name
                    and (not msg.wa_number or c.wa_number == msg.wa_number)
                    and (not msg.wa_user_id or c.wa_user_id == msg.wa_user_id)
                    for c in found.values()
                )
            )
            for contact_id in found:
                groups.setdefault(contact_id, []).append(k)
                if not plain:
                    refused.add(contact_id)
        by_id = {c.id: c for c in contacts}
        groups = {c: ks for c, ks in groups.items() if c not in refused}
        if not groups:
            return {}
        per_namespace = Counter(namespace for namespace, _ in pins_of.values())
        mine, theirs = guard.failure_counts(
            session,
            self.policy,
            groups,
            {messages[k].bot_number for ks in groups.values() for k in ks},
        )
        groups = {
            c: ks
            for c, ks in groups.items()
            if mine.get(c, 0) < self.policy.sender_limit
            and all(
                theirs.get(ns, 0) + per_namespace[ns] <= self.policy.namespace_limit
                for ns in {messages[k].bot_number for k in ks}
            )
        }
        activated = self._activate(session, groups, pins_of)
        if not activated:
            return {}
        return self._credit(session, messages, pins_of, groups, by_id, activated)

    def _activate(
        self,
        session: Session,
        groups: dict[int, list[int]],
        pins_of: dict[int, tuple[str, str]],
    ) -> dict[tuple[str, str], Any]:
        """Activate the groups' PINs; drops from ``groups`` the contacts whose PINs did
        not all activate. A contact with several messages cannot keep some: then the
        activation is undone (a savepoint) and tried again without them."""
        while groups:
            several = any(len(ks) > 1 for ks in groups.values())
            try:
                with session.begin_nested() if several else nullcontext():
                    wanted = [pins_of[k] for ks in groups.values() for k in ks]
                    activated = pins.activate_many(session, wanted)
                    missed = [
                        c
                        for c, ks in groups.items()
                        if any(pins_of[k] not in activated for k in ks)
                    ]
                    for c in missed:
                        del groups[c]
                    if several and missed:
                        raise _Undo  # some of theirs may have activated
                return activated
            except _Undo:
                continue
        return {}

    def _credit(
        self,
        session: Session,
        messages: Sequence[Inbound],
        pins_of: dict[int, tuple[str, str]],
        groups: dict[int, list[int]],
        contacts: dict[int, Any],
        activated: dict[tuple[str, str], Any],
    ) -> dict[str, int]:
        """What ``_pin`` does after a PIN activated, for every message of ``groups``."""
        order = sorted((k, c) for c, ks in groups.items() for k in ks)
        used = {k: activated[pins_of[k]] for k, _ in order}
        tenants = {
            t.id: t
            for t in driver.execute(
                session,
                _TENANTS[session.get_bind().dialect.name],
                {"ids": sorted({p.tenant_id for p in used.values()})},
            )
        }
        identifiers = {
            pair
            for c in groups
            for pair in (("whatsapp", contacts[c].wa_number), ("wa_user", contacts[c].wa_user_id))
            if pair[1]
        }
        known = find_many(session, {t.program_id for t in tenants.values()}, identifiers)
        credits, owners = [], []
        for k, c in order:
            pin, tenant, contact = used[k], tenants[used[k].tenant_id], contacts[c]
            present = [
                ("whatsapp", contact.wa_number),
                ("wa_user", contact.wa_user_id),
            ]
            found = [
                known.get((tenant.program_id, kind, value)) for kind, value in present if value
            ]
            first = found[0]
            if first is not None and first.name and all(f == first for f in found):
                customer_id = first.id
            else:  # someone new here, a nameless customer, an identifier to link: as ``_pin``
                customer_id = identify(
                    session,
                    session.get_one(Tenant, tenant.id),
                    {"whatsapp": contact.wa_number or "", "wa_user": contact.wa_user_id or ""},
                    name=contact.name,
                ).id
            owners.append((pin.id, customer_id))
            credits.append(
                Credit(
                    Account(tenant.program_id, customer_id),
                    pin.points,
                    Source(tenant.id, "pin", str(pin.id)),
                    expiry_after(tenant.points_validity_days),
                )
            )
        pins.assign_customers(session, owners)
        balances = credit_many(session, credits)
        if self.catalogs is not None:  # the replies' catalogs, in three reads for the batch
            self.catalogs.prefetch(session, {t.program_id for t in tenants.values()})
        texts, moves = [], []
        last = {c: contacts[c].last_tenant_id for c in groups}
        for (_, c), each, balance in zip(order, credits, balances, strict=True):
            tenant, contact = tenants[each.source.tenant_id], contacts[c]
            if last[c] != tenant.id:
                last[c] = tenant.id
                moves.append({"contact": c, "tenant": tenant.id})
            customer = Customer(id=each.acct.customer_id, program_id=each.acct.program_id)
            text = self._credited(
                session, tenant.locale, contact.name, customer, each.amount, balance
            )
            texts.append(outbox.Text(text, contact.wa_number, contact.wa_user_id, tenant.id))
        if moves:
            session.execute(_MOVE_CONTACTS, moves)
        outbox.whatsapp_texts(session, texts)
        return {messages[k].message_id: c for k, c in order}

    # -- steps -----------------------------------------------------------------------------

    def _pin(self, session: Session, msg: Inbound, contact: WhatsAppContact, code: str) -> None:
        refused = guard.refusal(session, self.policy, contact, msg.bot_number)
        if refused is not None:
            self._reply(session, contact, say(self._locale(session, contact), refused))
            return
        activation = pins.activate(session, msg.bot_number, code)
        if activation.outcome != "credited" or activation.pin is None:
            guard.record_failure(session, contact, msg.bot_number, code)
            locale = self._locale(session, contact)
            # One reply for unknown, used and expired alike: it must not tell a guesser
            # which codes exist.
            text = say(locale, "failed_pin", pin=code)
            if contact.state == "awaiting_name":  # the question still stands
                text = _join(text, say(locale, "still_ask_name"))
            self._reply(session, contact, text)
            return
        pin = activation.pin
        tenant = session.get_one(Tenant, pin.tenant_id)
        customer = identify(
            session,
            tenant,
            {"whatsapp": contact.wa_number or "", "wa_user": contact.wa_user_id or ""},
            name=contact.name,
        )
        pin.customer_id = customer.id
        entry = credit(
            session,
            Account(customer.program_id, customer.id),
            pin.points,
            Source(tenant.id, "pin", str(pin.id)),
        )
        contact.last_tenant_id = tenant.id
        points = pin.points
        if not contact.name:
            contact.state = "awaiting_name"
            text = say(
                tenant.locale,
                "ask_name",
                points=points,
                unit=unit(tenant.locale, points),
                merchant=tenant.name,
            )
            self._reply(session, contact, text)
            return
        text = self._credited(
            session, tenant.locale, contact.name, customer, points, entry.balance_after
        )
        self._reply(session, contact, text)

    def _credited(
        self,
        session: Session,
        locale: str,
        name: str,
        customer: Customer,
        points: int,
        balance: int,
    ) -> str:
        """The reply to a named sender's credit of ``points`` leaving ``balance``."""
        standing = standing_in(session, customer, balance, self.catalogs)
        text = say(
            locale,
            "credited",
            name=name,
            points=points,
            unit=unit(locale, points),
            merchant=standing.name,
            balance=self._points(locale, standing.points),
        )
        return _join(text, self._next_line(locale, standing))

    def _adopt_name(self, session: Session, contact: WhatsAppContact, text: str) -> str | None:
        """Take ``text`` as the contact's name (and their nameless customers'); None when it
        is no name (no letters)."""
        name = " ".join(unquote_plus(text).split())[:NAME_MAX].strip(" .,!¡?¿")
        if not name or not any(ch.isalpha() for ch in name):
            return None
        contact.name = name
        contact.state = "ready"
        for each in self._customers(session, contact):
            if not each.name:
                each.name = name
        return name

    def _name(self, session: Session, contact: WhatsAppContact, text: str) -> None:
        locale = self._locale(session, contact)
        name = self._adopt_name(session, contact, text)
        if name is None:
            self._reply(session, contact, say(locale, "ask_name_again"))
            return
        mine = self._customers(session, contact)
        tenant = session.get(Tenant, contact.last_tenant_id) if contact.last_tenant_id else None
        current = next((c for c in mine if tenant and c.program_id == tenant.program_id), None)
        if current is None:
            self._reply(session, contact, say(locale, "help"))
            return
        standing = standing_in(session, current, catalogs=self.catalogs)
        text = say(
            locale,
            "welcome",
            name=name,
            merchant=standing.name,
            balance=self._points(locale, standing.points),
        )
        self._reply(session, contact, _join(text, self._next_line(locale, standing)))

    def _redeem_code(self, session: Session, contact: WhatsAppContact) -> None:
        """A short code for redeeming at the merchant of the last visit: the proof of
        presence a merchant that validates customers asks for (challenges/presence.py)."""
        locale = self._locale(session, contact)
        tenant = session.get(Tenant, contact.last_tenant_id) if contact.last_tenant_id else None
        mine = self._customers(session, contact)
        customer = next((c for c in mine if tenant and c.program_id == tenant.program_id), None)
        if tenant is None or customer is None:
            self._reply(session, contact, say(locale, "no_merchant_yet"))
            return
        issued = short_codes.issue(session, tenant, customer, self.settings.secret_key)
        text = say(locale, "redeem_code", merchant=tenant.name, code=issued.code)
        message = outbox.whatsapp_text(
            session,
            text=text,
            wa_number=contact.wa_number,
            wa_user_id=contact.wa_user_id,
            tenant_id=tenant.id,
        )
        message.payload = {**message.payload, "secret": True}  # redacted once delivered

    def _opt_out(self, session: Session, contact: WhatsAppContact, word: str) -> None:
        """STOP / SAIR / PARAR / BAJA: WhatsApp consent withdrawn for every customer this
        contact is (recorded in their consent history), confirmed in their language."""
        consent.opt_out(session, contact.wa_number, contact.wa_user_id)
        locale = consent.STOP_WORDS[word]
        if contact.last_tenant_id is not None:
            locale = self._locale(session, contact)
        self._reply(session, contact, templates.say(locale, "opted_out"))

    def _balances(self, session: Session, contact: WhatsAppContact) -> None:
        locale = self._locale(session, contact)
        found: list[Standing] = []
        seen: set[int] = set()
        for kind, value in (("whatsapp", contact.wa_number), ("wa_user", contact.wa_user_id)):
            if value:
                for standing in standings(session, kind, value, self.catalogs):
                    if standing.customer.id not in seen:
                        seen.add(standing.customer.id)
                        found.append(standing)
        if not found:
            self._reply(session, contact, say(locale, "no_points"))
            return
        lines = "\n".join(
            f"• {s.name}: {self._points(locale, s.points)}. {self._next_line(locale, s)}".rstrip()
            for s in found
        )
        self._reply(session, contact, say(locale, "balances", lines=lines))

    # -- helpers ---------------------------------------------------------------------------

    def _contact(self, session: Session, msg: Inbound) -> WhatsAppContact:
        """Find the sender by number or user id, link the two, create on first contact."""
        conditions = []
        if msg.wa_number:
            conditions.append(WhatsAppContact.wa_number == msg.wa_number)
        if msg.wa_user_id:
            conditions.append(WhatsAppContact.wa_user_id == msg.wa_user_id)
        for _ in range(2):
            found = list(
                session.scalars(
                    select(WhatsAppContact).where(or_(*conditions)).order_by(WhatsAppContact.id)
                )
            )
            if len(found) > 1:
                # The number and the user id already belong to two contacts (one wrote
                # before user ids existed, one without a number): linking would break the
                # unique keys and fail this message on every redelivery. Use the number's.
                return next(c for c in found if c.wa_number == msg.wa_number)
            contact = found[0] if found else None
            if contact is not None:
                if msg.wa_number and not contact.wa_number:
                    contact.wa_number = msg.wa_number
                if msg.wa_user_id and not contact.wa_user_id:
                    contact.wa_user_id = msg.wa_user_id
                return contact
            try:
                with session.begin_nested():
                    contact = WhatsAppContact(wa_number=msg.wa_number, wa_user_id=msg.wa_user_id)
                    session.add(contact)
                    session.flush()
                return contact
            except IntegrityError:
                continue  # created concurrently by another message: read it
        raise RuntimeError("could not create the WhatsApp contact")

    def _customers(self, session: Session, contact: WhatsAppContact) -> list[Customer]:
        pairs = [("whatsapp", contact.wa_number), ("wa_user", contact.wa_user_id)]
        conditions = [
            (CustomerIdentifier.kind == kind) & (CustomerIdentifier.value == value)
            for kind, value in pairs
            if value
        ]
        return list(
            session.scalars(
                select(Customer)
                .join(CustomerIdentifier, CustomerIdentifier.customer_id == Customer.id)
                .where(or_(*conditions))
                .distinct()
            )
        )

    def _locale(self, session: Session, contact: WhatsAppContact) -> str:
        if contact.last_tenant_id is not None:
            tenant = session.get(Tenant, contact.last_tenant_id)
            if tenant is not None:
                return tenant.locale
        return "es"

    def _points(self, locale: str, points: int) -> str:
        return f"{points} {unit(locale, points)}"

    def _next_line(self, locale: str, standing: Standing) -> str:
        if standing.next is None:
            return ""
        reward, missing = standing.next
        if missing == 0:
            return say(locale, "can_redeem", reward=reward.title)
        return say(locale, "missing", missing=self._points(locale, missing), reward=reward.title)

    def _reply(self, session: Session, contact: WhatsAppContact, text: str) -> None:
        outbox.whatsapp_text(
            session,
            text=text,
            wa_number=contact.wa_number,
            wa_user_id=contact.wa_user_id,
            tenant_id=contact.last_tenant_id,
        )
