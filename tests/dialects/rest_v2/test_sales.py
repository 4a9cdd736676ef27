"""POST /v2/sales: a completed order in the orders engine, earning points and cashback by
the merchant's rules; idempotent on external_id; amounts validated as currency."""

from sqlalchemy import select

from fidelia.models import LedgerEntry, Order
from fidelia.tenants.service import set_setting
from tests.dialects.rest_v2.conftest import (
    ANA,
    BIA,
    CUSTOMERS,
    SALES,
    count,
    create_customer,
    error,
    page,
    sale,
    wallet,
)
from tests.support.helpers import ledger_invariants

FIELDS = {
    "id",
    "external_id",
    "customer_id",
    "sale_amount",
    "currency",
    "status",
    "earned",
    "balance",
    "sold_at",
    "created_at",
}


def test_sale_by_cpf_earns_points_and_cashback(client, db, shop, headers):
    ana = create_customer(client, headers)
    response = sale(client, headers, "150.00", external_id="NF-1")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == FIELDS
    assert body["customer_id"] == ana["id"]
    assert body["external_id"] == "NF-1"
    assert body["sale_amount"] == "150.00" and body["currency"] == "BRL"
    assert body["status"] == "completed"
    assert body["earned"] == {"points": 150, "cashback": "7.50"}
    assert body["balance"] == {"points": 150, "cashback": "7.50", "currency": "BRL"}
    second = sale(client, headers, 49.9, customer_id=ana["id"]).json()
    assert second["external_id"] is None and second["sale_amount"] == "49.90"
    assert second["earned"] == {"points": 49, "cashback": "2.49"}  # rounded down
    assert second["balance"] == {"points": 199, "cashback": "9.99", "currency": "BRL"}
    assert wallet(db, shop) == (199, 999)
    customer = client.get(f"{CUSTOMERS}/{ana['id']}", headers=headers).json()
    assert customer["balance"] == second["balance"]
    assert ledger_invariants(db) == []


def test_first_sale_for_a_cpf_enrols_the_customer(client, db, shop, headers):
    response = sale(client, headers, "20.00", cpf="111.444.777-35")
    assert response.status_code == 201, response.text
    (found,) = page(client.get(CUSTOMERS, headers=headers, params={"cpf": BIA}), total=1)
    assert found["id"] == response.json()["customer_id"]
    assert found["balance"]["points"] == 20 and found["name"] is None
    assert sale(client, headers, "1.00", cpf=BIA).json()["customer_id"] == found["id"]


def test_the_same_external_id_replays(client, db, shop, headers):
    create_customer(client, headers)
    first = sale(client, headers, "100.00", external_id="NF-9")
    again = sale(client, headers, "100.00", external_id="NF-9")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert wallet(db, shop) == (100, 500)
    assert count(db, Order) == 1
    assert count(db, LedgerEntry) == 2  # one points entry, one cashback entry
    # The same id for another sale is refused, and changes nothing.
    error(sale(client, headers, "101.00", external_id="NF-9"), 422, "external_id_reused")
    error(sale(client, headers, "100.00", cpf=BIA, external_id="NF-9"), 422, "external_id_reused")
    # Without an external_id, each call is a new sale.
    sale(client, headers, "1.00")
    sale(client, headers, "1.00")
    assert wallet(db, shop) == (102, 510)
    assert ledger_invariants(db) == []


def test_external_ids_do_not_collide_with_pos_orders(client, db, shop, headers):
    """The POS door's OriginalId and this door's external_id are separate namespaces."""
    import base64

    basic = base64.b64encode(f"{shop.api_key}:{shop.api_secret}".encode()).decode()
    pos = client.post(
        "/v1/pvt/POS/orders",
        headers={"Authorization": f"Basic {basic}"},
        json={
            "OriginalId": "123",
            "OrderTotal": "10.00",
            "IsCompleted": True,
            "Customer": {"Document": ANA},
        },
    )
    assert pos.status_code == 200, pos.text
    v2 = sale(client, headers, "20.00", external_id="123")
    assert v2.status_code == 201 and v2.json()["earned"]["points"] == 20
    assert wallet(db, shop) == (30, 150)
    with db.session(readonly=True) as session:
        assert set(session.scalars(select(Order.original_id))) == {"123", "v2:123"}


def test_minimum_order_value(client, db, shop, headers):
    with db.session() as session:
        set_setting(session, shop.slug, "min_order_value", "50.00")
    below = sale(client, headers, "49.99").json()
    assert below["earned"] == {"points": 0, "cashback": "0.00"}
    assert sale(client, headers, "50.00").json()["earned"] == {"points": 50, "cashback": "2.50"}
    assert sale(client, headers, "0").json()["earned"]["points"] == 0


def test_sold_at(client, headers):
    body = sale(client, headers, "5.00", sold_at="2026-05-07T10:30:00-03:00").json()
    assert body["sold_at"] == "2026-05-07T13:30:00Z"
    error(sale(client, headers, "5.00", sold_at="2026-05-07T10:30:00"), 422, "invalid_request")


def test_invalid_amounts(client, db, headers):
    for amount in ("-1.00", -5, "NaN", "nan", "Infinity", "-Infinity", "1.001", "abc", "", "1e400"):
        error(sale(client, headers, amount), 422, "invalid_amount")
    error(client.post(SALES, headers=headers, json={"cpf": ANA}), 422, "invalid_request")
    for amount in (None, True, [1], {"value": 1}):
        error(sale(client, headers, amount), 422, "invalid_request")
    assert count(db, Order) == 0


def test_customer_errors(client, headers):
    ana = create_customer(client, headers)
    bia = create_customer(client, headers, name="Bia", phone="11912345678", cpf=BIA)
    error(
        client.post(SALES, headers=headers, json={"sale_amount": "1.00"}), 422, "customer_required"
    )
    error(sale(client, headers, customer_id=999999), 404, "customer_not_found")
    error(sale(client, headers, customer_id=0), 422, "invalid_request")
    error(sale(client, headers, cpf="123.456.789-00"), 422, "invalid_document")
    error(sale(client, headers, cpf="ana@example.com"), 422, "invalid_document")
    mismatch = sale(client, headers, cpf=BIA, customer_id=ana["id"])
    error(mismatch, 409, "customer_mismatch")
    both = sale(client, headers, "1.00", cpf=BIA, customer_id=bia["id"])
    assert both.status_code == 201 and both.json()["customer_id"] == bia["id"]


def test_identifiers_as_numbers_or_strings(client, db, shop, headers):
    """Where the guide gives no type, a number or a string; a boolean is never a number."""
    ana = create_customer(client, headers)
    by_text_id = sale(client, headers, "10.00", customer_id=str(ana["id"]), external_id=1001)
    assert by_text_id.status_code == 201, by_text_id.text
    assert by_text_id.json()["customer_id"] == ana["id"]
    assert by_text_id.json()["external_id"] == "1001"
    replay = sale(client, headers, "10.00", customer_id=ana["id"], external_id="1001")
    assert replay.headers["Idempotent-Replayed"] == "true"
    by_number = client.post(SALES, headers=headers, json={"document": int(ANA), "sale_amount": 5})
    assert by_number.status_code == 201 and by_number.json()["customer_id"] == ana["id"]
    for body in (
        {"customer_id": True},
        {"customer_id": "abc"},
        {"cpf": True},
        {"customer_id": ana["id"], "external_id": False},
        {"cpf": ANA, "document": BIA},
    ):
        error(client.post(SALES, headers=headers, json={"sale_amount": "1.00", **body}), 422,
              "invalid_request")  # fmt: skip
    assert wallet(db, shop) == (15, 75)
    assert count(db, Order) == 2
