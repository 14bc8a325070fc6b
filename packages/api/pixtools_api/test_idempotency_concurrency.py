"""Twenty concurrent POSTs with one Idempotency-Key against a real API process on
real PostgreSQL, with the Redis reservation and with the database record alone.

Exactly one job row, one stored upload and one set of task messages may come
out of it. Every response carries that job's id (202) or is a 409; with a wait
(IDEMPOTENCY_WAIT_SECONDS) every repeat replays the first response.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis

from pixtools_api.auth import hash_api_key
from pixtools_api.conftest import image_bytes
from pixtools_api.idempotency_reservations import reservation_key
from pixtools_api.live_server import LiveServer, running_api_server
from pixtools_shared.testing import (
    postgres_available,
    redis_available,
    redis_test_url,
    temporary_postgres_database,
)

REQUESTS = 20
API_KEY = "concurrency-key-0123456789abcdef"
OPERATIONS = ["jpg", "png", "metadata"]


@pytest.fixture
def database_url() -> Iterator[str]:
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1")
    with temporary_postgres_database("pixtools_edge") as url:
        yield url


def psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def fetch_all(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(psycopg_url(url)) as connection:
        return list(connection.execute(query).fetchall())


def broker_messages(data_dir: Path) -> list[tuple[str, list[Any]]]:
    """Task name and arguments of every message in the filesystem broker."""
    found = []
    folder = data_dir / "broker" / "queue"
    for path in sorted(folder.iterdir()) if folder.exists() else []:
        payload = json.loads(path.read_text())
        args = json.loads(base64.b64decode(payload["body"]))[0]
        found.append((payload["headers"]["task"], args))
    return found


def fire_concurrently(
    server: LiveServer, key: str, data: bytes
) -> list[httpx.Response]:
    barrier = threading.Barrier(REQUESTS)

    def post(_: int) -> httpx.Response:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            return client.post(
                f"{server.base_url}/api/process",
                headers={"X-API-Key": API_KEY, "Idempotency-Key": key},
                files={"file": ("same.png", data, "image/png")},
                data={"operations": json.dumps(OPERATIONS)},
            )

    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        return list(pool.map(post, range(REQUESTS)))


@pytest.mark.parametrize(
    ("reservation", "wait_seconds"),
    [("redis", "0"), ("database", "0"), ("redis", "20"), ("database", "20")],
)
def test_one_job_from_concurrent_duplicates(
    tmp_path: Path, database_url: str, reservation: str, wait_seconds: str
) -> None:
    environment = {
        "DATABASE_URL": database_url,
        "API_KEYS": f"client:{hash_api_key(API_KEY)}",
        "RATE_LIMIT_PER_MINUTE": "0",
        # 0: repeats in flight get 409 at once; 20: they wait and replay.
        "IDEMPOTENCY_WAIT_SECONDS": wait_seconds,
    }
    if reservation == "redis":
        if not redis_available():
            pytest.skip("Redis is not reachable")
        environment["REDIS_URL"] = redis_test_url()
    key = f"concurrent-{uuid.uuid4()}"
    # A larger image keeps the first request busy while the others arrive.
    data = image_bytes("PNG", (700, 500))

    with running_api_server(tmp_path, environment) as server:
        responses = fire_concurrently(server, key, data)
        repeat = httpx.post(
            f"{server.base_url}/api/process",
            headers={"X-API-Key": API_KEY, "Idempotency-Key": key},
            files={"file": ("same.png", data, "image/png")},
            data={"operations": json.dumps(OPERATIONS)},
            timeout=60,
        )

    jobs = fetch_all(database_url, "SELECT id, owner FROM jobs")
    assert len(jobs) == 1, jobs
    [(job_id, owner)] = jobs
    assert owner == "client"

    statuses = sorted(response.status_code for response in responses)
    assert set(statuses) <= {202, 409}, statuses
    accepted = [response for response in responses if response.status_code == 202]
    created = [r for r in accepted if "idempotent-replayed" not in r.headers]
    assert len(created) == 1
    assert {response.json()["job_id"] for response in accepted} == {job_id}
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"]["code"] == "idempotency-key-in-flight"
            assert response.headers["retry-after"] == "2"
    if wait_seconds != "0":
        assert statuses == [202] * REQUESTS
    assert repeat.status_code == 202
    assert repeat.json()["job_id"] == job_id
    assert repeat.headers["idempotent-replayed"] == "true"

    data_dir = tmp_path / "api-data"
    uploads = sorted(
        p.parent.name for p in (data_dir / "storage" / "uploads").rglob("source")
    )
    assert uploads == [job_id]

    outbox = fetch_all(
        database_url, "SELECT job_id, task_name, args FROM outbox_messages"
    )
    assert sorted(row[2][1] for row in outbox) == sorted(OPERATIONS)
    assert {row[0] for row in outbox} == {job_id}
    messages = broker_messages(data_dir)
    assert sorted(args[1] for _, args in messages) == sorted(OPERATIONS)
    assert {args[0] for _, args in messages} == {job_id}

    records = fetch_all(
        database_url,
        "SELECT scope, key, job_id, response_status FROM idempotency_records",
    )
    assert records == [("key:client", key, job_id, 202)]

    if reservation == "redis":
        client = redis.Redis.from_url(redis_test_url())
        try:
            assert client.exists(reservation_key("key:client", key)) == 0
        finally:
            client.close()
