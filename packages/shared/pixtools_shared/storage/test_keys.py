from __future__ import annotations

import pytest

from pixtools_shared.storage.errors import InvalidStorageKeyError
from pixtools_shared.storage.keys import (
    bundle_key,
    output_key,
    upload_key,
    validate_area,
    validate_key,
    validate_prefix,
)

JOB_ID = "4f2b8a51-0c7e-4d43-9d1e-2f0b8c6a9e11"


def test_job_keys_deterministic() -> None:
    assert upload_key(JOB_ID) == f"{JOB_ID}/source"
    assert output_key(JOB_ID, "webp", "webp") == f"{JOB_ID}/webp.webp"
    assert bundle_key(JOB_ID) == f"{JOB_ID}.zip"


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../outside",
        "a/../../b",
        "a/./b",
        "a//b",
        "a/",
        ".hidden",
        "a\\b",
        "a b",
        "a/\x00",
        "é",
        "x" * 513,
    ],
)
def test_unsafe_keys_rejected(key: str) -> None:
    with pytest.raises(InvalidStorageKeyError):
        validate_key(key)


@pytest.mark.parametrize("key", ["a", "job/source", "a-b_c.d/e.f", "A1/b2/c3"])
def test_safe_keys_accepted(key: str) -> None:
    assert validate_key(key) == key


def test_prefix_may_end_with_slash() -> None:
    assert validate_prefix("") == ""
    assert validate_prefix(f"{JOB_ID}/") == f"{JOB_ID}/"
    with pytest.raises(InvalidStorageKeyError):
        validate_prefix("../")


def test_unknown_area_rejected() -> None:
    assert validate_area("outputs") == "outputs"
    with pytest.raises(InvalidStorageKeyError, match="unknown storage area"):
        validate_area("secrets")
