"""The JSON job resource returned by GET /api/jobs/{job_id} and sent by webhooks."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from pixtools_shared.db.models import Job, JobOperation, JobStatus, OperationStatus
from pixtools_shared.storage.base import ObjectStorage

MAX_FILENAME_STEM_LENGTH = 80
DEFAULT_FILENAME_STEM = "image"

_UNSAFE_FILENAME_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def download_stem(source_filename: str) -> str:
    """ASCII-safe stem of the uploaded file name, used to name downloads."""
    stem = PurePosixPath(source_filename.replace("\\", "/")).stem
    stem = _UNSAFE_FILENAME_CHARS.sub("_", stem).strip("._-")
    return stem[:MAX_FILENAME_STEM_LENGTH] or DEFAULT_FILENAME_STEM


def operation_filename(job: Job, operation: JobOperation) -> str:
    """Download name of an operation's result, e.g. ``photo-webp.webp``."""
    extension = operation.output_extension or "bin"
    return f"{download_stem(job.source_filename)}-{operation.name}.{extension}"


def archive_filename(job: Job) -> str:
    return f"{download_stem(job.source_filename)}-results.zip"


def _operation_resource(
    job: Job, operation: JobOperation, storage: ObjectStorage, expires_in: int | None
) -> dict[str, Any]:
    result_url = None
    if (
        operation.status == OperationStatus.SUCCEEDED
        and operation.output_key
        and job.status != JobStatus.EXPIRED
    ):
        result_url = storage.download_url(
            "outputs",
            operation.output_key,
            operation_filename(job, operation),
            expires_in,
        )

    error = None
    if operation.status == OperationStatus.FAILED:
        error = {"code": operation.error_code, "message": operation.error_message}

    return {
        "name": operation.name,
        "status": str(operation.status),
        "params": operation.params,
        "result_url": result_url,
        "error": error,
        "queued_at": _iso(operation.queued_at),
        "started_at": _iso(operation.started_at),
        "finished_at": _iso(operation.finished_at),
        "attempts": operation.attempts,
        "width": operation.width,
        "height": operation.height,
        "size_bytes": operation.size_bytes,
    }


def job_to_resource(
    job: Job, storage: ObjectStorage, *, expires_in: int | None = None
) -> dict[str, Any]:
    """Build the job resource; download URLs are valid for ``expires_in`` seconds.

    ``expires_in`` None uses the storage's default (DOWNLOAD_URL_EXPIRES_SECONDS).
    Operations keep the order of the request.
    """
    operations = [
        _operation_resource(job, operation, storage, expires_in)
        for operation in job.operations
    ]
    result_urls = {
        entry["name"]: entry["result_url"]
        for entry in operations
        if entry["result_url"] is not None
    }

    archive_url = None
    if job.archive_key and job.status != JobStatus.EXPIRED:
        archive_url = storage.download_url(
            "bundles", job.archive_key, archive_filename(job), expires_in
        )

    webhook = None
    if job.webhook_url:
        webhook = {
            "url": job.webhook_url,
            "status": job.webhook_status,
            "attempts": job.webhook_attempts,
            "last_error": job.webhook_last_error,
            "last_status_code": job.webhook_last_status_code,
        }

    return {
        "job_id": job.id,
        "status": str(job.status),
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "expires_at": _iso(job.expires_at),
        "operations": operations,
        "result_urls": result_urls,
        "archive_url": archive_url,
        "metadata": job.image_metadata,
        "error_message": job.error_message,
        "source": {
            "filename": job.source_filename,
            "format": job.source_format,
            "width": job.source_width,
            "height": job.source_height,
            "size_bytes": job.source_size_bytes,
        },
        "webhook": webhook,
    }
