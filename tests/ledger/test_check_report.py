"""The report of ``fidelia check`` (fidelia/ops/check.py, ``Report``) as the CLI prints it
(``render``) and as ``--json`` gives it (``as_dict``), word for word: what was counted,
each broken rule with its violations, cut at ``limit`` per rule."""

import pytest
from sqlalchemy import update

from fidelia.kit import clock
from fidelia.models import Balance
from fidelia.ops.check import Report, check
from tests.ledger.common import T0, earn, member, shop


@pytest.fixture(autouse=True)
def _frozen():
    clock.freeze(T0)
    yield
    clock.freeze(None)


def report(db) -> Report:
    with db.session(readonly=True) as session:
        return check(session)


def test_a_sound_ledger_is_ok_with_what_was_counted(db):
    tenant = shop(db)
    earn(db, tenant, member(db, tenant), 10, "a")
    earn(db, tenant, member(db, tenant, "+50688886666"), 5, "b")
    sound = report(db)
    counted = "2 balances, 2 entries, 0 pins, 0 redemptions, 0 orders, 0 outbox rows"
    assert sound.render() == f"ok: {counted}"
    assert sound.as_dict() == {
        "ok": True,
        "checked": {
            "balances": 2,
            "entries": 2,
            "pins": 0,
            "redemptions": 0,
            "orders": 0,
            "outbox rows": 0,
        },
        "violations": 0,
        "problems": {},
    }


def test_each_broken_rule_is_listed_with_its_violations_cut_at_the_limit(db):
    tenant = shop(db)
    ana = member(db, tenant)
    bia = member(db, tenant, "+50688886666")
    cid = member(db, tenant, "+50688885555")
    for n, who in enumerate((ana, bia, cid)):
        earn(db, tenant, who, 10 + n, f"e{n}")
    with db.session() as session:  # three balances behind the ledger's back
        session.execute(update(Balance).values(amount=Balance.amount + 1))
    broken = report(db)
    p = ana.program_id
    a, b, c = ana.customer_id, bia.customer_id, cid.customer_id
    sums = [
        f"program {p} customer {a} points: balance 11, entries sum to 10",
        f"program {p} customer {b} points: balance 12, entries sum to 11",
        f"program {p} customer {c} points: balance 13, entries sum to 12",
    ]
    held = [
        f"program {p} customer {a} points: balance 11, lots hold 10",
        f"program {p} customer {b} points: balance 12, lots hold 11",
        f"program {p} customer {c} points: balance 13, lots hold 12",
    ]
    assert sorted(broken.by_rule()["balance-sum"]) == sums
    assert sorted(broken.by_rule()["lots"]) == held
    broken.problems.sort(key=lambda problem: (problem.rule != "balance-sum", problem.detail))
    counted = "3 balances, 3 entries, 0 pins, 0 redemptions, 0 orders, 0 outbox rows"
    assert broken.render(limit=2) == "\n".join(
        [
            f"FAILED: 6 invariant violation(s) in {counted}",
            "balance-sum: 3",
            f"  - {sums[0]}",
            f"  - {sums[1]}",
            "  ... and 1 more",
            "lots: 3",
            f"  - {held[0]}",
            f"  - {held[1]}",
            "  ... and 1 more",
        ]
    )
    assert broken.render(limit=3) == "\n".join(
        [f"FAILED: 6 invariant violation(s) in {counted}", "balance-sum: 3"]
        + [f"  - {line}" for line in sums]
        + ["lots: 3"]
        + [f"  - {line}" for line in held]
    )
    assert broken.as_dict() == {
        "ok": False,
        "checked": {
            "balances": 3,
            "entries": 3,
            "pins": 0,
            "redemptions": 0,
            "orders": 0,
            "outbox rows": 0,
        },
        "violations": 6,
        "problems": {"balance-sum": sums, "lots": held},
    }
