"""Deterministic ZIP bundles of a job's outputs."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

# ZIP cannot store dates before 1980; a fixed date keeps the bytes reproducible.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)

# Image formats are compressed already; deflating them again costs CPU for
# nothing, so only text entries are deflated.
DEFLATED_EXTENSIONS = frozenset({"json"})


@dataclass(frozen=True)
class BundleEntry:
    """One file of the bundle: its name inside the ZIP and its bytes."""

    name: str
    data: bytes


def entry_name(operation: str, extension: str) -> str:
    """Name of an operation's file in the bundle, e.g. ``webp.webp``."""
    return f"{operation}.{extension}"


def build_bundle(entries: Iterable[BundleEntry]) -> bytes:
    """Return a ZIP of ``entries`` in the given order, identical for equal input."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name, date_time=ZIP_DATE_TIME)
            info.external_attr = 0o644 << 16
            extension = entry.name.rpartition(".")[2]
            if extension in DEFLATED_EXTENSIONS:
                info.compress_type = zipfile.ZIP_DEFLATED
            else:
                info.compress_type = zipfile.ZIP_STORED
            archive.writestr(info, entry.data)
    return buffer.getvalue()
