"""Categories: a merchant's labels for organising coupons (rewards) and reports."""

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.errors import Conflict, InvalidInput, NotFound
from fidelia.models import Category, Tenant


def create_category(
    session: Session, tenant: Tenant, *, name: str, description: str = ""
) -> Category:
    """Names are unique per merchant (a unique index, so also under concurrency)."""
    name = " ".join(name.split())
    if not name:
        raise InvalidInput("A category needs a name.", code="INVALID_NAME")
    category = Category(
        tenant_id=tenant.id,
        name=name[:120],
        description=description.strip()[:500],
        created_at=now(),
    )
    try:
        with session.begin_nested():
            session.add(category)
            session.flush()
    except IntegrityError as exc:
        raise Conflict(f"A category named {name!r} exists.", code="CATEGORY_EXISTS") from exc
    return category


def get(session: Session, tenant: Tenant, category_id: int) -> Category:
    category = session.scalar(
        select(Category).where(Category.id == category_id, Category.tenant_id == tenant.id)
    )
    if category is None:
        raise NotFound(f"No category {category_id} at this merchant.", code="CATEGORY_NOT_FOUND")
    return category


@dataclass(frozen=True)
class Page:
    items: list[Category]
    total: int


def listing(session: Session, tenant: Tenant, *, page: int = 1, per_page: int = 20) -> Page:
    query = select(Category).where(Category.tenant_id == tenant.id)
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    items = session.scalars(
        query.order_by(Category.id).offset((page - 1) * per_page).limit(per_page)
    )
    return Page(list(items), total)
