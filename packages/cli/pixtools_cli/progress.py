"""Progress of jobs on the terminal: bars redrawn in place, or plain lines.

On a terminal (TTY) each job has one line with a bar that is redrawn in place.
Anywhere else (a pipe, a CI log) a line is printed only when a job's status or
its count of finished operations changes, so logs stay short.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from pixtools_cli.terminal import is_terminal, printable

BAR_WIDTH = 20
LABEL_WIDTH = 24

# Short words for operation statuses, so a line fits 80 columns.
OPERATION_STATUS_WORDS: dict[str, str] = {
    "QUEUED": "queued",
    "RUNNING": "running",
    "SUCCEEDED": "done",
    "FAILED": "failed",
}

FINAL_OPERATION_STATUSES = frozenset({"SUCCEEDED", "FAILED"})


@dataclass
class JobProgress:
    """Display state of one submitted file: its job and a transient note."""

    label: str
    job_id: str
    job: dict[str, Any] | None = None
    note: str | None = None
    """A transient problem to show, such as the API being unreachable."""


def operation_counts(job: dict[str, Any] | None) -> tuple[int, int]:
    """Return (finished operations, all operations) of the job resource."""
    if not job:
        return 0, 0
    operations = job.get("operations") or []
    finished = sum(
        1 for entry in operations if entry.get("status") in FINAL_OPERATION_STATUSES
    )
    return finished, len(operations)


def render_bar(finished: int, total: int, width: int = BAR_WIDTH) -> str:
    """Draw `[#####-----]` with `finished / total` of `width` cells filled."""
    filled = 0 if total <= 0 else min(width, round(width * finished / total))
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def describe_operations(job: dict[str, Any] | None) -> str:
    if not job:
        return ""
    parts = []
    for entry in job.get("operations") or []:
        status = str(entry.get("status", ""))
        word = OPERATION_STATUS_WORDS.get(status, status.lower())
        parts.append(f"{printable(entry.get('name', '?'))}:{printable(word)}")
    return " ".join(parts)


def fit_label(label: str, width: int = LABEL_WIDTH) -> str:
    """Pad or shorten `label` to `width` characters, keeping its end."""
    text = printable(label)
    if len(text) > width:
        text = "..." + text[-(width - 3) :]
    return text.ljust(width)


def format_progress_line(item: JobProgress) -> str:
    """Format a job as one line: label, bar, count, status and each operation."""
    finished, total = operation_counts(item.job)
    status = printable(item.job.get("status", "?")) if item.job else "SUBMITTED"
    line = (
        f"{fit_label(item.label)} {render_bar(finished, total)} "
        f"{finished}/{total} {status:<21} {describe_operations(item.job)}"
    )
    if item.note:
        line += f" ({printable(item.note)})"
    return line.rstrip()


def format_change_line(item: JobProgress) -> str:
    """Format the plain-output line `label: STATUS, 2/4 operations finished`."""
    finished, total = operation_counts(item.job)
    status = printable(item.job.get("status", "?")) if item.job else "SUBMITTED"
    line = f"{printable(item.label)}: {status}, {finished}/{total} operations finished"
    if item.note:
        line += f" ({printable(item.note)})"
    return line


class ProgressReporter(Protocol):
    def update(self, items: Sequence[JobProgress]) -> None: ...

    def finish(self, items: Sequence[JobProgress]) -> None: ...


class TerminalProgress:
    """Progress that redraws one line per job in place with ANSI cursor moves."""

    def __init__(self, stream: TextIO, columns: int | None = None) -> None:
        self.stream = stream
        self.columns = columns
        self.drawn_lines = 0

    def _width(self) -> int:
        columns = self.columns or shutil.get_terminal_size((80, 24)).columns
        # One column short of the edge, so no line wraps and breaks the redraw.
        return max(20, columns - 1)

    def update(self, items: Sequence[JobProgress]) -> None:
        width = self._width()
        parts = []
        if self.drawn_lines:
            parts.append(f"\x1b[{self.drawn_lines}F")
        for item in items:
            parts.append("\x1b[2K" + format_progress_line(item)[:width] + "\n")
        self.stream.write("".join(parts))
        self.stream.flush()
        self.drawn_lines = len(items)

    def finish(self, items: Sequence[JobProgress]) -> None:
        self.update(items)
        self.drawn_lines = 0


class LineProgress:
    """Prints a line for a job whenever its status or finished count changes."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.last_lines: dict[str, str] = {}

    def update(self, items: Sequence[JobProgress]) -> None:
        for item in items:
            line = format_change_line(item)
            if self.last_lines.get(item.job_id) != line:
                self.last_lines[item.job_id] = line
                self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self, items: Sequence[JobProgress]) -> None:
        self.update(items)


class SilentProgress:
    def update(self, items: Sequence[JobProgress]) -> None:
        return

    def finish(self, items: Sequence[JobProgress]) -> None:
        return


def create_progress(stream: TextIO, *, quiet: bool = False) -> ProgressReporter:
    """Bars on a terminal, change lines elsewhere, nothing when `quiet`."""
    if quiet:
        return SilentProgress()
    if is_terminal(stream):
        return TerminalProgress(stream)
    return LineProgress(stream)
