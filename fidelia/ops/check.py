"""``fidelia check``: verify the ledger invariants of a live database.

Every rule is a query that returns what breaks it; nothing is changed. The rules:

- ``balance-sum``: each balance equals the sum of its account's entries (and no entries
  without a balance row).
- ``balance-chain``: per account, in id order, each entry's ``balance_after`` is the running
  sum of the amounts up to it (the ledger is append-only and ordered by the balance lock).
- ``lots``: credits are lots; ``remaining`` is never negative nor above the lot's amount,
  debits carry no lot, and the remaining of an account's lots adds up to its balance when the
  balance is not negative (to zero when it is: a debt is paid before anything can be spent).
- ``overspend``: no redemption debit took a balance below zero.
- ``entry-program``: an entry's customer belongs to the entry's program.
- ``pin-credit``: a used PIN has its customer and exactly one credit; a PIN credit points at
  a used PIN.
- ``redemption-entries`` / ``order-entries``: what a redemption, an order or a refund
  recorded matches the entries it wrote (nothing half-applied).
- ``idempotency-answer``: a committed idempotency key has its stored answer.
- ``expiry``: no lot that expired more than ``EXPIRY_GRACE`` ago still holds points (the
  expiry job runs every minute in the worker, or hourly from cron: a lot it has not reached
  yet on a live database is not a violation; one forgotten for an hour is).
- ``expiry-entries``: every ``expire`` entry names (source ``expiry``/<lot id>) a lot of
  the same account that had expired when the entry was written, takes no more than the lot's
  amount, and leaves the lot empty.
- ``outbox``: no row of a missing merchant, no unknown status, no lease that expired a full
  lease ago and that no worker took back though one went round since (a worker is alive
  but not delivering; with no worker seen since the lease ran out, the row waits).

On PostgreSQL the rules run in one REPEATABLE READ snapshot, on SQLite in one read
transaction, so a busy database is checked at one instant.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import String, and_, case, cast, func, literal, select
from sqlalchemy.orm import Session, aliased

from fidelia.kit.clock import now
from fidelia.kit.db import Database
from fidelia.messaging.outbox import LEASE
from fidelia.models import (
    Balance,
    Customer,
    IdempotencyKey,
    LedgerEntry,
    Order,
    OrderRefund,
    OutboxMessage,
    Pin,
    Redemption,
    Tenant,
    WorkerHeartbeat,
)

OUTBOX_STATUSES = ("pending", "sent", "failed")
# How late the expiry job may be before a lot still holding points past its expiry counts
# as a violation (the job runs every minute in the worker; cron should run it hourly).
EXPIRY_GRACE = timedelta(hours=1)


@dataclass(frozen=True)
class Problem:
    rule: str
    detail: str


@dataclass
class Report:
    checked: dict[str, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, rule: str, detail: str) -> None:
        self.problems.append(Problem(rule, detail))

    def by_rule(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = defaultdict(list)
        for problem in self.problems:
            grouped[problem.rule].append(problem.detail)
        return dict(grouped)

    def render(self, limit: int = 20) -> str:
        seen = ", ".join(f"{count} {what}" for what, count in self.checked.items())
        if self.ok:
            return f"ok: {seen}"
        lines = [f"FAILED: {len(self.problems)} invariant violation(s) in {seen}"]
        for rule, details in self.by_rule().items():
            lines.append(f"{rule}: {len(details)}")
            lines.extend(f"  - {detail}" for detail in details[:limit])
            if len(details) > limit:
                lines.append(f"  ... and {len(details) - limit} more")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "violations": len(self.problems),
            "problems": self.by_rule(),
        }


def check_database(url: str, lease: timedelta = LEASE) -> Report:
    """Run every rule on the database at ``url`` in one snapshot (``lease``: the outbox
    workers' lease, ``FIDELIA_OUTBOX_LEASE_SECONDS``)."""
    db = Database(url, pool_size=1)
    try:
        if db.is_sqlite:
            with db.session(readonly=True) as session:
                return check(session, lease)
        snapshot = db.engine.execution_options(isolation_level="REPEATABLE READ")
        with Session(snapshot) as session:
            try:
                return check(session, lease)
            finally:
                session.rollback()
    finally:
        db.dispose()


def check(session: Session, lease: timedelta = LEASE) -> Report:
    report = Report()
    report.checked = {
        "balances": _count(session, Balance),
        "entries": _count(session, LedgerEntry),
        "pins": _count(session, Pin),
        "redemptions": _count(session, Redemption),
        "orders": _count(session, Order),
        "outbox rows": _count(session, OutboxMessage),
    }
    _balances(session, report)
    _chains(session, report)
    _lots(session, report)
    _entries(session, report)
    _pins(session, report)
    _sources(session, report)
    _idempotency(session, report)
    _expiry(session, report)
    _outbox(session, report, lease)
    return report


def _count(session: Session, model: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


ACCOUNT = (LedgerEntry.program_id, LedgerEntry.customer_id, LedgerEntry.account)


def _account_sums() -> Any:
    return (
        select(*ACCOUNT, func.sum(LedgerEntry.amount).label("total")).group_by(*ACCOUNT).subquery()
    )


def _joins_account(sums: Any) -> Any:
    return and_(
        sums.c.program_id == Balance.program_id,
        sums.c.customer_id == Balance.customer_id,
        sums.c.account == Balance.account,
    )


def _balances(session: Session, report: Report) -> None:
    sums = _account_sums()
    total = func.coalesce(sums.c.total, 0)
    rows = session.execute(
        select(Balance.program_id, Balance.customer_id, Balance.account, Balance.amount, total)
        .outerjoin(sums, _joins_account(sums))
        .where(Balance.amount != total)
    )
    for program, customer, account, amount, entries in rows:
        report.add(
            "balance-sum",
            f"program {program} customer {customer} {account}: balance {amount}, "
            f"entries sum to {entries}",
        )
    orphans = session.execute(
        select(sums.c.program_id, sums.c.customer_id, sums.c.account, sums.c.total)
        .outerjoin(Balance, _joins_account(sums))
        .where(Balance.amount.is_(None))
    )
    for program, customer, account, entries in orphans:
        report.add(
            "balance-sum",
            f"program {program} customer {customer} {account}: entries sum to {entries} "
            "but there is no balance row",
        )


def _chains(session: Session, report: Report) -> None:
    running = func.sum(LedgerEntry.amount).over(partition_by=ACCOUNT, order_by=LedgerEntry.id)
    chained = select(
        LedgerEntry.id, *ACCOUNT, LedgerEntry.balance_after, running.label("running")
    ).subquery()
    rows = session.execute(
        select(chained).where(chained.c.balance_after != chained.c.running).order_by(chained.c.id)
    )
    for entry_id, program, customer, account, after, expected in rows:
        report.add(
            "balance-chain",
            f"entry {entry_id} (program {program} customer {customer} {account}): "
            f"balance_after {after}, running sum {expected}",
        )


def _lots(session: Session, report: Report) -> None:
    bad = session.execute(
        select(LedgerEntry.id, LedgerEntry.amount, LedgerEntry.remaining)
        .where(
            LedgerEntry.remaining.is_not(None),
            (LedgerEntry.remaining < 0)
            | (LedgerEntry.remaining > func.abs(LedgerEntry.amount))
            | ((LedgerEntry.amount < 0) & (LedgerEntry.remaining != 0)),
        )
        .order_by(LedgerEntry.id)
    )
    for entry_id, amount, remaining in bad:
        what = "a debit carries a lot" if amount < 0 else "remaining outside 0..amount"
        report.add("lots", f"entry {entry_id}: amount {amount}, remaining {remaining} ({what})")
    lots = (
        select(*ACCOUNT, func.sum(LedgerEntry.remaining).label("left"))
        .where(LedgerEntry.amount > 0)
        .group_by(*ACCOUNT)
        .subquery()
    )
    left = func.coalesce(lots.c.left, 0)
    expected = case((Balance.amount < 0, literal(0)), else_=Balance.amount)
    rows = session.execute(
        select(Balance.program_id, Balance.customer_id, Balance.account, Balance.amount, left)
        .outerjoin(lots, _joins_account(lots))
        .where(left != expected)
    )
    for program, customer, account, amount, remaining in rows:
        report.add(
            "lots",
            f"program {program} customer {customer} {account}: balance {amount}, "
            f"lots hold {remaining}",
        )


def _entries(session: Session, report: Report) -> None:
    overspent = session.execute(
        select(LedgerEntry.id, LedgerEntry.balance_after).where(
            LedgerEntry.kind == "redeem", LedgerEntry.balance_after < 0
        )
    )
    for entry_id, after in overspent:
        report.add("overspend", f"redemption entry {entry_id} left the balance at {after}")
    foreign = session.execute(
        select(LedgerEntry.id, LedgerEntry.program_id, Customer.id, Customer.program_id)
        .join(Customer, Customer.id == LedgerEntry.customer_id)
        .where(Customer.program_id != LedgerEntry.program_id)
    )
    for entry_id, program, customer, theirs in foreign:
        report.add(
            "entry-program",
            f"entry {entry_id} is in program {program} but customer {customer} in {theirs}",
        )


def _pins(session: Session, report: Report) -> None:
    for pin_id, code in session.execute(
        select(Pin.id, Pin.code).where(Pin.status == "used", Pin.customer_id.is_(None))
    ):
        report.add("pin-credit", f"PIN {code} (id {pin_id}) is used without a customer")
    credit = and_(LedgerEntry.source_type == "pin", LedgerEntry.source_id == cast(Pin.id, String))
    counted = session.execute(
        select(Pin.id, Pin.code, func.count(LedgerEntry.id))
        .outerjoin(LedgerEntry, credit)
        .where(Pin.status == "used")
        .group_by(Pin.id, Pin.code)
        .having(func.count(LedgerEntry.id) != 1)
    )
    for pin_id, code, credits in counted:
        report.add("pin-credit", f"used PIN {code} (id {pin_id}) has {credits} credits")
    stray = session.execute(
        select(LedgerEntry.id, LedgerEntry.source_id, Pin.status)
        .outerjoin(Pin, credit)
        .where(LedgerEntry.source_type == "pin", (Pin.id.is_(None)) | (Pin.status != "used"))
    )
    for entry_id, source_id, status in stray:
        state = f"a PIN that is {status}" if status else "no PIN"
        report.add("pin-credit", f"entry {entry_id} credits PIN id {source_id}: {state}")


def _sources(session: Session, report: Report) -> None:
    """Redemptions, orders and refunds against the entries they wrote."""
    sums: dict[tuple[str, str, str, str], int] = {}
    for source_type, source_id, kind, account, total in session.execute(
        select(
            LedgerEntry.source_type,
            LedgerEntry.source_id,
            LedgerEntry.kind,
            LedgerEntry.account,
            func.sum(LedgerEntry.amount),
        )
        .where(LedgerEntry.source_type.in_(("redemption", "order", "order-cancel", "refund")))
        .group_by(
            LedgerEntry.source_type, LedgerEntry.source_id, LedgerEntry.kind, LedgerEntry.account
        )
    ):
        sums[(source_type, source_id, kind, account)] = int(total)

    def of(source_type: str, source_id: int, kind: str, account: str = "points") -> int:
        return sums.get((source_type, str(source_id), kind, account), 0)

    for rid, points, status in session.execute(
        select(Redemption.id, Redemption.points, Redemption.status)
    ):
        taken = of("redemption", rid, "redeem")
        if taken != -points:
            report.add(
                "redemption-entries",
                f"redemption {rid} took {points} points but its entries debit {-taken}",
            )
        for account in ("points", "cashback"):
            debited = of("redemption", rid, "redeem", account)
            back = of("redemption", rid, "reverse", account)
            expected = -debited if status == "cancelled" else 0
            if back != expected:
                report.add(
                    "redemption-entries",
                    f"redemption {rid} ({status}) gave back {back} {account}, expected {expected}",
                )
    refunded: dict[int, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for refund_id, order_id, points, cashback in session.execute(
        select(OrderRefund.id, OrderRefund.order_id, OrderRefund.points, OrderRefund.cashback)
    ):
        for account, amount in (("points", points), ("cashback", cashback)):
            if of("refund", refund_id, "reverse", account) != -amount:
                report.add(
                    "order-entries",
                    f"refund {refund_id} of order {order_id} reversed {amount} {account} "
                    f"but its entries say {-of('refund', refund_id, 'reverse', account)}",
                )
        before = refunded[order_id]
        refunded[order_id] = (before[0] + points, before[1] + cashback)
    for order_id, earned_p, earned_c, rev_p, rev_c in session.execute(
        select(
            Order.id,
            Order.earned_points,
            Order.earned_cashback,
            Order.reversed_points,
            Order.reversed_cashback,
        )
    ):
        by_refunds = refunded.get(order_id, (0, 0))
        for account, earned, reversed_, refund_part in (
            ("points", earned_p, rev_p, by_refunds[0]),
            ("cashback", earned_c, rev_c, by_refunds[1]),
        ):
            if of("order", order_id, "earn", account) != earned:
                report.add(
                    "order-entries",
                    f"order {order_id} earned {earned} {account} but its entries credit "
                    f"{of('order', order_id, 'earn', account)}",
                )
            by_cancel = -of("order-cancel", order_id, "reverse", account)
            if refund_part + by_cancel != reversed_:
                report.add(
                    "order-entries",
                    f"order {order_id} reversed {reversed_} {account} but its entries debit "
                    f"{refund_part + by_cancel}",
                )


def _idempotency(session: Session, report: Report) -> None:
    for key_id, scope, key in session.execute(
        select(IdempotencyKey.id, IdempotencyKey.scope, IdempotencyKey.key).where(
            IdempotencyKey.response.is_(None)
        )
    ):
        report.add("idempotency-answer", f"key {key!r} ({scope}, id {key_id}) has no answer")


def _expiry(session: Session, report: Report) -> None:
    late = session.execute(
        select(LedgerEntry.id, LedgerEntry.expires_at, LedgerEntry.remaining)
        .where(
            LedgerEntry.remaining > 0,
            LedgerEntry.amount > 0,
            LedgerEntry.expires_at < now() - EXPIRY_GRACE,
        )
        .order_by(LedgerEntry.id)
    )
    for lot_id, expires_at, remaining in late:
        report.add(
            "expiry",
            f"lot {lot_id} expired at {expires_at:%Y-%m-%d %H:%M:%S} UTC "
            f"and still holds {remaining} (is the expiry job running?)",
        )
    lot = aliased(LedgerEntry)
    rows = session.execute(
        select(
            LedgerEntry.id,
            LedgerEntry.source_type,
            LedgerEntry.source_id,
            LedgerEntry.amount,
            LedgerEntry.created_at,
            lot.id,
            lot.amount,
            lot.remaining,
            lot.expires_at,
        )
        .outerjoin(
            lot,
            and_(
                LedgerEntry.source_id == cast(lot.id, String),
                lot.program_id == LedgerEntry.program_id,
                lot.customer_id == LedgerEntry.customer_id,
                lot.account == LedgerEntry.account,
            ),
        )
        .where(LedgerEntry.kind == "expire")
        .order_by(LedgerEntry.id)
    )
    for entry_id, source_type, source_id, amount, at, lot_id, lot_amount, left, expires in rows:
        what = f"expire entry {entry_id} ({source_type} {source_id})"
        if source_type != "expiry" or lot_id is None:
            report.add("expiry-entries", f"{what} names no lot of its account")
        elif expires is None or expires > at:
            report.add("expiry-entries", f"{what}: lot {lot_id} had not expired when written")
        elif not 0 < -amount <= lot_amount:
            report.add("expiry-entries", f"{what} takes {-amount} of a lot of {lot_amount}")
        elif left != 0:
            report.add("expiry-entries", f"{what}: lot {lot_id} still holds {left}")


def _outbox(session: Session, report: Report, lease: timedelta) -> None:
    orphans = session.execute(
        select(OutboxMessage.id, OutboxMessage.tenant_id)
        .outerjoin(Tenant, Tenant.id == OutboxMessage.tenant_id)
        .where(OutboxMessage.tenant_id.is_not(None), Tenant.id.is_(None))
    )
    for row_id, tenant_id in orphans:
        report.add("outbox", f"row {row_id} belongs to merchant {tenant_id}, which does not exist")
    for row_id, status in session.execute(
        select(OutboxMessage.id, OutboxMessage.status).where(
            OutboxMessage.status.not_in(OUTBOX_STATUSES)
        )
    ):
        report.add("outbox", f"row {row_id} has an unknown status {status!r}")
    # A lease that ran out is only a fault if a worker has gone round since, a full lease
    # later, without taking the row back. With no worker seen since (a database restored to
    # an instant, or every worker stopped), the row simply waits for the next one: /readyz
    # reports that, it is not a violation of the data.
    seen = session.scalar(select(func.max(WorkerHeartbeat.at)))
    if seen is None:
        return
    stale = session.execute(
        select(OutboxMessage.id, OutboxMessage.locked_until).where(
            OutboxMessage.status == "pending",
            OutboxMessage.locked_until < now() - lease,
            OutboxMessage.locked_until < seen - lease,
        )
    )
    last = seen.isoformat(timespec="seconds")
    for row_id, until in stale:
        when = until.isoformat(timespec="seconds") if until else "?"
        report.add(
            "outbox",
            f"row {row_id}: its lease ran out at {when} and no worker has taken it back"
            f" (a worker was seen at {last})",
        )
