"""HTTP client side of the platform benchmarks: submit jobs, poll them, time them.

Times are taken with time.time() so they can be compared with the job
resource's timestamps, which the API and workers take from the same clock.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from benchkit.images import BenchImage

FINAL_JOB_STATUSES = frozenset(
    {"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "EXPIRED"}
)
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"


@dataclass
class Submission:
    """One POST /api/process attempt and its outcome."""

    sent_at: float
    latency_ms: float
    status_code: int | None
    job_id: str | None
    replayed: bool
    error: str | None
    idempotency_key: str | None = None
    retry_after: float | None = None

    @property
    def accepted(self) -> bool:
        return self.status_code == 202 and self.job_id is not None


def process_form(
    operations: list[str], params: dict[str, Any] | None
) -> dict[str, str]:
    form = {"operations": json.dumps(operations)}
    if params:
        form["operation_params"] = json.dumps(params)
    return form


async def submit_job(
    client: httpx.AsyncClient,
    image: BenchImage,
    operations: list[str],
    params: dict[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
    timeout: float | None = None,
    filename: str | None = None,
) -> Submission:
    """POST the image with `operations`; never raises for HTTP or network errors.

    `filename` (default: the image name) is stored on the job as its source file
    name, which lets a benchmark find the job rows of one request later.
    """
    headers = {IDEMPOTENCY_KEY_HEADER: idempotency_key} if idempotency_key else {}
    content_type = "image/png" if image.format == "PNG" else "image/jpeg"
    extension = "png" if image.format == "PNG" else "jpg"
    sent_at = time.time()
    start = time.perf_counter()
    try:
        response = await client.post(
            "/api/process",
            files={
                "file": (
                    filename or f"{image.name}.{extension}",
                    image.data,
                    content_type,
                )
            },
            data=process_form(operations, params),
            headers=headers,
            timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
    except httpx.HTTPError as exc:
        return Submission(
            sent_at=sent_at,
            latency_ms=(time.perf_counter() - start) * 1000,
            status_code=None,
            job_id=None,
            replayed=False,
            error=f"{type(exc).__name__}: {exc}",
            idempotency_key=idempotency_key,
        )
    latency_ms = (time.perf_counter() - start) * 1000
    job_id = None
    error = None
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if response.status_code == 202:
        job_id = response.json().get("job_id")
    else:
        error = response.text[:300]
    return Submission(
        sent_at=sent_at,
        latency_ms=latency_ms,
        status_code=response.status_code,
        job_id=job_id,
        replayed=response.headers.get("Idempotent-Replayed") == "true",
        error=error,
        idempotency_key=idempotency_key,
        retry_after=retry_after,
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds of a Retry-After header given as a number; None otherwise."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


async def fetch_job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any] | None:
    try:
        response = await client.get(f"/api/jobs/{job_id}")
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    resource: dict[str, Any] = response.json()
    return resource


async def wait_for_final(
    client: httpx.AsyncClient,
    job_id: str,
    *,
    poll_interval: float,
    timeout: float,
) -> tuple[dict[str, Any] | None, float]:
    """Poll the job until its status is final; return (resource, seen_at).

    Returns the last resource read (None if none could be read) when `timeout`
    seconds pass first.
    """
    deadline = time.monotonic() + timeout
    resource: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        fetched = await fetch_job(client, job_id)
        seen_at = time.time()
        if fetched is not None:
            resource = fetched
            if fetched["status"] in FINAL_JOB_STATUSES:
                return fetched, seen_at
        await asyncio.sleep(poll_interval)
    return resource, time.time()


def parse_time(value: str | None) -> float | None:
    """Unix seconds of an ISO 8601 timestamp from the job resource."""
    if value is None:
        return None
    return datetime.fromisoformat(value).timestamp()


def operations_busy_seconds(resource: dict[str, Any]) -> float:
    """Length of the union of the operations' [started_at, finished_at] intervals.

    Operations of one job may run at the same time on different worker
    processes, so their durations are not simply added.
    """
    intervals: list[tuple[float, float]] = []
    for operation in resource["operations"]:
        started = parse_time(operation.get("started_at"))
        finished = parse_time(operation.get("finished_at"))
        if started is not None and finished is not None and finished >= started:
            intervals.append((started, finished))
    intervals.sort()
    total = 0.0
    current_start: float | None = None
    current_end = 0.0
    for start, end in intervals:
        if current_start is None or start > current_end:
            if current_start is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_start is not None:
        total += current_end - current_start
    return total
