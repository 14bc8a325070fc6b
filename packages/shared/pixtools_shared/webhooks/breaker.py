"""One pybreaker circuit breaker per receiving host, shared by all worker processes.

With REDIS_URL set, each breaker keeps its state in Redis through pybreaker's
CircuitRedisStorage (namespace ``pixtools:webhook-breaker:{host}``, keys
``pixtools:webhook-breaker:{host}:pybreaker:state`` and so on), so every
worker process and machine sees the same open or closed circuit. Without Redis,
or when Redis is down at the time a breaker is made, the state lives in the
process (CircuitMemoryStorage): each process then counts its own failures.

pybreaker only sees a failure when the guarded call raises, and its decorator
does not await coroutines, so the guarded call is the synchronous HTTP attempt
(``breaker.call(attempt)``), which raises on timeouts, connection errors and 5xx.

NOTE: ``breaker.call`` holds the breaker's lock for the whole attempt, so with a
thread pool (``--pool threads``) deliveries to one host run one at a time per
process. Celery's default prefork pool runs one task per process anyway.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pybreaker
import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

from pixtools_shared.observability.breaker import BreakerMetricsListener

log = structlog.get_logger(__name__)

NAMESPACE_PREFIX = "pixtools:webhook-breaker"

REDIS_TIMEOUT_SECONDS = 2.0


class BreakerRegistry:
    """Creates and caches the breaker of each host for one process."""

    def __init__(
        self,
        *,
        fail_max: int,
        reset_seconds: float,
        redis_client: redis.Redis | None,
        namespace_prefix: str = NAMESPACE_PREFIX,
    ) -> None:
        self.fail_max = fail_max
        self.reset_seconds = reset_seconds
        self.redis_client = redis_client
        self.namespace_prefix = namespace_prefix
        self._breakers: dict[str, pybreaker.CircuitBreaker] = {}
        self._storages: dict[str, pybreaker.CircuitBreakerStorage] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, redis_url: str | None, fail_max: int, reset_seconds: float
    ) -> BreakerRegistry:
        client = None
        if redis_url:
            # pybreaker stores bytes and decodes them itself.
            client = redis.Redis.from_url(
                redis_url,
                decode_responses=False,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                # One quick retry instead of redis-py's default backoff, which
                # would stall every delivery while Redis is down.
                retry=Retry(NoBackoff(), 1),
            )
        return cls(fail_max=fail_max, reset_seconds=reset_seconds, redis_client=client)

    def for_host(self, host: str) -> pybreaker.CircuitBreaker:
        """Return the breaker of ``host`` (lower case, no trailing dot)."""
        with self._lock:
            breaker = self._breakers.get(host)
            if breaker is None:
                storage = self._storage(host)
                breaker = pybreaker.CircuitBreaker(
                    fail_max=self.fail_max,
                    reset_timeout=self.reset_seconds,
                    state_storage=storage,
                    name=host,
                    # The guarded call's own error is re-raised when it trips
                    # the breaker, so CircuitBreakerError always means "not sent".
                    throw_new_error_on_trip=False,
                    listeners=[BreakerMetricsListener("webhook")],
                )
                self._breakers[host] = breaker
                self._storages[host] = storage
            return breaker

    def seconds_until_half_open(self, host: str) -> float:
        """Seconds until the open breaker of ``host`` lets a trial call through."""
        storage = self._storages.get(host)
        opened_at = storage.opened_at if storage is not None else None
        if opened_at is None:
            return 0.0
        elapsed = (datetime.now(UTC) - opened_at).total_seconds()
        return max(0.0, self.reset_seconds - elapsed)

    def _storage(self, host: str) -> pybreaker.CircuitBreakerStorage:
        if self.redis_client is None:
            return pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
        try:
            return pybreaker.CircuitRedisStorage(
                pybreaker.STATE_CLOSED,
                self.redis_client,
                namespace=f"{self.namespace_prefix}:{host}",
            )
        except redis.RedisError as exc:
            log.warning(
                "webhook_breaker_redis_unavailable",
                host=host,
                error_type=type(exc).__name__,
                error=str(exc),
            )
            return pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)
