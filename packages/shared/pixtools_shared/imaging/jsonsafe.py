"""Conversion of metadata values (EXIF, IPTC, XMP) into strict JSON values.

The output always passes `json.dumps(value, allow_nan=False)` and contains no NUL
characters or lone surrogates, so PostgreSQL JSONB accepts it too:

- rationals become floats, and a zero denominator becomes null;
- NaN and infinities become null;
- bytes become UTF-8 text when they decode to printable text, else
  "hex:<digits>"; values over MAX_BYTES_LENGTH become "<N bytes omitted>";
- tuples, lists and sets become lists; mappings get string keys;
- anything else becomes its str().
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Rational
from typing import Any

HEX_PREFIX = "hex:"

# Larger binary values (maker notes, embedded thumbnails, sensor tables) are
# summarized instead of hex-encoded, to keep the metadata document small.
MAX_BYTES_LENGTH = 1024
MAX_SEQUENCE_LENGTH = 1024
MAX_DEPTH = 8

JsonValue = None | bool | int | float | str | list[Any] | dict[str, Any]


def to_json_value(value: object, depth: int = 0) -> JsonValue:
    """Convert one metadata value to a strict JSON value (see module docstring)."""
    if depth > MAX_DEPTH:
        return None
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Rational):
        return rational_to_float(value)
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes_to_json(bytes(value))
    if isinstance(value, Mapping):
        return {
            clean_text(str(key)): to_json_value(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        if len(items) > MAX_SEQUENCE_LENGTH:
            return f"<{len(items)} values omitted>"
        return [to_json_value(item, depth + 1) for item in items]
    return clean_text(str(value))


def rational_to_float(value: Rational) -> float | None:
    """Return numerator / denominator, or None for a zero denominator or overflow."""
    numerator = int(value.numerator)
    denominator = int(value.denominator)
    if denominator == 0:
        return None
    try:
        result = numerator / denominator
    except OverflowError:
        return None
    return result if math.isfinite(result) else None


def clean_text(text: str) -> str:
    """Remove NUL characters and replace lone surrogates with "?"."""
    without_nul = text.replace("\x00", "")
    return without_nul.encode("utf-8", errors="replace").decode("utf-8")


def bytes_to_json(data: bytes) -> str:
    """Decode printable UTF-8 bytes as text; hex-encode anything else."""
    if len(data) > MAX_BYTES_LENGTH:
        return f"<{len(data)} bytes omitted>"
    trimmed = data.rstrip(b"\x00")
    try:
        text = trimmed.decode("utf-8")
    except UnicodeDecodeError:
        return HEX_PREFIX + data.hex()
    if "\x00" in text or not is_printable(text):
        return HEX_PREFIX + data.hex()
    return text


def is_printable(text: str) -> bool:
    """Tell whether every character is printable or a tab, newline or return."""
    return all(char.isprintable() or char in "\t\r\n" for char in text)
