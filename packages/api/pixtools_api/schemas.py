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
