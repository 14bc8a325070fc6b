"""Capture of the warnings Pillow emits while reading untrusted files."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from PIL import Image

log = structlog.get_logger(__name__)

_IGNORED_CATEGORIES = (DeprecationWarning, Image.DecompressionBombWarning)


@contextmanager
def captured_pillow_warnings(step: str) -> Iterator[list[str]]:
    """Collect warnings raised inside the block instead of printing them.

    Pillow warns, rather than raises, on corrupt EXIF blocks and similar damage.
    The messages are logged with `step` and returned in the yielded list.
    DecompressionBombWarning is dropped because ImageLimits is checked anyway.

    NOTE: warnings.catch_warnings swaps process-global state, so warnings from
    other threads in the same moment may be captured here too.
    """
    messages: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield messages
    for warning in caught:
        if issubclass(warning.category, _IGNORED_CATEGORIES):
            continue
        message = str(warning.message).strip()
        if message not in messages:
            messages.append(message)
            log.info("pillow_warning", step=step, message=message)
