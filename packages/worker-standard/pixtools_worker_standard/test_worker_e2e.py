"""A real worker thread consuming from the filesystem broker and from RabbitMQ."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from datetime import timedelta

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from sqlalchemy import update

from pixtools_shared.celery_app import broker_transport_options, broker_url
from pixtools_shared.db.models import JobOperation, utc_now
from pixtools_shared.db.session import session_scope
from pixtools_shared.settings import Settings, get_settings, reset_settings_cache
from pixtools_shared.storage import bundle_key, get_storage
from pixtools_shared.tasks import dispatch_operation
from pixtools_shared.testing import rabbitmqctl_available, temporary_rabbitmq_vhost
from pixtools_worker_standard.recovery import recover
from pixtools_worker_standard.testkit import (
    WebhookReceiver,
    load_job,
    make_image,
    submit_job,
)

FINAL = {"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED"}
WAIT_SECONDS = 60.0


@pytest.fixture
def webhook_settings(
    configured_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    monkeypatch.setenv("WEBHOOK_ALLOW_HTTP", "true")
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.setenv("WEBHOOK_RETRY_BACKOFF_SECONDS", "0.2")
    reset_settings_cache()
    return get_settings()


def _wait_for(job_id: str, webhook: bool) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        job = load_job(job_id)
        done = job.status in FINAL
        if done and (not webhook or job.webhook_status != "PENDING"):
            return
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job.status}/{job.webhook_status}")


@pytest.fixture
def running_worker(worker_app: Celery) -> Iterator[Celery]:
    with start_worker(
        worker_app,
        pool="threads",
        perform_ping_check=False,
        queues=["standard", "webhooks"],
        shutdown_timeout=30,
        loglevel="WARNING",
    ):
        yield worker_app


def _submit_and_check(settings: Settings, app: Celery) -> None:
    with WebhookReceiver([503, 200]) as receiver:
        job_id = submit_job(
            settings,
            ["jpg", "webp", "metadata"],
            make_image("PNG", (80, 60)),
            params={"webp": {"width": 40}},
            webhook_url=receiver.url,
        )
        for name in ("jpg", "webp", "metadata"):
            dispatch_operation(app, job_id, name)

        _wait_for(job_id, webhook=True)

    job = load_job(job_id)
    assert job.status == "COMPLETED"
    assert [op.status for op in job.operations] == ["SUCCEEDED"] * 3
    assert job.operations[1].width == 40
    assert job.image_metadata is not None
    archive = get_storage().get("bundles", bundle_key(job_id))
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert opened.namelist() == ["jpg.jpg", "webp.webp", "metadata.json"]
    assert (job.webhook_status, job.webhook_attempts) == ("DELIVERED", 2)
    assert len(receiver.requests) == 2
    assert json.loads(receiver.requests[-1].body)["data"]["status"] == "COMPLETED"


def test_filesystem_broker_end_to_end(
    webhook_settings: Settings, running_worker: Celery
) -> None:
    _submit_and_check(webhook_settings, running_worker)


def test_lost_message_recovered(
    configured_env: Settings, running_worker: Celery
) -> None:
    # The job's message never reached a worker (say, the worker that took it
    # from the filesystem broker died); recovery sends it again.
    job_id = submit_job(configured_env, ["png"], make_image())
    with session_scope() as session:
        session.execute(
            update(JobOperation)
            .where(JobOperation.job_id == job_id)
            .values(
                status="RUNNING",
                updated_at=utc_now()
                - timedelta(seconds=configured_env.STALLED_OPERATION_SECONDS + 1),
            )
        )

    report = recover(running_worker, configured_env)
    _wait_for(job_id, webhook=False)

    assert report.redispatched == 1
    job = load_job(job_id)
    assert job.status == "COMPLETED"
    operation = job.operations[0]
    assert (operation.attempts, operation.interruptions) == (1, 1)
    assert operation.dispatch_count == 2


@pytest.fixture(scope="module")
def rabbitmq_url() -> Iterator[str]:
    if not rabbitmqctl_available():
        pytest.skip("rabbitmqctl is not installed")
    with temporary_rabbitmq_vhost() as url:
        yield url


def test_rabbitmq_end_to_end(
    webhook_settings: Settings,
    worker_app: Celery,
    monkeypatch: pytest.MonkeyPatch,
    rabbitmq_url: str,
) -> None:
    monkeypatch.setenv("BROKER_URL", rabbitmq_url)
    reset_settings_cache()
    settings = get_settings()
    worker_app.conf.broker_url = broker_url(settings)
    worker_app.conf.broker_transport_options = broker_transport_options(settings)
    worker_app.close()
    worker_app.amqp._producer_pool = None
    try:
        with start_worker(
            worker_app,
            pool="threads",
            perform_ping_check=False,
            queues=["standard", "webhooks"],
            shutdown_timeout=30,
            loglevel="WARNING",
        ):
            _submit_and_check(settings, worker_app)
    finally:
        worker_app.close()
        worker_app.amqp._producer_pool = None
