"""A PixTools stack for the durability tests: real workers as child processes.

The test process plays the API's part: it stores uploads, creates jobs with
``jobs.create_job`` (job rows and outbox messages in one transaction) and
publishes them with ``outbox.relay``, exactly as POST /api/process does. The
workers, the ML worker and beat run as ``python -m ...`` children that a test
can kill, stop and start again. Every child and the test process read the same
environment (database, broker, moto S3), which the stack sets and restores.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from e2e_processes import (
    ServiceProcess,
    child_environment,
    start_service,
    stop_service,
    wait_for_log_line,
)
from e2e_servers import S3_ACCESS_KEY, S3_REGION, S3_SECRET_KEY, MotoS3
from PIL import Image

from pixtools_shared import jobs, outbox
from pixtools_shared.celery_app import create_celery_app
from pixtools_shared.db import upgrade_database
from pixtools_shared.db.models import FINAL_JOB_STATUSES, Job
from pixtools_shared.db.session import dispose_engines, session_scope
from pixtools_shared.operations import parse_operation_request
from pixtools_shared.settings import Settings, get_settings, reset_settings_cache
from pixtools_shared.storage import get_storage, reset_storage_cache, upload_key

WORKER_READY_LINE = " ready"
WORKER_START_TIMEOUT_SECONDS = 120.0
FINAL_STATUSES = {str(status) for status in FINAL_JOB_STATUSES}


def ml_worker_available() -> bool:
    return importlib.util.find_spec("pixtools_worker_ml.__main__") is not None


def png_bytes(
    size: tuple[int, int] = (48, 32), color: tuple[int, ...] = (30, 90, 200)
) -> bytes:
    """A small PNG built with Pillow, with a little texture for the denoiser."""
    image = Image.new("RGB", size, color)
    for x in range(0, size[0], 4):
        image.putpixel((x, x % size[1]), (250, 250, 250))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def base_overrides(
    tmp: Path, database_url: str, broker_url: str, s3: MotoS3
) -> dict[str, str]:
    """Environment shared by the test process and every child."""
    return {
        "ENVIRONMENT": "test",
        "DATA_DIR": str(tmp / "data"),
        "DATABASE_URL": database_url,
        "BROKER_URL": broker_url,
        "STORAGE_BACKEND": "s3",
        "S3_ENDPOINT_URL": s3.endpoint_url,
        "S3_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "S3_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        "S3_REGION": S3_REGION,
        **s3.buckets,
        "WORKER_CONCURRENCY": "1",
        "WORKER_METRICS_PORT": "0",
        "LOG_LEVEL": "INFO",
        "SCHEMA_WAIT_SECONDS": "60",
        "TASK_RETRY_BACKOFF_SECONDS": "0.2",
        "TASK_RETRY_BACKOFF_MAX_SECONDS": "2",
        "OUTBOX_RELAY_INTERVAL_SECONDS": "1",
        "WEBHOOK_ALLOW_HTTP": "true",
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "REDIS_URL": "",
    }


@dataclass
class Stack:
    """The environment of one test module and the children it started."""

    tmp: Path
    overrides: dict[str, str]
    services: list[ServiceProcess] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return get_settings()

    def start(
        self,
        name: str,
        module_args: list[str],
        extra: dict[str, str] | None = None,
        wait_line: str | None = WORKER_READY_LINE,
    ) -> ServiceProcess:
        environment = child_environment({**self.overrides, **(extra or {})})
        service = start_service(name, module_args, environment, self.tmp)
        self.services.append(service)
        if wait_line is not None:
            wait_for_log_line(service, wait_line, WORKER_START_TIMEOUT_SECONDS)
        return service

    def start_worker(
        self, name: str = "worker-standard", extra: dict[str, str] | None = None
    ) -> ServiceProcess:
        return self.start(name, ["pixtools_worker_standard", "worker"], extra)

    def start_ml_worker(
        self, name: str = "worker-ml", extra: dict[str, str] | None = None
    ) -> ServiceProcess:
        if not ml_worker_available():
            pytest.skip("the ML worker package is not importable")
        return self.start(name, ["pixtools_worker_ml", "worker"], extra)

    def start_beat(self, extra: dict[str, str] | None = None) -> ServiceProcess:
        return self.start(
            "beat",
            ["pixtools_worker_standard", "beat"],
            extra,
            wait_line="beat: Starting",
        )

    def kill(self, service: ServiceProcess) -> None:
        """SIGKILL the child and its pool processes at once (its process group)."""
        with suppress(ProcessLookupError):
            os.killpg(service.process.pid, signal.SIGKILL)
        service.process.wait(timeout=30)

    def stop(self, service: ServiceProcess, grace: float = 60.0) -> int:
        return stop_service(service, grace)

    def logs(self) -> str:
        return "\n".join(service.describe() for service in self.services)

    def submit(
        self,
        operations: list[str],
        data: bytes | None = None,
        *,
        filename: str = "photo.png",
        params: dict[str, Any] | None = None,
        webhook_url: str | None = None,
        relay: bool = True,
    ) -> str:
        """Store an upload, commit its job and outbox rows, publish them."""
        settings = self.settings
        data = data if data is not None else png_bytes()
        requests = parse_operation_request(
            json.dumps(operations), json.dumps(params) if params else None
        )
        try:
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
        except OSError:
            # A deliberately broken upload; the API would have probed the header.
            width, height = 1, 1
        with session_scope() as session:
            job = jobs.create_job(
                session,
                operations=requests,
                source=jobs.SourceInfo(filename, "PNG", width, height, len(data)),
                webhook_url=webhook_url,
                settings=settings,
            )
            job_id = job.id
            get_storage().put("uploads", upload_key(job_id), data, "image/png")
        if relay:
            app = create_celery_app(settings)
            try:
                outbox.relay(app, job_id=job_id, settings=settings)
            finally:
                app.close()
        return job_id

    def wait_for_jobs(
        self, job_ids: list[str], timeout: float = 120.0
    ) -> dict[str, Job]:
        """Wait until every job is final; fail with the children's logs if not."""
        deadline = time.monotonic() + timeout
        found: dict[str, Job] = {}
        while time.monotonic() < deadline:
            found = {job_id: load_job(job_id) for job_id in job_ids}
            if all(job.status in FINAL_STATUSES for job in found.values()):
                return found
            time.sleep(0.3)
        pending = {
            job_id: (job.status, [(op.name, op.status) for op in job.operations])
            for job_id, job in found.items()
            if job.status not in FINAL_STATUSES
        }
        pytest.fail(f"jobs not final after {timeout:g} s: {pending}\n{self.logs()}")

    def wait_for_operation(
        self, job_id: str, operation: str, status: str, timeout: float = 60.0
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = load_job(job_id)
            if any(
                op.name == operation and op.status == status for op in job.operations
            ):
                return
            time.sleep(0.1)
        pytest.fail(f"{job_id}/{operation} never {status}\n{self.logs()}")


def load_job(job_id: str) -> Job:
    """Load a job with its operations, detached from the session."""
    with session_scope() as session:
        job = jobs.require_job(session, job_id)
        for operation in job.operations:
            session.expunge(operation)
        session.expunge(job)
        return job


def stored_keys(job_id: str) -> dict[str, list[str]]:
    """Every stored object of a job, by area."""
    storage = get_storage()
    bundles = [key for key in storage.list_keys("bundles") if key.startswith(job_id)]
    return {
        "uploads": storage.list_keys("uploads", f"{job_id}/"),
        "outputs": storage.list_keys("outputs", f"{job_id}/"),
        "bundles": bundles,
    }


def expected_keys(job: Job) -> dict[str, list[str]]:
    """The objects a finished job should have: upload, one output per success."""
    outputs = sorted(
        op.output_key
        for op in job.operations
        if op.status == "SUCCEEDED" and op.output_key
    )
    return {
        "uploads": [upload_key(job.id)],
        "outputs": outputs,
        "bundles": [job.archive_key] if job.archive_key else [],
    }


def _reset_caches() -> None:
    reset_settings_cache()
    reset_storage_cache()
    dispose_engines()


@contextmanager
def durability_stack(tmp: Path, overrides: dict[str, str]) -> Iterator[Stack]:
    """Apply ``overrides`` to this process, migrate, yield; stop every child."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in overrides.items():
            if value == "":
                patch.delenv(name, raising=False)
            else:
                patch.setenv(name, value)
        _reset_caches()
        upgrade_database(overrides["DATABASE_URL"])
        stack = Stack(tmp, {k: v for k, v in overrides.items() if v != ""})
        try:
            yield stack
        finally:
            for service in reversed(stack.services):
                if service.process.poll() is None:
                    stack.kill(service)
            _reset_caches()
