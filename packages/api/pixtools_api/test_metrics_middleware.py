"""Tests of the request metrics, request ids, /metrics and the probes."""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from pathlib import Path

import pytest
import structlog
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from pixtools_api.app import create_app
from pixtools_api.conftest import build_settings, image_bytes
from pixtools_api.metrics_middleware import (
    REQUEST_ID_HEADER,
    error_code_of,
    job_id_of,
)
from pixtools_api.routes.health import READY_CHECK_TIMEOUT_SECONDS
from pixtools_shared.db import upgrade_database
from pixtools_shared.logging_setup import configure_logging
from pixtools_shared.settings import Settings


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _post(client: TestClient, data: bytes, key: str | None = None) -> int:
    headers = {"Idempotency-Key": key} if key else {}
    response = client.post(
        "/api/process",
        files={"file": ("a.png", data, "image/png")},
        data={"operations": json.dumps(["jpg"])},
        headers=headers,
    )
    return response.status_code


def test_request_id_generated_and_echoed(client: TestClient) -> None:
    generated = client.get("/api/limits").headers[REQUEST_ID_HEADER]
    assert len(generated) == 32
    int(generated, 16)

    echoed = client.get("/api/limits", headers={REQUEST_ID_HEADER: "req-42.a:b"})
    assert echoed.headers[REQUEST_ID_HEADER] == "req-42.a:b"

    replaced = client.get("/api/limits", headers={REQUEST_ID_HEADER: "bad id\x7f"})
    assert replaced.headers[REQUEST_ID_HEADER] != "bad id\x7f"
    assert len(replaced.headers[REQUEST_ID_HEADER]) == 32


def test_requests_counted_by_route_template(client: TestClient) -> None:
    job_route = {"method": "GET", "route": "/api/jobs/{job_id}", "status": "404"}
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    before_job = _value("pixtools_http_requests_total", **job_route)
    before_unmatched = _value("pixtools_http_requests_total", **unmatched)

    for _ in range(3):
        assert client.get(f"/api/jobs/{uuid.uuid4()}").status_code == 404
    assert client.get("/no/such/path").status_code == 404

    assert _value("pixtools_http_requests_total", **job_route) == before_job + 3
    assert _value("pixtools_http_requests_total", **unmatched) == before_unmatched + 1


def test_submissions_counted(client: TestClient) -> None:
    accepted = _value("pixtools_jobs_accepted_total")
    replays = _value("pixtools_idempotent_replays_total")
    unsupported = _value("pixtools_jobs_rejected_total", reason="unsupported-format")
    invalid = _value("pixtools_jobs_rejected_total", reason="invalid-operations")
    uploads = _value("pixtools_upload_size_bytes_count", outcome="accepted")

    key = str(uuid.uuid4())
    assert _post(client, image_bytes(), key) == 202
    assert _post(client, image_bytes(), key) == 202
    assert _post(client, b"%PDF-1.7 not an image") == 415
    response = client.post(
        "/api/process",
        files={"file": ("a.png", image_bytes(), "image/png")},
        data={"operations": json.dumps(["gif"])},
    )
    assert response.status_code == 422

    assert _value("pixtools_jobs_accepted_total") == accepted + 1
    assert _value("pixtools_idempotent_replays_total") == replays + 1
    assert (
        _value("pixtools_jobs_rejected_total", reason="unsupported-format")
        == unsupported + 1
    )
    assert (
        _value("pixtools_jobs_rejected_total", reason="invalid-operations")
        == invalid + 1
    )
    assert _value("pixtools_upload_size_bytes_count", outcome="accepted") == uploads + 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"error": {"code": "image-too-large", "message": "x"}}', "image-too-large"),
        (b'{"error": {"code": "Not A Code"}}', "other"),
        (b'{"error": "flat"}', "unknown"),
        (b"<html>", "unknown"),
    ],
)
def test_error_code_of(body: bytes, expected: str) -> None:
    assert error_code_of(body) == expected


def test_job_id_of() -> None:
    assert job_id_of(b'{"job_id": "abc", "status": "QUEUED"}') == "abc"
    assert job_id_of(b'{"job_id": 5}') is None
    assert job_id_of(b"not json") is None


def test_probes_when_healthy(client: TestClient) -> None:
    live = client.get("/api/livez")
    ready = client.get("/api/readyz")

    assert live.status_code == 200
    assert live.json() == {"status": "ok"}
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "storage"}
    assert live.headers["cache-control"] == "no-store"


def test_liveness_ignores_dependencies(tmp_path: Path) -> None:
    # A broker that accepts the connection and never speaks: the AMQP
    # handshake hangs until the readiness timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        settings = build_settings(
            tmp_path, BROKER_URL=f"amqp://guest:guest@127.0.0.1:{port}//"
        )
        upgrade_database(settings.database_url)

        with TestClient(create_app(settings)) as client:
            live = client.get("/api/livez")
            started = time.monotonic()
            ready = client.get("/api/readyz")
            elapsed = time.monotonic() - started

    assert live.status_code == 200
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["broker"] == {
        "status": "error",
        "latency_ms": checks["broker"]["latency_ms"],
        "error": f"timed out after {READY_CHECK_TIMEOUT_SECONDS:g} s",
    }
    assert checks["database"]["status"] == "ok"
    assert elapsed < READY_CHECK_TIMEOUT_SECONDS + 2


def test_probes_and_scrapes_not_logged_at_info(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(LOG_JSON=True, LOG_LEVEL="INFO"))
    try:
        client.get("/api/livez")
        client.get("/api/limits", headers={REQUEST_ID_HEADER: "req-7"})
        lines = [
            json.loads(line)
            for line in capsys.readouterr().err.splitlines()
            if line.startswith("{")
        ]
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers = []

    finished = [line for line in lines if line["event"] == "request_finished"]
    assert [line["route"] for line in finished] == ["/api/limits"]
    assert finished[0]["request_id"] == "req-7"
    assert finished[0]["status"] == 200
    assert finished[0]["method"] == "GET"
