"""The finalize_job task: ZIP bundle, final job status, webhook dispatch.

Fan-in happens once per job: only the caller that wins ``claim_finalization``
sends this task, and the task itself takes the job's finalization lease
(``start_finalization``) before it builds the bundle. A duplicate finalize
message (redelivered, or re-sent by recovery) finds the lease held or the job
already final and skips. ``complete_job`` is a conditional UPDATE too, and the
webhook message is written to the outbox in its transaction, so the webhook is
sent once per finished job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

import structlog
from celery import Task

from pixtools_shared import jobs, outbox
from pixtools_shared.db.models import JobStatus, OperationStatus, utc_now
from pixtools_shared.db.session import session_scope
from pixtools_shared.observability.pipeline_hooks import record_retry
from pixtools_shared.retry import (
    RetryAction,
    call_retrying_transient,
    is_transient,
    plan_retry,
)
from pixtools_shared.settings import HARD_LIMIT_MARGIN_SECONDS, Settings, get_settings
from pixtools_shared.storage import (
    ObjectNotFoundError,
    bundle_key,
    get_storage,
    upload_key,
)
from pixtools_shared.tasks import DELIVER_WEBHOOK_TASK, FINALIZE_JOB_TASK
from pixtools_worker_standard.app import app
from pixtools_worker_standard.bundle import BundleEntry, build_bundle, entry_name

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Output:
    operation: str
    key: str
    extension: str


@dataclass(frozen=True)
class _Archive:
    key: str | None
    size_bytes: int | None
    missing: tuple[str, ...]


class _Republished(Exception):
    """The bundle step was handed to a delayed finalize message in the outbox."""


@app.task(bind=True, name=FINALIZE_JOB_TASK, shared=False)
def finalize_job(self: Task, job_id: str) -> str | None:
    """Bundle the outputs of a FINALIZING job and set its final status.

    Returns the final status, or None when the job is not FINALIZING (already
    finished by an earlier run, or unknown) or another run holds the lease.
    A database or storage error retries the whole step in the task; every
    transition in it is conditional, so a second pass cannot finish twice.
    """
    settings = get_settings()
    fields = {"job_id": job_id, "task_id": self.request.id}

    def log_retry(error: BaseException, retry: int, delay: float) -> None:
        log.warning(
            "finalize_retry_scheduled",
            error=str(error),
            retries=retry,
            delay_s=round(delay, 3),
            mode="wait",
            **fields,
        )

    return call_retrying_transient(
        lambda: _finalize(self, job_id, settings),
        max_retries=settings.TASK_MAX_RETRIES,
        base=settings.TASK_RETRY_BACKOFF_SECONDS,
        maximum=settings.TASK_RETRY_BACKOFF_MAX_SECONDS,
        inline_max=settings.RETRY_INLINE_MAX_SECONDS,
        budget_seconds=settings.FINALIZE_TIME_LIMIT_SECONDS,
        on_retry=log_retry,
    )


def _finalize(self: Task, job_id: str, settings: Settings) -> str | None:
    started = time.monotonic()
    task_id = str(self.request.id)
    fields = {"job_id": job_id, "task_id": task_id}
    log.info("finalize_started", retries=self.request.retries, **fields)

    lease_seconds = settings.FINALIZE_TIME_LIMIT_SECONDS + HARD_LIMIT_MARGIN_SECONDS
    with session_scope() as session:
        job = jobs.get_job(session, job_id)
        if job is None or job.status != JobStatus.FINALIZING:
            log.info("finalize_skipped", status=job.status if job else None, **fields)
            return None
        leased = jobs.start_finalization(
            session,
            job_id,
            task_id,
            stale_before=utc_now() - timedelta(seconds=lease_seconds),
        )
        outputs = [
            _Output(op.name, op.output_key, op.output_extension or "bin")
            for op in job.operations
            if op.status == OperationStatus.SUCCEEDED and op.output_key
        ]
    if not leased:
        log.info("finalize_skipped", reason="another run holds the lease", **fields)
        return None

    try:
        archive, error_message = _store_archive_with_retries(
            self, job_id, outputs, settings, started
        )
    except _Republished:
        return None

    with session_scope() as session:
        job = jobs.get_job(session, job_id)
        summary = jobs.summarize_failures(job.operations) if job else None
        has_webhook = job is not None and job.webhook_url is not None
        if archive.missing:
            note = f"Missing from the ZIP bundle: {', '.join(archive.missing)}."
            error_message = " ".join(filter(None, [summary, note]))
        elif error_message is not None:
            error_message = " ".join(filter(None, [summary, error_message]))
        status = jobs.complete_job(
            session,
            job_id,
            archive_key=archive.key,
            archive_size_bytes=archive.size_bytes,
            error_message=error_message,
            settings=settings,
        )
        webhook_message = None
        if status is not None and has_webhook:
            webhook_message = outbox.enqueue(
                session, job_id=job_id, task_name=DELIVER_WEBHOOK_TASK, args=[job_id]
            )
            session.flush()
        webhook_message_id = webhook_message.id if webhook_message else None

    if status is None:
        log.info("finalize_lost_race", **fields)
        return None
    log.info(
        "job_finished",
        status=status,
        archive_size_bytes=archive.size_bytes,
        duration_s=round(time.monotonic() - started, 3),
        **fields,
    )
    if webhook_message_id is not None:
        outbox.relay(self.app, ids=[webhook_message_id], settings=settings)
    if settings.DELETE_UPLOAD_ON_FINISH:
        delete_upload(job_id)
    return str(status)


def _store_archive_with_retries(
    task: Task, job_id: str, outputs: list[_Output], settings: Settings, started: float
) -> tuple[_Archive, str | None]:
    """Build and store the bundle, retrying storage errors with backoff.

    Returns the archive and an error note. When no retry is left the job
    finishes without a bundle; its outputs stay downloadable one by one.
    """
    retry = int(task.request.retries or 0)
    fields = {"job_id": job_id, "task_id": task.request.id}
    while True:
        try:
            return _store_archive(job_id, outputs), None
        except Exception as exc:
            if not is_transient(exc):
                raise
            plan = plan_retry(
                retry,
                max_retries=settings.TASK_MAX_RETRIES,
                base=settings.TASK_RETRY_BACKOFF_SECONDS,
                maximum=settings.TASK_RETRY_BACKOFF_MAX_SECONDS,
                inline_max=settings.RETRY_INLINE_MAX_SECONDS,
                remaining_seconds=settings.FINALIZE_TIME_LIMIT_SECONDS
                - (time.monotonic() - started),
            )
            if plan.action is RetryAction.GIVE_UP:
                log.error("finalize_bundle_failed", error=str(exc), **fields)
                return _Archive(None, None, ()), (
                    f"The ZIP bundle could not be stored: {exc}"
                )
            log.warning(
                "finalize_retry_scheduled",
                error=str(exc),
                retries=retry,
                delay_s=round(plan.delay_seconds, 3),
                mode=str(plan.action),
                **fields,
            )
            record_retry(task, str(plan.action))
            if plan.action is RetryAction.REPUBLISH:
                _republish(task, job_id, retry + 1, plan.delay_seconds)
                raise _Republished from exc
            time.sleep(plan.delay_seconds)
            retry += 1


def _republish(task: Task, job_id: str, retries: int, delay: float) -> None:
    # Same task id: the delayed message may take the lease this run holds.
    with session_scope() as session:
        outbox.enqueue(
            session,
            job_id=job_id,
            task_name=FINALIZE_JOB_TASK,
            args=[job_id],
            task_id=str(task.request.id),
            retries=retries,
            delay_seconds=delay,
        )


def _store_archive(job_id: str, outputs: list[_Output]) -> _Archive:
    if not outputs:
        return _Archive(None, None, ())

    storage = get_storage()
    entries: list[BundleEntry] = []
    missing: list[str] = []
    for output in outputs:
        try:
            data = storage.get("outputs", output.key)
        except ObjectNotFoundError:
            log.error(
                "bundle_output_missing",
                job_id=job_id,
                operation=output.operation,
                key=output.key,
            )
            missing.append(output.operation)
            continue
        entries.append(
            BundleEntry(entry_name(output.operation, output.extension), data)
        )

    if not entries:
        return _Archive(None, None, tuple(missing))
    archive = build_bundle(entries)
    key = bundle_key(job_id)
    storage.put("bundles", key, archive, "application/zip")
    return _Archive(key, len(archive), tuple(missing))


def delete_upload(job_id: str) -> None:
    """Delete a finished job's source (DELETE_UPLOAD_ON_FINISH); best effort."""
    try:
        get_storage().delete("uploads", upload_key(job_id))
    except Exception as exc:
        # Retention deletes it with the rest of the job.
        log.warning("upload_delete_failed", job_id=job_id, exc_info=exc)
        return
    log.info("upload_deleted", job_id=job_id)
