"""Run the Alembic migrations of the PixTools schema from code."""

from __future__ import annotations

import time
from pathlib import Path

import structlog
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import OperationalError

from pixtools_shared.db.session import create_db_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

log = structlog.get_logger(__name__)


class SchemaNotReadyError(RuntimeError):
    """The database did not reach the expected schema revision in time."""


def alembic_config(url: str) -> Config:
    """Build the Alembic configuration in code (the package ships no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser treats "%" as interpolation, and URLs may contain %-escapes.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """Return the newest revision id of the migration scripts."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    if head is None:
        raise RuntimeError(f"no migration scripts found in {MIGRATIONS_DIR}")
    return head


def upgrade_database(url: str) -> None:
    """Migrate the database at ``url`` to the newest schema revision."""
    started = time.monotonic()
    log.info("database_upgrade_started", target=head_revision())
    command.upgrade(alembic_config(url), "head")
    log.info(
        "database_upgrade_finished",
        revision=head_revision(),
        duration_s=round(time.monotonic() - started, 3),
    )


def current_revision(url: str) -> str | None:
    """Return the schema revision stored in the database, or None if unmigrated."""
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def wait_for_schema(
    url: str, timeout_seconds: float, poll_seconds: float = 1.0
) -> None:
    """Block until the database is reachable and migrated to the head revision.

    Workers never migrate; the API or the launcher does. Raises SchemaNotReadyError
    when the deadline passes first.
    """
    expected = head_revision()
    deadline = time.monotonic() + timeout_seconds
    found: str | None = None
    while True:
        try:
            found = current_revision(url)
        except OperationalError as exc:
            log.warning("database_unreachable", error=str(exc).splitlines()[0])
        else:
            if found == expected:
                log.info("database_schema_ready", revision=found)
                return

        if time.monotonic() >= deadline:
            raise SchemaNotReadyError(
                f"database schema is at revision {found!r}, expected {expected!r}, "
                f"after waiting {timeout_seconds:g} s; run the API or the launcher "
                "to migrate it"
            )
        time.sleep(poll_seconds)
