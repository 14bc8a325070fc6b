"""FastAPI dependencies that hand routes the process-wide services and the caller."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from pixtools_api.access import CALLER_STATE
from pixtools_api.auth import ApiKeyRequiredError, Caller
from pixtools_api.services import ApiServices
from pixtools_shared.db.models import Job
from pixtools_shared.errors import JobNotFoundError
from pixtools_shared.settings import Settings

logger = structlog.get_logger(__name__)


def get_services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


def get_settings_dependency(request: Request) -> Settings:
    return get_services(request).settings


def get_caller(request: Request) -> Caller:
    """Return the caller that AccessControlMiddleware stored for this request."""
    caller = request.scope.get("state", {}).get(CALLER_STATE)
    if not isinstance(caller, Caller):
        # Only a route outside the middleware's /api rules could get here;
        # reject rather than guess an identity.
        raise ApiKeyRequiredError()
    return caller


ServicesDep = Annotated[ApiServices, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings_dependency)]
CallerDep = Annotated[Caller, Depends(get_caller)]


def job_owner_matches(services: ApiServices, job_id: str, caller: Caller) -> bool:
    """Tell whether the job is missing or belongs to ``caller``.

    A missing job is left to the route, which responds with 404 itself.
    """
    with services.session_factory() as session:
        row = session.execute(select(Job.owner).where(Job.id == job_id)).first()
    return row is None or row.owner == caller.key_id


async def authorize_job_access(
    job_id: str, request: Request, services: ServicesDep, caller: CallerDep
) -> None:
    """Raise 404 for a job that another API key (or anonymous caller) created.

    404 rather than 403, so a caller cannot tell other clients' job ids from
    ids that do not exist.
    """
    if len(job_id) > 64:
        raise JobNotFoundError()
    if not await run_in_threadpool(job_owner_matches, services, job_id, caller):
        logger.warning("job_access_denied", job_id=job_id, key_id=caller.key_id)
        raise JobNotFoundError(f"No job with id {job_id!r} exists.")


JobAccessDep = Depends(authorize_job_access)
