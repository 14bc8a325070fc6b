"""Listing, counting and replaying the messages in the dead-letter queue.

``python -m pixtools_worker_standard dead-letters list`` shows each dead letter:
task id, task, arguments, the queue it came from, and why and when it was
dead-lettered. ``dead-letters replay TASK_ID`` or ``replay --all`` publishes
them back to their queues. Listing takes each message without acknowledging it
and closes the channel at the end, which returns them all to the queue.

Replaying an operation task whose operation failed with a code in
REPLAYABLE_CODES first reopens the operation: it goes back to QUEUED with its
interruption count cleared, and a finished job goes back to RUNNING (its
webhook back to PENDING, with a new delivery id). That operator action is the
only way a finished job changes state again. Other dead letters are published
unchanged, and their tasks skip work that is already done.

The beat task ``count_dead_letters`` sets the ``pixtools_dead_letters`` gauge.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from celery import Celery, Task
from kombu import Connection, Producer
from kombu.message import Message
from sqlalchemy import CursorResult, case, exists, select, update
from sqlalchemy.orm import Session

from pixtools_shared.broker_topology import (
    dead_letter_queue,
    declare_dead_letter_topology,
    work_queue,
)
from pixtools_shared.db.models import (
    ACTIVE_JOB_STATUSES,
    Job,
    JobOperation,
    JobStatus,
    OperationStatus,
    WebhookStatus,
    utc_now,
)
from pixtools_shared.db.session import session_scope
from pixtools_shared.dead_letter import DEAD_LETTER_HEADER
from pixtools_shared.metrics import DEAD_LETTERS
from pixtools_shared.settings import Settings, get_settings
from pixtools_shared.tasks import (
    COUNT_DEAD_LETTERS_TASK,
    OPERATION_TASKS,
    TASK_QUEUES,
)
from pixtools_worker_standard.app import app

log = structlog.get_logger(__name__)

# Failures that a replay may undo: the operation never produced a result
# because its runs were interrupted, stalled or hit transient errors. Failures
# of the input itself (invalid-image...) would only fail again.
REPLAYABLE_CODES = frozenset(
    {"operation-interrupted", "operation-stalled", "transient-error"}
)
REPLAY_HEADER = "x-pixtools-replays"


@dataclass(frozen=True)
class DeadLetter:
    """One message of the dead-letter queue."""

    task_id: str | None
    task_name: str | None
    args: list[Any]
    source_queue: str | None
    reason: str | None
    dead_lettered_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "task": self.task_name,
            "args": self.args,
            "queue": self.source_queue,
            "reason": self.reason,
            "dead_lettered_at": self.dead_lettered_at,
        }


@dataclass(frozen=True)
class ReplayResult:
    letter: DeadLetter
    target_queue: str
    reopened: bool


def describe(message: Message) -> DeadLetter:
    """Read the task and the dead-lettering facts from a message's headers."""
    headers = dict(message.headers or {})
    origin: dict[str, Any] = {}
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        origin = deaths[0]
    elif isinstance(headers.get(DEAD_LETTER_HEADER), dict):
        origin = headers[DEAD_LETTER_HEADER]
    try:
        payload = message.decode()
        args = list(payload[0]) if isinstance(payload, list | tuple) else []
    except Exception:
        args = []
    when = origin.get("time")
    return DeadLetter(
        task_id=headers.get("id") or message.properties.get("correlation_id"),
        task_name=headers.get("task"),
        args=args,
        source_queue=origin.get("queue"),
        reason=origin.get("reason"),
        dead_lettered_at=when.isoformat() if isinstance(when, datetime) else when,
    )


@contextmanager
def _dead_letter_channel(celery_app: Celery, settings: Settings) -> Iterator[Any]:
    connection: Connection
    with celery_app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=1)
        declare_dead_letter_topology(connection, settings)
        channel = connection.channel()
        try:
            queue = dead_letter_queue(settings)(channel)
            queue.declare()
            yield channel, queue
        finally:
            # Unacknowledged messages go back to the queue.
            channel.close()


def count_dead_letters(celery_app: Celery, settings: Settings) -> int:
    """Return the number of dead letters and set the pixtools_dead_letters gauge."""
    with _dead_letter_channel(celery_app, settings) as (_channel, queue):
        _name, count, _consumers = queue.queue_declare(passive=True)
    DEAD_LETTERS.set(count)
    return int(count)


def list_dead_letters(celery_app: Celery, settings: Settings) -> list[DeadLetter]:
    """Return every dead letter, oldest first, leaving them in the queue."""
    letters: list[DeadLetter] = []
    with _dead_letter_channel(celery_app, settings) as (_channel, queue):
        while (message := queue.get(no_ack=False)) is not None:
            letters.append(describe(message))
    DEAD_LETTERS.set(len(letters))
    return letters


def replay_dead_letters(
    celery_app: Celery, settings: Settings, *, task_id: str | None
) -> list[ReplayResult]:
    """Publish the dead letter ``task_id`` (or all, when None) back to its queue."""
    results: list[ReplayResult] = []
    with _dead_letter_channel(celery_app, settings) as (channel, queue):
        producer = Producer(channel)
        while (message := queue.get(no_ack=False)) is not None:
            letter = describe(message)
            if task_id is not None and letter.task_id != task_id:
                continue
            target = _target_queue(letter)
            if target is None:
                log.warning("dead_letter_not_replayable", **letter.as_dict())
                continue
            reopened = _reopen_for(letter, settings)
            _republish(producer, channel, message, target, settings)
            message.ack()
            results.append(ReplayResult(letter, target, reopened))
            log.info(
                "dead_letter_replayed",
                target_queue=target,
                reopened=reopened,
                **letter.as_dict(),
            )
            if task_id is not None:
                break
    return results


def _target_queue(letter: DeadLetter) -> str | None:
    if letter.task_name in TASK_QUEUES:
        return TASK_QUEUES[letter.task_name]
    return letter.source_queue if letter.source_queue in TASK_QUEUES.values() else None


def _reopen_for(letter: DeadLetter, settings: Settings) -> bool:
    operation_tasks = set(OPERATION_TASKS.values())
    if letter.task_name not in operation_tasks or len(letter.args) < 2:
        return False
    job_id, operation = str(letter.args[0]), str(letter.args[1])
    with session_scope() as session:
        return reopen_operation(session, job_id, operation, settings=settings)


def _republish(
    producer: Producer, channel: Any, message: Message, queue: str, settings: Settings
) -> None:
    headers = dict(message.headers or {})
    headers.pop(DEAD_LETTER_HEADER, None)
    headers[REPLAY_HEADER] = int(headers.get(REPLAY_HEADER) or 0) + 1
    # Declaring checks the queue's arguments on RabbitMQ. The message goes
    # through the default exchange, which routes by queue name on every
    # transport (Celery publishes the same way).
    work_queue(queue, settings)(channel).declare()
    extra = {
        name: message.properties[name]
        for name in ("correlation_id", "reply_to", "priority")
        if message.properties.get(name) is not None
    }
    producer.publish(
        message.body,
        exchange="",
        routing_key=queue,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=2,
        **extra,
    )


def _changed(session: Session, statement: Any) -> bool:
    result = cast(
        CursorResult[Any],
        session.execute(statement, execution_options={"synchronize_session": False}),
    )
    return result.rowcount > 0


def reopen_operation(
    session: Session,
    job_id: str,
    operation: str,
    *,
    settings: Settings,
    now: datetime | None = None,
) -> bool:
    """Reopen a failed operation (code in REPLAYABLE_CODES) for a replay.

    A finished job goes back to RUNNING: its bundle, error and finish time are
    cleared, its webhook is PENDING again and ``reopen_count`` gives the next
    webhook a new delivery id. Returns False (and changes nothing) when the
    operation did not fail with a replayable code, the job is finalizing,
    expired or gone.
    """
    now = now or utc_now()
    replayable = (
        (JobOperation.job_id == job_id)
        & (JobOperation.name == operation)
        & (JobOperation.status == OperationStatus.FAILED)
        & JobOperation.error_code.in_(REPLAYABLE_CODES)
    )
    finished = Job.status.in_([JobStatus.COMPLETED_WITH_ERRORS, JobStatus.FAILED])
    job_reopened = _changed(
        session,
        update(Job)
        .where(Job.id == job_id, finished, exists().where(replayable))
        .values(
            status=JobStatus.RUNNING,
            finished_at=None,
            finalizing_at=None,
            finalize_task_id=None,
            finalize_started_at=None,
            error_message=None,
            archive_key=None,
            archive_size_bytes=None,
            reopen_count=Job.reopen_count + 1,
            webhook_status=case(
                (Job.webhook_url.is_not(None), WebhookStatus.PENDING.value),
                else_=None,
            ),
            webhook_attempts=0,
            webhook_last_error=None,
            webhook_updated_at=None,
            expires_at=now + timedelta(seconds=settings.RETENTION_SECONDS),
            updated_at=now,
        ),
    )
    still_active = exists().where(
        Job.id == job_id, Job.status.in_(list(ACTIVE_JOB_STATUSES))
    )
    if not job_reopened and not session.scalar(select(still_active)):
        return False
    return _changed(
        session,
        update(JobOperation)
        .where(replayable)
        .values(
            status=OperationStatus.QUEUED,
            interruptions=0,
            error_code=None,
            error_message=None,
            finished_at=None,
            queued_at=now,
            updated_at=now,
            dispatch_count=JobOperation.dispatch_count + 1,
        ),
    )


@app.task(bind=True, name=COUNT_DEAD_LETTERS_TASK, shared=False)
def count_dead_letters_task(self: Task) -> int:
    """Count the dead-letter queue into the pixtools_dead_letters gauge."""
    count = count_dead_letters(self.app, get_settings())
    if count:
        log.warning("dead_letters_waiting", count=count, task_id=self.request.id)
    return count
