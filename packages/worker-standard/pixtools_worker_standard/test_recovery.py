from __future__ import annotations

from datetime import timedelta

from celery import Celery
from sqlalchemy import update

from pixtools_shared import jobs
from pixtools_shared.db.models import Job, JobOperation, utc_now
from pixtools_shared.db.session import session_scope
from pixtools_shared.settings import Settings
from pixtools_worker_standard.operation_tasks import convert
from pixtools_worker_standard.recovery import recover
from pixtools_worker_standard.testkit import (
    SentTask,
    clear_broker,
    load_job,
    make_image,
    sent_tasks,
    submit_job,
)


def _age_operations(job_id: str, seconds: int, **values: object) -> None:
    with session_scope() as session:
        session.execute(
            update(JobOperation)
            .where(JobOperation.job_id == job_id)
            .values(updated_at=utc_now() - timedelta(seconds=seconds), **values)
        )


def _age_job(job_id: str, seconds: int, **values: object) -> None:
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))


def test_stalled_operation_redispatched(
    configured_env: Settings, worker_app: Celery
) -> None:
    job_id = submit_job(configured_env, ["png", "denoise"], make_image())
    _age_operations(job_id, configured_env.STALLED_OPERATION_SECONDS + 5)

    report = recover(worker_app, configured_env)

    assert report.redispatched == 2
    assert sent_tasks(configured_env) == [
        SentTask("pixtools.convert", [job_id, "png"], "standard"),
        SentTask("pixtools.denoise", [job_id, "denoise"], "ml"),
    ]
    assert [op.dispatch_count for op in load_job(job_id).operations] == [2, 2]


def test_fresh_operation_left_alone(
    configured_env: Settings, worker_app: Celery
) -> None:
    submit_job(configured_env, ["png"], make_image())

    report = recover(worker_app, configured_env)

    assert report.redispatched == 0
    assert sent_tasks(configured_env) == []


def test_second_run_does_not_resend(
    configured_env: Settings, worker_app: Celery
) -> None:
    job_id = submit_job(configured_env, ["png"], make_image())
    _age_operations(job_id, configured_env.STALLED_OPERATION_SECONDS + 5)

    first = recover(worker_app, configured_env)
    second = recover(worker_app, configured_env)

    assert (first.redispatched, second.redispatched) == (1, 0)
    assert len(sent_tasks(configured_env)) == 1


def test_exhausted_operation_failed(
    configured_env: Settings, worker_app: Celery
) -> None:
    job_id = submit_job(configured_env, ["png"], make_image())
    _age_operations(
        job_id,
        configured_env.STALLED_OPERATION_SECONDS + 5,
        dispatch_count=configured_env.OPERATION_MAX_ATTEMPTS,
        status="RUNNING",
    )

    report = recover(worker_app, configured_env)

    assert report.failed == 1
    assert report.finalizations_claimed == 1
    job = load_job(job_id)
    operation = job.operations[0]
    assert (operation.status, operation.error_code) == ("FAILED", "operation-stalled")
    assert operation.error_message == (
        "The operation did not finish after 3 attempts; no worker completed it."
    )
    assert job.status == "FINALIZING"
    assert sent_tasks(configured_env) == [
        SentTask("pixtools.finalize_job", [job_id], "standard")
    ]


def test_unclaimed_job_claimed(configured_env: Settings, worker_app: Celery) -> None:
    job_id = submit_job(configured_env, ["png"], make_image())
    with session_scope() as session:
        jobs.mark_operation_failed(session, job_id, "png", code="x", message="y")

    report = recover(worker_app, configured_env)

    assert report.finalizations_claimed == 1
    assert load_job(job_id).status == "FINALIZING"
    assert sent_tasks(configured_env) == [
        SentTask("pixtools.finalize_job", [job_id], "standard")
    ]


def test_stalled_finalization_resent(
    configured_env: Settings, worker_app: Celery
) -> None:
    job_id = submit_job(configured_env, ["png"], make_image())
    convert.apply(args=[job_id, "png"]).get()
    clear_broker(configured_env)
    stale = utc_now() - timedelta(
        seconds=configured_env.STALLED_FINALIZATION_SECONDS + 5
    )
    _age_job(job_id, 0, finalizing_at=stale)

    report = recover(worker_app, configured_env)

    assert report.finalizations_redispatched == 1
    assert load_job(job_id).finalize_attempts == 2
    assert sent_tasks(configured_env) == [
        SentTask("pixtools.finalize_job", [job_id], "standard")
    ]


def test_exhausted_finalization_forced(
    configured_env: Settings, worker_app: Celery
) -> None:
    job_id = submit_job(
        configured_env, ["png"], make_image(), webhook_url="https://hooks.test/x"
    )
    convert.apply(args=[job_id, "png"]).get()
    clear_broker(configured_env)
    stale = utc_now() - timedelta(
        seconds=configured_env.STALLED_FINALIZATION_SECONDS + 5
    )
    _age_job(
        job_id,
        0,
        finalizing_at=stale,
        finalize_attempts=configured_env.OPERATION_MAX_ATTEMPTS,
    )

    report = recover(worker_app, configured_env)

    assert report.finalizations_forced == 1
    job = load_job(job_id)
    assert job.status == "COMPLETED"
    assert job.archive_key is None
    assert job.error_message == (
        "The ZIP bundle could not be built after 3 attempts; the results are "
        "available one by one."
    )
    assert sent_tasks(configured_env) == [
        SentTask("pixtools.deliver_webhook", [job_id], "webhooks")
    ]


def test_stalled_webhook_resent_then_failed(
    configured_env: Settings, worker_app: Celery
) -> None:
    job_id = submit_job(
        configured_env, ["png"], make_image(), webhook_url="https://hooks.test/x"
    )
    with session_scope() as session:
        jobs.abort_job(session, job_id, code="x", message="y", settings=configured_env)
    stale = utc_now() - timedelta(seconds=configured_env.STALLED_OPERATION_SECONDS + 5)
    _age_job(job_id, 0, finished_at=stale)

    first = recover(worker_app, configured_env)

    assert first.webhooks_redispatched == 1
    assert sent_tasks(configured_env) == [
        SentTask("pixtools.deliver_webhook", [job_id], "webhooks")
    ]

    _age_job(
        job_id,
        0,
        webhook_updated_at=stale,
        webhook_attempts=configured_env.WEBHOOK_MAX_ATTEMPTS,
    )
    second = recover(worker_app, configured_env)

    assert second.webhooks_failed == 1
    job = load_job(job_id)
    assert job.webhook_status == "FAILED"
    assert job.webhook_last_error == "no delivery succeeded in 5 attempts"


def test_interrupted_operation_failed_not_resent(
    configured_env: Settings, worker_app: Celery
) -> None:
    job_id = submit_job(configured_env, ["png"], make_image())
    _age_operations(
        job_id,
        configured_env.STALLED_OPERATION_SECONDS + 5,
        interruptions=configured_env.OPERATION_MAX_ATTEMPTS,
        status="RUNNING",
    )

    report = recover(worker_app, configured_env)

    assert (report.redispatched, report.failed) == (0, 1)
    operation = load_job(job_id).operations[0]
    assert (operation.status, operation.error_code) == (
        "FAILED",
        "operation-interrupted",
    )
    assert sent_tasks(configured_env) == [
        SentTask("pixtools.finalize_job", [job_id], "standard")
    ]


def test_overdue_outbox_rows_reported(
    configured_env: Settings, worker_app: Celery
) -> None:
    # submit_job commits the outbox rows without publishing them.
    submit_job(configured_env, ["png", "jpg"], make_image())

    on_time = recover(worker_app, configured_env)
    later = recover(worker_app, configured_env, now=utc_now() + timedelta(seconds=60))

    assert on_time.outbox_overdue == 0
    assert later.outbox_overdue == 2
    assert later.redispatched == 0
