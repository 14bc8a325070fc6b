"""Object storage in a local folder, with HMAC-signed download URLs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import structlog

from pixtools_shared.storage.errors import ObjectNotFoundError, StorageError
from pixtools_shared.storage.keys import (
    AREAS,
    Area,
    validate_area,
    validate_key,
    validate_prefix,
)
from pixtools_shared.storage.signing import build_signed_url

log = structlog.get_logger(__name__)

# Keys cannot start with a dot (keys.validate_key), so temp files never collide
# with objects and list_keys() can skip them by name.
TEMP_PREFIX = ".tmp-"


class FilesystemStorage:
    """Objects stored as files under ``root/{area}/{key}``.

    Writes go to a temp file in the target folder, are flushed to disk and then
    renamed over the target, so readers see either the old or the new object.
    """

    def __init__(
        self,
        root: Path,
        signing_secret: str,
        public_base_url: str,
        default_expires_in: int = 3600,
    ) -> None:
        self.root = root.resolve()
        self._secret = signing_secret
        self._base_url = public_base_url
        self._default_expires_in = default_expires_in
        for area in AREAS:
            (self.root / area).mkdir(parents=True, exist_ok=True)

    def path_for(self, area: str, key: str) -> Path:
        """Return the file path of ``key``; the result always lies inside its area."""
        area_root = self.root / validate_area(area)
        path = (area_root / validate_key(key)).resolve()
        if not path.is_relative_to(area_root):
            # Reachable only through a symlink planted inside the storage folder.
            raise StorageError(f"storage key {key!r} resolves outside its area")
        return path

    def put(self, area: Area, key: str, data: bytes, content_type: str) -> None:
        path = self.path_for(area, key)
        try:
            descriptor, temp_name = self._create_temp_file(path.parent)
            try:
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                Path(temp_name).replace(path)
            except BaseException:
                Path(temp_name).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(f"could not write {area}/{key}: {exc.strerror}") from exc

    def get(self, area: Area, key: str) -> bytes:
        path = self.path_for(area, key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise ObjectNotFoundError(f"No object {area}/{key}.") from None
        except IsADirectoryError:
            raise ObjectNotFoundError(f"No object {area}/{key}.") from None
        except OSError as exc:
            raise StorageError(f"could not read {area}/{key}: {exc.strerror}") from exc

    def delete(self, area: Area, key: str) -> None:
        path = self.path_for(area, key)
        try:
            path.unlink(missing_ok=True)
        except IsADirectoryError:
            return
        except OSError as exc:
            raise StorageError(
                f"could not delete {area}/{key}: {exc.strerror}"
            ) from exc
        self._remove_empty_parents(area, path.parent)

    def delete_prefix(self, area: Area, prefix: str) -> int:
        keys = self.list_keys(area, prefix)
        for key in keys:
            self.delete(area, key)
        return len(keys)

    def list_keys(self, area: Area, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        area_root = self.root / validate_area(area)
        # Only walk the folder the prefix points into, not the whole area.
        start = area_root / prefix.rpartition("/")[0] if "/" in prefix else area_root
        keys: list[str] = []
        try:
            for folder, _dirs, files in os.walk(start):
                for name in files:
                    if name.startswith(TEMP_PREFIX):
                        continue
                    key = (Path(folder) / name).relative_to(area_root).as_posix()
                    if key.startswith(prefix):
                        keys.append(key)
        except OSError as exc:
            raise StorageError(
                f"could not list {area}/{prefix}: {exc.strerror}"
            ) from exc
        return sorted(keys)

    def exists(self, area: Area, key: str) -> bool:
        return self.path_for(area, key).is_file()

    def download_url(
        self, area: Area, key: str, filename: str, expires_in: int | None = None
    ) -> str:
        return build_signed_url(
            self._secret,
            self._base_url,
            area,
            key,
            filename,
            expires_in if expires_in is not None else self._default_expires_in,
        )

    def _create_temp_file(self, folder: Path) -> tuple[int, str]:
        # A concurrent delete() may remove the folder between mkdir and mkstemp,
        # so a vanished folder is created again a few times before giving up.
        for _ in range(3):
            folder.mkdir(parents=True, exist_ok=True)
            try:
                return tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)
            except FileNotFoundError:
                continue
        return tempfile.mkstemp(prefix=TEMP_PREFIX, dir=folder)

    def _remove_empty_parents(self, area: Area, folder: Path) -> None:
        area_root = self.root / area
        while folder != area_root and folder.is_relative_to(area_root):
            try:
                folder.rmdir()
            except OSError:
                # Not empty, or a concurrent writer just created a file in it.
                return
            folder = folder.parent
