"""The issue 5 commands (vouchers, rules, segments, deals, erasure, birthday job) as an
operator runs them: a real ``fidelia`` subprocess on a SQLite file, checked in the database."""

import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select

from fidelia.kit.db import Database
from fidelia.models import Customer, CustomerIdentifier, LedgerEntry, Voucher
from fidelia.orders import service as orders
from fidelia.tenants.service import get_by_slug
from tests.test_cli import one_json, runner


@pytest.fixture
def cli(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    run = runner(url, tmp_path)
    run("tenant", "create", "--slug", "loja", "--name", "Loja", "--currency", "BRL", "--json")
    run("tenant", "set", "loja", "earn_points_per_unit", "1")
    db = Database(url, pool_size=1)
    yield run, db
    db.dispose()


def customer_with_cpf(db, cpf="52998224725", birthday=None):
    with db.session() as session:
        tenant = get_by_slug(session, "loja")
        from fidelia.customers.service import identify

        customer = identify(session, tenant, {"cpf": cpf, "phone": "+5511987654321"}, name="Ana")
        customer.birthday = birthday
        orders.upsert(session, tenant, orders.OrderData("O-1", 10_000, customer, completed=True))
        return customer.id


def test_vouchers_issue_and_validate(cli):
    run, db = cli
    customer_id = customer_with_cpf(db)
    issued = one_json(
        run(
            "voucher",
            "create",
            "--tenant",
            "loja",
            "--customer-cpf",
            "529.982.247-25",
            "--value",
            "15.00",
            "--uses",
            "2",
            "--valid-until",
            "2099-12-31",
            "--json",
        )
    )
    assert issued["code"].startswith("FV-") and issued["customer_id"] == customer_id
    assert issued["status"] == "active"
    own_code = ("--code", "natal-10", "--value", "15", "--json")
    own = one_json(run("voucher", "create", "--tenant", "loja", *own_code))
    assert own["code"] == "NATAL-10" and own["value"] == "15.00"  # as the doors show it
    duplicate = run("voucher", "create", "--tenant", "loja", "--code", "NATAL-10", ok=False)
    assert duplicate.returncode == 1 and "exists" in duplicate.stderr
    for _ in range(2):
        run("voucher", "validate", "--tenant", "loja", issued["code"])
    used = run("voucher", "validate", "--tenant", "loja", issued["code"], ok=False)
    assert used.returncode == 1 and "already used" in used.stderr
    unknown = run(
        "voucher", "create", "--tenant", "loja", "--customer-cpf", "11144477735", ok=False
    )
    assert unknown.returncode == 1 and "No such customer" in unknown.stderr


def test_rules_segments_deals(cli):
    run, _ = cli
    rule = one_json(
        run(
            "rule",
            "create",
            "--tenant",
            "loja",
            "--event",
            "visit",
            "--points",
            "5",
            "--per-day",
            "1",
            "--json",
        )
    )
    assert rule == {"id": 1, "event": "visit", "points": 5, "per_day": 1}
    segment = one_json(
        run(
            "segment",
            "create",
            "--tenant",
            "loja",
            "--name",
            "Frequentes",
            "--rule",
            json.dumps({"event_type": "visit", "min_count": 3}),
            "--json",
        )
    )
    deal = one_json(
        run(
            "deal",
            "create",
            "--tenant",
            "loja",
            "--name",
            "10%",
            "--type",
            "percent",
            "--value",
            "10",
            "--segment",
            str(segment["id"]),
            "--json",
        )
    )
    assert deal["segment"] == segment["id"]
    for bad in (
        ("rule", "create", "--tenant", "loja", "--event", "Visit Now", "--points", "5"),
        ("segment", "create", "--tenant", "loja", "--name", "x", "--rule", "{nope"),
        ("segment", "create", "--tenant", "loja", "--name", "x", "--rule", '{"color": 1}'),
        ("deal", "create", "--tenant", "loja", "--name", "x", "--type", "gift", "--value", "1"),
        (
            "deal",
            "create",
            "--tenant",
            "loja",
            "--name",
            "x",
            "--type",
            "percent",
            "--value",
            "5",
            "--segment",
            "99",
        ),
    ):
        result = run(*bad, ok=False)
        assert result.returncode != 0 and result.stderr.strip(), bad


def test_member_erase_keeps_the_ledger(cli):
    run, db = cli
    customer_id = customer_with_cpf(db)
    run("member", "erase", "--tenant", "loja", "--customer-cpf", "52998224725")
    with db.session(readonly=True) as session:
        customer = session.get_one(Customer, customer_id)
        assert customer.name is None and customer.erased_at is not None
        assert (
            session.scalar(
                select(func.count())
                .select_from(CustomerIdentifier)
                .where(CustomerIdentifier.customer_id == customer_id)
            )
            == 0
        )
        assert (
            session.scalar(
                select(func.sum(LedgerEntry.amount)).where(LedgerEntry.customer_id == customer_id)
            )
            == 100
        )
    assert "ok" in run("check").stdout
    again = run("member", "erase", "--tenant", "loja", "--customer-cpf", "52998224725", ok=False)
    assert again.returncode == 1  # no longer findable: the identifiers are gone


def test_birthday_job_gives_one_gift(cli):
    run, db = cli
    today = datetime.now(UTC).date()  # the merchant is on UTC
    birthday = (
        today.replace(year=1990)
        if not (today.month == 2 and today.day == 29)
        else date(1992, 2, 29)
    )
    customer_with_cpf(db, birthday=birthday)
    assert "0 birthday gift(s)" in run("jobs", "birthdays").stdout  # no gift configured
    run("tenant", "set", "loja", "birthday_gift_value", "20")
    assert "1 birthday gift(s)" in run("jobs", "birthdays").stdout
    assert "0 birthday gift(s)" in run("jobs", "birthdays").stdout  # once a year
    with db.session(readonly=True) as session:
        gift = session.scalars(select(Voucher)).one()
        assert gift.kind == "birthday" and gift.value == 2000
