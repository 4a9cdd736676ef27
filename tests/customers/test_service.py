"""Finding a customer by the first of several identifiers that names one (the retail door's
member lookup: phone as ``phone`` then ``whatsapp``, then email, ...), in one round trip."""

from fidelia.customers.service import find_first, find_many, finder, found, identify
from fidelia.kit.db import Database
from fidelia.models import Customer, Tenant
from tests.support.helpers import make_tenant, sent


def test_the_first_identifier_in_order_that_names_a_customer_wins(db: Database) -> None:
    tenant, _ = make_tenant(db)
    with db.session() as session:
        shop = session.get_one(Tenant, tenant.id)
        by_mail = identify(session, shop, {"email": "ana@example.com"}).id
        by_whatsapp = identify(session, shop, {"whatsapp": "+5491155550001"}).id
    phone = [("phone", "+5491155550001"), ("whatsapp", "+5491155550001")]
    mail = [("email", "ana@example.com")]
    with db.session(readonly=True) as session:
        found = find_first(session, tenant.program_id, phone + mail)
        assert found is not None and found.id == by_whatsapp
        found = find_first(session, tenant.program_id, mail + phone)
        assert found is not None and found.id == by_mail
        assert find_first(session, tenant.program_id, [("phone", "+5491155550009")]) is None
        assert find_first(session, tenant.program_id + 1000, phone + mail) is None


def test_find_many_finds_exactly_the_pairs_asked(db: Database) -> None:
    """The batch's lookup (on PostgreSQL two parallel arrays and ``= ANY``): only the
    ``(kind, value)`` pairs asked, in the programs asked; a value longer than the column
    is not cut to match a stored one."""
    tenant, _ = make_tenant(db)
    other, _ = make_tenant(db, slug="otra", name="Otra")
    longest = "u" * 200  # the column's length
    with db.session() as session:
        shop = session.get_one(Tenant, tenant.id)
        ana = identify(session, shop, {"whatsapp": "+5491155550001", "wa_user": longest}, "Ana")
        beto = identify(session, shop, {"whatsapp": "+5491155550002"}).id
        identify(session, session.get_one(Tenant, other.id), {"whatsapp": "+5491155550003"})
    with db.session(readonly=True) as session:
        found = find_many(
            session,
            [tenant.program_id],
            [
                ("whatsapp", "+5491155550001"),
                ("wa_user", "+5491155550002"),  # Beto's value, another kind
                ("whatsapp", "+5491155550002"),
                ("whatsapp", "+5491155550003"),  # another program's
                ("wa_user", longest + "x"),
            ],
        )
    p = tenant.program_id
    assert found == {
        (p, "whatsapp", "+5491155550001"): (ana.id, "Ana"),
        (p, "whatsapp", "+5491155550002"): (beto, None),
    }


def test_a_finder_row_becomes_the_customer_as_if_loaded(db: Database) -> None:
    """``found``: the row's columns as the session's customer, loaded (nothing to flush, no
    read when a column is used); a change made after is flushed as any (the name's key
    follows it); a customer the session holds is the one returned."""
    tenant, _ = make_tenant(db)
    with db.session() as session:
        made = identify(session, session.get_one(Tenant, tenant.id), {"email": "a@example.com"})
        made.name = "Ána Lima"
        customer_id = made.id
    email = {"program_id": tenant.program_id, "kind": "email", "value": "a@example.com"}
    with db.session() as session:
        row = session.execute(finder(), email).one()
        read, statements = sent(db, lambda: found(session, row._mapping))
        assert (read.id, read.name, read.name_key) == (customer_id, "Ána Lima", "ana lima")
        assert read.created_at is not None and statements == []
        assert read in session and not session.dirty and not session.new
        assert found(session, row._mapping) is read
        read.name = "Bia"
    with db.session(readonly=True) as session:
        again = session.get_one(Customer, customer_id)
        assert (again.name, again.name_key) == ("Bia", "bia")
