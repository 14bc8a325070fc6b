"""POST /api/process: upload an image with a list of operations; 202 with the job."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from pixtools_api.dependencies import ServicesDep
from pixtools_api.idempotency import IDEMPOTENCY_KEY_HEADER, parse_idempotency_key
from pixtools_api.schemas import ERROR_RESPONSES, JobAccepted
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
    responses=ERROR_RESPONSES,
    openapi_extra={
        "requestBody": REQUEST_BODY_SCHEMA,
        "parameters": [
            {
                "name": IDEMPOTENCY_KEY_HEADER,
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
                "description": "Repeat the key to get the same job instead of a "
                "second one.",
            }
        ],
    },
)
async def create_process_job(request: Request, services: ServicesDep) -> JSONResponse:
    """Accept an image and its operations; the job runs in the background."""
    settings = services.settings
    idempotency_key = parse_idempotency_key(request.headers.get(IDEMPOTENCY_KEY_HEADER))

    # NOTE: receiving the body has no time limit yet, and uvicorn sets none
    # either, so a client that trickles bytes keeps its connection and buffer.
    form = await read_multipart_form(
        request.stream(),
        content_type=request.headers.get("content-type"),
        content_length=request.headers.get("content-length"),
        file_field=FILE_FIELD,
        text_fields=TEXT_FIELDS,
        limits=FormLimits(
            max_file_bytes=settings.MAX_UPLOAD_BYTES,
            max_field_bytes=settings.MAX_FORM_FIELD_BYTES,
        ),
    )
    accepted = await run_in_threadpool(accept_job, services, form, idempotency_key)

    status_url = str(request.url_for("read_job", job_id=accepted.job_id))
    body = JobAccepted(
        job_id=accepted.job_id, status=accepted.status, status_url=status_url
    )
    headers = {"Location": status_url}
    if accepted.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(status_code=202, content=body.model_dump(), headers=headers)
