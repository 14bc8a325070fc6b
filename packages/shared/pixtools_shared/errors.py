"""Exception tree shared by the API and the workers.

PixToolsError
 +-- InvalidImageError        invalid-image        422
 +-- UnsupportedFormatError   unsupported-format   415
 +-- ImageTooLargeError       image-too-large      413
 +-- UploadTooLargeError      upload-too-large     413
 +-- InvalidOperationsError   invalid-operations   422
 +-- JobNotFoundError         job-not-found        404
 +-- TransientError           transient-error      503

Each class fixes a stable kebab-case `code` and an HTTP status, so the API can turn
any of them into the body `{"error": {"code", "message", "details"}}` in one place.
Workers store `code` and `message` on a failed operation. `TransientError` marks
failures worth a retry (storage, network, database).
"""

from __future__ import annotations

from typing import Any, ClassVar, TypedDict


class ErrorDetail(TypedDict):
    """One `details` entry of InvalidOperationsError: the field and what is wrong."""

    field: str
    message: str


class PixToolsError(Exception):
    """Base class of every error the project raises on purpose."""

    code: ClassVar[str] = "internal-error"
    http_status: ClassVar[int] = 500
    default_message: ClassVar[str] = "The request failed."

    def __init__(
        self,
        message: str | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        self.message = message if message is not None else self.default_message
        self.details: list[dict[str, Any]] = list(details or [])
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        """Build the JSON error body `{"error": {...}}` the API returns."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "details": self.details,
            }
        }


class InvalidImageError(PixToolsError):
    """The bytes claim a supported format but cannot be decoded."""

    code = "invalid-image"
    http_status = 422
    default_message = "The file is not a valid image or is damaged."


class UnsupportedFormatError(PixToolsError):
    """The input format is not on the allow-list; `detected` names it if known."""

    code = "unsupported-format"
    http_status = 415
    default_message = "The image format is not supported."

    def __init__(
        self,
        message: str | None = None,
        detected: str | None = None,
    ) -> None:
        self.detected = detected
        details: list[dict[str, Any]] = []
        if detected is not None:
            details.append({"field": "file", "message": f"detected format: {detected}"})
        super().__init__(message, details)


class ImageTooLargeError(PixToolsError):
    """The image declares more pixels, or a longer side, than the limits allow."""

    code = "image-too-large"
    http_status = 413
    default_message = "The image dimensions exceed the allowed limits."


class UploadTooLargeError(PixToolsError):
    """The uploaded file has more bytes than MAX_UPLOAD_BYTES."""

    code = "upload-too-large"
    http_status = 413
    default_message = "The uploaded file exceeds the maximum size."


class InvalidOperationsError(PixToolsError):
    """The requested operations or their parameters failed validation."""

    code = "invalid-operations"
    http_status = 422
    default_message = "The requested operations are invalid."

    def __init__(
        self,
        message: str | None = None,
        details: list[ErrorDetail] | None = None,
    ) -> None:
        entries: list[dict[str, Any]] = [dict(entry) for entry in details or []]
        super().__init__(message, entries)


class JobNotFoundError(PixToolsError):
    """No job exists with the requested id (or it is not visible to the caller)."""

    code = "job-not-found"
    http_status = 404
    default_message = "The job was not found."


class TransientError(PixToolsError):
    """A temporary failure of storage, network or database; the caller may retry."""

    code = "transient-error"
    http_status = 503
    default_message = "A temporary failure occurred; retry later."
