from __future__ import annotations

import io

from celery import Celery
from PIL import Image

from pixtools_shared.settings import Settings
from pixtools_shared.storage import get_storage
from pixtools_worker_standard.operation_tasks import convert, extract_metadata
from pixtools_worker_standard.testkit import (
    SentTask,
    load_job,
    make_image,
    sent_tasks,
    submit_job,
)

EXPECTED_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF"}


def test_convert_each_format(configured_env: Settings, worker_app: Celery) -> None:
    source = make_image("PNG", (64, 48))
    job_id = submit_job(configured_env, list(EXPECTED_FORMATS), source)

    for name in EXPECTED_FORMATS:
        assert convert.apply(args=[job_id, name]).get() == "succeeded"

    job = load_job(job_id)
    assert job.status == "FINALIZING"
    for operation in job.operations:
        assert operation.status == "SUCCEEDED"
        assert operation.output_key == f"{job_id}/{operation.name}.{operation.name}"
        data = get_storage().get("outputs", operation.output_key)
        assert operation.size_bytes == len(data)
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == EXPECTED_FORMATS[operation.name]
            assert image.size == (64, 48)
    assert sent_tasks(configured_env) == [
        SentTask("pixtools.finalize_job", [job_id], "standard")
    ]


def test_convert_resizes(configured_env: Settings, worker_app: Celery) -> None:
    job_id = submit_job(
        configured_env,
        ["jpg"],
        make_image("PNG", (400, 300)),
        params={"jpg": {"width": 100, "quality": 70}},
    )

    convert.apply(args=[job_id, "jpg"]).get()

    operation = load_job(job_id).operations[0]
    assert (operation.width, operation.height) == (100, 75)
    data = get_storage().get("outputs", operation.output_key or "")
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (100, 75)


def test_convert_truncated_image_fails(
    configured_env: Settings, worker_app: Celery
) -> None:
    source = make_image("PNG", (300, 200), color=None)
    job_id = submit_job(configured_env, ["webp"], source[: len(source) // 2])

    assert convert.apply(args=[job_id, "webp"]).get() == "failed"

    job = load_job(job_id)
    operation = job.operations[0]
    assert operation.status == "FAILED"
    assert operation.error_code == "invalid-image"
    assert "damaged or truncated" in (operation.error_message or "")
    assert operation.attempts == 1
    assert job.status == "FINALIZING"


def test_convert_rejects_non_conversion(
    configured_env: Settings, worker_app: Celery
) -> None:
    job_id = submit_job(configured_env, ["metadata"], make_image())

    convert.apply(args=[job_id, "metadata"]).get()

    operation = load_job(job_id).operations[0]
    assert operation.status == "FAILED"
    assert operation.error_code == "invalid-operation"


def test_metadata_stored_on_job(configured_env: Settings, worker_app: Celery) -> None:
    job_id = submit_job(configured_env, ["metadata", "png"], make_image("JPEG"))

    assert extract_metadata.apply(args=[job_id, "metadata"]).get() == "succeeded"

    job = load_job(job_id)
    assert job.image_metadata is not None
    assert job.image_metadata["format"] == "JPEG"
    assert job.image_metadata["width"] == 64
    assert job.image_metadata["height"] == 48
    operation = job.operations[0]
    assert operation.output_key == f"{job_id}/metadata.json"
    assert operation.output_content_type == "application/json"
    assert job.status == "RUNNING"
    assert sent_tasks(configured_env) == []
