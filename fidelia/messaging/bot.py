"""The WhatsApp bot's conversation. A stored inbound message is processed by the worker
(messaging/intake.py): its ``done`` mark, the PIN, the credit and the reply (an outbox row)
commit together."""

import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fidelia.challenges import short_codes
from fidelia.customers.service import identify
from fidelia.customers.standing import CatalogCache, Standing, standing_in, standings
from fidelia.kit.settings import Settings
from fidelia.ledger.service import Account, Source, credit
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
        standing = standing_in(session, customer, entry.balance_after, self.catalogs)
        text = say(
            tenant.locale,
            "credited",
            name=contact.name,
            points=points,
            unit=unit(tenant.locale, points),
            merchant=standing.name,
            balance=self._points(tenant.locale, standing.points),
        )
        self._reply(session, contact, _join(text, self._next_line(tenant.locale, standing)))

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
