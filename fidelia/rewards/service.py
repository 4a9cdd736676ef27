"""Rewards (promociones): what customers buy with points."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from fidelia.kit.errors import InvalidInput, NotFound
from fidelia.models import Reward, Tenant

TYPES = ("custom", "fixed", "percent", "cashback", "product")


def create_reward(
    session: Session,
    tenant: Tenant,
    *,
    title: str,
    points: int,
    description: str = "",
    reward_type: str = "custom",
) -> Reward:
    if not title.strip():
        raise InvalidInput("A reward needs a title.")
    if points <= 0:
        raise InvalidInput("A reward costs at least one point.")
    if reward_type not in TYPES:
        raise InvalidInput(f"Reward type is one of {', '.join(TYPES)}.")
    reward = Reward(
        tenant_id=tenant.id,
        title=title.strip(),
        description=description.strip(),
        points_required=points,
        reward_type=reward_type,
    )
    session.add(reward)
    session.flush()
    return reward


def active_rewards(session: Session, tenant_ids: list[int]) -> list[Reward]:
    return list(
        session.scalars(
            select(Reward)
            .where(Reward.tenant_id.in_(tenant_ids), Reward.active.is_(True))
            .order_by(Reward.points_required, Reward.id)
        )
    )


def get_for_tenant(session: Session, tenant_id: int, reward_id: int) -> Reward:
    reward = session.scalar(
        select(Reward).where(Reward.id == reward_id, Reward.tenant_id == tenant_id, Reward.active)
    )
    if reward is None:
        raise NotFound(f"No reward {reward_id} at this merchant.", code="REWARD_NOT_FOUND")
    return reward


def next_reward(rewards: list[Reward], points: int) -> tuple[Reward, int] | None:
    """What to show next: the most valuable reward the balance already covers (0 missing),
    else the cheapest one with the points still missing. None without rewards."""
    affordable = [r for r in rewards if r.points_required <= points]
    if affordable:
        return max(affordable, key=lambda r: (r.points_required, -r.id)), 0
    if rewards:
        cheapest = min(rewards, key=lambda r: (r.points_required, r.id))
        return cheapest, cheapest.points_required - points
    return None
