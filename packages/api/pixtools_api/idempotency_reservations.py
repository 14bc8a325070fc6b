"""Redis reservations of Idempotency-Keys while their first request is in flight.

Before a request with a key reads its body, the API runs ``SET key value NX PX``.
Only one request per (scope, key) gets the reservation. Concurrent repeats
wait for it without uploading their bodies (up to IDEMPOTENCY_WAIT_SECONDS,
then 409), and then replay the stored response. The value is a random owner token,
followed by the request fingerprint once the body has been hashed. The owner
deletes the reservation when it has responded, and a token check keeps it from
deleting a reservation that expired and now belongs to another request.

The reservation only serializes requests. The durable record is the
IdempotencyRecord row (see idempotency.py): a Redis restart loses reservations
in flight, and the unique (scope, key) row still stops a second job. When Redis
does not respond, a request that carries a key gets 503: accepting it without
the reservation could not rule out a concurrent duplicate on another process.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass

import redis
import structlog
from fastapi.concurrency import run_in_threadpool

from pixtools_api.idempotency import (
    WAIT_POLL_SECONDS,
    IdempotencyKeyInFlightError,
    IdempotencyStoreUnavailableError,
)

logger = structlog.get_logger(__name__)

KEY_PREFIX = "pixtools:idempotency:"

# Replace the value only while the caller still owns the reservation; keep the TTL.
_UPDATE_SCRIPT = """
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, string.len(ARGV[1])) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
"""

# Delete the reservation only while the caller still owns it.
_RELEASE_SCRIPT = """
local value = redis.call('GET', KEYS[1])
if value and string.sub(value, 1, string.len(ARGV[1])) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class Reservation:
    """A held reservation: its Redis key and the owner token."""

    redis_key: str
    token: str


def reservation_key(scope: str, key: str) -> str:
    """Redis key of (scope, key); hashed, so neither part needs escaping."""
    digest = hashlib.sha256(f"{scope}\n{key}".encode()).hexdigest()
    return KEY_PREFIX + digest


class ReservationStore:
    """SET NX PX reservations with owner tokens."""

    def __init__(self, client: redis.Redis, ttl_milliseconds: int) -> None:
        self.client = client
        self.ttl_milliseconds = ttl_milliseconds
        self._update = client.register_script(_UPDATE_SCRIPT)
        self._release = client.register_script(_RELEASE_SCRIPT)

    def reserve(self, scope: str, key: str) -> Reservation:
        """Take the reservation of (scope, key).

        Raises IdempotencyKeyInFlightError (409) when another request holds it
        and IdempotencyStoreUnavailableError (503) when Redis does not respond.
        """
        reservation = Reservation(reservation_key(scope, key), secrets.token_hex(16))
        try:
            acquired = self.client.set(
                reservation.redis_key,
                f"{reservation.token}|",
                nx=True,
                px=self.ttl_milliseconds,
            )
        except redis.RedisError as exc:
            logger.error(
                "idempotency_store_unavailable",
                scope=scope,
                error_type=type(exc).__name__,
                error=str(exc),
            )
            raise IdempotencyStoreUnavailableError() from None
        if not acquired:
            raise IdempotencyKeyInFlightError()
        return reservation

    def record_fingerprint(self, reservation: Reservation, fingerprint: str) -> None:
        """Add the request fingerprint to a held reservation (best effort)."""
        try:
            self._update(
                keys=[reservation.redis_key],
                args=[reservation.token, f"{reservation.token}|{fingerprint}"],
            )
        except redis.RedisError as exc:
            # The database record carries the fingerprint that decides replays.
            logger.warning(
                "idempotency_reservation_update_failed",
                error_type=type(exc).__name__,
                error=str(exc),
            )

    def release(self, reservation: Reservation) -> None:
        """Delete a held reservation (best effort; it expires anyway)."""
        try:
            self._release(keys=[reservation.redis_key], args=[reservation.token])
        except redis.RedisError as exc:
            logger.warning(
                "idempotency_reservation_release_failed",
                error_type=type(exc).__name__,
                error=str(exc),
            )


async def reserve_waiting(
    store: ReservationStore, scope: str, key: str, wait_until: float
) -> Reservation:
    """Take the reservation, polling until ``wait_until`` (time.monotonic) while
    another request holds it; then raise IdempotencyKeyInFlightError (409)."""
    while True:
        try:
            return await run_in_threadpool(store.reserve, scope, key)
        except IdempotencyKeyInFlightError:
            if time.monotonic() + WAIT_POLL_SECONDS > wait_until:
                raise
            await asyncio.sleep(WAIT_POLL_SECONDS)
