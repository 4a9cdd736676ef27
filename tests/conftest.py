"""Fixtures: every test that takes ``database_url`` runs on SQLite AND on a real
PostgreSQL server started here from the machine's binaries. Each test gets a fresh
database cloned from a migrated template. External services are real loopback servers."""

import ast
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.sql.expression import Executable

from fidelia.app import create_app
from fidelia.kit.db import Database
from fidelia.kit.migrate import upgrade
from fidelia.kit.settings import Settings
from fidelia.messaging.channels import senders_for
from fidelia.messaging.worker import Worker
from tests.fakes.graph import FakeGraph
from tests.support.postgres import PostgresServer


@pytest.fixture(scope="session")
def pg() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    server.psql("CREATE DATABASE fidelia_template")
    upgrade(server.url("fidelia_template"))
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[str]:
    if request.param == "sqlite":
        target = tmp_path / "fidelia.db"
        shutil.copy(sqlite_template, target)
        yield f"sqlite:///{target}"
        return
    pg: PostgresServer = request.getfixturevalue("pg")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE fidelia_template')
    yield pg.url(name)
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    fake = FakeGraph(token="test-token")
    yield fake
    fake.close()


@pytest.fixture
def settings(database_url: str, graph: FakeGraph) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        whatsapp_api_base=graph.url,
        whatsapp_token="test-token",
        whatsapp_app_secret="test-app-secret",
        whatsapp_verify_token="test-verify-token",
        bot_number="50600000000",
        public_url="http://testserver",
        tenant_cache_seconds=0,
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    application = create_app(settings, run_worker=False)
    yield application
    application.state.fidelia.db.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def db(app: FastAPI) -> Database:
    database: Database = app.state.fidelia.db
    return database


@pytest.fixture
def worker(app: FastAPI, settings: Settings) -> Worker:
    """The app's worker: stored inbound messages, then the outbox (``drain()`` in tests)."""
    state = app.state.fidelia
    return Worker(state.db, senders_for(settings), batch=50, bot=state.bot)


@pytest.fixture(autouse=True, scope="session")
def _statements_built_afresh_for_each_mutant() -> None:
    """Under mutation testing (``make mutate``): mutmut runs the tests once in its own
    process, then forks a child per mutant, which inherits every statement the services
    build once and keep (module-level caches per dialect, ``lru_cache``). A mutant of a
    builder would then never run and always "survive". Each child starts with them empty."""
    if not os.environ.get("MUTANT_UNDER_TEST"):
        return
    for name, module in list(sys.modules.items()):
        if not name.startswith("fidelia.") or module is None:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, dict) and any(isinstance(v, Executable) for v in value.values()):
                value.clear()
            elif callable(getattr(value, "cache_clear", None)) and getattr(
                value, "__module__", ""
            ).startswith("fidelia."):
                value.cache_clear()


def _built_at_import() -> list[tuple[object, str, str]]:
    """(module, name, builder) for each module-level ``NAME = builder()`` of a module that
    mutmut mutated (it holds ``mutants_x_<builder>__mutmut``), such as the ledger's
    ``_SPEND_LOTS = _lots_spent()``: built once when the module was imported, before
    mutmut chose a mutant, so a mutant of the builder would never run."""
    found = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("fidelia.") or module is None:
            continue
        if not any(key.startswith("mutants_x_") for key in vars(module)):
            continue
        tree = ast.parse(Path(module.__file__ or "").read_text())
        for node in tree.body:
            call = node.value if isinstance(node, ast.Assign) else None
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and not call.args
                and f"mutants_x_{call.func.id}__mutmut" in vars(module)
                and len(node.targets) == 1  # type: ignore[union-attr]
                and isinstance(node.targets[0], ast.Name)  # type: ignore[union-attr]
            ):
                found.append((module, node.targets[0].id, call.func.id))  # type: ignore[union-attr]
    return found


@pytest.fixture(autouse=True)
def _statements_built_at_import_built_again() -> None:
    """Under mutation testing: build those statements again for each test, so that the
    mutant under test is the one built and mutmut's stats tie the builder to every test
    (its trampoline is called during each test, not once during collection)."""
    if not os.environ.get("MUTANT_UNDER_TEST"):
        return
    global _BUILT_AT_IMPORT
    if _BUILT_AT_IMPORT is None:
        _BUILT_AT_IMPORT = _built_at_import()
    for module, name, builder in _BUILT_AT_IMPORT:
        setattr(module, name, getattr(module, builder)())


_BUILT_AT_IMPORT: list[tuple[object, str, str]] | None = None
