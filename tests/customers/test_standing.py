"""The catalog cache behind the lookup and the bot's replies: a program, its merchants
and their rewards, read once per ``tenant_cache_seconds`` instead of on every request."""

from fidelia.customers.standing import CatalogCache
from fidelia.kit.db import Database
from tests.support.helpers import make_reward, make_tenant


def test_catalog_is_cached_for_its_ttl_and_usable_outside_its_session(db: Database) -> None:
    tenant, _ = make_tenant(db)
    make_reward(db, tenant, points=10, title="Café gratis")
    cache = CatalogCache(ttl=3600)
    with db.session(readonly=True) as session:
        first = cache.get(session, tenant.program_id)
    assert [t.id for t in first.tenants] == [tenant.id]
    assert [r.title for r in first.rewards] == ["Café gratis"]
    with db.session(readonly=True) as session:
        cached = cache.get(session, tenant.program_id)  # the copies, readable anywhere
    assert cached is not first and [r.title for r in cached.rewards] == ["Café gratis"]
    assert cached.program.id == tenant.program_id and cached.tenants[0].name == tenant.name

    make_reward(db, tenant, points=20, title="Torta")
    with db.session(readonly=True) as session:
        assert cache.get(session, tenant.program_id) is cached  # within the ttl: no query
        fresh = CatalogCache(ttl=0).get(session, tenant.program_id)  # 0: no cache
    assert [r.title for r in fresh.rewards] == ["Café gratis", "Torta"]

    cache.ttl = 0.0001
    with db.session(readonly=True) as session:
        again = cache.get(session, tenant.program_id)
    assert [r.title for r in again.rewards] == ["Café gratis", "Torta"]
