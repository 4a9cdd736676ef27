"""Seed 000, public lookup and redemption: /api/v1/redimir/..."""

from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from fidelia.kit import clock
from fidelia.models import Balance, LedgerEntry, OutboxMessage, Redemption
from tests.support.helpers import (
    generate_pin,
    ledger_invariants,
    make_group,
    make_reward,
    make_tenant,
    send_whatsapp,
    sent,
)

WA = "+50688887777"


@pytest.fixture
def frozen():
    yield clock.freeze
    clock.freeze(None)


def earn(client, settings, key, number=WA, name="Ana"):
    """One visit: a PIN over the door, sent to the bot, the name given on the first time."""
    send_whatsapp(client, settings, number, f"Quiero activar mi PIN: {generate_pin(client, key)}")
    send_whatsapp(client, settings, number, name)


def count(db, model):
    with db.session(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def debits(db):
    """Every redemption with its ledger debit and the balances: the effect of a redeem."""
    with db.session(readonly=True) as session:
        redemptions = [
            (r.id, r.reward_id, r.points, r.status, r.origin)
            for r in session.scalars(select(Redemption).order_by(Redemption.id))
        ]
        entries = [
            (e.source_id, e.amount, e.balance_after, e.tenant_id)
            for e in session.scalars(
                select(LedgerEntry).where(LedgerEntry.kind == "redeem").order_by(LedgerEntry.id)
            )
        ]
        balances = sorted(int(b.amount) for b in session.scalars(select(Balance)))
    return redemptions, entries, balances


def test_comercio(client, db):
    tenant, _ = make_tenant(db, slug="cafe-demo", name="Café Demo")
    reward_id = make_reward(db, tenant, points=10)
    body = client.get("/api/v1/redimir/comercio/cafe-demo").json()
    assert body == {
        "ok": True,
        "comercio": {"id": tenant.id, "nombre": "Café Demo", "slug": "cafe-demo"},
        "promociones": [
            {"id": reward_id, "titulo": "Café gratis", "descripcion": "", "puntos_requeridos": 10}
        ],
    }
    missing = client.get("/api/v1/redimir/comercio/nope")
    assert missing.status_code == 404
    assert missing.json()["codigo"] == "COMERCIO_NOT_FOUND"


def test_puntos(client, db, settings):
    tenant, key = make_tenant(db, points_per_pin="4")
    make_reward(db, tenant, points=10)
    earn(client, settings, key)
    body = client.get("/api/v1/redimir/puntos/%2B50688887777").json()
    assert body == {
        "ok": True,
        "total": 1,
        "data": [
            {
                "tipo": "individual",
                "nombre": "Café Uno",
                "id_comercio": tenant.id,
                "comercios": [tenant.id],
                "puntos": 4,
                "proxima_recompensa": {
                    "titulo": "Café gratis",
                    "puntos_requeridos": 10,
                    "puntos_faltantes": 6,
                },
            }
        ],
    }
    # Without the '+' the number is read the same way.
    assert client.get("/api/v1/redimir/puntos/50688887777").json()["total"] == 1


def test_puntos_reads_one_statement_from_the_event_loop_once_the_catalog_is_cached(
    app, client, db, settings
):
    """On PostgreSQL the lookup is one statement in autocommit from the event loop
    (``standings_now``) when the customer's catalog is cached, and the transaction in a
    thread otherwise (which caches it): the same answer either way. SQLite: the thread."""
    tenant, key = make_tenant(db, points_per_pin="4")
    make_reward(db, tenant, points=10)
    earn(client, settings, key)
    state = app.state.fidelia
    sent: dict[str, list[str]] = {"thread": [], "loop": []}
    engines = {"thread": db.engine}
    if not db.is_sqlite:
        engines["loop"] = db.async_autocommit.sync_engine
    listeners = {name: (lambda *args, name=name: sent[name].append(args[2])) for name in engines}
    for name, engine in engines.items():
        event.listen(engine, "before_cursor_execute", listeners[name])
    try:
        state.catalogs.ttl = 60  # the tests' settings cache nothing
        state.catalogs._entries.clear()
        cold = client.get("/api/v1/redimir/puntos/%2B50688887777")
        cold_sent = {name: list(statements) for name, statements in sent.items()}
        sent["thread"].clear()
        sent["loop"].clear()
        warm = client.get("/api/v1/redimir/puntos/%2B50688887777")
    finally:
        for name, engine in engines.items():
            event.remove(engine, "before_cursor_execute", listeners[name])
    assert cold.status_code == warm.status_code == 200
    assert cold.json() == warm.json() and warm.json()["data"][0]["puntos"] == 4
    if db.is_sqlite:
        assert cold_sent["thread"] and sent["thread"] and not sent["loop"]
        return
    # Cold: the customer from the event loop, then only the catalog in a thread, kept.
    assert len(cold_sent["loop"]) == 1 and "customer_identifiers" in cold_sent["loop"][0]
    selects = [s for s in cold_sent["thread"] if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 3 and not any("customer_identifiers" in s for s in selects)
    # Warm: the one statement alone.
    assert sent["thread"] == [] and len(sent["loop"]) == 1
    assert "customer_identifiers" in sent["loop"][0]


def test_puntos_errors(client, db):
    unknown = client.get("/api/v1/redimir/puntos/%2B50670000000")
    assert unknown.status_code == 404
    assert unknown.json()["codigo"] == "CLIENTE_NOT_FOUND"
    for bad in ("abc", "%2B1", "%2B" + "9" * 20):
        response = client.get(f"/api/v1/redimir/puntos/{bad}")
        assert response.status_code == 400, bad
        assert response.json()["codigo"] == "WHATSAPP_INVALIDO"


def test_group_balance_shows_as_grupo(client, db, settings):
    a, key_a = make_tenant(db, slug="norte", name="Norte")
    b, key_b = make_tenant(db, slug="sur", name="Sur")
    make_group(db, "cadena", "Cadena Café", "norte", "sur")
    earn(client, settings, key_a)
    earn(client, settings, key_b)
    body = client.get("/api/v1/redimir/puntos/%2B50688887777").json()
    assert body["total"] == 1
    entry = body["data"][0]
    assert entry["tipo"] == "grupo"
    assert entry["nombre"] == "Cadena Café"
    assert entry["puntos"] == 2
    assert entry["comercios"] == [a.id, b.id]


def test_canjear_success(client, db, settings):
    tenant, key = make_tenant(db, points_per_pin="10")
    reward_id = make_reward(db, tenant, points=10)
    earn(client, settings, key)
    body = {"whatsapp": WA, "id_comercio": tenant.id, "id_promocion": reward_id}
    response = client.post("/api/v1/redimir/canjear", json=body)
    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "puntos_restantes": 0,
        "recompensa": "Café gratis",
        "mensaje": "¡Canje exitoso! Aplicá el beneficio en la factura.",
    }
    # The effect: one redemption, one debit of the reward's 10 points, the balance at 0.
    (redemption,), (debit,), balances = debits(db)
    assert redemption[1:] == (reward_id, 10, "done", "pin")
    assert debit == (str(redemption[0]), -10, 0, tenant.id)
    assert balances == [0]
    again = client.post("/api/v1/redimir/canjear", json=body)
    assert again.status_code == 422
    assert again.json()["codigo"] == "PUNTOS_INSUFICIENTES"
    assert debits(db) == ([redemption], [debit], [0])  # the refusal wrote nothing
    assert ledger_invariants(db) == []


def test_canjear_writes_everything_in_one_statement_after_the_debit(client, db, settings):
    """On PostgreSQL a redemption is three statements of its own: the customer read with
    their wallet, contact and last earning here; the balance's guarded ``UPDATE``; and one
    statement for the rest: the redemption's row, the lots spent, the debit's entry and the
    spend notice with its NOTIFY (none at the commit), the three sent on psycopg's own
    connection (``execute_on_driver``: heard before, not after, as SQLAlchemy's execution
    layer is skipped). SQLite: one by one. The rows and the notice are the same either way."""
    tenant, key = make_tenant(db, points_per_pin="10")
    reward_id = make_reward(db, tenant, points=10)
    earn(client, settings, key)
    body = {"whatsapp": WA, "id_comercio": tenant.id, "id_promocion": reward_id}
    with db.session(readonly=True) as session:
        before = set(session.scalars(select(OutboxMessage.id)))
    executed: list[str] = []
    after = lambda *args: executed.append(" ".join(args[2].split()))  # noqa: E731
    event.listen(db.engine, "after_cursor_execute", after)
    try:
        response, statements = sent(db, lambda: client.post("/api/v1/redimir/canjear", json=body))
    finally:
        event.remove(db.engine, "after_cursor_execute", after)
    assert response.status_code == 200 and response.json()["puntos_restantes"] == 0
    (redemption,), (debit,), balances = debits(db)
    assert debit == (str(redemption[0]), -10, 0, tenant.id) and balances == [0]
    assert ledger_invariants(db) == []
    with db.session(readonly=True) as session:
        (notice,) = [m for m in session.scalars(select(OutboxMessage)) if m.id not in before]
    assert (notice.channel, notice.status, notice.tenant_id) == ("whatsapp", "pending", tenant.id)
    assert notice.payload["to"] == WA.lstrip("+") and "10" in notice.payload["text"]["body"]
    if db.is_sqlite:
        return
    caches = ("SELECT tenants.", "SELECT programs.", "SELECT rewards.")
    own = [s for s in statements if not s.startswith(caches)]
    assert [" ".join(s.split()[:3]) for s in own] == [
        "SELECT customers.id, customers.program_id,",  # with wallet, contact, last earning
        "UPDATE balances SET",
        "WITH spent AS",
    ]
    for table in ("redemptions", "ledger_entries", "outbox"):
        assert f"INSERT INTO {table}" in own[2]
    assert "pg_notify" in own[2] and not any(s.startswith("NOTIFY") for s in statements)
    assert not set(own) & set(executed)


def test_canjear_requires_recent_visit(client, db, settings, frozen):
    tenant, key = make_tenant(db, points_per_pin="10")
    other, other_key = make_tenant(db, slug="otro", name="Otro", points_per_pin="10")
    reward_id = make_reward(db, tenant, points=10)
    start = clock.now()
    frozen(start)
    earn(client, settings, key)
    frozen(start + timedelta(minutes=31))
    earn(client, settings, other_key)  # a visit elsewhere does not count here
    body = {"whatsapp": WA, "id_comercio": tenant.id, "id_promocion": reward_id}
    response = client.post("/api/v1/redimir/canjear", json=body)
    assert response.status_code == 403
    assert response.json()["codigo"] == "VERIFICACION_REQUERIDA"
    assert debits(db) == ([], [], [10, 10])  # refused: nothing debited anywhere
    frozen(start + timedelta(minutes=29))
    assert client.post("/api/v1/redimir/canjear", json=body).status_code == 200
    (redemption,), (debit,), balances = debits(db)
    assert debit == (str(redemption[0]), -10, 0, tenant.id)
    assert balances == [0, 10]  # this merchant's points spent, the other's untouched
    assert ledger_invariants(db) == []


def test_verification_window_setting(client, db, settings, frozen):
    tenant, key = make_tenant(db, points_per_pin="10", verification_window_minutes="120")
    reward_id = make_reward(db, tenant, points=10)
    start = clock.now()
    frozen(start)
    earn(client, settings, key)
    body = {"whatsapp": WA, "id_comercio": tenant.id, "id_promocion": reward_id}
    frozen(start + timedelta(minutes=121))
    late = client.post("/api/v1/redimir/canjear", json=body)
    assert late.status_code == 403 and late.json()["codigo"] == "VERIFICACION_REQUERIDA"
    assert debits(db) == ([], [], [10])
    frozen(start + timedelta(minutes=90))  # past the default 30, inside the merchant's 120
    assert client.post("/api/v1/redimir/canjear", json=body).status_code == 200
    (redemption,), (debit,), balances = debits(db)
    assert debit == (str(redemption[0]), -10, 0, tenant.id)
    assert balances == [0]


def test_canjear_errors_write_nothing(client, db, settings):
    tenant, key = make_tenant(db, points_per_pin="10")
    other, _ = make_tenant(db, slug="otro", name="Otro")
    reward_id = make_reward(db, tenant, points=10)
    foreign_reward = make_reward(db, other, points=1)
    earn(client, settings, key)
    entries = count(db, LedgerEntry)
    cases = [
        (
            {"whatsapp": WA, "id_comercio": 999, "id_promocion": reward_id},
            404,
            "COMERCIO_NOT_FOUND",
        ),
        (
            {"whatsapp": "+50670000000", "id_comercio": tenant.id, "id_promocion": reward_id},
            404,
            "CLIENTE_NOT_FOUND",
        ),
        (
            {"whatsapp": WA, "id_comercio": tenant.id, "id_promocion": foreign_reward},
            404,
            "PROMOCION_NOT_FOUND",
        ),
        (
            {"whatsapp": "nope", "id_comercio": tenant.id, "id_promocion": reward_id},
            400,
            "WHATSAPP_INVALIDO",
        ),
        (
            {"whatsapp": WA, "id_comercio": "x", "id_promocion": reward_id},
            400,
            "SOLICITUD_INVALIDA",
        ),
        ({"whatsapp": WA}, 400, "SOLICITUD_INVALIDA"),
        ([1, 2], 400, "SOLICITUD_INVALIDA"),
    ]
    for body, status, codigo in cases:
        response = client.post("/api/v1/redimir/canjear", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["ok"] is False
        assert response.json()["codigo"] == codigo
        assert response.json()["mensaje"]
    raw = client.post(
        "/api/v1/redimir/canjear", content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert raw.status_code == 400 and raw.json()["codigo"] == "SOLICITUD_INVALIDA"
    assert count(db, LedgerEntry) == entries
    assert count(db, Redemption) == 0


def test_unknown_route_in_door_format(client):
    response = client.get("/api/v1/redimir/nada")
    assert response.status_code == 404
    assert response.json()["ok"] is False
