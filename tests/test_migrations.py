"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL:
a model change without its migration fails here."""

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from fidelia.kit.db import make_engine
from fidelia.kit.migrate import HEAD, alembic_config
from fidelia.models import Base


def test_migrations_match_the_models(database_url):
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_the_head_written_down_is_alembics():
    """``kit/migrate.py HEAD`` decides that a database needs no migration: it must be the
    newest revision there is, and the only one."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert script.get_heads() == [HEAD]


def test_a_start_on_an_up_to_date_database_loads_no_alembic(tmp_path, database_url):
    """The first ``upgrade`` migrates (Alembic), the next finds the head in
    ``alembic_version`` and returns without importing Alembic, in a process of its own."""
    fresh = f"sqlite:///{tmp_path}/new.db"
    assert started(fresh) == f"{HEAD} True"  # a new database: migrated by Alembic
    assert started(fresh) == f"{HEAD} False"
    assert started(database_url) == f"{HEAD} False"  # the test's, migrated from the template


def started(url: str) -> str:
    """What a new process prints after ``upgrade(url)``: the database's revision and
    whether Alembic was imported."""
    code = (
        "import sys\n"
        "from fidelia.kit.migrate import upgrade, version_of\n"
        f"upgrade({url!r})\n"
        f"print(version_of({url!r}), 'alembic' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip()
