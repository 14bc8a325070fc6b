"""Tests of the exit code table and how codes combine."""

from __future__ import annotations

from pixtools_cli.exit_codes import (
    ExitCode,
    combine_exit_codes,
    exit_code_for_status,
    exit_codes_help,
)


def test_exit_code_values_are_stable() -> None:
    assert [code.value for code in ExitCode] == [0, 1, 2, 3, 4, 5]
    assert ExitCode.REJECTED.value == 3
    assert ExitCode.UNAVAILABLE.value == 4


def test_combine_takes_highest() -> None:
    assert combine_exit_codes([]) is ExitCode.OK
    assert combine_exit_codes([ExitCode.OK, ExitCode.JOB_FAILED]) is ExitCode.JOB_FAILED
    assert (
        combine_exit_codes([ExitCode.TIMED_OUT, ExitCode.REJECTED, ExitCode.OK])
        is ExitCode.TIMED_OUT
    )


def test_status_codes() -> None:
    assert exit_code_for_status("COMPLETED") is ExitCode.OK
    assert exit_code_for_status("COMPLETED_WITH_ERRORS") is ExitCode.JOB_FAILED
    assert exit_code_for_status("FAILED") is ExitCode.JOB_FAILED
    assert exit_code_for_status("EXPIRED") is ExitCode.JOB_FAILED
    assert exit_code_for_status("RUNNING") is ExitCode.OK


def test_help_lines_fit_79_columns() -> None:
    lines = exit_codes_help().splitlines()

    assert lines[0] == "exit codes:"
    assert all(len(line) <= 79 for line in lines)
    assert lines[1].startswith("  0  every job completed")
