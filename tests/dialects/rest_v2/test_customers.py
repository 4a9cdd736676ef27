"""GET/POST /v2/customers and GET /v2/customers/{id}: registration with an argon2 password,
search by CPF, phone, e-mail and your id, pagination, and the customer the WhatsApp bot
already knows being the same customer here."""

from datetime import date, timedelta

from sqlalchemy import select

from fidelia.kit.passwords import verify_password
from fidelia.models import Customer
from tests.dialects.rest_v2.conftest import (
    ANA,
    BIA,
    CAIO,
    CUSTOMERS,
    E164,
    PHONE,
    create_customer,
    error,
    page,
    wallet,
)
from tests.support.helpers import generate_pin, send_whatsapp

FIELDS = {
    "id",
    "name",
    "cpf",
    "phone",
    "email",
    "external_id",
    "birthday",
    "balance",
    "created_at",
}


def test_create_and_read(client, db, headers):
    body = {
        "name": "  Ana   Souza ",
        "phone": PHONE,
        "password": "s3nha-segura",
        "cpf": "529.982.247-25",
        "email": "Ana@Example.com",
        "birthday": "1990-05-17",
        "external_id": "ERP-77",
        "loyalty_tier": "gold",  # additional data an integrator sends is ignored
    }
    response = client.post(CUSTOMERS, headers=headers, json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == FIELDS
    assert created["name"] == "Ana Souza"
    assert created["cpf"] == ANA
    assert created["phone"] == E164
    assert created["email"] == "ana@example.com"
    assert created["birthday"] == "1990-05-17"
    assert created["external_id"] == "ERP-77"
    assert created["balance"] == {"points": 0, "cashback": "0.00", "currency": "BRL"}
    assert response.headers["Location"] == f"/v2/customers/{created['id']}"
    assert "s3nha" not in response.text and "password" not in response.text
    # Stored as an argon2id digest only.
    with db.session(readonly=True) as session:
        digest = session.scalar(select(Customer.password_hash).where(Customer.id == created["id"]))
    assert digest is not None and digest.startswith("$argon2id$")
    assert verify_password(digest, "s3nha-segura") and not verify_password(digest, "other")
    read = client.get(f"{CUSTOMERS}/{created['id']}", headers=headers)
    assert read.status_code == 200 and read.json() == created


def test_minimal_customer_and_unknown_id(client, headers):
    created = create_customer(client, headers, cpf=None, password=None)
    assert created["cpf"] is None and created["phone"] == E164
    error(client.get(f"{CUSTOMERS}/999999", headers=headers), 404, "customer_not_found")
    error(client.get(f"{CUSTOMERS}/abc", headers=headers), 422, "invalid_request")


def test_invalid_input(client, headers):
    base = {"name": "Ana", "phone": PHONE}
    cases = [
        ({"phone": PHONE}, 422, "invalid_request"),  # no name
        ({"name": "   ", "phone": PHONE}, 422, "invalid_name"),
        ({**base, "phone": "12"}, 422, "invalid_phone"),
        ({**base, "cpf": "123.456.789-00"}, 422, "invalid_document"),  # bad check digits
        ({**base, "cpf": "ana@example.com"}, 422, "invalid_document"),
        ({**base, "email": "not-an-email"}, 422, "invalid_email"),
        ({**base, "password": "short"}, 422, "invalid_request"),
        ({**base, "birthday": "17/05/1990"}, 422, "invalid_request"),
        ({**base, "birthday": (date.today() + timedelta(days=2)).isoformat()}, 422, "invalid_date"),
        ({"name": "Ana"}, 422, "identifier_required"),
        ({"name": "Ana", "phone": "", "cpf": ""}, 422, "identifier_required"),
    ]
    for body, status, code in cases:
        error(client.post(CUSTOMERS, headers=headers, json=body), status, code)
    assert page(client.get(CUSTOMERS, headers=headers), total=0) == []


def test_duplicates_are_refused(client, headers):
    ana = create_customer(client, headers)
    bia = create_customer(client, headers, name="Bia", phone="11912345678", cpf=BIA)
    again = client.post(CUSTOMERS, headers=headers, json={"name": "Ana", "cpf": ANA})
    assert str(ana["id"]) in error(again, 409, "customer_exists")
    both = client.post(CUSTOMERS, headers=headers, json={"name": "X", "phone": PHONE, "cpf": BIA})
    message = error(both, 409, "identifiers_conflict")
    assert str(ana["id"]) in message and str(bia["id"]) in message


def test_search_and_pagination(client, headers):
    cpfs = [ANA, BIA, CAIO]
    made = [
        create_customer(
            client,
            headers,
            name=f"C{i}",
            phone=f"1191234567{i}",
            cpf=cpfs[i] if i < 3 else None,
            email=f"c{i}@example.com",
            external_id=f"E{i}",
            password=None,
        )
        for i in range(5)
    ]
    ids = [c["id"] for c in made]
    assert [c["id"] for c in page(client.get(CUSTOMERS, headers=headers), total=5)] == ids
    pages = [
        page(
            client.get(CUSTOMERS, headers=headers, params={"page": n, "per_page": 2}),
            page=n,
            per_page=2,
            total=5,
            total_pages=3,
        )
        for n in (1, 2, 3, 4)
    ]
    assert [[c["id"] for c in p] for p in pages] == [ids[0:2], ids[2:4], ids[4:], []]

    def found(**params):
        return [c["id"] for c in page(client.get(CUSTOMERS, headers=headers, params=params))]

    assert found(cpf="111.444.777-35") == [ids[1]]
    assert found(cpf=CAIO) == [ids[2]]
    assert found(phone="(11) 91234-5673") == [ids[3]]
    assert found(phone="+5511912345674") == [ids[4]]
    assert found(email="C0@EXAMPLE.COM") == [ids[0]]
    assert found(external_id="E3") == [ids[3]]
    assert found(cpf=ANA, email="c0@example.com") == [ids[0]]  # every filter must match
    assert found(cpf=ANA, email="c1@example.com") == []
    assert found(phone="11900000000") == []
    error(client.get(CUSTOMERS, headers=headers, params={"cpf": "12345"}), 422, "invalid_document")
    error(client.get(CUSTOMERS, headers=headers, params={"phone": "x"}), 422, "invalid_phone")
    for params in ({"page": 0}, {"per_page": 0}, {"per_page": 101}, {"page": "x"}):
        error(client.get(CUSTOMERS, headers=headers, params=params), 422, "invalid_request")


def test_the_whatsapp_customer_is_the_same_customer(client, db, settings, shop, headers):
    """Points earned over WhatsApp (the PIN door and the bot) show here; searching by phone
    finds the bot's customer, and registering them enrols that customer, not a new one."""
    pin = generate_pin(client, shop.api_secret)  # the PIN door takes the merchant's API key
    send_whatsapp(client, settings, E164, f"Quiero activar mi PIN: {pin}")
    send_whatsapp(client, settings, E164, "Ana")
    (known,) = page(client.get(CUSTOMERS, headers=headers, params={"phone": PHONE}), total=1)
    assert known["phone"] == E164 and known["balance"]["points"] == 1
    response = client.post(
        CUSTOMERS,
        headers=headers,
        json={"name": "Ana Souza", "phone": PHONE, "cpf": ANA, "password": "s3nha-segura"},
    )
    assert response.status_code == 200, response.text  # enrolled, not created
    enrolled = response.json()
    assert enrolled["id"] == known["id"]
    assert enrolled["name"] == "Ana Souza" and enrolled["cpf"] == ANA
    assert enrolled["balance"]["points"] == 1
    assert wallet(db, shop, "whatsapp", E164) == wallet(db, shop, "cpf", ANA) == (1, 0)
    # Registered now: a second registration is refused.
    again = client.post(CUSTOMERS, headers=headers, json={"name": "Ana", "phone": E164})
    error(again, 409, "customer_exists")


def test_enrolling_refuses_a_contradiction(client, db, headers):
    """A customer first seen in a sale (by CPF) is enrolled by phone and CPF; another CPF for
    a customer found by phone is a conflict, not a second CPF."""
    sold = client.post("/v2/sales", headers=headers, json={"cpf": ANA, "sale_amount": "10.00"})
    assert sold.status_code == 201, sold.text
    enrolled = client.post(
        CUSTOMERS, headers=headers, json={"name": "Ana", "cpf": ANA, "phone": PHONE}
    )
    assert enrolled.status_code == 200, enrolled.text
    assert enrolled.json()["balance"]["points"] == 10
    other = client.post(
        CUSTOMERS, headers=headers, json={"name": "Ana", "phone": PHONE, "cpf": BIA}
    )
    error(other, 409, "identifiers_conflict")
