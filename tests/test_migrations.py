"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL:
a model change without its migration fails here."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from fidelia.kit.db import make_engine
from fidelia.models import Base


def test_migrations_match_the_models(database_url):
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
