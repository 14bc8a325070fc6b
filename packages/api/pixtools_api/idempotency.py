"""Idempotency-Key handling of POST /api/process: keys, fingerprints, durable records.

A client that repeats a request with the same Idempotency-Key gets the response
of the first request (202 with the same job id) instead of a second job. Keys
are scoped per client: the API key id, or one anonymous scope. The header is a
token (``8e03978e-40d5-43e8-...``) or, as in the IETF httpapi draft, a quoted
string; 1 to 255 of the characters in KEY_PATTERN.

Order of one request with a key:

1. Redis reservation (idempotency_reservations.py), when REDIS_URL is set:
   concurrent repeats wait (IDEMPOTENCY_WAIT_SECONDS, then 409) before they
   upload anything.
2. The body is read and validated; its fingerprint (SHA-256 over the file
   bytes, file name, operations with their parameters and the webhook URL) is
   computed.
3. ``claim_key`` inserts the IdempotencyRecord, still without a job, in its
   own committed transaction: unique on (scope, key), so exactly one request
   claims a key even without Redis (the embedded profile). An existing record
   with another fingerprint gives 422, a finished one is replayed. While the
   record is unfinished, the repeat waits up to IDEMPOTENCY_WAIT_SECONDS for
   it (then replays), and gets 409 with Retry-After when it is still
   unfinished.
4. The upload is stored and the job committed; the same transaction fills in
   the record's job and stored response (``complete_claim``). A failure before
   that commit deletes the unfinished record, so the client may retry.

Records expire after IDEMPOTENCY_KEY_TTL_SECONDS; an expired key starts over.
A record left unfinished by a crashed API process is taken over after
CLAIM_STALE_SECONDS.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pixtools_shared.db.models import IdempotencyRecord, utc_now
from pixtools_shared.errors import PixToolsError
from pixtools_shared.operations import OperationRequest

logger = structlog.get_logger(__name__)

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"

# Equals the length of IdempotencyRecord.key.
MAX_KEY_LENGTH = 255
KEY_PATTERN = re.compile(r"[A-Za-z0-9._~:+/=-]+")

# Seconds a client waits before repeating a request whose first try is in flight.
IN_FLIGHT_RETRY_AFTER_SECONDS = 2

# An unfinished record older than this belongs to a request whose API process
# died after the claim. A new request may then take the key over.
CLAIM_STALE_SECONDS = 300

# Attempts of claim_key when concurrent requests insert or delete the record.
CLAIM_ATTEMPTS = 3

# Interval at which a repeat checks whether the first request has finished.
WAIT_POLL_SECONDS = 0.1


class InvalidIdempotencyKeyError(PixToolsError):
    code = "invalid-idempotency-key"
    http_status = 400
    default_message = "The Idempotency-Key header is invalid."


class IdempotencyKeyReusedError(PixToolsError):
    """The key was already used for a request with different content."""

    code = "idempotency-key-reused"
    http_status = 422
    default_message = (
        "The Idempotency-Key was already used for a different request; "
        "send a new key for a new request."
    )


class IdempotencyKeyInFlightError(PixToolsError):
    """The first request with this key has not finished yet."""

    code = "idempotency-key-in-flight"
    http_status = 409
    default_message = (
        "A request with this Idempotency-Key is still being processed; repeat it "
        "after the time in Retry-After to get its result."
    )
    retry_after_seconds = IN_FLIGHT_RETRY_AFTER_SECONDS


class IdempotencyStoreUnavailableError(PixToolsError):
    """Redis, which stores the reservations, is unreachable."""

    code = "idempotency-store-unavailable"
    http_status = 503
    default_message = (
        "Requests with an Idempotency-Key cannot be accepted right now; retry "
        "after the time in Retry-After."
    )
    retry_after_seconds = 5


def parse_idempotency_key(header: str | None) -> str | None:
    """Validate the Idempotency-Key header value; None when the header is absent.

    Raises InvalidIdempotencyKeyError (400) for an empty, too long or quoted
    value with characters outside KEY_PATTERN.
    """
    if header is None:
        return None

    key = header.strip()
    if len(key) >= 2 and key.startswith('"') and key.endswith('"'):
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_LENGTH:
        message = f"must be 1 to {MAX_KEY_LENGTH} characters"
    elif not KEY_PATTERN.fullmatch(key):
        message = "may contain only letters, digits and . _ ~ : + / = -"
    else:
        return key

    raise InvalidIdempotencyKeyError(
        f"The {IDEMPOTENCY_KEY_HEADER} header is invalid: it {message}.",
        [{"field": IDEMPOTENCY_KEY_HEADER, "message": message}],
    )


def compute_request_fingerprint(
    *,
    source_sha256: str,
    filename: str | None,
    operations: Sequence[OperationRequest],
    webhook_url: str | None,
) -> str:
    """Hash what makes two process requests the same request (sha256 hex)."""
    canonical = {
        "source_sha256": source_sha256,
        "filename": filename,
        "operations": [
            {"name": request.name.value, "params": request.params}
            for request in operations
        ],
        "webhook_url": webhook_url,
    }
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StoredResponse:
    """The response of the first request, as the record keeps it."""

    status_code: int
    body: dict[str, Any]
    job_id: str


@dataclass(frozen=True)
class Claim:
    """Outcome of claim_key: a new claim (record id) or a response to replay."""

    record_id: int | None = None
    replay: StoredResponse | None = None


def _key_in_use(details: str) -> list[dict[str, str]]:
    return [{"field": IDEMPOTENCY_KEY_HEADER, "message": details}]


def _changed(session: Session, statement: Any) -> bool:
    result = cast(CursorResult[Any], session.execute(statement))
    return result.rowcount > 0


def claim_key(
    session_factory: sessionmaker[Session],
    scope: str,
    key: str,
    fingerprint: str,
    *,
    ttl_seconds: int,
    now: datetime | None = None,
) -> Claim:
    """Insert the unfinished record of (scope, key), or return what it contains.

    Raises IdempotencyKeyReusedError (422) when the key belongs to a request
    with another fingerprint, and IdempotencyKeyInFlightError (409) while the
    first request is unfinished.
    """
    for _ in range(CLAIM_ATTEMPTS):
        current = now or utc_now()
        with session_factory() as session:
            record = session.scalars(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
                )
            ).one_or_none()

            if record is None:
                record = IdempotencyRecord(
                    scope=scope,
                    key=key,
                    request_fingerprint=fingerprint,
                    job_id=None,
                    created_at=current,
                    expires_at=current + timedelta(seconds=ttl_seconds),
                )
                session.add(record)
                try:
                    session.commit()
                except IntegrityError:
                    # A concurrent request inserted it first; read its record.
                    session.rollback()
                    continue
                logger.info("idempotency_key_claimed", scope=scope, record_id=record.id)
                return Claim(record_id=record.id)

            outcome = _existing_claim(session, record, fingerprint, current)
            if outcome is not None:
                return outcome

    raise IdempotencyKeyInFlightError(details=_key_in_use("key in flight"))


def claim_key_waiting(
    session_factory: sessionmaker[Session],
    scope: str,
    key: str,
    fingerprint: str,
    *,
    ttl_seconds: int,
    wait_until: float,
) -> Claim:
    """Run claim_key; while the first request is in flight, poll until
    ``wait_until`` (time.monotonic) for its response, then give up with 409."""
    while True:
        try:
            return claim_key(
                session_factory, scope, key, fingerprint, ttl_seconds=ttl_seconds
            )
        except IdempotencyKeyInFlightError:
            if time.monotonic() + WAIT_POLL_SECONDS > wait_until:
                raise
            time.sleep(WAIT_POLL_SECONDS)


def _existing_claim(
    session: Session, record: IdempotencyRecord, fingerprint: str, now: datetime
) -> Claim | None:
    """Decide on an existing record; None means it was removed, so claim again."""
    if record.expires_at <= now:
        _changed(
            session,
            delete(IdempotencyRecord).where(
                IdempotencyRecord.id == record.id, IdempotencyRecord.expires_at <= now
            ),
        )
        session.commit()
        logger.info("idempotency_key_expired", scope=record.scope, record_id=record.id)
        return None

    unfinished = record.job_id is None
    if unfinished and record.created_at < now - timedelta(seconds=CLAIM_STALE_SECONDS):
        taken = _changed(
            session,
            update(IdempotencyRecord)
            .where(
                IdempotencyRecord.id == record.id,
                IdempotencyRecord.job_id.is_(None),
                IdempotencyRecord.created_at == record.created_at,
            )
            .values(request_fingerprint=fingerprint, created_at=now),
        )
        session.commit()
        if taken:
            logger.warning(
                "idempotency_stale_claim_taken_over",
                scope=record.scope,
                record_id=record.id,
            )
            return Claim(record_id=record.id)
        return None

    if unfinished:
        # Even with another fingerprint: the first request may still fail and
        # free the key, so 409 (repeat later) fits better than 422 here.
        logger.info("idempotency_key_in_flight", scope=record.scope, store="database")
        raise IdempotencyKeyInFlightError(details=_key_in_use("key in flight"))
    if record.request_fingerprint != fingerprint:
        logger.info("idempotency_key_reused", scope=record.scope, record_id=record.id)
        raise IdempotencyKeyReusedError(details=_key_in_use("key reused"))

    assert record.job_id is not None
    body = record.response_body or {"job_id": record.job_id, "status": "QUEUED"}
    return Claim(
        replay=StoredResponse(record.response_status or 202, dict(body), record.job_id)
    )


def complete_claim(
    session: Session,
    record_id: int,
    response: StoredResponse,
    *,
    now: datetime | None = None,
) -> bool:
    """Store the job and response on the claimed record, in the job's transaction.

    Returns False when the record is no longer this request's (taken over after
    CLAIM_STALE_SECONDS); the caller then rolls back.
    """
    return _changed(
        session,
        update(IdempotencyRecord)
        .where(IdempotencyRecord.id == record_id, IdempotencyRecord.job_id.is_(None))
        .values(
            job_id=response.job_id,
            response_status=response.status_code,
            response_body=response.body,
            completed_at=now or utc_now(),
        ),
    )


def release_claim(session_factory: sessionmaker[Session], record_id: int) -> None:
    """Delete an unfinished record after a failed request (best effort)."""
    try:
        with session_factory() as session:
            _changed(
                session,
                delete(IdempotencyRecord).where(
                    IdempotencyRecord.id == record_id,
                    IdempotencyRecord.job_id.is_(None),
                ),
            )
            session.commit()
    except Exception as exc:
        # The key stays blocked until CLAIM_STALE_SECONDS pass; the request's
        # own error is the one reported.
        logger.warning(
            "idempotency_claim_release_failed", record_id=record_id, exc_info=exc
        )
