from __future__ import annotations

import os
import time
from datetime import timedelta

from celery import Celery
from sqlalchemy import func, select, update

from pixtools_shared import jobs
from pixtools_shared.db.models import (
    IdempotencyRecord,
    Job,
    JobOperation,
    OutboxMessage,
    utc_now,
)
from pixtools_shared.db.session import session_scope
from pixtools_shared.operations import parse_operation_request
from pixtools_shared.settings import Settings
from pixtools_shared.storage import bundle_key, get_storage, upload_key
from pixtools_worker_standard.finalize import finalize_job
from pixtools_worker_standard.operation_tasks import convert
from pixtools_worker_standard.purge import (
    purge_expired_jobs,
    purge_processed_messages,
)
from pixtools_worker_standard.testkit import make_image, submit_job


def _finished_job(settings: Settings) -> str:
    job_id = submit_job(settings, ["png", "jpg"], make_image())
    convert.apply(args=[job_id, "png"]).get()
    convert.apply(args=[job_id, "jpg"]).get()
    finalize_job.apply(args=[job_id]).get()
    return job_id


def _expire(job_id: str) -> None:
    with session_scope() as session:
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(expires_at=utc_now() - timedelta(seconds=1))
        )


def _count(model: type, job_id: str) -> int:
    with session_scope() as session:
        column = model.id if model is Job else model.job_id  # type: ignore[attr-defined]
        return int(
            session.scalar(
                select(func.count()).select_from(model).where(column == job_id)
            )
            or 0
        )


def test_purge_removes_expired_job(
    configured_env: Settings, worker_app: Celery
) -> None:
    job_id = _finished_job(configured_env)
    with session_scope() as session:
        session.add(
            IdempotencyRecord(
                scope="",
                key="purge-key",
                request_fingerprint="0" * 64,
                job_id=job_id,
                created_at=utc_now(),
                expires_at=utc_now() + timedelta(days=2),
            )
        )
    storage = get_storage()
    assert storage.exists("bundles", bundle_key(job_id))
    _expire(job_id)

    assert purge_expired_jobs.apply().get() == 1

    assert _count(Job, job_id) == 0
    assert _count(JobOperation, job_id) == 0
    assert _count(IdempotencyRecord, job_id) == 0
    assert _count(OutboxMessage, job_id) == 0
    assert storage.list_keys("uploads", f"{job_id}/") == []
    assert storage.list_keys("outputs", f"{job_id}/") == []
    assert storage.exists("bundles", bundle_key(job_id)) is False


def test_purge_keeps_unexpired(configured_env: Settings, worker_app: Celery) -> None:
    job_id = _finished_job(configured_env)

    assert purge_expired_jobs.apply().get() == 0

    assert _count(Job, job_id) == 1
    assert get_storage().exists("uploads", upload_key(job_id))


def test_purge_never_touches_active(
    configured_env: Settings, worker_app: Celery
) -> None:
    queued = submit_job(configured_env, ["png"], make_image())
    running = submit_job(configured_env, ["png", "jpg"], make_image())
    convert.apply(args=[running, "png"]).get()
    finalizing = submit_job(configured_env, ["png"], make_image())
    convert.apply(args=[finalizing, "png"]).get()
    for job_id in (queued, running, finalizing):
        _expire(job_id)

    assert purge_expired_jobs.apply().get() == 0

    with session_scope() as session:
        statuses = {
            job_id: jobs.require_job(session, job_id).status
            for job_id in (queued, running, finalizing)
        }
    assert statuses == {queued: "QUEUED", running: "RUNNING", finalizing: "FINALIZING"}
    assert get_storage().exists("uploads", upload_key(queued))


def test_purge_batch_bounded(
    configured_env: Settings, worker_app: Celery, monkeypatch: object
) -> None:
    ids = []
    for _ in range(3):
        with session_scope() as session:
            job = jobs.create_job(
                session,
                operations=parse_operation_request('["png"]'),
                source=jobs.SourceInfo("a.png", "PNG", 1, 1, 1),
                settings=configured_env,
            )
            ids.append(job.id)
            jobs.abort_job(
                session, job.id, code="x", message="y", settings=configured_env
            )
    for job_id in ids:
        _expire(job_id)

    from pixtools_worker_standard.purge import purge_expired

    assert (
        purge_expired(
            configured_env.model_copy(update={"PURGE_BATCH_SIZE": 2}), get_storage()
        )
        == 2
    )
    assert sum(_count(Job, job_id) for job_id in ids) == 1


def test_processed_broker_files_purged(configured_env: Settings) -> None:
    folder = configured_env.broker_processed_folder
    folder.mkdir(parents=True, exist_ok=True)
    old = folder / "1_old.standard.msg"
    new = folder / "2_new.standard.msg"
    old.write_text("{}")
    new.write_text("{}")
    past = time.time() - configured_env.BROKER_PROCESSED_RETENTION_SECONDS - 10
    os.utime(old, (past, past))

    assert purge_processed_messages(configured_env) == 1
    assert sorted(path.name for path in folder.iterdir()) == ["2_new.standard.msg"]
