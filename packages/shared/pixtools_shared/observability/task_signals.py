"""Celery signal handlers of the workers: log context, task logs and metrics.

For each task run: ``task_prerun`` binds ``job_id``, ``operation`` and the
message's trace id into the structlog context (celery_app's handler has bound
``task_id`` and ``task`` already) and logs ``task_started``; ``task_retry`` and
``task_failure`` log the error; ``task_postrun`` logs ``task_finished`` with the
duration and the outcome. The same handlers count the runs, retries and
redeliveries, observe the task and operation durations, and count webhook
deliveries by the task's return value.

The handlers connect when this module is imported; ``install_worker_observability``
(called by each worker's app module) imports it and sets up tracing.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import structlog
from celery import signals

from pixtools_shared.observability import metrics, tracing
from pixtools_shared.tasks import (
    DELIVER_WEBHOOK_TASK,
    DENOISE_TASK,
    EXTRACT_METADATA_TASK,
    FINALIZE_JOB_TASK,
    OPERATION_TASKS,
    TASK_QUEUES,
)

log = structlog.get_logger(__name__)

OPERATION_TASK_NAMES = frozenset(OPERATION_TASKS.values())
# Tasks whose first argument is a job id.
JOB_TASK_NAMES = OPERATION_TASK_NAMES | {FINALIZE_JOB_TASK, DELIVER_WEBHOOK_TASK}
# Operation of the tasks whose ``operation`` argument has a default.
DEFAULT_OPERATIONS = {EXTRACT_METADATA_TASK: "metadata", DENOISE_TASK: "denoise"}
WEBHOOK_OUTCOMES = {"DELIVERED": "delivered", "FAILED": "failed", "PENDING": "pending"}

_lock = threading.Lock()
# task id -> monotonic start time, queue label.
_running: dict[str, tuple[float, str]] = {}


def install_worker_observability(service_name: str) -> None:
    """Set up tracing for a worker (no-op unless OTEL_* asks for it)."""
    tracing.configure_tracing(service_name)


def _queue_of(task: Any) -> str:
    info = getattr(task.request, "delivery_info", None) or {}
    routed = info.get("routing_key")
    if routed in metrics.KNOWN_QUEUES:
        return str(routed)
    return metrics.queue_label(TASK_QUEUES.get(getattr(task, "name", "")))


def job_fields(name: str, args: Any, kwargs: Any) -> dict[str, str]:
    """The job id and operation a task run is for, read from its arguments."""
    if name not in JOB_TASK_NAMES:
        return {}
    args = list(args or [])
    kwargs = dict(kwargs or {})
    fields: dict[str, str] = {}
    job_id = kwargs.get("job_id", args[0] if args else None)
    if isinstance(job_id, str):
        fields["job_id"] = job_id
    if name in OPERATION_TASK_NAMES:
        operation = kwargs.get(
            "operation", args[1] if len(args) > 1 else DEFAULT_OPERATIONS.get(name)
        )
        if isinstance(operation, str):
            fields["operation"] = operation
    return fields


def _message_trace_id(task: Any) -> str | None:
    request = task.request
    value = getattr(request, "traceparent", None)
    if value is None:
        headers = getattr(request, "headers", None) or {}
        value = headers.get("traceparent")
    return tracing.trace_id_from_traceparent(value)


@signals.task_prerun.connect(dispatch_uid="pixtools_observability_prerun")
def _on_task_prerun(
    task_id: str | None = None,
    task: Any = None,
    args: Any = None,
    kwargs: Any = None,
    **_extra: Any,
) -> None:
    if task is None or task_id is None:
        return
    name = metrics.task_label(task.name)
    queue = _queue_of(task)
    fields = job_fields(task.name, args, kwargs)
    trace_id = _message_trace_id(task)
    if trace_id is not None:
        fields["trace_id"] = trace_id
    structlog.contextvars.bind_contextvars(**fields)

    with _lock:
        _running[task_id] = (time.monotonic(), queue)
    metrics.TASKS_IN_PROGRESS.labels(task=name, queue=queue).inc()
    redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
    if redelivered:
        metrics.TASK_REDELIVERIES.labels(task=name, queue=queue).inc()
    log.info(
        "task_started",
        queue=queue,
        retries=int(task.request.retries or 0),
        redelivered=redelivered,
    )


@signals.task_retry.connect(dispatch_uid="pixtools_observability_retry")
def _on_task_retry(
    sender: Any = None, request: Any = None, reason: Any = None, **_extra: Any
) -> None:
    if sender is None:
        return
    name = metrics.task_label(sender.name)
    queue = _queue_of(sender)
    metrics.TASK_RETRIES.labels(task=name, queue=queue, mode="celery").inc()
    log.warning(
        "task_retry",
        error=str(reason),
        retries=int(getattr(request, "retries", 0) or 0),
    )


@signals.task_failure.connect(dispatch_uid="pixtools_observability_failure")
def _on_task_failure(
    sender: Any = None, exception: BaseException | None = None, **_extra: Any
) -> None:
    log.error(
        "task_failed",
        error_type=type(exception).__name__ if exception else None,
        error=str(exception),
        exc_info=exception,
    )


def _operation_outcome(state: str | None, retval: Any) -> str:
    if state == "RETRY":
        return "retry"
    if state != "SUCCESS":
        return "error"
    return metrics.operation_outcome_label(retval)


def _webhook_outcome(state: str | None, retval: Any) -> str:
    if state == "RETRY":
        return "retried"
    if state != "SUCCESS":
        return "error"
    if retval is None:
        return "skipped"
    return WEBHOOK_OUTCOMES.get(str(retval), metrics.OTHER)


@signals.task_postrun.connect(dispatch_uid="pixtools_observability_postrun")
def _on_task_postrun(
    task_id: str | None = None,
    task: Any = None,
    args: Any = None,
    kwargs: Any = None,
    retval: Any = None,
    state: str | None = None,
    **_extra: Any,
) -> None:
    if task is None or task_id is None:
        return
    with _lock:
        started, queue = _running.pop(task_id, (None, _queue_of(task)))
    duration = time.monotonic() - started if started is not None else None
    name = metrics.task_label(task.name)
    state_label = (state or "unknown").lower()

    metrics.TASKS.labels(task=name, queue=queue, state=state_label).inc()
    if started is not None:
        metrics.TASKS_IN_PROGRESS.labels(task=name, queue=queue).dec()
    if duration is not None:
        metrics.TASK_DURATION.labels(task=name, queue=queue).observe(duration)

    fields = job_fields(task.name, args, kwargs)
    outcome = None
    if task.name in OPERATION_TASK_NAMES:
        outcome = _operation_outcome(state, retval)
        if duration is not None:
            metrics.OPERATION_DURATION.labels(
                operation=metrics.operation_label(fields.get("operation")),
                outcome=outcome,
            ).observe(duration)
    elif task.name == DELIVER_WEBHOOK_TASK:
        outcome = _webhook_outcome(state, retval)
        metrics.WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()

    # celery_app's postrun handler may have cleared the context already, so the
    # ids go in explicitly.
    log.info(
        "task_finished",
        task_id=task_id,
        task=task.name,
        state=state,
        outcome=outcome,
        duration_s=round(duration, 3) if duration is not None else None,
        **fields,
    )


@signals.worker_init.connect(dispatch_uid="pixtools_observability_worker_init")
def _on_worker_init(sender: Any = None, **_extra: Any) -> None:
    concurrency = getattr(sender, "concurrency", None)
    hostname = str(getattr(sender, "hostname", "") or "")
    worker = hostname.partition("@")[0] or metrics.OTHER
    if worker not in ("standard", "ml"):
        worker = metrics.OTHER
    if isinstance(concurrency, int):
        metrics.WORKER_CONCURRENCY.labels(worker=worker).set(concurrency)


@signals.worker_process_shutdown.connect(
    dispatch_uid="pixtools_observability_process_shutdown"
)
def _on_worker_process_shutdown(**_extra: Any) -> None:
    # A pool child leaves with os._exit, which skips atexit: export its spans
    # and drop its live gauges now.
    tracing.flush_spans()
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), directory)
