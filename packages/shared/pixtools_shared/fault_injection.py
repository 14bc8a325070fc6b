"""Faults that the durability tests switch on through TEST_* settings.

Each hook does nothing unless ENVIRONMENT is ``test``. Settings also rejects the
TEST_* values in any other environment, so a deployment cannot enable them.
"""

from __future__ import annotations

import os
import threading
import time

import structlog

from pixtools_shared.settings import Settings
from pixtools_shared.storage.base import ObjectStorage
from pixtools_shared.storage.errors import StorageError
from pixtools_shared.storage.keys import Area

log = structlog.get_logger(__name__)

POISON_EXIT_STATUS = 1


def _enabled(settings: Settings) -> bool:
    return settings.ENVIRONMENT == "test"


def delay_operation(settings: Settings, job_id: str, operation: str) -> None:
    """Sleep TEST_OPERATION_DELAY_SECONDS so a test can act mid-operation."""
    if not _enabled(settings) or settings.TEST_OPERATION_DELAY_SECONDS <= 0:
        return
    log.info(
        "test_operation_delay",
        job_id=job_id,
        operation=operation,
        seconds=settings.TEST_OPERATION_DELAY_SECONDS,
    )
    time.sleep(settings.TEST_OPERATION_DELAY_SECONDS)


def is_poisoned(settings: Settings, source_filename: str) -> bool:
    """Return whether TEST_POISON_FILE exists and lists ``source_filename``."""
    if not _enabled(settings) or settings.TEST_POISON_FILE is None:
        return False
    try:
        names = settings.TEST_POISON_FILE.read_text("utf-8").splitlines()
    except FileNotFoundError:
        return False
    return source_filename in {name.strip() for name in names if name.strip()}


def crash_if_poisoned(
    settings: Settings, job_id: str, operation: str, source_filename: str
) -> None:
    """End this process at once, as a crash in native code would, if poisoned."""
    if not is_poisoned(settings, source_filename):
        return
    log.warning(
        "test_poison_exit", job_id=job_id, operation=operation, file=source_filename
    )
    os._exit(POISON_EXIT_STATUS)


class FailingStorage:
    """Storage whose first ``failures`` reads and writes raise StorageError."""

    def __init__(self, inner: ObjectStorage, failures: int) -> None:
        self._inner = inner
        self._remaining = failures
        self._lock = threading.Lock()

    def _maybe_fail(self, action: str, area: Area, key: str) -> None:
        with self._lock:
            if self._remaining <= 0:
                return
            self._remaining -= 1
            remaining = self._remaining
        log.warning("test_storage_fault", action=action, area=area, key=key)
        raise StorageError(
            f"could not {action} {area}/{key}: injected test fault ({remaining} left)"
        )

    def put(self, area: Area, key: str, data: bytes, content_type: str) -> None:
        self._maybe_fail("write", area, key)
        self._inner.put(area, key, data, content_type)

    def get(self, area: Area, key: str) -> bytes:
        self._maybe_fail("read", area, key)
        return self._inner.get(area, key)

    def delete(self, area: Area, key: str) -> None:
        self._inner.delete(area, key)

    def delete_prefix(self, area: Area, prefix: str) -> int:
        return self._inner.delete_prefix(area, prefix)

    def list_keys(self, area: Area, prefix: str = "") -> list[str]:
        return self._inner.list_keys(area, prefix)

    def exists(self, area: Area, key: str) -> bool:
        return self._inner.exists(area, key)

    def download_url(
        self, area: Area, key: str, filename: str, expires_in: int | None = None
    ) -> str:
        return self._inner.download_url(area, key, filename, expires_in)


def wrap_storage(settings: Settings, storage: ObjectStorage) -> ObjectStorage:
    """Return ``storage``, in a FailingStorage when TEST_STORAGE_FAILURES is set."""
    if not _enabled(settings) or settings.TEST_STORAGE_FAILURES <= 0:
        return storage
    return FailingStorage(storage, settings.TEST_STORAGE_FAILURES)
