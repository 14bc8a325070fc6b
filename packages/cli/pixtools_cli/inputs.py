"""Expansion of the FILE arguments of `pixtools submit` into readable files."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from pathlib import Path

from pixtools_cli.errors import UsageError


def expand_inputs(arguments: Sequence[str]) -> list[Path]:
    """Expand glob patterns and check each file; keep order, drop repeats.

    Shells expand unquoted patterns before the command runs. Quoted patterns
    (and shells that do not expand them) are expanded here, with `**` matching
    any depth of folders. Raises UsageError for a pattern that matches no file,
    a missing path, a folder or an unreadable file.
    """
    paths: list[Path] = []
    seen: set[Path] = set()
    for argument in arguments:
        if glob.has_magic(argument):
            # Path.glob takes no absolute patterns, and users pass those too.
            matches = sorted(glob.glob(argument, recursive=True))  # noqa: PTH207
            candidates = [Path(match) for match in matches if Path(match).is_file()]
            if not candidates:
                raise UsageError(f"no file matches {argument!r}")
        else:
            candidates = [Path(argument)]

        for path in candidates:
            _check_file(path)
            resolved = path.resolve()
            if resolved not in seen:
                seen.add(resolved)
                paths.append(path)
    return paths


def _check_file(path: Path) -> None:
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if path.is_dir():
        raise UsageError(f"{path} is a folder; pass the files, e.g. '{path}/*.jpg'")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: permission denied")
