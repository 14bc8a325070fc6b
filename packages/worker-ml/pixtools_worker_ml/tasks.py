"""The ``pixtools.denoise`` task (queue ``ml``).

The network is loaded once per worker process: in ``worker_process_init`` for a
prefork child, or on the first task in any other pool. The parent process never
runs torch, because OpenMP thread pools do not survive a fork.
"""

from __future__ import annotations

import functools
from typing import Any

import structlog
from celery import Task, signals

from pixtools_shared.imaging.encode import EncodeOptions
from pixtools_shared.imaging.limits import ImageLimits
from pixtools_shared.pipeline import EncodedResult, run_operation
from pixtools_shared.settings import get_settings
from pixtools_shared.tasks import DENOISE_TASK
from pixtools_worker_ml.app import app
from pixtools_worker_ml.inference import Denoiser, time_budget_seconds
from pixtools_worker_ml.operation import denoise_bytes

logger = structlog.get_logger(__name__)


@functools.lru_cache(maxsize=1)
def get_denoiser() -> Denoiser:
    """Return the process-wide Denoiser, built from the settings on first use."""
    return Denoiser.from_settings(get_settings())


@signals.worker_process_init.connect
def _load_model_in_child(**_kwargs: Any) -> None:
    try:
        get_denoiser()
    except Exception as exc:
        # The first task tries again and fails its operation with the reason.
        logger.error("denoiser_load_failed", exc_info=exc)


@app.task(bind=True, name=DENOISE_TASK, shared=False)
def denoise(self: Task, job_id: str, operation: str = "denoise") -> str:
    """Denoise a job's source image and store it in the requested format.

    Celery stops the task at ML_TASK_SOFT_TIME_LIMIT_SECONDS (and kills it at
    ML_TASK_TIME_LIMIT_SECONDS). Before that, the denoiser stops at a budget that
    grows with the image: DENOISE_TIME_BASE_SECONDS plus DENOISE_SECONDS_PER_MEGAPIXEL
    per megapixel. A stalled small image therefore fails early and frees the worker.
    """
    settings = get_settings()
    limits = ImageLimits.from_settings(settings)
    options = EncodeOptions.from_settings(settings)

    base = settings.DENOISE_TIME_BASE_SECONDS
    rate = settings.DENOISE_SECONDS_PER_MEGAPIXEL

    def work(data: bytes, params: dict[str, Any]) -> EncodedResult:
        return denoise_bytes(
            data,
            params,
            get_denoiser(),
            limits,
            options,
            budget=lambda pixels: time_budget_seconds(pixels, base, rate),
        )

    return str(run_operation(self, job_id, operation, work))
