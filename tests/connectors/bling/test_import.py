"""Import (contacts, then sales, since a date): paged, resumable from its checkpoint after a
failure or a SIGKILL, idempotent; reconciliation finds a sale whose webhook was lost;
"test a reference sale" writes nothing."""

import os
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fidelia.connectors.bling import imports, service
from fidelia.kit import clock
from fidelia.models import (
    BlingImport,
    Customer,
    CustomerIdentifier,
    LedgerEntry,
    Order,
    Tenant,
)
from fidelia.models.order import COMPLETE
from tests.connectors.bling.conftest import ANA, BIA, CNPJ, connect, make_merchant
from tests.support.helpers import ledger_invariants

SINCE = clock.now().date() - timedelta(days=90)  # what connecting queues (bling_import_days)
FIDELIA = Path(sys.executable).parent / "fidelia"


def shop(fake, company, orders_per_contact=2):
    """7 contacts (one walk-in without identifiers, one with a bad CPF but a mobile) and
    their orders in assorted situations; returns the points each document should hold."""
    people = [
        ("Ana", ANA, "(11) 98765-4321", "ana@example.com"),
        ("Bia", BIA, "", "bia@example.com"),
        ("Empresa", CNPJ, "", ""),
        ("Caio", "", "(21) 99876-5432", ""),
        ("Typo", "123.456.789-00", "(31) 99999-0000", ""),
        ("Consumidor Final", "", "", ""),
        ("Duda", "", "", "duda@example.com"),
    ]
    expected = {}
    old = (date.today() - timedelta(days=400)).isoformat()
    for i, (name, document, mobile, email) in enumerate(people):
        contact = fake.add_contact(company, name, document, mobile, email)
        for j in range(orders_per_contact):
            situation = (9, 6, 12, 50001)[(i + j) % 4]
            value = 10 * (i + 1) + j
            fake.add_order(
                company, contact, produtos=f"{value + 5}.00", desconto="5", situacao=situation
            )
            if situation in (9, 50001) and name != "Consumidor Final":
                expected[name] = expected.get(name, 0) + value
    fake.add_order(company, None, produtos="999.00", situacao=9, data=old)  # before --since
    return expected


def state_of(db):
    with db.session(readonly=True) as session:
        return {
            "customers": session.scalar(select(func.count()).select_from(Customer)),
            "identifiers": session.scalar(select(func.count()).select_from(CustomerIdentifier)),
            "entries": session.scalar(select(func.count()).select_from(LedgerEntry)),
            "orders": sorted(
                (o.original_id, o.state, o.total, o.earned_points)
                for o in session.scalars(select(Order))
            ),
            "points": session.scalar(
                select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                    LedgerEntry.account == "points"
                )
            ),
        }


def start(db, tenant, since=SINCE):
    with db.session() as session:
        return service.start_import(session, session.get_one(Tenant, tenant.id), since)["id"]


def test_import_pages_contacts_then_sales(client, db, settings, fake, bling):
    tenant = make_merchant(db)
    company = connect(client, db, settings, fake, tenant)
    expected = shop(fake, company)
    job = imports.run_import(db, bling, start(db, tenant))
    assert (job.status, job.phase, job.contacts, job.orders) == ("done", "done", 7, 14)
    assert job.earned == 6
    got = state_of(db)
    assert got["customers"] == 6  # the walk-in is nobody
    assert got["points"] == sum(expected.values())
    assert all(state == COMPLETE for _id, state, _t, p in got["orders"] if p)
    assert ledger_invariants(db) == []
    assert "GET /pedidos/vendas" in fake.requests


def test_import_resumes_from_its_checkpoint_after_a_failure(client, db, settings, fake, bling):
    tenant = make_merchant(db)
    company = connect(client, db, settings, fake, tenant)
    expected = shop(fake, company)
    ids = sorted(company.orders)
    earning_on_page_2 = next(
        i for i in ids[5:10] if company.orders[i]["situacao"]["id"] in (9, 50001)
    )
    fake.fail_next.append((f"/pedidos/vendas/{earning_on_page_2}", 500))
    import_id = start(db, tenant)
    with pytest.raises(Exception, match="500"):
        imports.run_import(db, bling, import_id)
    with db.session(readonly=True) as session:
        job = session.get_one(BlingImport, import_id)
        assert (job.status, job.phase, job.page) == ("running", "orders", 2)
        assert "500" in job.last_error
        progress = service.status(session, session.get_one(Tenant, tenant.id))["import"]
        assert progress["phase"] == "orders" and progress["page"] == 2
    assert start(db, tenant) == import_id  # the same import resumes
    with pytest.raises(Exception, match="unfinished"):
        start(db, tenant, SINCE - timedelta(days=1))
    job = imports.run_import(db, bling, import_id)
    assert job.status == "done" and job.orders == 14
    assert state_of(db)["points"] == sum(expected.values())
    assert ledger_invariants(db) == []


def test_a_second_import_changes_nothing(client, db, settings, fake, bling):
    tenant = make_merchant(db)
    company = connect(client, db, settings, fake, tenant)
    shop(fake, company)
    imports.run_import(db, bling, start(db, tenant))
    first = state_of(db)
    again = imports.run_import(db, bling, start(db, tenant))
    assert again.status == "done" and again.earned == 0
    second = state_of(db)
    assert set(second["orders"]) ^ set(first["orders"]) == set()
    assert second == first


def test_reconciliation_finds_a_missed_order(client, db, settings, fake, bling):
    tenant = make_merchant(db)
    company = connect(client, db, settings, fake, tenant)
    contact = fake.add_contact(company, "Ana", ANA, "(11) 98765-4321")
    missed = fake.add_order(company, contact, produtos="70.00", situacao=9)  # no webhook came
    assert imports.due_reconciliations(db, timedelta(minutes=10)) == []  # just connected
    assert imports.reconcile(db, bling, tenant.id) == 1
    with db.session(readonly=True) as session:
        order = session.scalar(select(Order).where(Order.original_id == f"bling:{missed}"))
        assert order.state == COMPLETE and order.earned_points == 70
    assert imports.reconcile(db, bling, tenant.id) == 1  # the overlap re-reads it...
    assert state_of(db)["entries"] == 2  # ...and changes nothing


def test_preview_writes_nothing(client, db, settings, fake, bling):
    tenant = make_merchant(db)
    company = connect(client, db, settings, fake, tenant)
    contact = fake.add_contact(company, "Bia", BIA, "", "bia@example.com")
    order = fake.add_order(
        company, contact, produtos="55.00", desconto="10", unidade="PERCENTUAL", frete="9"
    )
    before = state_of(db)
    seen = service.preview_order(db, bling, tenant, str(order))
    assert state_of(db) == before
    assert seen["customer"] == {
        "found": False,
        "would_be_created": True,
        "id": None,
        "name": "Bia",
        "identifiers": {"cpf": BIA, "email": "bia@example.com"},
    }
    assert (seen["value"], seen["points"], seen["cashback"]) == (4950, 49, 247)
    assert seen["situation_counts"] is False and "when it reaches" in seen["outcome"]
    fake.update_order(company, order, situacao=9)
    assert service.preview_order(db, bling, tenant, str(order))["outcome"] == "would earn now"
    assert state_of(db) == before
    with pytest.raises(Exception, match="no order"):
        service.preview_order(db, bling, tenant, "999999")


def cli_env(settings, database_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIDELIA_")}
    env.update(
        FIDELIA_DATABASE_URL=database_url,
        FIDELIA_BLING_CLIENT_ID=settings.bling_client_id,
        FIDELIA_BLING_CLIENT_SECRET=settings.bling_client_secret,
        FIDELIA_BLING_API_BASE=settings.bling_api_base,
        FIDELIA_BLING_REQUESTS_PER_SECOND="20",
    )
    return env


def test_cli_import_killed_and_resumed(client, db, settings, fake, database_url, tmp_path):
    tenant = make_merchant(db)
    company = connect(client, db, settings, fake, tenant)
    for i in range(105):  # two pages of contacts at Bling's page size (100)
        fake.add_contact(company, f"Cliente {i}", "", f"(11) 9{i:04d}-1234", "")
    contacts = sorted(company.contacts)
    for i in range(40):  # 40 sales that earn: one detail fetch each, paced
        fake.add_order(company, contacts[i], produtos="10.00", situacao=9)
    env = cli_env(settings, database_url)
    args = [
        str(FIDELIA),
        "bling",
        "import",
        "--tenant",
        "loja",
        "--since",
        SINCE.isoformat(),
        "--json",
    ]
    first = subprocess.Popen(
        args, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.time() + 60
    while time.time() < deadline:
        with db.session(readonly=True) as session:
            job = session.scalars(
                select(BlingImport).where(BlingImport.status == "running")
            ).first()
            if (
                job is not None
                and job.phase == "orders"
                and any(r.startswith("GET /pedidos/vendas/") for r in fake.requests)
            ):
                break
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(10)
    assert first.returncode == -signal.SIGKILL
    with db.session(readonly=True) as session:
        job = session.scalars(select(BlingImport)).one()
        assert job.status == "running" and job.contacts == 105
    done = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '"status": "done"' in done.stdout
    got = state_of(db)
    assert got["customers"] == 105 and got["points"] == 400
    assert len([o for o in got["orders"] if o[1] == COMPLETE]) == 40
    assert ledger_invariants(db) == []
    status = subprocess.run(
        [str(FIDELIA), "bling", "status", "--tenant", "loja", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert '"status": "connected"' in status.stdout
