"""Request metrics, request ids, access logs and GET /metrics of the API.

``RequestObservabilityMiddleware`` wraps every HTTP request. It binds a request
id into the structlog context and echoes it in the response: the client's
``X-Request-ID`` when it is a plain token, else a new one. It counts the request
by route template and status, observes its latency and logs one
``request_finished`` line. For POST /api/process it also records the upload
size and whether the job was accepted, replayed (``Idempotent-Replayed``) or
rejected, with the error code from the error body as the reason.

``install_observability`` wires this, the tracing of the app and /metrics.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import Response
from opentelemetry import trace
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixtools_api.access import METRICS_ACCESS_STATE
from pixtools_api.auth import WWW_AUTHENTICATE
from pixtools_api.errors import error_response
from pixtools_shared.observability import tracing

log = structlog.get_logger(__name__)

PROCESS_PATH: Final = "/api/process"
METRICS_PATH: Final = "/metrics"
REQUEST_ID_HEADER: Final = "X-Request-ID"
REQUEST_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")
ERROR_CODE_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Requests logged at debug level: probes and scrapes every few seconds.
QUIET_PATHS: Final = frozenset({METRICS_PATH, "/api/livez", "/api/readyz"})
UNMATCHED_ROUTE: Final = "unmatched"
# Status of a request whose client went away before a response was started
# (nginx's convention).
CLIENT_CLOSED_STATUS: Final = 499
# The process route's response bodies are small JSON; more is not read.
MAX_CAPTURED_BODY_BYTES: Final = 64 * 1024

HTTP_SECONDS_BUCKETS: Final = (
    0.005,
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
)
# Upload sizes from a thumbnail to the largest MAX_UPLOAD_BYTES a deployment
# would set (factor 4 steps from 16 KiB to 1 GiB).
UPLOAD_BYTES_BUCKETS: Final = tuple(float(16 * 1024 * 4**step) for step in range(9))

REQUESTS = Counter(
    "pixtools_http_requests",
    "HTTP requests by method, route template and status code.",
    ["method", "route", "status"],
)
REQUEST_DURATION = Histogram(
    "pixtools_http_request_duration_seconds",
    "Time from receiving a request to the end of its response.",
    ["method", "route"],
    buckets=HTTP_SECONDS_BUCKETS,
)
REQUESTS_IN_PROGRESS = Gauge(
    "pixtools_http_requests_in_progress",
    "HTTP requests being handled.",
    ["method"],
    multiprocess_mode="livesum",
)
UPLOAD_SIZE = Histogram(
    "pixtools_upload_size_bytes",
    "Request body bytes received by POST /api/process, by outcome "
    "(accepted, replayed, rejected).",
    ["outcome"],
    buckets=UPLOAD_BYTES_BUCKETS,
)
JOBS_ACCEPTED = Counter(
    "pixtools_jobs_accepted",
    "Jobs created by POST /api/process (replays are not counted).",
)
JOBS_REJECTED = Counter(
    "pixtools_jobs_rejected",
    "POST /api/process requests answered with an error, by error code.",
    ["reason"],
)
IDEMPOTENT_REPLAYS = Counter(
    "pixtools_idempotent_replays",
    "POST /api/process requests answered with the job of an earlier request "
    "that had the same Idempotency-Key.",
)


def method_label(method: str) -> str:
    return method if method in METHODS else "OTHER"


def route_label(scope: Scope) -> str:
    """Return the matched route's path template (``/api/jobs/{job_id}``)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


def request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1").strip()
            if REQUEST_ID_PATTERN.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def error_code_of(body: bytes) -> str:
    """Return the ``error.code`` of an error body, ``unknown`` when it has none."""
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "unknown"
    if isinstance(code, str) and ERROR_CODE_PATTERN.fullmatch(code):
        return code
    return "other"


def job_id_of(body: bytes) -> str | None:
    try:
        job_id = json.loads(body)["job_id"]
    except (ValueError, KeyError, TypeError):
        return None
    return job_id if isinstance(job_id, str) else None


def annotate_span(
    scope: Scope, exchange: _Exchange, request_id: str, is_process: bool
) -> None:
    """Put the request id and the job id on the current (request) span."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute("pixtools.request_id", request_id)
    job_id = (scope.get("path_params") or {}).get("job_id")
    if is_process and exchange.status is not None and exchange.status < 400:
        job_id = job_id_of(bytes(exchange.response_body))
    if isinstance(job_id, str):
        span.set_attribute("pixtools.job_id", job_id)


@dataclass
class _Exchange:
    """Observations of one request and its response."""

    status: int | None = None
    body_bytes: int = 0
    replayed: bool = False
    response_body: bytearray = field(default_factory=bytearray)


class RequestObservabilityMiddleware:
    """ASGI middleware: request id, metrics and the access log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        method = method_label(scope["method"])
        request_id = request_id_from(scope)
        tokens = structlog.contextvars.bind_contextvars(request_id=request_id)
        is_process = method == "POST" and scope["path"] == PROCESS_PATH
        exchange = _Exchange()

        async def receive_counting() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                exchange.body_bytes += len(message.get("body", b""))
            return message

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = int(message["status"])
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                exchange.replayed = headers.get("idempotent-replayed") == "true"
            elif message["type"] == "http.response.body":
                if is_process and len(exchange.response_body) < MAX_CAPTURED_BODY_BYTES:
                    exchange.response_body += message.get("body", b"")
                if not message.get("more_body", False):
                    # The tracing middleware ends the request span with the
                    # last body message, so the attributes go on before it.
                    annotate_span(scope, exchange, request_id, is_process)
            await send(message)

        REQUESTS_IN_PROGRESS.labels(method=method).inc()
        try:
            await self.app(
                scope, receive_counting if is_process else receive, send_observed
            )
        except BaseException:
            # The error handler outside this middleware sends a 500.
            exchange.status = exchange.status or 500
            raise
        finally:
            REQUESTS_IN_PROGRESS.labels(method=method).dec()
            self._record(scope, method, exchange, is_process, started, request_id)
            structlog.contextvars.reset_contextvars(**tokens)

    def _record(
        self,
        scope: Scope,
        method: str,
        exchange: _Exchange,
        is_process: bool,
        started: float,
        request_id: str,
    ) -> None:
        duration = time.perf_counter() - started
        status = exchange.status or CLIENT_CLOSED_STATUS
        route = route_label(scope)
        REQUESTS.labels(method=method, route=route, status=str(status)).inc()
        REQUEST_DURATION.labels(method=method, route=route).observe(duration)

        fields: dict[str, Any] = {}
        path_params = scope.get("path_params") or {}
        job_id = path_params.get("job_id")
        if is_process:
            job_id, fields["outcome"] = self._record_submission(exchange, status)
        if isinstance(job_id, str):
            fields["job_id"] = job_id

        emit = log.debug if scope["path"] in QUIET_PATHS else log.info
        emit(
            "request_finished",
            method=method,
            route=route,
            path=scope["path"],
            status=status,
            duration_s=round(duration, 4),
            **fields,
        )

    @staticmethod
    def _record_submission(exchange: _Exchange, status: int) -> tuple[str | None, str]:
        body = bytes(exchange.response_body)
        if status >= 400:
            if body:
                reason = error_code_of(body)
            else:
                # A 500 from an unhandled exception is sent outside this middleware.
                reason = "internal-error" if status >= 500 else "unknown"
            JOBS_REJECTED.labels(reason=reason).inc()
            UPLOAD_SIZE.labels(outcome="rejected").observe(exchange.body_bytes)
            return None, "rejected"
        outcome = "replayed" if exchange.replayed else "accepted"
        if exchange.replayed:
            IDEMPOTENT_REPLAYS.inc()
        else:
            JOBS_ACCEPTED.inc()
        UPLOAD_SIZE.labels(outcome=outcome).observe(exchange.body_bytes)
        return job_id_of(body), outcome


def install_observability(app: FastAPI) -> None:
    """Add request metrics, tracing (when OTEL_* turns it on) and GET /metrics."""
    tracing.configure_tracing("pixtools-api")
    app.add_middleware(RequestObservabilityMiddleware)
    tracing.instrument_fastapi(app)

    async def read_metrics(request: Request) -> Response:
        # AccessControlMiddleware decides who may read /metrics (METRICS_PUBLIC,
        # METRICS_TOKEN or an API key) and marks the request when it may.
        if not request.scope.get("state", {}).get(METRICS_ACCESS_STATE):
            return error_response(
                401,
                "unauthenticated",
                "GET /metrics requires METRICS_PUBLIC, METRICS_TOKEN or an API key.",
                headers={"WWW-Authenticate": WWW_AUTHENTICATE},
            )
        return Response(
            generate_latest(REGISTRY),
            media_type=CONTENT_TYPE_LATEST,
            headers={"Cache-Control": "no-store"},
        )

    app.add_api_route(
        METRICS_PATH, read_metrics, methods=["GET"], include_in_schema=False
    )
