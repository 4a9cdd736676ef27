"""Idempotency keys at the service level: what is stored, what is replayed, what is refused
and what ``forget`` drops (only the one key of the one merchant). Killing mutmut's mutants of
fidelia/idempotency (docs/testing.md)."""

from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import bindparam, event, select
from sqlalchemy.exc import IntegrityError

from fidelia.idempotency.service import Claim, KeyReused, claim, fingerprint, forget
from fidelia.models import IdempotencyKey, Tenant
from tests.support.helpers import make_tenant


def keys(db):
    with db.session(readonly=True) as session:
        rows = session.scalars(select(IdempotencyKey).order_by(IdempotencyKey.id))
        return [(r.tenant_id, r.scope, r.key, r.status_code, r.response) for r in rows]


def test_the_first_answer_is_stored_and_replayed(db):
    tenant, _ = make_tenant(db)
    with db.session() as session:
        first = claim(session, tenant.id, "sale", "K-1", {"amount": 10})
        assert first.row is not None and (first.replay, first.status_code) == (None, 200)
        first.store({"id": 7}, status_code=201)
    assert keys(db) == [(tenant.id, "sale", "K-1", 201, {"id": 7})]
    with db.session() as session:
        again = claim(session, tenant.id, "sale", "K-1", {"amount": 10})
        assert again.row is None
        assert (again.replay, again.status_code) == ({"id": 7}, 201)
        again.store({"id": 8}, status_code=200)  # a replay stores nothing
    assert keys(db) == [(tenant.id, "sale", "K-1", 201, {"id": 7})]


def test_an_answer_never_stored_replays_an_empty_one(db):
    tenant, _ = make_tenant(db)
    with db.session() as session:
        claim(session, tenant.id, "sale", "K-1", {"amount": 10})
    with db.session() as session:
        again = claim(session, tenant.id, "sale", "K-1", {"amount": 10})
    assert (again.row, again.replay, again.status_code) == (None, {}, 200)


def test_the_same_key_with_another_request_is_refused(db):
    tenant, _ = make_tenant(db)
    with db.session() as session:
        claim(session, tenant.id, "sale", "K-1", {"amount": 10}).store({"id": 7})
    with pytest.raises(KeyReused) as refused, db.session() as session:
        claim(session, tenant.id, "sale", "K-1", {"amount": 11})
    assert refused.value.status == 422 and refused.value.code == "IDEMPOTENCY_KEY_REUSED"
    assert "'K-1'" in str(refused.value)
    assert keys(db) == [(tenant.id, "sale", "K-1", 200, {"id": 7})]


def test_keys_are_per_merchant_scope_and_key(db):
    cafe, _ = make_tenant(db)
    bar, _ = make_tenant(db, slug="bar", name="Bar")
    claims = [(cafe.id, "sale", "K-1"), (bar.id, "sale", "K-1"), (cafe.id, "pay", "K-1")]
    claims.append((cafe.id, "sale", "K-2"))
    with db.session() as session:
        for tenant_id, scope, key in claims:
            mine = claim(session, tenant_id, scope, key, {"amount": 10})
            assert mine.row is not None  # nobody else's answer is replayed
            mine.store({"by": [tenant_id, scope, key]})
    assert [row[:3] for row in keys(db)] == claims
    with db.session() as session:  # each replays its own answer, never a neighbour's
        for tenant_id, scope, key in claims:
            again = claim(session, tenant_id, scope, key, {"amount": 10})
            assert again.replay == {"by": [tenant_id, scope, key]}


def test_forget_drops_only_that_key_of_that_merchant(db):
    cafe, _ = make_tenant(db)
    bar, _ = make_tenant(db, slug="bar", name="Bar")
    claims = [(cafe.id, "sale", "K-1"), (bar.id, "sale", "K-1"), (cafe.id, "pay", "K-1")]
    claims.append((cafe.id, "sale", "K-2"))
    with db.session() as session:
        for tenant_id, scope, key in claims:
            claim(session, tenant_id, scope, key, {"amount": 10}).store({"ok": True})
    with db.session() as session:
        forget(session, cafe.id, "sale", "K-1")
    assert [row[:3] for row in keys(db)] == claims[1:]
    with db.session() as session:  # the same call is a fresh request again
        assert claim(session, cafe.id, "sale", "K-1", {"amount": 99}).row is not None


def test_the_fingerprint_ignores_key_order_and_reads_any_value():
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    digest = fingerprint({"amount": Decimal("10.50"), "at": at})
    assert digest == fingerprint({"at": str(at), "amount": "10.50"})
    assert len(digest) == 64 and int(digest, 16) >= 0


def test_a_claim_without_a_row_stores_nothing():
    replay = Claim(None, replay={"id": 1}, status_code=201)
    replay.store({"id": 2}, status_code=200)
    assert (replay.row, replay.replay, replay.status_code) == (None, {"id": 1}, 201)


def test_a_claim_for_a_merchant_that_does_not_exist_fails_once(db):
    """Not the key's conflict but another broken rule: tried once more, then refused (it
    used to recurse until RecursionError)."""
    with pytest.raises(IntegrityError), db.session() as session:
        claim(session, 987_654, "pos.redeem", "k-1", {"a": 1})
    assert keys(db) == []


# A read sent along a claim (built once, as callers build theirs): the merchant's name.
NAME = select(Tenant.name).where(Tenant.id == bindparam("t"))


def statements(db):
    """The statements the database engine is sent while the block runs, through SQLAlchemy
    or on the driver's connection (``kit/db.py rows_in``; SQLite's BEGIN left out)."""
    sent: list[str] = []

    def heard(conn, cursor, statement, *args):
        if not statement.startswith("BEGIN"):
            sent.append(statement)

    @contextmanager
    def listening():
        event.listen(db.engine, "before_cursor_execute", heard)
        try:
            yield sent
        finally:
            event.remove(db.engine, "before_cursor_execute", heard)

    return listening()


def test_a_read_along_the_claim_is_in_its_statement_on_postgresql(db):
    """``claim(along=)``: the key row and the read in ONE statement on PostgreSQL (two on
    SQLite), the read's row in ``Claim.along`` when the key is claimed; a replay reads the
    stored answer as without it (and gives no row), a read without a row gives None."""
    tenant, _ = make_tenant(db)
    with statements(db) as sent, db.session() as session:
        first = claim(session, tenant.id, "sale", "K-1", {"a": 1}, along=(NAME, {"t": tenant.id}))
        assert first.row is not None and first.replay is None
        assert first.along is not None and first.along.name == "Café Uno"
        first.store({"id": 7}, status_code=201)
    assert len(sent) == (3 if db.is_sqlite else 2)  # the claim (and read), the answer stored
    assert "idempotency_keys" in sent[0] and ("tenants" in sent[0]) != db.is_sqlite
    assert keys(db) == [(tenant.id, "sale", "K-1", 201, {"id": 7})]
    with db.session(readonly=True) as session:
        row = session.scalars(select(IdempotencyKey)).one()
        assert row.request_hash == fingerprint({"a": 1}) and row.created_at is not None

    with statements(db) as sent, db.session() as session:
        again = claim(session, tenant.id, "sale", "K-1", {"a": 1}, along=(NAME, {"t": tenant.id}))
    assert (again.row, again.replay, again.status_code, again.along) == (None, {"id": 7}, 201, None)
    assert len(sent) == 2  # the claim (with the read on PostgreSQL), the stored answer
    with pytest.raises(KeyReused), db.session() as session:
        claim(session, tenant.id, "sale", "K-1", {"a": 2}, along=(NAME, {"t": tenant.id}))

    with db.session() as session:
        nobody = claim(session, tenant.id, "sale", "K-2", {"a": 1}, along=(NAME, {"t": 987_654}))
    assert nobody.row is not None and nobody.along is None
    assert [k[2] for k in keys(db)] == ["K-1", "K-2"]


def test_a_read_along_the_claim_may_not_name_a_parameter_like_a_keys_column(db):
    tenant, _ = make_tenant(db)
    named_like_a_column = select(Tenant.name).where(Tenant.id == bindparam("tenant_id"))
    with pytest.raises(ValueError), db.session() as session:
        claim(session, tenant.id, "s", "K", {}, along=(named_like_a_column, {"tenant_id": 1}))
    assert keys(db) == []
