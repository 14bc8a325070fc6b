from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from billiard.exceptions import SoftTimeLimitExceeded
from celery import Celery, Task
from sqlalchemy import select

from pixtools_shared import jobs
from pixtools_shared.celery_app import create_celery_app
from pixtools_shared.db.models import OutboxMessage
from pixtools_shared.db.session import session_scope
from pixtools_shared.errors import InvalidImageError, TransientError
from pixtools_shared.operations import parse_operation_request
from pixtools_shared.pipeline import (
    EncodedResult,
    OperationResult,
    metadata_result,
    run_operation,
)
from pixtools_shared.settings import Settings, get_settings, reset_settings_cache
from pixtools_shared.storage import get_storage, output_key, upload_key

SOURCE_BYTES = b"source-image-bytes"


@dataclass
class Harness:
    app: Celery
    settings: Settings
    task: Task
    work: list[Callable[[bytes, dict[str, Any]], EncodedResult]] = field(
        default_factory=list
    )
    calls: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)

    def create_job(self, names: list[str], store_source: bool = True) -> str:
        with session_scope() as session:
            job = jobs.create_job(
                session,
                operations=parse_operation_request(json.dumps(names)),
                source=jobs.SourceInfo("in.png", "PNG", 4, 4, len(SOURCE_BYTES)),
                settings=self.settings,
            )
            job_id = job.id
        if store_source:
            get_storage().put("uploads", upload_key(job_id), SOURCE_BYTES, "image/png")
        return job_id

    def run(self, job_id: str, operation: str) -> Any:
        return self.task.apply(args=[job_id, operation]).get()

    def operation(self, job_id: str, name: str) -> Any:
        with session_scope() as session:
            row = jobs.get_operation(session, job_id, name)
            assert row is not None
            session.expunge(row)
            return row

    def sent_tasks(self) -> list[tuple[str, list[Any]]]:
        sent = []
        for path in sorted(self.settings.broker_folder.iterdir()):
            payload = json.loads(path.read_text())
            args = json.loads(base64.b64decode(payload["body"]))[0]
            sent.append((payload["headers"]["task"], args))
        return sent


@pytest.fixture
def harness(
    configured_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Harness]:
    # Retries wait in the task; short delays keep the tests fast.
    monkeypatch.setenv("TASK_RETRY_BACKOFF_SECONDS", "0.01")
    reset_settings_cache()
    configured_env = get_settings()
    app = create_celery_app(configured_env)
    state: dict[str, Harness] = {}

    @app.task(bind=True, name="test.run_operation", shared=False)
    def run_task(self: Task, job_id: str, operation: str) -> str:
        current = state["harness"]

        def work(data: bytes, params: dict[str, Any]) -> EncodedResult:
            current.calls.append((data, params))
            return current.work[min(len(current.calls), len(current.work)) - 1](
                data, params
            )

        return str(run_operation(self, job_id, operation, work))

    state["harness"] = Harness(app, configured_env, run_task)
    yield state["harness"]
    app.close()


def _png_result(_data: bytes, _params: dict[str, Any]) -> EncodedResult:
    return OperationResult(b"\x89PNG-out", "image/png", "png", width=4, height=3)


def _raise(exc: BaseException) -> Callable[[bytes, dict[str, Any]], EncodedResult]:
    def work(_data: bytes, _params: dict[str, Any]) -> EncodedResult:
        raise exc

    return work


def test_success_stores_output_and_finalizes(harness: Harness) -> None:
    harness.work = [_png_result]
    job_id = harness.create_job(["png"])

    assert harness.run(job_id, "png") == "succeeded"

    op = harness.operation(job_id, "png")
    assert op.status == "SUCCEEDED"
    assert op.output_key == output_key(job_id, "png", "png")
    assert (op.width, op.height, op.size_bytes) == (4, 3, 8)
    assert get_storage().get("outputs", op.output_key) == b"\x89PNG-out"
    assert harness.calls == [
        (
            SOURCE_BYTES,
            {
                "width": None,
                "height": None,
                "allow_upscale": False,
                "compress_level": None,
            },
        )
    ]
    assert harness.sent_tasks() == [("pixtools.finalize_job", [job_id])]


def test_not_last_operation_no_finalize(harness: Harness) -> None:
    harness.work = [_png_result]
    job_id = harness.create_job(["png", "jpg"])

    harness.run(job_id, "png")

    assert harness.sent_tasks() == []


def test_invalid_image_fails_without_retry(harness: Harness) -> None:
    harness.work = [_raise(InvalidImageError("The file is truncated."))]
    job_id = harness.create_job(["png"])

    assert harness.run(job_id, "png") == "failed"

    op = harness.operation(job_id, "png")
    assert (op.status, op.error_code) == ("FAILED", "invalid-image")
    assert op.error_message == "The file is truncated."
    assert len(harness.calls) == 1
    assert harness.sent_tasks() == [("pixtools.finalize_job", [job_id])]


def test_transient_error_retried(harness: Harness) -> None:
    flaky = _raise(TransientError("storage timed out"))
    harness.work = [flaky, flaky, _png_result]
    job_id = harness.create_job(["png"])

    harness.run(job_id, "png")

    op = harness.operation(job_id, "png")
    assert op.status == "SUCCEEDED"
    assert len(harness.calls) == 3
    assert op.attempts == 3
    assert op.interruptions == 0


def test_transient_retries_bounded(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASK_MAX_RETRIES", "2")
    reset_settings_cache()
    harness.work = [_raise(TransientError("database unreachable"))]
    job_id = harness.create_job(["png"])

    harness.run(job_id, "png")

    op = harness.operation(job_id, "png")
    assert (op.status, op.error_code) == ("FAILED", "transient-error")
    assert op.error_message == (
        "The operation failed after 3 tries: database unreachable"
    )
    assert len(harness.calls) == 3


def test_unexpected_error_fails_operation(harness: Harness) -> None:
    harness.work = [_raise(KeyError("boom"))]
    job_id = harness.create_job(["png"])

    assert harness.run(job_id, "png") == "failed"

    op = harness.operation(job_id, "png")
    assert (op.status, op.error_code) == ("FAILED", "internal-error")
    assert op.error_message == "The operation failed unexpectedly (KeyError)."


def test_soft_time_limit_fails_operation(harness: Harness) -> None:
    harness.work = [_raise(SoftTimeLimitExceeded())]
    job_id = harness.create_job(["png"])

    harness.run(job_id, "png")

    op = harness.operation(job_id, "png")
    assert (op.status, op.error_code) == ("FAILED", "operation-timed-out")
    assert op.error_message == (
        "The operation did not finish within its time limit of 120 s."
    )


def test_missing_source_fails(harness: Harness) -> None:
    harness.work = [_png_result]
    job_id = harness.create_job(["png"], store_source=False)

    harness.run(job_id, "png")

    op = harness.operation(job_id, "png")
    assert (op.status, op.error_code) == ("FAILED", "source-missing")
    assert harness.calls == []


def test_redelivery_after_success_skipped(harness: Harness) -> None:
    harness.work = [_png_result]
    job_id = harness.create_job(["png"])
    harness.run(job_id, "png")

    assert harness.run(job_id, "png") == "skipped"

    op = harness.operation(job_id, "png")
    assert op.status == "SUCCEEDED"
    assert op.attempts == 1
    assert len(harness.calls) == 1
    assert harness.sent_tasks() == [("pixtools.finalize_job", [job_id])]


def test_unknown_job_skipped(harness: Harness) -> None:
    harness.work = [_png_result]

    assert harness.run("7c9e6679-7425-40de-944b-e07fc1f90ae7", "png") == "skipped"
    assert harness.calls == []


def test_repeated_interruptions_fail(harness: Harness) -> None:
    harness.work = [_png_result]
    job_id = harness.create_job(["png"])
    with session_scope() as session:
        for _ in range(harness.settings.OPERATION_MAX_ATTEMPTS):
            jobs.mark_operation_running(session, job_id, "png")

    harness.run(job_id, "png")

    op = harness.operation(job_id, "png")
    assert (op.status, op.error_code) == ("FAILED", "operation-interrupted")
    assert op.interruptions == harness.settings.OPERATION_MAX_ATTEMPTS
    assert harness.calls == []


def test_metadata_result_stored_on_job(harness: Harness) -> None:
    metadata = {"format": "PNG", "width": 4, "exif": None}
    harness.work = [lambda _d, _p: metadata_result(metadata, 10_000)]
    job_id = harness.create_job(["metadata"])

    harness.run(job_id, "metadata")

    with session_scope() as session:
        job = jobs.require_job(session, job_id)
        assert job.image_metadata == metadata
    stored = get_storage().get("outputs", output_key(job_id, "metadata", "json"))
    assert json.loads(stored) == metadata


def test_metadata_too_large_fails(harness: Harness) -> None:
    harness.work = [lambda _d, _p: metadata_result({"xmp": "x" * 5000}, 1024)]
    job_id = harness.create_job(["metadata"])

    harness.run(job_id, "metadata")

    op = harness.operation(job_id, "metadata")
    assert (op.status, op.error_code) == ("FAILED", "metadata-too-large")


def test_long_backoff_republished_through_outbox(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RETRY_INLINE_MAX_SECONDS", "0")
    reset_settings_cache()
    harness.work = [_raise(TransientError("storage timed out")), _png_result]
    job_id = harness.create_job(["png"])

    assert harness.run(job_id, "png") == "retrying"

    op = harness.operation(job_id, "png")
    assert (op.status, op.attempts, op.interruptions) == ("QUEUED", 1, 0)
    with session_scope() as session:
        retry = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.job_id == job_id, OutboxMessage.retries == 1
            )
        ).one()
        assert retry.sent_at is None
        assert retry.args == [job_id, "png"]
        assert retry.available_at > retry.created_at
    assert harness.sent_tasks() == []


def test_interrupted_operation_dead_lettered(harness: Harness) -> None:
    harness.work = [_png_result]
    job_id = harness.create_job(["png"])
    with session_scope() as session:
        for _ in range(harness.settings.OPERATION_MAX_ATTEMPTS):
            jobs.mark_operation_running(session, job_id, "png")

    assert harness.run(job_id, "png") == "failed"

    op = harness.operation(job_id, "png")
    assert op.error_message is not None
    assert "moved to the dead-letter queue" in op.error_message
    letters = sorted(harness.settings.broker_folder.glob("*.dead_letters.msg"))
    assert len(letters) == 1
    payload = json.loads(letters[0].read_text())
    assert payload["headers"]["task"] == "test.run_operation"
    assert payload["headers"]["x-pixtools-dead-letter"]["reason"] == (
        "operation-interrupted"
    )
    assert ("pixtools.finalize_job", [job_id]) in harness.sent_tasks()


def test_resumed_start_not_an_interruption(harness: Harness) -> None:
    job_id = harness.create_job(["png"])
    with session_scope() as session:
        jobs.mark_operation_running(session, job_id, "png")
        jobs.mark_operation_running(session, job_id, "png", resumed=True)

    op = harness.operation(job_id, "png")
    assert (op.attempts, op.interruptions) == (2, 0)


def test_late_result_of_failed_operation_deleted(harness: Harness) -> None:
    job_id = harness.create_job(["png"])

    def fail_meanwhile(data: bytes, params: dict[str, Any]) -> EncodedResult:
        # Recovery fails the operation while this run still works on it.
        with session_scope() as session:
            jobs.mark_operation_failed(
                session, job_id, "png", code="operation-stalled", message="stalled"
            )
        return _png_result(data, params)

    harness.work = [fail_meanwhile]

    assert harness.run(job_id, "png") == "skipped"
    assert get_storage().list_keys("outputs", f"{job_id}/") == []
