from __future__ import annotations

import io
import zipfile
from datetime import timedelta

import pytest
from celery import Celery

from pixtools_shared import jobs
from pixtools_shared.db.models import utc_now
from pixtools_shared.db.session import session_scope
from pixtools_shared.settings import Settings, reset_settings_cache
from pixtools_shared.storage import bundle_key, get_storage, upload_key
from pixtools_worker_standard.finalize import finalize_job
from pixtools_worker_standard.operation_tasks import convert, extract_metadata
from pixtools_worker_standard.testkit import (
    SentTask,
    clear_broker,
    load_job,
    make_image,
    sent_tasks,
    submit_job,
)


def _run_all(job_id: str, names: list[str]) -> None:
    for name in names:
        task = extract_metadata if name == "metadata" else convert
        task.apply(args=[job_id, name]).get()


def test_finalize_bundles_outputs(configured_env: Settings, worker_app: Celery) -> None:
    names = ["png", "jpg", "metadata"]
    job_id = submit_job(configured_env, names, make_image("JPEG"))
    _run_all(job_id, names)
    clear_broker(configured_env)

    assert finalize_job.apply(args=[job_id]).get() == "COMPLETED"

    job = load_job(job_id)
    assert job.status == "COMPLETED"
    assert job.archive_key == bundle_key(job_id)
    archive = get_storage().get("bundles", bundle_key(job_id))
    assert job.archive_size_bytes == len(archive)
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert opened.namelist() == ["png.png", "jpg.jpg", "metadata.json"]
        for operation in job.operations:
            stored = get_storage().get("outputs", operation.output_key or "")
            assert opened.read(f"{operation.name}.{operation.output_extension}") == (
                stored
            )
    assert sent_tasks(configured_env) == []


def test_finalize_skips_failed(configured_env: Settings, worker_app: Celery) -> None:
    job_id = submit_job(configured_env, ["png", "webp"], make_image())
    convert.apply(args=[job_id, "png"]).get()
    with session_scope() as session:
        jobs.mark_operation_failed(
            session, job_id, "webp", code="invalid-image", message="webp broke"
        )
        jobs.claim_finalization(session, job_id)

    assert finalize_job.apply(args=[job_id]).get() == "COMPLETED_WITH_ERRORS"

    job = load_job(job_id)
    assert job.error_message == "1 of 2 operations failed: webp: webp broke"
    archive = get_storage().get("bundles", bundle_key(job_id))
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert opened.namelist() == ["png.png"]


def test_finalize_all_failed(configured_env: Settings, worker_app: Celery) -> None:
    source = make_image("PNG", (300, 200), color=None)
    job_id = submit_job(configured_env, ["png"], source[:100])
    convert.apply(args=[job_id, "png"]).get()

    assert finalize_job.apply(args=[job_id]).get() == "FAILED"

    job = load_job(job_id)
    assert job.archive_key is None
    assert get_storage().exists("bundles", bundle_key(job_id)) is False
    assert job.error_message is not None
    assert job.error_message.startswith("1 of 1 operations failed: png: ")


def test_finalize_sends_webhook(configured_env: Settings, worker_app: Celery) -> None:
    job_id = submit_job(
        configured_env, ["png"], make_image(), webhook_url="https://hooks.test/done"
    )
    convert.apply(args=[job_id, "png"]).get()
    clear_broker(configured_env)

    finalize_job.apply(args=[job_id]).get()

    assert sent_tasks(configured_env) == [
        SentTask("pixtools.deliver_webhook", [job_id], "webhooks")
    ]


def test_finalize_notes_missing_output(
    configured_env: Settings, worker_app: Celery
) -> None:
    job_id = submit_job(configured_env, ["png", "jpg"], make_image())
    _run_all(job_id, ["png", "jpg"])
    get_storage().delete("outputs", f"{job_id}/jpg.jpg")

    assert finalize_job.apply(args=[job_id]).get() == "COMPLETED"

    job = load_job(job_id)
    assert job.error_message == "Missing from the ZIP bundle: jpg."
    archive = get_storage().get("bundles", bundle_key(job_id))
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert opened.namelist() == ["png.png"]


def test_finalize_twice_is_noop(configured_env: Settings, worker_app: Celery) -> None:
    job_id = submit_job(configured_env, ["png"], make_image())
    convert.apply(args=[job_id, "png"]).get()
    finalize_job.apply(args=[job_id]).get()
    finished_at = load_job(job_id).finished_at

    assert finalize_job.apply(args=[job_id]).get() is None
    assert load_job(job_id).finished_at == finished_at


def test_finalize_before_claim_is_noop(
    configured_env: Settings, worker_app: Celery
) -> None:
    job_id = submit_job(configured_env, ["png", "jpg"], make_image())
    convert.apply(args=[job_id, "png"]).get()

    assert finalize_job.apply(args=[job_id]).get() is None
    assert load_job(job_id).status == "RUNNING"


def test_finalize_lease_held_skips(
    configured_env: Settings, worker_app: Celery
) -> None:
    job_id = submit_job(configured_env, ["png"], make_image())
    convert.apply(args=[job_id, "png"]).get()
    with session_scope() as session:
        assert jobs.start_finalization(
            session, job_id, "other-task", stale_before=utc_now() - timedelta(hours=1)
        )
    clear_broker(configured_env)

    assert finalize_job.apply(args=[job_id], task_id="second-task").get() is None

    job = load_job(job_id)
    assert (job.status, job.finalize_task_id) == ("FINALIZING", "other-task")
    assert get_storage().exists("bundles", bundle_key(job_id)) is False
    # The holder itself (a redelivered message) may take the lease again.
    assert finalize_job.apply(args=[job_id], task_id="other-task").get() == (
        "COMPLETED"
    )


def test_finalize_deletes_upload_when_asked(
    configured_env: Settings, worker_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELETE_UPLOAD_ON_FINISH", "true")
    reset_settings_cache()
    job_id = submit_job(configured_env, ["png"], make_image())
    convert.apply(args=[job_id, "png"]).get()

    assert finalize_job.apply(args=[job_id]).get() == "COMPLETED"

    storage = get_storage()
    assert storage.list_keys("uploads", f"{job_id}/") == []
    assert storage.list_keys("outputs", f"{job_id}/") == [f"{job_id}/png.png"]


def test_finalize_keeps_upload_by_default(
    configured_env: Settings, worker_app: Celery
) -> None:
    job_id = submit_job(configured_env, ["png"], make_image())
    convert.apply(args=[job_id, "png"]).get()
    finalize_job.apply(args=[job_id]).get()

    assert get_storage().exists("uploads", upload_key(job_id))
