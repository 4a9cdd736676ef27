"""The bot's conversation, end to end: a signed webhook in, the outbox worker delivering
to the fake Graph API, the replies read back from it."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from fidelia.kit.clock import freeze
from fidelia.models import Balance, Customer, CustomerIdentifier, LedgerEntry, Pin
from tests.support.helpers import (
    generate_pin,
    ledger_invariants,
    make_group,
    make_reward,
    make_tenant,
    send_whatsapp,
)

ANA = "+50688887777"


def failed(pin):
    """The one reply for every PIN that does not credit: unknown, used and expired alike."""
    return (
        f"No pudimos activar el PIN {pin}. Revisá el número en tu factura: "
        "cada PIN se usa una sola vez y vence."
    )


BETO = "+50688886666"


@pytest.fixture
def chat(client, settings, graph, worker):
    """Send one text as ``number``, deliver the outbox, return the bot's one reply."""

    def send(number, text):
        before = len(graph.texts_to(number))
        send_whatsapp(client, settings, number, text)
        worker.drain()
        replies = graph.texts_to(number)
        assert len(replies) == before + 1, replies
        return replies[-1]

    return send


@pytest.fixture
def clock():
    yield freeze
    freeze(None)


def ledger(db):
    """(tenant_id, customer_id, amount, balance_after) of every entry, oldest first."""
    with db.session(readonly=True) as session:
        rows = session.execute(
            select(
                LedgerEntry.tenant_id,
                LedgerEntry.customer_id,
                LedgerEntry.amount,
                LedgerEntry.balance_after,
            ).order_by(LedgerEntry.id)
        ).all()
    return [tuple(row) for row in rows]


def balances(db):
    with db.session(readonly=True) as session:
        rows = session.execute(select(Balance.program_id, Balance.amount)).all()
    return [tuple(row) for row in rows]


def pin_status(db, code):
    with db.session(readonly=True) as session:
        return session.scalar(select(Pin.status).where(Pin.code == code))


def customer_names(db):
    with db.session(readonly=True) as session:
        return list(session.scalars(select(Customer.name).order_by(Customer.id)))


def other_codes(pin, n):
    """``n`` codes of the same length that are not ``pin``."""
    return [f"{(int(pin) + i) % 10 ** len(pin):0{len(pin)}d}" for i in range(1, n + 1)]


# -- finding the PIN ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "Quiero activar mi PIN: {pin}",  # the documented QR text
        "Quiero+activar+mi+PIN:+{pin}",  # the wa.me text, not decoded by the client
        "mi pin es {pin} gracias",  # edited before sending
        "Quiero%20activar%20mi%20PIN%3A%20{pin}",  # percent-encoded
        "{pin}",  # bare digits
        "  {pin}. ",
    ],
)
def test_every_form_of_the_pin_text_credits(client, db, chat, template):
    tenant, key = make_tenant(db)
    pin = generate_pin(client, key)
    reply = chat(ANA, template.format(pin=pin))
    assert reply == "¡Sumaste 1 punto en Café Uno! 🎉 Es tu primera vez: ¿cómo te llamás?"
    assert pin_status(db, pin) == "used"
    ((tenant_id, _, amount, after),) = ledger(db)
    assert (tenant_id, amount, after) == (tenant.id, 1, 1)


# -- the first visit and the ones after ----------------------------------------------------


def test_first_time_customer_is_asked_their_name_then_confirmed(client, db, chat):
    tenant, key = make_tenant(db)
    make_reward(db, tenant, points=10, title="Café gratis")

    ask = chat(ANA, f"Quiero activar mi PIN: {generate_pin(client, key)}")
    assert ask == "¡Sumaste 1 punto en Café Uno! 🎉 Es tu primera vez: ¿cómo te llamás?"

    welcome = chat(ANA, "  Ana   María ")
    assert welcome == (
        "¡Listo, Ana María! Tu saldo en Café Uno: 1 punto. Te faltan 9 puntos para «Café gratis»."
    )
    assert customer_names(db) == ["Ana María"]
    assert len(ledger(db)) == 1  # the name credits nothing

    again = chat(ANA, f"Quiero activar mi PIN: {generate_pin(client, key)}")
    assert again == (
        "¡Gracias, Ana María! Sumaste 1 punto en Café Uno. Tu saldo: 2 puntos. "
        "Te faltan 8 puntos para «Café gratis»."
    )
    assert [row[2:] for row in ledger(db)] == [(1, 1), (1, 2)]
    assert ledger_invariants(db) == []


def test_a_named_customer_is_confirmed_at_once_at_a_new_merchant(client, db, chat):
    _, cafe_key = make_tenant(db)
    pan, pan_key = make_tenant(db, slug="pan", name="Panadería", points_per_pin="10")
    make_reward(db, pan, points=10, title="Pan dulce")
    chat(ANA, generate_pin(client, cafe_key))
    chat(ANA, "Ana")

    reply = chat(ANA, f"Quiero activar mi PIN: {generate_pin(client, pan_key)}")
    assert reply == (
        "¡Gracias, Ana! Sumaste 10 puntos en Panadería. Tu saldo: 10 puntos. "
        "¡Ya podés canjear «Pan dulce»! Pedilo en caja."
    )
    assert customer_names(db) == ["Ana", "Ana"]


def test_a_name_without_letters_is_asked_again(client, db, chat):
    _, key = make_tenant(db)
    chat(ANA, generate_pin(client, key))
    assert chat(ANA, "...") == "No entendí tu nombre. ¿Cómo te llamás?"
    assert customer_names(db) == [None]
    assert chat(ANA, "Ana").startswith("¡Listo, Ana!")


# -- PINs that do not credit -----------------------------------------------------------------


def test_unknown_pin(client, db, chat):
    _, key = make_tenant(db)
    pin = generate_pin(client, key)
    (wrong,) = other_codes(pin, 1)
    reply = chat(ANA, f"Quiero activar mi PIN: {wrong}")
    assert reply == failed(wrong)
    assert ledger(db) == []
    assert pin_status(db, pin) == "open"


def test_used_pin(client, db, chat):
    _, key = make_tenant(db)
    pin = generate_pin(client, key)
    chat(ANA, f"Quiero activar mi PIN: {pin}")
    reply = chat(BETO, f"Quiero activar mi PIN: {pin}")
    assert reply == failed(pin)
    assert len(ledger(db)) == 1
    assert len(customer_names(db)) == 1  # Beto got no customer record anywhere
    # The owner sending it again is refused too (and still asked her name).
    assert chat(ANA, pin) == failed(pin) + " Y contanos: ¿cómo te llamás?"
    assert len(ledger(db)) == 1


def test_expired_pin(client, db, chat, clock):
    _, key = make_tenant(db, pin_lifetime_minutes="30")
    pin = generate_pin(client, key)
    clock(datetime.now(UTC) + timedelta(minutes=31))
    reply = chat(ANA, f"Quiero activar mi PIN: {pin}")
    assert reply == failed(pin)
    assert ledger(db) == []
    assert pin_status(db, pin) != "used"


def test_after_five_failures_in_an_hour_even_a_valid_pin_is_refused(client, db, chat, clock):
    _, key = make_tenant(db, pin_lifetime_minutes="180")
    pin = generate_pin(client, key)
    for wrong in other_codes(pin, 5):
        assert chat(ANA, f"Quiero activar mi PIN: {wrong}") == failed(wrong)

    reply = chat(ANA, f"Quiero activar mi PIN: {pin}")
    assert reply == "Demasiados intentos fallidos. Probá de nuevo en una hora."
    assert ledger(db) == []
    assert pin_status(db, pin) == "open"

    # The limit is per sender: someone else can still use the PIN they were given...
    other = generate_pin(client, key)
    assert chat(BETO, other).startswith("¡Sumaste 1 punto")
    # ...and once the hour has passed, the first sender can again.
    clock(datetime.now(UTC) + timedelta(minutes=61))
    assert chat(ANA, f"Quiero activar mi PIN: {pin}").startswith("¡Sumaste 1 punto")
    assert pin_status(db, pin) == "used"
    assert len(ledger(db)) == 2


def test_four_failures_do_not_block(client, db, chat):
    _, key = make_tenant(db)
    pin = generate_pin(client, key)
    for wrong in other_codes(pin, 4):
        chat(ANA, wrong)
    assert chat(ANA, pin).startswith("¡Sumaste 1 punto")
    assert len(ledger(db)) == 1


# -- balances and help -------------------------------------------------------------------------


def test_puntos_and_saldo_list_balances_across_merchants(client, db, chat):
    cafe, cafe_key = make_tenant(db)
    _, pan_key = make_tenant(db, slug="pan", name="Panadería")
    make_reward(db, cafe, points=10, title="Café gratis")
    chat(ANA, generate_pin(client, cafe_key))
    chat(ANA, "Ana")
    chat(ANA, generate_pin(client, cafe_key))
    chat(ANA, generate_pin(client, pan_key))

    expected = (
        "Tus puntos:\n"
        "• Café Uno: 2 puntos. Te faltan 8 puntos para «Café gratis».\n"
        "• Panadería: 1 punto."
    )
    assert chat(ANA, "puntos") == expected
    assert chat(ANA, "Saldo") == expected
    assert chat(ANA, "¿puntos?") == expected
    assert len(ledger(db)) == 3  # asking credits nothing


def test_balances_of_someone_without_points(db, chat):
    make_tenant(db)
    assert chat(BETO, "puntos") == (
        "Todavía no tenés puntos. Enviá el PIN de tu factura para sumar."
    )


def test_any_other_text_gets_help(client, db, chat):
    _, key = make_tenant(db)
    help_text = (
        "Hola 👋 Enviá el PIN de tu factura para sumar puntos, "
        "o escribí «puntos» para ver tu saldo."
    )
    assert chat(BETO, "hola") == help_text
    chat(ANA, generate_pin(client, key))
    chat(ANA, "Ana")
    assert chat(ANA, "¿a qué hora abren?") == help_text
    assert len(ledger(db)) == 1


# -- the merchant's language -------------------------------------------------------------------


@pytest.mark.parametrize(
    "locale, ask, welcome, help_start, balances",
    [
        (
            "pt",
            "Você ganhou 1 ponto em Café Uno! 🎉 É sua primeira vez: qual é o seu nome?",
            "Pronto, Ana! Seu saldo em Café Uno: 1 ponto. Faltam 4 pontos para «Café grátis».",
            "Olá 👋",
            "Seus pontos:\n• Café Uno: 1 ponto. Faltam 4 pontos para «Café grátis».",
        ),
        (
            "en",
            "You earned 1 point at Café Uno! 🎉 It's your first time: what's your name?",
            "All set, Ana! Your balance at Café Uno: 1 point. 4 points more for “Café grátis”.",
            "Hi 👋",
            "Your points:\n• Café Uno: 1 point. 4 points more for “Café grátis”.",
        ),
    ],
)
def test_the_bot_speaks_the_merchants_language(
    client, db, chat, locale, ask, welcome, help_start, balances
):
    tenant, key = make_tenant(db, locale=locale)
    make_reward(db, tenant, points=5, title="Café grátis")
    pin = generate_pin(client, key)
    assert chat(ANA, f"Quiero activar mi PIN: {pin}") == ask
    assert chat(ANA, "Ana") == welcome
    assert chat(ANA, "what?").startswith(help_start)
    assert chat(ANA, "pontos" if locale == "pt" else "points") == balances
    used = {
        "pt": f"Não conseguimos ativar o PIN {pin}. Confira o número na sua nota: "
        "cada PIN vale uma vez só e expira.",
        "en": f"We couldn't activate PIN {pin}. Check the number on your receipt: "
        "each PIN works once and expires.",
    }
    assert chat(ANA, pin) == used[locale]


def test_a_regional_locale_uses_its_language(client, db, chat):
    _, key = make_tenant(db, locale="pt_BR")
    assert chat(ANA, generate_pin(client, key)).endswith("qual é o seu nome?")


# -- bot numbers -------------------------------------------------------------------------------


def test_a_pin_lives_in_the_namespace_of_the_number_it_was_made_for(
    client, db, settings, graph, worker
):
    """A merchant with its own bot number: its PINs credit when sent to that number (however
    Meta formats it), and are unknown on the platform's shared number."""
    _, key = make_tenant(db, bot_number="+506 1111-1111")
    pin = generate_pin(client, key)

    send_whatsapp(client, settings, ANA, pin)  # to the shared number
    own = settings.model_copy(update={"bot_number": "+506 1111 1111"})
    send_whatsapp(client, own, ANA, pin)
    worker.drain()

    unknown, credited = graph.texts_to(ANA)
    assert unknown == failed(pin)
    assert credited.startswith("¡Sumaste 1 punto en Café Uno!")
    assert pin_status(db, pin) == "used"


# -- business-scoped user ids -------------------------------------------------------------------


def test_a_user_id_alone_credits_and_is_answered_by_recipient(client, db, settings, graph, worker):
    _, key = make_tenant(db)
    pin = generate_pin(client, key)
    send_whatsapp(
        client, settings, None, f"Quiero activar mi PIN: {pin}", user_id="US.13491208655302741918"
    )
    worker.drain()

    ((_, customer_id, amount, _),) = ledger(db)
    assert amount == 1
    with db.session(readonly=True) as session:
        identifiers = session.execute(
            select(CustomerIdentifier.kind, CustomerIdentifier.value).where(
                CustomerIdentifier.customer_id == customer_id
            )
        ).all()
    assert [tuple(i) for i in identifiers] == [("wa_user", "US.13491208655302741918")]

    (sent,) = graph.sent
    assert sent["recipient"] == "US.13491208655302741918"
    assert "to" not in sent
    assert sent["messaging_product"] == "whatsapp" and sent["type"] == "text"
    assert sent["text"]["body"].endswith("¿cómo te llamás?")


def test_a_user_id_is_linked_to_the_number_when_both_arrive(client, db, settings, graph, worker):
    _, key = make_tenant(db)
    user_id = "US.123"
    send_whatsapp(client, settings, None, generate_pin(client, key), user_id=user_id)
    send_whatsapp(client, settings, None, "Ana", user_id=user_id)
    # Later Meta sends both identities: the same contact and customer, now with the number.
    send_whatsapp(client, settings, ANA, generate_pin(client, key), user_id=user_id)
    worker.drain()

    assert len({row[1] for row in ledger(db)}) == 1  # one customer
    assert [row[3] for row in ledger(db)] == [1, 2]
    with db.session(readonly=True) as session:
        identifiers = session.execute(
            select(CustomerIdentifier.kind, CustomerIdentifier.value).order_by(
                CustomerIdentifier.kind
            )
        ).all()
    assert [tuple(i) for i in identifiers] == [("wa_user", user_id), ("whatsapp", ANA)]
    # The reply goes to the number now that there is one (without a reward to mention,
    # the confirmation ends in a space: harmless, ignored here).
    assert [text.rstrip() for text in graph.texts_to(ANA)] == [
        "¡Gracias, Ana! Sumaste 1 punto en Café Uno. Tu saldo: 2 puntos."
    ]


def test_a_number_and_a_user_id_known_as_two_contacts_still_work(
    client, db, settings, graph, worker
):
    # Before user ids, Ana wrote from her number; then a message came with her user id
    # only. Now Meta sends both: the message must be processed, not fail on every retry.
    _, key = make_tenant(db)
    send_whatsapp(client, settings, ANA, generate_pin(client, key))
    send_whatsapp(client, settings, ANA, "Ana")
    send_whatsapp(client, settings, None, "hola", user_id="US.777")

    response = send_whatsapp(client, settings, ANA, generate_pin(client, key), user_id="US.777")
    assert response.json() == {"received": 1, "processed": 1}
    worker.drain()

    assert [row[3] for row in ledger(db)] == [1, 2]
    assert len({row[1] for row in ledger(db)}) == 1
    assert graph.texts_to(ANA)[-1].startswith("¡Gracias, Ana! Sumaste 1 punto en Café Uno.")


# -- merchant groups ----------------------------------------------------------------------------


def test_merchants_in_a_group_share_one_balance(client, db, chat):
    cafe, cafe_key = make_tenant(db)
    pan, pan_key = make_tenant(db, slug="pan", name="Panadería")
    group_id = make_group(db, "ruta", "Ruta del Pan", "cafe", "pan")
    make_reward(db, pan, points=5, title="Pan dulce")

    chat(ANA, f"Quiero activar mi PIN: {generate_pin(client, cafe_key)}")
    assert chat(ANA, "Ana") == (
        "¡Listo, Ana! Tu saldo en Ruta del Pan: 1 punto. Te faltan 4 puntos para «Pan dulce»."
    )
    assert chat(ANA, f"Quiero activar mi PIN: {generate_pin(client, pan_key)}") == (
        "¡Gracias, Ana! Sumaste 1 punto en Ruta del Pan. Tu saldo: 2 puntos. "
        "Te faltan 3 puntos para «Pan dulce»."
    )
    chat(ANA, generate_pin(client, cafe_key))

    assert balances(db) == [(group_id, 3)]
    entries = ledger(db)
    assert [row[0] for row in entries] == [cafe.id, pan.id, cafe.id]
    assert len({row[1] for row in entries}) == 1  # one customer for the whole group
    assert [row[3] for row in entries] == [1, 2, 3]
    assert chat(ANA, "puntos") == (
        "Tus puntos:\n• Ruta del Pan: 3 puntos. Te faltan 2 puntos para «Pan dulce»."
    )
    assert ledger_invariants(db) == []


def test_greetings_and_keywords_are_not_taken_as_the_name(db, client, chat):
    tenant, key = make_tenant(db)
    chat(ANA, generate_pin(client, key))
    assert "Hola" in chat(ANA, "hola")  # the help, and the bot keeps waiting
    chat(ANA, "puntos")
    assert chat(ANA, "Ana María").startswith("¡Listo, Ana María!")
    assert customer_names(db) == ["Ana María"]


# -- the name: from the WhatsApp profile, or asked until given ------------------------------


def test_the_profile_name_is_the_name_and_nothing_is_asked(client, db, settings, graph, worker):
    tenant, key = make_tenant(db)
    make_reward(db, tenant, points=10, title="Café gratis")
    send_whatsapp(
        client,
        settings,
        ANA,
        f"Quiero activar mi PIN: {generate_pin(client, key)}",
        profile_name="Ana Souza",
    )
    worker.drain()
    assert graph.texts_to(ANA)[-1] == (
        "¡Gracias, Ana Souza! Sumaste 1 punto en Café Uno. Tu saldo: 1 punto. "
        "Te faltan 9 puntos para «Café gratis»."
    )
    assert customer_names(db) == ["Ana Souza"]


def test_a_profile_name_without_letters_is_no_name(client, db, settings, graph, worker):
    tenant, key = make_tenant(db)
    send_whatsapp(client, settings, ANA, generate_pin(client, key), profile_name="🙂 ...")
    worker.drain()
    assert graph.texts_to(ANA)[-1].endswith("Es tu primera vez: ¿cómo te llamás?")
    assert customer_names(db) == [None]


def test_a_pin_sent_instead_of_the_name_keeps_the_question_open(client, db, chat):
    tenant, key = make_tenant(db)
    first = chat(ANA, generate_pin(client, key))
    assert first.endswith("¿cómo te llamás?")
    # A wrong PIN while the bot waits: the failure is told, and the question repeated.
    (wrong,) = other_codes(generate_pin(client, key), 1)
    assert chat(ANA, f"Quiero activar mi PIN: {wrong}") == (
        failed(wrong) + " Y contanos: ¿cómo te llamás?"
    )
    # A good PIN while the bot waits: credited, and the question asked again.
    second = chat(ANA, generate_pin(client, key))
    assert second.startswith("¡Sumaste 1 punto en Café Uno!")
    assert second.endswith("¿cómo te llamás?")
    # The name, whenever it comes, is taken.
    assert chat(ANA, "Ana").startswith("¡Listo, Ana! Tu saldo en Café Uno: 2 puntos.")
    assert customer_names(db) == ["Ana"]
