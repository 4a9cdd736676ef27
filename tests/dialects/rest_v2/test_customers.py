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
    "birth_date",
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
    assert created["birthday"] == created["birth_date"] == "1990-05-17"
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
    finds the bot's customer, and registering them enrols that customer, not a new one:
    what the bot has on file (the name the customer typed) is kept."""
    pin = generate_pin(client, shop.api_secret)  # the PIN door takes the merchant's API key
    send_whatsapp(client, settings, E164, f"Quiero activar mi PIN: {pin}")
    send_whatsapp(client, settings, E164, "Ana")
    (known,) = page(client.get(CUSTOMERS, headers=headers, params={"phone": PHONE}), total=1)
    assert known["phone"] == E164 and known["balance"]["points"] == 1
    body = {"name": " ana ", "phone": PHONE, "cpf": ANA, "password": "s3nha-segura"}
    response = client.post(CUSTOMERS, headers=headers, json=body)
    assert response.status_code == 200, response.text  # enrolled, not created
    enrolled = response.json()
    assert enrolled["id"] == known["id"]
    assert enrolled["name"] == "Ana" and enrolled["cpf"] == ANA  # the name on file is kept
    assert enrolled["balance"]["points"] == 1
    assert wallet(db, shop, "whatsapp", E164) == wallet(db, shop, "cpf", ANA) == (1, 0)
    # The same registration again (a retry) answers the same customer.
    again = client.post(CUSTOMERS, headers=headers, json=body)
    assert again.status_code == 200 and again.json() == enrolled
    # Another name is not a registration but a change: refused, nothing written.
    renamed = client.post(CUSTOMERS, headers=headers, json={**body, "name": "Ana Souza"})
    assert "name" in error(renamed, 409, "customer_exists")
    changed = client.patch(
        f"{CUSTOMERS}/{known['id']}", headers=headers, json={"name": "Ana Souza"}
    )
    assert changed.status_code == 200 and changed.json()["name"] == "Ana Souza"


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
    assert enrolled.json()["name"] == "Ana"  # a blank filled
    other = client.post(
        CUSTOMERS, headers=headers, json={"name": "Ana", "phone": PHONE, "cpf": BIA}
    )
    error(other, 409, "identifiers_conflict")


def test_a_create_never_overwrites_a_customer(client, db, headers):
    """Issue 8: a create with a CPF on file answered 200, renamed that customer and dropped
    the new phone. Now: what differs is refused with nothing written; what only adds is
    added; the same create again is answered with the same customer."""
    ana = create_customer(client, headers, password=None)  # Ana Souza, PHONE, ANA
    other = {"name": "Outra Pessoa", "cpf": ANA, "phone": "11912345678"}
    message = error(client.post(CUSTOMERS, headers=headers, json=other), 409, "customer_exists")
    assert str(ana["id"]) in message and "name" in message and "phone" in message
    on_file = client.get(f"{CUSTOMERS}/{ana['id']}", headers=headers).json()
    assert on_file == ana  # same name, same phone
    assert page(client.get(CUSTOMERS, headers=headers, params={"phone": "11912345678"})) == []
    with db.session(readonly=True) as session:
        assert len(list(session.scalars(select(Customer.id)))) == 1
    # Another birthday or password is a change too.
    first = {"name": "Ana Souza", "cpf": ANA, "password": "s3nha-segura"}
    assert client.post(CUSTOMERS, headers=headers, json=first).status_code == 200
    for changed in ({"password": "outra-senha"}, {"birthday": "1990-01-01"}):
        if "birthday" in changed:
            ok = client.post(CUSTOMERS, headers=headers, json={**first, **changed})
            assert ok.status_code == 200  # a first birthday fills a blank
            changed = {"birthday": "1991-01-01"}
        refused = client.post(CUSTOMERS, headers=headers, json={**first, **changed})
        assert next(iter(changed)) in error(refused, 409, "customer_exists")
    # Adding an e-mail to the same person: added, 200, same id.
    more = client.post(
        CUSTOMERS, headers=headers, json={**first, "email": "ana@example.com", "phone": PHONE}
    )
    assert more.status_code == 200, more.text
    assert more.json()["id"] == ana["id"] and more.json()["email"] == "ana@example.com"
    assert more.json()["phone"] == E164 and more.json()["birthday"] == "1990-01-01"
    with db.session(readonly=True) as session:
        customer = session.get_one(Customer, ana["id"])
        assert verify_password(customer.password_hash, "s3nha-segura")


def test_update_a_customer(client, db, settings, shop, headers):
    ana = create_customer(client, headers, email="ana@example.com", external_id="ERP-1")
    bia = create_customer(client, headers, name="Bia", phone="11912345678", cpf=BIA)
    url = f"{CUSTOMERS}/{ana['id']}"
    changed = client.patch(
        url,
        headers=headers,
        json={
            "name": "Ana Lima",
            "phone_number": "11955554444",
            "birth_date": "1990-05-17",
            "email": None,
            "password": "nova-senha-123",
        },
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["name"] == "Ana Lima" and body["phone"] == "+5511955554444"
    assert body["birthday"] == "1990-05-17" and body["email"] is None
    assert body["cpf"] == ANA and body["external_id"] == "ERP-1"  # not sent: kept
    assert page(client.get(CUSTOMERS, headers=headers, params={"phone": PHONE})) == []
    with db.session(readonly=True) as session:
        digest = session.get_one(Customer, ana["id"]).password_hash
    assert verify_password(digest, "nova-senha-123")
    # PUT does the same; a CPF sent as a number keeps its leading zero.
    put = client.put(url, headers=headers, json={"cpf": 1234567890, "external_id": 77})
    assert put.status_code == 200, put.text
    assert put.json()["cpf"] == "01234567890" and put.json()["external_id"] == "77"
    assert client.get(url, headers=headers).json() == put.json()
    # Another customer's phone: refused, nothing changed.
    taken = client.patch(url, headers=headers, json={"name": "X", "phone": "11912345678"})
    assert str(bia["id"]) in error(taken, 409, "identifiers_conflict")
    assert client.get(url, headers=headers).json() == put.json()
    # Not without any identifier.
    bare = {"phone": None, "cpf": None, "external_id": None}
    error(client.patch(url, headers=headers, json=bare), 422, "identifier_required")
    assert client.get(url, headers=headers).json() == put.json()
    error(client.patch(f"{CUSTOMERS}/999999", headers=headers, json={"name": "X"}), 404,
          "customer_not_found")  # fmt: skip
    error(client.patch(url, headers=headers, json={"customer_id": True, "cpf": True}), 422,
          "invalid_request")  # fmt: skip
    # The WhatsApp number the bot knows stays when a system's phone is replaced.
    pin = generate_pin(client, shop.api_secret)
    send_whatsapp(client, settings, "+5511933332222", f"Quiero activar mi PIN: {pin}")
    (bot,) = page(client.get(CUSTOMERS, headers=headers, params={"phone": "11933332222"}))
    bot_url = f"{CUSTOMERS}/{bot['id']}"
    set_phone = client.patch(bot_url, headers=headers, json={"phone": "11977776666"})
    assert set_phone.json()["phone"] == "+5511977776666"
    again = client.patch(bot_url, headers=headers, json={"phone": None})
    assert again.status_code == 200 and again.json()["phone"] == "+5511933332222"


def test_list_filters_are_never_ignored(client, headers):
    """Issue 8: ``?document=`` listed every customer; a client taking the first one credited
    the wrong person. Unknown parameters are refused; plausible names are understood."""
    ana = create_customer(client, headers, email="ana@example.com")
    create_customer(client, headers, name="Bia", phone="11912345678", cpf=BIA)

    def found(**params):
        return [c["id"] for c in page(client.get(CUSTOMERS, headers=headers, params=params))]

    assert found(document=ANA) == [ana["id"]]
    assert found(cpf_cnpj="529.982.247-25") == [ana["id"]]
    assert found(phone_number=PHONE) == [ana["id"]]
    assert found(mobile=E164) == [ana["id"]]
    assert found(mail="ANA@example.com") == [ana["id"]]
    assert found(id=ana["id"]) == [ana["id"]]
    assert found(customer_id=ana["id"], cpf=BIA) == []
    assert found(cpf=ANA, phone="") == [ana["id"]]  # an empty filter beside a real one
    assert len(page(client.get(CUSTOMERS, headers=headers, params={"limit": 1}), per_page=1)) == 1
    for params in ({"nome": "Ana"}, {"document_number": ANA}, {"cpf": ANA, "foo": "1"}):
        message = error(client.get(CUSTOMERS, headers=headers, params=params), 422,
                        "unknown_parameter")  # fmt: skip
        assert all(name in message for name in params if name not in ("cpf",))
    for params in ({"document": ""}, {"cpf": " ", "phone": ""}):
        error(client.get(CUSTOMERS, headers=headers, params=params), 422, "empty_filter")
    error(client.get(CUSTOMERS, headers=headers, params={"cpf": ANA, "document": BIA}), 422,
          "invalid_request")  # fmt: skip
    error(client.get(f"{CUSTOMERS}?cpf={ANA}&cpf={BIA}", headers=headers), 422, "invalid_request")
    error(client.get(CUSTOMERS, headers=headers, params={"limit": 1, "per_page": 2}), 422,
          "invalid_request")  # fmt: skip


def test_aliases_and_numbers_on_create(client, headers):
    created = client.post(
        CUSTOMERS,
        headers=headers,
        json={
            "name": "Zé",
            "cellphone": 11987654321,
            "document": 123456797,  # 001.234.567-97 as a JSON number
            "birth_date": "1980-02-29",
            "external_id": 4242,
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["cpf"] == "00123456797" and body["phone"] == E164
    assert body["birthday"] == body["birth_date"] == "1980-02-29"
    assert body["external_id"] == "4242"
    for bad in (
        {"name": "X", "phone": True},
        {"name": "X", "cpf": False},
        {"name": "X", "external_id": 1.5},
        {"name": "X", "birthday": "1980-01-01", "birth_date": "1981-01-01"},
        {"name": "X", "phone": PHONE, "phone_number": "11900000000"},
    ):
        error(client.post(CUSTOMERS, headers=headers, json=bad), 422, "invalid_request")
