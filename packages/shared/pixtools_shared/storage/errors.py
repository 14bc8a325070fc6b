"""Errors raised by the object storage backends and download-link checks."""

from __future__ import annotations

from pixtools_shared.errors import PixToolsError, TransientError


class ObjectNotFoundError(PixToolsError):
    """No object exists under the requested area and key."""

    code = "object-not-found"
    http_status = 404
    default_message = "The requested file does not exist."


class StorageError(TransientError):
    """The storage backend failed (network, permissions, disk); worth a retry."""

    code = "storage-error"
    http_status = 503
    default_message = "The file storage is unavailable; retry later."


class InvalidStorageKeyError(ValueError):
    """A storage key or prefix is empty, absolute or leaves its area."""


class DownloadLinkInvalidError(PixToolsError):
    """A download URL has a missing or wrong signature, or malformed fields."""

    code = "invalid-download-link"
    http_status = 403
    default_message = "The download link is invalid."


class DownloadLinkExpiredError(PixToolsError):
    """A correctly signed download URL whose expiry time has passed."""

    code = "download-link-expired"
    http_status = 410
    default_message = (
        "The download link has expired; fetch the job again for a new one."
    )
