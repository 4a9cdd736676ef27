"""Fixtures: every test that takes ``database_url`` runs on SQLite AND on a real
PostgreSQL server started here from the machine's binaries. Each test gets a fresh
database cloned from a migrated template. External services are real loopback servers."""

import ast
import asyncio
import gc
import os
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

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
from tests.support.pki import Pki, make_pki
from tests.support.postgres import PostgresServer

# Most tests build an app (routes, engines, models) and throw it away: the collector's
# passes over everything the process holds were most of that (``create_app``: ~30 ms, ~5
# without them). What the session holds once its tests are collected is frozen out of the
# collector's view (``pytest_collection_finish``), and the youngest generation is collected
# a tenth as often. Nothing is left uncollected: a cycle is found a little later.
gc.set_threshold(7000, 10, 10)


# The files that take longest (seconds of one process, `make test`'s `--durations` and
# `--junitxml` of 2026-12-03), started first. `make test` hands each process a whole file
# (`--dist loadfile`); xdist's own order, most tests first, left the one-test files here
# (the quick benchmark: 2-4 min) for the end, one process working while the other idled.
LONG_FILES = (
    "tests/panel/test_access.py",  # ~190 s
    "tests/test_cli.py",  # ~150
    "tests/messaging/test_outbox_worker.py",  # ~130
    "tests/reliability/test_fuzz.py",  # ~115
    "tests/bench/test_quick.py",  # ~110-210
    "tests/panel/test_browser.py",  # ~75
    "tests/reliability/test_crash.py",  # ~75
    "tests/test_amounts.py",  # ~55
    "tests/test_readme.py",  # ~50
    "tests/ops/test_production_shape.py",  # ~45
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long files first, longest first; then the others, most tests first (what xdist
    does itself without `--no-loadscope-reorder`, which `make test` passes so that this
    order is kept); a ``test_zz_*`` file last (the reliability run's closing check). Stable:
    within a file, and among equals, pytest-randomly's order stays."""
    files = Counter(item.nodeid.split("::")[0] for item in items)
    rank = {name: k for k, name in enumerate(LONG_FILES)}

    def key(item: pytest.Item) -> tuple[bool, int, int]:
        name = item.nodeid.split("::")[0]
        last = Path(name).name.startswith("test_zz_")
        return (last, rank.get(name, len(LONG_FILES)), -files[name])

    items.sort(key=key)


def pytest_collection_finish(session: pytest.Session) -> None:
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="module", autouse=True)
def no_loop_left_running() -> Iterator[None]:
    """A test file leaves no event loop running in the main thread (Playwright's sync API
    does while it is open): the next file's ``asyncio.run()`` would refuse to start, a failure
    that shows up far from its cause and only in some random orders."""
    yield
    assert asyncio._get_running_loop() is None, "this test file left an event loop running"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A test CA, a server certificate it signed and a rogue one (``tests/support/pki.py``)."""
    return make_pki(tmp_path_factory.mktemp("pki"))


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
    url = pg.copy()
    yield url
    pg.drop(url)


@pytest.fixture
def pg_url(pg: PostgresServer) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database of its own (not parametrised: for what is
    about PostgreSQL alone, the production database)."""
    url = pg.copy(prefix="p")
    yield url
    pg.drop(url)


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
        password_hashing="fast",  # users made by the hundred (kit/passwords.py)
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


@dataclass
class _Built:
    """What a fidelia module builds once, from its source: the dictionaries it starts
    empty and fills on first use (``_INSERT: dict[str, Any] = {}``, per dialect), and its
    ``NAME = builder()`` whose builder mutmut mutated (it holds
    ``mutants_x_<builder>__mutmut``), such as the ledger's ``_SPEND_LOTS = _lots_spent()``."""

    caches: list[str] = field(default_factory=list)
    at_import: list[tuple[str, str]] = field(default_factory=list)


_BUILT: dict[str, _Built] = {}  # by module name, read once per process (and its forks)


def _built_once() -> list[tuple[ModuleType, _Built]]:
    found = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("fidelia.") or not isinstance(module, ModuleType):
            continue
        if name not in _BUILT:
            _BUILT[name] = built = _Built()
            source = Path(module.__file__ or "")
            tree = ast.parse(source.read_text()) if source.suffix == ".py" else ast.Module([], [])
            for node in tree.body:
                target = node.target if isinstance(node, ast.AnnAssign) else None
                if isinstance(node, ast.Assign) and len(node.targets) == 1:
                    target = node.targets[0]
                value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
                if not isinstance(target, ast.Name):
                    continue
                if isinstance(value, ast.Dict) and not value.keys:
                    built.caches.append(target.id)
                elif (
                    isinstance(value, ast.Call)
                    and isinstance(value.func, ast.Name)
                    and not value.args
                    and f"mutants_x_{value.func.id}__mutmut" in vars(module)
                ):
                    built.at_import.append((target.id, value.func.id))
        found.append((module, _BUILT[name]))
    return found


@pytest.fixture(autouse=True, scope="session")
def _statements_built_afresh_for_each_mutant() -> None:
    """Under mutation testing (``make mutate``): mutmut runs the tests once in its own
    process, then forks a child per mutant, which inherits every statement the services
    build on first use and keep (module-level dictionaries per dialect, ``lru_cache``). A
    mutant of a builder would then never run and always "survive". Each child starts with
    them empty. (Only the dictionaries a module starts empty: a dictionary written out in
    full, such as the intake's ``_CLAIM``, is never filled again.)"""
    if not os.environ.get("MUTANT_UNDER_TEST"):
        return
    for module, built in _built_once():
        for name in built.caches:
            value = getattr(module, name, None)
            if isinstance(value, dict) and any(isinstance(v, Executable) for v in value.values()):
                value.clear()
        for value in list(vars(module).values()):
            if callable(getattr(value, "cache_clear", None)) and getattr(
                value, "__module__", ""
            ).startswith("fidelia."):
                value.cache_clear()


@pytest.fixture(autouse=True)
def _statements_built_at_import_built_again() -> None:
    """Under mutation testing: the statements a mutated module builds at import with a
    builder of its own (``_SPEND_LOTS = _lots_spent()``) were built before mutmut chose a
    mutant; they are built again for each test, so the mutant under test is the one built
    and mutmut's stats tie the builder to every test (not to the first one only)."""
    if not os.environ.get("MUTANT_UNDER_TEST"):
        return
    for module, built in _built_once():
        for name, builder in built.at_import:
            setattr(module, name, getattr(module, builder)())
