"""OpenTelemetry tracing: one trace per job across the API and the workers.

The API request span is the root. Publishing a task injects the W3C
``traceparent`` into the message headers, and the Celery instrumentation
continues the trace in the worker. So the tasks join the request's trace, with
their database queries (SQLAlchemy), S3 calls (botocore), httpx calls and the
webhook POST (``traced_http_post``). A task published by a task (finalize,
webhook) stays in the same trace.

Tracing is off unless the standard environment asks for it:
OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (export with
OTLP over HTTP), or OTEL_TRACES_EXPORTER (``otlp``, ``console`` or ``none``;
``none`` records spans without exporting them, so logs still get trace ids).
OTEL_SDK_DISABLED=true turns it off. The exporter, sampler (OTEL_TRACES_SAMPLER),
batching (OTEL_BSP_*) and resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES)
read their usual variables.
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import structlog
from celery import signals
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from sqlalchemy import Engine

log = structlog.get_logger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Probe and scrape endpoints make no spans.
EXCLUDED_URLS = "/metrics,/api/livez,/api/readyz"
KNOWN_EXPORTERS = frozenset({"otlp", "console", "none"})


@dataclass
class _Tracing:
    provider: TracerProvider
    instrumentors: list[Any] = field(default_factory=list)


_lock = threading.Lock()
_tracing: _Tracing | None = None
# Engines created before tracing was configured; configure_tracing instruments them.
_waiting_engines: weakref.WeakSet[Engine] = weakref.WeakSet()
_instrumented_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def _exporter_names(environ: Mapping[str, str]) -> list[str]:
    names = [
        name.strip().lower()
        for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",")
        if name.strip()
    ]
    if names:
        return names
    endpoint_set = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    return ["otlp"] if endpoint_set else []


def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Tell whether the OTEL_* variables turn tracing on (see the module doc)."""
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(_exporter_names(environ))


def _build_exporters(environ: Mapping[str, str]) -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    for name in _exporter_names(environ):
        if name == "otlp":
            protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
            )
            if protocol != "http/protobuf":
                log.warning(
                    "otlp_protocol_unsupported",
                    protocol=protocol,
                    used="http/protobuf",
                )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter,
            )

            exporters.append(OTLPSpanExporter())
        elif name == "console":
            exporters.append(ConsoleSpanExporter())
        elif name != "none":
            log.warning(
                "trace_exporter_unknown",
                exporter=name,
                expected=sorted(KNOWN_EXPORTERS),
            )
    return exporters


def _resource(service_name: str, environ: Mapping[str, str]) -> Resource:
    # Attributes passed here override OTEL_SERVICE_NAME, so the process's own
    # name is only a default.
    if environ.get("OTEL_SERVICE_NAME"):
        return Resource.create()
    return Resource.create({SERVICE_NAME: service_name})


def configure_tracing(
    service_name: str,
    *,
    exporter: SpanExporter | None = None,
    environ: Mapping[str, str] | None = None,
    set_global: bool = True,
) -> TracerProvider | None:
    """Set up tracing once per process and instrument Celery, botocore and httpx.

    Returns the provider, or None when tracing is off. ``exporter`` (tests) turns
    tracing on with that exporter behind a synchronous processor; tests pass
    ``set_global=False`` and undo everything with ``reset_tracing``.
    """
    global _tracing
    environ = os.environ if environ is None else environ
    with _lock:
        if _tracing is not None:
            return _tracing.provider
        if exporter is None and not tracing_requested(environ):
            return None

        provider = TracerProvider(resource=_resource(service_name, environ))
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            for built in _build_exporters(environ):
                provider.add_span_processor(BatchSpanProcessor(built))
        if set_global:
            trace.set_tracer_provider(provider)
        _tracing = _Tracing(provider)
        _tracing.instrumentors = _instrument_libraries(provider)
        waiting = list(_waiting_engines)
        _waiting_engines.clear()

    for engine in waiting:
        instrument_engine(engine)
    log.info(
        "tracing_configured",
        service=service_name,
        exporters=_exporter_names(environ) if exporter is None else ["custom"],
    )
    return provider


class _PublishTracer:
    """Producer spans of task messages, replacing the Celery instrumentation's.

    The instrumentation ends its publish span only when the task is registered
    in the publishing process. The API sends every task by name, and the ML
    worker sends finalize_job, which it does not run. There the span would never
    end and would stay the current span. These handlers key the span by task id
    instead, and inject its context into the message headers.
    """

    MAX_OPEN_SPANS = 1000

    def __init__(self, provider: TracerProvider) -> None:
        self.tracer = provider.get_tracer(__name__)
        self.open_spans: OrderedDict[str, trace.Span] = OrderedDict()
        self.lock = threading.Lock()

    def before_publish(
        self,
        sender: object = None,
        headers: dict[str, Any] | None = None,
        routing_key: object = None,
        **_kwargs: Any,
    ) -> None:
        if headers is None:
            return
        task_id = str(headers.get("id") or "")
        span = self.tracer.start_span(
            f"apply_async/{sender}",
            kind=trace.SpanKind.PRODUCER,
            attributes={
                "celery.action": "apply_async",
                "celery.task_name": str(sender),
                "messaging.message.id": task_id,
                "messaging.destination.name": str(routing_key or ""),
            },
        )
        propagate.inject(headers, context=trace.set_span_in_context(span))
        with self.lock:
            self.open_spans[task_id] = span
            # A publish that raised sends no after_task_publish; end the oldest.
            while len(self.open_spans) > self.MAX_OPEN_SPANS:
                self.open_spans.popitem(last=False)[1].end()

    def after_publish(
        self, headers: dict[str, Any] | None = None, **_kwargs: Any
    ) -> None:
        task_id = str((headers or {}).get("id") or "")
        with self.lock:
            span = self.open_spans.pop(task_id, None)
        if span is not None:
            span.end()

    def connect(self) -> None:
        signals.before_task_publish.connect(self.before_publish, weak=False)
        signals.after_task_publish.connect(self.after_publish, weak=False)

    def uninstrument(self) -> None:
        signals.before_task_publish.disconnect(self.before_publish)
        signals.after_task_publish.disconnect(self.after_publish)
        with self.lock:
            spans, self.open_spans = list(self.open_spans.values()), OrderedDict()
        for span in spans:
            span.end()


def _instrument_libraries(provider: TracerProvider) -> list[Any]:
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    instrumentors: list[Any] = []
    for instrumentor in (
        CeleryInstrumentor(),
        BotocoreInstrumentor(),
        HTTPXClientInstrumentor(),
    ):
        instrumentor.instrument(tracer_provider=provider)
        instrumentors.append(instrumentor)

    celery_instrumentor = instrumentors[0]
    signals.before_task_publish.disconnect(celery_instrumentor._trace_before_publish)
    signals.after_task_publish.disconnect(celery_instrumentor._trace_after_publish)
    publish_tracer = _PublishTracer(provider)
    publish_tracer.connect()
    instrumentors.append(publish_tracer)
    return instrumentors


def tracer_provider() -> TracerProvider | None:
    """Return the provider configure_tracing built, or None while tracing is off."""
    return _tracing.provider if _tracing is not None else None


def instrument_engine(engine: Engine) -> Engine:
    """Trace the queries of ``engine``; returns it (a no-op while tracing is off).

    Engines passed before configure_tracing runs are instrumented by it.
    """
    state = _tracing
    if state is None:
        _waiting_engines.add(engine)
        return engine
    with _lock:
        if engine in _instrumented_engines:
            return engine
        _instrumented_engines.add(engine)

    from opentelemetry import metrics as otel_metrics
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    # The instrumentation's own entry point wraps create_engine, which
    # pixtools_shared.db.session imported before tracing is configured, so each
    # engine gets its tracer here instead.
    tracer = state.provider.get_tracer("opentelemetry.instrumentation.sqlalchemy")
    connections = otel_metrics.get_meter(__name__).create_up_down_counter(
        "db.client.connections.usage", unit="connections"
    )
    EngineTracer(tracer, engine, connections)
    return engine


def instrument_fastapi(app: Any) -> None:
    """Give each request of a FastAPI app a server span (no-op while off)."""
    state = _tracing
    if state is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=state.provider,
        excluded_urls=EXCLUDED_URLS,
        exclude_spans=["receive", "send"],
    )


def traced_http_post(span_name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a function that sends one HTTP POST, to give it a client span.

    The first argument may name the target (``host``, ``port`` attributes), and
    the result or the exception may carry ``status_code``. Used where the HTTP
    client is not one the instrumentations know (the webhook's httpcore calls).
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            state = _tracing
            if state is None:
                return func(*args, **kwargs)
            target = args[0] if args else None
            attributes: dict[str, str | int] = {"http.request.method": "POST"}
            host = getattr(target, "host", None)
            port = getattr(target, "port", None)
            if isinstance(host, str):
                attributes["server.address"] = host
            if isinstance(port, int):
                attributes["server.port"] = port
            tracer = state.provider.get_tracer(__name__)
            with tracer.start_as_current_span(
                span_name, kind=trace.SpanKind.CLIENT, attributes=attributes
            ) as span:
                try:
                    result = func(*args, **kwargs)
                except Exception as exc:
                    _set_status_code(span, getattr(exc, "status_code", None))
                    raise
                _set_status_code(span, getattr(result, "status_code", None))
                return result

        return wrapper

    return decorate


def _set_status_code(span: trace.Span, status: object) -> None:
    if not isinstance(status, int):
        return
    span.set_attribute("http.response.status_code", status)
    if status >= 400:
        span.set_status(trace.Status(trace.StatusCode.ERROR, f"HTTP {status}"))


def flush_spans(timeout_millis: int = 5000) -> None:
    """Export finished spans now (a worker child calls this before it exits)."""
    if _tracing is not None:
        _tracing.provider.force_flush(timeout_millis)


def reset_tracing() -> None:
    """Undo configure_tracing: uninstrument the libraries and forget the provider.

    For tests; engines already instrumented keep their listeners.
    """
    global _tracing
    with _lock:
        state, _tracing = _tracing, None
        _waiting_engines.clear()
    if state is None:
        return
    for instrumentor in state.instrumentors:
        instrumentor.uninstrument()
    state.provider.shutdown()


def current_trace_carrier() -> dict[str, str]:
    """Return the current trace context as W3C headers (empty when there is none)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def attached_trace_carrier(carrier: Mapping[str, str] | None) -> Iterator[None]:
    """Run the block inside the trace context stored in ``carrier``."""
    if not carrier:
        yield
        return
    token = otel_context.attach(propagate.extract(dict(carrier)))
    try:
        yield
    finally:
        otel_context.detach(token)


def trace_id_from_traceparent(value: object) -> str | None:
    """Return the trace id of a W3C ``traceparent`` value, None when malformed."""
    if not isinstance(value, str):
        return None
    parts = value.strip().split("-")
    if len(parts) != 4 or len(parts[1]) != 32:
        return None
    trace_id = parts[1].lower()
    if trace_id == "0" * 32 or any(char not in "0123456789abcdef" for char in trace_id):
        return None
    return trace_id
