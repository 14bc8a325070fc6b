"""Tests of the progress display: bars on a terminal, change lines elsewhere."""

from __future__ import annotations

import io
from typing import Any

from pixtools_cli.progress import (
    JobProgress,
    LineProgress,
    SilentProgress,
    TerminalProgress,
    create_progress,
    fit_label,
    format_progress_line,
    render_bar,
)
from pixtools_cli.terminal import printable


def job(status: str, *operations: tuple[str, str]) -> dict[str, Any]:
    return {
        "status": status,
        "operations": [{"name": name, "status": state} for name, state in operations],
    }


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_render_bar_fractions() -> None:
    assert render_bar(0, 4, width=8) == "[--------]"
    assert render_bar(1, 4, width=8) == "[##------]"
    assert render_bar(4, 4, width=8) == "[########]"
    assert render_bar(0, 0, width=4) == "[----]"


def test_fit_label_keeps_end() -> None:
    assert fit_label("photo.jpg", 12) == "photo.jpg   "
    assert fit_label("a-very-long-file-name.jpg", 12) == "...-name.jpg"


def test_progress_line_shows_operations() -> None:
    item = JobProgress(
        "photo.jpg",
        "job-1",
        job("RUNNING", ("jpg", "SUCCEEDED"), ("webp", "RUNNING"), ("avif", "QUEUED")),
    )

    line = format_progress_line(item)

    assert line.startswith("photo.jpg")
    assert "[#######-------------] 1/3 RUNNING" in line
    assert line.endswith("jpg:done webp:running avif:queued")


def test_progress_line_before_first_poll() -> None:
    line = format_progress_line(JobProgress("a.png", "job-2"))

    assert "[--------------------] 0/0 SUBMITTED" in line


def test_terminal_progress_redraws_in_place() -> None:
    stream = FakeTerminal()
    reporter = TerminalProgress(stream, columns=200)
    items = [
        JobProgress("a.jpg", "1", job("QUEUED", ("jpg", "QUEUED"))),
        JobProgress("b.jpg", "2", job("QUEUED", ("jpg", "QUEUED"))),
    ]

    reporter.update(items)
    first = stream.getvalue()
    items[0].job = job("COMPLETED", ("jpg", "SUCCEEDED"))
    reporter.update(items)
    second = stream.getvalue()[len(first) :]

    assert first.count("\x1b[2K") == 2
    assert "\x1b[2F" not in first
    assert second.startswith("\x1b[2F\x1b[2K")
    assert "1/1 COMPLETED" in second


def test_terminal_progress_cuts_lines_to_width() -> None:
    stream = FakeTerminal()
    reporter = TerminalProgress(stream, columns=40)

    reporter.update([JobProgress("photo.jpg", "1", job("RUNNING", ("jpg", "RUNNING")))])

    lines = stream.getvalue().replace("\x1b[2K", "").splitlines()
    assert len(lines) == 1
    assert len(lines[0]) == 39


def test_line_progress_prints_changes_only() -> None:
    stream = io.StringIO()
    reporter = LineProgress(stream)
    item = JobProgress("a.jpg", "1", job("QUEUED", ("jpg", "QUEUED")))

    reporter.update([item])
    reporter.update([item])
    item.job = job("RUNNING", ("jpg", "RUNNING"))
    reporter.update([item])
    item.job = job("COMPLETED", ("jpg", "SUCCEEDED"))
    reporter.finish([item])

    assert stream.getvalue().splitlines() == [
        "a.jpg: QUEUED, 0/1 operations finished",
        "a.jpg: RUNNING, 0/1 operations finished",
        "a.jpg: COMPLETED, 1/1 operations finished",
    ]


def test_line_progress_shows_note() -> None:
    stream = io.StringIO()
    item = JobProgress("a.jpg", "1", note="API unreachable, retrying")

    LineProgress(stream).update([item])

    assert stream.getvalue() == (
        "a.jpg: SUBMITTED, 0/0 operations finished (API unreachable, retrying)\n"
    )


def test_create_progress_picks_by_stream() -> None:
    assert isinstance(create_progress(FakeTerminal()), TerminalProgress)
    assert isinstance(create_progress(io.StringIO()), LineProgress)
    assert isinstance(create_progress(FakeTerminal(), quiet=True), SilentProgress)


def test_printable_escapes_control_characters() -> None:
    assert printable("ok\x1b[31mred\x07\x9b") == "ok\\x1b[31mred\\x07\\x9b"
    assert printable("Ünïcode stays") == "Ünïcode stays"
    assert printable(42) == "42"


def test_progress_line_escapes_server_text() -> None:
    item = JobProgress("a.jpg", "1", job("RUNNING\x1b[2J", ("jpg\x1b", "RUNNING")))

    line = format_progress_line(item)

    assert "\x1b" not in line
    assert "RUNNING\\x1b[2J" in line
