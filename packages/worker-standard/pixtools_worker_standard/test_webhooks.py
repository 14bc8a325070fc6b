"""Tests of the deliver_webhook task against real HTTP receivers on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from celery import Celery
from sqlalchemy import select, update

from pixtools_shared import outbox
from pixtools_shared.db.models import Job, OutboxMessage, utc_now
from pixtools_shared.db.session import session_scope
from pixtools_shared.job_resource import job_to_resource
from pixtools_shared.settings import Settings, get_settings, reset_settings_cache
from pixtools_shared.storage import get_storage
from pixtools_shared.webhooks.testkit import (
    OutboundGuard,
    Reply,
    ScriptedServer,
    install_outbound_guard,
)
from pixtools_worker_standard import webhooks
from pixtools_worker_standard.finalize import finalize_job
from pixtools_worker_standard.operation_tasks import convert
from pixtools_worker_standard.testkit import (
    load_job,
    make_image,
    sent_tasks,
    submit_job,
)
from pixtools_worker_standard.webhooks import deliver_webhook

SIGNING_SECRET = "whsec_" + base64.b64encode(b"webhook signing key for tests").decode()


@pytest.fixture(autouse=True)
def outbound_guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[OutboundGuard]:
    guard = install_outbound_guard(monkeypatch)
    yield guard
    assert guard.refused == [], f"connections left the machine: {guard.refused}"


@pytest.fixture(autouse=True)
def fresh_breakers() -> Iterator[None]:
    # Breakers live per process; each test starts with closed ones.
    webhooks.breaker_registry.cache_clear()
    yield
    webhooks.breaker_registry.cache_clear()


@pytest.fixture
def webhook_env(configured_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("WEBHOOK_ALLOW_HTTP", "true")
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.setenv("WEBHOOK_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("WEBHOOK_ATTEMPT_DEADLINE_SECONDS", "2")
    monkeypatch.setenv("WEBHOOK_RETRY_BACKOFF_SECONDS", "4")
    monkeypatch.setenv("WEBHOOK_SIGNING_SECRET", SIGNING_SECRET)
    # Every retry goes through the outbox, so each run is one attempt.
    monkeypatch.setenv("RETRY_INLINE_MAX_SECONDS", "0")
    reset_settings_cache()
    return get_settings()


def finished_job(
    settings: Settings, url: str, operations: list[str] | None = None
) -> str:
    job_id = submit_job(settings, operations or ["png"], make_image(), webhook_url=url)
    for operation in operations or ["png"]:
        convert.apply(args=[job_id, operation]).get()
    finalize_job.apply(args=[job_id]).get()
    return job_id


def webhook_retries(job_id: str) -> list[OutboxMessage]:
    """Outbox messages of webhook retries (finalize's first send has retries 0)."""
    with session_scope() as session:
        rows = session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.job_id == job_id,
                OutboxMessage.task_name == "pixtools.deliver_webhook",
                OutboxMessage.retries > 0,
            )
            .order_by(OutboxMessage.id)
        ).all()
        for row in rows:
            session.expunge(row)
        return list(rows)


def run_with_retries(job_id: str, max_runs: int = 10) -> list[str | None]:
    """Run the task, and again for each retry it schedules (what the relay does)."""
    results = [deliver_webhook.apply(args=[job_id]).get()]
    while results[-1] == "PENDING" and len(results) < max_runs:
        results.append(deliver_webhook.apply(args=[job_id]).get())
    return results


def reference_signature_valid(
    secret: str, headers: dict[str, str], body: bytes
) -> bool:
    """Standard Webhooks check written from the specification."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = (
        "v1,"
        + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    )
    return any(
        hmac.compare_digest(candidate, expected)
        for candidate in headers["webhook-signature"].split(" ")
    )


def test_delivered_signed_event(webhook_env: Settings, worker_app: Celery) -> None:
    with ScriptedServer([Reply(200)]) as receiver:
        job_id = finished_job(
            webhook_env, receiver.url("/hook?token=abc"), ["png", "jpg"]
        )

        assert deliver_webhook.apply(args=[job_id]).get() == "DELIVERED"

    job = load_job(job_id)
    assert (job.webhook_status, job.webhook_attempts) == ("DELIVERED", 1)
    assert job.webhook_last_error is None
    assert job.webhook_last_status_code == 200
    [request] = receiver.requests
    assert request.path == "/hook?token=abc"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["webhook-id"] == f"job_completed_{job_id}"
    assert reference_signature_valid(SIGNING_SECRET, request.headers, request.body)
    event = json.loads(request.body)
    assert event["type"] == "job.completed"
    assert event["data"]["job_id"] == job_id
    assert event["data"]["status"] == "COMPLETED"
    operations = {entry["name"]: entry for entry in event["data"]["operations"]}
    assert set(operations) == {"png", "jpg"}
    assert operations["png"]["status"] == "SUCCEEDED"
    assert f"/api/files/outputs/{job_id}/png.png?" in operations["png"]["result_url"]
    assert operations["jpg"]["error"] is None


def test_reopened_job_gets_new_webhook_id(
    webhook_env: Settings, worker_app: Celery
) -> None:
    with ScriptedServer([Reply(200), Reply(200)]) as receiver:
        job_id = finished_job(webhook_env, receiver.url())
        assert deliver_webhook.apply(args=[job_id]).get() == "DELIVERED"
        # What a dead-letter replay leaves once the reopened job finishes again.
        with session_scope() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(reopen_count=1, webhook_status="PENDING", webhook_attempts=0)
            )
        assert deliver_webhook.apply(args=[job_id]).get() == "DELIVERED"

    first, second = (request.headers["webhook-id"] for request in receiver.requests)
    assert first == f"job_completed_{job_id}"
    assert second == f"job_completed_{job_id}_reopen1"
    assert reference_signature_valid(
        SIGNING_SECRET, receiver.requests[1].headers, receiver.requests[1].body
    )


def test_failed_job_sends_failed_event(
    webhook_env: Settings, worker_app: Celery
) -> None:
    with ScriptedServer([Reply(200)]) as receiver:
        job_id = submit_job(
            webhook_env, ["png"], b"not an image", webhook_url=receiver.url()
        )
        convert.apply(args=[job_id, "png"]).get()
        finalize_job.apply(args=[job_id]).get()
        deliver_webhook.apply(args=[job_id]).get()

    event = json.loads(receiver.requests[0].body)
    assert event["type"] == "job.failed"
    assert event["data"]["status"] == "FAILED"
    [operation] = event["data"]["operations"]
    assert operation["status"] == "FAILED"
    assert operation["error"]["code"] == "unsupported-format"
    assert receiver.requests[0].headers["webhook-id"] == f"job_failed_{job_id}"


def test_server_errors_retried_with_backoff(
    webhook_env: Settings, worker_app: Celery
) -> None:
    with ScriptedServer([Reply(503), Reply(500), Reply(200)]) as receiver:
        job_id = finished_job(webhook_env, receiver.url())
        results = run_with_retries(job_id)

    assert results == ["PENDING", "PENDING", "DELIVERED"]
    job = load_job(job_id)
    assert (job.webhook_status, job.webhook_attempts) == ("DELIVERED", 3)
    assert job.webhook_last_status_code == 200
    ids = {request.headers["webhook-id"] for request in receiver.requests}
    assert ids == {f"job_completed_{job_id}"}
    # Backoff base 4 s: the first retry waits 2..4 s, the second 4..8 s (jitter
    # scales each by 0.5..1).
    first, second = webhook_retries(job_id)
    assert 2.0 <= (first.available_at - first.created_at).total_seconds() <= 4.0
    assert 4.0 <= (second.available_at - second.created_at).total_seconds() <= 8.0
    assert (first.queue, first.args) == ("webhooks", [job_id])


def test_short_retries_waited_in_task(
    webhook_env: Settings, worker_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRY_INLINE_MAX_SECONDS", "5")
    monkeypatch.setenv("WEBHOOK_RETRY_BACKOFF_SECONDS", "0.1")
    reset_settings_cache()
    with ScriptedServer([Reply(503), Reply(500), Reply(200)]) as receiver:
        job_id = finished_job(get_settings(), receiver.url())

        assert deliver_webhook.apply(args=[job_id]).get() == "DELIVERED"

    job = load_job(job_id)
    assert job.webhook_attempts == 3
    assert len(receiver.requests) == 3
    assert webhook_retries(job_id) == []


def test_retry_published_to_webhook_queue(
    webhook_env: Settings, worker_app: Celery
) -> None:
    with ScriptedServer([Reply(502)]) as receiver:
        job_id = finished_job(webhook_env, receiver.url())
        assert deliver_webhook.apply(args=[job_id]).get() == "PENDING"

    [retry] = webhook_retries(job_id)
    report = outbox.relay(
        worker_app, job_id=job_id, now=retry.available_at + timedelta(seconds=1)
    )

    assert retry.id in report.sent_ids
    webhook_messages = [
        task for task in sent_tasks(webhook_env) if task.args == [job_id]
    ]
    assert [(task.name, task.queue) for task in webhook_messages][-1] == (
        "pixtools.deliver_webhook",
        "webhooks",
    )


def test_retries_bounded(webhook_env: Settings, worker_app: Celery) -> None:
    with ScriptedServer([Reply(502)]) as receiver:
        job_id = finished_job(webhook_env, receiver.url())
        results = run_with_retries(job_id)

    assert results == ["PENDING", "PENDING", "FAILED"]
    job = load_job(job_id)
    assert (job.webhook_status, job.webhook_attempts) == ("FAILED", 3)
    assert job.webhook_last_error == "endpoint returned HTTP 502"
    assert job.webhook_last_status_code == 502
    assert len(receiver.requests) == 3


@pytest.mark.parametrize("status", [400, 401, 404, 410, 302])
def test_client_error_not_retried(
    webhook_env: Settings, worker_app: Celery, status: int
) -> None:
    with ScriptedServer([Reply(status), Reply(200)]) as receiver:
        job_id = finished_job(webhook_env, receiver.url())

        assert deliver_webhook.apply(args=[job_id]).get() == "FAILED"

    job = load_job(job_id)
    assert job.webhook_attempts == 1
    assert job.webhook_last_status_code == status
    assert job.webhook_last_error is not None
    assert job.webhook_last_error.startswith(f"endpoint returned HTTP {status}")
    assert len(receiver.requests) == 1
    assert webhook_retries(job_id) == []


def test_timeout_retried_then_failed(webhook_env: Settings, worker_app: Celery) -> None:
    with ScriptedServer([Reply(200, delay_seconds=1.5)]) as receiver:
        job_id = finished_job(webhook_env, receiver.url())
        results = run_with_retries(job_id)

    assert results == ["PENDING", "PENDING", "FAILED"]
    job = load_job(job_id)
    assert job.webhook_attempts == 3
    assert job.webhook_last_error is not None
    assert job.webhook_last_error.startswith("timed out after 0.5 s")
    assert job.webhook_last_status_code is None


def test_open_breaker_delays_retry(
    webhook_env: Settings, worker_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_BREAKER_FAIL_MAX", "1")
    monkeypatch.setenv("WEBHOOK_BREAKER_RESET_SECONDS", "60")
    monkeypatch.setenv("WEBHOOK_RETRY_BACKOFF_MAX_SECONDS", "120")
    reset_settings_cache()
    with ScriptedServer([Reply(500)]) as receiver:
        job_id = finished_job(get_settings(), receiver.url())
        results = [deliver_webhook.apply(args=[job_id]).get() for _ in range(2)]

    assert results == ["PENDING", "PENDING"]
    assert len(receiver.requests) == 1
    job = load_job(job_id)
    assert job.webhook_last_error == "the circuit breaker of 127.0.0.1 is open"
    # The retry after the open breaker waits for its half-open time, not the
    # 4..8 s backoff.
    second = webhook_retries(job_id)[1]
    assert (second.available_at - second.created_at).total_seconds() > 50


def test_resource_shows_delivery_state(
    webhook_env: Settings, worker_app: Celery
) -> None:
    with ScriptedServer([Reply(503)]) as receiver:
        job_id = finished_job(webhook_env, receiver.url())
        deliver_webhook.apply(args=[job_id]).get()

    resource = job_to_resource(load_job(job_id), get_storage())
    assert resource["webhook"] == {
        "url": receiver.url(),
        "status": "PENDING",
        "attempts": 1,
        "last_error": "endpoint returned HTTP 503",
        "last_status_code": 503,
    }


def test_http_rejected_by_default(configured_env: Settings, worker_app: Celery) -> None:
    with ScriptedServer([Reply(200)]) as receiver:
        job_id = finished_job(configured_env, receiver.url())

        assert deliver_webhook.apply(args=[job_id]).get() == "FAILED"

    job = load_job(job_id)
    assert job.webhook_attempts == 0
    assert job.webhook_last_error == "the scheme 'http' is not allowed; use https"
    assert receiver.requests == []


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "2130706433", "0x7f000001", "127.1", "[::ffff:127.0.0.1]"]
)
def test_stored_internal_url_never_reached(
    configured_env: Settings,
    worker_app: Celery,
    monkeypatch: pytest.MonkeyPatch,
    host: str,
) -> None:
    monkeypatch.setenv("WEBHOOK_ALLOW_HTTP", "true")
    reset_settings_cache()
    with ScriptedServer([Reply(200)]) as canary:
        job_id = finished_job(get_settings(), "https://hooks.example.com/x")
        # A row written before the rules tightened, or by hand.
        with session_scope() as session:
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(webhook_url=f"http://{host}:{canary.port}/hook")
            )

        assert deliver_webhook.apply(args=[job_id]).get() == "FAILED"

    job = load_job(job_id)
    assert job.webhook_last_error is not None
    assert (
        "loopback" in job.webhook_last_error or "IPv4-mapped" in job.webhook_last_error
    )
    assert canary.hits == 0


def test_delivered_webhook_not_resent(
    webhook_env: Settings, worker_app: Celery
) -> None:
    with ScriptedServer([Reply(200)]) as receiver:
        job_id = finished_job(webhook_env, receiver.url())
        deliver_webhook.apply(args=[job_id]).get()

        assert deliver_webhook.apply(args=[job_id]).get() == "DELIVERED"

    assert len(receiver.requests) == 1
    assert utc_now() > load_job(job_id).created_at
