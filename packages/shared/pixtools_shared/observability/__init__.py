"""Metrics, traces and structured logs of the PixTools processes.

Modules: ``log_config`` (structlog setup), ``redaction`` (log scrubbing),
``metrics`` (Prometheus metrics of the pipeline and workers), ``pipeline_hooks``
(job and operation observations), ``tracing`` (OpenTelemetry), ``task_signals``
(Celery signal handlers), ``worker_metrics`` (the workers' /metrics server) and
``breaker`` (pybreaker listener).

This package imports nothing on its own: prometheus_client must not be imported
before a worker has set PROMETHEUS_MULTIPROC_DIR (see worker_metrics).
"""
