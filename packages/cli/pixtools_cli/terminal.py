"""Safe text for the terminal: values from the API or from image metadata."""

from __future__ import annotations

import re
from typing import TextIO

# C0 and C1 control characters and DEL. EXIF strings and file names may carry
# escape sequences that would move the cursor or recolour the terminal.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(value: object) -> str:
    """Render `value` as text with every control character escaped as \\xNN."""
    text = value if isinstance(value, str) else str(value)
    return _CONTROL_CHARACTERS.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
