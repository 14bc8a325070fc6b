"""Build the Grafana dashboard JSON files from the panel lists below.

Run ``python -m pixtools_platform.dashboards.generate`` after editing a panel;
test_dashboards checks that the committed files match this output. Every query
filters on the ``environment`` label that Alloy's remote write adds, chosen by
the dashboard's ``environment`` variable.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DASHBOARD_DIR = Path(__file__).resolve().parent
SCHEMA_VERSION = 39
PANEL_WIDTH = 12
PANEL_HEIGHT = 8
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# The label every series gets from Alloy (external_labels of remote_write).
ENVIRONMENT_MATCHER = 'environment=~"$environment"'
RATE = "[$__rate_interval]"
# Values of the environment variable: every environment the API reported from.
ENVIRONMENT_QUERY = "label_values(pixtools_http_requests_total, environment)"


def series(name: str, *matchers: str) -> str:
    """Return a selector of ``name`` limited to the chosen environment."""
    return f"{name}{{{', '.join([ENVIRONMENT_MATCHER, *matchers])}}}"


def rate(name: str, *matchers: str) -> str:
    return f"rate({series(name, *matchers)}{RATE})"


def quantile(q: float, histogram: str, by: str = "", *matchers: str) -> str:
    """``histogram_quantile`` of a ``*_bucket`` series, grouped by ``by``."""
    labels = ", ".join(["le", *filter(None, [by])])
    inner = rate(f"{histogram}_bucket", *matchers)
    return f"histogram_quantile({q}, sum by ({labels}) ({inner}))"


def ratio(part: str, whole: str) -> str:
    """sum(part) / sum(whole), 0 instead of NaN while nothing happens."""
    return f"sum({part}) / clamp_min(sum({whole}), 1e-9)"


CLIENT_ERRORS = 'status=~"4.."'


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    unit: str
    queries: tuple[Query, ...]
    kind: str = "timeseries"


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...] = field(default_factory=tuple)


def q(expr: str, legend: str) -> Query:
    return Query(expr, legend)


API = Dashboard(
    uid="pixtools-api",
    title="PixTools / API",
    description="HTTP traffic, latency and job submissions of the API.",
    panels=(
        Panel(
            "Requests by route",
            "Requests per second by route template.",
            "reqps",
            (
                q(
                    f"sum by (route) ({rate('pixtools_http_requests_total')})",
                    "{{route}}",
                ),
            ),
        ),
        Panel(
            "Server error ratio",
            "Share of requests answered with a 5xx status.",
            "percentunit",
            (
                q(
                    ratio(
                        rate("pixtools_http_requests_total", 'status=~"5.."'),
                        rate("pixtools_http_requests_total"),
                    ),
                    "5xx",
                ),
            ),
        ),
        Panel(
            "Client errors by route and status",
            "4xx responses per second.",
            "reqps",
            (
                q(
                    "sum by (route, status) "
                    f"({rate('pixtools_http_requests_total', CLIENT_ERRORS)})",
                    "{{route}} {{status}}",
                ),
            ),
        ),
        Panel(
            "Latency p95 by route",
            "95th percentile of the request duration.",
            "s",
            (
                q(
                    quantile(0.95, "pixtools_http_request_duration_seconds", "route"),
                    "{{route}}",
                ),
            ),
        ),
        Panel(
            "Latency of POST /api/process",
            "Median, 95th and 99th percentile of the upload request.",
            "s",
            tuple(
                q(
                    quantile(
                        level,
                        "pixtools_http_request_duration_seconds",
                        "",
                        'route="/api/process"',
                    ),
                    f"p{round(level * 100)}",
                )
                for level in (0.5, 0.95, 0.99)
            ),
        ),
        Panel(
            "Requests in progress",
            "Requests being handled, per API pod.",
            "short",
            (
                q(
                    f"sum by (pod) ({series('pixtools_http_requests_in_progress')})",
                    "{{pod}}",
                ),
            ),
        ),
        Panel(
            "Jobs accepted and replayed",
            "New jobs and Idempotency-Key replays per second.",
            "ops",
            (
                q(f"sum({rate('pixtools_jobs_accepted_total')})", "accepted"),
                q(f"sum({rate('pixtools_idempotent_replays_total')})", "replayed"),
            ),
        ),
        Panel(
            "Jobs rejected by reason",
            "POST /api/process errors per second, by error code.",
            "ops",
            (
                q(
                    f"sum by (reason) ({rate('pixtools_jobs_rejected_total')})",
                    "{{reason}}",
                ),
            ),
        ),
        Panel(
            "Upload size",
            "Median and 95th percentile of accepted request bodies.",
            "bytes",
            tuple(
                q(
                    quantile(
                        level, "pixtools_upload_size_bytes", "", 'outcome="accepted"'
                    ),
                    f"p{round(level * 100)}",
                )
                for level in (0.5, 0.95)
            ),
        ),
        Panel(
            "Upload throughput",
            "Request body bytes received by POST /api/process per second.",
            "Bps",
            (
                q(
                    f"sum by (outcome) ({rate('pixtools_upload_size_bytes_sum')})",
                    "{{outcome}}",
                ),
            ),
        ),
        Panel(
            "API memory",
            "Resident memory per API pod.",
            "bytes",
            (q(series("process_resident_memory_bytes", 'service="api"'), "{{pod}}"),),
        ),
        Panel(
            "API CPU",
            "CPU seconds per second per API pod.",
            "percentunit",
            (q(rate("process_cpu_seconds_total", 'service="api"'), "{{pod}}"),),
        ),
    ),
)

PIPELINE = Dashboard(
    uid="pixtools-pipeline",
    title="PixTools / Pipeline",
    description="Jobs and operations from acceptance to webhook.",
    panels=(
        Panel(
            "Jobs finished by status",
            "Jobs that reached a final state, per second.",
            "ops",
            (
                q(
                    f"sum by (status) ({rate('pixtools_jobs_finished_total')})",
                    "{{status}}",
                ),
            ),
        ),
        Panel(
            "Job latency",
            "created_at to finished_at: median and 95th percentile.",
            "s",
            tuple(
                q(
                    quantile(level, "pixtools_job_duration_seconds"),
                    f"p{round(level * 100)}",
                )
                for level in (0.5, 0.95)
            ),
        ),
        Panel(
            "Failed job ratio",
            "Share of finished jobs that FAILED.",
            "percentunit",
            (
                q(
                    ratio(
                        rate("pixtools_jobs_finished_total", 'status="FAILED"'),
                        rate("pixtools_jobs_finished_total"),
                    ),
                    "failed",
                ),
            ),
        ),
        Panel(
            "Operation processing time p95",
            "95th percentile of one operation run, by operation.",
            "s",
            (
                q(
                    quantile(0.95, "pixtools_operation_duration_seconds", "operation"),
                    "{{operation}}",
                ),
            ),
        ),
        Panel(
            "Operation outcomes",
            "Operation runs per second by operation and outcome.",
            "ops",
            (
                q(
                    "sum by (operation, outcome) "
                    f"({rate('pixtools_operation_duration_seconds_count')})",
                    "{{operation}} {{outcome}}",
                ),
            ),
        ),
        Panel(
            "Queue wait p95 by operation",
            "queued_at to the first start, 95th percentile.",
            "s",
            (
                q(
                    quantile(
                        0.95, "pixtools_operation_queue_wait_seconds", "operation"
                    ),
                    "{{operation}}",
                ),
            ),
        ),
        Panel(
            "Retries",
            "Retries after transient errors, by task and mode.",
            "ops",
            (
                q(
                    f"sum by (task, mode) ({rate('pixtools_task_retries_total')})",
                    "{{task}} {{mode}}",
                ),
            ),
        ),
        Panel(
            "Redeliveries",
            "Task messages the broker delivered again.",
            "ops",
            (
                q(
                    f"sum by (task) ({rate('pixtools_task_redeliveries_total')})",
                    "{{task}}",
                ),
            ),
        ),
        Panel(
            "Dead letters",
            "Messages waiting in the dead-letter queue, as last counted.",
            "short",
            (q(f"max({series('pixtools_dead_letters')})", "dead letters"),),
            kind="stat",
        ),
        Panel(
            "Webhook deliveries by outcome",
            "Delivery task runs per second.",
            "ops",
            (
                q(
                    f"sum by (outcome) ({rate('pixtools_webhook_deliveries_total')})",
                    "{{outcome}}",
                ),
            ),
        ),
        Panel(
            "Webhook circuit breakers",
            "Breakers open now, and state changes per second.",
            "short",
            (
                q(f"sum({series('pixtools_circuit_breakers_open')})", "open"),
                q(
                    "sum by (state) "
                    f"({rate('pixtools_circuit_breaker_transitions_total')})",
                    "to {{state}}",
                ),
            ),
        ),
    ),
)

QUEUES = Dashboard(
    uid="pixtools-queues",
    title="PixTools / Queues",
    description="Broker-side view from celery-exporter, next to the workers' own.",
    panels=(
        Panel(
            "Queue length",
            "Messages waiting per queue (celery-exporter).",
            "short",
            (
                q(
                    f"max by (queue_name) ({series('celery_queue_length')})",
                    "{{queue_name}}",
                ),
            ),
        ),
        Panel(
            "Consumers per queue",
            "Consumers the broker reports per queue (celery-exporter).",
            "short",
            (
                q(
                    f"max by (queue_name) ({series('celery_active_consumer_count')})",
                    "{{queue_name}}",
                ),
            ),
        ),
        Panel(
            "Workers and processes per queue",
            "Workers and pool processes consuming each queue (celery-exporter).",
            "short",
            (
                q(
                    f"max by (queue_name) ({series('celery_active_worker_count')})",
                    "workers {{queue_name}}",
                ),
                q(
                    f"max by (queue_name) ({series('celery_active_process_count')})",
                    "processes {{queue_name}}",
                ),
            ),
        ),
        Panel(
            "Workers up",
            "Workers whose heartbeat celery-exporter has seen recently.",
            "short",
            (q(f"sum({series('celery_worker_up')})", "up"),),
            kind="stat",
        ),
        Panel(
            "Active tasks per worker",
            "Tasks a worker reports as running in its heartbeat (celery-exporter).",
            "short",
            (
                q(
                    f"sum by (hostname) ({series('celery_worker_tasks_active')})",
                    "{{hostname}}",
                ),
            ),
        ),
        Panel(
            "Queue wait p95 by queue",
            "queued_at to the first start of an operation, 95th percentile.",
            "s",
            (
                q(
                    quantile(0.95, "pixtools_operation_queue_wait_seconds", "queue"),
                    "{{queue}}",
                ),
            ),
        ),
        Panel(
            "Tasks finished by queue",
            "Task runs per second by queue, from the workers.",
            "ops",
            (q(f"sum by (queue) ({rate('pixtools_tasks_total')})", "{{queue}}"),),
        ),
        Panel(
            "Dead letters",
            "Messages waiting in the dead-letter queue.",
            "short",
            (q(f"max({series('pixtools_dead_letters')})", "dead letters"),),
        ),
    ),
)

WORKERS = Dashboard(
    uid="pixtools-workers",
    title="PixTools / Workers",
    description="Task throughput, durations and pool use of the Celery workers.",
    panels=(
        Panel(
            "Tasks by task and state",
            "Task runs per second.",
            "ops",
            (
                q(
                    f"sum by (task, state) ({rate('pixtools_tasks_total')})",
                    "{{task}} {{state}}",
                ),
            ),
        ),
        Panel(
            "Task duration p95",
            "95th percentile of one task run, by task.",
            "s",
            (q(quantile(0.95, "pixtools_task_duration_seconds", "task"), "{{task}}"),),
        ),
        Panel(
            "Pool use",
            "Task runs in progress against the pool size, per worker deployment.",
            "short",
            (
                q(
                    f"sum by (service) ({series('pixtools_tasks_in_progress')})",
                    "busy {{service}}",
                ),
                q(
                    f"sum by (service) ({series('pixtools_worker_concurrency')})",
                    "pool {{service}}",
                ),
            ),
        ),
        Panel(
            "Pool processes",
            "Live pool processes per worker pod.",
            "short",
            (
                q(
                    f"sum by (pod) ({series('pixtools_worker_pool_processes')})",
                    "{{pod}}",
                ),
            ),
        ),
        Panel(
            "Worker memory",
            "Resident memory of the pool processes and of the main process.",
            "bytes",
            (
                q(series("pixtools_worker_pool_resident_memory_bytes"), "pool {{pod}}"),
                q(
                    series("process_resident_memory_bytes", 'service=~"worker-.*"'),
                    "main {{pod}}",
                ),
            ),
        ),
        Panel(
            "Worker main process CPU",
            "CPU seconds per second of each worker's main process.",
            "percentunit",
            (
                q(
                    rate("process_cpu_seconds_total", 'service=~"worker-.*"'),
                    "{{pod}}",
                ),
            ),
        ),
        Panel(
            "Operation time by worker",
            "Seconds of operation processing per second, by worker deployment.",
            "short",
            (
                q(
                    "sum by (service) "
                    f"({rate('pixtools_operation_duration_seconds_sum')})",
                    "{{service}}",
                ),
            ),
        ),
    ),
)

DASHBOARDS = (API, PIPELINE, QUEUES, WORKERS)


def _panel_json(panel: Panel, panel_id: int) -> dict[str, Any]:
    column = (panel_id - 1) % 2
    row = (panel_id - 1) // 2
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {
            "x": column * PANEL_WIDTH,
            "y": row * PANEL_HEIGHT,
            "w": PANEL_WIDTH,
            "h": PANEL_HEIGHT,
        },
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom"},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "targets": [
            {
                "refId": chr(ord("A") + index),
                "datasource": DATASOURCE,
                "expr": query.expr,
                "legendFormat": query.legend,
            }
            for index, query in enumerate(panel.queries)
        ],
    }


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    """Build the Grafana JSON model of one dashboard."""
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["pixtools"],
        "timezone": "utc",
        "editable": True,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "annotations": {"list": []},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                },
                {
                    "name": "environment",
                    "label": "Environment",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {
                        "query": ENVIRONMENT_QUERY,
                        "refId": "environment",
                    },
                    "definition": ENVIRONMENT_QUERY,
                    "includeAll": True,
                    "multi": False,
                    "refresh": 2,
                    "current": {},
                    "hide": 0,
                },
            ]
        },
        "panels": [
            _panel_json(panel, index) for index, panel in enumerate(dashboard.panels, 1)
        ],
    }


def file_name(dashboard: Dashboard) -> str:
    return f"{dashboard.uid.removeprefix('pixtools-')}.json"


def render(dashboard: Dashboard) -> str:
    return json.dumps(dashboard_json(dashboard), indent=2, sort_keys=True) + "\n"


def main(directory: Path = DASHBOARD_DIR) -> int:
    """Write every dashboard's JSON file into ``directory``."""
    for dashboard in DASHBOARDS:
        (directory / file_name(dashboard)).write_text(render(dashboard), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
