"""The long-lived clients one API process shares between requests."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from pixtools_shared.celery_app import create_celery_app
from pixtools_shared.db.session import get_engine, get_session_factory
from pixtools_shared.settings import Settings
from pixtools_shared.storage import ObjectStorage, create_storage

# Timeout of each Redis command; Redis only serves optional features.
REDIS_TIMEOUT_SECONDS = 2.0


@dataclass
class ApiServices:
    """Settings plus the database, storage, broker and Redis clients of the API."""

    settings: Settings
    session_factory: sessionmaker[Session]
    storage: ObjectStorage
    celery: Celery
    redis: redis.Redis | None

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiServices:
        """Build the clients; none of them connects before its first use."""
        redis_client = None
        if settings.REDIS_URL:
            redis_client = redis.Redis.from_url(
                settings.REDIS_URL,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
            )
        return cls(
            settings=settings,
            session_factory=get_session_factory(settings.database_url),
            storage=create_storage(settings),
            celery=create_celery_app(settings),
            redis=redis_client,
        )

    def close(self) -> None:
        """Close pooled connections (at application shutdown)."""
        self.celery.close()
        if self.redis is not None:
            self.redis.close()
        get_engine(self.settings.database_url).dispose()
