"""Access tokens refreshed before they expire and once on a 401; refresh tokens rotate, so
concurrent workers must refresh once (PostgreSQL row lock; the fake refuses a reused
refresh token); a refresh refused for good marks the connection broken; pacing and 429."""

import threading
import time
from datetime import timedelta

import pytest

from fidelia.connectors.bling.client import AuthLost, Bling, Link
from fidelia.kit.clock import now
from fidelia.kit.db import Database
from fidelia.models import BlingConnection, Tenant
from tests.connectors.bling.conftest import connect, connection, make_merchant

ME = "/empresas/me/dados-basicos"


def link_of(db: Database, tenant: Tenant) -> Link:
    with db.session(readonly=True) as session:
        found = connection(db, tenant)
        return Link.of(found, session.get_one(Tenant, tenant.id))


def expire_soon(db: Database, tenant: Tenant) -> None:
    with db.session() as session:
        found = session.get_one(BlingConnection, connection(db, tenant).id)
        found.access_expires_at = now() + timedelta(minutes=1)


def test_token_is_refreshed_before_it_expires(client, db, settings, fake, bling):
    tenant = make_merchant(db)
    company = connect(client, db, settings, fake, tenant)
    link = link_of(db, tenant)
    assert bling.get(link, ME)["data"]["id"] == company.id
    assert fake.grant_count("refresh_token") == 0
    expire_soon(db, tenant)
    version = connection(db, tenant).token_version
    assert bling.get(link, ME)["data"]["id"] == company.id
    assert fake.grant_count("refresh_token") == 1
    assert connection(db, tenant).token_version == version + 1
    assert bling.get(link, ME)["data"]["id"] == company.id  # the new one is used from now on
    assert fake.grant_count("refresh_token") == 1


def test_a_401_refreshes_once_and_retries(client, db, settings, fake, bling):
    tenant = make_merchant(db)
    company = connect(client, db, settings, fake, tenant)
    fake.expire_access_tokens()  # revoked or expired early at Bling
    assert bling.get(link_of(db, tenant), ME)["data"]["id"] == company.id
    assert fake.grant_count("refresh_token") == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_concurrent_workers_refresh_once(client, db, settings, fake):
    tenant = make_merchant(db)
    connect(client, db, settings, fake, tenant)
    expire_soon(db, tenant)
    fake.expire_access_tokens()
    fake.refresh_delay = 0.3  # the first refresh is still in flight when the others look
    link = link_of(db, tenant)
    workers = 8
    barrier = threading.Barrier(workers)
    results: list[object] = []

    def work() -> None:
        database = Database(settings.database_url, pool_size=2)
        client_ = Bling(database, settings)
        try:
            barrier.wait()
            results.append(client_.get(link, ME)["data"]["id"])
        except Exception as exc:  # collected: the assertion below shows it
            results.append(exc)
        finally:
            client_.close()
            database.dispose()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == ["c0ffee"] * workers
    assert fake.grant_count("refresh_token") == 1
    assert fake.refused["refresh_token"] == 0
    assert connection(db, tenant).status == "connected"


def test_refused_refresh_marks_the_connection_broken(client, db, settings, fake, bling):
    tenant = make_merchant(db)
    connect(client, db, settings, fake, tenant)
    fake.refresh_tokens.clear()  # revoked at Bling (the merchant removed the app)
    fake.expire_access_tokens()
    with pytest.raises(AuthLost):
        bling.get(link_of(db, tenant), ME)
    broken = connection(db, tenant)
    assert broken.status == "broken"
    assert "refused the refresh token" in broken.last_error
    with pytest.raises(AuthLost):  # no second attempt with a dead token
        bling.get(link_of(db, tenant), ME)
    assert fake.refused["refresh_token"] == 1


def test_paced_to_three_a_second_and_429_retried(client, db, settings, fake):
    tenant = make_merchant(db)
    connect(client, db, settings, fake, tenant)
    link = link_of(db, tenant)
    fake.rate_limit = True
    # Unpaced: Bling answers 429; the client waits Retry-After and gets through.
    fast = Bling(db, settings)
    try:
        for _ in range(5):
            fast.get(link, ME)
    finally:
        fast.close()
    assert fake.limited > 0
    # Paced at 3/s: no 429 at all.
    time.sleep(1.1)  # the fake's window forgets the burst
    fake.limited = 0
    paced = Bling(db, settings.model_copy(update={"bling_requests_per_second": 3.0}))
    started = time.monotonic()
    try:
        for _ in range(7):
            paced.get(link, ME)
    finally:
        paced.close()
    assert fake.limited == 0
    assert time.monotonic() - started >= 1.9
