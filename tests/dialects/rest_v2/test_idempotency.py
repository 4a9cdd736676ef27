"""The Idempotency-Key header on every /v2 write: the first answer is replayed (same status,
same body, ``Idempotent-Replayed: true``) and the effect happens once; the same key for
another request is 422 ``idempotency_key_reused``; refusals are not kept. The parallel case
(30 identical sales at once on PostgreSQL) is in test_races.py."""

from fidelia.models import (
    Category,
    Customer,
    IdempotencyKey,
    LedgerEntry,
    Order,
    Reward,
    VoucherUse,
)
from tests.dialects.rest_v2.conftest import (
    ANA,
    BIA,
    CATEGORIES,
    COUPONS,
    CUSTOMERS,
    SALES,
    VOUCHERS,
    add_coupon,
    count,
    create_customer,
    error,
    wallet,
)
from tests.dialects.rest_v2.test_vouchers import make_voucher
from tests.support.helpers import ledger_invariants


def keyed(key: str, headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


def twice(client, method, url, headers, key, body):
    """The same request twice with one key: both answers, the second a replay."""
    first = client.request(method, url, headers=keyed(key, headers), json=body)
    again = client.request(method, url, headers=keyed(key, headers), json=body)
    assert first.status_code < 300, first.text
    assert again.status_code == first.status_code
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    return first


def test_a_sale_without_external_id_is_idempotent_with_the_header(client, db, shop, headers):
    create_customer(client, headers)
    first = twice(client, "POST", SALES, headers, "sale-1", {"cpf": ANA, "sale_amount": "100.00"})
    assert first.status_code == 201
    assert count(db, Order) == 1 and count(db, LedgerEntry) == 2
    assert wallet(db, shop) == (100, 500)
    # The same key for another sale changes nothing.
    other = client.post(
        SALES, headers=keyed("sale-1", headers), json={"cpf": ANA, "sale_amount": "99.00"}
    )
    error(other, 422, "idempotency_key_reused")
    # A new key for a sale whose external_id is known replays that sale.
    with_id = {"cpf": ANA, "sale_amount": "5.00", "external_id": "NF-1"}
    sold = client.post(SALES, headers=keyed("k-a", headers), json=with_id)
    retried = client.post(SALES, headers=keyed("k-b", headers), json=with_id)
    assert retried.status_code == 201 and retried.json() == sold.json()
    assert retried.headers["Idempotent-Replayed"] == "true"
    again = client.post(SALES, headers=keyed("k-b", headers), json=with_id)
    assert again.json() == sold.json()
    error(sale_reused := client.post(SALES, headers=headers, json={**with_id, "cpf": BIA}), 422,
          "external_id_reused")  # fmt: skip
    assert "NF-1" in sale_reused.json()["error"]["message"]
    assert wallet(db, shop) == (105, 525)
    assert count(db, Order) == 2
    assert ledger_invariants(db) == []


def test_every_write_honours_the_key(client, db, shop, headers):
    created = twice(
        client,
        "POST",
        CUSTOMERS,
        headers,
        "c-1",
        {"name": "Ana", "cpf": ANA, "phone": "11987654321"},
    )
    assert created.status_code == 201
    assert created.headers["Location"] == f"{CUSTOMERS}/{created.json()['id']}"
    assert count(db, Customer) == 1

    url = f"{CUSTOMERS}/{created.json()['id']}"
    patched = twice(client, "PATCH", url, headers, "c-2", {"email": "ana@example.com"})
    assert patched.json()["email"] == "ana@example.com"

    coupon = add_coupon(db, shop, stock=5)
    stock = f"{COUPONS}/{coupon}/stock"
    assert twice(client, "PATCH", stock, headers, "s-1", {"adjust": -1}).json()["stock"] == 4
    assert twice(client, "PUT", stock, headers, "s-2", {"adjust": -1}).json()["stock"] == 3
    with db.session(readonly=True) as session:
        assert session.get_one(Reward, coupon).stock == 3

    code = make_voucher(db, shop, value=1000, max_uses=3)
    path_form = twice(client, "POST", f"{VOUCHERS}/{code}/validate", headers, "v-1", {})
    assert path_form.json()["uses"] == 1
    body_form = twice(client, "POST", f"{VOUCHERS}/validate", headers, "v-2", {"code": code})
    assert body_form.json()["uses"] == 2
    assert count(db, VoucherUse) == 2

    made = twice(client, "POST", CATEGORIES, headers, "cat-1", {"name": "Bebidas"})
    assert made.status_code == 201 and count(db, Category) == 1

    # A key is the merchant's, across endpoints: used elsewhere, it is refused.
    error(client.post(CATEGORIES, headers=keyed("c-1", headers), json={"name": "Ana"}), 422,
          "idempotency_key_reused")  # fmt: skip
    assert count(db, Category) == 1


def test_refusals_are_not_kept(client, db, shop, headers):
    coupon = add_coupon(db, shop, stock=5)
    url = f"{COUPONS}/{coupon}/stock"
    refused = client.patch(url, headers=keyed("take-10", headers), json={"adjust": -10})
    error(refused, 409, "insufficient_stock")
    assert client.patch(url, headers=headers, json={"stock": 20}).status_code == 200
    taken = client.patch(url, headers=keyed("take-10", headers), json={"adjust": -10})
    assert taken.status_code == 200 and taken.json()["stock"] == 10
    assert "Idempotent-Replayed" not in taken.headers
    assert count(db, IdempotencyKey) == 1


def test_keys_are_per_merchant_and_well_formed(client, db, shop, headers):
    from tests.dialects.rest_v2.conftest import auth, make_merchant

    other = auth(client, make_merchant(db, slug="outra"))
    body = {"name": "Bebidas"}
    assert client.post(CATEGORIES, headers=keyed("same", headers), json=body).status_code == 201
    theirs = client.post(CATEGORIES, headers=keyed("same", other), json=body)
    assert theirs.status_code == 201 and "Idempotent-Replayed" not in theirs.headers
    for key in ("x" * 201, " "):
        error(client.post(CATEGORIES, headers=keyed(key, headers), json={"name": "Y"}), 422,
              "invalid_idempotency_key")  # fmt: skip
    assert count(db, Category) == 2
