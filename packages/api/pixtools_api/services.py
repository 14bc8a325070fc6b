"""The long-lived clients one API process shares between requests."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.orm import Session, sessionmaker

from pixtools_api.idempotency_reservations import ReservationStore
from pixtools_api.rate_limit import RateLimiter
from pixtools_shared.celery_app import create_celery_app
from pixtools_shared.db.session import get_engine, get_session_factory
from pixtools_shared.settings import Settings
from pixtools_shared.storage import ObjectStorage, create_storage

# Timeout of each Redis command. Rate limits skip a Redis that does not respond;
# requests with an Idempotency-Key get 503 then.
REDIS_TIMEOUT_SECONDS = 2.0
REDIS_RETRIES = 1

# Seconds an idempotency reservation outlives the upload read timeout: the time
# to store the upload and commit the job.
RESERVATION_MARGIN_SECONDS = 120


@dataclass
class ApiServices:
    """Settings plus the database, storage, broker and Redis clients of the API."""

    settings: Settings
    session_factory: sessionmaker[Session]
    storage: ObjectStorage
    celery: Celery
    redis: redis.Redis | None
    reservations: ReservationStore | None = None
    """Idempotency-Key reservations; None without Redis (database only)."""
    rate_limiter: RateLimiter | None = None
    """None without Redis or with RATE_LIMIT_PER_MINUTE 0."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiServices:
        """Build the clients; none of them connects before its first use."""
        redis_client = None
        if settings.REDIS_URL:
            redis_client = redis.Redis.from_url(
                settings.REDIS_URL,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                # One quick retry: redis-py's default backs off for seconds,
                # which every request would wait through while Redis is down.
                retry=Retry(NoBackoff(), REDIS_RETRIES),
            )
        reservations = None
        rate_limiter = None
        if redis_client is not None:
            ttl_seconds = (
                settings.UPLOAD_READ_TIMEOUT_SECONDS + RESERVATION_MARGIN_SECONDS
            )
            reservations = ReservationStore(redis_client, int(ttl_seconds * 1000))
            if settings.RATE_LIMIT_PER_MINUTE:
                rate_limiter = RateLimiter(redis_client, settings.RATE_LIMIT_PER_MINUTE)
        return cls(
            settings=settings,
            session_factory=get_session_factory(settings.database_url),
            storage=create_storage(settings),
            celery=create_celery_app(settings),
            redis=redis_client,
            reservations=reservations,
            rate_limiter=rate_limiter,
        )

    def close(self) -> None:
        """Close pooled connections (at application shutdown)."""
        self.celery.close()
        if self.redis is not None:
            self.redis.close()
        get_engine(self.settings.database_url).dispose()
