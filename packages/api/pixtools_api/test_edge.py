"""Rate limits and idempotency reservations in real Redis, admission control, CORS."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pixtools_api.app import create_app
from pixtools_api.auth import hash_api_key
from pixtools_api.conftest import build_settings, image_bytes
from pixtools_api.idempotency_reservations import reservation_key
from pixtools_api.services import ApiServices
from pixtools_shared.db import upgrade_database
from pixtools_shared.db.models import Job
from pixtools_shared.testing import free_port, redis_available, redis_test_url


@pytest.fixture
def redis_url() -> str:
    url = redis_test_url()
    if not redis_available(url):
        pytest.skip(f"Redis is not reachable at {url}")
    return url


def client_for(tmp_path: Path, **overrides: Any) -> Iterator[TestClient]:
    settings = build_settings(tmp_path, **overrides)
    upgrade_database(settings.database_url)
    services = ApiServices.from_settings(settings)
    with TestClient(create_app(settings, services)) as client:
        yield client


def submit(
    client: TestClient,
    headers: dict[str, str] | None = None,
    operations: str = '["jpg"]',
) -> Any:
    return client.post(
        "/api/process",
        files={"file": ("a.png", image_bytes(), "image/png")},
        data={"operations": operations},
        headers=headers or {},
    )


def count_jobs(client: TestClient) -> int:
    services: ApiServices = client.app.state.services  # type: ignore[attr-defined]
    with services.session_factory() as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def test_rate_limit_per_key(tmp_path: Path, redis_url: str) -> None:
    # Fresh ids, so earlier runs' counters in the same minute do not count.
    first_id, second_id = f"rl-{secrets.token_hex(4)}", f"rl-{secrets.token_hex(4)}"
    keys = {first_id: secrets.token_hex(16), second_id: secrets.token_hex(16)}
    entries = [f"{key_id}:{hash_api_key(key)}" for key_id, key in keys.items()]

    for client in client_for(
        tmp_path, REDIS_URL=redis_url, API_KEYS=entries, RATE_LIMIT_PER_MINUTE=3
    ):
        headers = {"X-API-Key": keys[first_id]}
        allowed = [
            client.get("/api/limits", headers=headers).status_code for _ in range(3)
        ]
        limited = client.get("/api/limits", headers=headers)
        other = client.get("/api/limits", headers={"X-API-Key": keys[second_id]})
        probe = client.get("/api/livez")

    assert allowed == [200, 200, 200]
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate-limited"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert other.status_code == 200
    assert probe.status_code == 200


def test_rate_limit_skipped_when_redis_down(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    for client in client_for(tmp_path, REDIS_URL=dead, RATE_LIMIT_PER_MINUTE=1):
        statuses = [client.get("/api/limits").status_code for _ in range(3)]

    assert statuses == [200, 200, 200]


def test_idempotent_request_refused_when_redis_down(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    for client in client_for(tmp_path, REDIS_URL=dead):
        keyed = submit(client, {"Idempotency-Key": "k-1"})
        plain = submit(client)
        jobs = count_jobs(client)

    assert keyed.status_code == 503
    assert keyed.json()["error"]["code"] == "idempotency-store-unavailable"
    assert keyed.headers["retry-after"] == "5"
    assert plain.status_code == 202
    assert jobs == 1


def test_reservation_in_flight_answers_409(tmp_path: Path, redis_url: str) -> None:
    key = f"held-{uuid.uuid4()}"
    client_redis = redis.Redis.from_url(redis_url)
    # Another process holds the reservation of the anonymous scope's key.
    client_redis.set(reservation_key("", key), "othertoken|", px=60_000)
    try:
        for client in client_for(
            tmp_path, REDIS_URL=redis_url, IDEMPOTENCY_WAIT_SECONDS=0.5
        ):
            started = time.monotonic()
            response = submit(client, {"Idempotency-Key": key})
            waited = time.monotonic() - started
            jobs = count_jobs(client)
    finally:
        client_redis.delete(reservation_key("", key))
        client_redis.close()

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency-key-in-flight"
    assert response.headers["retry-after"] == "2"
    assert 0.4 <= waited < 3.0
    assert jobs == 0


def test_repeat_waits_for_reservation(tmp_path: Path, redis_url: str) -> None:
    key = f"wait-{uuid.uuid4()}"
    client_redis = redis.Redis.from_url(redis_url)
    client_redis.set(reservation_key("", key), "othertoken|", px=60_000)
    # The holder finishes after 0.5 s, well within the 5 s wait.
    release = threading.Timer(0.5, client_redis.delete, [reservation_key("", key)])
    release.start()
    try:
        for client in client_for(
            tmp_path, REDIS_URL=redis_url, IDEMPOTENCY_WAIT_SECONDS=5
        ):
            response = submit(client, {"Idempotency-Key": key})
            jobs = count_jobs(client)
    finally:
        release.join()
        client_redis.delete(reservation_key("", key))
        client_redis.close()

    assert response.status_code == 202
    assert jobs == 1


def test_reservation_released_and_replayed(tmp_path: Path, redis_url: str) -> None:
    key = f"replay-{uuid.uuid4()}"
    client_redis = redis.Redis.from_url(redis_url)
    try:
        for client in client_for(tmp_path, REDIS_URL=redis_url):
            first = submit(client, {"Idempotency-Key": key})
            held_after = client_redis.exists(reservation_key("", key))
            repeat = submit(client, {"Idempotency-Key": key})
            other = submit(client, {"Idempotency-Key": key}, operations='["png"]')
            status = client.get(repeat.headers["location"])
    finally:
        client_redis.delete(reservation_key("", key))
        client_redis.close()

    assert first.status_code == 202
    assert held_after == 0
    assert repeat.status_code == 202
    assert repeat.json()["job_id"] == first.json()["job_id"]
    assert repeat.headers["idempotent-replayed"] == "true"
    assert repeat.headers["location"] == first.json()["status_url"]
    assert status.status_code == 200
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency-key-reused"


def test_backlog_limit_refuses_work(tmp_path: Path) -> None:
    for client in client_for(tmp_path, MAX_BACKLOG_OPERATIONS=2):
        first = submit(client, operations='["jpg", "png"]')
        refused = submit(client)
        jobs = count_jobs(client)

    assert first.status_code == 202
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "backlog-full"
    assert refused.headers["retry-after"] == "30"
    assert jobs == 1


def test_cors_closed_by_default(tmp_path: Path) -> None:
    for client in client_for(tmp_path):
        simple = client.get("/api/limits", headers={"Origin": "https://evil.example"})
        preflight = client.options(
            "/api/process",
            headers={
                "Origin": "https://evil.example",
                "Access-Control-Request-Method": "POST",
            },
        )

    assert "access-control-allow-origin" not in simple.headers
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_allow_list(tmp_path: Path) -> None:
    allowed = "https://app.example.com"
    for client in client_for(tmp_path, CORS_ALLOWED_ORIGINS=[allowed]):
        preflight = client.options(
            "/api/process",
            headers={
                "Origin": allowed,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "idempotency-key, x-api-key",
            },
        )
        simple = client.get("/api/limits", headers={"Origin": allowed})
        stranger = client.get("/api/limits", headers={"Origin": "https://evil.example"})

    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == allowed
    assert (
        "idempotency-key" in preflight.headers["access-control-allow-headers"].lower()
    )
    assert simple.headers["access-control-allow-origin"] == allowed
    assert "access-control-allow-origin" not in stranger.headers


def test_cors_wildcard_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'\\*' is not allowed"):
        build_settings(tmp_path, CORS_ALLOWED_ORIGINS=["*"])
