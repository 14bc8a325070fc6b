"""Exit codes of the `pixtools` command, stable for scripts."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable
from enum import IntEnum

HELP_WIDTH = 79


class ExitCode(IntEnum):
    OK = 0
    USAGE = 1
    JOB_FAILED = 2
    REJECTED = 3
    UNAVAILABLE = 4
    TIMED_OUT = 5


EXIT_CODE_DESCRIPTIONS: dict[ExitCode, str] = {
    ExitCode.OK: "every job completed (or, for status, none has failed)",
    ExitCode.USAGE: "usage error: bad option, missing file, pattern matching nothing",
    ExitCode.JOB_FAILED: "a job failed, completed with errors or expired, or has no "
    "result of the kind requested",
    ExitCode.REJECTED: "the API rejected a request (HTTP 4xx): invalid or too large "
    "file, invalid options, unknown job, missing or wrong API key",
    ExitCode.UNAVAILABLE: "the API is unreachable or failed (HTTP 5xx) after retries",
    ExitCode.TIMED_OUT: "a job was not finished: the wait timed out, or download "
    "or metadata found it still running",
}


def exit_codes_help() -> str:
    """Text of the exit code table shown at the end of every --help."""
    lines = ["exit codes:"]
    for code, description in EXIT_CODE_DESCRIPTIONS.items():
        lines += textwrap.wrap(
            description,
            width=HELP_WIDTH,
            initial_indent=f"  {code.value}  ",
            subsequent_indent="     ",
        )
    lines.append("  With several files or jobs, the highest code that applies wins.")
    return "\n".join(lines)


def combine_exit_codes(codes: Iterable[ExitCode]) -> ExitCode:
    """Return the highest code, or OK when there is none."""
    return max(codes, default=ExitCode.OK)


JOB_STATUS_EXIT_CODES: dict[str, ExitCode] = {
    "COMPLETED": ExitCode.OK,
    "COMPLETED_WITH_ERRORS": ExitCode.JOB_FAILED,
    "FAILED": ExitCode.JOB_FAILED,
    "EXPIRED": ExitCode.JOB_FAILED,
}

FINAL_JOB_STATUSES = frozenset(JOB_STATUS_EXIT_CODES)


def exit_code_for_status(status: str) -> ExitCode:
    """Exit code of a job in `status`; a job still active counts as OK."""
    return JOB_STATUS_EXIT_CODES.get(status, ExitCode.OK)
