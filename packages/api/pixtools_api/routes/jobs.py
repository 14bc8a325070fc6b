"""GET /api/jobs/{job_id}: the job resource with its operations and download links."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from pixtools_api.dependencies import JobAccessDep, ServicesDep
from pixtools_api.schemas import JobPublic, error_responses
from pixtools_api.services import ApiServices
from pixtools_shared.errors import JobNotFoundError
from pixtools_shared.job_resource import job_to_resource
from pixtools_shared.jobs import require_job

router = APIRouter(prefix="/api", tags=["jobs"])

# Job ids are UUID4 strings (36 characters); longer path values are not looked up.
MAX_JOB_ID_LENGTH = 64


def load_job_resource(services: ApiServices, job_id: str) -> dict[str, Any]:
    """Read the job and build its resource, with fresh download URLs."""
    with services.session_factory() as session:
        job = require_job(session, job_id)
        return job_to_resource(
            job,
            services.storage,
            expires_in=services.settings.DOWNLOAD_URL_EXPIRES_SECONDS,
        )


@router.get(
    "/jobs/{job_id}",
    name="read_job",
    # Returns 404 also for jobs of other API keys.
    dependencies=[JobAccessDep],
    responses={200: {"model": JobPublic}, **error_responses(404, 503)},
)
async def read_job(job_id: str, services: ServicesDep) -> JSONResponse:
    """Return the job's status, per-operation results, archive and metadata."""
    if len(job_id) > MAX_JOB_ID_LENGTH:
        raise JobNotFoundError()
    resource = await run_in_threadpool(load_job_resource, services, job_id)
    # Download URLs expire, so clients must not cache the resource.
    return JSONResponse(resource, headers={"Cache-Control": "no-store"})
