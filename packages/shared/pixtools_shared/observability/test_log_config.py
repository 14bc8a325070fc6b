"""Tests of configure_logging: context, trace ids, JSON and console output."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import format_span_id, format_trace_id

from pixtools_shared.observability.log_config import configure_logging
from pixtools_shared.settings import Settings


class Captured:
    """stderr as pytest captures it; configure_logging binds the handler to it."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def text(self) -> str:
        return self.capsys.readouterr().err


@pytest.fixture
def stderr(capsys: pytest.CaptureFixture[str]) -> Iterator[Captured]:
    yield Captured(capsys)
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    logging.getLogger().handlers = []


def _json_lines(stream: Captured) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.text().splitlines()]


def test_json_lines_carry_context_and_trace(stderr: Captured) -> None:
    configure_logging(Settings(LOG_JSON=True))
    tracer = TracerProvider().get_tracer("test")
    structlog.contextvars.bind_contextvars(job_id="job-1", task_id="task-1")

    with tracer.start_as_current_span("work") as span:
        structlog.get_logger("test.log").info("operation_started", operation="jpg")
        logging.getLogger("celery.app.trace").info("Task succeeded")
    structlog.get_logger("test.log").info("after_span")

    inside, foreign, after = _json_lines(stderr)
    context = span.get_span_context()
    for line in (inside, foreign):
        assert line["job_id"] == "job-1"
        assert line["task_id"] == "task-1"
        assert line["trace_id"] == format_trace_id(context.trace_id)
        assert line["span_id"] == format_span_id(context.span_id)
    assert inside["event"] == "operation_started"
    assert inside["level"] == "info"
    assert inside["logger"] == "test.log"
    assert foreign["logger"] == "celery.app.trace"
    assert "trace_id" not in after
    assert after["job_id"] == "job-1"


def test_bound_trace_id_kept_without_span(stderr: Captured) -> None:
    configure_logging(Settings(LOG_JSON=True))
    structlog.contextvars.bind_contextvars(trace_id="ab" * 16)

    structlog.get_logger("test.log").info("task_started")

    (line,) = _json_lines(stderr)
    assert line["trace_id"] == "ab" * 16


def test_console_lines_readable(stderr: Captured) -> None:
    configure_logging(Settings(LOG_JSON=False))
    structlog.contextvars.bind_contextvars(request_id="r-1")

    structlog.get_logger("test.log").warning("request_rejected", code="invalid-image")

    text = stderr.text()
    assert not text.startswith("{")
    assert "request_rejected" in text
    assert "code=invalid-image" in text
    assert "request_id=r-1" in text
    assert "warning" in text


def test_level_filters(stderr: Captured) -> None:
    configure_logging(Settings(LOG_JSON=True, LOG_LEVEL="WARNING"))

    structlog.get_logger("test.log").info("hidden")
    structlog.get_logger("test.log").warning("shown")

    assert [line["event"] for line in _json_lines(stderr)] == ["shown"]
