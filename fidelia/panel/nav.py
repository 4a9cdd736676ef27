"""The panel's menus, in the order of the information architecture (PANEL.md):

Owner:    Dashboard · Customers · Rewards · Vouchers & campaigns · Program · Integrations ·
          Messages · Team
Counter:  Sale PIN · Customer · Voucher (cashiers, and owners in counter mode)
Operator: Merchants · Platform health · Users

An area appears here once it is built: its package adds one ``Item`` to ``ITEMS`` at the
place the architecture gives it (``order``). Labels are msgids, translated when shown.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fidelia.panel.i18n import N_

if TYPE_CHECKING:
    from fidelia.panel.auth import Viewer


@dataclass(frozen=True)
class Item:
    order: int  # position in its menu (10 Dashboard ... 80 Team; 110 Sale PIN ...)
    label: str  # msgid
    href: str
    roles: tuple[str, ...]
    menu: str = "owner"  # owner | counter | operator


@dataclass(frozen=True)
class Entry:
    label: str
    href: str
    active: bool


ITEMS: list[Item] = [
    Item(10, N_("Dashboard"), "/panel/dashboard", ("owner",)),
    Item(15, N_("Getting started"), "/panel/onboarding", ("owner",)),
    Item(20, N_("Customers"), "/panel/customers", ("owner",)),
    Item(30, N_("Rewards"), "/panel/rewards", ("owner",)),
    Item(40, N_("Vouchers & campaigns"), "/panel/vouchers", ("owner",)),
    Item(50, N_("Program"), "/panel/program", ("owner",)),
    Item(60, N_("Integrations"), "/panel/integrations", ("owner",)),
    Item(70, N_("Messages"), "/panel/messages", ("owner",)),
    Item(80, N_("Team"), "/panel/team", ("owner",)),
    Item(85, N_("Exports"), "/panel/exports", ("owner",)),
    Item(90, N_("Audit log"), "/panel/audit", ("owner",)),
    Item(110, N_("Sale PIN"), "/panel/counter/pin", ("owner", "cashier"), "counter"),
    Item(120, N_("Customer"), "/panel/counter/customer", ("owner", "cashier"), "counter"),
    Item(130, N_("Voucher"), "/panel/counter/voucher", ("owner", "cashier"), "counter"),
    Item(210, N_("Merchants"), "/panel/operator/merchants", ("operator",), "operator"),
    Item(220, N_("Platform health"), "/panel/operator/health", ("operator",), "operator"),
    Item(230, N_("Audit log"), "/panel/operator/audit", ("operator",), "operator"),
]


def menu_for(viewer: "Viewer | None", path: str) -> dict[str, list[Entry]]:
    """The menus this viewer sees, by name, with the current page marked."""
    if viewer is None:
        return {}
    menus: dict[str, list[Entry]] = {}
    for item in sorted(ITEMS, key=lambda i: i.order):
        if viewer.role not in item.roles:
            continue
        here = path == item.href or path.startswith(item.href + "/")
        menus.setdefault(item.menu, []).append(Entry(item.label, item.href, here))
    return menus
