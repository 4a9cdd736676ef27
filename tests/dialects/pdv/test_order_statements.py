"""Issue 14: what a POS order sends to the database. A new complete order is one statement
that also locks its customer (PostgreSQL): no customer lock nor order ``UPDATE`` of their
own; an order completed later (pending first) is still locked before its customer."""

from typing import Any

from sqlalchemy import select

from fidelia.kit.db import Database
from fidelia.models import Order
from fidelia.models.order import COMPLETE
from tests.dialects.pdv.conftest import ANA, make_merchant, order, wallet
from tests.support.helpers import ledger_invariants, sent, sent_by_driver


def test_a_new_complete_order_is_one_statement(client: Any, db: Database) -> None:
    merchant = make_merchant(db)
    order(client, merchant, "PDV-0", "10.00")  # the customer enrolled
    result, statements = sent(db, lambda: order(client, merchant, "PDV-1", "100.00"))
    assert result["IsCompleted"] is True and result["State"] == COMPLETE
    assert result["EstimatedBonus"]["EstimatedPoints"] == 100
    assert result["Customer"]["Document"] == ANA
    assert not [s for s in statements if s.startswith("UPDATE orders")]
    inserts = [s for s in statements if "INSERT INTO orders" in s]
    assert len(inserts) == 1
    if db.engine.dialect.name == "postgresql":
        assert "FOR UPDATE" in inserts[0]
        assert not [s for s in statements if s.startswith("SELECT customers.id FROM customers")]
    with db.session(readonly=True) as session:
        stored = session.scalars(select(Order).where(Order.original_id == "PDV-1")).one()
        assert (stored.state, stored.earned_points) == (COMPLETE, 100)
        assert stored.customer_id == result["Customer"]["Id"]
        assert stored.completed_at is not None
    assert wallet(db, merchant)[0] == 110
    assert ledger_invariants(db) == []


def test_a_pending_order_completed_later_locks_it_then_its_customer(
    client: Any, db: Database
) -> None:
    merchant = make_merchant(db)
    order(client, merchant, "PDV-1", "100.00", completed=False)
    result, statements = sent(db, lambda: order(client, merchant, "PDV-1", "100.00"))
    assert result["IsCompleted"] is True
    if db.engine.dialect.name == "postgresql":
        # The order's own lock first, its customer's after (the cancellations' order): the
        # insert's lock of the customer is taken only for a row it inserted.
        order_lock = next(i for i, s in enumerate(statements) if s.startswith("SELECT orders."))
        customer_lock = next(
            i for i, s in enumerate(statements) if s.startswith("SELECT customers.id FROM")
        )
        assert "FOR UPDATE" in statements[order_lock] and order_lock < customer_lock
    assert wallet(db, merchant)[0] == 100
    assert ledger_invariants(db) == []


def test_the_order_statement_skips_sqlalchemy_s_execution_layer(client: Any, db: Database) -> None:
    """PostgreSQL: the customer's lookup, the order's statement, its credits (points and
    cashback, each the balance with its entry) and the read of the customer's identifiers
    for the answer are sent on the driver's connection (kit/driver)."""
    merchant = make_merchant(db)
    order(client, merchant, "PDV-0", "10.00")
    result, by_driver = sent_by_driver(db, lambda: order(client, merchant, "PDV-1", "100.00"))
    assert result["IsCompleted"] is True and result["EstimatedBonus"]["EstimatedPoints"] == 100
    assert result["Customer"]["Document"] == ANA
    if db.engine.dialect.name == "postgresql":
        assert len(by_driver) == 5, by_driver
        assert "JOIN customers" in by_driver[0]  # the customer by their document
        assert "INSERT INTO orders" in by_driver[1]
        for credit in by_driver[2:4]:
            assert credit.startswith("WITH added AS (INSERT INTO balances")
            assert "INSERT INTO ledger_entries" in credit
        assert by_driver[4].startswith("SELECT customer_identifiers.kind")
    else:
        assert by_driver == []
    assert wallet(db, merchant)[0] == 110
