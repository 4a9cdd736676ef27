"""The onboarding checklist of a new merchant, each step checked from its real data."""

from dataclasses import dataclass

from sqlalchemy import Select, exists, select
from sqlalchemy.orm import Session

from fidelia.models import ApiKey, Pin, Reward, Tenant
from fidelia.panel.i18n import N_

DEFAULT_POINTS_PER_PIN = 1  # tenants.points_per_pin's default


@dataclass(frozen=True)
class Step:
    key: str
    title: str  # msgid
    help: str  # msgid
    action: str  # msgid of the button
    done: bool
    href: str | None  # the screen that does it, once that screen exists
    hint: str | None = None  # otherwise, how to do it meanwhile


def _any(session: Session, query: Select[tuple[int]] | Select[int]) -> bool:
    return bool(session.scalar(select(exists(query))))


def steps(session: Session, tenant: Tenant, paths: set[str], simulator: bool) -> list[Step]:
    """``paths``: the app's routes, so a step links to its screen as soon as it is built."""

    def link(path: str) -> str | None:
        return path if path in paths else None

    earning = (
        tenant.points_per_pin != DEFAULT_POINTS_PER_PIN
        or tenant.earn_milli_points_per_unit > 0
        or tenant.cashback_basis_points > 0
    )
    reward = _any(session, select(Reward.id).where(Reward.tenant_id == tenant.id))
    key = _any(
        session,
        select(ApiKey.id).where(ApiKey.tenant_id == tenant.id, ApiKey.revoked_at.is_(None)),
    )
    pin = _any(session, select(Pin.id).where(Pin.tenant_id == tenant.id, Pin.status == "used"))
    return [
        Step(
            "program",
            N_("Program basics"),
            N_("Decide how customers earn: points per sale PIN, per amount spent, or cashback."),
            N_("Open the program"),
            earning,
            link("/panel/program"),
        ),
        Step(
            "reward",
            N_("Your first reward"),
            N_("Something customers want, for a number of points."),
            N_("Add a reward"),
            reward,
            link("/panel/rewards"),
            f'fidelia reward create --tenant {tenant.slug} --title "..." --points 10',
        ),
        Step(
            "api_key",
            N_("An API key"),
            N_("Your POS or online shop uses it to give points and check rewards."),
            N_("Create an API key"),
            key,
            link("/panel/integrations/keys"),
            f"fidelia apikey create --tenant {tenant.slug}",
        ),
        Step(
            "test_pin",
            N_("A test PIN in the simulator"),
            N_("Generate a sale PIN and send it from the WhatsApp simulator, as a customer would."),
            N_("Open the simulator"),
            pin,
            "/simulator" if simulator else None,
        ),
    ]
