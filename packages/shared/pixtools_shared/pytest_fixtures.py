"""pytest fixtures shared by the unit tests of pixtools_shared and the workers.

A package's conftest.py imports the fixtures it needs from here. ``database_url``
runs each test once on SQLite and once on PostgreSQL; ``configured_env`` points
every cached setting, engine and storage of the process at a test's own
folders and database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from pixtools_shared.db.migrate import upgrade_database
from pixtools_shared.db.session import (
    create_db_engine,
    dispose_engines,
    get_session_factory,
)
from pixtools_shared.settings import Settings, get_settings, reset_settings_cache
from pixtools_shared.storage import reset_storage_cache
from pixtools_shared.testing import postgres_available, temporary_postgres_database

TABLES_IN_DELETE_ORDER = (
    "outbox_messages",
    "idempotency_records",
    "job_operations",
    "jobs",
)


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str]:
    """A migrated PostgreSQL database for the whole test session."""
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1")
    with temporary_postgres_database() as url:
        upgrade_database(url)
        yield url
        dispose_engines()


def _empty_tables(url: str) -> None:
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            for table in TABLES_IN_DELETE_ORDER:
                connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a SQLite file or the session's PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'unit.db'}"
        upgrade_database(url)
        yield url
        return

    url = request.getfixturevalue("postgres_database_url")
    _empty_tables(url)
    yield url
    dispose_engines()
    _empty_tables(url)


@pytest.fixture
def configured_env(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings of the embedded profile under tmp_path, on ``database_url``."""
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("STORAGE_BACKEND", "filesystem")
    monkeypatch.setenv("BROKER_URL", "filesystem://")
    monkeypatch.delenv("REDIS_URL", raising=False)
    reset_settings_cache()
    reset_storage_cache()
    dispose_engines()
    yield get_settings()
    dispose_engines()
    reset_storage_cache()
    reset_settings_cache()


@pytest.fixture
def db_session(configured_env: Settings) -> Iterator[Session]:
    """A session on the test database; the test commits what it needs."""
    session = get_session_factory(configured_env.database_url)()
    try:
        yield session
    finally:
        session.rollback()
        session.close()
