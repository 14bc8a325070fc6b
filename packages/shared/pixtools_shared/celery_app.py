"""The Celery application shared by the API (to send) and the workers (to run).

Queues: ``standard`` (conversion, metadata, finalization, maintenance), ``ml``
(denoise) and ``webhooks``, plus ``dead_letters`` (see broker_topology). Messages
are JSON only. Tasks acknowledge after they finish (acks_late) and a worker
fetches one message at a time, so a task that was running when its worker died
goes back to the queue on brokers that support it (RabbitMQ). The filesystem
broker removes a message when a worker takes it, so there the beat task
recover_stalled_operations sends lost work again.

On RabbitMQ every publish waits for the broker's confirm (``confirm_publish``),
and publishing gives up after a short connection retry: the callers publish from
the outbox, which keeps the message until a later relay run succeeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import structlog
from celery import Celery, signals

from pixtools_shared import broker_filesystem, broker_topology, shutdown
from pixtools_shared.db.session import dispose_engines
from pixtools_shared.settings import (
    HARD_LIMIT_MARGIN_SECONDS,
    WEBHOOK_TASK_MARGIN_SECONDS,
    Settings,
    get_settings,
)
from pixtools_shared.storage import reset_storage_cache
from pixtools_shared.tasks import (
    CONVERT_TASK,
    COUNT_DEAD_LETTERS_TASK,
    DELIVER_WEBHOOK_TASK,
    DENOISE_TASK,
    EXTRACT_METADATA_TASK,
    FINALIZE_JOB_TASK,
    PURGE_EXPIRED_JOBS_TASK,
    QUEUE_STANDARD,
    RECOVER_STALLED_OPERATIONS_TASK,
    RELAY_OUTBOX_TASK,
    TASK_QUEUES,
)

log = structlog.get_logger(__name__)


def ensure_broker_folders(settings: Settings) -> None:
    """Create the folders of the filesystem broker (no-op for other brokers)."""
    if not settings.uses_filesystem_broker:
        return
    for folder in (
        settings.broker_folder,
        settings.broker_processed_folder,
        settings.broker_control_folder,
    ):
        folder.mkdir(parents=True, exist_ok=True)


def broker_url(settings: Settings) -> str:
    """URL Celery connects to; filesystem:// gets the atomic-write transport."""
    if settings.uses_filesystem_broker:
        broker_filesystem.register()
        return f"{broker_filesystem.SCHEME}://localhost/"
    return settings.BROKER_URL


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    if broker_topology.uses_amqp(settings):
        return {
            # Every publish waits for RabbitMQ's ack, so a message is either in
            # a queue or the publish raised.
            "confirm_publish": True,
            # Connecting to publish: one retry, then the error goes to the
            # caller (the outbox keeps the message). Worker consumers reconnect
            # on their own schedule (broker_connection_max_retries).
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 0.5,
        }
    if not settings.uses_filesystem_broker:
        return {}
    folder = str(settings.broker_folder.resolve())
    return {
        # One folder for both directions: every process reads and writes it.
        "data_folder_in": folder,
        "data_folder_out": folder,
        # Kept messages are moved by a rename within one filesystem. Without
        # this option kombu moves them to the temp dir, which may be another
        # filesystem, and there a move is a copy and a delete that two workers
        # can both perform. The purge task deletes old processed files.
        "store_processed": True,
        "processed_folder": str(settings.broker_processed_folder.resolve()),
        "control_folder": str(settings.broker_control_folder.resolve()),
        "polling_interval": 0.1,
    }


def _task_annotations(settings: Settings) -> dict[str, dict[str, float]]:
    standard: dict[str, float] = {
        "soft_time_limit": settings.TASK_SOFT_TIME_LIMIT_SECONDS,
        "time_limit": settings.TASK_TIME_LIMIT_SECONDS,
    }
    maintenance: dict[str, float] = {
        "soft_time_limit": settings.MAINTENANCE_TIME_LIMIT_SECONDS,
        "time_limit": settings.MAINTENANCE_TIME_LIMIT_SECONDS
        + HARD_LIMIT_MARGIN_SECONDS,
    }
    webhook_limit = settings.WEBHOOK_TIMEOUT_SECONDS + WEBHOOK_TASK_MARGIN_SECONDS
    return {
        CONVERT_TASK: standard,
        EXTRACT_METADATA_TASK: standard,
        DENOISE_TASK: {
            "soft_time_limit": settings.ML_TASK_SOFT_TIME_LIMIT_SECONDS,
            "time_limit": settings.ML_TASK_TIME_LIMIT_SECONDS,
        },
        FINALIZE_JOB_TASK: {
            "soft_time_limit": settings.FINALIZE_TIME_LIMIT_SECONDS,
            "time_limit": settings.FINALIZE_TIME_LIMIT_SECONDS
            + HARD_LIMIT_MARGIN_SECONDS,
        },
        DELIVER_WEBHOOK_TASK: {
            "soft_time_limit": webhook_limit,
            "time_limit": webhook_limit + 10,
        },
        PURGE_EXPIRED_JOBS_TASK: maintenance,
        RECOVER_STALLED_OPERATIONS_TASK: maintenance,
        RELAY_OUTBOX_TASK: maintenance,
        COUNT_DEAD_LETTERS_TASK: maintenance,
    }


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Periodic maintenance tasks run by ``celery beat``."""
    return {
        "purge-expired-jobs": {
            "task": PURGE_EXPIRED_JOBS_TASK,
            "schedule": timedelta(seconds=settings.PURGE_INTERVAL_SECONDS),
            "options": {"queue": TASK_QUEUES[PURGE_EXPIRED_JOBS_TASK]},
        },
        "recover-stalled-operations": {
            "task": RECOVER_STALLED_OPERATIONS_TASK,
            "schedule": timedelta(seconds=settings.RECOVERY_INTERVAL_SECONDS),
            "options": {"queue": TASK_QUEUES[RECOVER_STALLED_OPERATIONS_TASK]},
        },
        # No "expires" option on these: Celery turns it into a message TTL, and
        # RabbitMQ would dead-letter every expired run into dead_letters. A run
        # that waited finds little to do and ends quickly.
        "relay-outbox": {
            "task": RELAY_OUTBOX_TASK,
            "schedule": timedelta(seconds=settings.OUTBOX_RELAY_INTERVAL_SECONDS),
            "options": {"queue": TASK_QUEUES[RELAY_OUTBOX_TASK]},
        },
        "count-dead-letters": {
            "task": COUNT_DEAD_LETTERS_TASK,
            "schedule": timedelta(seconds=settings.DEAD_LETTER_CHECK_INTERVAL_SECONDS),
            "options": {"queue": TASK_QUEUES[COUNT_DEAD_LETTERS_TASK]},
        },
    }


def create_celery_app(
    settings: Settings | None = None,
    *,
    include: Sequence[str] = (),
    main: str = "pixtools",
) -> Celery:
    """Build a configured Celery app; ``include`` lists task modules to import."""
    settings = settings or get_settings()
    ensure_broker_folders(settings)

    app = Celery(main, broker=broker_url(settings), include=list(include))
    app.conf.update(
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_heartbeat=30,
        broker_connection_timeout=settings.BROKER_PUBLISH_TIMEOUT_SECONDS,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.TASK_TIME_LIMIT_SECONDS,
        task_soft_time_limit=settings.TASK_SOFT_TIME_LIMIT_SECONDS,
        task_annotations=_task_annotations(settings),
        task_default_queue=QUEUE_STANDARD,
        task_default_exchange=broker_topology.TASK_EXCHANGE,
        task_default_routing_key=QUEUE_STANDARD,
        task_queues=broker_topology.task_queues(settings),
        # Publishing retries once at most: a failed publish stays in the outbox.
        task_publish_retry_policy={
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.5,
            "interval_max": 0.5,
        },
        task_routes={
            name: {"queue": queue, "routing_key": queue}
            for name, queue in TASK_QUEUES.items()
        },
        task_create_missing_queues=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        # Remote control needs broadcast messages; on the filesystem broker each
        # worker would leave a queue of control files behind when it stops.
        worker_enable_remote_control=not settings.uses_filesystem_broker,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_max_memory_per_child=settings.WORKER_MAX_MEMORY_PER_CHILD_KB or None,
        worker_consumer=f"{broker_topology.__name__}:Consumer",
        # Quorum queues reject a global prefetch; Celery detects them and sets a
        # prefetch per consumer instead.
        worker_detect_quorum_queues=True,
        beat_schedule=beat_schedule(settings),
        beat_schedule_filename=str(settings.beat_schedule_file),
        timezone="UTC",
        enable_utc=True,
    )
    return app


shutdown.install()


@signals.worker_process_init.connect
def _reset_after_fork(**_kwargs: Any) -> None:
    # Pooled database and S3 connections of the parent must not be used by a child.
    dispose_engines(close=False)
    reset_storage_cache()


@signals.task_prerun.connect
def _bind_task_context(
    task_id: str | None = None, task: Any = None, **_kwargs: Any
) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        task_id=task_id, task=getattr(task, "name", None)
    )


@signals.task_postrun.connect
def _clear_task_context(**_kwargs: Any) -> None:
    structlog.contextvars.clear_contextvars()
