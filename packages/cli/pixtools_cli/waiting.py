"""Waiting for jobs: poll GET /api/jobs/{id} until each one is final.

An API that stops responding while the command waits is not fatal: the wait
keeps polling until the deadline and shows the problem next to the job. Only
when the deadline passes while the API is still unreachable does the job end
with ExitCode.UNAVAILABLE instead of ExitCode.TIMED_OUT.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from pixtools_cli.client import PixToolsClient
from pixtools_cli.errors import ApiRejectedError, ApiUnavailableError
from pixtools_cli.exit_codes import FINAL_JOB_STATUSES, ExitCode, exit_code_for_status
from pixtools_cli.progress import JobProgress, ProgressReporter
from pixtools_cli.terminal import printable

logger = structlog.get_logger(__name__)

UNREACHABLE_NOTE = "API unreachable, retrying"


def wait_for_jobs(
    client: PixToolsClient,
    items: Sequence[JobProgress],
    *,
    timeout: float,
    poll_interval: float,
    reporter: ProgressReporter,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, ExitCode]:
    """Poll every job until it is final or `timeout` seconds have passed.

    Returns the exit code of each job id: from its final status, REJECTED when
    the API rejects the lookup (an unknown job), TIMED_OUT or UNAVAILABLE at the
    deadline.
    """
    deadline = clock() + timeout
    results: dict[str, ExitCode] = {}
    unreachable: set[str] = set()

    while True:
        for item in items:
            if item.job_id in results:
                continue
            try:
                item.job = client.get_job(item.job_id)
            except ApiRejectedError as exc:
                item.note = f"{exc.code}: {exc.message}"
                results[item.job_id] = ExitCode.REJECTED
                continue
            except ApiUnavailableError as exc:
                logger.warning("job_poll_failed", job_id=item.job_id, error=exc.message)
                item.note = UNREACHABLE_NOTE
                unreachable.add(item.job_id)
                continue

            item.note = None
            unreachable.discard(item.job_id)
            status = str(item.job.get("status"))
            if status in FINAL_JOB_STATUSES:
                results[item.job_id] = exit_code_for_status(status)

        reporter.update(items)
        if len(results) == len(items):
            break
        remaining = deadline - clock()
        if remaining <= 0:
            for item in items:
                if item.job_id not in results:
                    results[item.job_id] = (
                        ExitCode.UNAVAILABLE
                        if item.job_id in unreachable
                        else ExitCode.TIMED_OUT
                    )
            break
        sleep(min(poll_interval, remaining))

    reporter.finish(items)
    return results


def _failed_operations(job: dict[str, Any]) -> list[str]:
    lines = []
    for entry in job.get("operations") or []:
        if entry.get("status") != "FAILED":
            continue
        error = entry.get("error") or {}
        code = printable(error.get("code") or "error")
        message = printable(error.get("message") or "no message")
        lines.append(f"  {printable(entry.get('name'))} failed ({code}): {message}")
    return lines


def summarize_job(item: JobProgress, code: ExitCode, timeout: float) -> list[str]:
    """Lines telling how one job ended, for stderr after the wait."""
    label = printable(item.label)
    job = item.job or {}
    status = printable(job.get("status", "UNKNOWN"))

    if code is ExitCode.TIMED_OUT:
        return [
            f"{label}: still {status} after {timeout:g} s; run "
            f"'pixtools wait {item.job_id}' to keep waiting"
        ]
    if code is ExitCode.UNAVAILABLE:
        return [f"{label}: the API stayed unreachable; job {item.job_id} not checked"]
    if code is ExitCode.REJECTED:
        return [f"{label}: job {item.job_id} could not be read ({item.note})"]

    results = sum(1 for entry in job.get("operations") or [] if entry.get("result_url"))
    lines = [f"{label}: {status}, {results} results, job {item.job_id}"]
    lines += _failed_operations(job)
    if job.get("error_message"):
        lines.append(f"  {printable(job['error_message'])}")
    if status == "EXPIRED":
        lines.append("  The job expired and its results were deleted.")
    return lines
