"""Storage areas and the deterministic object keys of a job."""

from __future__ import annotations

import re
from typing import Final, Literal, get_args

from pixtools_shared.storage.errors import InvalidStorageKeyError

Area = Literal["uploads", "outputs", "bundles"]
AREAS: Final[tuple[Area, ...]] = get_args(Area)

MAX_KEY_LENGTH = 512

# Segments are plain file names: letters, digits, dot, dash and underscore, never
# starting with a dot, so "..", hidden files and temp files cannot be named.
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def validate_area(area: str) -> Area:
    """Return ``area`` if it is a known storage area, else raise."""
    if area not in AREAS:
        raise InvalidStorageKeyError(
            f"unknown storage area {area!r}; expected one of {', '.join(AREAS)}"
        )
    return area


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise.

    A key is one or more "/"-separated segments; absolute paths, empty segments,
    backslashes and segments starting with a dot are rejected.
    """
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidStorageKeyError(
            f"storage key must have 1 to {MAX_KEY_LENGTH} characters"
        )
    for segment in key.split("/"):
        if not _SEGMENT.fullmatch(segment):
            raise InvalidStorageKeyError(f"invalid storage key {key!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is empty or a safe key with an optional "/" end."""
    if prefix == "":
        return prefix
    validate_key(prefix.removesuffix("/"))
    return prefix


def upload_key(job_id: str) -> str:
    """Key of a job's source image in the uploads area."""
    return validate_key(f"{job_id}/source")


def output_key(job_id: str, operation: str, extension: str) -> str:
    """Key of one operation's result in the outputs area."""
    return validate_key(f"{job_id}/{operation}.{extension}")


def bundle_key(job_id: str) -> str:
    """Key of a job's ZIP bundle in the bundles area."""
    return validate_key(f"{job_id}.zip")


def job_prefix(job_id: str) -> str:
    """Prefix of every uploads or outputs object of a job."""
    return validate_prefix(f"{job_id}/")
