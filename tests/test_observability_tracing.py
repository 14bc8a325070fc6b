"""One trace per job: the API request, the publishes, each task and their calls.

The API runs in-process (TestClient) and the standard worker's Celery app in a
worker thread, both with one TracerProvider that records into memory. The
messages go through the filesystem broker, so the trace context crosses a real
broker in the Celery message headers. Storage is moto's S3 server (botocore
spans), the database SQLite (SQLAlchemy spans) and the webhook a local HTTP
server (the webhook's client span).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from celery.contrib.testing.worker import start_worker
from e2e_observability import png_bytes
from e2e_servers import WebhookReceiver, webhook_receiver
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind

from pixtools_api.app import create_app
from pixtools_shared.celery_app import (
    broker_transport_options,
    broker_url,
    ensure_broker_folders,
)
from pixtools_shared.db import upgrade_database
from pixtools_shared.db.session import dispose_engines
from pixtools_shared.observability import tracing
from pixtools_shared.settings import Settings, get_settings, reset_settings_cache
from pixtools_shared.storage import reset_storage_cache
from pixtools_shared.testing import moto_s3_endpoint

WAIT_SECONDS = 60.0
BUCKETS = {
    "S3_BUCKET_UPLOADS": "trace-uploads",
    "S3_BUCKET_OUTPUTS": "trace-outputs",
    "S3_BUCKET_BUNDLES": "trace-bundles",
}


@pytest.fixture
def traced_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    with moto_s3_endpoint() as endpoint:
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        for bucket in BUCKETS.values():
            client.create_bucket(Bucket=bucket)
        environment = {
            "ENVIRONMENT": "test",
            "DATA_DIR": str(tmp_path / "data"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'trace.db'}",
            "BROKER_URL": "filesystem://",
            "STORAGE_BACKEND": "s3",
            "S3_ENDPOINT_URL": endpoint,
            "S3_ACCESS_KEY_ID": "testing",
            "S3_SECRET_ACCESS_KEY": "testing",
            "PUBLIC_BASE_URL": "http://testserver",
            "WEBHOOK_ALLOW_HTTP": "true",
            "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
            **BUCKETS,
        }
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("REDIS_URL", raising=False)
        reset_settings_cache()
        reset_storage_cache()
        dispose_engines()
        settings = get_settings()
        upgrade_database(settings.database_url)
        ensure_broker_folders(settings)
        yield settings
        dispose_engines()
        reset_storage_cache()
        reset_settings_cache()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure_tracing("pixtools-test", exporter=exporter, set_global=False)
    yield exporter
    tracing.reset_tracing()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as started:
        yield started


def _run_job(settings: Settings, receiver: WebhookReceiver) -> str:
    from pixtools_worker_standard.app import app as worker_app

    worker_app.conf.broker_url = broker_url(settings)
    worker_app.conf.broker_transport_options = broker_transport_options(settings)
    worker_app.close()
    worker_app.amqp._producer_pool = None
    try:
        with (
            TestClient(create_app(settings)) as client,
            start_worker(
                worker_app,
                pool="threads",
                perform_ping_check=False,
                queues=["standard", "webhooks"],
                shutdown_timeout=30,
                loglevel="WARNING",
            ),
        ):
            response = client.post(
                "/api/process",
                files={"file": ("trace.png", png_bytes(), "image/png")},
                data={"operations": json.dumps(["jpg"]), "webhook_url": receiver.url},
            )
            assert response.status_code == 202, response.text
            job_id: str = response.json()["job_id"]
            delivered = receiver.wait_for(job_id, timeout=WAIT_SECONDS)
            assert delivered is not None, f"no webhook for job {job_id}"
            # The webhook task ends (and its span with it) after the POST.
            time.sleep(0.5)
    finally:
        worker_app.close()
        worker_app.amqp._producer_pool = None
    return job_id


def _by_name(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = _by_name(spans, name)
    assert len(found) == 1, (name, [span.name for span in spans])
    return found[0]


def _ids(span: ReadableSpan) -> tuple[int, int]:
    assert span.context is not None
    return span.context.trace_id, span.context.span_id


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def _attribute(span: ReadableSpan, *names: str) -> Any:
    attributes = span.attributes or {}
    for name in names:
        if name in attributes:
            return attributes[name]
    return None


def test_job_spans_share_request_trace(
    traced_settings: Settings,
    spans: InMemorySpanExporter,
    receiver: WebhookReceiver,
) -> None:
    job_id = _run_job(traced_settings, receiver)
    finished = list(spans.get_finished_spans())

    request = _one(finished, "POST /api/process")
    trace_id, _ = _ids(request)
    assert request.kind == SpanKind.SERVER
    assert request.parent is None
    assert _attribute(request, "pixtools.job_id") == job_id
    in_trace = [span for span in finished if _ids(span)[0] == trace_id]
    by_id = {_ids(span)[1]: span for span in in_trace}

    def ancestors(span: ReadableSpan) -> list[str]:
        names = []
        parent = _parent_id(span)
        while parent is not None and parent in by_id:
            names.append(by_id[parent].name)
            parent = _parent_id(by_id[parent])
        return names

    # Publish -> run, for each task of the job.
    chain = [
        ("apply_async/pixtools.convert", "run/pixtools.convert"),
        ("apply_async/pixtools.finalize_job", "run/pixtools.finalize_job"),
        ("apply_async/pixtools.deliver_webhook", "run/pixtools.deliver_webhook"),
    ]
    for publish_name, run_name in chain:
        publish = _one(in_trace, publish_name)
        run = _one(in_trace, run_name)
        assert publish.kind == SpanKind.PRODUCER
        assert run.kind == SpanKind.CONSUMER
        assert _parent_id(run) == _ids(publish)[1], run_name
        assert "POST /api/process" in ancestors(run), run_name

    # The API publishes the operation inside the request.
    assert "POST /api/process" in ancestors(
        _one(in_trace, "apply_async/pixtools.convert")
    )
    # Tasks publish the next step inside their own run.
    assert "run/pixtools.convert" in ancestors(
        _one(in_trace, "apply_async/pixtools.finalize_job")
    )
    assert "run/pixtools.finalize_job" in ancestors(
        _one(in_trace, "apply_async/pixtools.deliver_webhook")
    )

    # No task run of this job went into another trace.
    runs = [span for span in finished if span.name.startswith("run/")]
    assert {_ids(span)[0] for span in runs} == {trace_id}


def test_job_trace_has_storage_database_and_webhook_spans(
    traced_settings: Settings,
    spans: InMemorySpanExporter,
    receiver: WebhookReceiver,
) -> None:
    _run_job(traced_settings, receiver)
    finished = list(spans.get_finished_spans())
    trace_id, _ = _ids(_one(finished, "POST /api/process"))
    in_trace = [span for span in finished if _ids(span)[0] == trace_id]
    by_id = {_ids(span)[1]: span for span in in_trace}

    def inside(span: ReadableSpan, name: str) -> bool:
        parent = _parent_id(span)
        while parent is not None and parent in by_id:
            if by_id[parent].name == name:
                return True
            parent = _parent_id(by_id[parent])
        return False

    s3_calls = {
        (span.name, _parent_run(span, by_id))
        for span in in_trace
        if _attribute(span, "rpc.service") == "S3"
    }
    assert ("S3.PutObject", "POST /api/process") in s3_calls
    assert ("S3.GetObject", "run/pixtools.convert") in s3_calls
    assert ("S3.PutObject", "run/pixtools.convert") in s3_calls
    assert ("S3.PutObject", "run/pixtools.finalize_job") in s3_calls

    database = [
        span
        for span in in_trace
        if _attribute(span, "db.system", "db.system.name") == "sqlite"
    ]
    for owner in (
        "POST /api/process",
        "run/pixtools.convert",
        "run/pixtools.finalize_job",
    ):
        assert any(inside(span, owner) for span in database), owner

    webhook_posts = [
        span
        for span in in_trace
        if span.name == "POST webhook" and inside(span, "run/pixtools.deliver_webhook")
    ]
    assert len(webhook_posts) == 1
    post = webhook_posts[0]
    assert post.kind == SpanKind.CLIENT
    assert _attribute(post, "server.address") == "127.0.0.1"
    assert _attribute(post, "http.response.status_code") == 204


def _parent_run(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> str | None:
    """The nearest enclosing request or task run span."""
    parent = _parent_id(span)
    while parent is not None and parent in by_id:
        name = by_id[parent].name
        if name.startswith("run/") or name == "POST /api/process":
            return name
        parent = _parent_id(by_id[parent])
    return None
