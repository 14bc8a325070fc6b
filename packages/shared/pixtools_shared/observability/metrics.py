"""Prometheus metrics of the job pipeline and the workers.

Names follow the Prometheus conventions: the ``pixtools_`` prefix, base units
(seconds, bytes) and ``_total`` on counters (prometheus-client adds it). Label
values come from fixed sets (task names, queues, operations, states), never from
job ids or URLs: the ``*_label`` helpers map anything unknown to ``other``.

In a worker these live in prometheus-client's multiprocess mode (see
worker_metrics), so every gauge names its multiprocess mode. The API's own
metrics are in ``pixtools_api.metrics_middleware``; the dead-letter gauge
``pixtools_dead_letters`` is in ``pixtools_shared.metrics``.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter, Gauge, Histogram

from pixtools_shared.broker_topology import DEAD_LETTER_QUEUE
from pixtools_shared.tasks import OPERATION_TASKS, QUEUES, TASK_QUEUES

OTHER: Final = "other"

# Task and operation runs: from a few milliseconds (metadata) to the ML worker's
# ten-minute soft limit.
TASK_SECONDS_BUCKETS: Final = (
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
)
# Waiting and whole jobs: up to an hour, which a backlog after an outage reaches.
WAIT_SECONDS_BUCKETS: Final = (
    0.01,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)

TASKS = Counter(
    "pixtools_tasks",
    "Celery task runs that ended, by task, queue and Celery state.",
    ["task", "queue", "state"],
)
TASK_DURATION = Histogram(
    "pixtools_task_duration_seconds",
    "Wall-clock time of one task run, from task_prerun to task_postrun.",
    ["task", "queue"],
    buckets=TASK_SECONDS_BUCKETS,
)
TASKS_IN_PROGRESS = Gauge(
    "pixtools_tasks_in_progress",
    "Task runs in progress in live worker processes.",
    ["task", "queue"],
    multiprocess_mode="livesum",
)
TASK_RETRIES = Counter(
    "pixtools_task_retries",
    "Retries after a transient error, by task, queue and mode: wait (in the "
    "task), republish (a delayed outbox message) or celery (Task.retry).",
    ["task", "queue", "mode"],
)
TASK_REDELIVERIES = Counter(
    "pixtools_task_redeliveries",
    "Task messages the broker delivered again (a worker died or lost its "
    "connection before acknowledging).",
    ["task", "queue"],
)

OPERATION_DURATION = Histogram(
    "pixtools_operation_duration_seconds",
    "Processing time of one operation run, by operation and outcome "
    "(succeeded, failed, skipped, retrying, retry, error).",
    ["operation", "outcome"],
    buckets=TASK_SECONDS_BUCKETS,
)
OPERATION_QUEUE_WAIT = Histogram(
    "pixtools_operation_queue_wait_seconds",
    "Time from an operation's queued_at to its first start.",
    ["operation", "queue"],
    buckets=WAIT_SECONDS_BUCKETS,
)

JOBS_FINISHED = Counter(
    "pixtools_jobs_finished",
    "Jobs that reached a final state, by that state.",
    ["status"],
)
JOB_DURATION = Histogram(
    "pixtools_job_duration_seconds",
    "End-to-end job latency, from created_at (accepted) to finished_at.",
    ["status"],
    buckets=WAIT_SECONDS_BUCKETS,
)

WEBHOOK_DELIVERIES = Counter(
    "pixtools_webhook_deliveries",
    "Webhook delivery task runs by outcome: delivered, failed, pending (a retry "
    "is scheduled through the outbox), retried (Task.retry), skipped, error.",
    ["outcome"],
)
BREAKER_TRANSITIONS = Counter(
    "pixtools_circuit_breaker_transitions",
    "Circuit breaker state changes, by breaker and the state entered.",
    ["breaker", "state"],
)
BREAKERS_OPEN = Gauge(
    "pixtools_circuit_breakers_open",
    "Circuit breakers now open in live processes (webhooks keep one per host).",
    ["breaker"],
    multiprocess_mode="livesum",
)

WORKER_CONCURRENCY = Gauge(
    "pixtools_worker_concurrency",
    "Pool processes (or threads) a worker was started with.",
    ["worker"],
    multiprocess_mode="livesum",
)

KNOWN_QUEUES: Final = frozenset({*QUEUES, DEAD_LETTER_QUEUE})
KNOWN_JOB_STATUSES: Final = frozenset(
    {"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "EXPIRED"}
)
OPERATION_OUTCOMES: Final = frozenset(
    {"succeeded", "failed", "skipped", "retrying", "retry", "error"}
)
RETRY_MODES: Final = frozenset({"wait", "republish", "celery"})


def task_label(name: object) -> str:
    """The task name when it is a PixTools task, else ``other``."""
    return name if isinstance(name, str) and name in TASK_QUEUES else OTHER


def queue_label(name: object) -> str:
    return name if isinstance(name, str) and name in KNOWN_QUEUES else OTHER


def operation_label(name: object) -> str:
    return name if isinstance(name, str) and name in OPERATION_TASKS else OTHER


def job_status_label(status: object) -> str:
    text = str(status)
    return text if text in KNOWN_JOB_STATUSES else OTHER


def operation_outcome_label(outcome: object) -> str:
    text = str(outcome)
    return text if text in OPERATION_OUTCOMES else OTHER


def retry_mode_label(mode: object) -> str:
    text = str(mode)
    return text if text in RETRY_MODES else OTHER
