"""The recover_stalled_operations beat task: no job is left waiting forever.

A message can be lost (the filesystem broker deletes it when a worker takes it,
so a worker that dies mid-task loses it; RabbitMQ dead-letters a message past
its delivery limit), and a process can stop between two steps. Each run
therefore:

1. re-sends operations that stayed QUEUED or RUNNING for STALLED_OPERATION_SECONDS,
   up to OPERATION_MAX_ATTEMPTS sends, then fails them with a message. An
   operation already interrupted OPERATION_MAX_ATTEMPTS times fails at once;
2. claims finalization of active jobs whose operations are all final;
3. re-sends finalization of jobs FINALIZING for STALLED_FINALIZATION_SECONDS, up to
   OPERATION_MAX_ATTEMPTS times, then finishes them without a bundle;
4. re-sends webhooks left PENDING for STALLED_OPERATION_SECONDS;
5. reports outbox messages that are overdue (beat's relay task publishes them).

Every takeover is a conditional UPDATE that commits together with the outbox
message it sends, so two beat runs never send twice and a crash between the
takeover and the send loses nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from celery import Celery, Task
from sqlalchemy import CursorResult, exists, select, update

from pixtools_shared import jobs, outbox
from pixtools_shared.db.models import (
    ACTIVE_JOB_STATUSES,
    ACTIVE_OPERATION_STATUSES,
    FINAL_JOB_STATUSES,
    Job,
    JobOperation,
    JobStatus,
    OutboxMessage,
    WebhookStatus,
    utc_now,
)
from pixtools_shared.db.session import session_scope
from pixtools_shared.pipeline import claim_and_enqueue_finalize
from pixtools_shared.settings import Settings, get_settings
from pixtools_shared.tasks import (
    DELIVER_WEBHOOK_TASK,
    FINALIZE_JOB_TASK,
    RECOVER_STALLED_OPERATIONS_TASK,
)
from pixtools_worker_standard import webhook_state
from pixtools_worker_standard.app import app

log = structlog.get_logger(__name__)

# Rows handled per step and run; the next run continues with the rest.
RECOVERY_BATCH_SIZE = 500


@dataclass
class RecoveryReport:
    """Counts of the takeovers of one recovery run, by kind."""

    redispatched: int = 0
    failed: int = 0
    finalizations_claimed: int = 0
    finalizations_redispatched: int = 0
    finalizations_forced: int = 0
    webhooks_redispatched: int = 0
    webhooks_failed: int = 0
    outbox_overdue: int = 0


def _redispatch_claim(
    session: Any, operation_id: int, stale_before: datetime, now: datetime
) -> bool:
    result = cast(
        CursorResult[Any],
        session.execute(
            update(JobOperation)
            .where(
                JobOperation.id == operation_id,
                JobOperation.status.in_(ACTIVE_OPERATION_STATUSES),
                JobOperation.updated_at < stale_before,
            )
            .values(dispatch_count=JobOperation.dispatch_count + 1, updated_at=now),
            execution_options={"synchronize_session": False},
        ),
    )
    return result.rowcount > 0


def recover_operations(
    celery_app: Celery, settings: Settings, now: datetime, report: RecoveryReport
) -> None:
    stale_before = now - timedelta(seconds=settings.STALLED_OPERATION_SECONDS)
    with session_scope() as session:
        rows = session.execute(
            select(
                JobOperation.id,
                JobOperation.job_id,
                JobOperation.name,
                JobOperation.dispatch_count,
                JobOperation.interruptions,
            )
            .join(Job, Job.id == JobOperation.job_id)
            .where(
                JobOperation.status.in_(ACTIVE_OPERATION_STATUSES),
                JobOperation.updated_at < stale_before,
                Job.status.in_(ACTIVE_JOB_STATUSES),
            )
            .order_by(JobOperation.updated_at, JobOperation.id)
            .limit(RECOVERY_BATCH_SIZE)
        ).all()

    for operation_id, job_id, name, dispatch_count, interruptions in rows:
        fields = {
            "job_id": job_id,
            "operation": name,
            "dispatches": dispatch_count,
            "interruptions": interruptions,
        }
        give_up = _stalled_failure(dispatch_count, interruptions, settings)
        if give_up is not None:
            code, message = give_up
            with session_scope() as session:
                failed = jobs.mark_operation_failed(
                    session, job_id, name, code=code, message=message, now=now
                )
            if failed:
                report.failed += 1
                log.warning("stalled_operation_failed", error_code=code, **fields)
                _claim_and_dispatch(celery_app, job_id, report)
            continue

        with session_scope() as session:
            claimed = _redispatch_claim(session, operation_id, stale_before, now)
            message_id = None
            if claimed:
                queued = outbox.enqueue_operation(session, job_id, name, now=now)
                session.flush()
                message_id = queued.id
        if message_id is None:
            continue
        report.redispatched += 1
        log.warning("stalled_operation_redispatched", **fields)
        outbox.relay(celery_app, ids=[message_id], settings=settings)


def _stalled_failure(
    dispatch_count: int, interruptions: int, settings: Settings
) -> tuple[str, str] | None:
    """Return the (code, message) to fail a stalled operation with, or None."""
    if interruptions >= settings.OPERATION_MAX_ATTEMPTS:
        return (
            "operation-interrupted",
            f"The operation was interrupted {interruptions} times (its worker "
            "stopped, ran out of memory or hit the hard time limit); it is not "
            "tried again.",
        )
    if dispatch_count >= settings.OPERATION_MAX_ATTEMPTS:
        return (
            "operation-stalled",
            f"The operation did not finish after {dispatch_count} attempts; no "
            "worker completed it.",
        )
    return None


def _claim_and_dispatch(
    celery_app: Celery, job_id: str, report: RecoveryReport
) -> None:
    message_id = claim_and_enqueue_finalize(job_id)
    if message_id is None:
        return
    report.finalizations_claimed += 1
    outbox.relay(celery_app, ids=[message_id])


def recover_unclaimed_jobs(celery_app: Celery, report: RecoveryReport) -> None:
    """Claim active jobs whose operations are all final (a claim that never ran)."""
    any_active = exists().where(
        JobOperation.job_id == Job.id,
        JobOperation.status.in_(ACTIVE_OPERATION_STATUSES),
    )
    with session_scope() as session:
        job_ids = list(
            session.scalars(
                select(Job.id)
                .where(Job.status.in_(ACTIVE_JOB_STATUSES), ~any_active)
                .limit(RECOVERY_BATCH_SIZE)
            )
        )
    for job_id in job_ids:
        log.warning("unclaimed_job_found", job_id=job_id)
        _claim_and_dispatch(celery_app, job_id, report)


def recover_finalizations(
    celery_app: Celery, settings: Settings, now: datetime, report: RecoveryReport
) -> None:
    stale_before = now - timedelta(seconds=settings.STALLED_FINALIZATION_SECONDS)
    with session_scope() as session:
        rows = session.execute(
            select(Job.id, Job.finalize_attempts)
            .where(Job.status == JobStatus.FINALIZING, Job.finalizing_at < stale_before)
            .limit(RECOVERY_BATCH_SIZE)
        ).all()

    for job_id, attempts in rows:
        if attempts >= settings.OPERATION_MAX_ATTEMPTS:
            with session_scope() as session:
                job = jobs.get_job(session, job_id)
                summary = jobs.summarize_failures(job.operations) if job else None
                note = (
                    f"The ZIP bundle could not be built after {attempts} attempts; "
                    "the results are available one by one."
                )
                status = jobs.complete_job(
                    session,
                    job_id,
                    archive_key=None,
                    archive_size_bytes=None,
                    error_message=" ".join(filter(None, [summary, note])),
                    settings=settings,
                    now=now,
                )
                webhook_id = None
                if status is not None and job and job.webhook_url:
                    webhook = outbox.enqueue(
                        session,
                        job_id=job_id,
                        task_name=DELIVER_WEBHOOK_TASK,
                        args=[job_id],
                        now=now,
                    )
                    session.flush()
                    webhook_id = webhook.id
            if status is not None:
                report.finalizations_forced += 1
                log.warning("stalled_finalization_forced", job_id=job_id, status=status)
                if webhook_id is not None:
                    outbox.relay(celery_app, ids=[webhook_id], settings=settings)
            continue

        with session_scope() as session:
            claimed = jobs.reclaim_finalization(
                session, job_id, stale_before=stale_before, now=now
            )
            message_id = None
            if claimed:
                message = outbox.enqueue(
                    session,
                    job_id=job_id,
                    task_name=FINALIZE_JOB_TASK,
                    args=[job_id],
                    now=now,
                )
                session.flush()
                message_id = message.id
        if message_id is None:
            continue
        report.finalizations_redispatched += 1
        log.warning("stalled_finalization_redispatched", job_id=job_id)
        outbox.relay(celery_app, ids=[message_id], settings=settings)


def recover_webhooks(
    celery_app: Celery, settings: Settings, now: datetime, report: RecoveryReport
) -> None:
    stale_before = now - timedelta(seconds=settings.STALLED_OPERATION_SECONDS)
    last_touch = Job.webhook_updated_at
    with session_scope() as session:
        rows = session.execute(
            select(Job.id, Job.webhook_attempts)
            .where(
                Job.status.in_(FINAL_JOB_STATUSES - {JobStatus.EXPIRED}),
                Job.webhook_status == WebhookStatus.PENDING,
                (last_touch < stale_before)
                | (last_touch.is_(None) & (Job.finished_at < stale_before)),
            )
            .limit(RECOVERY_BATCH_SIZE)
        ).all()

    for job_id, attempts in rows:
        if attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            with session_scope() as session:
                failed = webhook_state.mark_webhook_failed(
                    session,
                    job_id,
                    f"no delivery succeeded in {attempts} attempts",
                    now=now,
                )
            if failed:
                report.webhooks_failed += 1
                log.warning("stalled_webhook_failed", job_id=job_id, attempts=attempts)
            continue

        with session_scope() as session:
            claimed = webhook_state.touch_webhook(
                session, job_id, stale_before=stale_before, now=now
            )
            message_id = None
            if claimed:
                message = outbox.enqueue(
                    session,
                    job_id=job_id,
                    task_name=DELIVER_WEBHOOK_TASK,
                    args=[job_id],
                    now=now,
                )
                session.flush()
                message_id = message.id
        if message_id is None:
            continue
        report.webhooks_redispatched += 1
        log.warning("stalled_webhook_redispatched", job_id=job_id, attempts=attempts)
        outbox.relay(celery_app, ids=[message_id], settings=settings)


def report_overdue_outbox(
    settings: Settings, now: datetime, report: RecoveryReport
) -> None:
    """Count unsent outbox rows due for longer than a few relay intervals."""
    overdue_before = now - timedelta(seconds=settings.OUTBOX_RELAY_INTERVAL_SECONDS * 3)
    with session_scope() as session:
        rows = session.execute(
            select(OutboxMessage.id, OutboxMessage.attempts, OutboxMessage.last_error)
            .where(
                OutboxMessage.sent_at.is_(None),
                OutboxMessage.available_at < overdue_before,
            )
            .order_by(OutboxMessage.id)
            .limit(RECOVERY_BATCH_SIZE)
        ).all()
    report.outbox_overdue = len(rows)
    if rows:
        _, attempts, last_error = rows[0]
        log.warning(
            "outbox_messages_overdue",
            count=len(rows),
            oldest_attempts=attempts,
            last_error=last_error,
        )


def recover(
    celery_app: Celery, settings: Settings, now: datetime | None = None
) -> RecoveryReport:
    """Run every recovery step once; each step's errors are logged, not raised."""
    now = now or utc_now()
    report = RecoveryReport()
    steps = (
        ("operations", lambda: recover_operations(celery_app, settings, now, report)),
        ("unclaimed_jobs", lambda: recover_unclaimed_jobs(celery_app, report)),
        (
            "finalizations",
            lambda: recover_finalizations(celery_app, settings, now, report),
        ),
        ("webhooks", lambda: recover_webhooks(celery_app, settings, now, report)),
        ("outbox", lambda: report_overdue_outbox(settings, now, report)),
    )
    for name, step in steps:
        try:
            step()
        except Exception as exc:
            log.error("recovery_step_failed", step=name, exc_info=exc)
    return report


@app.task(bind=True, name=RECOVER_STALLED_OPERATIONS_TASK, shared=False)
def recover_stalled_operations(self: Task) -> dict[str, int]:
    """Re-send or fail work that no worker finished in time."""
    started = time.monotonic()
    log.info("recovery_started", task_id=self.request.id)
    report = recover(self.app, get_settings())
    log.info(
        "recovery_finished",
        task_id=self.request.id,
        duration_s=round(time.monotonic() - started, 3),
        **vars(report),
    )
    return vars(report)
