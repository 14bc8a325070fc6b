"""The job service: creating jobs and moving them through their states.

Every transition is a conditional UPDATE (``... WHERE status IN (...)``) and
returns whether it changed a row, so a late, duplicated or retried task can never
move a finished operation or job back. The functions take a session and never
commit; the caller commits.

Operation: QUEUED -> RUNNING -> SUCCEEDED | FAILED (QUEUED may go straight to a
final state; RUNNING goes back to QUEUED only before a planned retry or a
hand-back at shutdown). Job: QUEUED -> RUNNING -> FINALIZING -> COMPLETED |
COMPLETED_WITH_ERRORS | FAILED, and later EXPIRED when retention purges it. The
one way out of a final state is an operator's dead-letter replay (see the
standard worker's dead_letters module), never a task.

Finalization is claimed by one caller only: ``claim_finalization`` moves the job
to FINALIZING once no operation is active. It must run in a transaction that
starts after the caller's own operation transition was committed. Then the caller
that commits last finds every other operation final, so at least one caller
wins, and the row lock of the UPDATE lets at most one win. The finalize task then
takes a lease (``start_finalization``), so a duplicate finalize message skips
while the first one builds the bundle.

``create_job`` writes the job's operation messages to the outbox in the same
transaction (see outbox).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, Executable, case, exists, func, select, update
from sqlalchemy.orm import Session

from pixtools_shared import outbox
from pixtools_shared.db.models import (
    ACTIVE_JOB_STATUSES,
    ACTIVE_OPERATION_STATUSES,
    IdempotencyRecord,
    Job,
    JobOperation,
    JobStatus,
    OperationStatus,
    WebhookStatus,
    utc_now,
)
from pixtools_shared.errors import JobNotFoundError
from pixtools_shared.job_resource import job_to_resource
from pixtools_shared.observability.pipeline_hooks import record_job_finished
from pixtools_shared.settings import Settings, get_settings
from pixtools_shared.tasks import queue_for_operation

MAX_ERROR_MESSAGE_LENGTH = 2000

__all__ = [
    "OperationOutput",
    "SourceInfo",
    "abort_job",
    "claim_finalization",
    "complete_job",
    "create_job",
    "find_idempotency_record",
    "get_job",
    "get_operation",
    "job_to_resource",
    "mark_operation_failed",
    "mark_operation_running",
    "mark_operation_succeeded",
    "reclaim_finalization",
    "requeue_operation",
    "require_job",
    "start_finalization",
]


class _OperationRequest(Protocol):
    # Matches operations.OperationRequest: name is an OperationName (a StrEnum).
    @property
    def name(self) -> str: ...

    @property
    def params(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SourceInfo:
    """Facts about the uploaded image, as the API probed them."""

    filename: str
    format: str
    width: int
    height: int
    size_bytes: int


@dataclass(frozen=True)
class OperationOutput:
    """The stored result of one succeeded operation."""

    key: str
    content_type: str
    extension: str
    size_bytes: int
    width: int | None = None
    height: int | None = None


def _changed(session: Session, statement: Executable) -> bool:
    result = cast(
        CursorResult[Any],
        session.execute(statement, execution_options={"synchronize_session": False}),
    )
    return result.rowcount > 0


def _truncate(message: str) -> str:
    if len(message) <= MAX_ERROR_MESSAGE_LENGTH:
        return message
    return message[: MAX_ERROR_MESSAGE_LENGTH - 3] + "..."


def create_job(
    session: Session,
    *,
    operations: Sequence[_OperationRequest],
    source: SourceInfo,
    job_id: str | None = None,
    webhook_url: str | None = None,
    idempotency_key: str | None = None,
    idempotency_scope: str = "",
    request_fingerprint: str | None = None,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> Job:
    """Add a QUEUED job with one row and one outbox message per operation; flush.

    With ``idempotency_key`` the IdempotencyRecord is added in the same flush, so
    a concurrent request with the same (scope, key) fails with IntegrityError on
    the constraint ``uq_idempotency_records_scope_key``. Each operation counts as
    dispatched once: its message is committed with the job, and the caller
    publishes it right after the commit with ``outbox.relay(app, job_id=...)``
    (beat's relay publishes it otherwise).
    """
    if not operations:
        raise ValueError("a job needs at least one operation")
    if idempotency_key is not None and request_fingerprint is None:
        raise ValueError("idempotency_key requires request_fingerprint")

    settings = settings or get_settings()
    now = now or utc_now()
    job_id = job_id or str(uuid.uuid4())
    job = Job(
        id=job_id,
        status=JobStatus.QUEUED,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(seconds=settings.RETENTION_SECONDS),
        source_filename=source.filename[:255],
        source_format=source.format,
        source_width=source.width,
        source_height=source.height,
        source_size_bytes=source.size_bytes,
        finalize_attempts=0,
        webhook_url=webhook_url,
        webhook_status=WebhookStatus.PENDING if webhook_url else None,
        webhook_attempts=0,
    )
    for position, request in enumerate(operations):
        name = str(request.name)
        job.operations.append(
            JobOperation(
                name=name,
                position=position,
                queue=queue_for_operation(name),
                status=OperationStatus.QUEUED,
                params=dict(request.params),
                attempts=0,
                interruptions=0,
                dispatch_count=1,
                queued_at=now,
                updated_at=now,
            )
        )
    session.add(job)
    # Outbox rows have no relationship to the job, so the job row is inserted
    # first for their foreign key.
    session.flush()
    for request in operations:
        outbox.enqueue_operation(session, job_id, str(request.name), now=now)

    if idempotency_key is not None:
        assert request_fingerprint is not None
        session.add(
            IdempotencyRecord(
                scope=idempotency_scope,
                key=idempotency_key,
                request_fingerprint=request_fingerprint,
                job=job,
                created_at=now,
                expires_at=now + timedelta(seconds=settings.RETENTION_SECONDS),
            )
        )
    session.flush()
    return job


def find_idempotency_record(
    session: Session, scope: str, key: str, *, now: datetime | None = None
) -> IdempotencyRecord | None:
    """Return the unexpired record of (scope, key), or None."""
    now = now or utc_now()
    return session.scalars(
        select(IdempotencyRecord).where(
            IdempotencyRecord.scope == scope,
            IdempotencyRecord.key == key,
            IdempotencyRecord.expires_at > now,
        )
    ).one_or_none()


def get_job(session: Session, job_id: str) -> Job | None:
    """Load a job with its operations; None for an unknown or malformed id."""
    try:
        uuid.UUID(job_id)
    except (ValueError, AttributeError, TypeError):
        return None
    return session.scalars(
        select(Job).where(Job.id == job_id).execution_options(populate_existing=True)
    ).one_or_none()


def require_job(session: Session, job_id: str) -> Job:
    """Load a job; raise JobNotFoundError when it does not exist."""
    job = get_job(session, job_id)
    if job is None:
        raise JobNotFoundError(f"No job with id {job_id!r} exists.")
    return job


def get_operation(session: Session, job_id: str, operation: str) -> JobOperation | None:
    return session.scalars(
        select(JobOperation)
        .where(JobOperation.job_id == job_id, JobOperation.name == operation)
        .execution_options(populate_existing=True)
    ).one_or_none()


def _active_operation(job_id: str, operation: str) -> Any:
    return (
        (JobOperation.job_id == job_id)
        & (JobOperation.name == operation)
        & JobOperation.status.in_(ACTIVE_OPERATION_STATUSES)
    )


def mark_operation_running(
    session: Session,
    job_id: str,
    operation: str,
    *,
    task_id: str | None = None,
    resumed: bool = False,
    now: datetime | None = None,
) -> bool:
    """Move an active operation to RUNNING and count the attempt.

    A RUNNING operation may start again (a redelivered message after a worker
    died); such a start also counts as an interruption of the previous run,
    unless ``resumed`` marks a retry of the same task in its own process.
    Returns False when the operation is already final or unknown.
    """
    now = now or utc_now()
    was_running = case(
        (JobOperation.status == OperationStatus.RUNNING, 0 if resumed else 1),
        else_=0,
    )
    started = _changed(
        session,
        update(JobOperation)
        .where(_active_operation(job_id, operation))
        .values(
            status=OperationStatus.RUNNING,
            attempts=JobOperation.attempts + 1,
            interruptions=JobOperation.interruptions + was_running,
            started_at=now,
            updated_at=now,
            task_id=task_id,
        ),
    )
    if started:
        _changed(
            session,
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
            .values(status=JobStatus.RUNNING, started_at=now, updated_at=now),
        )
    return started


def requeue_operation(
    session: Session,
    job_id: str,
    operation: str,
    *,
    now: datetime | None = None,
) -> bool:
    """Move a RUNNING operation back to QUEUED before a planned retry.

    Its next start then does not count as an interruption.
    """
    now = now or utc_now()
    return _changed(
        session,
        update(JobOperation)
        .where(
            JobOperation.job_id == job_id,
            JobOperation.name == operation,
            JobOperation.status == OperationStatus.RUNNING,
        )
        .values(status=OperationStatus.QUEUED, updated_at=now),
    )


def mark_operation_succeeded(
    session: Session,
    job_id: str,
    operation: str,
    output: OperationOutput,
    *,
    metadata: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """Record an operation's result; ``metadata`` is also stored on the job.

    Returns False (and changes nothing) when the operation is already final.
    """
    now = now or utc_now()
    succeeded = _changed(
        session,
        update(JobOperation)
        .where(_active_operation(job_id, operation))
        .values(
            status=OperationStatus.SUCCEEDED,
            finished_at=now,
            updated_at=now,
            error_code=None,
            error_message=None,
            output_key=output.key,
            output_content_type=output.content_type,
            output_extension=output.extension,
            width=output.width,
            height=output.height,
            size_bytes=output.size_bytes,
        ),
    )
    if succeeded and metadata is not None:
        _changed(
            session,
            update(Job)
            .where(Job.id == job_id, Job.status.in_(ACTIVE_JOB_STATUSES))
            .values(image_metadata=metadata, updated_at=now),
        )
    return succeeded


def mark_operation_failed(
    session: Session,
    job_id: str,
    operation: str,
    *,
    code: str,
    message: str,
    now: datetime | None = None,
) -> bool:
    """Fail an active operation with an error code and message.

    Returns False (and changes nothing) when the operation is already final.
    """
    now = now or utc_now()
    return _changed(
        session,
        update(JobOperation)
        .where(_active_operation(job_id, operation))
        .values(
            status=OperationStatus.FAILED,
            finished_at=now,
            updated_at=now,
            error_code=code[:64],
            error_message=_truncate(message),
        ),
    )


def claim_finalization(
    session: Session, job_id: str, *, now: datetime | None = None
) -> bool:
    """Move the job to FINALIZING if no operation is active; True for the winner."""
    now = now or utc_now()
    any_active = exists().where(
        JobOperation.job_id == job_id,
        JobOperation.status.in_(ACTIVE_OPERATION_STATUSES),
    )
    return _changed(
        session,
        update(Job)
        .where(Job.id == job_id, Job.status.in_(ACTIVE_JOB_STATUSES), ~any_active)
        .values(
            status=JobStatus.FINALIZING,
            finalizing_at=now,
            updated_at=now,
            finalize_attempts=Job.finalize_attempts + 1,
        ),
    )


def reclaim_finalization(
    session: Session,
    job_id: str,
    *,
    stale_before: datetime,
    now: datetime | None = None,
) -> bool:
    """Take over a finalization that started before ``stale_before`` (recovery).

    Also releases the finalize task's lease, so the re-sent task may take it.
    """
    now = now or utc_now()
    return _changed(
        session,
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.FINALIZING,
            Job.finalizing_at < stale_before,
        )
        .values(
            finalizing_at=now,
            updated_at=now,
            finalize_attempts=Job.finalize_attempts + 1,
            finalize_task_id=None,
            finalize_started_at=None,
        ),
    )


def start_finalization(
    session: Session,
    job_id: str,
    task_id: str,
    *,
    stale_before: datetime,
    now: datetime | None = None,
) -> bool:
    """Take the finalization lease of a FINALIZING job for ``task_id``.

    Succeeds when no task holds the lease, when this task holds it already (a
    redelivered message), or when the holder started before ``stale_before``.
    A duplicate finalize message therefore skips instead of building the bundle
    a second time.
    """
    now = now or utc_now()
    free = (
        Job.finalize_task_id.is_(None)
        | (Job.finalize_task_id == task_id)
        | (Job.finalize_started_at < stale_before)
    )
    return _changed(
        session,
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.FINALIZING, free)
        .values(finalize_task_id=task_id, finalize_started_at=now, updated_at=now),
    )


def final_status_of(operations: Sequence[JobOperation]) -> JobStatus:
    """COMPLETED if all succeeded, FAILED if none did, else COMPLETED_WITH_ERRORS."""
    succeeded = sum(op.status == OperationStatus.SUCCEEDED for op in operations)
    if succeeded == len(operations):
        return JobStatus.COMPLETED
    if succeeded == 0:
        return JobStatus.FAILED
    return JobStatus.COMPLETED_WITH_ERRORS


def summarize_failures(operations: Sequence[JobOperation]) -> str | None:
    """Build one line naming each failed operation and its error, or None."""
    failed = [op for op in operations if op.status == OperationStatus.FAILED]
    if not failed:
        return None
    parts = "; ".join(
        f"{op.name}: {op.error_message or op.error_code}" for op in failed
    )
    return _truncate(f"{len(failed)} of {len(operations)} operations failed: {parts}")


def complete_job(
    session: Session,
    job_id: str,
    *,
    archive_key: str | None,
    archive_size_bytes: int | None,
    error_message: str | None = None,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> JobStatus | None:
    """Set the final status of a FINALIZING job; None if it is not FINALIZING.

    Retention starts now: the job expires RETENTION_SECONDS after it finished.
    """
    settings = settings or get_settings()
    now = now or utc_now()
    operations = list(
        session.scalars(
            select(JobOperation)
            .where(JobOperation.job_id == job_id)
            .order_by(JobOperation.position)
            .execution_options(populate_existing=True)
        )
    )
    if not operations or any(
        op.status in ACTIVE_OPERATION_STATUSES for op in operations
    ):
        return None

    status = final_status_of(operations)
    message = error_message or summarize_failures(operations)
    completed = _changed(
        session,
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.FINALIZING)
        .values(
            status=status,
            finished_at=now,
            updated_at=now,
            expires_at=now + timedelta(seconds=settings.RETENTION_SECONDS),
            archive_key=archive_key,
            archive_size_bytes=archive_size_bytes,
            error_message=message,
        ),
    )
    if completed:
        record_job_finished(session, job_id, status, now)
    return status if completed else None


def abort_job(
    session: Session,
    job_id: str,
    *,
    code: str,
    message: str,
    now: datetime | None = None,
    settings: Settings | None = None,
) -> JobStatus | None:
    """Fail every active operation and finish the job without a bundle.

    Returns the final status, or None when the job was already finalizing or
    final (then nothing is changed but the operations).
    """
    now = now or utc_now()
    active = session.scalars(
        select(JobOperation.name).where(
            JobOperation.job_id == job_id,
            JobOperation.status.in_(ACTIVE_OPERATION_STATUSES),
        )
    ).all()
    for name in active:
        mark_operation_failed(
            session, job_id, name, code=code, message=message, now=now
        )
    if not claim_finalization(session, job_id, now=now):
        return None
    return complete_job(
        session,
        job_id,
        archive_key=None,
        archive_size_bytes=None,
        now=now,
        settings=settings,
    )


def count_operations(session: Session, job_id: str) -> dict[str, int]:
    """Return the number of operations of a job per status."""
    rows = session.execute(
        select(JobOperation.status, func.count())
        .where(JobOperation.job_id == job_id)
        .group_by(JobOperation.status)
    ).all()
    return {str(status): int(count) for status, count in rows}
