"""Storage errors on the first attempts: retried with backoff, then success.

TEST_STORAGE_FAILURES makes the first N storage reads and writes of each worker
process raise StorageError. Short delays are waited in the task; with
RETRY_INLINE_MAX_SECONDS=0 every retry goes through the outbox instead and
beat's relay publishes it when it is due. An invalid image fails at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from durability_fixtures import servers_stack
from durability_platform import Stack, expected_keys, stored_keys
from sqlalchemy import select

from pixtools_shared.db.models import OutboxMessage
from pixtools_shared.db.session import session_scope

RETRY_LINE = re.compile(r"operation_retry_scheduled.*?delay_s=([0-9.]+).*?mode=(\w+)")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("durability-storage")
    with servers_stack(tmp, "pixtools_dur_storage") as started:
        yield started


def test_storage_faults_retried_in_task(stack: Stack) -> None:
    worker = stack.start_worker("worker-faulty", {"TEST_STORAGE_FAILURES": "2"})
    job_id = stack.submit(["png"])
    job = stack.wait_for_jobs([job_id])[job_id]
    stack.stop(worker)

    assert job.status == "COMPLETED", job.error_message
    [operation] = job.operations
    assert (operation.attempts, operation.interruptions) == (3, 0)
    retries = RETRY_LINE.findall(worker.log_tail(lines=100_000))
    assert [mode for _delay, mode in retries] == ["wait", "wait"]
    delays = [float(delay) for delay, _mode in retries]
    # base 0.2 s, doubled per retry, jittered into [0.5, 1] of the ceiling.
    assert 0.1 <= delays[0] <= 0.2
    assert 0.2 <= delays[1] <= 0.4
    assert stored_keys(job_id) == expected_keys(job)


def test_bad_image_fails_without_retry(stack: Stack) -> None:
    worker = stack.start_worker("worker-bad-input")
    job_id = stack.submit(["png"], data=b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    job = stack.wait_for_jobs([job_id])[job_id]
    stack.stop(worker)

    assert job.status == "FAILED"
    [operation] = job.operations
    assert operation.attempts == 1
    assert operation.error_code in {"invalid-image", "unsupported-format"}
    assert RETRY_LINE.findall(worker.log_tail(lines=100_000)) == []


def test_long_backoff_republished_through_outbox(stack: Stack) -> None:
    extra = {"TEST_STORAGE_FAILURES": "1", "RETRY_INLINE_MAX_SECONDS": "0"}
    worker = stack.start_worker("worker-republish", extra)
    stack.start_beat()
    job_id = stack.submit(["png"])
    job = stack.wait_for_jobs([job_id])[job_id]
    stack.stop(worker)

    assert job.status == "COMPLETED", job.error_message
    assert job.operations[0].attempts == 2
    assert [mode for _d, mode in RETRY_LINE.findall(worker.log_tail(100_000))] == [
        "republish"
    ]
    with session_scope() as session:
        retried = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.job_id == job_id, OutboxMessage.retries == 1
            )
        ).one()
        assert retried.sent_at is not None
        assert retried.args == [job_id, "png"]
