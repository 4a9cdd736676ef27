"""The ledger refuses a credit that would take a balance past its cap, whatever the door:
nothing is written, and the balance can still take credits below the cap."""

import pytest
from sqlalchemy import func, select

from fidelia.customers.service import identify
from fidelia.kit.errors import BalanceLimit
from fidelia.ledger.service import MAX_BALANCE, Account, Source, balance, credit
from fidelia.models import LedgerEntry, Tenant
from tests.support.helpers import ledger_invariants, make_tenant


def entries(db):
    with db.session(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)


def test_a_credit_past_the_cap_is_refused_and_writes_nothing(db):
    tenant, _ = make_tenant(db)
    with db.session() as session:
        customer = identify(session, session.get_one(Tenant, tenant.id), {"email": "a@b.co"})
        acct = Account(customer.program_id, customer.id)
        credit(session, acct, MAX_BALANCE - 10, Source(tenant.id, "test", "1"))
    for amount, ref in ((11, "2"), (MAX_BALANCE + 1, "3"), (2**63 - 1, "4")):
        with pytest.raises(BalanceLimit), db.session() as session:
            credit(session, acct, amount, Source(tenant.id, "test", ref))
    assert entries(db) == 1
    with db.session() as session:
        credit(session, acct, 10, Source(tenant.id, "test", "5"))  # up to the cap: fine
        assert balance(session, acct) == MAX_BALANCE
    assert ledger_invariants(db) == []
