"""Observations the job service and the operation pipeline report.

``record_job_finished`` counts a job and its end-to-end latency only once the
transaction that finished it commits: a rolled-back completion (a lost race, a
database error) counts nothing. ``observe_queue_wait`` records how long an
operation waited between being queued and its first start, and ``record_retry``
counts the retries that tasks schedule themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

import structlog
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from pixtools_shared.db.models import Job
from pixtools_shared.observability import metrics
from pixtools_shared.tasks import OPERATION_TASKS, TASK_QUEUES

log = structlog.get_logger(__name__)

# Session.info key of the observations waiting for the commit.
PENDING_KEY = "pixtools_pending_observations"


def _seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def observe_queue_wait(
    operation: str,
    queued_at: datetime | None,
    started_at: datetime | None,
    attempts: int,
) -> None:
    """Record queued_at -> started_at for the first start of an operation.

    Later starts (retries, redeliveries) are left out: their started_at also
    contains the earlier runs.
    """
    seconds = _seconds_between(queued_at, started_at)
    if attempts != 1 or seconds is None:
        return
    task = OPERATION_TASKS.get(operation)
    queue = TASK_QUEUES[task] if task else metrics.OTHER
    metrics.OPERATION_QUEUE_WAIT.labels(
        operation=metrics.operation_label(operation), queue=metrics.queue_label(queue)
    ).observe(seconds)


def record_retry(task: Any, mode: str) -> None:
    """Count a retry that ``task`` scheduled (``mode``: wait, republish, celery)."""
    name = metrics.task_label(getattr(task, "name", None))
    metrics.TASK_RETRIES.labels(
        task=name,
        queue=metrics.queue_label(TASK_QUEUES.get(name)),
        mode=metrics.retry_mode_label(mode),
    ).inc()


def _observe_job_finished(
    status: str, created_at: datetime | None, finished_at: datetime
) -> None:
    label = metrics.job_status_label(status)
    metrics.JOBS_FINISHED.labels(status=label).inc()
    seconds = _seconds_between(created_at, finished_at)
    if seconds is not None:
        metrics.JOB_DURATION.labels(status=label).observe(seconds)


def record_job_finished(
    session: Session, job_id: str, status: str, finished_at: datetime
) -> None:
    """Count the job as finished in ``status`` when ``session`` commits."""
    created_at = session.scalar(select(Job.created_at).where(Job.id == job_id))
    run_after_commit(
        session, partial(_observe_job_finished, str(status), created_at, finished_at)
    )


def run_after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Call ``callback`` after the session's current transaction commits."""
    session.info.setdefault(PENDING_KEY, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_pending(session: Session) -> None:
    for callback in session.info.pop(PENDING_KEY, []):
        try:
            callback()
        except Exception as exc:
            # A metric must never fail the commit that already happened.
            log.error("observation_failed", exc_info=exc)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session, *_args: Any) -> None:
    session.info.pop(PENDING_KEY, None)
