"""Per-client request limit: a fixed one-minute window counted in Redis.

The first request of a client starts its window: one Lua script increments the
counter ``pixtools:rate:{client}`` and gives it a 60 s expiry when it is new,
so every API process shares the count. Requests past RATE_LIMIT_PER_MINUTE
get 429 with Retry-After set to the seconds left in the window.

When Redis is not configured, or does not respond, requests are not limited:
the limit protects capacity and is not a security boundary, so an outage of
Redis does not take the API down with it. Each failure is logged, at most once
per LOG_INTERVAL_SECONDS.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis
import structlog

from pixtools_shared.errors import PixToolsError

logger = structlog.get_logger(__name__)

WINDOW_MILLISECONDS = 60_000
KEY_PREFIX = "pixtools:rate:"
LOG_INTERVAL_SECONDS = 60.0

# Returns {count, milliseconds left}; sets the expiry on the window's first hit.
_COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


class RateLimitedError(PixToolsError):
    """The client sent more than RATE_LIMIT_PER_MINUTE requests this minute."""

    code = "rate-limited"
    http_status = 429
    default_message = "Too many requests; retry after the time in Retry-After."

    def __init__(self, retry_after_seconds: int, limit: int) -> None:
        super().__init__(
            f"More than {limit} requests in one minute; retry in "
            f"{retry_after_seconds} s."
        )
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    count: int
    retry_after_seconds: int


class RateLimiter:
    """Counts requests per client in Redis; thread-safe (redis-py pools)."""

    def __init__(
        self, client: redis.Redis, limit_per_minute: int, key_prefix: str = KEY_PREFIX
    ) -> None:
        self.client = client
        self.limit = limit_per_minute
        self.key_prefix = key_prefix
        self._script = client.register_script(_COUNT_SCRIPT)
        self._last_error_log = 0.0

    def hit(self, client_id: str) -> RateDecision | None:
        """Count one request of ``client_id``; None when Redis failed (allowed)."""
        try:
            count, ttl_ms = self._script(
                keys=[self.key_prefix + client_id], args=[WINDOW_MILLISECONDS]
            )
        except redis.RedisError as exc:
            now = time.monotonic()
            if now - self._last_error_log >= LOG_INTERVAL_SECONDS:
                self._last_error_log = now
                logger.warning(
                    "rate_limit_unavailable",
                    error_type=type(exc).__name__,
                    error=str(exc),
                )
            return None

        retry_after = max(1, math.ceil(int(ttl_ms) / 1000))
        return RateDecision(int(count) <= self.limit, int(count), retry_after)

    def check(self, client_id: str) -> None:
        """Raise RateLimitedError when ``client_id`` is over the limit."""
        decision = self.hit(client_id)
        if decision is not None and not decision.allowed:
            raise RateLimitedError(decision.retry_after_seconds, self.limit)
