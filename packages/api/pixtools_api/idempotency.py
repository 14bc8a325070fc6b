"""Idempotency-Key handling of POST /api/process.

A client that repeats a request with the same Idempotency-Key gets the job that
the first request created, instead of a second job. Records are scoped per caller.
Until the API has authentication every caller shares ANONYMOUS_SCOPE.

The guarantee rests on the database: the IdempotencyRecord table has a unique
constraint on (scope, key), and the record is inserted in the same transaction
as the job. Of two concurrent requests with one key, exactly one commits; the
other gets an IntegrityError, rolls back and replays the winner's job.

A key reused for a different request (other file, operations, parameters or
webhook) is rejected with 422, so a client bug cannot silently return an
unrelated job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pixtools_api.errors import InvalidRequestError
from pixtools_shared.errors import PixToolsError
from pixtools_shared.jobs import find_idempotency_record
from pixtools_shared.operations import OperationRequest

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
ANONYMOUS_SCOPE = ""

# Equals the length of IdempotencyRecord.key.
MAX_KEY_LENGTH = 255

UNIQUE_CONSTRAINT_NAME = "uq_idempotency_records_scope_key"


class IdempotencyKeyReusedError(PixToolsError):
    """The key was already used for a request with different content."""

    code = "idempotency-key-reused"
    http_status = 422
    default_message = (
        "The Idempotency-Key was already used for a different request; "
        "send a new key for a new request."
    )


class IdempotencyKeyExpiredError(PixToolsError):
    """The key belongs to an expired job whose record is not purged yet."""

    code = "idempotency-key-expired"
    http_status = 409
    default_message = "The Idempotency-Key belongs to an expired job; send a new key."


def parse_idempotency_key(header: str | None) -> str | None:
    """Validate the Idempotency-Key header value; None when the header is absent.

    A key is 1 to MAX_KEY_LENGTH visible ASCII characters (a UUID fits).
    """
    if header is None:
        return None

    key = header.strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        message = f"must be 1 to {MAX_KEY_LENGTH} characters"
    elif not all("!" <= char <= "~" for char in key):
        message = "must contain only visible ASCII characters"
    else:
        return key

    raise InvalidRequestError(
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


def find_replayed_job_id(
    session: Session, scope: str, key: str, fingerprint: str
) -> str | None:
    """Return the job id stored for the key, or None when the key is new.

    Raises IdempotencyKeyReusedError when the stored request differs.
    """
    record = find_idempotency_record(session, scope, key)
    if record is None:
        return None
    if record.request_fingerprint != fingerprint:
        raise IdempotencyKeyReusedError(
            details=[{"field": IDEMPOTENCY_KEY_HEADER, "message": "key reused"}]
        )
    return record.job_id


def is_idempotency_conflict(error: IntegrityError) -> bool:
    """Tell whether an IntegrityError comes from the (scope, key) unique constraint.

    PostgreSQL names the constraint in its message. SQLite names the columns
    instead ("UNIQUE constraint failed: idempotency_records.scope, ...").
    """
    text = str(error.orig)
    return UNIQUE_CONSTRAINT_NAME in text or "idempotency_records.key" in text
