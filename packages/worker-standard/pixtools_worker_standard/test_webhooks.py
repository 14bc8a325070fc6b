from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from celery import Celery

from pixtools_shared.settings import Settings, reset_settings_cache
from pixtools_worker_standard.finalize import finalize_job
from pixtools_worker_standard.operation_tasks import convert
from pixtools_worker_standard.testkit import (
    WebhookReceiver,
    load_job,
    make_image,
    submit_job,
)
from pixtools_worker_standard.webhooks import deliver_webhook

SIGNING_SECRET = "webhook-signing-secret-for-tests"


@pytest.fixture
def webhook_env(configured_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("WEBHOOK_ALLOW_HTTP", "true")
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.setenv("WEBHOOK_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("WEBHOOK_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("WEBHOOK_SIGNING_SECRET", SIGNING_SECRET)
    # Retries wait in the task; short delays keep the tests fast.
    monkeypatch.setenv("WEBHOOK_RETRY_BACKOFF_SECONDS", "0.05")
    reset_settings_cache()
    from pixtools_shared.settings import get_settings

    return get_settings()


def _finished_job(settings: Settings, url: str) -> str:
    job_id = submit_job(settings, ["png"], make_image(), webhook_url=url)
    convert.apply(args=[job_id, "png"]).get()
    finalize_job.apply(args=[job_id]).get()
    return job_id


def test_delivered_with_event_body(webhook_env: Settings, worker_app: Celery) -> None:
    with WebhookReceiver([200]) as receiver:
        job_id = _finished_job(webhook_env, receiver.url)

        assert deliver_webhook.apply(args=[job_id]).get() == "DELIVERED"

    job = load_job(job_id)
    assert (job.webhook_status, job.webhook_attempts) == ("DELIVERED", 1)
    assert job.webhook_last_error is None
    [request] = receiver.requests
    assert request.path == "/hook?token=abc"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-PixTools-Event"] == "job.finished"
    event = json.loads(request.body)
    assert event["type"] == "job.finished"
    assert event["delivery_id"] == f"{job_id}:job.finished"
    assert event["attempt"] == 1
    assert event["job"]["job_id"] == job_id
    assert event["job"]["status"] == "COMPLETED"
    [operation] = event["job"]["operations"]
    assert operation["name"] == "png"
    assert operation["status"] == "SUCCEEDED"
    assert f"/api/files/outputs/{job_id}/png.png?" in operation["result_url"]


def test_signature_verifies(webhook_env: Settings, worker_app: Celery) -> None:
    with WebhookReceiver([200]) as receiver:
        job_id = _finished_job(webhook_env, receiver.url)
        deliver_webhook.apply(args=[job_id]).get()

    [request] = receiver.requests
    parts = dict(
        item.split("=", 1)
        for item in request.headers["X-PixTools-Signature"].split(",")
    )
    message = parts["t"].encode() + b"." + request.body
    expected = hmac.new(SIGNING_SECRET.encode(), message, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)


def test_server_errors_retried(webhook_env: Settings, worker_app: Celery) -> None:
    with WebhookReceiver([503, 500, 200]) as receiver:
        job_id = _finished_job(webhook_env, receiver.url)
        deliver_webhook.apply(args=[job_id])

    job = load_job(job_id)
    assert (job.webhook_status, job.webhook_attempts) == ("DELIVERED", 3)
    assert [json.loads(r.body)["attempt"] for r in receiver.requests] == [1, 2, 3]


def test_retries_bounded(webhook_env: Settings, worker_app: Celery) -> None:
    with WebhookReceiver([502]) as receiver:
        job_id = _finished_job(webhook_env, receiver.url)
        deliver_webhook.apply(args=[job_id])

    job = load_job(job_id)
    assert (job.webhook_status, job.webhook_attempts) == ("FAILED", 3)
    assert job.webhook_last_error == "endpoint returned HTTP 502"
    assert len(receiver.requests) == 3


@pytest.mark.parametrize("status", [400, 404, 410, 302])
def test_client_error_not_retried(
    webhook_env: Settings, worker_app: Celery, status: int
) -> None:
    with WebhookReceiver([status, 200]) as receiver:
        job_id = _finished_job(webhook_env, receiver.url)

        assert deliver_webhook.apply(args=[job_id]).get() == "FAILED"

    job = load_job(job_id)
    assert job.webhook_attempts == 1
    assert job.webhook_last_error == f"endpoint returned HTTP {status}"
    assert len(receiver.requests) == 1


def test_timeout_retried_then_failed(webhook_env: Settings, worker_app: Celery) -> None:
    with WebhookReceiver([0], delay_seconds=1.5) as receiver:
        job_id = _finished_job(webhook_env, receiver.url)
        deliver_webhook.apply(args=[job_id])

    job = load_job(job_id)
    assert job.webhook_status == "FAILED"
    assert job.webhook_attempts == 3
    assert job.webhook_last_error == "timed out after 0.5 s"


def test_http_rejected_by_default(configured_env: Settings, worker_app: Celery) -> None:
    with WebhookReceiver([200]) as receiver:
        job_id = _finished_job(configured_env, receiver.url)

        assert deliver_webhook.apply(args=[job_id]).get() == "FAILED"

    job = load_job(job_id)
    assert job.webhook_attempts == 0
    assert job.webhook_last_error == "the scheme 'http' is not allowed; use https"
    assert receiver.requests == []


def test_private_address_rejected(
    configured_env: Settings, worker_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WEBHOOK_ALLOW_HTTP", "true")
    reset_settings_cache()
    with WebhookReceiver([200]) as receiver:
        job_id = _finished_job(configured_env, receiver.url)

        assert deliver_webhook.apply(args=[job_id]).get() == "FAILED"

    job = load_job(job_id)
    assert job.webhook_last_error == "the address 127.0.0.1 is not a public address"
    assert receiver.requests == []


def test_delivered_webhook_not_resent(
    webhook_env: Settings, worker_app: Celery
) -> None:
    with WebhookReceiver([200]) as receiver:
        job_id = _finished_job(webhook_env, receiver.url)
        deliver_webhook.apply(args=[job_id]).get()

        assert deliver_webhook.apply(args=[job_id]).get() == "DELIVERED"

    assert len(receiver.requests) == 1
