"""The whole platform in two profiles, started for the cross-service tests.

- ``servers``: PostgreSQL (a fresh database), RabbitMQ, Redis and a moto S3 server,
  with the API and both workers started as separate processes.
- ``embedded``: SQLite, filesystem storage and the filesystem broker in a temp
  folder, all started by the one-command launcher.

Before the full platform starts, each profile runs the API alone and submits a job
while no worker runs, so the tests can check that accepted jobs survive a restart.
"""

from __future__ import annotations

import importlib.util
import json
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from e2e_images import build_alpha_png
from e2e_processes import (
    CLEAN_EXIT_CODES,
    ServiceProcess,
    child_environment,
    start_service,
    stop_service,
    wait_for_health,
    wait_for_log_line,
)
from e2e_servers import (
    RABBITMQ_URL,
    REDIS_URL,
    S3_ACCESS_KEY,
    S3_REGION,
    S3_SECRET_KEY,
    free_port,
    fresh_postgres_database,
    moto_s3_server,
    port_open,
    purge_rabbitmq_queues,
)

from pixtools_shared.db import upgrade_database
from pixtools_shared.settings import Settings
from pixtools_shared.testing import rabbitmqctl_available, temporary_rabbitmq_vhost

STARTUP_TIMEOUT_SECONDS = 180.0
LAUNCHER_READY_LINE = "PixTools is running at"
# Small enough that the oversized-upload tests send little data, large enough for
# the 6-megapixel test photo.
E2E_MAX_UPLOAD_BYTES = 16 * 1024 * 1024


@dataclass
class Platform:
    """A running platform: its base URL, processes and pre-restart job."""

    profile: str
    base_url: str
    services: list[ServiceProcess]
    pending_job_id: str
    storage_backend: str
    has_redis: bool
    stopped: bool = False
    exit_codes: dict[str, int] = field(default_factory=dict)

    def logs(self) -> str:
        return "\n".join(service.describe() for service in self.services)

    def stop(self) -> dict[str, int]:
        if not self.stopped:
            for service in reversed(self.services):
                self.exit_codes[service.name] = stop_service(service)
            self.stopped = True
        return self.exit_codes


def ml_worker_available() -> bool:
    return importlib.util.find_spec("pixtools_worker_ml.__main__") is not None


def base_environment(data_dir: Path, port: int) -> dict[str, str]:
    return {
        "ENVIRONMENT": "test",
        "DATA_DIR": str(data_dir),
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        # The webhook receiver is a plain-HTTP server on 127.0.0.1.
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "INFO",
        "MAX_UPLOAD_BYTES": str(E2E_MAX_UPLOAD_BYTES),
    }


def submit_pending_job(base_url: str) -> str:
    """Submit a small job while no worker runs; return its id."""
    image = build_alpha_png()
    response = httpx.post(
        f"{base_url}/api/process",
        files={"file": (image.filename, image.data, "image/png")},
        data={"operations": json.dumps(["webp", "metadata"])},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def run_api_alone(
    environment: dict[str, str], base_url: str, log_dir: Path
) -> tuple[str, int]:
    """Start only the API, submit one job, stop the API; return job id and status."""
    api = start_service("api-alone", ["pixtools_api"], environment, log_dir)
    try:
        wait_for_health(base_url, [api], STARTUP_TIMEOUT_SECONDS)
        job_id = submit_pending_job(base_url)
    finally:
        status = stop_service(api)
    return job_id, status


def start_embedded(tmp: Path) -> Platform:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    data_dir = tmp / "data"
    environment = child_environment(base_environment(data_dir, port))

    upgrade_database(Settings(DATA_DIR=data_dir).database_url)
    job_id, api_status = run_api_alone(environment, base_url, tmp)
    assert api_status in CLEAN_EXIT_CODES, f"the API exited with {api_status}"

    launcher = start_service("launcher", ["pixtools_api.launcher"], environment, tmp)
    platform = Platform("embedded", base_url, [launcher], job_id, "filesystem", False)
    try:
        wait_for_log_line(launcher, LAUNCHER_READY_LINE, STARTUP_TIMEOUT_SECONDS)
        wait_for_health(base_url, [launcher], STARTUP_TIMEOUT_SECONDS)
    except BaseException:
        platform.stop()
        raise
    return platform


def require_servers() -> None:
    missing = [
        name
        for name, port in (("PostgreSQL", 5432), ("RabbitMQ", 5672), ("Redis", 6379))
        if not port_open(port)
    ]
    if missing:
        pytest.skip(f"{', '.join(missing)} not reachable on 127.0.0.1")


def start_servers(tmp: Path, stack: ExitStack) -> Platform:
    require_servers()
    database_url = stack.enter_context(fresh_postgres_database())
    s3 = stack.enter_context(moto_s3_server())
    if rabbitmqctl_available():
        # A vhost of its own keeps this run's messages away from any other test
        # process that uses RabbitMQ at the same time.
        broker_url = stack.enter_context(temporary_rabbitmq_vhost("pixtools_e2e"))
    else:
        broker_url = RABBITMQ_URL
        purge_rabbitmq_queues()
        stack.callback(purge_rabbitmq_queues)

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    overrides = base_environment(tmp / "data", port)
    overrides.update(
        {
            "DATABASE_URL": database_url,
            "BROKER_URL": broker_url,
            "REDIS_URL": REDIS_URL,
            "STORAGE_BACKEND": "s3",
            "S3_ENDPOINT_URL": s3.endpoint_url,
            "S3_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "S3_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "S3_REGION": S3_REGION,
            **s3.buckets,
        }
    )
    environment = child_environment(overrides)

    upgrade_database(database_url)
    job_id, api_status = run_api_alone(environment, base_url, tmp)
    assert api_status in CLEAN_EXIT_CODES, f"the API exited with {api_status}"

    services = [
        start_service(
            "worker-standard", ["pixtools_worker_standard", "worker"], environment, tmp
        )
    ]
    if ml_worker_available():
        services.append(
            start_service(
                "worker-ml", ["pixtools_worker_ml", "worker"], environment, tmp
            )
        )
    services.append(start_service("api", ["pixtools_api"], environment, tmp))

    platform = Platform("servers", base_url, services, job_id, "s3", True)
    stack.callback(platform.stop)
    wait_for_health(base_url, services, STARTUP_TIMEOUT_SECONDS)
    return platform
