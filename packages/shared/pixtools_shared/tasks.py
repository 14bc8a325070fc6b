"""Task names, queues and the helpers that send task messages by name.

The API and the workers share these names; the API sends with
``celery_app.send_task`` and so never imports worker code.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Protocol

import structlog
from celery import Celery

log = structlog.get_logger(__name__)

CONVERT_TASK: Final = "pixtools.convert"
EXTRACT_METADATA_TASK: Final = "pixtools.extract_metadata"
DENOISE_TASK: Final = "pixtools.denoise"
FINALIZE_JOB_TASK: Final = "pixtools.finalize_job"
DELIVER_WEBHOOK_TASK: Final = "pixtools.deliver_webhook"
PURGE_EXPIRED_JOBS_TASK: Final = "pixtools.purge_expired_jobs"
RECOVER_STALLED_OPERATIONS_TASK: Final = "pixtools.recover_stalled_operations"
RELAY_OUTBOX_TASK: Final = "pixtools.relay_outbox"
COUNT_DEAD_LETTERS_TASK: Final = "pixtools.count_dead_letters"

QUEUE_STANDARD: Final = "standard"
QUEUE_ML: Final = "ml"
QUEUE_WEBHOOKS: Final = "webhooks"
QUEUES: Final = (QUEUE_STANDARD, QUEUE_ML, QUEUE_WEBHOOKS)

# Operation name -> task that performs it. Convert tasks take the target format
# from their `operation` argument.
OPERATION_TASKS: Final[dict[str, str]] = {
    "jpg": CONVERT_TASK,
    "png": CONVERT_TASK,
    "webp": CONVERT_TASK,
    "avif": CONVERT_TASK,
    "metadata": EXTRACT_METADATA_TASK,
    "denoise": DENOISE_TASK,
}

TASK_QUEUES: Final[dict[str, str]] = {
    CONVERT_TASK: QUEUE_STANDARD,
    EXTRACT_METADATA_TASK: QUEUE_STANDARD,
    DENOISE_TASK: QUEUE_ML,
    FINALIZE_JOB_TASK: QUEUE_STANDARD,
    DELIVER_WEBHOOK_TASK: QUEUE_WEBHOOKS,
    PURGE_EXPIRED_JOBS_TASK: QUEUE_STANDARD,
    RECOVER_STALLED_OPERATIONS_TASK: QUEUE_STANDARD,
    RELAY_OUTBOX_TASK: QUEUE_STANDARD,
    COUNT_DEAD_LETTERS_TASK: QUEUE_STANDARD,
}


class UnknownOperationError(ValueError):
    """No task performs the named operation."""


class _OperationRow(Protocol):
    name: str


class _JobWithOperations(Protocol):
    id: str

    @property
    def operations(self) -> Iterable[_OperationRow]: ...


def task_for_operation(operation: str) -> str:
    """Return the task name that performs ``operation``."""
    try:
        return OPERATION_TASKS[operation]
    except KeyError:
        raise UnknownOperationError(
            f"no task performs operation {operation!r}"
        ) from None


def queue_for_operation(operation: str) -> str:
    """Return the queue that the task of ``operation`` is sent to."""
    return TASK_QUEUES[task_for_operation(operation)]


def dispatch_operation(celery_app: Celery, job_id: str, operation: str) -> str:
    """Send the task of one operation; return the task id."""
    task_name = task_for_operation(operation)
    result = celery_app.send_task(
        task_name,
        args=[job_id, operation],
        queue=TASK_QUEUES[task_name],
    )
    log.info(
        "operation_dispatched",
        job_id=job_id,
        operation=operation,
        task=task_name,
        task_id=result.id,
    )
    return str(result.id)


def dispatch_job_operations(celery_app: Celery, job: _JobWithOperations) -> list[str]:
    """Send one task per operation of ``job``; return the task ids in order."""
    return [dispatch_operation(celery_app, job.id, op.name) for op in job.operations]


def dispatch_finalize(celery_app: Celery, job_id: str) -> str:
    """Send the task that builds the ZIP bundle and sets the job's final status."""
    result = celery_app.send_task(
        FINALIZE_JOB_TASK, args=[job_id], queue=TASK_QUEUES[FINALIZE_JOB_TASK]
    )
    log.info("finalize_dispatched", job_id=job_id, task_id=result.id)
    return str(result.id)


def dispatch_webhook(celery_app: Celery, job_id: str) -> str:
    """Send the task that posts the job's webhook event."""
    result = celery_app.send_task(
        DELIVER_WEBHOOK_TASK, args=[job_id], queue=TASK_QUEUES[DELIVER_WEBHOOK_TASK]
    )
    log.info("webhook_dispatched", job_id=job_id, task_id=result.id)
    return str(result.id)
