"""kill -9 of a worker in the middle of an operation: the job still completes.

RabbitMQ keeps the unacknowledged message (acks_late) and delivers it again
when the killed worker's connection drops; the next run counts the lost one as
an interruption. TEST_OPERATION_DELAY_SECONDS keeps each operation running
long enough to be killed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from durability_fixtures import servers_stack
from durability_platform import Stack, expected_keys, stored_keys

OPERATION_DELAY = {"TEST_OPERATION_DELAY_SECONDS": "4"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("durability-crash")
    with servers_stack(tmp, "pixtools_dur_crash") as started:
        yield started


def test_kill_mid_conversion_completes(stack: Stack) -> None:
    worker = stack.start_worker("worker-killed", OPERATION_DELAY)
    job_id = stack.submit(["png", "webp"])
    stack.wait_for_operation(job_id, "png", "RUNNING")

    stack.kill(worker)
    stack.start_worker("worker-replacement")
    job = stack.wait_for_jobs([job_id])[job_id]

    assert job.status == "COMPLETED", job.error_message
    png = next(op for op in job.operations if op.name == "png")
    assert (png.attempts, png.interruptions) == (2, 1)
    assert [op.status for op in job.operations] == ["SUCCEEDED", "SUCCEEDED"]
    assert stored_keys(job_id) == expected_keys(job)
    assert stored_keys(job_id)["outputs"] == [
        f"{job_id}/png.png",
        f"{job_id}/webp.webp",
    ]


def test_kill_mid_denoise_completes(stack: Stack) -> None:
    if not any(
        s.name == "worker-replacement" and s.process.poll() is None
        for s in stack.services
    ):
        stack.start_worker("worker-replacement")
    ml_worker = stack.start_ml_worker("worker-ml-killed", OPERATION_DELAY)
    job_id = stack.submit(["denoise", "png"], params={"denoise": {"format": "webp"}})
    stack.wait_for_operation(job_id, "denoise", "RUNNING")

    stack.kill(ml_worker)
    stack.start_ml_worker("worker-ml-replacement")
    job = stack.wait_for_jobs([job_id], timeout=180)[job_id]

    assert job.status == "COMPLETED", job.error_message
    denoise = next(op for op in job.operations if op.name == "denoise")
    assert (denoise.attempts, denoise.interruptions) == (2, 1)
    assert denoise.output_key == f"{job_id}/denoise.webp"
    assert stored_keys(job_id) == expected_keys(job)
    assert len(stored_keys(job_id)["outputs"]) == 2
