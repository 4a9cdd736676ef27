"""GET /v2/vouchers, GET /v2/vouchers/{code}, POST /v2/vouchers/{code}/validate."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from fidelia.kit.clock import now
from fidelia.models import Customer, Tenant, Voucher, VoucherUse
from fidelia.vouchers.service import issue
from tests.dialects.rest_v2.conftest import (
    ANA,
    BIA,
    VOUCHERS,
    auth,
    count,
    create_customer,
    error,
    make_merchant,
    page,
)

FIELDS = {
    "id",
    "code",
    "customer_id",
    "campaign",
    "kind",
    "value",
    "currency",
    "benefit",
    "valid_from",
    "valid_until",
    "max_uses",
    "uses",
    "status",
    "created_at",
}


def make_voucher(db, merchant, code=None, customer_id=None, **options):
    with db.session() as session:
        tenant = session.get_one(Tenant, merchant.id)
        customer = session.get_one(Customer, customer_id) if customer_id else None
        return issue(session, tenant, code=code, customer=customer, **options).code


def validate(client, headers, code, **body):
    return client.post(f"{VOUCHERS}/{code}/validate", headers=headers, json=body or None)


def test_list_and_read(client, db, shop, headers):
    ana = create_customer(client, headers)
    codes = [
        make_voucher(db, shop, "BEMVINDO-10", value=1000, benefit="R$ 10 off"),
        make_voucher(db, shop, customer_id=ana["id"], campaign="aniversario", value=500),
        make_voucher(db, shop, max_uses=3),
    ]
    make_voucher(db, make_merchant(db, slug="outra"), "NOT-MINE")
    items = page(client.get(VOUCHERS, headers=headers), total=3, total_pages=1)
    assert [v["code"] for v in items] == codes
    assert set(items[0]) == FIELDS
    assert items[0] | {"id": None, "created_at": None} == {
        "id": None,
        "code": "BEMVINDO-10",
        "customer_id": None,
        "campaign": None,
        "kind": "voucher",
        "value": "10.00",
        "currency": "BRL",
        "benefit": "R$ 10 off",
        "valid_from": None,
        "valid_until": None,
        "max_uses": 1,
        "uses": 0,
        "status": "active",
        "created_at": None,
    }
    assert codes[1].startswith("FV-") and items[1]["customer_id"] == ana["id"]
    mine = page(client.get(VOUCHERS, headers=headers, params={"customer_id": ana["id"]}))
    assert [v["code"] for v in mine] == [codes[1]]
    paged = page(
        client.get(VOUCHERS, headers=headers, params={"page": 2, "per_page": 2}), total_pages=2
    )
    assert [v["code"] for v in paged] == [codes[2]]
    one = client.get(f"{VOUCHERS}/bemvindo-10", headers=headers)  # codes are case-insensitive
    assert one.status_code == 200 and one.json() == items[0]
    error(client.get(f"{VOUCHERS}/NOT-MINE", headers=headers), 404, "voucher_not_found")


def test_a_voucher_validates_once(client, db, shop, headers):
    code = make_voucher(db, shop, "UMAVEZ-1", value=1000)
    response = validate(client, headers, code, reference="caixa-3")
    assert response.status_code == 200, response.text
    assert set(response.json()) == FIELDS
    assert response.json()["uses"] == 1 and response.json()["status"] == "used"
    error(validate(client, headers, code), 409, "voucher_used")
    error(validate(client, headers, "umavez-1"), 409, "voucher_used")
    assert count(db, VoucherUse) == 1
    twice = make_voucher(db, shop, max_uses=2)
    assert validate(client, headers, twice).json()["status"] == "active"
    assert validate(client, headers, twice).json()["status"] == "used"
    error(validate(client, headers, twice), 409, "voucher_used")
    error(validate(client, headers, "NOPE-404"), 404, "voucher_not_found")


def test_voucher_states(client, db, shop, headers, frozen):
    expired = make_voucher(db, shop, valid_until=now() - timedelta(minutes=1))
    later = make_voucher(db, shop, valid_from=now() + timedelta(days=1))
    cancelled = make_voucher(db, shop)
    with db.session() as session:
        session.scalars(select(Voucher).where(Voucher.code == cancelled)).one().status = "cancelled"
    error(validate(client, headers, expired), 410, "voucher_expired")
    error(validate(client, headers, later), 409, "voucher_not_yet_valid")
    error(validate(client, headers, cancelled), 409, "voucher_cancelled")
    assert client.get(f"{VOUCHERS}/{expired}", headers=headers).json()["status"] == "expired"
    assert client.get(f"{VOUCHERS}/{later}", headers=headers).json()["status"] == "scheduled"
    frozen(datetime.now(UTC) + timedelta(days=2))
    headers = auth(client, shop)  # the first token has expired by then
    assert validate(client, headers, later).json()["status"] == "used"
    assert count(db, VoucherUse) == 1


def test_a_customers_voucher(client, db, shop, headers):
    ana = create_customer(client, headers)
    bia = create_customer(client, headers, name="Bia", phone="11912345678", cpf=BIA)
    code = make_voucher(db, shop, customer_id=ana["id"])
    error(validate(client, headers, code, customer_id=bia["id"]), 403, "voucher_not_yours")
    error(validate(client, headers, code, cpf=BIA), 403, "voucher_not_yours")
    error(validate(client, headers, code, customer_id=999999), 404, "customer_not_found")
    error(validate(client, headers, code, cpf="39053344705"), 404, "customer_not_found")
    error(validate(client, headers, code, cpf="123"), 422, "invalid_document")
    error(validate(client, headers, code, customer_id="x"), 422, "invalid_request")
    response = validate(client, headers, code, cpf=ANA)
    assert response.status_code == 200 and response.json()["status"] == "used"
    # Another merchant cannot see or use it.
    other = auth(client, make_merchant(db, slug="outra"))
    error(validate(client, other, make_voucher(db, shop)), 404, "voucher_not_found")


def test_validate_with_the_code_in_the_body(client, db, shop, headers):
    ana = create_customer(client, headers)
    code = make_voucher(db, shop, customer_id=ana["id"], value=1000)
    error(client.post(f"{VOUCHERS}/validate", headers=headers, json={}), 422, "code_required")
    used = client.post(
        f"{VOUCHERS}/validate",
        headers=headers,
        json={"voucher_code": code.lower(), "customer_id": str(ana["id"]), "reference": 9001},
    )
    assert used.status_code == 200, used.text
    assert used.json()["code"] == code and used.json()["uses"] == 1
    error(client.post(f"{VOUCHERS}/validate", headers=headers, json={"code": code}), 409,
          "voucher_used")  # fmt: skip
    other = make_voucher(db, shop, value=500)
    differ = client.post(
        f"{VOUCHERS}/{other}/validate", headers=headers, json={"code": "SOMETHING-ELSE"}
    )
    error(differ, 422, "invalid_request")
    error(validate(client, headers, other, customer_id=True), 422, "invalid_request")
    with db.session(readonly=True) as session:
        uses = list(session.scalars(select(VoucherUse)))
    assert [u.reference for u in uses] == ["9001"]


def test_voucher_list_by_cpf_and_unknown_filters(client, db, shop, headers):
    ana = create_customer(client, headers)
    mine = make_voucher(db, shop, customer_id=ana["id"])
    make_voucher(db, shop)
    listed = page(client.get(VOUCHERS, headers=headers, params={"document": ANA}))
    assert [v["code"] for v in listed] == [mine]
    assert page(client.get(VOUCHERS, headers=headers, params={"cpf": BIA})) == []
    error(client.get(VOUCHERS, headers=headers, params={"status": "active"}), 422,
          "unknown_parameter")  # fmt: skip
    error(client.get(VOUCHERS, headers=headers, params={"cpf": ""}), 422, "empty_filter")
