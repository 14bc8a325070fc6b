"""Helpers for values as the mock monitor receives them.

Secret inputs arrive wrapped in a marker dict, numbers arrive as floats (the wire
format has one number type) and, in previews, unknown values arrive as
``pulumi.output.Unknown`` objects.
"""

from __future__ import annotations

from typing import Any

from pulumi.output import Unknown
from pulumi.runtime import rpc

SECRET_KEY = rpc._special_sig_key
SECRET_SIG = rpc._special_secret_sig


def is_secret(value: Any) -> bool:
    """Return whether ``value`` is a secret marker."""
    return isinstance(value, dict) and value.get(SECRET_KEY) == SECRET_SIG


def contains_unknown(value: Any) -> bool:
    """Return whether ``value`` contains an unknown anywhere inside it."""
    if isinstance(value, Unknown):
        return True
    if isinstance(value, dict):
        return any(contains_unknown(item) for item in value.values())
    if isinstance(value, list):
        return any(contains_unknown(item) for item in value)
    return False


def plain(value: Any) -> Any:
    """Strip secret markers and turn integral floats into ints, recursively."""
    if is_secret(value):
        return plain(value["value"])
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def secret_paths(value: Any, path: str = "") -> list[str]:
    """Return the paths (``a.b[0]``) of every secret marker inside ``value``."""
    if is_secret(value):
        return [path or "."]
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(secret_paths(item, f"{path}.{key}" if path else str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(secret_paths(item, f"{path}[{index}]"))
    return found


def wrap_secret(value: Any) -> dict[str, Any]:
    """Wrap ``value`` in a secret marker, as the engine does for secret outputs."""
    return {SECRET_KEY: SECRET_SIG, "value": value}
