"""structlog setup of every PixTools process (API, workers, beat, launcher).

Output goes to stderr, as readable console lines or, with LOG_JSON, one JSON
object per line. Records of standard-library loggers (Celery, kombu, uvicorn,
SQLAlchemy) go through the same formatter, so they carry the same context.

Every line gets the fields bound in the structlog context: request_id in the
API, task_id, job_id and operation in the workers. It also gets the trace and
span ids of the current OpenTelemetry span. ``redaction.redact_secrets`` scrubs
it just before it is rendered.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from opentelemetry import trace

from pixtools_shared.observability.redaction import redact_secrets
from pixtools_shared.settings import Settings


def add_trace_context(
    _logger: object, _method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: add ``trace_id`` and ``span_id`` of the current span.

    A trace id bound earlier (a task's incoming ``traceparent``) stays when no
    span is active, so lines logged around the task's own span keep it too.
    """
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict["trace_id"] = trace.format_trace_id(context.trace_id)
        event_dict["span_id"] = trace.format_span_id(context.span_id)
    return event_dict


def configure_logging(settings: Settings) -> None:
    """Route structlog and stdlib logging to one stderr handler."""
    level = logging.getLevelNamesMapping().get(settings.LOG_LEVEL.upper(), logging.INFO)
    pre_chain: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        add_trace_context,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Tracebacks become text before redaction, because exception messages can
    # carry URLs (a failed S3 request names its presigned URL).
    renderer: list[structlog.typing.Processor] = [
        structlog.processors.format_exc_info,
        redact_secrets,
        structlog.processors.JSONRenderer()
        if settings.LOG_JSON
        else structlog.dev.ConsoleRenderer(colors=False),
    ]

    structlog.configure(
        processors=[*pre_chain, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=pre_chain,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
