"""Reliability suite: crashes, races, fuzzing, tenant isolation, then ``fidelia check``.

Its databases are kept until the end of the run (not dropped after each test), so the last
test can check every one of them. ``FIDELIA_RELIABILITY=long`` selects the long form."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from fidelia.kit.settings import Settings
from tests.reliability.summary import DATABASES, SUMMARY
from tests.support.postgres import PostgresServer


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        target = tmp_path / "fidelia.db"
        shutil.copy(sqlite_template, target)
        url = f"sqlite:///{target}"
    else:
        pg: PostgresServer = request.getfixturevalue("pg")
        url = pg.copy(prefix="r")
    DATABASES.append(url)
    return url


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Every burst comes from one IP and one credential on purpose: no rate limits."""
    return settings.model_copy(update={"rate_limits_enabled": False})


@pytest.fixture(scope="session")
def crash_pg() -> Iterator[PostgresServer]:
    """A PostgreSQL server of its own, to kill -9. Commits are synchronous (the shared test
    server's are not, which a crash would rightly punish); fsync stays off, since killing
    processes loses nothing the kernel already has."""
    server = PostgresServer({"synchronous_commit": "on"}).start()
    yield server
    server.destroy()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not SUMMARY.used:
        return
    terminalreporter.section("reliability summary")
    for line in SUMMARY.render():
        terminalreporter.write_line(line)
