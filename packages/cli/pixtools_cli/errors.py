"""Errors of the `pixtools` command, each with the exit code it ends with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pixtools_cli.exit_codes import ExitCode


class CliError(Exception):
    """A failure reported to the user as one message and an exit code."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(CliError):
    exit_code = ExitCode.USAGE


class ApiRejectedError(CliError):
    """An HTTP 4xx response of the API, with its error body."""

    exit_code = ExitCode.REJECTED

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Sequence[dict[str, Any]] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.details = list(details)


class ApiUnavailableError(CliError):
    """The API could not be reached, or returned 5xx, on every attempt."""

    exit_code = ExitCode.UNAVAILABLE


class WaitTimedOutError(CliError):
    exit_code = ExitCode.TIMED_OUT
