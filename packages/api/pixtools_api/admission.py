"""Admission control of POST /api/process: reject work the workers cannot take on.

Before a request's body is read, the API counts the operations that are still
QUEUED or RUNNING (the index on job_operations.status serves the count). At
MAX_BACKLOG_OPERATIONS or more it responds with 503 and Retry-After, so clients back
off instead of queueing jobs that would wait for hours or expire first.
"""

from __future__ import annotations

import structlog
from sqlalchemy import func, select

from pixtools_api.services import ApiServices
from pixtools_shared.db.models import ACTIVE_OPERATION_STATUSES, JobOperation
from pixtools_shared.errors import PixToolsError

logger = structlog.get_logger(__name__)

BACKLOG_RETRY_AFTER_SECONDS = 30


class BacklogFullError(PixToolsError):
    """The queue contains MAX_BACKLOG_OPERATIONS operations or more."""

    code = "backlog-full"
    http_status = 503
    default_message = (
        "The service has too much queued work to accept new jobs; retry after "
        "the time in Retry-After."
    )
    retry_after_seconds = BACKLOG_RETRY_AFTER_SECONDS


def count_backlog(services: ApiServices) -> int:
    """Return the number of operations not yet final."""
    with services.session_factory() as session:
        statement = (
            select(func.count())
            .select_from(JobOperation)
            .where(JobOperation.status.in_([str(s) for s in ACTIVE_OPERATION_STATUSES]))
        )
        return int(session.scalar(statement) or 0)


def check_backlog(services: ApiServices) -> None:
    """Raise BacklogFullError when the backlog is at MAX_BACKLOG_OPERATIONS."""
    limit = services.settings.MAX_BACKLOG_OPERATIONS
    if limit == 0:
        return
    backlog = count_backlog(services)
    if backlog >= limit:
        logger.warning("job_admission_rejected", backlog=backlog, limit=limit)
        raise BacklogFullError()
