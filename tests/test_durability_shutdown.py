"""SIGTERM: a worker finishes its task within the grace period or hands it back.

WORKER_SHUTDOWN_GRACE_SECONDS bounds Celery's warm shutdown. A task that ends
in time is recorded as usual. A task that runs past the grace has its operation
marked QUEUED and its message returned to RabbitMQ (cold shutdown), so the next
worker runs it without counting an interruption.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator

import pytest
from durability_fixtures import servers_stack
from durability_platform import Stack, load_job

# How long a stopped worker may take on top of its grace period.
EXIT_MARGIN_SECONDS = 15.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("durability-shutdown")
    with servers_stack(tmp, "pixtools_dur_shutdown") as started:
        yield started


def _terminate(stack: Stack, service_name: str, timeout: float) -> tuple[int, float]:
    service = next(s for s in stack.services if s.name == service_name)
    started = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    try:
        status = service.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{service_name} still running {timeout:g} s after SIGTERM")
    return status, time.monotonic() - started


def test_sigterm_lets_running_task_finish(stack: Stack) -> None:
    extra = {"TEST_OPERATION_DELAY_SECONDS": "3", "WORKER_SHUTDOWN_GRACE_SECONDS": "30"}
    stack.start_worker("worker-finishing", extra)
    job_id = stack.submit(["png"])
    stack.wait_for_operation(job_id, "png", "RUNNING")

    status, seconds = _terminate(stack, "worker-finishing", 30 + EXIT_MARGIN_SECONDS)

    assert status == 0
    assert seconds < 30
    operation = load_job(job_id).operations[0]
    assert (operation.status, operation.attempts, operation.interruptions) == (
        "SUCCEEDED",
        1,
        0,
    )


def test_sigterm_hands_back_long_task(stack: Stack) -> None:
    grace = 2.0
    extra = {
        "TEST_OPERATION_DELAY_SECONDS": "60",
        "WORKER_SHUTDOWN_GRACE_SECONDS": str(grace),
    }
    stack.start_worker("worker-handing-back", extra)
    job_id = stack.submit(["png"])
    stack.wait_for_operation(job_id, "png", "RUNNING")

    _status, seconds = _terminate(
        stack, "worker-handing-back", grace + EXIT_MARGIN_SECONDS
    )

    assert seconds < grace + EXIT_MARGIN_SECONDS
    handed_back = load_job(job_id).operations[0]
    assert (handed_back.status, handed_back.interruptions) == ("QUEUED", 0)
    stack.start_worker("worker-next")
    job = stack.wait_for_jobs([job_id])[job_id]
    assert job.status == "COMPLETED"
    assert (job.operations[0].attempts, job.operations[0].interruptions) == (2, 0)
