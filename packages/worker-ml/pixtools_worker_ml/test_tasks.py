from __future__ import annotations

import io
import json

import numpy as np
import pytest
from celery import Celery
from PIL import Image

from pixtools_shared import jobs
from pixtools_shared.db.models import Job
from pixtools_shared.db.session import session_scope
from pixtools_shared.operations import parse_operation_request
from pixtools_shared.settings import Settings, reset_settings_cache
from pixtools_shared.storage import get_storage, upload_key
from pixtools_worker_ml.tasks import denoise
from pixtools_worker_ml.testimages import synthetic_photo, to_uint8


def encode_png(pixels: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, "PNG")
    return buffer.getvalue()


def submit_denoise_job(
    settings: Settings, data: bytes, params: dict[str, object] | None = None
) -> str:
    """Store an upload and create a denoise job, as the API does, without sending."""
    requests = parse_operation_request(
        json.dumps(["denoise"]), json.dumps({"denoise": params}) if params else None
    )
    with session_scope() as session:
        job = jobs.create_job(
            session,
            operations=requests,
            source=jobs.SourceInfo("photo.png", "PNG", 0, 0, len(data)),
            settings=settings,
        )
        job_id = job.id
    get_storage().put("uploads", upload_key(job_id), data, "image/png")
    return job_id


def load_job(job_id: str) -> Job:
    with session_scope() as session:
        job = jobs.require_job(session, job_id)
        for operation in job.operations:
            session.expunge(operation)
        session.expunge(job)
        return job


def test_denoise_task_stores_resized_webp(
    configured_env: Settings, ml_app: Celery
) -> None:
    noisy = synthetic_photo(60, 80) + np.random.default_rng(1).normal(
        0.0, 25 / 255, size=(60, 80, 3)
    )
    job_id = submit_denoise_job(
        configured_env,
        encode_png(to_uint8(noisy.astype(np.float32)), "RGB"),
        {"format": "webp", "quality": 90, "width": 40},
    )

    assert denoise.apply(args=[job_id, "denoise"]).get() == "succeeded"

    job = load_job(job_id)
    operation = job.operations[0]
    assert job.status == "FINALIZING"
    assert operation.status == "SUCCEEDED"
    assert operation.output_key == f"{job_id}/denoise.webp"
    assert (operation.width, operation.height) == (40, 30)
    data = get_storage().get("outputs", operation.output_key)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "WEBP"
        assert image.size == (40, 30)


def test_denoise_task_keeps_png_alpha(configured_env: Settings, ml_app: Celery) -> None:
    alpha = np.tile(np.arange(32, dtype=np.uint8) * 8, (24, 1))
    rgba = np.dstack([to_uint8(synthetic_photo(24, 32)), alpha])
    job_id = submit_denoise_job(configured_env, encode_png(rgba, "RGBA"))

    assert denoise.apply(args=[job_id, "denoise"]).get() == "succeeded"

    operation = load_job(job_id).operations[0]
    data = get_storage().get("outputs", operation.output_key or "")
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        assert image.mode == "RGBA"
        assert np.array_equal(np.asarray(image)[..., 3], alpha)


def test_denoise_task_rejects_over_pixel_cap(
    configured_env: Settings, ml_app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DENOISE_MAX_PIXELS", "1000")
    reset_settings_cache()
    job_id = submit_denoise_job(
        configured_env, encode_png(to_uint8(synthetic_photo(30, 40)), "RGB")
    )

    assert denoise.apply(args=[job_id, "denoise"]).get() == "failed"

    operation = load_job(job_id).operations[0]
    assert operation.status == "FAILED"
    assert operation.error_code == "image-too-large"
    assert "at most 1000 pixels" in (operation.error_message or "")


def test_denoise_task_fails_on_garbage(
    configured_env: Settings, ml_app: Celery
) -> None:
    job_id = submit_denoise_job(configured_env, b"\x89PNG\r\n\x1a\nnot really a png")

    assert denoise.apply(args=[job_id, "denoise"]).get() == "failed"

    operation = load_job(job_id).operations[0]
    assert operation.status == "FAILED"
    assert operation.error_code == "invalid-image"
