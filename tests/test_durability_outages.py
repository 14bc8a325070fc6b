"""PostgreSQL restarted and Redis stopped during a run: no job is lost.

Both servers are private to this module (durability_servers), so restarting
them disturbs no other test.

- PostgreSQL restart: the server stops for a second while tasks run, and every
  open connection breaks. Workers retry the failed step with backoff in the task
  (the database is the record of every job, so nothing else can go on), and
  ``pool_pre_ping`` replaces the dead connections.
- Redis stop: Redis only backs optional API features. Rate limits fail open,
  so plain submissions are still accepted and processed. A request with an
  Idempotency-Key gets 503 ``idempotency-store-unavailable``: nothing is
  stored, and the client retries. GET /api/health reports Redis as failed until
  it is back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import psycopg
import pytest
from durability_fixtures import require_shared_servers
from durability_platform import Stack, base_overrides, durability_stack, png_bytes
from durability_servers import (
    PrivatePostgres,
    PrivateRedis,
    private_postgres,
    private_redis,
)
from e2e_servers import moto_s3_server
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pixtools_api.app import create_app
from pixtools_shared.db.models import Job
from pixtools_shared.db.session import session_scope
from pixtools_shared.settings import Settings
from pixtools_shared.testing import temporary_rabbitmq_vhost

JOBS_BEFORE_RESTART = 12
JOBS_AFTER_RESTART = 4
# The 12 jobs take about 4 s, so running tasks reach the stopped server. Eight
# retries (0.2 s doubling to 2 s, jittered) wait at least 5.5 s, past the outage.
POSTGRES_DOWN_SECONDS = 1.0
DATABASE_NAME = "pixtools_durability"


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Stack, PrivatePostgres, PrivateRedis]]:
    require_shared_servers()
    tmp = tmp_path_factory.mktemp("durability-outages")
    with ExitStack() as resources:
        postgres = resources.enter_context(private_postgres())
        with psycopg.connect(postgres.admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        database_url = (
            f"postgresql+psycopg://postgres@127.0.0.1:{postgres.port}/{DATABASE_NAME}"
        )
        redis_server = resources.enter_context(private_redis(tmp / "redis"))
        broker_url = resources.enter_context(
            temporary_rabbitmq_vhost("pixtools_dur_outages")
        )
        s3 = resources.enter_context(moto_s3_server())
        overrides = base_overrides(tmp, database_url, broker_url, s3)
        overrides.update(
            {
                "REDIS_URL": redis_server.url,
                "WORKER_CONCURRENCY": "2",
                "TEST_OPERATION_DELAY_SECONDS": "0.3",
                "RECOVERY_INTERVAL_SECONDS": "2",
                "TASK_MAX_RETRIES": "8",
            }
        )
        stack = resources.enter_context(durability_stack(tmp, overrides))
        stack.start_worker()
        stack.start_beat()
        yield stack, postgres, redis_server


def test_postgres_restart_loses_no_job(
    servers: tuple[Stack, PrivatePostgres, PrivateRedis],
) -> None:
    stack, postgres, _redis = servers
    job_ids = [stack.submit(["png", "jpg"]) for _ in range(JOBS_BEFORE_RESTART)]
    stack.wait_for_operation(job_ids[1], "png", "SUCCEEDED")

    postgres.restart(down_seconds=POSTGRES_DOWN_SECONDS)
    job_ids += [stack.submit(["png", "jpg"]) for _ in range(JOBS_AFTER_RESTART)]
    jobs = stack.wait_for_jobs(job_ids, timeout=240)

    assert [job.status for job in jobs.values()] == ["COMPLETED"] * len(job_ids)
    for job in jobs.values():
        assert [op.status for op in job.operations] == ["SUCCEEDED", "SUCCEEDED"]
    worker_log = stack.services[0].log_tail(lines=200_000)
    # The restart really hit running tasks (each one then retried).
    assert "OperationalError" in worker_log


def _post(
    client: TestClient, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    response = client.post(
        "/api/process",
        files={"file": ("photo.png", png_bytes(), "image/png")},
        data={"operations": json.dumps(["webp"])},
        headers=headers or {},
    )
    return response.status_code, response.json()


def _job_count() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(Job)) or 0)


def test_redis_stop_keeps_jobs_flowing(
    servers: tuple[Stack, PrivatePostgres, PrivateRedis],
) -> None:
    stack, _postgres, redis_server = servers
    api = create_app(Settings(ALLOW_ANONYMOUS=True))
    with TestClient(api) as client:
        assert client.get("/api/health").status_code == 200

        redis_server.stop()
        try:
            health = client.get("/api/health")
            accepted_status, accepted = _post(client)
            before = _job_count()
            keyed_status, keyed = _post(client, {"Idempotency-Key": "outage-1"})
            after = _job_count()
            job = stack.wait_for_jobs([accepted["job_id"]], timeout=120)
        finally:
            redis_server.start()
        recovered = client.get("/api/health")

    assert health.status_code == 503
    assert health.json()["checks"]["redis"]["status"] == "error"
    assert health.json()["checks"]["database"]["status"] == "ok"
    assert accepted_status == 202
    assert job[accepted["job_id"]].status == "COMPLETED"
    assert keyed_status == 503
    assert keyed["error"]["code"] == "idempotency-store-unavailable"
    assert after == before
    assert recovered.status_code == 200
