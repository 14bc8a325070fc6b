"""Tests of GET /api/health against the embedded services and real Redis."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pixtools_api.app import create_app
from pixtools_api.conftest import build_settings
from pixtools_shared.db import upgrade_database

REDIS_URL = "redis://127.0.0.1:6379/15"


def closed_port() -> int:
    """Return a 127.0.0.1 port that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def test_health_ok(client: TestClient) -> None:
    response = client.get("/api/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "storage"}
    for check in body["checks"].values():
        assert check["status"] == "ok"
        assert check["error"] is None
        assert check["latency_ms"] >= 0


@pytest.mark.skipif(not redis_reachable(), reason="Redis is not running on 6379")
def test_health_includes_redis(tmp_path: Path) -> None:
    settings = build_settings(tmp_path, REDIS_URL=REDIS_URL)
    upgrade_database(settings.database_url)

    with TestClient(create_app(settings)) as client:
        response = client.get("/api/health")

    assert response.status_code == 200
    assert response.json()["checks"]["redis"]["status"] == "ok"


def test_health_reports_unreachable_broker(tmp_path: Path) -> None:
    settings = build_settings(
        tmp_path, BROKER_URL=f"amqp://guest:guest@127.0.0.1:{closed_port()}//"
    )
    upgrade_database(settings.database_url)

    with TestClient(create_app(settings)) as client:
        response = client.get("/api/health")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"]["broker"]["status"] == "error"
    assert body["checks"]["broker"]["error"]
    assert body["checks"]["database"]["status"] == "ok"


def test_health_reports_unreachable_redis(tmp_path: Path) -> None:
    settings = build_settings(
        tmp_path, REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0"
    )
    upgrade_database(settings.database_url)

    with TestClient(create_app(settings)) as client:
        response = client.get("/api/health")

    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["status"] == "error"
    assert response.json()["checks"]["storage"]["status"] == "ok"
