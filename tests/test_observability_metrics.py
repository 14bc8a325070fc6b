"""Metrics and logs of real jobs: the API and a prefork standard worker as processes.

The worker runs two pool processes, so its histograms and counters are merged
from several processes by the multiprocess collector. Each pool process fails its
first storage call (TEST_STORAGE_FAILURES=1), which makes the pipeline retry.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from e2e_observability import (
    ObservedPlatform,
    Samples,
    json_lines,
    observed_platform,
    png_bytes,
    sample,
    sample_sum,
    scrape,
    submit,
    truncated_png_bytes,
    wait_for_job,
)

WORKER_POLL_SECONDS = 60.0


@dataclass
class Run:
    """What the module's scenario did, for the tests to check."""

    platform: ObservedPlatform
    completed_job: dict[str, Any]
    failed_job: dict[str, Any]
    polls: int
    upload_sizes: dict[str, int]
    started: float
    api: Samples
    worker: Samples


def body_size(response: httpx.Response) -> int:
    """Bytes of the request body that produced ``response``."""
    return int(response.request.headers["content-length"])


def _scrape_worker_when_settled(platform: ObservedPlatform) -> Samples:
    # A task's postrun (where its counters move) runs just after the job state
    # it committed, so the scrape waits for both finalize runs to be counted.
    deadline = time.monotonic() + WORKER_POLL_SECONDS
    while True:
        samples = scrape(platform.worker_metrics_url)
        finalized = sample_sum(
            samples, "pixtools_tasks_total", task="pixtools.finalize_job"
        )
        if finalized >= 2 or time.monotonic() > deadline:
            return samples
        time.sleep(0.3)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("observed")
    overrides = {"TEST_STORAGE_FAILURES": "1", "TASK_RETRY_BACKOFF_SECONDS": "0.05"}
    with observed_platform(tmp, worker_overrides=overrides) as platform:
        started = time.monotonic()
        valid = png_bytes()
        broken = truncated_png_bytes()
        key = str(uuid.uuid4())

        first = submit(
            platform.base_url, valid, ["jpg", "metadata"], idempotency_key=key
        )
        replay = submit(
            platform.base_url, valid, ["jpg", "metadata"], idempotency_key=key
        )
        failing = submit(platform.base_url, broken, ["png"], filename="broken.png")
        rejected = submit(platform.base_url, b"not an image at all", ["jpg"])
        for response, status in ((first, 202), (replay, 202), (failing, 202)):
            assert response.status_code == status, response.text
        assert rejected.status_code == 415, rejected.text
        assert replay.json()["job_id"] == first.json()["job_id"]

        completed, polls_completed = wait_for_job(
            platform.base_url, first.json()["job_id"]
        )
        failed, polls_failed = wait_for_job(platform.base_url, failing.json()["job_id"])
        worker = _scrape_worker_when_settled(platform)
        api = scrape(f"{platform.base_url}/metrics")
        yield Run(
            platform=platform,
            completed_job=completed,
            failed_job=failed,
            polls=polls_completed + polls_failed,
            upload_sizes={
                "accepted": body_size(first) + body_size(failing),
                "replayed": body_size(replay),
                "rejected": body_size(rejected),
            },
            started=started,
            api=api,
            worker=worker,
        )


def test_jobs_reach_expected_states(run: Run) -> None:
    assert run.completed_job["status"] == "COMPLETED", run.platform.logs()
    assert run.failed_job["status"] == "FAILED", run.platform.logs()
    operation = run.failed_job["operations"][0]
    assert operation["error"]["code"] == "invalid-image"


def test_job_resource_carries_timings(run: Run) -> None:
    job = run.completed_job
    assert job["created_at"] is not None
    assert job["finished_at"] is not None
    assert job["created_at"] <= job["finished_at"]
    for operation in job["operations"]:
        assert operation["queued_at"] == job["created_at"]
        assert operation["queued_at"] <= operation["started_at"]
        assert operation["started_at"] <= operation["finished_at"]
        assert operation["finished_at"] <= job["finished_at"]


def test_api_counts_requests_by_route_and_status(run: Run) -> None:
    api = run.api
    process = {"method": "POST", "route": "/api/process"}
    assert sample(api, "pixtools_http_requests_total", **process, status="202") == 3
    assert sample(api, "pixtools_http_requests_total", **process, status="415") == 1
    job_route = {"method": "GET", "route": "/api/jobs/{job_id}"}
    assert (
        sample(api, "pixtools_http_requests_total", **job_route, status="200")
        == run.polls
    )
    assert (
        sample(api, "pixtools_http_request_duration_seconds_count", **job_route)
        == run.polls
    )
    duration_sum = sample(api, "pixtools_http_request_duration_seconds_sum", **process)
    assert duration_sum is not None
    assert duration_sum > 0
    assert sample(api, "pixtools_http_requests_in_progress", method="POST") == 0


def test_api_counts_submissions(run: Run) -> None:
    api = run.api
    assert sample(api, "pixtools_jobs_accepted_total") == 2
    assert sample(api, "pixtools_idempotent_replays_total") == 1
    assert sample(api, "pixtools_jobs_rejected_total", reason="unsupported-format") == 1
    assert sample_sum(api, "pixtools_jobs_rejected_total") == 1
    for outcome, size in run.upload_sizes.items():
        count = sample(api, "pixtools_upload_size_bytes_count", outcome=outcome)
        assert count == (2 if outcome == "accepted" else 1), outcome
        assert sample(api, "pixtools_upload_size_bytes_sum", outcome=outcome) == size


def test_worker_counts_tasks_by_state(run: Run) -> None:
    worker = run.worker
    standard = {"queue": "standard", "state": "success"}
    assert (
        sample(worker, "pixtools_tasks_total", task="pixtools.convert", **standard) == 2
    )
    assert (
        sample(
            worker, "pixtools_tasks_total", task="pixtools.extract_metadata", **standard
        )
        == 1
    )
    assert (
        sample(worker, "pixtools_tasks_total", task="pixtools.finalize_job", **standard)
        == 2
    )
    assert (
        sample(
            worker,
            "pixtools_task_duration_seconds_count",
            task="pixtools.convert",
            queue="standard",
        )
        == 2
    )
    assert sample_sum(worker, "pixtools_tasks_in_progress") == 0


def test_worker_observes_operations(run: Run) -> None:
    worker = run.worker
    for operation, outcome in (
        ("jpg", "succeeded"),
        ("metadata", "succeeded"),
        ("png", "failed"),
    ):
        count = sample(
            worker,
            "pixtools_operation_duration_seconds_count",
            operation=operation,
            outcome=outcome,
        )
        assert count == 1, (operation, outcome)
        waited = sample(
            worker,
            "pixtools_operation_queue_wait_seconds_count",
            operation=operation,
            queue="standard",
        )
        assert waited == 1, operation
    assert sample_sum(worker, "pixtools_operation_duration_seconds_count") == 3


def test_worker_observes_finished_jobs(run: Run) -> None:
    worker = run.worker
    elapsed = time.monotonic() - run.started
    assert sample(worker, "pixtools_jobs_finished_total", status="COMPLETED") == 1
    assert sample(worker, "pixtools_jobs_finished_total", status="FAILED") == 1
    for status in ("COMPLETED", "FAILED"):
        assert sample(worker, "pixtools_job_duration_seconds_count", status=status) == 1
        seconds = sample(worker, "pixtools_job_duration_seconds_sum", status=status)
        assert seconds is not None
        assert 0 < seconds < elapsed + 5


def test_worker_counts_retries(run: Run) -> None:
    faults = [
        line
        for line in json_lines(run.platform.worker)
        if line.get("event") == "test_storage_fault"
    ]
    retries = sample_sum(run.worker, "pixtools_task_retries_total")
    # Each pool process fails its first storage call once, and each of those
    # failures is retried in the task.
    assert 1 <= len(faults) <= 2
    assert retries == len(faults)
    assert sample_sum(run.worker, "pixtools_task_retries_total", mode="wait") == retries
    assert sample_sum(run.worker, "pixtools_task_redeliveries_total") == 0


def test_worker_reports_its_pool(run: Run) -> None:
    worker = run.worker
    assert sample(worker, "pixtools_worker_concurrency", worker="standard") == 2
    assert sample(worker, "pixtools_worker_pool_processes") == 2
    memory = sample(worker, "pixtools_worker_pool_resident_memory_bytes")
    assert memory is not None
    assert memory > 10 * 1024 * 1024
    resident = sample(worker, "process_resident_memory_bytes")
    assert resident is not None
    assert resident > 0


def _job_lines(lines: list[dict[str, Any]], job_id: str) -> list[dict[str, Any]]:
    task_ids = {
        line["task_id"]
        for line in lines
        if line.get("job_id") == job_id and line.get("task_id")
    }
    return [
        line
        for line in lines
        if line.get("job_id") == job_id
        or line.get("task_id") in task_ids
        or job_id in line["_raw"]
    ]


def test_failed_job_logs_carry_job_and_trace_ids(run: Run) -> None:
    job_id = run.failed_job["job_id"]
    api_lines = json_lines(run.platform.api)
    accepted = [
        line
        for line in api_lines
        if line.get("event") == "job_accepted" and line.get("job_id") == job_id
    ]
    assert len(accepted) == 1
    trace_id = accepted[0]["trace_id"]
    assert len(trace_id) == 32
    request_id = accepted[0]["request_id"]
    request_lines = [line for line in api_lines if line.get("request_id") == request_id]
    assert {"job_accepted", "request_finished"} <= {
        line["event"] for line in request_lines
    }
    for line in request_lines:
        assert line.get("trace_id") == trace_id, line["_raw"]

    # Every worker line of the job's task runs: the ones bound to it, and any
    # line that names the job. Celery's "received" line of the consumer names
    # only the task id and is logged before any context is bound, so it is not
    # one of them.
    worker_lines = _job_lines(json_lines(run.platform.worker), job_id)
    events = [line["event"] for line in worker_lines]
    for expected in (
        "task_started",
        "operation_started",
        "operation_failed",
        "task_finished",
        "finalize_started",
        "job_finished",
    ):
        assert expected in events, events
    for line in worker_lines:
        assert line.get("job_id") == job_id, line["_raw"]
        assert line.get("trace_id") == trace_id, line["_raw"]

    failure = next(line for line in worker_lines if line["event"] == "operation_failed")
    assert failure["level"] == "warning"
    assert failure["error_code"] == "invalid-image"
    assert failure["operation"] == "png"
    finished = [
        line
        for line in worker_lines
        if line["event"] == "task_finished" and line["task"] == "pixtools.convert"
    ]
    assert len(finished) == 1
    assert finished[0]["outcome"] == "failed"
    assert finished[0]["duration_s"] >= 0
