"""Object storage for uploads, operation outputs and ZIP bundles."""

from __future__ import annotations

import functools

from pixtools_shared.settings import Settings, get_settings
from pixtools_shared.storage.base import ObjectStorage
from pixtools_shared.storage.errors import (
    DownloadLinkExpiredError,
    DownloadLinkInvalidError,
    InvalidStorageKeyError,
    ObjectNotFoundError,
    StorageError,
)
from pixtools_shared.storage.filesystem import FilesystemStorage
from pixtools_shared.storage.keys import (
    AREAS,
    Area,
    bundle_key,
    job_prefix,
    output_key,
    upload_key,
    validate_key,
)
from pixtools_shared.storage.s3 import S3Storage
from pixtools_shared.storage.signing import content_disposition, verify_signed_url


def create_storage(settings: Settings | None = None) -> ObjectStorage:
    """Build the storage backend chosen by STORAGE_BACKEND."""
    settings = settings or get_settings()
    if settings.STORAGE_BACKEND == "s3":
        return S3Storage.from_settings(settings)
    return FilesystemStorage(
        settings.storage_root,
        signing_secret=settings.SIGNING_SECRET,
        public_base_url=settings.PUBLIC_BASE_URL,
        default_expires_in=settings.DOWNLOAD_URL_EXPIRES_SECONDS,
    )


@functools.lru_cache(maxsize=1)
def get_storage() -> ObjectStorage:
    """Return the process-wide storage backend built from get_settings().

    With ENVIRONMENT=test and TEST_STORAGE_FAILURES set, the backend fails its
    first reads and writes (see fault_injection).
    """
    from pixtools_shared.fault_injection import wrap_storage

    settings = get_settings()
    return wrap_storage(settings, create_storage(settings))


def reset_storage_cache() -> None:
    """Forget the cached backend (tests, and a worker process after fork)."""
    get_storage.cache_clear()


__all__ = [
    "AREAS",
    "Area",
    "DownloadLinkExpiredError",
    "DownloadLinkInvalidError",
    "FilesystemStorage",
    "InvalidStorageKeyError",
    "ObjectNotFoundError",
    "ObjectStorage",
    "S3Storage",
    "StorageError",
    "bundle_key",
    "content_disposition",
    "create_storage",
    "get_storage",
    "job_prefix",
    "output_key",
    "reset_storage_cache",
    "upload_key",
    "validate_key",
    "verify_signed_url",
]
