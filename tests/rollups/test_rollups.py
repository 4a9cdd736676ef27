"""The dashboard's rollups equal a direct computation over the source rows after a randomized
workload (PINs, orders with points and cashback, redemptions, loyalty-payment-like spends,
reversals and refunds) at random moments across days and time zones, folded incrementally
at random points; and ``rebuild`` gives the same again."""

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, func, select

from fidelia.customers.service import identify
from fidelia.kit import clock
from fidelia.kit.errors import DomainError
from fidelia.ledger.service import CASHBACK, POINTS, Account, Source, balance, credit, debit
from fidelia.models import (
    Balance,
    Customer,
    CustomerDay,
    DailyRollup,
    LedgerEntry,
    Order,
    Pin,
    Redemption,
    RewardDay,
    Tenant,
)
from fidelia.orders import service as orders
from fidelia.pins import service as pins
from fidelia.redemptions.service import new_external_code
from fidelia.rewards.service import create_reward
from fidelia.rollups import service as rollups
from fidelia.tenants.service import create_group, create_tenant, set_setting

NOW = timedelta(0)


@pytest.fixture(autouse=True)
def _unfreeze():
    yield
    clock.freeze(None)


def direct(db):
    """The figures computed straight from the ledger, PINs, customers and redemptions."""
    days = defaultdict(lambda: defaultdict(int))
    active = defaultdict(int)
    rewards = defaultdict(lambda: [0, 0])
    with db.session(readonly=True) as s:
        zone = {t.id: ZoneInfo(t.timezone) for t in s.scalars(select(Tenant))}

        def day(tenant_id, moment):
            return moment.astimezone(zone[tenant_id]).date()

        order_rows = {o.id: o for o in s.scalars(select(Order))}
        for e in s.scalars(select(LedgerEntry)):
            d = days[(e.tenant_id, day(e.tenant_id, e.created_at))]
            d[f"{e.account}_net"] += e.amount
            if e.kind == "earn":
                d[f"{e.account}_issued"] += e.amount
            if e.kind == "redeem":
                d[f"{e.account}_redeemed"] += -e.amount
            sale = 0
            if e.kind == "earn" and e.source_type == "pin":
                d["pins_activated"] += 1
                sale = 1
            if e.kind == "earn" and e.source_type == "order":
                order = order_rows[int(e.source_id)]
                first = "points" if order.earned_points > 0 else "cashback"
                if e.account == first:
                    d["member_orders"] += 1
                    d["member_sales"] += order.total
                    sale = 1
            if e.kind in ("earn", "redeem"):
                active[(e.tenant_id, day(e.tenant_id, e.created_at), e.customer_id)] += sale
        for p in s.scalars(select(Pin)):
            days[(p.tenant_id, day(p.tenant_id, p.created_at))]["pins_issued"] += 1
        for c in s.scalars(select(Customer)):
            days[(c.tenant_id, day(c.tenant_id, c.created_at))]["new_customers"] += 1
        for r in s.scalars(select(Redemption)):
            key = (r.tenant_id, day(r.tenant_id, r.created_at))
            days[key]["redemptions"] += 1
            rewards[(*key, r.reward_id)][0] += 1
            rewards[(*key, r.reward_id)][1] += r.points
    flat = {
        k: {n: v[n] for n in rollups.COUNTERS if v[n]}
        for k, v in days.items()
        if any(v[n] for n in rollups.COUNTERS)
    }
    return flat, dict(active), {k: tuple(v) for k, v in rewards.items()}


def stored(db):
    with db.session(readonly=True) as s:
        days = {}
        for r in s.scalars(select(DailyRollup)):
            values = {n: getattr(r, n) for n in rollups.COUNTERS if getattr(r, n)}
            if values:
                days[(r.tenant_id, r.day)] = values
        active = {
            (r.tenant_id, r.day, r.customer_id): r.sales for r in s.scalars(select(CustomerDay))
        }
        rewards = {
            (r.tenant_id, r.day, r.reward_id): (r.redemptions, r.points)
            for r in s.scalars(select(RewardDay))
        }
    return days, active, rewards


def workload(db, rng: random.Random, steps: int) -> None:
    start = datetime(2025, 3, 1, 12, tzinfo=UTC)
    with db.session() as s:
        a = create_tenant(s, slug="cr", name="CR", currency="CRC", timezone="America/Costa_Rica")
        b = create_tenant(s, slug="jp", name="JP", currency="USD", timezone="Asia/Tokyo")
        c = create_tenant(s, slug="br", name="BR", currency="BRL", timezone="America/Sao_Paulo")
        create_group(s, slug="grp", name="Group", tenant_slugs=["jp", "br"])
        for slug in ("cr", "jp", "br"):
            set_setting(s, slug, "earn_points_per_unit", "1")
            set_setting(s, slug, "cashback_percent", "5")
            set_setting(s, slug, "point_value", "0.1")
        tenants = [a.id, b.id, c.id]
        rewards = {t.id: create_reward(s, t, title=f"R {t.slug}", points=5).id for t in (a, b, c)}
        rewards2 = {t.id: create_reward(s, t, title=f"S {t.slug}", points=2).id for t in (a, b, c)}
    moment = start
    people: dict[int, list[int]] = {t: [] for t in tenants}
    for step in range(steps):
        moment += timedelta(minutes=rng.choice([7, 45, 180, 600]))
        clock.freeze(moment)
        tenant_id = rng.choice(tenants)
        action = rng.random()
        try:
            with db.session() as s:
                tenant = s.get_one(Tenant, tenant_id)
                if action < 0.15 or not people[tenant_id]:
                    customer = identify(s, tenant, {"phone": f"+5068{step:07d}"})
                    people[tenant_id].append(customer.id)
                customer = s.get_one(Customer, rng.choice(people[tenant_id]))
                acct = Account(customer.program_id, customer.id, POINTS)
                if action < 0.35:
                    pin = pins.generate(s, tenant, f"ns{tenant_id}", 1000)
                    if rng.random() < 0.7:
                        pin.status, pin.used_at, pin.customer_id = "used", moment, customer.id
                        credit(s, acct, pin.points, Source(tenant.id, "pin", str(pin.id)))
                elif action < 0.6:
                    data = orders.OrderData(
                        original_id=f"o{step}",
                        total=rng.randint(0, 50) * 100,
                        customer=customer,
                        completed=True,
                    )
                    order = orders.upsert(s, tenant, data)
                    if rng.random() < 0.2:
                        orders.cancel(s, order)
                elif action < 0.8:
                    reward_id = rng.choice([rewards[tenant_id], rewards2[tenant_id]])
                    cost = 5 if reward_id == rewards[tenant_id] else 2
                    if balance(s, acct) >= cost:
                        r = Redemption(
                            program_id=customer.program_id,
                            tenant_id=tenant.id,
                            customer_id=customer.id,
                            reward_id=reward_id,
                            points=cost,
                            origin="test",
                            external_code=new_external_code(),
                            created_at=moment,
                        )
                        s.add(r)
                        s.flush()
                        debit(s, acct, cost, Source(tenant.id, "redemption", str(r.id)))
                        if rng.random() < 0.2:
                            credit(
                                s,
                                acct,
                                cost,
                                Source(tenant.id, "redemption", str(r.id)),
                                kind="reverse",
                            )
                else:
                    cash = Account(customer.program_id, customer.id, CASHBACK)
                    if balance(s, cash) > 0:
                        debit(s, cash, 1, Source(tenant.id, "payment", f"p{step}"))
        except DomainError:
            pass
        if rng.random() < 0.1:
            rollups.update(db, settle=NOW, batch=rng.choice([1, 3, 50]))


@pytest.mark.parametrize("seed", [7])
def test_rollups_equal_a_direct_computation(db, seed):
    rng = random.Random(seed)
    workload(db, rng, 260)
    rollups.update(db, settle=NOW, batch=17)
    expected = direct(db)
    seen = {name for values in expected[0].values() for name in values}
    assert seen == set(rollups.COUNTERS), f"the workload left out {set(rollups.COUNTERS) - seen}"
    assert stored(db) == expected
    # Liability: the nets of a program add up to its balances.
    with db.session(readonly=True) as s:
        for program_id, points in s.execute(
            select(Balance.program_id, func.sum(Balance.amount))
            .where(Balance.account == POINTS)
            .group_by(Balance.program_id)
        ):
            net = s.scalar(
                select(func.sum(DailyRollup.points_net)).where(DailyRollup.program_id == program_id)
            )
            assert net == points
    # A rebuild of everything, and of one merchant, gives the same rows.
    rollups.rebuild(db, settle=NOW, batch=11)
    assert stored(db) == expected
    with db.session(readonly=True) as s:
        one = s.scalar(select(Tenant.id).where(Tenant.slug == "jp"))
    rollups.rebuild(db, tenant_id=one, settle=NOW, batch=5)
    assert stored(db) == expected


def test_rows_younger_than_the_settle_time_wait(db):
    clock.freeze(datetime(2025, 1, 1, 12, tzinfo=UTC))
    with db.session() as s:
        tenant = create_tenant(s, slug="cafe", name="Cafe")
        pins.generate(s, tenant, "ns", None)
    assert rollups.update(db, settle=timedelta(seconds=60)) == 0
    clock.freeze(datetime(2025, 1, 1, 12, 2, tzinfo=UTC))
    assert rollups.update(db, settle=timedelta(seconds=60)) == 1
    with db.session(readonly=True) as s:
        row = s.scalars(select(DailyRollup)).one()
        assert row.pins_issued == 1
    assert rollups.update(db, settle=timedelta(seconds=60)) == 0  # folded once


def direct_figures(expected, tenant, program_tenants, days, today):
    """What the dashboard must show, computed from ``direct()``'s figures."""
    flat, active, rewards = expected
    first = today - timedelta(days=days - 1)

    def within(day):
        return first <= day <= today

    totals = {n: 0 for n in rollups.COUNTERS}
    for (tenant_id, day), values in flat.items():
        if tenant_id == tenant.id and within(day):
            for name, value in values.items():
                totals[name] += value
    sales = defaultdict(int)
    weeks = defaultdict(set)
    for (tenant_id, day, customer_id), count in active.items():
        if tenant_id == tenant.id and within(day):
            sales[customer_id] += count
            weeks[day - timedelta(days=day.weekday())].add(customer_id)
    mondays = []
    monday = first - timedelta(days=first.weekday())
    while monday <= today:
        mondays.append(monday)
        monday += timedelta(days=7)
    net = sum(
        values.get("points_net", 0)
        for (tenant_id, _), values in flat.items()
        if tenant_id in program_tenants
    )
    top = defaultdict(lambda: [0, 0])
    for (tenant_id, day, reward_id), (count, points) in rewards.items():
        if tenant_id == tenant.id and within(day):
            top[reward_id][0] += count
            top[reward_id][1] += points
    return {
        "totals": totals,
        "active": len(sales),
        "buyers": sum(1 for n in sales.values() if n >= 1),
        "repeat": sum(1 for n in sales.values() if n >= 2),
        "weekly": [(m, len(weeks.get(m, ()))) for m in mondays],
        "liability_points": max(net, 0),
        "top": sorted(((-c, r, p) for r, (c, p) in top.items()))[:5],
    }


def test_dashboard_figures_equal_a_direct_computation(db):
    """The dashboard's figures (sums and counts done by the database over the rollups)
    equal the same figures computed straight from the source rows, for every merchant,
    period and a few 'today's (weeks cut at either end)."""
    from fidelia.dashboard import service as dashboard

    workload(db, random.Random(11), 220)
    rollups.update(db, settle=NOW, batch=50)
    expected = direct(db)
    with db.session(readonly=True) as s:
        tenants = list(s.scalars(select(Tenant)))
        for tenant in tenants:
            program_tenants = {t.id for t in tenants if t.program_id == tenant.program_id}
            active_days = sorted(d for (t, d) in expected[0] if t == tenant.id)
            assert active_days, "the workload left a merchant without activity"
            for today in (active_days[-1], active_days[len(active_days) // 2]):
                for days in dashboard.PERIODS:
                    got = dashboard.figures(s, tenant, days, today=today)
                    want = direct_figures(expected, tenant, program_tenants, days, today)
                    assert got.totals == want["totals"]
                    assert got.active_customers == want["active"]
                    assert got.active_buyers == want["buyers"]
                    assert got.repeat_customers == want["repeat"]
                    assert got.weekly_active == want["weekly"]
                    assert got.liability_points == want["liability_points"]
                    assert [(-r.redemptions, r.reward_id, r.points) for r in got.top_rewards] == (
                        want["top"]
                    )
                    assert len(got.daily) == days
                    assert (
                        sum(row["points_issued"] for row in got.daily)
                        == (want["totals"]["points_issued"])
                    )


def sales(db, tenants, people, rewards, count, start, offset):
    """``count`` rounds over every merchant: a customer (a new one every other round, else
    one seen before) activates a PIN, completes an order (points and cashback) and redeems
    a reward, at moments spread over three days (local days differ from UTC days)."""
    for step in range(count):
        for tenant_id in tenants:
            clock.freeze(start + timedelta(hours=(step * 7) % 72, minutes=step))
            with db.session() as s:
                tenant = s.get_one(Tenant, tenant_id)
                if step % 2 == 0 or not people[tenant_id]:
                    phone = f"+5067{tenant_id:02d}{offset + step:05d}"
                    people[tenant_id].append(identify(s, tenant, {"phone": phone}).id)
                customer = s.get_one(Customer, people[tenant_id][step % len(people[tenant_id])])
                acct = Account(customer.program_id, customer.id, POINTS)
                pin = pins.generate(s, tenant, f"ns{tenant_id}", 1000)
                pin.status, pin.used_at, pin.customer_id = "used", clock.now(), customer.id
                credit(s, acct, pin.points, Source(tenant.id, "pin", str(pin.id)))
                data = orders.OrderData(
                    original_id=f"o{offset + step}", total=1200, customer=customer, completed=True
                )
                orders.upsert(s, tenant, data)
                r = Redemption(
                    program_id=customer.program_id,
                    tenant_id=tenant.id,
                    customer_id=customer.id,
                    reward_id=rewards[tenant_id],
                    points=5,
                    origin="test",
                    external_code=new_external_code(),
                    created_at=clock.now(),
                )
                s.add(r)
                s.flush()
                debit(s, acct, 5, Source(tenant.id, "redemption", str(r.id)))


def test_a_fold_issues_the_same_statements_for_few_rows_and_many(db):
    """A batch holding many merchants, days, customers and rewards (several rows on one
    key, and keys already in the rollups) is folded exactly, with as many statements as
    a batch of a few rows: one per rollup table, not one per key."""
    start = datetime(2025, 3, 1, 2, tzinfo=UTC)
    with db.session() as s:
        made = [
            create_tenant(s, slug=slug, name=slug, currency="USD", timezone=zone)
            for slug, zone in (("cr", "America/Costa_Rica"), ("jp", "Asia/Tokyo"), ("nz", "UTC"))
        ]
        for t in made:
            set_setting(s, t.slug, "earn_points_per_unit", "1")
            set_setting(s, t.slug, "cashback_percent", "5")
        tenants = [t.id for t in made]
        rewards = {t.id: create_reward(s, t, title=f"R {t.slug}", points=5).id for t in made}
    people: dict[int, list[int]] = {t: [] for t in tenants}
    statements: list[str] = []

    def heard(_conn, _cursor, statement, *_):
        statements.append(statement)

    def folded(count, offset):
        sales(db, tenants, people, rewards, count, start, offset)
        clock.freeze(start + timedelta(days=4))
        statements.clear()
        event.listen(db.engine, "before_cursor_execute", heard)
        try:
            rows = rollups.update(db, settle=NOW)
        finally:
            event.remove(db.engine, "before_cursor_execute", heard)
        assert stored(db) == direct(db)
        return rows, list(statements)

    few, few_statements = folded(2, 0)
    many, many_statements = folded(12, 100)
    assert many > 5 * few
    with db.session(readonly=True) as s:
        assert s.scalar(select(func.count()).select_from(CustomerDay)) > 3 * len(tenants) * 2
        assert s.scalar(select(func.count()).select_from(DailyRollup)) >= 2 * len(tenants)
    assert len(many_statements) == len(few_statements), many_statements
