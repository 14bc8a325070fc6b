"""Engines and sessions built from DATABASE_URL.

Engines are cached per URL. A forked worker process must call dispose_engines()
before its first query so that it never shares pooled connections with its parent.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from pixtools_shared.observability.tracing import instrument_engine
from pixtools_shared.settings import Settings, get_settings

SQLITE_BUSY_TIMEOUT_MS = 30_000

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker[Session]] = {}


def create_db_engine(url: str, settings: Settings | None = None) -> Engine:
    """Build a new engine for ``url`` with the pool and timeout settings."""
    settings = settings or get_settings()
    parsed = make_url(url)

    if parsed.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url)

    connect_args: dict[str, Any] = {"connect_timeout": 10}
    if parsed.get_backend_name() == "postgresql":
        timeout_ms = settings.DATABASE_STATEMENT_TIMEOUT_MS
        connect_args["options"] = f"-c statement_timeout={timeout_ms}"
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=settings.DATABASE_POOL_SIZE,
        max_overflow=settings.DATABASE_MAX_OVERFLOW,
        pool_timeout=settings.DATABASE_POOL_TIMEOUT_SECONDS,
        connect_args=connect_args,
    )


def _create_sqlite_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)

    engine = create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Autocommit at the driver level so that the "begin" hook below decides
        # how each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock up front. A deferred transaction
        # that reads first and writes later can fail at once with "database is
        # locked" when another process wrote in between, whatever busy_timeout is.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def get_engine(url: str | None = None) -> Engine:
    """Return the cached engine of ``url`` (default: the configured database)."""
    url = url or get_settings().database_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = instrument_engine(create_db_engine(url))
            _engines[url] = engine
        return engine


def get_session_factory(url: str | None = None) -> sessionmaker[Session]:
    """Return the cached session factory bound to the engine of ``url``."""
    url = url or get_settings().database_url
    engine = get_engine(url)
    with _lock:
        factory = _factories.get(url)
        if factory is None:
            factory = sessionmaker(bind=engine, expire_on_commit=False)
            _factories[url] = factory
        return factory


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """Open a session that commits on normal exit and rolls back on an error."""
    session = get_session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dispose_engines(*, close: bool = True) -> None:
    """Drop every cached engine and its pooled connections.

    A child process right after fork passes ``close=False``: the connections
    belong to the parent, so the child forgets them without closing them.
    """
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
        _factories.clear()
    for engine in engines:
        engine.dispose(close=close)
