"""A customer's standing in every program they belong to: balance and next reward.
Shared by the public lookup (seed 000) and the bot's "puntos" answer."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from fidelia.customers.service import find_everywhere
from fidelia.ledger.service import Account, balance
from fidelia.models import Customer, Program, Reward, Tenant
from fidelia.rewards.service import active_rewards, next_reward


@dataclass(frozen=True)
class Standing:
    program: Program
    tenants: list[Tenant]
    customer: Customer
    points: int
    next: tuple[Reward, int] | None

    @property
    def is_group(self) -> bool:
        return self.program.kind == "group"

    @property
    def name(self) -> str:
        return self.program.name if self.is_group else self.tenants[0].name


def standing_in(session: Session, customer: Customer) -> Standing:
    program = session.get_one(Program, customer.program_id)
    tenants = list(
        session.scalars(select(Tenant).where(Tenant.program_id == program.id).order_by(Tenant.id))
    )
    points = balance(session, Account(program.id, customer.id))
    rewards = active_rewards(session, [t.id for t in tenants])
    return Standing(program, tenants, customer, points, next_reward(rewards, points))


def standings(session: Session, kind: str, value: str) -> list[Standing]:
    return [standing_in(session, c) for c in find_everywhere(session, kind, value)]
