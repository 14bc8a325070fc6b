"""The purge_expired_jobs beat task: retention of finished jobs.

A finished job whose ``expires_at`` has passed is first marked EXPIRED, then its
stored objects (upload, outputs, bundle) are deleted, then its rows: outbox
messages, operations, idempotency records and the job. A failure at any step
leaves the job EXPIRED and the next run picks it up again. Jobs that are still
queued, running or finalizing are never touched, whatever their age. Each run
also deletes outbox rows sent more than OUTBOX_SENT_RETENTION_SECONDS ago.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import structlog
from celery import Task
from sqlalchemy import delete, select, update

from pixtools_shared import outbox
from pixtools_shared.db.models import (
    FINAL_JOB_STATUSES,
    IdempotencyRecord,
    Job,
    JobOperation,
    JobStatus,
    OutboxMessage,
    utc_now,
)
from pixtools_shared.db.session import session_scope
from pixtools_shared.settings import Settings, get_settings
from pixtools_shared.storage import (
    ObjectStorage,
    bundle_key,
    get_storage,
    job_prefix,
)
from pixtools_shared.tasks import PURGE_EXPIRED_JOBS_TASK
from pixtools_worker_standard.app import app

log = structlog.get_logger(__name__)


def delete_job_objects(storage: ObjectStorage, job_id: str) -> int:
    """Delete the upload, outputs and bundle of a job; return how many objects."""
    deleted = storage.delete_prefix("uploads", job_prefix(job_id))
    deleted += storage.delete_prefix("outputs", job_prefix(job_id))
    key = bundle_key(job_id)
    if storage.exists("bundles", key):
        storage.delete("bundles", key)
        deleted += 1
    return deleted


def purge_job(storage: ObjectStorage, job_id: str) -> bool:
    """Expire one finished job and delete its objects and rows; True when done."""
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(FINAL_JOB_STATUSES))
            .values(status=JobStatus.EXPIRED, updated_at=utc_now()),
            execution_options={"synchronize_session": False},
        )
        status = session.scalar(select(Job.status).where(Job.id == job_id))
    if status != JobStatus.EXPIRED:
        return False

    try:
        objects = delete_job_objects(storage, job_id)
    except Exception as exc:
        log.warning("job_purge_storage_failed", job_id=job_id, exc_info=exc)
        return False

    # The foreign keys cascade too; deleting each table explicitly does not
    # depend on SQLite's foreign_keys pragma being on.
    options = {"synchronize_session": False}
    with session_scope() as session:
        expired = session.scalar(
            select(Job.id).where(Job.id == job_id, Job.status == JobStatus.EXPIRED)
        )
        if expired is None:
            return False
        for model in (OutboxMessage, JobOperation, IdempotencyRecord):
            session.execute(
                delete(model).where(model.job_id == job_id), execution_options=options
            )
        session.execute(delete(Job).where(Job.id == job_id), execution_options=options)
    log.info("job_purged", job_id=job_id, objects=objects)
    return True


def purge_expired(settings: Settings, storage: ObjectStorage) -> int:
    """Purge up to PURGE_BATCH_SIZE expired jobs; return how many were purged."""
    now = utc_now()
    with session_scope() as session:
        job_ids = list(
            session.scalars(
                select(Job.id)
                .where(Job.status.in_(FINAL_JOB_STATUSES), Job.expires_at < now)
                .order_by(Job.expires_at)
                .limit(settings.PURGE_BATCH_SIZE)
            )
        )
        session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.expires_at < now),
            execution_options={"synchronize_session": False},
        )
        sent_before = now - timedelta(seconds=settings.OUTBOX_SENT_RETENTION_SECONDS)
        outbox.delete_sent(session, before=sent_before)

    purged = 0
    for job_id in job_ids:
        if purge_job(storage, job_id):
            purged += 1
    return purged


def purge_processed_messages(settings: Settings) -> int:
    """Delete the filesystem broker's processed message files past retention."""
    if not settings.uses_filesystem_broker:
        return 0
    folder: Path = settings.broker_processed_folder
    cutoff = time.time() - settings.BROKER_PROCESSED_RETENTION_SECONDS
    removed = 0
    try:
        candidates = list(folder.iterdir())
    except FileNotFoundError:
        return 0
    for path in candidates:
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


@app.task(bind=True, name=PURGE_EXPIRED_JOBS_TASK, shared=False)
def purge_expired_jobs(self: Task) -> int:
    """Delete finished jobs past their retention, with their stored files."""
    settings = get_settings()
    started = time.monotonic()
    log.info("purge_started", task_id=self.request.id)
    purged = purge_expired(settings, get_storage())
    messages = purge_processed_messages(settings)
    log.info(
        "purge_finished",
        task_id=self.request.id,
        jobs_purged=purged,
        broker_files_removed=messages,
        duration_s=round(time.monotonic() - started, 3),
    )
    return purged
