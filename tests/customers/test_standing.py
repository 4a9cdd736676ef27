"""The catalog cache behind the lookup and the bot's replies: a program, its merchants
and their rewards, read once per ``tenant_cache_seconds`` instead of on every request."""

from sqlalchemy import event

from fidelia.customers.standing import CatalogCache, read_catalog
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


def test_prefetch_reads_the_catalogs_of_many_programs_in_three_statements(db: Database) -> None:
    """The worker's batch spreads its replies over many merchants: their catalogs are read
    at once (three statements whatever their number), each the same as ``read_catalog``'s,
    and the fresh ones already held are not read again."""
    made = [make_tenant(db, slug=f"loja-{n}", name=f"Loja {n}")[0] for n in range(4)]
    for n, tenant in enumerate(made):
        for points in (30, 10)[: n % 2 + 1]:
            make_reward(db, tenant, points=points, title=f"{tenant.name} {points}")
    cache = CatalogCache(ttl=3600)
    with db.session(readonly=True) as session:
        cache.get(session, made[0].program_id)  # read and kept (its copy)
        held = cache.get(session, made[0].program_id)
    statements: list[str] = []
    listen = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        with db.session(readonly=True) as session:
            cache.prefetch(session, [t.program_id for t in made] + [made[1].program_id])
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 3
    with db.session(readonly=True) as session:
        assert cache.get(session, made[0].program_id) is held  # fresh: not read again
        for tenant in made[1:]:
            got = cache.get(session, tenant.program_id)
            want = read_catalog(session, tenant.program_id)
            assert got.program.id == want.program.id == tenant.program_id
            assert [t.id for t in got.tenants] == [t.id for t in want.tenants] == [tenant.id]
            assert [(r.id, r.title) for r in got.rewards] == [(r.id, r.title) for r in want.rewards]
        assert [r.points_required for r in cache.get(session, made[1].program_id).rewards] == [
            10,
            30,
        ]
    zero = CatalogCache(ttl=0)
    with db.session(readonly=True) as session:
        zero.prefetch(session, [made[1].program_id])  # no cache: nothing read, nothing kept
        assert zero._entries == {}
