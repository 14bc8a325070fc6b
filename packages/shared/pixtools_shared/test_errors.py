from __future__ import annotations

import pytest

from pixtools_shared.errors import (
    ImageTooLargeError,
    InvalidImageError,
    InvalidOperationsError,
    JobNotFoundError,
    PixToolsError,
    TransientError,
    UnsupportedFormatError,
    UploadTooLargeError,
)


@pytest.mark.parametrize(
    ("error_type", "code", "status"),
    [
        (InvalidImageError, "invalid-image", 422),
        (UnsupportedFormatError, "unsupported-format", 415),
        (ImageTooLargeError, "image-too-large", 413),
        (UploadTooLargeError, "upload-too-large", 413),
        (InvalidOperationsError, "invalid-operations", 422),
        (JobNotFoundError, "job-not-found", 404),
        (TransientError, "transient-error", 503),
    ],
)
def test_codes_and_statuses(
    error_type: type[PixToolsError], code: str, status: int
) -> None:
    error = error_type()
    assert isinstance(error, PixToolsError)
    assert error.code == code
    assert error.http_status == status
    assert error.message == error_type.default_message
    assert str(error) == error.message


def test_unsupported_format_carries_detected() -> None:
    error = UnsupportedFormatError("HEIC files are not supported.", detected="HEIC")
    assert error.detected == "HEIC"
    assert error.to_dict() == {
        "error": {
            "code": "unsupported-format",
            "message": "HEIC files are not supported.",
            "details": [{"field": "file", "message": "detected format: HEIC"}],
        }
    }


def test_unsupported_format_without_detected() -> None:
    error = UnsupportedFormatError("Unknown format.")
    assert error.detected is None
    assert error.details == []


def test_invalid_operations_details() -> None:
    error = InvalidOperationsError(
        "Bad request.", [{"field": "params.jpg.quality", "message": "too high"}]
    )
    assert error.to_dict()["error"]["details"] == [
        {"field": "params.jpg.quality", "message": "too high"}
    ]
