"""Conversion (jpg, png, webp, avif) and metadata extraction tasks."""

from __future__ import annotations

from typing import Any

from celery import Task

from pixtools_shared.imaging.convert import convert_image
from pixtools_shared.imaging.encode import EncodeOptions
from pixtools_shared.imaging.limits import ImageLimits
from pixtools_shared.imaging.metadata import extract_metadata as read_metadata
from pixtools_shared.pipeline import (
    EncodedResult,
    OperationFailure,
    OperationResult,
    metadata_result,
    run_operation,
)
from pixtools_shared.settings import get_settings
from pixtools_shared.tasks import CONVERT_TASK, EXTRACT_METADATA_TASK
from pixtools_worker_standard.app import app

CONVERT_FORMATS = frozenset({"jpg", "png", "webp", "avif"})


@app.task(bind=True, name=CONVERT_TASK, shared=False)
def convert(self: Task, job_id: str, operation: str) -> str:
    """Convert a job's source image to the format named by ``operation``."""
    settings = get_settings()
    limits = ImageLimits.from_settings(settings)
    options = EncodeOptions.from_settings(settings)

    def work(data: bytes, params: dict[str, Any]) -> EncodedResult:
        if operation not in CONVERT_FORMATS:
            raise OperationFailure(
                "invalid-operation",
                f"{operation!r} is not a conversion; expected one of "
                f"{', '.join(sorted(CONVERT_FORMATS))}.",
            )
        return convert_image(data, operation, params, limits, options)

    return str(run_operation(self, job_id, operation, work))


@app.task(bind=True, name=EXTRACT_METADATA_TASK, shared=False)
def extract_metadata(self: Task, job_id: str, operation: str = "metadata") -> str:
    """Read EXIF, GPS, XMP and IPTC data and store it on the job as JSON."""
    settings = get_settings()
    limits = ImageLimits.from_settings(settings)

    def work(data: bytes, _params: dict[str, Any]) -> OperationResult:
        return metadata_result(read_metadata(data, limits), settings.MAX_METADATA_BYTES)

    return str(run_operation(self, job_id, operation, work))
