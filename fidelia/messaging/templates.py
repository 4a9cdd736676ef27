"""The automatic messages' words: plain text per locale (inside WhatsApp's 24-hour window
and by e-mail) and the merchant's mapping of each event to an approved WhatsApp template
(outside the window only a template may be sent)."""
# ruff: noqa: E501  (one message a line reads better than wrapped strings)

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fidelia.kit.errors import InvalidInput
from fidelia.models import MessageTemplate, Tenant

BENEFIT_EARNED = "benefit_earned"
VOUCHER_ISSUED = "voucher_issued"
POINTS_EXPIRING = "points_expiring"
COME_BACK = "come_back"
EVENTS = (BENEFIT_EARNED, VOUCHER_ISSUED, POINTS_EXPIRING, COME_BACK)
# Marketing needs recorded consent and counts against the cap; the others are about the
# customer's own account (transactional). See docs/messages.md.
MARKETING = frozenset({COME_BACK})

COMMON = ("merchant", "name", "balance")
# The values each event offers to a template's body parameters ({{1}}, {{2}} ... in order).
PARAMS: dict[str, tuple[str, ...]] = {
    BENEFIT_EARNED: (*COMMON, "earned", "points", "cashback"),
    VOUCHER_ISSUED: (*COMMON, "code", "value", "valid_until"),
    POINTS_EXPIRING: (*COMMON, "expiring", "date"),
    COME_BACK: (*COMMON, "days"),
}

TEXTS: dict[str, dict[str, str]] = {
    "es": {
        BENEFIT_EARNED: "{merchant}: ¡sumaste {earned} con tu compra! Tu saldo: {balance}.",
        VOUCHER_ISSUED: "{merchant}: ¡ganaste un voucher de {value}! Código {code}{until}. Mostralo en caja.",
        POINTS_EXPIRING: "{merchant}: {expiring} de tu saldo vencen el {date}. ¡Usalos antes!",
        COME_BACK: "{merchant}: ¡te extrañamos! Tu saldo te espera: {balance}.",
        "until": ", válido hasta el {date}",
        "subject": "{merchant}: novedades de tu saldo",
        "opted_out": "Listo: no vas a recibir más mensajes automáticos ni promociones por WhatsApp. Tus puntos siguen guardados.",
    },
    "pt": {
        BENEFIT_EARNED: "{merchant}: você ganhou {earned} com a sua compra! Seu saldo: {balance}.",
        VOUCHER_ISSUED: "{merchant}: você ganhou um voucher de {value}! Código {code}{until}. Apresente no caixa.",
        POINTS_EXPIRING: "{merchant}: {expiring} do seu saldo vencem em {date}. Use antes!",
        COME_BACK: "{merchant}: sentimos sua falta! Seu saldo está esperando: {balance}.",
        "until": ", válido até {date}",
        "subject": "{merchant}: novidades do seu saldo",
        "opted_out": "Pronto: você não vai mais receber mensagens automáticas nem promoções pelo WhatsApp. Seus pontos continuam guardados.",
    },
    "en": {
        BENEFIT_EARNED: "{merchant}: you earned {earned} with your purchase! Your balance: {balance}.",
        VOUCHER_ISSUED: "{merchant}: you got a voucher worth {value}! Code {code}{until}. Show it at the counter.",
        POINTS_EXPIRING: "{merchant}: {expiring} of your balance expire on {date}. Use them before!",
        COME_BACK: "{merchant}: we miss you! Your balance is waiting: {balance}.",
        "until": ", valid until {date}",
        "subject": "{merchant}: news about your balance",
        "opted_out": "Done: you will get no more automatic messages or promotions on WhatsApp. Your points stay safe.",
    },
}

NAME = re.compile(r"^[a-z0-9_]{1,512}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?$")


def lang(locale: str) -> str:
    code = (locale or "es").split("_")[0].split("-")[0].lower()
    return code if code in TEXTS else "es"


def say(locale: str, key: str, **values: object) -> str:
    return TEXTS[lang(locale)][key].format(**values)


def set_template(
    session: Session, tenant: Tenant, event: str, name: str, language: str, params: list[str]
) -> MessageTemplate:
    """Map ``event`` to the approved template ``name`` in ``language`` whose body takes
    ``params`` in this order (names from PARAMS[event]). Replaces an earlier mapping."""
    if event not in EVENTS:
        raise InvalidInput(f"Unknown event {event!r}; known: {', '.join(EVENTS)}.")
    name = name.strip()
    if not NAME.match(name):
        raise InvalidInput("A template name is lower-case letters, digits and underscores.")
    language = language.strip().replace("-", "_")
    if not LANGUAGE.match(language):
        raise InvalidInput(f"Not a template language code (pt_BR, es, en_US): {language!r}.")
    params = [p.strip() for p in params if p.strip()]
    unknown = [p for p in params if p not in PARAMS[event]]
    if unknown:
        raise InvalidInput(
            f"{event} offers {', '.join(PARAMS[event])}; unknown: {', '.join(unknown)}."
        )
    template = template_for(session, tenant.id, event)
    if template is None:
        template = MessageTemplate(tenant_id=tenant.id, event=event, channel="whatsapp")
        session.add(template)
    template.name, template.language, template.params = name, language, params
    session.flush()
    return template


def template_for(session: Session, tenant_id: int, event: str) -> MessageTemplate | None:
    return session.scalar(
        select(MessageTemplate).where(
            MessageTemplate.tenant_id == tenant_id,
            MessageTemplate.event == event,
            MessageTemplate.channel == "whatsapp",
        )
    )


def templates_of(session: Session, tenant: Tenant) -> list[MessageTemplate]:
    return list(
        session.scalars(
            select(MessageTemplate)
            .where(MessageTemplate.tenant_id == tenant.id)
            .order_by(MessageTemplate.event)
        )
    )


def template_body(template: MessageTemplate, values: dict[str, str]) -> dict[str, Any]:
    """The Cloud API ``template`` object: name, language, body parameters in order."""
    body: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if template.params:
        body["components"] = [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": values.get(p) or "-"} for p in template.params
                ],
            }
        ]
    return body
