"""Helpers of the observability tests: an observed platform, scrapes and JSON logs.

``observed_platform`` starts the API and the standard worker as separate processes
on the embedded profile: SQLite, filesystem storage and broker in a temp folder.
Logs are JSON, and tracing is on without an exporter, so every line gets a trace
id. The worker's /metrics server listens on a free port.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from e2e_platform import base_environment
from e2e_processes import (
    ServiceProcess,
    child_environment,
    start_service,
    stop_service,
    wait_for_health,
)
from e2e_servers import free_port
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from pixtools_shared.db import upgrade_database
from pixtools_shared.settings import Settings

STARTUP_TIMEOUT_SECONDS = 180.0
FINAL_STATUSES = frozenset({"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED"})

# Variables of the servers profile; removed so the children use the embedded one.
PROFILE_VARIABLES = (
    "DATABASE_URL",
    "BROKER_URL",
    "REDIS_URL",
    "STORAGE_BACKEND",
    "S3_ENDPOINT_URL",
    "PROMETHEUS_MULTIPROC_DIR",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SDK_DISABLED",
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class ObservedPlatform:
    """The API and a standard worker, with their addresses and log files."""

    base_url: str
    worker_metrics_url: str
    api: ServiceProcess
    worker: ServiceProcess

    def logs(self) -> str:
        return f"{self.api.describe()}\n{self.worker.describe()}"


def _environment(overrides: Mapping[str, str]) -> dict[str, str]:
    environment = child_environment(dict(overrides))
    for name in PROFILE_VARIABLES:
        environment.pop(name, None)
    return environment


def wait_for_worker_metrics(
    url: str, worker: ServiceProcess, timeout: float = STARTUP_TIMEOUT_SECONDS
) -> None:
    """Wait until the worker serves /metrics and its pool has started."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise RuntimeError(f"the worker exited early:\n{worker.describe()}")
        try:
            text = httpx.get(url, timeout=5).text
        except httpx.HTTPError:
            text = ""
        if "pixtools_worker_concurrency{" in text:
            return
        time.sleep(0.5)
    raise RuntimeError(
        f"worker /metrics not ready after {timeout} s\n{worker.describe()}"
    )


@contextmanager
def observed_platform(
    tmp: Path,
    *,
    worker_overrides: Mapping[str, str] | None = None,
    concurrency: int = 2,
) -> Iterator[ObservedPlatform]:
    api_port = free_port()
    metrics_port = free_port()
    data_dir = tmp / "data"
    common = base_environment(data_dir, api_port)
    common.update(
        {
            "LOG_JSON": "true",
            "LOG_LEVEL": "INFO",
            "OTEL_TRACES_EXPORTER": "none",
            "METRICS_HOST": "127.0.0.1",
            # /metrics of the API takes a key or METRICS_TOKEN unless public.
            "METRICS_PUBLIC": "true",
        }
    )
    worker_environment = {
        **common,
        "WORKER_CONCURRENCY": str(concurrency),
        "WORKER_METRICS_PORT": str(metrics_port),
        **(worker_overrides or {}),
    }

    upgrade_database(Settings(DATA_DIR=data_dir).database_url)
    worker = start_service(
        "worker-standard",
        ["pixtools_worker_standard", "worker"],
        _environment(worker_environment),
        tmp,
    )
    api = start_service("api", ["pixtools_api"], _environment(common), tmp)
    platform = ObservedPlatform(
        base_url=f"http://127.0.0.1:{api_port}",
        worker_metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
        api=api,
        worker=worker,
    )
    try:
        wait_for_health(platform.base_url, [api, worker], STARTUP_TIMEOUT_SECONDS)
        wait_for_worker_metrics(platform.worker_metrics_url, worker)
        yield platform
    finally:
        stop_service(api)
        stop_service(worker)


def png_bytes(size: tuple[int, int] = (96, 64)) -> bytes:
    """A gradient PNG made with Pillow."""
    image = Image.new("RGB", size)
    image.putdata(
        [
            (x * 2 % 256, y * 3 % 256, (x + y) % 256)
            for y in range(size[1])
            for x in range(size[0])
        ]
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def truncated_png_bytes() -> bytes:
    """A PNG whose header is intact but whose pixel data is cut off.

    The API accepts it (it reads only the header); decoding in the worker fails.
    """
    data = png_bytes((256, 256))
    return data[: len(data) // 3]


def submit(
    base_url: str,
    data: bytes,
    operations: list[str],
    *,
    filename: str = "picture.png",
    idempotency_key: str | None = None,
) -> httpx.Response:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return httpx.post(
        f"{base_url}/api/process",
        files={"file": (filename, data, "image/png")},
        data={"operations": json.dumps(operations)},
        headers=headers,
        timeout=30,
    )


def wait_for_job(
    base_url: str, job_id: str, timeout: float = 120.0
) -> tuple[dict[str, Any], int]:
    """Poll the job until it is final; return it and the number of GETs made."""
    deadline = time.monotonic() + timeout
    polls = 0
    while time.monotonic() < deadline:
        response = httpx.get(f"{base_url}/api/jobs/{job_id}", timeout=10)
        polls += 1
        job: dict[str, Any] = response.json()
        if job.get("status") in FINAL_STATUSES:
            return job, polls
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} not final after {timeout} s: {job}")


def parse_samples(text: str) -> Samples:
    """Map (sample name, labels) to value for every sample of a scrape."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = frozenset(sample.labels.items())
            samples[(sample.name, labels)] = sample.value
    return samples


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    """The value of the sample with exactly these labels, None when absent."""
    return samples.get((name, frozenset(labels.items())))


def sample_sum(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(
        value
        for (sample_name, sample_labels), value in samples.items()
        if sample_name == name and wanted <= sample_labels
    )


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    return parse_samples(response.text)


def json_lines(service: ServiceProcess) -> list[dict[str, Any]]:
    """Every JSON object line of a child's log (other lines are skipped)."""
    lines: list[dict[str, Any]] = []
    for raw in service.log_path.read_text("utf-8", errors="replace").splitlines():
        raw = raw.strip()
        if not raw.startswith("{"):
            continue
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entry["_raw"] = raw
            lines.append(entry)
    return lines
