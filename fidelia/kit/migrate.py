"""Run the packaged Alembic migrations programmatically (no alembic.ini needed).

Every process that opens the database migrates it first (``fidelia serve``, ``worker``, each
command). On a database already at this code's head that is one read of its
``alembic_version``: Alembic, its environment (the tables) and the revision files are only
loaded when there is something to do (about half a second of CPU a start)."""

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from fidelia.kit.db import make_engine, sqlite_path

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# The newest revision there, written down so that a start on an up-to-date database needs no
# Alembic to know it; a new migration moves it (``tests/test_migrations.py`` holds it to
# Alembic's own head).
HEAD = "0011x"


def alembic_config(url: str) -> "Config":
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def version_of(url: str) -> str | None:
    """The revision the database is at (None: never migrated, or not reachable: then
    Alembic's own attempt says why)."""
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if revision == "head" and version_of(url) == HEAD:
        return
    from alembic import command

    command.upgrade(alembic_config(url), revision)
