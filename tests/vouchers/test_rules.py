"""Vouchers by rule (issue 13): a voucher every N of spend or after the Nth purchase,
issued when a sale earns, once per threshold (replays and concurrent sales on PostgreSQL
included), announced to the customer, and validated by hand at the counter."""

from collections import Counter

import pytest
from sqlalchemy import select

from fidelia.customers.service import identify
from fidelia.kit.db import Database
from fidelia.kit.settings import Settings
from fidelia.models import MessageLog, Tenant, Voucher
from fidelia.orders import service as orders
from fidelia.vouchers.rules import RuleCache, create_rule
from fidelia.vouchers.service import validate
from tests.dialects.rest_v2.conftest import create_customer, make_merchant, token_for
from tests.dialects.rest_v2.test_races import burst
from tests.support.helpers import LiveServer, make_tenant

CPF = "52998224725"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"rate_limit_rest_v2": "100000/second"})


def rule(db: Database, tenant_id: int, **kw) -> int:
    with db.session() as session:
        return create_rule(session, session.get_one(Tenant, tenant_id), **kw).id


def sell(db: Database, tenant: Tenant, ref: str, total: int) -> None:
    with db.session() as session:
        shop = session.get_one(Tenant, tenant.id)
        customer = identify(session, shop, {"cpf": CPF, "phone": "+5511987654321"})
        orders.upsert(
            session,
            shop,
            orders.OrderData(original_id=ref, total=total, customer=customer, completed=True),
        )


def vouchers(db: Database) -> list[Voucher]:
    with db.session(readonly=True) as session:
        return list(session.scalars(select(Voucher).order_by(Voucher.id)))


def test_every_n_of_spend_once_per_threshold(db):
    tenant, _ = make_tenant(
        db, currency="BRL", locale="pt_BR", earn_points_per_unit="1", message_voucher_issued="true"
    )
    rule(db, tenant.id, kind="spend", threshold=100_00, value=10_00, valid_days=30)
    sell(db, tenant, "S-1", 60_00)
    assert vouchers(db) == []
    sell(db, tenant, "S-2", 60_00)  # 120: the first threshold
    sell(db, tenant, "S-2", 60_00)  # replayed: nothing more
    assert [v.campaign for v in vouchers(db)] == ["rule-1-1"]
    sell(db, tenant, "S-3", 310_00)  # 430: thresholds 2, 3 and 4
    issued = vouchers(db)
    assert [v.campaign for v in issued] == ["rule-1-1", "rule-1-2", "rule-1-3", "rule-1-4"]
    assert {(v.value, v.kind, v.customer_id is not None) for v in issued} == {(10_00, "rule", True)}
    with db.session(readonly=True) as session:
        keys = session.scalars(select(MessageLog.key).where(MessageLog.event == "voucher_issued"))
        assert sorted(keys) == sorted(f"voucher:{v.id}" for v in issued)
    # Validated by hand at the counter, once.
    with db.session() as session:
        used = validate(session, session.get_one(Tenant, tenant.id), issued[0].code)
        assert used.uses == 1


def test_after_the_nth_purchase_once(db):
    tenant, _ = make_tenant(db, currency="BRL")
    rule(db, tenant.id, kind="purchases", threshold=3, value=0, benefit="Um café", repeat=False)
    for n in range(7):
        sell(db, tenant, f"S-{n}", 5_00)
    assert [(v.campaign, v.benefit) for v in vouchers(db)] == [("rule-1-1", "Um café")]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_concurrent_sales_cross_each_threshold_once(pg, app, db):
    merchant = make_merchant(db)
    rule(db, merchant.id, kind="spend", threshold=100_00, value=10_00)
    with LiveServer(app) as server:
        with server.client() as http:
            token = token_for(http, merchant)
            create_customer(http, {"Authorization": f"Bearer {token}"})
        calls = [("POST", "/v2/sales", {"sale_amount": "50.00", "cpf": CPF}) for _ in range(20)]
        answers = burst(server, token, calls)
    assert Counter(a.status_code for a in answers) == {201: 20}
    campaigns = sorted(v.campaign or "" for v in vouchers(db))
    assert campaigns == sorted(f"rule-1-{n}" for n in range(1, 11))


def test_cached_rules_issue_the_same_vouchers_and_a_new_rule_waits_for_the_cache(db):
    """A sale takes the merchant's active rules from ``RuleCache`` (``State.rules``, kept
    ``FIDELIA_TENANT_CACHE_SECONDS``): the cached copies issue what a fresh read would, and
    a rule created while they are fresh counts for the sales after the cache's time (a
    threshold a sale crossed in between is not owed, as with any rule's thresholds)."""
    tenant, _ = make_tenant(db, currency="BRL")
    rule(db, tenant.id, kind="purchases", threshold=2, value=5_00)
    cache = RuleCache(ttl=3600)

    def cached_sale(ref: str) -> None:
        with db.session() as session:
            shop = session.get_one(Tenant, tenant.id)
            customer = identify(session, shop, {"cpf": CPF})
            orders.upsert(
                session,
                shop,
                orders.OrderData(
                    original_id=ref,
                    total=5_00,
                    customer=customer,
                    completed=True,
                    voucher_rules=cache.active(session, shop),
                ),
            )

    cached_sale("C-1")
    later = rule(db, tenant.id, kind="purchases", threshold=1, value=1_00)
    cached_sale("C-2")  # the second purchase: the cached rule's voucher, not the new rule's
    assert [v.campaign for v in vouchers(db)] == ["rule-1-1"]
    cache.ttl = 0  # the cache's time has passed
    cached_sale("C-3")
    # C-2 was the new rule's first purchase, seen without it; C-3 is its second.
    assert [v.campaign for v in vouchers(db)] == ["rule-1-1", f"rule-{later}-2"]
