"""Alembic environment of the PixTools schema.

Run through pixtools_shared.db.migrate.upgrade_database(), which builds the Alembic
configuration in code; there is no alembic.ini.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from pixtools_shared.db.models import Base
from pixtools_shared.db.session import create_db_engine

# Any constant works: every PixTools migrator takes the same PostgreSQL advisory
# lock, so two processes that start at once migrate one after the other.
MIGRATION_LOCK_ID = 7_305_114_212

config = context.config


def _run(connection: Connection) -> None:
    is_sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=is_sqlite,
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:lock_id)"),
                {"lock_id": MIGRATION_LOCK_ID},
            )
            connection.execute(text("SET LOCAL lock_timeout = '30s'"))
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set in the Alembic config")
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported; run upgrade_database()")
run_migrations_online()
