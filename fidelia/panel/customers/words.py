"""What the panel says about ledger entries, redemptions, orders and vouchers: each kind and
source in words (msgids, translated where shown), shared by the owner's customer page and
the counter."""

from decimal import Decimal

from fidelia.models import LedgerEntry, Reward
from fidelia.models.order import CANCELLED, COMPLETE, IGNORED, INITIAL, PENDING
from fidelia.panel.i18n import N_, Texts

KINDS = {
    "earn": N_("Earned"),
    "redeem": N_("Spent"),
    "reverse": N_("Reversed"),
    "expire": N_("Expired"),
    "adjust": N_("Adjusted by hand"),
}
SOURCES = {
    "pin": N_("a sale PIN sent over WhatsApp"),
    "order": N_("a sale from the point of sale"),
    "order-cancel": N_("a cancelled sale"),
    "refund": N_("a refund"),
    "redemption": N_("a reward"),
    "deal": N_("a promotion on a sale"),
    "event": N_("an event (birthday, sign-up, campaign)"),
    "payment": N_("a payment with points or cashback"),
    "adjustment": N_("a manual adjustment"),
    "seed": N_("imported data"),
}
ACCOUNTS = {"points": N_("Points"), "cashback": N_("Cashback")}
ORDER_STATES = {
    INITIAL: N_("Open"),
    PENDING: N_("Pending"),
    COMPLETE: N_("Complete"),
    CANCELLED: N_("Cancelled"),
    IGNORED: N_("Ignored"),
}
VOUCHER_STATES = {
    "active": N_("Valid"),
    "used": N_("Used"),
    "expired": N_("Expired"),
    "scheduled": N_("Not valid yet"),
    "cancelled": N_("Cancelled"),
}
REDEMPTION_STATES = {"done": N_("Redeemed"), "cancelled": N_("Cancelled")}


def explain(texts: Texts, entry: LedgerEntry) -> str:
    """'Earned from a sale PIN sent over WhatsApp (#12)'."""
    kind = texts.gettext(KINDS.get(entry.kind, entry.kind))
    source = SOURCES.get(entry.source_type)
    if source is None:
        return f"{kind} ({entry.source_type} {entry.source_id})"
    return texts.gettext(N_("%(what)s: %(source)s")) % {
        "what": kind,
        "source": texts.gettext(source),
    }


def amount(texts: Texts, account: str, value: int, currency: str) -> str:
    """Points as a number, cashback as money; signed."""
    if account == "cashback":
        shown = texts.money(abs(value), currency)
    else:
        shown = texts.ngettext("%(num)s point", "%(num)s points", abs(value)) % {
            "num": texts.number(abs(value))
        }
    return ("−" if value < 0 else "+") + shown


def order_state(state: int) -> str:
    return ORDER_STATES.get(state, N_("Open"))


def instruction(texts: Texts, reward: Reward, value: int, currency: str) -> str:
    """What the cashier applies on the invoice for a redemption worth ``value`` minor units
    (the cashback spent, or a fixed discount)."""
    if reward.reward_type == "cashback":
        return texts.gettext(N_("Take %(amount)s off the invoice (cashback).")) % {
            "amount": texts.money(value, currency)
        }
    if reward.reward_type == "fixed":
        return texts.gettext(N_("Take %(amount)s off the invoice.")) % {
            "amount": texts.money(reward.value, currency)
        }
    if reward.reward_type == "percent":
        return texts.gettext(N_("Take %(percent)s%% off the invoice.")) % {
            "percent": texts.number(Decimal(reward.value) / 100)
        }
    if reward.reward_type == "product":
        product = reward.product_name or reward.title
        mode = reward.product_discount_mode or "fixed"
        if mode == "gift":
            return texts.gettext(N_("Give %(product)s free of charge.")) % {"product": product}
        if mode == "percent":
            return texts.gettext(N_("Add %(product)s with %(percent)s%% off.")) % {
                "product": product,
                "percent": texts.number(Decimal(reward.value) / 100),
            }
        if mode == "final_price":
            return texts.gettext(N_("Add %(product)s at %(amount)s.")) % {
                "product": product,
                "amount": texts.money(reward.value, currency),
            }
        return texts.gettext(N_("Add %(product)s with %(amount)s off.")) % {
            "product": product,
            "amount": texts.money(reward.value, currency),
        }
    return texts.gettext(N_("Give the customer: %(reward)s.")) % {"reward": reward.title}
