"""Coupons (the merchant's rewards) with their stock, and categories."""

from fidelia.models import Reward
from tests.dialects.rest_v2.conftest import (
    CATEGORIES,
    COUPONS,
    add_coupon,
    auth,
    error,
    make_merchant,
    page,
)

FIELDS = {
    "id",
    "title",
    "description",
    "type",
    "points_required",
    "value",
    "min_purchase",
    "stock",
    "category_id",
    "created_at",
}


def stock(client, headers, coupon_id, **body):
    return client.patch(f"{COUPONS}/{coupon_id}/stock", headers=headers, json=body)


def test_list_and_read_coupons(client, db, shop, headers):
    fixed = add_coupon(db, shop, "R$ 10 off", min_purchase="50.00")
    percent = add_coupon(db, shop, "15% off", reward_type="percent", value="15", stock=3)
    sold_out = add_coupon(db, shop, "Caneca", reward_type="custom", value=None, stock=0)
    add_coupon(db, make_merchant(db, slug="outra"), "Not mine")
    items = page(client.get(COUPONS, headers=headers), total=3, total_pages=1)
    assert [c["id"] for c in items] == [fixed, percent, sold_out]
    assert set(items[0]) == FIELDS
    assert items[0] | {"created_at": None} == {
        "id": fixed,
        "title": "R$ 10 off",
        "description": "",
        "type": "fixed",
        "points_required": 100,
        "value": "10.00",
        "min_purchase": "50.00",
        "stock": None,
        "category_id": None,
        "created_at": None,
    }
    assert items[1]["value"] == "15.00" and items[1]["stock"] == 3
    available = page(client.get(COUPONS, headers=headers, params={"available": "true"}))
    assert [c["id"] for c in available] == [fixed, percent]
    gone = page(client.get(COUPONS, headers=headers, params={"available": "false"}))
    assert [c["id"] for c in gone] == [sold_out]
    second = page(client.get(COUPONS, headers=headers, params={"per_page": 2, "page": 2}))
    assert [c["id"] for c in second] == [sold_out]
    one = client.get(f"{COUPONS}/{percent}", headers=headers)
    assert one.status_code == 200 and one.json() == items[1]
    error(client.get(f"{COUPONS}/999999", headers=headers), 404, "coupon_not_found")


def test_set_and_adjust_stock(client, db, shop, headers):
    coupon = add_coupon(db, shop)
    error(stock(client, headers, coupon, adjust=-1), 409, "stock_not_tracked")
    answer = stock(client, headers, coupon, stock=5)
    assert answer.status_code == 200, answer.text
    assert set(answer.json()) == FIELDS and answer.json()["stock"] == 5
    assert stock(client, headers, coupon, adjust=-2).json()["stock"] == 3
    assert stock(client, headers, coupon, adjust=4).json()["stock"] == 7
    message = error(stock(client, headers, coupon, adjust=-8), 409, "insufficient_stock")
    assert "7" in message
    assert stock(client, headers, coupon, adjust=-7).json()["stock"] == 0
    error(stock(client, headers, coupon, adjust=-1), 409, "insufficient_stock")
    assert stock(client, headers, coupon, stock=None).json()["stock"] is None  # no limit
    with db.session(readonly=True) as session:
        assert session.get_one(Reward, coupon).stock is None


def test_stock_errors(client, db, shop, headers):
    coupon = add_coupon(db, shop, stock=2)
    for body in ({}, {"stock": 1, "adjust": 1}, {"stock": -1}, {"stock": "x"}, {"adjust": 1.5}):
        error(stock(client, headers, coupon, **body), 422, "invalid_request")
    error(stock(client, headers, coupon, adjust=None), 422, "invalid_request")
    error(stock(client, headers, 999999, stock=1), 404, "coupon_not_found")
    theirs = add_coupon(db, make_merchant(db, slug="outra"), stock=5)
    error(stock(client, headers, theirs, adjust=-1), 404, "coupon_not_found")
    with db.session(readonly=True) as session:
        assert session.get_one(Reward, coupon).stock == 2
        assert session.get_one(Reward, theirs).stock == 5


def test_categories(client, db, shop, headers):
    response = client.post(
        CATEGORIES, headers=headers, json={"name": " Bebidas  quentes ", "description": "Café"}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == {"id", "name", "description", "created_at"}
    assert created["name"] == "Bebidas quentes" and created["description"] == "Café"
    error(
        client.post(CATEGORIES, headers=headers, json={"name": "Bebidas quentes"}),
        409,
        "category_exists",
    )
    for body in ({}, {"name": ""}, {"name": "x" * 121}, {"name": "ok", "description": 5}):
        error(client.post(CATEGORIES, headers=headers, json=body), 422, "invalid_request")
    error(client.post(CATEGORIES, headers=headers, json={"name": "   "}), 422, "invalid_name")
    for name in ("Lanches", "Doces"):
        assert client.post(CATEGORIES, headers=headers, json={"name": name}).status_code == 201
    names = [c["name"] for c in page(client.get(CATEGORIES, headers=headers), total=3)]
    assert names == ["Bebidas quentes", "Lanches", "Doces"]
    last = page(
        client.get(CATEGORIES, headers=headers, params={"page": 2, "per_page": 2}),
        total=3,
        total_pages=2,
    )
    assert [c["name"] for c in last] == ["Doces"]
    # Another merchant has its own names and sees none of these.
    other = auth(client, make_merchant(db, slug="outra"))
    assert client.post(CATEGORIES, headers=other, json={"name": "Lanches"}).status_code == 201
    assert page(client.get(CATEGORIES, headers=other), total=1)[0]["name"] == "Lanches"
    # Coupons filter by category.
    coupon = add_coupon(db, shop)
    add_coupon(db, shop, "Other")
    with db.session() as session:
        session.get_one(Reward, coupon).category_id = created["id"]
    filtered = page(client.get(COUPONS, headers=headers, params={"category_id": created["id"]}))
    assert [c["id"] for c in filtered] == [coupon]
    assert filtered[0]["category_id"] == created["id"]


def test_put_sets_the_stock_as_patch_does(client, db, shop, headers):
    coupon = add_coupon(db, shop, stock=5)
    url = f"{COUPONS}/{coupon}/stock"
    put = client.put(url, headers=headers, json={"stock": 7})
    assert put.status_code == 200 and put.json()["stock"] == 7
    assert client.put(url, headers=headers, json={"quantity": "9"}).json()["stock"] == 9
    assert client.put(url, headers=headers, json={"delta": -2}).json()["stock"] == 7
    for body in ({"stock": True}, {"adjust": False}, {"stock": 1, "quantity": 2}, {"stock": 1.5}):
        error(client.put(url, headers=headers, json=body), 422, "invalid_request")
    with db.session(readonly=True) as session:
        assert session.get_one(Reward, coupon).stock == 7


def test_coupon_list_filters_are_never_ignored(client, db, shop, headers):
    cat = client.post(CATEGORIES, headers=headers, json={"name": "Bebidas"}).json()["id"]
    in_cat = add_coupon(db, shop, "Suco")
    with db.session() as session:
        session.get_one(Reward, in_cat).category_id = cat
    add_coupon(db, shop, "Caneca", stock=0)
    by_alias = page(client.get(COUPONS, headers=headers, params={"category": cat}))
    assert [c["id"] for c in by_alias] == [in_cat]
    in_stock = page(client.get(COUPONS, headers=headers, params={"in_stock": "true"}))
    assert [c["id"] for c in in_stock] == [in_cat]
    message = error(
        client.get(COUPONS, headers=headers, params={"category_name": "Bebidas"}),
        422,
        "unknown_parameter",
    )
    assert "category_name" in message
    error(client.get(CATEGORIES, headers=headers, params={"name": "x"}), 422, "unknown_parameter")
    error(
        client.get(COUPONS, headers=headers, params={"category": cat, "category_id": cat + 1}),
        422,
        "invalid_request",
    )
