"""Retention: a job past RETENTION_SECONDS leaves nothing behind; a running job
of the same age is untouched.

The finished job has every kind of trace: an upload, outputs, a ZIP bundle,
operation rows, sent outbox rows and an idempotency record. The purge (the
beat task's body) must delete all of them, in moto S3 and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from durability_fixtures import servers_stack
from durability_platform import Stack, load_job, stored_keys
from sqlalchemy import func, select, update

from pixtools_shared import jobs
from pixtools_shared.db.models import (
    IdempotencyRecord,
    Job,
    JobOperation,
    OutboxMessage,
    utc_now,
)
from pixtools_shared.db.session import session_scope
from pixtools_shared.storage import get_storage, upload_key
from pixtools_worker_standard.purge import purge_expired


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("durability-retention")
    with servers_stack(tmp, "pixtools_dur_retention") as started:
        yield started


def _rows(job_id: str) -> dict[str, int]:
    columns = {
        "jobs": Job.id,
        "job_operations": JobOperation.job_id,
        "outbox_messages": OutboxMessage.job_id,
        "idempotency_records": IdempotencyRecord.job_id,
    }
    counts = {}
    with session_scope() as session:
        for table, column in columns.items():
            query = select(func.count()).where(column == job_id)
            counts[table] = int(session.scalar(query) or 0)
    return counts


def test_expired_job_purged_running_job_kept(stack: Stack) -> None:
    stack.start_worker()
    finished_id = stack.submit(["png", "webp"])
    finished = stack.wait_for_jobs([finished_id])[finished_id]
    assert finished.status == "COMPLETED"
    running_id = stack.submit(["png"], relay=False)
    with session_scope() as session:
        jobs.mark_operation_running(session, running_id, "png")
        session.add(
            IdempotencyRecord(
                scope="",
                key="retention-key",
                request_fingerprint="0" * 64,
                job_id=finished_id,
                created_at=utc_now(),
                expires_at=utc_now() + timedelta(days=1),
            )
        )
        # Both jobs are two days old and past their expiry.
        old = utc_now() - timedelta(days=2)
        session.execute(
            update(Job)
            .where(Job.id.in_([finished_id, running_id]))
            .values(created_at=old, expires_at=old + timedelta(seconds=60))
        )
    stored = stored_keys(finished_id)
    assert stored["bundles"] == [f"{finished_id}.zip"]
    assert len(stored["outputs"]) == 2
    assert _rows(finished_id)["outbox_messages"] == 3

    purged = purge_expired(stack.settings, get_storage())

    assert purged == 1
    assert stored_keys(finished_id) == {"uploads": [], "outputs": [], "bundles": []}
    assert _rows(finished_id) == {
        "jobs": 0,
        "job_operations": 0,
        "outbox_messages": 0,
        "idempotency_records": 0,
    }
    running = load_job(running_id)
    assert running.status == "RUNNING"
    assert running.operations[0].status == "RUNNING"
    assert get_storage().exists("uploads", upload_key(running_id))
    assert _rows(running_id) == {
        "jobs": 1,
        "job_operations": 1,
        "outbox_messages": 1,
        "idempotency_records": 0,
    }
