from __future__ import annotations

import itertools
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pixtools_shared import jobs
from pixtools_shared.db.models import IdempotencyRecord, JobStatus, OperationStatus
from pixtools_shared.db.session import get_session_factory, session_scope
from pixtools_shared.errors import JobNotFoundError
from pixtools_shared.operations import parse_operation_request
from pixtools_shared.settings import Settings
from pixtools_shared.storage import FilesystemStorage

SOURCE = jobs.SourceInfo("holiday photo.JPG", "JPEG", 640, 480, 12345)
NOW = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)


def _create(
    session: Session, names: list[str], settings: Settings, **kwargs: Any
) -> str:
    operations = parse_operation_request(str(names).replace("'", '"'))
    job = jobs.create_job(
        session, operations=operations, source=SOURCE, settings=settings, **kwargs
    )
    session.commit()
    return job.id


def _output(job_id: str, name: str) -> jobs.OperationOutput:
    return jobs.OperationOutput(
        key=f"{job_id}/{name}.{name}",
        content_type=f"image/{name}",
        extension=name,
        size_bytes=100,
        width=10,
        height=8,
    )


def _job_status(settings: Settings, job_id: str) -> str:
    with session_scope(settings.database_url) as session:
        job = jobs.require_job(session, job_id)
        return job.status


def _finish(settings: Settings, job_id: str, name: str, outcome: str) -> bool:
    """Finish one operation in its own transaction, then try to claim."""
    with session_scope(settings.database_url) as session:
        jobs.mark_operation_running(session, job_id, name)
    with session_scope(settings.database_url) as session:
        if outcome == "ok":
            jobs.mark_operation_succeeded(session, job_id, name, _output(job_id, name))
        else:
            jobs.mark_operation_failed(
                session, job_id, name, code="invalid-image", message=f"{name} broke"
            )
    with session_scope(settings.database_url) as session:
        return jobs.claim_finalization(session, job_id)


def test_create_job_rows(db_session: Session, configured_env: Settings) -> None:
    job_id = _create(
        db_session, ["jpg", "denoise", "metadata"], configured_env, now=NOW
    )

    job = jobs.require_job(db_session, job_id)
    assert uuid.UUID(job.id).version == 4
    assert job.status == JobStatus.QUEUED
    assert job.created_at == NOW
    assert job.expires_at == NOW + timedelta(seconds=configured_env.RETENTION_SECONDS)
    assert [op.name for op in job.operations] == ["jpg", "denoise", "metadata"]
    assert [op.position for op in job.operations] == [0, 1, 2]
    assert [op.queue for op in job.operations] == ["standard", "ml", "standard"]
    assert [op.status for op in job.operations] == ["QUEUED"] * 3
    assert [op.dispatch_count for op in job.operations] == [1, 1, 1]
    assert job.operations[0].params == {
        "width": None,
        "height": None,
        "allow_upscale": False,
        "quality": 85,
    }
    assert job.webhook_status is None


def test_create_job_with_webhook_pending(
    db_session: Session, configured_env: Settings
) -> None:
    job_id = _create(
        db_session, ["png"], configured_env, webhook_url="https://hooks.test/x"
    )

    job = jobs.require_job(db_session, job_id)
    assert job.webhook_url == "https://hooks.test/x"
    assert job.webhook_status == "PENDING"
    assert job.webhook_attempts == 0


def test_idempotency_key_unique(db_session: Session, configured_env: Settings) -> None:
    first = _create(
        db_session,
        ["png"],
        configured_env,
        idempotency_key="key-1",
        request_fingerprint="f" * 64,
    )
    record = jobs.find_idempotency_record(db_session, "", "key-1")
    assert record is not None
    assert record.job_id == first
    assert record.request_fingerprint == "f" * 64

    operations = parse_operation_request('["png"]')
    with pytest.raises(IntegrityError) as raised:
        jobs.create_job(
            db_session,
            operations=operations,
            source=SOURCE,
            idempotency_key="key-1",
            request_fingerprint="f" * 64,
            settings=configured_env,
        )
    message = str(raised.value.orig)
    assert (
        "uq_idempotency_records_scope_key" in message
        or "idempotency_records.scope, idempotency_records.key" in message
    )


def test_idempotency_scopes_separate(
    db_session: Session, configured_env: Settings
) -> None:
    a = _create(
        db_session,
        ["png"],
        configured_env,
        idempotency_key="same",
        idempotency_scope="alice",
        request_fingerprint="a" * 64,
    )
    b = _create(
        db_session,
        ["png"],
        configured_env,
        idempotency_key="same",
        idempotency_scope="bob",
        request_fingerprint="b" * 64,
    )

    record_a = jobs.find_idempotency_record(db_session, "alice", "same")
    record_b = jobs.find_idempotency_record(db_session, "bob", "same")
    assert record_a is not None and record_a.job_id == a
    assert record_b is not None and record_b.job_id == b


def test_expired_idempotency_record_ignored(
    db_session: Session, configured_env: Settings
) -> None:
    _create(
        db_session,
        ["png"],
        configured_env,
        idempotency_key="old",
        request_fingerprint="c" * 64,
        now=NOW,
    )
    record = db_session.query(IdempotencyRecord).one()
    later = record.expires_at + timedelta(seconds=1)

    assert jobs.find_idempotency_record(db_session, "", "old", now=later) is None


def test_create_job_rejects_empty(
    db_session: Session, configured_env: Settings
) -> None:
    with pytest.raises(ValueError, match="at least one operation"):
        jobs.create_job(
            db_session, operations=[], source=SOURCE, settings=configured_env
        )


@pytest.mark.parametrize("job_id", ["not-a-uuid", "", "00000000-0000-4000-8000-0000"])
def test_get_job_malformed_id(db_session: Session, job_id: str) -> None:
    assert jobs.get_job(db_session, job_id) is None
    with pytest.raises(JobNotFoundError):
        jobs.require_job(db_session, job_id)


def test_require_job_unknown(db_session: Session) -> None:
    with pytest.raises(JobNotFoundError, match="No job with id"):
        jobs.require_job(db_session, str(uuid.uuid4()))


def test_running_then_succeeded(db_session: Session, configured_env: Settings) -> None:
    job_id = _create(db_session, ["jpg"], configured_env)

    assert jobs.mark_operation_running(db_session, job_id, "jpg", task_id="t1")
    db_session.commit()
    job = jobs.require_job(db_session, job_id)
    assert job.status == JobStatus.RUNNING
    assert job.started_at is not None
    assert job.operations[0].status == OperationStatus.RUNNING
    assert job.operations[0].attempts == 1
    assert job.operations[0].task_id == "t1"

    assert jobs.mark_operation_succeeded(
        db_session, job_id, "jpg", _output(job_id, "jpg")
    )
    db_session.commit()
    op = jobs.require_job(db_session, job_id).operations[0]
    assert op.status == OperationStatus.SUCCEEDED
    assert op.output_key == f"{job_id}/jpg.jpg"
    assert (op.width, op.height, op.size_bytes) == (10, 8, 100)


def test_final_operation_never_changes(
    db_session: Session, configured_env: Settings
) -> None:
    job_id = _create(db_session, ["jpg", "png"], configured_env)
    jobs.mark_operation_succeeded(db_session, job_id, "jpg", _output(job_id, "jpg"))
    jobs.mark_operation_failed(db_session, job_id, "png", code="x", message="bad")
    db_session.commit()

    assert not jobs.mark_operation_running(db_session, job_id, "jpg")
    assert not jobs.mark_operation_failed(
        db_session, job_id, "jpg", code="late", message="late"
    )
    assert not jobs.mark_operation_succeeded(
        db_session, job_id, "png", _output(job_id, "png")
    )
    assert not jobs.requeue_operation(db_session, job_id, "png")
    db_session.commit()

    ops = {op.name: op for op in jobs.require_job(db_session, job_id).operations}
    assert ops["jpg"].status == OperationStatus.SUCCEEDED
    assert ops["jpg"].error_code is None
    assert ops["png"].status == OperationStatus.FAILED
    assert ops["png"].error_message == "bad"
    assert ops["png"].output_key is None


def test_restart_counts_interruption(
    db_session: Session, configured_env: Settings
) -> None:
    job_id = _create(db_session, ["jpg"], configured_env)

    jobs.mark_operation_running(db_session, job_id, "jpg")
    jobs.mark_operation_running(db_session, job_id, "jpg")
    jobs.requeue_operation(db_session, job_id, "jpg")
    jobs.mark_operation_running(db_session, job_id, "jpg")
    db_session.commit()

    op = jobs.require_job(db_session, job_id).operations[0]
    assert op.attempts == 3
    assert op.interruptions == 1
    assert op.status == OperationStatus.RUNNING


def test_claim_needs_all_final(db_session: Session, configured_env: Settings) -> None:
    job_id = _create(db_session, ["jpg", "png"], configured_env)
    jobs.mark_operation_succeeded(db_session, job_id, "jpg", _output(job_id, "jpg"))
    db_session.commit()

    assert not jobs.claim_finalization(db_session, job_id)
    jobs.mark_operation_succeeded(db_session, job_id, "png", _output(job_id, "png"))
    assert jobs.claim_finalization(db_session, job_id)
    assert not jobs.claim_finalization(db_session, job_id)
    db_session.commit()

    job = jobs.require_job(db_session, job_id)
    assert job.status == JobStatus.FINALIZING
    assert job.finalize_attempts == 1


@pytest.mark.parametrize(
    ("outcomes", "status", "message"),
    [
        (["ok", "ok"], JobStatus.COMPLETED, None),
        (
            ["ok", "fail"],
            JobStatus.COMPLETED_WITH_ERRORS,
            "1 of 2 operations failed: png: png broke",
        ),
        (
            ["fail", "fail"],
            JobStatus.FAILED,
            "2 of 2 operations failed: jpg: jpg broke; png: png broke",
        ),
    ],
)
def test_final_status_rules(
    configured_env: Settings,
    db_session: Session,
    outcomes: list[str],
    status: JobStatus,
    message: str | None,
) -> None:
    job_id = _create(db_session, ["jpg", "png"], configured_env)
    claims = [
        _finish(configured_env, job_id, name, outcome)
        for name, outcome in zip(["jpg", "png"], outcomes, strict=True)
    ]
    assert claims == [False, True]

    with session_scope(configured_env.database_url) as session:
        final = jobs.complete_job(
            session,
            job_id,
            archive_key=None,
            archive_size_bytes=None,
            now=NOW,
            settings=configured_env,
        )
    assert final == status

    with session_scope(configured_env.database_url) as session:
        job = jobs.require_job(session, job_id)
        assert job.status == status
        assert job.error_message == message
        assert job.finished_at == NOW
        assert job.expires_at == NOW + timedelta(
            seconds=configured_env.RETENTION_SECONDS
        )


def test_complete_requires_finalizing(
    db_session: Session, configured_env: Settings
) -> None:
    job_id = _create(db_session, ["jpg"], configured_env)
    jobs.mark_operation_succeeded(db_session, job_id, "jpg", _output(job_id, "jpg"))
    db_session.commit()

    result = jobs.complete_job(
        db_session,
        job_id,
        archive_key=None,
        archive_size_bytes=None,
        settings=configured_env,
    )

    assert result is None
    assert jobs.require_job(db_session, job_id).status == JobStatus.QUEUED


ORDERS = list(itertools.permutations(["jpg", "png", "webp"]))


@pytest.mark.parametrize("order", ORDERS, ids="-".join)
def test_status_race_never_regresses(
    configured_env: Settings, db_session: Session, order: tuple[str, ...]
) -> None:
    job_id = _create(db_session, ["jpg", "png", "webp"], configured_env)
    outcomes = {"jpg": "ok", "png": "fail", "webp": "ok"}
    seen: list[str] = []

    claims = []
    for name in order:
        claims.append(_finish(configured_env, job_id, name, outcomes[name]))
        seen.append(_job_status(configured_env, job_id))
    assert claims == [False, False, True]
    assert seen[-1] == JobStatus.FINALIZING
    assert all(status == JobStatus.RUNNING for status in seen[:-1])

    with session_scope(configured_env.database_url) as session:
        final = jobs.complete_job(
            session,
            job_id,
            archive_key=f"{job_id}.zip",
            archive_size_bytes=10,
            settings=configured_env,
        )
    assert final == JobStatus.COMPLETED_WITH_ERRORS

    # A message redelivered after the job finished changes nothing.
    redelivered = order[0]
    with session_scope(configured_env.database_url) as session:
        assert not jobs.mark_operation_running(session, job_id, redelivered)
        assert not jobs.mark_operation_failed(
            session, job_id, redelivered, code="late", message="late"
        )
        assert not jobs.mark_operation_succeeded(
            session, job_id, "png", _output(job_id, "png")
        )
        assert not jobs.claim_finalization(session, job_id)
        assert (
            jobs.complete_job(
                session,
                job_id,
                archive_key=None,
                archive_size_bytes=None,
                settings=configured_env,
            )
            is None
        )

    with session_scope(configured_env.database_url) as session:
        job = jobs.require_job(session, job_id)
        assert job.status == JobStatus.COMPLETED_WITH_ERRORS
        assert job.archive_key == f"{job_id}.zip"
        assert {op.name: op.status for op in job.operations} == {
            "jpg": "SUCCEEDED",
            "png": "FAILED",
            "webp": "SUCCEEDED",
        }
        assert {op.name: op.attempts for op in job.operations} == {
            "jpg": 1,
            "png": 1,
            "webp": 1,
        }


def _run_threads(count: int, target: Any) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = target(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return results


def test_claim_single_winner_threads(
    configured_env: Settings, db_session: Session
) -> None:
    job_id = _create(db_session, ["jpg", "png"], configured_env)
    jobs.mark_operation_succeeded(db_session, job_id, "jpg", _output(job_id, "jpg"))
    jobs.mark_operation_failed(db_session, job_id, "png", code="x", message="y")
    db_session.commit()
    factory = get_session_factory(configured_env.database_url)

    def claim(_index: int) -> bool:
        with factory() as session:
            won = jobs.claim_finalization(session, job_id)
            session.commit()
            return won

    results = _run_threads(8, claim)

    assert results.count(True) == 1
    assert results.count(False) == 7


def test_last_operations_race_one_winner(
    configured_env: Settings, db_session: Session
) -> None:
    """Operations finishing at the same moment elect exactly one finalizer."""
    names = ["jpg", "png", "webp", "avif"]
    rounds = 10 if configured_env.database_url.startswith("postgresql") else 4
    for _ in range(rounds):
        job_id = _create(db_session, names, configured_env)

        def finish(index: int, job_id: str = job_id) -> bool:
            outcome = "ok" if index % 2 == 0 else "fail"
            return _finish(configured_env, job_id, names[index], outcome)

        results = _run_threads(len(names), finish)

        assert results.count(True) == 1
        assert _job_status(configured_env, job_id) == JobStatus.FINALIZING


def test_reclaim_only_when_stale(db_session: Session, configured_env: Settings) -> None:
    job_id = _create(db_session, ["jpg"], configured_env)
    jobs.mark_operation_succeeded(db_session, job_id, "jpg", _output(job_id, "jpg"))
    jobs.claim_finalization(db_session, job_id, now=NOW)
    db_session.commit()

    assert not jobs.reclaim_finalization(db_session, job_id, stale_before=NOW)
    assert jobs.reclaim_finalization(
        db_session, job_id, stale_before=NOW + timedelta(seconds=1)
    )
    db_session.commit()
    assert jobs.require_job(db_session, job_id).finalize_attempts == 2


def test_abort_job_fails_active(db_session: Session, configured_env: Settings) -> None:
    job_id = _create(db_session, ["jpg", "png"], configured_env)
    jobs.mark_operation_succeeded(db_session, job_id, "jpg", _output(job_id, "jpg"))
    db_session.commit()

    status = jobs.abort_job(
        db_session,
        job_id,
        code="dispatch-failed",
        message="The broker is unreachable.",
        settings=configured_env,
    )
    db_session.commit()

    assert status == JobStatus.COMPLETED_WITH_ERRORS
    job = jobs.require_job(db_session, job_id)
    png = job.operations[1]
    assert (png.status, png.error_code) == ("FAILED", "dispatch-failed")
    assert (
        job.error_message == "1 of 2 operations failed: png: The broker is unreachable."
    )


def test_metadata_stored_on_job(db_session: Session, configured_env: Settings) -> None:
    job_id = _create(db_session, ["metadata"], configured_env)
    metadata = {"format": "JPEG", "gps": {"latitude": 1.5, "longitude": -2.25}}

    jobs.mark_operation_succeeded(
        db_session, job_id, "metadata", _output(job_id, "json"), metadata=metadata
    )
    db_session.commit()

    assert jobs.require_job(db_session, job_id).image_metadata == metadata


def test_job_resource_shape(
    db_session: Session, configured_env: Settings, tmp_path: Path
) -> None:
    storage = FilesystemStorage(
        tmp_path / "res", "resource-test-secret-0123456789abcdef", "http://h:1"
    )
    job_id = _create(
        db_session,
        ["jpg", "png"],
        configured_env,
        webhook_url="https://hooks.test/x",
        now=NOW,
    )
    jobs.mark_operation_succeeded(db_session, job_id, "jpg", _output(job_id, "jpg"))
    jobs.mark_operation_failed(
        db_session, job_id, "png", code="invalid-image", message="truncated"
    )
    jobs.claim_finalization(db_session, job_id)
    jobs.complete_job(
        db_session,
        job_id,
        archive_key=f"{job_id}.zip",
        archive_size_bytes=5,
        settings=configured_env,
    )
    db_session.commit()

    resource = jobs.job_to_resource(jobs.require_job(db_session, job_id), storage)

    assert resource["job_id"] == job_id
    assert resource["status"] == "COMPLETED_WITH_ERRORS"
    assert resource["created_at"] == NOW.isoformat()
    assert set(resource) == {
        "job_id",
        "status",
        "created_at",
        "started_at",
        "finished_at",
        "expires_at",
        "operations",
        "result_urls",
        "archive_url",
        "metadata",
        "error_message",
        "source",
        "webhook",
    }
    jpg, png = resource["operations"]
    assert jpg["status"] == "SUCCEEDED"
    assert jpg["error"] is None
    assert f"/api/files/outputs/{job_id}/jpg.jpg?" in jpg["result_url"]
    assert "filename=holiday_photo-jpg.jpg" in jpg["result_url"]
    assert png["result_url"] is None
    assert png["error"] == {"code": "invalid-image", "message": "truncated"}
    assert resource["result_urls"] == {"jpg": jpg["result_url"]}
    assert f"/api/files/bundles/{job_id}.zip?" in resource["archive_url"]
    assert "filename=holiday_photo-results.zip" in resource["archive_url"]
    assert resource["source"] == {
        "filename": "holiday photo.JPG",
        "format": "JPEG",
        "width": 640,
        "height": 480,
        "size_bytes": 12345,
    }
    assert resource["webhook"] == {
        "url": "https://hooks.test/x",
        "status": "PENDING",
        "attempts": 0,
        "last_error": None,
        "last_status_code": None,
    }
