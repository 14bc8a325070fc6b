"""The shared body of every operation task (convert, metadata, denoise).

``run_operation`` loads the operation, marks it running, reads the source image,
calls the task's ``work`` function, stores the output under its deterministic key
and records the result. When that was the job's last operation, it claims
finalization, and the finalize message goes to the outbox in the claim's
transaction.

Storage, network and database failures are retried with exponential backoff and
jitter, at most TASK_MAX_RETRIES times. A short delay is waited in the task; a
longer one is written to the outbox as a delayed message, so no task message
waits unacknowledged in a worker (see retry.plan_retry). Image errors fail the
operation at once with the error's message, because the same bytes would fail
again.

An operation whose runs ended without a result OPERATION_MAX_ATTEMPTS times (its
worker was killed, ran out of memory or hit the hard time limit) fails with
``operation-interrupted``, and its message goes to the dead-letter queue.

Database steps are short transactions; none is open while ``work`` runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

import structlog
from billiard.exceptions import SoftTimeLimitExceeded
from celery import Task
from sqlalchemy import select

from pixtools_shared import fault_injection, jobs, outbox
from pixtools_shared.db.models import FINAL_OPERATION_STATUSES, Job
from pixtools_shared.db.session import session_scope
from pixtools_shared.dead_letter import dead_letter_current_message
from pixtools_shared.errors import PixToolsError
from pixtools_shared.observability.pipeline_hooks import (
    observe_queue_wait,
    record_retry,
)
from pixtools_shared.retry import RetryAction, RetryPlan, is_transient, plan_retry
from pixtools_shared.settings import Settings, get_settings
from pixtools_shared.storage import (
    ObjectNotFoundError,
    ObjectStorage,
    get_storage,
    output_key,
    upload_key,
)
from pixtools_shared.tasks import FINALIZE_JOB_TASK

log = structlog.get_logger(__name__)


class EncodedResult(Protocol):
    """Result of a work function; imaging's EncodedImage has these fields."""

    @property
    def data(self) -> bytes: ...

    @property
    def content_type(self) -> str: ...

    @property
    def extension(self) -> str: ...

    @property
    def width(self) -> int | None: ...

    @property
    def height(self) -> int | None: ...


@dataclass(frozen=True)
class OperationResult:
    """A work result that may also carry metadata to store on the job."""

    data: bytes
    content_type: str
    extension: str
    width: int | None = None
    height: int | None = None
    metadata: dict[str, Any] | None = None


Work = Callable[[bytes, dict[str, Any]], EncodedResult]


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    RETRYING = "retrying"
    """A delayed retry message is in the outbox; this message is done."""


class OperationFailure(PixToolsError):
    """A failure that ends the operation; ``code`` is chosen per instance."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.instance_code = code


class OperationInterrupted(OperationFailure):
    """The operation's earlier runs all ended without a result; dead-letter it."""

    def __init__(self, interruptions: int) -> None:
        super().__init__(
            "operation-interrupted",
            f"The operation was interrupted {interruptions} times (its worker "
            "stopped, ran out of memory or hit the hard time limit); it is not "
            "tried again and its message was moved to the dead-letter queue.",
        )


@dataclass(frozen=True)
class _Context:
    task: Task
    job_id: str
    operation: str
    settings: Settings
    storage: ObjectStorage
    started: float

    @property
    def task_id(self) -> str | None:
        return getattr(self.task.request, "id", None)

    @property
    def message_retries(self) -> int:
        return int(getattr(self.task.request, "retries", 0) or 0)

    @property
    def soft_time_limit(self) -> float:
        limit = self.task.request.timelimit or (None, None)
        soft = limit[1] if len(limit) > 1 else None
        return float(
            soft
            or self.task.soft_time_limit
            or self.settings.TASK_SOFT_TIME_LIMIT_SECONDS
        )

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def fields(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "operation": self.operation,
            "task_id": self.task_id,
            "duration_s": round(self.elapsed(), 3),
        }


def run_operation(task: Task, job_id: str, operation: str, work: Work) -> Outcome:
    """Run one operation of a job inside the bound Celery task ``task``.

    Returns the outcome. On RabbitMQ, raises celery's Reject for an operation
    that keeps interrupting its worker, so the broker dead-letters the message.
    """
    context = _Context(
        task=task,
        job_id=job_id,
        operation=operation,
        settings=get_settings(),
        storage=get_storage(),
        started=time.monotonic(),
    )
    retry = context.message_retries
    log.info("operation_started", retries=retry, **context.fields())
    resumed = False
    while True:
        try:
            return _run(context, work, resumed=resumed)
        except SoftTimeLimitExceeded:
            return _fail(
                context,
                "operation-timed-out",
                "The operation did not finish within its time limit of "
                f"{context.soft_time_limit:g} s.",
            )
        except OperationInterrupted as exc:
            outcome = _fail(context, exc.instance_code, exc.message)
            dead_letter_current_message(task, context.settings, exc.instance_code)
            return outcome
        except OperationFailure as exc:
            return _fail(context, exc.instance_code, exc.message)
        except Exception as exc:
            if not is_transient(exc):
                if isinstance(exc, PixToolsError):
                    return _fail(context, exc.code, exc.message)
                log.error("operation_crashed", exc_info=exc, **context.fields())
                return _fail(
                    context,
                    "internal-error",
                    f"The operation failed unexpectedly ({type(exc).__name__}).",
                )
            plan = _plan(context, retry)
            if plan.action is RetryAction.GIVE_UP:
                log.error(
                    "operation_retries_exhausted",
                    error=str(exc),
                    exc_info=exc,
                    retries=retry,
                    **context.fields(),
                )
                return _fail(
                    context,
                    "transient-error",
                    f"The operation failed after {retry + 1} tries: {exc}",
                )
            log.warning(
                "operation_retry_scheduled",
                error_type=type(exc).__name__,
                error=str(exc),
                retries=retry,
                delay_s=round(plan.delay_seconds, 3),
                mode=str(plan.action),
                **context.fields(),
            )
            record_retry(task, str(plan.action))
            if plan.action is RetryAction.REPUBLISH:
                return _republish(context, retry + 1, plan.delay_seconds)
            time.sleep(plan.delay_seconds)
            retry += 1
            resumed = True


def _plan(context: _Context, retry: int) -> RetryPlan:
    settings = context.settings
    return plan_retry(
        retry,
        max_retries=settings.TASK_MAX_RETRIES,
        base=settings.TASK_RETRY_BACKOFF_SECONDS,
        maximum=settings.TASK_RETRY_BACKOFF_MAX_SECONDS,
        inline_max=settings.RETRY_INLINE_MAX_SECONDS,
        remaining_seconds=context.soft_time_limit - context.elapsed(),
    )


def _republish(context: _Context, retries: int, delay: float) -> Outcome:
    """Put the operation back to QUEUED with a delayed message in the outbox."""
    try:
        with session_scope() as session:
            jobs.requeue_operation(session, context.job_id, context.operation)
            outbox.enqueue_operation(
                session,
                context.job_id,
                context.operation,
                task_id=context.task_id,
                retries=retries,
                delay_seconds=delay,
            )
    except Exception as exc:
        # The operation stays active; stalled-operation recovery sends it again.
        log.error("operation_retry_not_recorded", exc_info=exc, **context.fields())
        return Outcome.FAILED
    return Outcome.RETRYING


def _run(context: _Context, work: Work, *, resumed: bool) -> Outcome:
    job_id, operation = context.job_id, context.operation
    settings = context.settings

    with session_scope() as session:
        row = jobs.get_operation(session, job_id, operation)
        if row is None:
            log.warning("operation_not_found", **context.fields())
            return Outcome.SKIPPED
        started = row.status not in FINAL_OPERATION_STATUSES and (
            jobs.mark_operation_running(
                session, job_id, operation, task_id=context.task_id, resumed=resumed
            )
        )
        row = jobs.get_operation(session, job_id, operation)
        assert row is not None
        params = dict(row.params)
        interruptions = row.interruptions
        status = row.status
        if started:
            observe_queue_wait(operation, row.queued_at, row.started_at, row.attempts)
        source_filename = None
        if settings.TEST_POISON_FILE is not None:
            source_filename = session.scalar(
                select(Job.source_filename).where(Job.id == job_id)
            )

    if not started:
        log.info("operation_already_final", status=status, **context.fields())
        # The earlier run may have died between its result and the claim.
        _finalize_if_done(context)
        return Outcome.SKIPPED

    if interruptions >= settings.OPERATION_MAX_ATTEMPTS:
        raise OperationInterrupted(interruptions)

    try:
        source = context.storage.get("uploads", upload_key(job_id))
    except ObjectNotFoundError:
        raise OperationFailure(
            "source-missing", "The uploaded source image is no longer stored."
        ) from None

    fault_injection.delay_operation(settings, job_id, operation)
    if source_filename is not None:
        fault_injection.crash_if_poisoned(settings, job_id, operation, source_filename)
    result = work(source, params)

    key = output_key(job_id, operation, result.extension)
    context.storage.put("outputs", key, result.data, result.content_type)
    metadata = result.metadata if isinstance(result, OperationResult) else None
    output = jobs.OperationOutput(
        key=key,
        content_type=result.content_type,
        extension=result.extension,
        size_bytes=len(result.data),
        width=result.width,
        height=result.height,
    )
    with session_scope() as session:
        recorded = jobs.mark_operation_succeeded(
            session, job_id, operation, output, metadata=metadata
        )

    if not recorded:
        log.info("operation_result_ignored", reason="already final", **context.fields())
        _discard_unrecorded_output(context, key)
        return Outcome.SKIPPED
    log.info(
        "operation_succeeded",
        size_bytes=output.size_bytes,
        width=output.width,
        height=output.height,
        **context.fields(),
    )
    _finalize_if_done(context)
    return Outcome.SUCCEEDED


def _fail(context: _Context, code: str, message: str) -> Outcome:
    try:
        with session_scope() as session:
            recorded = jobs.mark_operation_failed(
                session, context.job_id, context.operation, code=code, message=message
            )
    except Exception as exc:
        # The operation stays active; stalled-operation recovery retries it.
        log.error(
            "operation_failure_not_recorded",
            error_code=code,
            exc_info=exc,
            **context.fields(),
        )
        return Outcome.FAILED

    if recorded:
        log.warning(
            "operation_failed", error_code=code, error=message, **context.fields()
        )
        _finalize_if_done(context)
    else:
        log.info(
            "operation_failure_ignored", reason="already final", **context.fields()
        )
    return Outcome.FAILED


def _discard_unrecorded_output(context: _Context, key: str) -> None:
    """Delete an output that the operation row does not reference (no orphans).

    A run that lost the race to a final state (another run finished first, or
    recovery failed the operation) may have stored a file the row never points
    to. A file under the key the row does point to is the recorded output.
    """
    try:
        with session_scope() as session:
            row = jobs.get_operation(session, context.job_id, context.operation)
            recorded_key = row.output_key if row is not None else None
        if recorded_key != key:
            context.storage.delete("outputs", key)
            log.info("unrecorded_output_deleted", key=key, **context.fields())
    except Exception as exc:
        # Retention deletes the job's outputs folder later in any case.
        log.warning(
            "unrecorded_output_cleanup_failed", exc_info=exc, **context.fields()
        )


def _finalize_if_done(context: _Context) -> None:
    """Claim finalization and send the finalize task if this call wins.

    The finalize message is written to the outbox in the claim's transaction,
    then published right away; beat's relay publishes it if that fails.
    """
    try:
        message_id = claim_and_enqueue_finalize(context.job_id)
    except Exception as exc:
        # Recovery claims it later: it finds active jobs with only final operations.
        log.error("finalization_claim_failed", exc_info=exc, **context.fields())
        return
    if message_id is None:
        return
    log.info("finalization_claimed", **context.fields())
    outbox.relay(context.task.app, ids=[message_id], settings=context.settings)


def claim_and_enqueue_finalize(job_id: str) -> int | None:
    """Claim finalization and add the finalize message; its outbox id, or None."""
    with session_scope() as session:
        if not jobs.claim_finalization(session, job_id):
            return None
        message = outbox.enqueue(
            session, job_id=job_id, task_name=FINALIZE_JOB_TASK, args=[job_id]
        )
        session.flush()
        return message.id


def metadata_result(metadata: dict[str, Any], max_bytes: int) -> OperationResult:
    """Wrap extracted metadata as a JSON output that is also stored on the job."""
    data = json.dumps(metadata, allow_nan=False, ensure_ascii=False).encode("utf-8")
    if len(data) > max_bytes:
        raise OperationFailure(
            "metadata-too-large",
            f"The image metadata is {len(data)} bytes as JSON; the maximum is "
            f"{max_bytes} bytes.",
        )
    return OperationResult(
        data=data,
        content_type="application/json",
        extension="json",
        metadata=metadata,
    )
