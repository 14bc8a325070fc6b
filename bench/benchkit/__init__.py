"""Shared helpers of the PixTools benchmark scripts in bench/.

- images: synthetic test images (photo-like JPEG with EXIF and GPS, alpha PNG).
- stats: timing loops and percentiles.
- report: results.json, results.md and PNG plots under bench/results/<scenario>/.
- machine: a description of the machine a run happened on.
- platform: PostgreSQL, RabbitMQ, moto S3, the API and the workers as processes.
- client: HTTP submission and polling of jobs.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# Source roots of the PixTools packages, relative to this file (bench/benchkit/),
# with the package each one contains.
_REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = (
    (_REPOSITORY_ROOT / "packages" / "shared", "pixtools_shared"),
    (_REPOSITORY_ROOT / "packages" / "api", "pixtools_api"),
    (_REPOSITORY_ROOT / "packages" / "worker-standard", "pixtools_worker_standard"),
    (_REPOSITORY_ROOT / "packages" / "worker-ml", "pixtools_worker_ml"),
)


def add_source_roots() -> None:
    """Make the PixTools packages importable when a script runs from a checkout.

    Each package is checked on its own, so a PYTHONPATH that names only some of
    the roots (as the denoiser's evaluation command does) still gets the others.
    Packages that are importable already, under Pants or an installed
    environment, keep their location.
    """
    for root, package in SOURCE_ROOTS:
        if importlib.util.find_spec(package) is not None:
            continue
        if root.is_dir() and str(root) not in sys.path:
            sys.path.append(str(root))


add_source_roots()
