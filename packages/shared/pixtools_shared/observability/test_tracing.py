"""Tests of the tracing setup: the OTEL_* switch, carriers, engines, client spans."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import text

from pixtools_shared import jobs, outbox
from pixtools_shared.celery_app import create_celery_app
from pixtools_shared.db.session import create_db_engine, session_scope
from pixtools_shared.observability import tracing
from pixtools_shared.operations import parse_operation_request
from pixtools_shared.settings import Settings


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        (
            {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"},
            True,
        ),
        ({"OTEL_TRACES_EXPORTER": "none"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": " "}, False),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"},
            False,
        ),
        ({"OTEL_SERVICE_NAME": "api"}, False),
    ],
)
def test_tracing_requested(environ: dict[str, str], expected: bool) -> None:
    assert tracing.tracing_requested(environ) is expected


def test_configure_tracing_off_without_environment() -> None:
    assert tracing.configure_tracing("pixtools-test", environ={}) is None
    assert tracing.tracer_provider() is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "0af7651916cd43dd8448eb211c80319c",
        ),
        (
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "0af7651916cd43dd8448eb211c80319c",
        ),
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", None),
        ("00-xyz-b7ad6b7169203331-01", None),
        ("garbage", None),
        (None, None),
    ],
)
def test_trace_id_from_traceparent(value: object, expected: str | None) -> None:
    assert tracing.trace_id_from_traceparent(value) == expected


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = tracing.configure_tracing(
        "pixtools-test", exporter=exporter, set_global=False
    )
    assert provider is not None
    yield exporter
    tracing.reset_tracing()


def test_configure_tracing_once(spans: InMemorySpanExporter) -> None:
    first = tracing.tracer_provider()
    again = tracing.configure_tracing("other", exporter=InMemorySpanExporter())
    assert again is first
    assert first is not None
    assert first.resource.attributes["service.name"] == "pixtools-test"


def test_carrier_round_trip(spans: InMemorySpanExporter) -> None:
    provider = tracing.tracer_provider()
    assert provider is not None
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("request") as request:
        carrier = tracing.current_trace_carrier()
    assert carrier["traceparent"].split("-")[1] == format(
        request.get_span_context().trace_id, "032x"
    )

    with tracing.attached_trace_carrier(carrier), tracer.start_as_current_span("relay"):
        pass
    relay = next(span for span in spans.get_finished_spans() if span.name == "relay")
    assert relay.parent is not None
    assert relay.parent.span_id == request.get_span_context().span_id

    with tracing.attached_trace_carrier({}):
        assert tracing.current_trace_carrier() == {}


def test_engine_queries_traced(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    engine = tracing.instrument_engine(
        create_db_engine(f"sqlite:///{tmp_path / 'x.db'}")
    )
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    statements = [
        span
        for span in spans.get_finished_spans()
        if (span.attributes or {}).get("db.statement") == "SELECT 1"
        or (span.attributes or {}).get("db.query.text") == "SELECT 1"
    ]
    assert len(statements) == 1
    assert statements[0].kind == SpanKind.CLIENT


def test_engine_created_before_tracing_traced_later(tmp_path: Path) -> None:
    engine = tracing.instrument_engine(
        create_db_engine(f"sqlite:///{tmp_path / 'y.db'}")
    )
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("pixtools-test", exporter=exporter, set_global=False)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 2"))
    finally:
        engine.dispose()
        tracing.reset_tracing()
    texts = [
        (span.attributes or {}).get("db.statement")
        for span in exporter.get_finished_spans()
    ]
    assert "SELECT 2" in texts


@dataclass(frozen=True)
class _Target:
    host: str
    port: int


@dataclass(frozen=True)
class _Response:
    status_code: int


class _Failed(Exception):
    status_code = 503


@tracing.traced_http_post("POST webhook")
def _post(target: _Target, status: int) -> _Response:
    if status >= 500:
        raise _Failed("endpoint returned 503")
    return _Response(status)


def test_traced_http_post_records_status(spans: InMemorySpanExporter) -> None:
    assert _post(_Target("hooks.example.com", 443), 204) == _Response(204)
    with pytest.raises(_Failed):
        _post(_Target("hooks.example.com", 443), 503)
    ok, failed = spans.get_finished_spans()
    assert ok.name == "POST webhook"
    assert ok.kind == SpanKind.CLIENT
    assert dict(ok.attributes or {}) == {
        "http.request.method": "POST",
        "server.address": "hooks.example.com",
        "server.port": 443,
        "http.response.status_code": 204,
    }
    assert ok.status.status_code == StatusCode.UNSET
    assert (failed.attributes or {})["http.response.status_code"] == 503
    assert failed.status.status_code == StatusCode.ERROR


def test_traced_http_post_without_tracing() -> None:
    assert tracing.tracer_provider() is None
    assert _post(_Target("hooks.example.com", 443), 200) == _Response(200)


def test_relayed_message_joins_writer_trace(
    spans: InMemorySpanExporter, configured_env: Settings
) -> None:
    provider = tracing.tracer_provider()
    assert provider is not None
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("request") as request, session_scope() as session:
        job = jobs.create_job(
            session,
            operations=parse_operation_request('["png"]'),
            source=jobs.SourceInfo("in.png", "PNG", 4, 4, 10),
            settings=configured_env,
        )
        job_id = job.id

    # Beat relays the row later, outside the request's span.
    app = create_celery_app(configured_env)
    try:
        report = outbox.relay(app, job_id=job_id, settings=configured_env)
    finally:
        app.close()

    assert report.sent == 1
    [path] = configured_env.broker_folder.iterdir()
    headers = json.loads(path.read_text())["headers"]
    request_trace = format(request.get_span_context().trace_id, "032x")
    assert tracing.trace_id_from_traceparent(headers["traceparent"]) == request_trace
    [publish] = [
        span for span in spans.get_finished_spans() if span.name.startswith("apply_")
    ]
    assert publish.parent is not None
    assert publish.parent.span_id == request.get_span_context().span_id
