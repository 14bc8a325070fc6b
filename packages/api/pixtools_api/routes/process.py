"""POST /api/process: upload an image with a list of operations; 202 with the job."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from pixtools_api.admission import check_backlog
from pixtools_api.dependencies import CallerDep, ServicesDep
from pixtools_api.idempotency import (
    IDEMPOTENCY_KEY_HEADER,
    MAX_KEY_LENGTH,
    parse_idempotency_key,
)
from pixtools_api.idempotency_reservations import reserve_waiting
from pixtools_api.schemas import JobAccepted, error_responses
from pixtools_api.submission import accept_job
from pixtools_api.upload import FormLimits, read_multipart_form

router = APIRouter(prefix="/api", tags=["jobs"])

FILE_FIELD = "file"
TEXT_FIELDS = ("operations", "operation_params", "webhook_url")

# The form is read by upload.read_multipart_form, not by FastAPI, so its schema
# is written out here for the OpenAPI document.
REQUEST_BODY_SCHEMA: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file", "operations"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "JPEG, PNG, WebP, AVIF, GIF or TIFF image.",
                    },
                    "operations": {
                        "type": "string",
                        "description": 'JSON list of operations, e.g. ["jpg", "webp"].',
                    },
                    "operation_params": {
                        "type": "string",
                        "description": "JSON object of parameters keyed by "
                        'operation, e.g. {"jpg": {"quality": 90, "width": 800}}.',
                    },
                    "webhook_url": {
                        "type": "string",
                        "description": "URL that receives a POST when the job ends.",
                    },
                },
            }
        }
    },
}


@router.post(
    "/process",
    status_code=202,
    response_model=JobAccepted,
    responses=error_responses(400, 408, 409, 413, 415, 422, 503),
    openapi_extra={
        "requestBody": REQUEST_BODY_SCHEMA,
        "parameters": [
            {
                "name": IDEMPOTENCY_KEY_HEADER,
                "in": "header",
                "required": False,
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_KEY_LENGTH,
                    "pattern": "^[A-Za-z0-9._~:+/=-]+$",
                },
                "description": "Repeat the key to get the first request's job "
                "instead of a second one (replays carry Idempotent-Replayed: true). "
                "Keys are kept for IDEMPOTENCY_KEY_TTL_SECONDS, per API key.",
            }
        ],
    },
)
async def create_process_job(
    request: Request, services: ServicesDep, caller: CallerDep
) -> JSONResponse:
    """Accept an image and its operations; the job runs in the background."""
    settings = services.settings
    idempotency_key = parse_idempotency_key(request.headers.get(IDEMPOTENCY_KEY_HEADER))
    await run_in_threadpool(check_backlog, services)

    wait_until = time.monotonic() + settings.IDEMPOTENCY_WAIT_SECONDS
    reservation = None
    if idempotency_key is not None and services.reservations is not None:
        reservation = await reserve_waiting(
            services.reservations, caller.scope, idempotency_key, wait_until
        )
    try:
        # A 413 or 408 from here leaves the body unread, so the connection is
        # closed after the response (connection_close.CloseUnreadBodyMiddleware).
        form = await read_multipart_form(
            request.stream(),
            content_type=request.headers.get("content-type"),
            content_length=request.headers.get("content-length"),
            file_field=FILE_FIELD,
            text_fields=TEXT_FIELDS,
            limits=FormLimits(
                max_file_bytes=settings.MAX_UPLOAD_BYTES,
                max_field_bytes=settings.MAX_FORM_FIELD_BYTES,
                read_timeout_seconds=settings.UPLOAD_READ_TIMEOUT_SECONDS,
            ),
        )

        def status_url_for(job_id: str) -> str:
            return str(request.url_for("read_job", job_id=job_id))

        accepted = await run_in_threadpool(
            accept_job,
            services,
            form,
            caller,
            idempotency_key,
            status_url_for,
            reservation,
            wait_until,
        )
    finally:
        if reservation is not None and services.reservations is not None:
            await run_in_threadpool(services.reservations.release, reservation)

    status_url = status_url_for(accepted.job_id)
    body = JobAccepted(
        job_id=accepted.job_id, status=accepted.status, status_url=status_url
    )
    headers = {"Location": status_url}
    if accepted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(status_code=202, content=body.model_dump(), headers=headers)
