"""Issue 14: what a retail sale sends to the database. On PostgreSQL the order's id is taken
from its sequence when the sale opens (with the member's lock), so the order is written
with its confirmation code: no ``UPDATE orders`` after it. The code still finds and cancels
the sale, on both databases."""

from typing import Any

from sqlalchemy import select

from fidelia.kit.db import Database
from fidelia.models import Order
from tests.dialects.retail_v1.conftest import ANA, make_shop, ok, post, register, sale
from tests.support.helpers import ledger_invariants, sent

MEMBER = {"phoneNumber": ANA}


def test_a_sale_is_written_with_its_confirmation_code(client: Any, db: Database) -> None:
    shop = make_shop(db)
    register(client, shop)
    ok(sale(client, shop, "T-0", 1_000, MEMBER))
    answer, statements = sent(db, lambda: sale(client, shop, "T-1", 12_345, MEMBER))
    data = ok(answer)["data"]
    code = data["confirmationCode"]
    with db.session(readonly=True) as session:
        order = session.scalars(select(Order).where(Order.original_id == "T-1")).one()
        assert code.startswith(f"TX-{order.id}-")
        assert order.details["confirmation_code"] == code
        assert list(order.details)[-1] == "confirmation_code"  # last, as it always was
        assert order.customer_id == int(data["memberId"])
    inserts = [s for s in statements if s.startswith("INSERT INTO orders")]
    assert len(inserts) == 1
    if db.engine.dialect.name == "postgresql":
        assert not [s for s in statements if s.startswith("UPDATE orders")], statements
        assert "INSERT INTO orders (id," in inserts[0]
        opening = [s for s in statements if "nextval" in s]
        assert len(opening) == 1 and "FOR UPDATE OF customers" in opening[0]
    # The code finds the sale: cancelled once, with everything it earned.
    cancelled = ok(post(client, shop, "/transaction/cancel", {"confirmationCode": code}))
    assert cancelled["data"]["reversed"] == {"points": 123, "credit": 617}
    assert ledger_invariants(db) == []


def test_an_anonymous_sale_keeps_its_code(client: Any, db: Database) -> None:
    shop = make_shop(db)
    code = ok(sale(client, shop, "T-1", 5_000))["data"]["confirmationCode"]
    with db.session(readonly=True) as session:
        order = session.scalars(select(Order).where(Order.original_id == "T-1")).one()
        assert code.startswith(f"TX-{order.id}-")
        assert order.details["confirmation_code"] == code
    cancelled = ok(post(client, shop, "/transaction/cancel", {"confirmationCode": code}))
    assert cancelled["data"]["status"] == "cancelled"
