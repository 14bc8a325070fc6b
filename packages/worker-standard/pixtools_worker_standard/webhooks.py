"""The deliver_webhook task: POST the finished job as a signed JSON event.

Each attempt checks the URL again (webhook_url.validate_webhook_url), resolves
the host once, vets every address and connects only to those
(pixtools_shared.webhooks.delivery). Redirects are not followed.

Delivery is at least once: a retried or recovered task may post the same event
again, and receivers drop duplicates by the ``webhook-id`` header, which is the
same for every attempt of one event. Timeouts, connection errors, 5xx, 408 and
429 are retried after an exponential, jittered backoff. A delay up to
RETRY_INLINE_MAX_SECONDS is waited in the task when the next attempt still fits
in the task's time limit. A longer one is written to the outbox, so that no
worker keeps the message unacknowledged while it waits. Any other status fails
the delivery at once. Attempts, the last error and the last HTTP status are stored
on the job and shown in its resource.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import structlog
from celery import Task

from pixtools_shared import jobs, outbox
from pixtools_shared.db.models import Job, JobStatus, WebhookStatus, utc_now
from pixtools_shared.db.session import session_scope
from pixtools_shared.edge_settings import WEBHOOK_TASK_BOOKKEEPING_SECONDS
from pixtools_shared.retry import backoff_seconds
from pixtools_shared.settings import WEBHOOK_TASK_MARGIN_SECONDS, Settings, get_settings
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
    """Return the ``webhook-id``: one value per job and event, kept across retries.

    A job reopened by a dead-letter replay finishes again and sends a new event,
    so its id carries the reopen count: receivers that drop repeated ids would
    otherwise drop the outcome of the replay.
    """
    message_id = f"{event_type.replace('.', '_')}_{job.id}"
    if job.reopen_count:
        message_id += f"_reopen{job.reopen_count}"
    return message_id


def build_event(job: Job, now: datetime) -> dict[str, Any]:
    """Build the event body: type, timestamp and the job resource as ``data``.

    ``data.operations`` lists every operation with its status, result URL or
    error, so one event gives the receiver the outcome of each.
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
    """Return the process's breakers, one registry per configuration."""
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


@dataclass(frozen=True)
class _Attempt:
    """One prepared delivery: the checked URL, signed body and headers."""

    url: str
    number: int
    body: bytes
    headers: dict[str, str]


@app.task(bind=True, name=DELIVER_WEBHOOK_TASK, shared=False)
def deliver_webhook(self: Task, job_id: str) -> str | None:
    """POST the finished job to its webhook URL; returns the webhook status.

    Short retry delays are waited in the task when the next attempt still fits
    in its time limit. Longer ones go through the outbox (see the module doc).
    """
    settings = get_settings()
    started = time.monotonic()
    fields: dict[str, Any] = {"job_id": job_id, "task_id": self.request.id}

    while True:
        prepared = _prepare_attempt(job_id, settings, fields)
        if not isinstance(prepared, _Attempt):
            return prepared
        fields.update(attempt=prepared.number)

        log.info("webhook_delivery_started", **fields)
        result = deliver(
            prepared.url,
            prepared.body,
            prepared.headers,
            delivery_policy(settings),
            breaker_registry(
                settings.REDIS_URL,
                settings.WEBHOOK_BREAKER_FAIL_MAX,
                settings.WEBHOOK_BREAKER_RESET_SECONDS,
            ),
        )
        elapsed = time.monotonic() - started
        fields["duration_s"] = round(elapsed, 3)
        outcome = _record_result(
            job_id, prepared.number, result, settings, elapsed, fields
        )
        if isinstance(outcome, str):
            return outcome
        time.sleep(outcome)


def _prepare_attempt(
    job_id: str, settings: Settings, fields: dict[str, Any]
) -> _Attempt | str | None:
    """Count the next attempt and build its request; a status when none is due."""
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
        number = job.webhook_attempts + 1
        event_type = event_type_of(job)
        message_id = message_id_of(job, event_type)
        event = build_event(job, utc_now())

    fields["event_type"] = event_type
    body = json.dumps(event, allow_nan=False, separators=(",", ":")).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **signature_headers(
            settings.WEBHOOK_SIGNING_SECRET, message_id, int(time.time()), body
        ),
    }
    return _Attempt(url, number, body, headers)


def _record_result(
    job_id: str,
    attempt: int,
    result: DeliveryResult,
    settings: Settings,
    elapsed: float,
    fields: dict[str, Any],
) -> str | float:
    """Store the attempt's outcome; return the final status or seconds to wait."""
    status_code = result.status_code
    if result.delivered:
        with session_scope() as session:
            webhook_state.mark_webhook_delivered(
                session, job_id, status_code=status_code
            )
        log.info("webhook_delivered", status_code=status_code, **fields)
        return WebhookStatus.DELIVERED.value

    error = result.error or "delivery failed"
    if not result.retryable or attempt >= settings.WEBHOOK_MAX_ATTEMPTS:
        with session_scope() as session:
            webhook_state.mark_webhook_failed(
                session, job_id, error, status_code=status_code
            )
        log.warning("webhook_failed", error=error, status_code=status_code, **fields)
        return WebhookStatus.FAILED.value

    delay = retry_delay(attempt, result, settings)
    wait_inline = delay <= settings.RETRY_INLINE_MAX_SECONDS and (
        elapsed + delay + settings.WEBHOOK_ATTEMPT_DEADLINE_SECONDS
        <= task_budget_seconds(settings)
    )
    with session_scope() as session:
        webhook_state.record_webhook_error(
            session, job_id, error, status_code=status_code
        )
        if not wait_inline:
            outbox.enqueue(
                session,
                job_id=job_id,
                task_name=DELIVER_WEBHOOK_TASK,
                args=[job_id],
                retries=attempt,
                delay_seconds=delay,
            )
    log.warning(
        "webhook_retry_scheduled",
        error=error,
        status_code=status_code,
        delay_s=round(delay, 2),
        mode="wait" if wait_inline else "republish",
        **fields,
    )
    if wait_inline:
        return delay
    return WebhookStatus.PENDING.value


def task_budget_seconds(settings: Settings) -> float:
    """Seconds the task may run: its soft time limit less the database work."""
    return (
        settings.WEBHOOK_TIMEOUT_SECONDS
        + WEBHOOK_TASK_MARGIN_SECONDS
        - WEBHOOK_TASK_BOOKKEEPING_SECONDS
    )


def retry_delay(attempt: int, result: DeliveryResult, settings: Settings) -> float:
    """Seconds before the next attempt: jittered exponential backoff, or longer
    when the receiver (Retry-After) or an open breaker requests more."""
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
