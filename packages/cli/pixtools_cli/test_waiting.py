"""Tests of waiting for jobs, with a fake clock and a scripted API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from pixtools_cli.client import PixToolsClient, RetryPolicy
from pixtools_cli.exit_codes import ExitCode
from pixtools_cli.progress import JobProgress, SilentProgress
from pixtools_cli.waiting import UNREACHABLE_NOTE, summarize_job, wait_for_jobs


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def job(job_id: str, status: str, *operations: dict[str, Any]) -> dict[str, Any]:
    return {"job_id": job_id, "status": status, "operations": list(operations)}


def scripted_client(
    script: dict[str, list[Callable[[httpx.Request], httpx.Response]]],
) -> PixToolsClient:
    """A client whose GET /api/jobs/{id} responses come from `script` in turn."""

    def handler(request: httpx.Request) -> httpx.Response:
        job_id = request.url.path.rsplit("/", 1)[-1]
        steps = script[job_id]
        step = steps.pop(0) if len(steps) > 1 else steps[0]
        return step(request)

    return PixToolsClient(
        "http://127.0.0.1:8000",
        retry=RetryPolicy(attempts=1),
        transport=httpx.MockTransport(handler),
        sleep=lambda _seconds: None,
    )


def respond(body: dict[str, Any], status: int = 200) -> Callable[..., httpx.Response]:
    return lambda _request: httpx.Response(status, json=body)


def refuse(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def test_wait_until_final_statuses() -> None:
    clock = FakeClock()
    client = scripted_client(
        {
            "a": [
                respond(job("a", "QUEUED")),
                respond(job("a", "RUNNING")),
                respond(job("a", "COMPLETED")),
            ],
            "b": [respond(job("b", "RUNNING")), respond(job("b", "FAILED"))],
        }
    )
    items = [JobProgress("a.jpg", "a"), JobProgress("b.jpg", "b")]

    results = wait_for_jobs(
        client,
        items,
        timeout=60,
        poll_interval=1,
        reporter=SilentProgress(),
        clock=clock,
        sleep=clock.sleep,
    )

    assert results == {"a": ExitCode.OK, "b": ExitCode.JOB_FAILED}
    assert clock.now == 2.0
    assert items[0].job is not None
    assert items[0].job["status"] == "COMPLETED"


def test_wait_times_out() -> None:
    clock = FakeClock()
    client = scripted_client({"a": [respond(job("a", "RUNNING"))]})
    items = [JobProgress("a.jpg", "a")]

    results = wait_for_jobs(
        client,
        items,
        timeout=5,
        poll_interval=2,
        reporter=SilentProgress(),
        clock=clock,
        sleep=clock.sleep,
    )

    assert results == {"a": ExitCode.TIMED_OUT}
    assert clock.now == 5.0
    assert summarize_job(items[0], ExitCode.TIMED_OUT, 5) == [
        "a.jpg: still RUNNING after 5 s; run 'pixtools wait a' to keep waiting"
    ]


def test_wait_survives_outage_then_completes() -> None:
    clock = FakeClock()
    client = scripted_client(
        {"a": [refuse, refuse, respond(job("a", "COMPLETED"))]},
    )
    items = [JobProgress("a.jpg", "a")]
    notes: list[str | None] = []

    class Recorder(SilentProgress):
        def update(self, items: Any) -> None:
            notes.append(items[0].note)

    results = wait_for_jobs(
        client,
        items,
        timeout=60,
        poll_interval=1,
        reporter=Recorder(),
        clock=clock,
        sleep=clock.sleep,
    )

    assert results == {"a": ExitCode.OK}
    assert notes == [UNREACHABLE_NOTE, UNREACHABLE_NOTE, None]


def test_wait_unreachable_at_deadline() -> None:
    clock = FakeClock()
    client = scripted_client({"a": [refuse]})

    results = wait_for_jobs(
        client,
        [JobProgress("a.jpg", "a")],
        timeout=3,
        poll_interval=1,
        reporter=SilentProgress(),
        clock=clock,
        sleep=clock.sleep,
    )

    assert results == {"a": ExitCode.UNAVAILABLE}


def test_wait_unknown_job_rejected() -> None:
    clock = FakeClock()
    body = {"error": {"code": "job-not-found", "message": "No job.", "details": []}}
    client = scripted_client({"a": [respond(body, status=404)]})
    items = [JobProgress("a", "a")]

    results = wait_for_jobs(
        client,
        items,
        timeout=3,
        poll_interval=1,
        reporter=SilentProgress(),
        clock=clock,
        sleep=clock.sleep,
    )

    assert results == {"a": ExitCode.REJECTED}
    assert items[0].note == "job-not-found: No job."
    assert clock.now == 0.0


def test_summary_lists_failed_operations() -> None:
    item = JobProgress(
        "a.jpg",
        "a",
        job(
            "a",
            "COMPLETED_WITH_ERRORS",
            {"name": "jpg", "status": "SUCCEEDED", "result_url": "/x"},
            {
                "name": "avif",
                "status": "FAILED",
                "result_url": None,
                "error": {"code": "invalid-image", "message": "Cannot decode."},
            },
        ),
    )

    lines = summarize_job(item, ExitCode.JOB_FAILED, 60)

    assert lines == [
        "a.jpg: COMPLETED_WITH_ERRORS, 1 results, job a",
        "  avif failed (invalid-image): Cannot decode.",
    ]
