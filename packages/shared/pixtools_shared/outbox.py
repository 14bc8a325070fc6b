"""The transactional outbox: task messages committed with the state that needs them.

A caller that changes state and must send a task (a new job, a claimed
finalization, a delayed retry) adds an ``outbox_messages`` row in the same
transaction. After the commit it calls ``relay`` for those rows (best effort,
so the message goes out at once), and beat's relay task publishes whatever is
left: rows whose publish failed or whose retry delay has passed. So a committed
row always becomes a message, and a message is never sent for a rolled-back row.

Relaying a row: a conditional UPDATE claims it for OUTBOX_CLAIM_SECONDS (two
relays never publish the same row at once), the message is published (on
RabbitMQ with a publisher confirm), then ``sent_at`` is set. A relay that dies
between the publish and ``sent_at`` leaves a claimed row, and it is published
again when the claim expires. The message keeps its task id, and every task
skips work that is already done, so such a duplicate is harmless.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from celery import Celery
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from pixtools_shared.broker_topology import declare_dead_letter_topology
from pixtools_shared.db.models import OutboxMessage, utc_now
from pixtools_shared.db.session import session_scope
from pixtools_shared.observability.tracing import (
    attached_trace_carrier,
    current_trace_carrier,
)
from pixtools_shared.retry import backoff_seconds
from pixtools_shared.settings import Settings, get_settings
from pixtools_shared.tasks import TASK_QUEUES, task_for_operation

log = structlog.get_logger(__name__)

MAX_OUTBOX_ERROR_LENGTH = 1000

_topology_lock = threading.Lock()
_topology_declared: set[str] = set()


@dataclass
class RelayReport:
    """Counts of one relay call: rows claimed, published and failed to publish."""

    claimed: int = 0
    sent: int = 0
    failed: int = 0
    sent_ids: list[int] = field(default_factory=list)
    error: str | None = None


def enqueue(
    session: Session,
    *,
    job_id: str,
    task_name: str,
    args: Sequence[Any],
    task_id: str | None = None,
    retries: int = 0,
    delay_seconds: float = 0.0,
    now: datetime | None = None,
) -> OutboxMessage:
    """Add a message to the outbox in the session's transaction (no flush)."""
    now = now or utc_now()
    message = OutboxMessage(
        job_id=job_id,
        task_name=task_name,
        queue=TASK_QUEUES[task_name],
        task_id=task_id or str(uuid.uuid4()),
        args=list(args),
        retries=retries,
        created_at=now,
        available_at=now + timedelta(seconds=max(0.0, delay_seconds)),
        attempts=0,
        trace_context=current_trace_carrier() or None,
    )
    session.add(message)
    return message


def enqueue_operation(
    session: Session,
    job_id: str,
    operation: str,
    *,
    task_id: str | None = None,
    retries: int = 0,
    delay_seconds: float = 0.0,
    now: datetime | None = None,
) -> OutboxMessage:
    """Add the task message of one operation of a job."""
    return enqueue(
        session,
        job_id=job_id,
        task_name=task_for_operation(operation),
        args=[job_id, operation],
        task_id=task_id,
        retries=retries,
        delay_seconds=delay_seconds,
        now=now,
    )


def pending_count(session: Session, *, now: datetime | None = None) -> int:
    """Return the number of unsent rows that are due now."""
    now = now or utc_now()
    rows = session.scalars(
        select(OutboxMessage.id).where(
            OutboxMessage.sent_at.is_(None), OutboxMessage.available_at <= now
        )
    ).all()
    return len(rows)


@dataclass(frozen=True)
class _Claimed:
    id: int
    job_id: str
    task_name: str
    queue: str
    task_id: str
    args: list[Any]
    retries: int
    attempts: int
    trace_context: dict[str, str] | None


def _claim(
    settings: Settings,
    now: datetime,
    ids: Sequence[int] | None,
    job_id: str | None,
) -> list[_Claimed]:
    due = (OutboxMessage.sent_at.is_(None)) & (OutboxMessage.available_at <= now)
    query = select(OutboxMessage.id).where(due)
    if ids is not None:
        query = query.where(OutboxMessage.id.in_(list(ids)))
    if job_id is not None:
        query = query.where(OutboxMessage.job_id == job_id)
    query = query.order_by(OutboxMessage.id).limit(settings.OUTBOX_BATCH_SIZE)
    claim_until = now + timedelta(seconds=settings.OUTBOX_CLAIM_SECONDS)

    claimed: list[_Claimed] = []
    with session_scope(settings.database_url) as session:
        candidates = list(session.scalars(query))
        for message_id in candidates:
            result = cast(
                CursorResult[Any],
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == message_id, due)
                    .values(
                        available_at=claim_until,
                        attempts=OutboxMessage.attempts + 1,
                    ),
                    execution_options={"synchronize_session": False},
                ),
            )
            if result.rowcount == 0:
                continue
            row = session.get(OutboxMessage, message_id, populate_existing=True)
            assert row is not None
            claimed.append(
                _Claimed(
                    id=row.id,
                    job_id=row.job_id,
                    task_name=row.task_name,
                    queue=row.queue,
                    task_id=row.task_id,
                    args=list(row.args),
                    retries=row.retries,
                    attempts=row.attempts,
                    trace_context=row.trace_context,
                )
            )
    return claimed


def _ensure_topology(celery_app: Celery, settings: Settings) -> None:
    # The dead-letter exchange must exist before any work queue can dead-letter.
    key = str(celery_app.conf.broker_url)
    with _topology_lock:
        if key in _topology_declared:
            return
    try:
        with celery_app.connection_for_write() as connection:
            declare_dead_letter_topology(connection, settings)
    except Exception as exc:
        log.warning("dead_letter_topology_declare_failed", error=str(exc))
        return
    with _topology_lock:
        _topology_declared.add(key)


def _publish(
    celery_app: Celery, producer: Any, message: _Claimed, timeout: float
) -> None:
    # The publish joins the trace that wrote the row, also when beat relays it.
    with attached_trace_carrier(message.trace_context):
        celery_app.send_task(
            message.task_name,
            args=message.args,
            task_id=message.task_id,
            queue=message.queue,
            retries=message.retries,
            producer=producer,
            confirm_timeout=timeout,
        )


def _record(
    sent: list[int], failed: list[tuple[_Claimed, str]], settings: Settings
) -> None:
    now = utc_now()
    with session_scope(settings.database_url) as session:
        if sent:
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(sent), OutboxMessage.sent_at.is_(None))
                .values(sent_at=now, last_error=None),
                execution_options={"synchronize_session": False},
            )
        for message, error in failed:
            delay = backoff_seconds(
                message.attempts - 1, 1.0, settings.OUTBOX_RETRY_BACKOFF_MAX_SECONDS
            )
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message.id, OutboxMessage.sent_at.is_(None))
                .values(
                    available_at=now + timedelta(seconds=delay),
                    last_error=error[:MAX_OUTBOX_ERROR_LENGTH],
                ),
                execution_options={"synchronize_session": False},
            )


def relay(
    celery_app: Celery,
    *,
    ids: Sequence[int] | None = None,
    job_id: str | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> RelayReport:
    """Publish due outbox rows (all, ``ids`` only, or one job's); never raises.

    Stops at the first failed publish (the broker is most likely down) and puts
    the rest of the batch back, each failed row after a backoff.
    """
    settings = settings or get_settings()
    report = RelayReport()
    started = time.monotonic()
    try:
        claimed = _claim(settings, now or utc_now(), ids, job_id)
    except Exception as exc:
        log.error("outbox_claim_failed", job_id=job_id, exc_info=exc)
        report.error = f"claim failed: {type(exc).__name__}"
        return report
    report.claimed = len(claimed)
    if not claimed:
        return report

    _ensure_topology(celery_app, settings)
    failed: list[tuple[_Claimed, str]] = []
    try:
        with celery_app.producer_or_acquire() as producer:
            for position, message in enumerate(claimed):
                try:
                    _publish(
                        celery_app,
                        producer,
                        message,
                        settings.BROKER_PUBLISH_TIMEOUT_SECONDS,
                    )
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    failed.extend((rest, error) for rest in claimed[position:])
                    report.error = error
                    break
                report.sent_ids.append(message.id)
    except Exception as exc:
        # Acquiring the producer failed before any publish.
        error = f"{type(exc).__name__}: {exc}"
        done = set(report.sent_ids)
        failed = [(message, error) for message in claimed if message.id not in done]
        report.error = error

    report.sent = len(report.sent_ids)
    report.failed = len(failed)
    try:
        _record(report.sent_ids, failed, settings)
    except Exception as exc:
        # Claimed rows are published again once their claim expires.
        log.error("outbox_record_failed", sent=report.sent, exc_info=exc)

    fields: dict[str, Any] = {
        "claimed": report.claimed,
        "sent": report.sent,
        "failed": report.failed,
        "duration_s": round(time.monotonic() - started, 3),
    }
    if job_id is not None:
        fields["job_id"] = job_id
    if failed:
        log.warning("outbox_publish_failed", error=report.error, **fields)
    else:
        log.info("outbox_relayed", **fields)
    return report


def delete_sent(session: Session, *, before: datetime) -> int:
    """Delete rows sent before ``before``; return how many."""
    from sqlalchemy import delete

    result = cast(
        CursorResult[Any],
        session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.sent_at.is_not(None), OutboxMessage.sent_at < before
            ),
            execution_options={"synchronize_session": False},
        ),
    )
    return int(result.rowcount)
