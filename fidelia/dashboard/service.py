"""The owner's dashboard: a merchant's figures for the last 7, 30 or 90 days (its own time
zone), read from the daily rollups (rollups/service.py) only: a few hundred rows at most
per page view, whatever the size of the ledger."""

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import Select, bindparam, case, func, literal, select
from sqlalchemy.orm import Session

from fidelia.kit.clock import now
from fidelia.kit.errors import InvalidInput
from fidelia.models import CustomerDay, DailyRollup, Reward, RewardDay, Tenant
from fidelia.rollups.service import COUNTERS

PERIODS = (7, 30, 90)


@dataclass(frozen=True)
class TopReward:
    reward_id: int
    title: str
    redemptions: int
    points: int


@dataclass
class Figures:
    days: int
    first: date
    last: date
    totals: dict[str, int]
    active_customers: int
    repeat_customers: int
    liability_points: int
    liability_cashback: int  # minor units
    liability_money: int  # minor units: cashback plus points at the point value
    top_rewards: list[TopReward]
    daily: list[dict[str, object]] = field(default_factory=list)  # one per day, oldest first
    weekly_active: list[tuple[date, int]] = field(default_factory=list)  # week's Monday

    @property
    def activation_rate(self) -> Decimal | None:
        issued = self.totals["pins_issued"]
        return None if not issued else Decimal(self.totals["pins_activated"]) / issued

    @property
    def repeat_rate(self) -> Decimal | None:
        if not self.active_buyers:
            return None
        return Decimal(self.repeat_customers) / self.active_buyers

    active_buyers: int = 0


def period_days(raw: str | int | None) -> int:
    try:
        days = int(raw) if raw not in (None, "") else 30
    except (TypeError, ValueError) as exc:
        raise InvalidInput("The period is 7, 30 or 90 days.", code="INVALID_PERIOD") from exc
    if days not in PERIODS:
        raise InvalidInput("The period is 7, 30 or 90 days.", code="INVALID_PERIOD")
    return days


def today_of(tenant: Tenant) -> date:
    return now().astimezone(ZoneInfo(tenant.timezone)).date()


def points_money(tenant: Tenant, points: int) -> int:
    """Points at the merchant's point value, in minor units (rounded down)."""
    return points * tenant.point_value_milli_minor // 1000


# The statements, built once with bound parameters (building and keying them on every
# view cost about as much CPU as running them).
_DAYS = select(DailyRollup.day, *(getattr(DailyRollup, name) for name in COUNTERS)).where(
    DailyRollup.tenant_id == bindparam("tenant_id"),
    DailyRollup.day >= bindparam("first"),
    DailyRollup.day <= bindparam("last"),
)
_IN_PERIOD = (
    CustomerDay.tenant_id == bindparam("tenant_id"),
    CustomerDay.day >= bindparam("first"),
    CustomerDay.day <= bindparam("last"),
)
_PER_CUSTOMER = (
    select(func.sum(CustomerDay.sales).label("sales"))
    .where(*_IN_PERIOD)
    .group_by(CustomerDay.customer_id)
    .subquery()
)
_ACTIVE = select(
    func.count(),
    func.coalesce(func.sum(case((_PER_CUSTOMER.c.sales >= 1, 1), else_=0)), 0),
    func.coalesce(func.sum(case((_PER_CUSTOMER.c.sales >= 2, 1), else_=0)), 0),
).select_from(_PER_CUSTOMER)
_WEEKLY: dict[int, Select[int, int]] = {}  # by the number of weeks of the period
_LIABILITY = select(
    func.coalesce(func.sum(DailyRollup.points_net), 0),
    func.coalesce(func.sum(DailyRollup.cashback_net), 0),
).where(DailyRollup.program_id == bindparam("program_id"))
_TOP_REWARDS = (
    select(
        RewardDay.reward_id,
        Reward.title,
        func.sum(RewardDay.redemptions).label("count"),
        func.sum(RewardDay.points),
    )
    .join(Reward, Reward.id == RewardDay.reward_id)
    .where(
        RewardDay.tenant_id == bindparam("tenant_id"),
        RewardDay.day >= bindparam("first"),
        RewardDay.day <= bindparam("last"),
    )
    .group_by(RewardDay.reward_id, Reward.title)
    .order_by(func.sum(RewardDay.redemptions).desc(), RewardDay.reward_id)
    .limit(5)
)


def _weekly(weeks: int) -> Select[int, int]:
    """Active customers per week of a period of ``weeks`` weeks (Mondays ``monday1``...
    bound): the week of a day is its index, by a portable CASE (no date functions)."""
    if weeks not in _WEEKLY:
        whens = [(CustomerDay.day < bindparam(f"monday{k}"), k - 1) for k in range(1, weeks)]
        week = case(*whens, else_=weeks - 1) if whens else literal(0)
        in_week = select(week.label("week"), CustomerDay.customer_id).where(*_IN_PERIOD)
        per_week = in_week.distinct().subquery()
        _WEEKLY[weeks] = select(per_week.c.week, func.count()).group_by(per_week.c.week)
    return _WEEKLY[weeks]


def figures(session: Session, tenant: Tenant, days: int, today: date | None = None) -> Figures:
    last = today or today_of(tenant)
    first = last - timedelta(days=days - 1)
    period = {"tenant_id": tenant.id, "first": first, "last": last}
    # Plain rows, not ORM objects: at most ``days`` of them, summed here.
    rows = {day: values for day, *values in session.execute(_DAYS, period)}
    totals = {name: sum(int(r[i]) for r in rows.values()) for i, name in enumerate(COUNTERS)}
    zero = [0] * len(COUNTERS)
    daily: list[dict[str, object]] = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        values = rows.get(day, zero)
        daily.append({"day": day, **{n: int(values[i]) for i, n in enumerate(COUNTERS)}})

    # Active customers, buyers and repeat buyers, active per week: counted by the database
    # from the customer-day rows (one per customer and active day), which can be many
    # thousands for a busy merchant; only a few numbers come back.
    active, buyers, repeat = session.execute(_ACTIVE, period).one()
    mondays = []
    monday = first - timedelta(days=first.weekday())
    while monday <= last:
        mondays.append(monday)
        monday += timedelta(days=7)
    bounds = {f"monday{k}": monday for k, monday in enumerate(mondays) if k}
    counts: dict[int, int] = {
        index: count
        for index, count in session.execute(_weekly(len(mondays)), {**period, **bounds})
    }
    weekly = [(monday, int(counts.get(index, 0))) for index, monday in enumerate(mondays)]

    # Liability: what the program's customers hold now (groups share one balance).
    points, cashback = session.execute(_LIABILITY, {"program_id": tenant.program_id}).one()
    points, cashback = max(int(points), 0), max(int(cashback), 0)

    top = [
        TopReward(reward_id, title, int(count), int(spent))
        for reward_id, title, count, spent in session.execute(_TOP_REWARDS, period)
    ]
    result = Figures(
        days=days,
        first=first,
        last=last,
        totals=totals,
        active_customers=int(active),
        repeat_customers=int(repeat),
        liability_points=points,
        liability_cashback=cashback,
        liability_money=cashback + points_money(tenant, points),
        top_rewards=top,
        daily=daily,
        weekly_active=weekly,
    )
    result.active_buyers = int(buyers)
    return result


# The charts, as (name, columns): each is drawn from ``Figures`` and downloadable as CSV.
CHARTS = {
    "issued-redeemed": ("day", "points_issued", "points_redeemed"),
    "activations": ("day", "pins_issued", "pins_activated"),
    "active-weekly": ("week", "active_customers"),
}


def chart_rows(result: Figures, name: str) -> list[tuple[object, ...]]:
    if name == "active-weekly":
        return [(monday, count) for monday, count in result.weekly_active]
    columns = CHARTS[name][1:]
    return [(row["day"], *(row[c] for c in columns)) for row in result.daily]
