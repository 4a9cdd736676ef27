"""``/readyz``: ready when the database answers, is migrated to this code's head and an
outbox worker went round recently; 503 naming what is wrong otherwise. ``/healthz`` stays
the liveness probe (the process answers, whatever the database does)."""

from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import text, update

from fidelia.app import create_app
from fidelia.kit.clock import now
from fidelia.messaging.channels import senders_for
from fidelia.messaging.worker import Worker
from fidelia.models import WorkerHeartbeat
from fidelia.ops import heartbeat
from fidelia.ops.web import HEAD
from tests.support.postgres import free_port


def test_ready_only_with_a_fresh_worker_heartbeat(settings):
    app = create_app(settings.model_copy(update={"worker_stale_seconds": 30}), run_worker=False)
    db = app.state.fidelia.db
    with TestClient(app) as client:
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"] == {
            "database": "ok",
            "migrations": "ok",
            "worker": "no worker has ever run",
        }
        # A real worker round stamps the heartbeat (fidelia/messaging/worker.py run loop).
        worker = Worker(db, senders_for(settings))
        thread = worker.start_thread(0.05)
        try:
            for _ in range(100):
                if client.get("/readyz").status_code == 200:
                    break
                thread.join(0.05)
        finally:
            worker.stop()
            thread.join(5)
        assert client.get("/readyz").json() == {
            "status": "ready",
            "checks": {"database": "ok", "migrations": "ok", "worker": "ok"},
        }
        # The worker went away a while ago: not ready.
        with db.session() as session:
            session.execute(update(WorkerHeartbeat).values(at=now() - timedelta(minutes=10)))
        stale = client.get("/readyz")
        assert stale.status_code == 503
        assert stale.json()["checks"]["worker"] == "last round 600 s ago (stale after 30 s)"
    db.dispose()


def test_not_ready_when_the_schema_is_not_this_codes(settings):
    app = create_app(settings, run_worker=False)
    db = app.state.fidelia.db
    heartbeat.beat(db, "w:1", force=True)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        with db.session() as session:
            session.execute(text("UPDATE alembic_version SET version_num = '0007'"))
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"]["migrations"] == f"database at 0007, code expects {HEAD}"
        # A newer release migrated ahead (rolling deploy): this process stays in rotation.
        with db.session() as session:
            session.execute(text("UPDATE alembic_version SET version_num = '9999future'"))
        assert client.get("/readyz").status_code == 200
        assert client.get("/healthz").status_code == 200
    db.dispose()


def test_not_ready_when_the_database_is_unreachable(settings):
    gone = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    app = create_app(settings.model_copy(update={"database_url": gone}), run_worker=False)
    with TestClient(app) as client:
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"]["database"].startswith("unreachable: ")
        assert client.get("/healthz").status_code == 200
    app.state.fidelia.db.dispose()
