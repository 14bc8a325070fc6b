"""The object storage interface shared by every backend."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from pixtools_shared.storage.keys import Area


@runtime_checkable
class ObjectStorage(Protocol):
    """Byte objects stored under an area (uploads, outputs, bundles) and a key.

    Keys are validated by every backend (see keys.validate_key). A failing backend
    raises StorageError; a missing object raises ObjectNotFoundError from get().
    """

    def put(self, area: Area, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key``, replacing any existing object."""
        ...

    def get(self, area: Area, key: str) -> bytes:
        """Return the bytes stored under ``key``."""
        ...

    def delete(self, area: Area, key: str) -> None:
        """Delete ``key``; deleting a missing object is not an error."""
        ...

    def delete_prefix(self, area: Area, prefix: str) -> int:
        """Delete every key that starts with ``prefix``; return how many."""
        ...

    def list_keys(self, area: Area, prefix: str = "") -> list[str]:
        """Return the sorted keys that start with ``prefix``."""
        ...

    def exists(self, area: Area, key: str) -> bool:
        """Return whether an object is stored under ``key``."""
        ...

    def download_url(
        self, area: Area, key: str, filename: str, expires_in: int | None = None
    ) -> str:
        """Return a URL that downloads ``key`` as ``filename`` until it expires."""
        ...
