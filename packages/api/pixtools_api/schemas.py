"""Response models, used for the OpenAPI document at /docs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class ErrorDetailPublic(BaseModel):
    field: str
    message: str


class ErrorPublic(BaseModel):
    code: str
    """Stable kebab-case error code, for example `upload-too-large`."""
    message: str
    details: list[ErrorDetailPublic]


class ErrorBody(BaseModel):
    """Body of every 4xx and 5xx response."""

    error: ErrorPublic


class JobAccepted(BaseModel):
    """Body of 202 Accepted from POST /api/process."""

    job_id: str
    status: str
    status_url: str


class OperationErrorPublic(BaseModel):
    code: str | None
    message: str | None


class OperationPublic(BaseModel):
    name: str
    status: str
    params: dict[str, Any]
    result_url: str | None
    error: OperationErrorPublic | None
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    width: int | None
    height: int | None
    size_bytes: int | None


class SourcePublic(BaseModel):
    filename: str
    format: str
    width: int
    height: int
    size_bytes: int


class WebhookPublic(BaseModel):
    url: str
    status: str | None
    attempts: int
    last_error: str | None
    last_status_code: int | None
    """HTTP status of the last attempt that got a response."""


class JobPublic(BaseModel):
    """The job resource returned by GET /api/jobs/{job_id}."""

    job_id: str
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime
    operations: list[OperationPublic]
    result_urls: dict[str, str]
    archive_url: str | None
    metadata: dict[str, Any] | None
    error_message: str | None
    source: SourcePublic
    webhook: WebhookPublic | None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "Client error"},
    "5XX": {"model": ErrorBody, "description": "Server error"},
}

# Meaning of each error status the API sends, for the OpenAPI document.
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid header, such as a malformed Idempotency-Key.",
    401: "Missing, invalid or misplaced (query string) API key.",
    403: "The download link's signature does not match.",
    404: "Not found, or created by another API key.",
    408: "The request body did not arrive within UPLOAD_READ_TIMEOUT_SECONDS.",
    409: "The first request with this Idempotency-Key is still in flight after "
    "IDEMPOTENCY_WAIT_SECONDS (Retry-After).",
    410: "The download link has expired.",
    413: "The upload, a form field or the image's dimensions exceed a limit.",
    415: "The body is not multipart/form-data or the image format is not supported.",
    422: "Invalid form fields, operations, webhook URL, or a reused Idempotency-Key.",
    429: "Rate limit of the API key exceeded (Retry-After).",
    500: "Internal error.",
    503: "Overloaded, or a dependency is unavailable (Retry-After).",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries with the error body for ``codes``."""
    return {
        code: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[code]}
        for code in (*codes, 500)
    }
