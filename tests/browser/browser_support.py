"""Helpers of the browser tests: the platform, Chromium and the test images.

The platform runs as child processes on 127.0.0.1: the API, the standard worker
and, when its package is importable, the ML worker, all on the embedded profile
(SQLite, filesystem storage and broker) in a temporary folder. Chromium is
Debian's build at CHROMIUM_PATH, started headless with a fresh profile.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from e2e_images import build_photo_exif
from e2e_platform import ml_worker_available
from e2e_processes import (
    ServiceProcess,
    child_environment,
    start_service,
    stop_service,
    wait_for_health,
)
from e2e_servers import free_port
from PIL import Image

from pixtools_shared.db import upgrade_database
from pixtools_shared.settings import Settings

CHROMIUM_PATH = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STARTUP_TIMEOUT_SECONDS = 120.0

# Small enough that a test builds an oversized file quickly, large enough for
# the test photo (about 60 KB).
BROWSER_MAX_UPLOAD_BYTES = 400_000

PHOTO_SIZE = (640, 480)


@dataclass
class BrowserPlatform:
    """The running API and workers: base URL, processes and the API log."""

    base_url: str
    services: list[ServiceProcess]
    has_ml_worker: bool

    @property
    def api(self) -> ServiceProcess:
        return self.services[-1]

    def logs(self) -> str:
        return "\n".join(service.describe() for service in self.services)


def chromium_missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM_PATH.is_file():
        return (
            f"{CHROMIUM_PATH} is missing; install Debian's chromium package "
            "(apt-get install -y chromium)"
        )
    return None


@contextmanager
def running_platform(
    folder: Path, *, max_upload_bytes: int = BROWSER_MAX_UPLOAD_BYTES
) -> Iterator[BrowserPlatform]:
    """Start the API and the workers on the embedded profile under `folder`."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    data_dir = folder / "data"
    environment = child_environment(
        {
            "ENVIRONMENT": "test",
            "DATA_DIR": str(data_dir),
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "PUBLIC_BASE_URL": base_url,
            "MAX_UPLOAD_BYTES": str(max_upload_bytes),
            "WORKER_CONCURRENCY": "1",
            "LOG_LEVEL": "INFO",
        }
    )
    upgrade_database(Settings(DATA_DIR=data_dir).database_url)

    with_ml = ml_worker_available()
    services = [
        start_service(
            "worker-standard",
            ["pixtools_worker_standard", "worker"],
            environment,
            folder,
        )
    ]
    if with_ml:
        services.append(
            start_service(
                "worker-ml", ["pixtools_worker_ml", "worker"], environment, folder
            )
        )
    services.append(start_service("api", ["pixtools_api"], environment, folder))
    try:
        wait_for_health(base_url, services, STARTUP_TIMEOUT_SECONDS)
        yield BrowserPlatform(base_url, services, with_ml)
    finally:
        for service in reversed(services):
            stop_service(service)


def build_gps_photo(path: Path) -> Path:
    """Write a 640 x 480 colour JPEG with camera EXIF and a GPS position.

    The EXIF orientation is 6, so the photo displays as 480 x 640.
    """
    width, height = PHOTO_SIZE
    generator = np.random.default_rng(5)
    pixels = np.zeros((height, width, 3), dtype=np.int16)
    pixels[..., 0] = np.linspace(20, 230, width, dtype=np.int16)[None, :]
    pixels[..., 1] = np.linspace(30, 200, height, dtype=np.int16)[:, None]
    pixels[..., 2] = 120
    pixels += generator.integers(-20, 21, size=pixels.shape, dtype=np.int16)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")

    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85, exif=build_photo_exif().tobytes())
    path.write_bytes(buffer.getvalue())
    return path


def build_oversized_png(path: Path, minimum_bytes: int) -> Path:
    """Write a PNG of random pixels that is larger than `minimum_bytes`."""
    side = 64
    while True:
        generator = np.random.default_rng(side)
        pixels = generator.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buffer, "PNG", compress_level=1)
        if buffer.tell() > minimum_bytes:
            path.write_bytes(buffer.getvalue())
            return path
        side *= 2


def build_truncated_jpeg(path: Path) -> Path:
    """Write a file with JPEG magic bytes but no decodable image after them."""
    path.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + b"\x13" * 200)
    return path
