"""The processing that a PixTools standard worker task does, without Celery.

run_operation in pixtools_shared.pipeline reads the source from storage, calls
convert_image or extract_metadata, and writes the output back. This module does
those three steps with FilesystemStorage and times each of them. Database
transitions and broker traffic are left out: bench_job_overhead.py measures them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixtools_shared.imaging import EncodeOptions, ImageLimits, convert_image
from pixtools_shared.imaging.metadata import extract_metadata
from pixtools_shared.pipeline import metadata_result
from pixtools_shared.settings import Settings
from pixtools_shared.storage import FilesystemStorage, output_key, upload_key

CONVERSIONS = ("jpg", "png", "webp", "avif")


@dataclass(frozen=True)
class StageTimes:
    """Seconds spent in each step of one operation."""

    get: float
    process: float
    put: float
    output_bytes: int
    width: int | None
    height: int | None

    @property
    def total(self) -> float:
        return self.get + self.process + self.put


class WorkerPath:
    """Runs operations the way the worker does, on one FilesystemStorage."""

    def __init__(self, storage_root: Path, settings: Settings | None = None) -> None:
        self.settings = settings or Settings(DATA_DIR=storage_root)
        self.storage = FilesystemStorage(
            storage_root,
            signing_secret=self.settings.SIGNING_SECRET,
            public_base_url=self.settings.PUBLIC_BASE_URL,
        )
        self.limits = ImageLimits.from_settings(self.settings)
        self.options = EncodeOptions.from_settings(self.settings)

    def store_source(self, job_id: str, data: bytes, content_type: str) -> None:
        self.storage.put("uploads", upload_key(job_id), data, content_type)

    def run(self, job_id: str, operation: str, params: dict[str, Any]) -> StageTimes:
        """Read the job's source, run `operation` with `params`, store the output."""
        start = time.perf_counter()
        source = self.storage.get("uploads", upload_key(job_id))
        loaded = time.perf_counter()

        if operation in CONVERSIONS:
            result: Any = convert_image(
                source, operation, params, self.limits, self.options
            )
        elif operation == "metadata":
            result = metadata_result(
                extract_metadata(source, self.limits), self.settings.MAX_METADATA_BYTES
            )
        else:
            raise ValueError(f"unsupported operation {operation!r}")
        processed = time.perf_counter()

        key = output_key(job_id, operation, result.extension)
        self.storage.put("outputs", key, result.data, result.content_type)
        stored = time.perf_counter()

        return StageTimes(
            get=loaded - start,
            process=processed - loaded,
            put=stored - processed,
            output_bytes=len(result.data),
            width=result.width,
            height=result.height,
        )
