"""Alembic environment: the URL comes from the caller (``fidelia migrate``) or settings."""

from alembic import context

from fidelia.kit.db import make_engine
from fidelia.kit.settings import get_settings
from fidelia.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run() -> None:
    engine = make_engine(url, pool_size=1)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
