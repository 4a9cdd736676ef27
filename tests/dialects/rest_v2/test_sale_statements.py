"""Issue 14: what a ``/v2`` sale sends to the database. A new sale is one order statement
that also locks its customer (PostgreSQL), its credits answer both balances, so there is
no customer lock, order ``UPDATE`` or balance read of their own; the customer of a sale by
CPF is found by the ``external_id``'s claim (PostgreSQL: one statement); and the answer's
balances are the stored ones, on both databases."""

from typing import Any

from fidelia.kit.db import Database
from tests.dialects.rest_v2.conftest import Merchant, create_customer, sale, wallet
from tests.support.helpers import sent, sent_by_driver


def test_a_sale_answers_the_stored_balances_without_reading_them(
    client: Any, headers: dict[str, str], db: Database, shop: Merchant
) -> None:
    create_customer(client, headers)
    assert sale(client, headers, "100.00", external_id="NF-1").status_code == 201
    response, statements = sent(db, lambda: sale(client, headers, "150.00", external_id="NF-2"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["earned"] == {"points": 150, "cashback": "7.50"}
    assert body["balance"] == {"points": 250, "cashback": "12.50", "currency": "BRL"}
    assert wallet(db, shop) == (250, 1250)
    assert not [s for s in statements if s.startswith("UPDATE orders")]
    inserts = [s for s in statements if "INSERT INTO orders" in s]
    assert len(inserts) == 1
    if db.engine.dialect.name == "postgresql":
        # The customer's lock rides on the order's statement; the balances on the credits.
        assert "FOR UPDATE" in inserts[0]
        assert not [s for s in statements if s.startswith("SELECT customers.id FROM customers")]
        assert not [s for s in statements if s.startswith("SELECT balances")]
        # From the order on: the order, its two credits, the stored answer.
        tail = statements[statements.index(inserts[0]) :]
        assert len(tail) == 4, tail
        # Before it: the claim, with the customer's lookup in it.
        claims = [s for s in statements if "INSERT INTO idempotency_keys" in s]
        assert len(claims) == 1 and "JOIN customers" in claims[0]
        assert not [s for s in statements if s.startswith("SELECT customers.id, customers.")]


def test_a_known_sale_replays_without_earning_again(
    client: Any, headers: dict[str, str], db: Database, shop: Merchant
) -> None:
    create_customer(client, headers)
    first = sale(client, headers, "100.00", external_id="NF-1")
    again = sale(client, headers, "100.00", external_id="NF-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert wallet(db, shop) == (100, 500)


def test_a_first_sale_by_cpf_enrols_its_customer_after_the_claim(
    client: Any, headers: dict[str, str], db: Database, shop: Merchant
) -> None:
    """The claim's read finds no one: the customer is enrolled, then found by the next."""
    first = sale(client, headers, "100.00", external_id="NF-1")
    assert first.status_code == 201, first.text
    second = sale(client, headers, "50.00", external_id="NF-2")
    assert second.status_code == 201, second.text
    assert second.json()["customer_id"] == first.json()["customer_id"]
    assert second.json()["balance"]["points"] == 150
    assert wallet(db, shop) == (150, 750)


def test_the_sale_s_statements_skip_sqlalchemy_s_execution_layer(
    client: Any, headers: dict[str, str], db: Database, shop: Merchant
) -> None:
    """PostgreSQL: the claim (with the lookup), the order, its credits (points and
    cashback) and the stored answer are sent on the driver's connection (kit/driver); a
    replay answers the same."""
    create_customer(client, headers)
    response, by_driver = sent_by_driver(
        db, lambda: sale(client, headers, "100.00", external_id="NF-1")
    )
    assert response.status_code == 201, response.text
    if db.engine.dialect.name == "postgresql":
        assert len(by_driver) == 5, by_driver
        assert "INSERT INTO idempotency_keys" in by_driver[0] and "customers" in by_driver[0]
        assert "INSERT INTO orders" in by_driver[1]
        for credit in by_driver[2:4]:
            assert credit.startswith("WITH added AS (INSERT INTO balances")
            assert "INSERT INTO ledger_entries" in credit
        assert by_driver[4].startswith("UPDATE idempotency_keys")
    else:
        assert by_driver == []
    again = sale(client, headers, "100.00", external_id="NF-1")
    assert again.status_code == 201 and again.json() == response.json()
    assert wallet(db, shop) == (100, 500)
