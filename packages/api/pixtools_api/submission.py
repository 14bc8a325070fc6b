"""Acceptance of one process request: checks, storage, job row, dispatch.

Everything here is blocking (Pillow, database, storage, broker), so the route
runs `accept_job` in a worker thread once the upload has been read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from uuid import uuid4

import structlog

from pixtools_api.auth import Caller
from pixtools_api.idempotency import (
    IdempotencyKeyInFlightError,
    StoredResponse,
    claim_key_waiting,
    complete_claim,
    compute_request_fingerprint,
    release_claim,
)
from pixtools_api.idempotency_reservations import Reservation
from pixtools_api.services import ApiServices
from pixtools_api.upload import MultipartForm
from pixtools_shared.db.models import Job
from pixtools_shared.errors import InvalidOperationsError
from pixtools_shared.imaging.limits import ImageLimits
from pixtools_shared.imaging.probe import ImageInfo, probe_image
from pixtools_shared.jobs import SourceInfo, create_job
from pixtools_shared.operations import OperationRequest, parse_operation_request
from pixtools_shared.outbox import relay as relay_outbox
from pixtools_shared.settings import Settings
from pixtools_shared.storage.keys import upload_key
from pixtools_shared.webhook_url import validate_webhook_url

logger = structlog.get_logger(__name__)

# Stored content type of an upload, by the format probe_image reports.
SOURCE_CONTENT_TYPES: dict[str, str] = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "AVIF": "image/avif",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
}

DEFAULT_SOURCE_FILENAME = "upload"


# Builds the status URL of a job id (from the request, for its Host header).
StatusUrlFor = Callable[[str], str]


@dataclass(frozen=True)
class AcceptedJob:
    """The job a request created or, for a repeated Idempotency-Key, replayed."""

    job_id: str
    status: str
    replayed: bool


def parse_operations(fields: dict[str, str], max_side: int) -> list[OperationRequest]:
    operations_json = fields.get("operations")
    if operations_json is None:
        raise InvalidOperationsError(
            "The form field 'operations' is required.",
            [{"field": "operations", "message": "field required"}],
        )
    return parse_operation_request(
        operations_json, fields.get("operation_params"), max_side=max_side
    )


def parse_webhook_url(fields: dict[str, str], settings: Settings) -> str | None:
    """Return the normalised webhook URL, None when the field is empty or absent.

    Raises InvalidWebhookUrlError (422) under the rules the delivery task applies.
    """
    url = fields.get("webhook_url", "").strip()
    if not url:
        return None
    return validate_webhook_url(url, settings)


@dataclass(frozen=True)
class ValidatedRequest:
    """A process request that passed every check, ready to be stored."""

    data: bytes
    filename: str
    info: ImageInfo
    operations: list[OperationRequest]
    webhook_url: str | None
    fingerprint: str


def validate_request(services: ApiServices, form: MultipartForm) -> ValidatedRequest:
    """Check the upload and the form fields; raise the matching PixToolsError."""
    settings = services.settings
    data = form.file.data

    # probe_image identifies the format from the bytes (415 with the detected
    # format) and checks the declared size (413) before any pixel is decoded.
    info = probe_image(data, ImageLimits.from_settings(settings))
    operations = parse_operations(form.fields, settings.MAX_IMAGE_SIDE)
    webhook_url = parse_webhook_url(form.fields, settings)
    filename = form.file.filename or DEFAULT_SOURCE_FILENAME

    fingerprint = compute_request_fingerprint(
        source_sha256=hashlib.sha256(data).hexdigest(),
        filename=filename,
        operations=operations,
        webhook_url=webhook_url,
    )
    return ValidatedRequest(data, filename, info, operations, webhook_url, fingerprint)


def accept_job(
    services: ApiServices,
    form: MultipartForm,
    caller: Caller,
    idempotency_key: str | None,
    status_url_for: StatusUrlFor,
    reservation: Reservation | None = None,
    wait_until: float = 0.0,
) -> AcceptedJob:
    """Validate the request, store the upload, create the job and dispatch it.

    With an Idempotency-Key the key is claimed in the database first (see
    idempotency.py), so a repeat is replayed or rejected before anything is
    stored. A repeat of a request still in flight waits for it until
    ``wait_until`` (time.monotonic; 0 does not wait).
    """
    request = validate_request(services, form)
    if idempotency_key is None:
        return create_and_dispatch(services, request, caller, None, status_url_for)

    if reservation is not None and services.reservations is not None:
        services.reservations.record_fingerprint(reservation, request.fingerprint)
    claim = claim_key_waiting(
        services.session_factory,
        caller.scope,
        idempotency_key,
        request.fingerprint,
        ttl_seconds=services.settings.IDEMPOTENCY_KEY_TTL_SECONDS,
        wait_until=wait_until,
    )
    if claim.replay is not None:
        logger.info("job_replayed", job_id=claim.replay.job_id, key_id=caller.key_id)
        return AcceptedJob(
            job_id=claim.replay.job_id,
            status=str(claim.replay.body.get("status", "QUEUED")),
            replayed=True,
        )

    assert claim.record_id is not None
    try:
        return create_and_dispatch(
            services, request, caller, claim.record_id, status_url_for
        )
    except BaseException:
        release_claim(services.session_factory, claim.record_id)
        raise


def create_and_dispatch(
    services: ApiServices,
    request: ValidatedRequest,
    caller: Caller,
    claim_record_id: int | None,
    status_url_for: StatusUrlFor,
) -> AcceptedJob:
    """Store the upload, commit the job (and complete the key's claim), send tasks.

    The job, its outbox messages, its owner and the idempotency record's
    stored response are committed in one transaction.
    """
    job_id = str(uuid4())
    source_key = upload_key(job_id)
    info = request.info
    services.storage.put(
        "uploads",
        source_key,
        request.data,
        SOURCE_CONTENT_TYPES.get(info.format, "application/octet-stream"),
    )

    try:
        with services.session_factory() as session:
            job = create_job(
                session,
                operations=request.operations,
                source=SourceInfo(
                    filename=request.filename,
                    format=info.format,
                    width=info.width,
                    height=info.height,
                    size_bytes=len(request.data),
                ),
                job_id=job_id,
                webhook_url=request.webhook_url,
                settings=services.settings,
            )
            if caller.key_id is not None:
                job.owner = caller.key_id
            if claim_record_id is not None:
                response = StoredResponse(
                    status_code=202,
                    body={
                        "job_id": job.id,
                        "status": str(job.status),
                        "status_url": status_url_for(job.id),
                    },
                    job_id=job.id,
                )
                if not complete_claim(session, claim_record_id, response):
                    # Another request took the key over as stale; it owns it.
                    raise IdempotencyKeyInFlightError()
            session.commit()
    except BaseException:
        discard_upload(services, job_id, source_key)
        raise

    logger.info(
        "job_accepted",
        job_id=job.id,
        key_id=caller.key_id,
        operations=[operation.name.value for operation in request.operations],
        source_format=info.format,
        source_width=info.width,
        source_height=info.height,
        size_bytes=len(request.data),
    )
    dispatch_accepted_job(services, job)
    return AcceptedJob(job_id=job.id, status=job.status, replayed=False)


def dispatch_accepted_job(services: ApiServices, job: Job) -> None:
    """Publish the job's outbox messages; a broker failure leaves them to beat.

    create_job committed the task messages with the job (the outbox), so
    nothing is lost when the broker is down: beat's relay task publishes them
    once it is back. relay() logs its own errors and never raises.
    """
    relay_outbox(services.celery, job_id=job.id, settings=services.settings)


def discard_upload(services: ApiServices, job_id: str, key: str) -> None:
    """Delete the stored upload of a job that was never created (best effort)."""
    try:
        services.storage.delete("uploads", key)
    except Exception as exc:
        # The request's own error is the one to report, so this one is only logged.
        # NOTE: no task purges an upload without a job row, so a failed delete
        # leaves the object in storage until it is removed by hand.
        logger.warning("upload_cleanup_failed", job_id=job_id, key=key, exc_info=exc)
