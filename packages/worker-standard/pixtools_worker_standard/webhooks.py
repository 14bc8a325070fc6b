"""The deliver_webhook task: POST the finished job as a signed JSON event.

Each attempt checks the URL again (webhook_url.validate_webhook_url), resolves
the host once, vets every address and connects only to those
(pixtools_shared.webhooks.delivery). Redirects are not followed.

Delivery is at least once: a retried or recovered task may post the same event
again, and receivers drop duplicates by the ``webhook-id`` header, which is the
same for every attempt of one event. Timeouts, connection errors, 5xx, 408 and
429 are retried after an exponential, jittered backoff, written to the outbox
so that no worker holds the message while it waits. Any other status fails the
delivery at once. Attempts, the last error and the last HTTP status are stored
on the job and shown in its resource.
"""

from __future__ import annotations

import functools
import json
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import structlog
from celery import Task

from pixtools_shared import jobs, outbox
from pixtools_shared.db.models import Job, JobStatus, WebhookStatus, utc_now
from pixtools_shared.db.session import session_scope
from pixtools_shared.retry import backoff_seconds
from pixtools_shared.settings import Settings, get_settings
from pixtools_shared.storage import get_storage
from pixtools_shared.tasks import DELIVER_WEBHOOK_TASK
from pixtools_shared.webhook_url import InvalidWebhookUrlError, validate_webhook_url
from pixtools_shared.webhooks.breaker import BreakerRegistry
from pixtools_shared.webhooks.delivery import DeliveryPolicy, DeliveryResult, deliver
from pixtools_shared.webhooks.signing import signature_headers
from pixtools_worker_standard import webhook_state
from pixtools_worker_standard.app import app

log = structlog.get_logger(__name__)

USER_AGENT = "PixTools-Webhook/1.0"

COMPLETED_EVENT = "job.completed"
FAILED_EVENT = "job.failed"
EXPIRED_EVENT = "job.expired"


def event_type_of(job: Job) -> str:
    """Event type of a finished job: completed (also with errors), failed, expired."""
    if job.status == JobStatus.FAILED:
        return FAILED_EVENT
    if job.status == JobStatus.EXPIRED:
        return EXPIRED_EVENT
    return COMPLETED_EVENT


def message_id_of(job: Job, event_type: str) -> str:
    """The ``webhook-id``: one value per job and event, kept across retries."""
    return f"{event_type.replace('.', '_')}_{job.id}"


def build_event(job: Job, now: datetime) -> dict[str, Any]:
    """Build the event body: type, timestamp and the job resource as ``data``.

    ``data.operations`` lists every operation with its status, result URL or
    error, so one event tells the receiver the outcome of each.
    """
    return {
        "type": event_type_of(job),
        "timestamp": now.isoformat(),
        "data": jobs.job_to_resource(job, get_storage()),
    }


@functools.cache
def breaker_registry(
    redis_url: str | None, fail_max: int, reset_seconds: float
) -> BreakerRegistry:
    """The process's breakers, one registry per configuration."""
    return BreakerRegistry.from_settings(redis_url, fail_max, reset_seconds)


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy.from_settings(
        settings.WEBHOOK_TIMEOUT_SECONDS,
        settings.WEBHOOK_ATTEMPT_DEADLINE_SECONDS,
        settings.WEBHOOK_ALLOWED_HOSTS,
    )


def _host_of(url: str) -> str | None:
    # Only the host is logged: paths and queries of webhook URLs often hold tokens.
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


@app.task(bind=True, name=DELIVER_WEBHOOK_TASK, shared=False)
def deliver_webhook(self: Task, job_id: str) -> str | None:
    """POST the finished job to its webhook URL; returns the webhook status."""
    settings = get_settings()
    started = time.monotonic()
    fields: dict[str, Any] = {"job_id": job_id, "task_id": self.request.id}

    with session_scope() as session:
        job = jobs.get_job(session, job_id)
        if job is None or not job.webhook_url:
            log.info("webhook_skipped", reason="no webhook", **fields)
            return None
        if job.webhook_status != WebhookStatus.PENDING:
            log.info("webhook_skipped", reason=job.webhook_status, **fields)
            return str(job.webhook_status)
        url = job.webhook_url
        fields["host"] = _host_of(url)

        try:
            url = validate_webhook_url(url, settings)
        except InvalidWebhookUrlError as exc:
            webhook_state.mark_webhook_failed(session, job_id, exc.reason)
            log.warning("webhook_rejected", error=exc.reason, **fields)
            return WebhookStatus.FAILED.value

        if not webhook_state.record_webhook_attempt(session, job_id):
            return None
        attempt = job.webhook_attempts + 1
        event_type = event_type_of(job)
        message_id = message_id_of(job, event_type)
        event = build_event(job, utc_now())

    body = json.dumps(event, allow_nan=False, separators=(",", ":")).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **signature_headers(
            settings.WEBHOOK_SIGNING_SECRET, message_id, int(time.time()), body
        ),
    }
    fields.update(attempt=attempt, event=event_type)

    log.info("webhook_delivery_started", **fields)
    result = deliver(
        url,
        body,
        headers,
        delivery_policy(settings),
        breaker_registry(
            settings.REDIS_URL,
            settings.WEBHOOK_BREAKER_FAIL_MAX,
            settings.WEBHOOK_BREAKER_RESET_SECONDS,
        ),
    )
    fields["duration_s"] = round(time.monotonic() - started, 3)
    return _record_result(job_id, attempt, result, settings, fields)


def _record_result(
    job_id: str,
    attempt: int,
    result: DeliveryResult,
    settings: Settings,
    fields: dict[str, Any],
) -> str:
    status_code = result.status_code
    if result.delivered:
        with session_scope() as session:
            webhook_state.mark_webhook_delivered(
                session, job_id, status_code=status_code
            )
        log.info("webhook_delivered", status_code=status_code, **fields)
        return WebhookStatus.DELIVERED.value

    error = result.error or "delivery failed"
    if result.retryable and attempt < settings.WEBHOOK_MAX_ATTEMPTS:
        countdown = retry_delay(attempt, result, settings)
        with session_scope() as session:
            webhook_state.record_webhook_error(
                session, job_id, error, status_code=status_code
            )
            outbox.enqueue(
                session,
                job_id=job_id,
                task_name=DELIVER_WEBHOOK_TASK,
                args=[job_id],
                retries=attempt,
                delay_seconds=countdown,
            )
        log.warning(
            "webhook_retry_scheduled",
            error=error,
            status_code=status_code,
            countdown_s=round(countdown, 2),
            **fields,
        )
        return WebhookStatus.PENDING.value

    with session_scope() as session:
        webhook_state.mark_webhook_failed(
            session, job_id, error, status_code=status_code
        )
    log.warning("webhook_failed", error=error, status_code=status_code, **fields)
    return WebhookStatus.FAILED.value


def retry_delay(attempt: int, result: DeliveryResult, settings: Settings) -> float:
    """Seconds before the next attempt: jittered exponential backoff, or longer
    when the receiver (Retry-After) or an open breaker asks for more."""
    delay = backoff_seconds(
        attempt - 1,
        settings.WEBHOOK_RETRY_BACKOFF_SECONDS,
        settings.WEBHOOK_RETRY_BACKOFF_MAX_SECONDS,
    )
    if result.retry_after_seconds is not None:
        requested = min(
            result.retry_after_seconds, settings.WEBHOOK_RETRY_BACKOFF_MAX_SECONDS
        )
        delay = max(delay, requested)
    return delay
