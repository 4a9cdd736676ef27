"""Issue 14: what a retail sale sends to the database. On PostgreSQL the member is looked up
in the transaction id's idempotency claim (one statement), and the order's id is taken from
its sequence when the sale opens (with the member's lock), so the order is written with its
confirmation code: no ``UPDATE orders`` after it. The code still finds and cancels the
sale, and the member is the one the lookup order names, on both databases."""

from typing import Any

from sqlalchemy import select

from fidelia.kit.db import Database
from fidelia.models import Order
from tests.dialects.retail_v1.conftest import (
    ANA,
    BIA,
    count,
    error,
    make_shop,
    ok,
    post,
    register,
    sale,
)
from tests.support.helpers import ledger_invariants, sent, sent_by_driver

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
        # The claim, the member's lock (and the order's id), the order, its credit(s), the
        # stored answer: the member found by the claim's statement.
        claims = [s for s in statements if "INSERT INTO idempotency_keys" in s]
        assert len(claims) == 1 and "JOIN customers" in claims[0]
        assert not [s for s in statements if s.startswith("SELECT customer_identifiers")]
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


def test_the_member_is_the_first_identifier_that_names_one(client: Any, db: Database) -> None:
    shop = make_shop(db)
    ana = register(client, shop)
    bia = register(client, shop, phoneNumber=BIA, email="bia@example.com")
    both = {"phoneNumber": ANA, "email": "bia@example.com"}  # the phone number comes first
    assert ok(sale(client, shop, "T-1", 1_000, both))["data"]["memberId"] == ana["memberId"]
    later = {"externalId": "nobody", "email": "bia@example.com"}  # the e-mail, then the id
    assert ok(sale(client, shop, "T-2", 1_000, later))["data"]["memberId"] == bia["memberId"]
    unknown = sale(client, shop, "T-3", 1_000, {"email": "nobody@example.com"})
    error(unknown, 400, "4001012", "body.member.email")
    bad = sale(client, shop, "T-4", 1_000, {"phoneNumber": "12"})
    error(bad, 400, "1001", "body.member.phoneNumber")
    assert count(db, Order) == 2  # the refused sales wrote nothing
    # Refusals are not stored: the same transaction id, for a known member, goes through.
    assert (
        ok(sale(client, shop, "T-3", 1_000, {"phoneNumber": BIA}))["data"]["memberId"]
        == (bia["memberId"])
    )


def test_the_sale_s_statements_skip_sqlalchemy_s_execution_layer(client: Any, db: Database) -> None:
    """PostgreSQL: the claim (with the lookup), the opening, the order, its credits (points
    and cashback) and the stored answer are sent on the driver's connection (kit/driver);
    the answer is the same."""
    shop = make_shop(db)
    register(client, shop)
    answer, by_driver = sent_by_driver(db, lambda: sale(client, shop, "T-1", 12_345, MEMBER))
    assert ok(answer)["data"]["earned"] == {"points": 123, "credit": 617}
    if db.engine.dialect.name == "postgresql":
        first_words = [s.split(" ")[0] for s in by_driver]
        assert first_words == ["WITH", "SELECT", "INSERT", "WITH", "WITH", "UPDATE"]
        assert "INSERT INTO idempotency_keys" in by_driver[0]
        assert "INSERT INTO orders" in by_driver[2] and "idempotency_keys" in by_driver[5]
        for credit in by_driver[3:5]:
            assert credit.startswith("WITH added AS (INSERT INTO balances")
            assert "INSERT INTO ledger_entries" in credit
    else:
        assert by_driver == []
    again = sale(client, shop, "T-1", 12_345, MEMBER)  # the stored answer, replayed
    assert again.json() == answer.json()
